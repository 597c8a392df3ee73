/**
 * The `llm` rubric judge: any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM,
 * llama.cpp's server, Ollama, ...) grades a response against the rubric's criteria.
 *
 * Per rollout the criteria are split into batches (`batch` per call, default all), the batches
 * run concurrently under the judge's global limits, and each batch's validated verdicts are
 * cached under a content hash. A batch that still fails after its retries fails the whole
 * rollout (an LlmJudgeError): the caller marks it not judged, never scores it 0.
 * Runtime-neutral: fetch, AbortController, crypto.subtle and timers only.
 */
import type { Judge, JudgeScores } from "../../service/judges.js";
import { AnswerError, parseAnswer, verdictScore } from "./answer.js";
import { MemoryCache, cacheKey, type JudgeCache, type Verdicts } from "./cache.js";
import { CallError, Limiter, complete, type CallSettings } from "./client.js";
import { instanceCriteria, rubricCriteria } from "./criteria.js";
import { messages, responseFormat, type JudgeCriterion } from "./prompt.js";

export { TEMPLATE_VERSION, SYSTEM_PROMPT, userPrompt, answerSchema, type JudgeCriterion } from "./prompt.js";
export { MemoryCache, TieredCache, type JudgeCache, type Verdicts } from "./cache.js";
export { parseAnswer, extractAnswer, AnswerError, type Verdict } from "./answer.js";
export { judgeCriterion, instanceCriteria, rubricCriteria } from "./criteria.js";

export interface LlmJudgeOptions {
  /** Base URL of the API, up to and without /chat/completions (e.g. http://127.0.0.1:8000/v1). */
  url: string;
  model: string;
  /** Default: FOCAL_JUDGE_API_KEY, else OPENAI_API_KEY, from the environment where there is one. */
  apiKey?: string;
  /** The rubric's criteria (with `text`, optional `choices` and `scale`). */
  criteria: readonly unknown[];
  /** Every rubric criterion must have a text (false: rollouts may bring their own). Default true. */
  requireText?: boolean;
  /** Criteria per call. Default: all of a rollout's criteria in one call. */
  batch?: number;
  /** Calls in flight at most, over every rollout this judge grades. Default 8. */
  concurrency?: number;
  /** Calls started per minute at most (evenly paced). Default: no limit. */
  rpm?: number;
  /** Retries of a call after a 408, 409, 429, 5xx, timeout or connection error. Default 4. */
  retries?: number;
  /** Per call (one HTTP attempt). Default 60000 ms. */
  timeoutMs?: number;
  /** First retry backoff, doubled per retry (+-50% jitter). Default 500 ms. */
  backoffMs?: number;
  /** Longest backoff. Default 30000 ms. */
  maxBackoffMs?: number;
  /** Sent as `seed` with `temperature: 0`. Default 0. */
  seed?: number;
  /**
   * `auto` (default): ask for the strict JSON schema; if the server refuses `response_format`
   * (HTTP 400/422/501), ask again without it and extract the JSON from the text from then on.
   * `on`: always send it, no fallback. `off`: never send it.
   */
  structured?: "auto" | "on" | "off";
  /** Verdict cache; default a MemoryCache of `cacheSize` entries; false: none. */
  cache?: JudgeCache | false;
  /** Entries of the default memory cache. Default 10000. */
  cacheSize?: number;
  /** `max_tokens` of each call. Default: the server's. */
  maxTokens?: number;
  /** Default: globalThis.fetch. */
  fetch?: typeof fetch;
  /** Retries, the structured-output fallback and failures are logged here. Default console.error. */
  log?: (line: string) => void;
}

/** Why a rollout was not judged: `status` the HTTP status, timeout, connection, invalid or incomplete. */
export class LlmJudgeError extends Error {
  readonly reason: "error" | "timeout" | "invalid";
  constructor(
    readonly status: string,
    message: string,
  ) {
    super(message);
    this.reason = status === "timeout" ? "timeout" : status === "invalid" || status === "incomplete" ? "invalid" : "error";
  }
}

