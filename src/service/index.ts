/**
 * focal-reward's judging service, runtime-neutral part: the fetch handler, the state-store
 * interface with its in-memory store, and the judges. Node adds `FileStore` (./file-store.js)
 * and `serveNode` (./node.js); Workers get a Durable Object per run (./durable-object.js).
 */
export { createHandler } from "./handler.js";
export { KeyWindow, decodeRunRecord } from "./window.js";
export type { FetchHandler, HandlerOptions, ServiceCriterion } from "./handler.js";
export { MemoryStore, StoreUnavailableError } from "./store.js";
export type { StateStore, Versioned } from "./store.js";
export { JudgeTimeout, labelsJudge, negatedPenaltyRules, rulesFromRubric, rulesJudge, runJudge } from "./judges.js";
export type { Judge, JudgeContext, JudgeScores, Rule, RuleSet, RuleTarget } from "./judges.js";
export { HttpError, PROBLEM_TYPES, problem } from "./problem.js";
export { DurableObjectStore, createRunObject, routeToRun } from "./durable-object.js";
export type { DurableObjectNamespaceLike, DurableObjectStateLike, SqlStorage } from "./durable-object.js";
export { LlmJudgeError, llmJudge } from "../judge/llm/index.js";
export type { LlmJudge, LlmJudgeOptions, LlmJudgeStats, Judgement } from "../judge/llm/index.js";