export interface Judgement {
  /** Raw score per criterion (the verdict placed on the criterion's scale). */
  scores: Record<string, number>;
  verdicts: Record<string, string>;
  reasons: Record<string, string>;
  /** Batches answered from the cache, and batches asked. */
  cacheHits: number;
  batches: number;
}

export interface LlmJudgeStats {
  /** HTTP attempts by outcome ("200", "429", "timeout", "connection", ...). */
  requests: Record<string, number>;
  /** Batches that failed after their retries, by final status. */
  failures: Record<string, number>;
  retries: number;
  cacheHits: number;
  cacheMisses: number;
  /** Times the server refused response_format and the judge fell back to plain text. */
  fallbacks: number;
  inflight: number;
  peakInflight: number;
  /** Whether the server takes the JSON schema: true, false, or undefined before the first answer. */
  structured: boolean | undefined;
}

export type LlmJudge = Judge & {
  readonly criteria: readonly JudgeCriterion[];
  /** Judge one response; `own` = the rollout's own criteria (see instanceCriteria). */
  judge(prompt: string, response: string, own?: unknown, signal?: AbortSignal): Promise<Judgement>;
  stats(): LlmJudgeStats;
  /** The judge's counters in Prometheus text format. */
  metrics(): string;
};

function env(name: string): string | undefined {
  const p = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  const v = p?.env?.[name];
  return v === undefined || v === "" ? undefined : v;
}

function intOption(name: string, v: unknown, min: number, dflt: number | undefined): number | undefined {
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) throw new RangeError(`llm judge: ${name} must be an integer >= ${min}, got ${String(v)}`);
  return v;
}

const REFUSED_FORMAT = new Set(["400", "422", "501"]);

/** The judge's own criteria for a rollout from an OpenRLHF label: {"criteria": [...]} when it has them. */
function labelCriteria(label: unknown): unknown {
  let v = label;
  if (typeof v === "string") {
    if (!v.trimStart().startsWith("{")) return undefined;
    try {
      v = JSON.parse(v);
    } catch {
      return undefined;
    }
  }
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as { criteria?: unknown }).criteria : undefined;
}

export function llmJudge(options: LlmJudgeOptions): LlmJudge {
  const { url, model } = options;
  if (typeof url !== "string" || !/^https?:\/\//.test(url)) throw new TypeError(`llm judge: url must be http(s)://..., got ${JSON.stringify(url)}`);
  if (typeof model !== "string" || model === "") throw new TypeError("llm judge: model must be a non-empty string");
  const batch = intOption("batch", options.batch, 1, undefined);
  const concurrency = intOption("concurrency", options.concurrency, 1, 8)!;
  const rpm = intOption("rpm", options.rpm, 1, undefined);
  const retries = intOption("retries", options.retries, 0, 4)!;
  const timeoutMs = intOption("timeoutMs", options.timeoutMs, 1, 60_000)!;
  const backoffMs = intOption("backoffMs", options.backoffMs, 0, 500)!;
  const maxBackoffMs = intOption("maxBackoffMs", options.maxBackoffMs, 0, 30_000)!;
  const seed = intOption("seed", options.seed, 0, 0)!;
  const maxTokens = intOption("maxTokens", options.maxTokens, 1, undefined);
  const structured = options.structured ?? "auto";
  if (!["auto", "on", "off"].includes(structured)) throw new RangeError(`llm judge: structured must be auto, on or off, got ${String(structured)}`);
  const log = options.log ?? ((l: string) => console.error(l));
  const criteria = rubricCriteria(options.criteria, options.requireText ?? true);
  const byId = new Map(criteria.map((c) => [c.id, c] as const));
  const cache: JudgeCache | undefined = options.cache === false ? undefined : (options.cache ?? new MemoryCache(options.cacheSize ?? 10_000));
  const fetchFn = options.fetch ?? globalThis.fetch.bind(globalThis);

  const stats: LlmJudgeStats = { requests: {}, failures: {}, retries: 0, cacheHits: 0, cacheMisses: 0, fallbacks: 0, inflight: 0, peakInflight: 0, structured: structured === "off" ? false : undefined };
  const limiter = new Limiter(concurrency, rpm);
  const call: CallSettings = {
    url,
    apiKey: options.apiKey ?? env("FOCAL_JUDGE_API_KEY") ?? env("OPENAI_API_KEY"),
    timeoutMs,
    retries,
    baseDelayMs: backoffMs,
    maxDelayMs: maxBackoffMs,
    limiter,
    fetch: fetchFn,
    onAttempt: (s) => (stats.requests[s] = (stats.requests[s] ?? 0) + 1),
    onRetry: (e, wait, n) => {
      stats.retries++;
      log(`focal-reward: llm judge: ${e.message}; retry ${n}/${retries} in ${wait} ms${e.retryAfterMs !== undefined ? " (Retry-After)" : ""}`);
    },
  };
  const pending = new Map<string, Promise<Verdicts>>();

  async function ask(batchCriteria: readonly JudgeCriterion[], prompt: string, response: string, signal?: AbortSignal): Promise<Verdicts> {
    const request: Record<string, unknown> = { model, messages: messages(prompt, response, batchCriteria), temperature: 0, seed, stream: false };
    if (maxTokens !== undefined) request.max_tokens = maxTokens;
    const withSchema = stats.structured !== false;
    if (withSchema) request.response_format = responseFormat(batchCriteria);
    let done;
    try {
      done = await complete(call, request, signal);
    } catch (e) {
      if (!(withSchema && structured === "auto" && e instanceof CallError && REFUSED_FORMAT.has(e.status))) throw e;
      delete request.response_format;
      done = await complete(call, request, signal);
      if (stats.structured !== false) {
        stats.structured = false;
        log(`focal-reward: llm judge: the server refused response_format (${e.message}); asking for plain JSON and extracting it from now on`);
      }
      stats.fallbacks++;
    }
    if (withSchema && stats.structured === undefined) stats.structured = true;
    if (done.finishReason === "length") throw new AnswerError("invalid", "the answer was cut off (finish_reason \"length\"): raise max_tokens or judge fewer criteria per call");
    return parseAnswer(done.content, batchCriteria);
  }

  async function verdictsOf(batchCriteria: readonly JudgeCriterion[], prompt: string, response: string, signal?: AbortSignal): Promise<{ verdicts: Verdicts; hit: boolean }> {
    const key = await cacheKey(model, seed, batchCriteria, prompt, response);
    const cached = await cache?.get(key);
    if (cached) {
      stats.cacheHits++;
      return { verdicts: cached, hit: true };
    }
    // The same batch already being asked (a retried rollout): wait for that call, not a second one.
    const running = pending.get(key);
    if (running) {
      stats.cacheHits++;
      return { verdicts: await running, hit: true };
    }
    stats.cacheMisses++;
    const p = (async () => {
      let verdicts: Verdicts;
      try {
        verdicts = await ask(batchCriteria, prompt, response, signal);
      } catch (e) {
        const status = e instanceof CallError || e instanceof AnswerError ? e.status : signal?.aborted ? "timeout" : "error";
        stats.failures[status] = (stats.failures[status] ?? 0) + 1;
        if (e instanceof CallError || e instanceof AnswerError) throw new LlmJudgeError(e.status, e.message);
        throw e;
      }
      try {
        await cache?.set(key, verdicts);
      } catch (e) {
        log(`focal-reward: llm judge: could not write the verdict cache: ${e instanceof Error ? e.message : String(e)}`);
      }
      return verdicts;
    })();
    pending.set(key, p);
    try {
      return { verdicts: await p, hit: false };
    } finally {
      pending.delete(key);
    }
  }

  async function judge(prompt: string, response: string, own?: unknown, signal?: AbortSignal): Promise<Judgement> {
    const list = own === undefined ? criteria : instanceCriteria(own, byId, "criteria");
    const blank = list.find((c) => c.text === "");
    if (blank) throw new LlmJudgeError("invalid", `criterion '${blank.id}' has no text to judge (give it in the rubric or in the rollout's criteria)`);
    const size = batch ?? list.length;
    const batches: JudgeCriterion[][] = [];
    for (let i = 0; i < list.length; i += size) batches.push(list.slice(i, i + size));
    const answers = await Promise.all(batches.map((b) => verdictsOf(b, prompt, response, signal)));
    const out: Judgement = { scores: {}, verdicts: {}, reasons: {}, cacheHits: 0, batches: batches.length };
    batches.forEach((b, i) => {
      const a = answers[i]!;
      if (a.hit) out.cacheHits++;
      for (const c of b) {
        const v = a.verdicts[c.id]!;
        out.scores[c.id] = verdictScore(c, v.verdict);
        out.verdicts[c.id] = v.verdict;
        out.reasons[c.id] = v.reason;
      }
    });
    return out;
  }

  // As a service judge: the response is OpenRLHF's query without its leading prompt; a label
  // {"criteria": [...]} carries the rollout's own criteria.
  const asServiceJudge: Judge = async (query, prompt, label, context): Promise<JudgeScores> => {
    const response = prompt !== "" && query.startsWith(prompt) ? query.slice(prompt.length) : query;
    return (await judge(prompt, response, labelCriteria(label), context.signal)).scores;
  };

  function metrics(): string {
    const s = stats;
    const lines = [
      "# HELP focal_llm_judge_requests_total Calls to the judge's chat-completions endpoint, by outcome (HTTP status, timeout, connection, invalid).",
      "# TYPE focal_llm_judge_requests_total counter",
      ...Object.entries(s.requests).map(([k, n]) => `focal_llm_judge_requests_total{status="${k}"} ${n}`),
      "# HELP focal_llm_judge_failures_total Criterion batches not judged after their retries, by final status; their rollouts are invalid.",
      "# TYPE focal_llm_judge_failures_total counter",
      ...Object.entries(s.failures).map(([k, n]) => `focal_llm_judge_failures_total{status="${k}"} ${n}`),
      "# HELP focal_llm_judge_retries_total Calls retried (408, 409, 429, 5xx, timeouts, connection errors).",
      "# TYPE focal_llm_judge_retries_total counter",
      `focal_llm_judge_retries_total ${s.retries}`,
      "# HELP focal_llm_judge_cache_hits_total Criterion batches answered from the verdict cache (or by a call already in flight).",
      "# TYPE focal_llm_judge_cache_hits_total counter",
      `focal_llm_judge_cache_hits_total ${s.cacheHits}`,
      "# HELP focal_llm_judge_cache_misses_total Criterion batches that needed a call.",
      "# TYPE focal_llm_judge_cache_misses_total counter",
      `focal_llm_judge_cache_misses_total ${s.cacheMisses}`,
      "# HELP focal_llm_judge_structured_fallbacks_total Calls asked again without response_format because the server refused it.",
      "# TYPE focal_llm_judge_structured_fallbacks_total counter",
      `focal_llm_judge_structured_fallbacks_total ${s.fallbacks}`,
      "# HELP focal_llm_judge_calls_in_flight Calls to the judge endpoint in flight.",
      "# TYPE focal_llm_judge_calls_in_flight gauge",
      `focal_llm_judge_calls_in_flight ${limiter.active}`,
    ];
    return lines.join("\n") + "\n";
  }

  return Object.assign(asServiceJudge, {
    criteria,
    judge,
    stats: () => ({ ...stats, requests: { ...stats.requests }, failures: { ...stats.failures }, inflight: limiter.active, peakInflight: limiter.peak }),
    metrics,
  });
}
