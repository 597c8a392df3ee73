/**
 * The judging service as a standard fetch handler: `(request: Request) => Promise<Response>`,
 * WHATWG fetch API only, so the same code runs in Cloudflare Workers, Vercel Edge, Deno, Bun and
 * Node (src/service/node.ts adapts it to node:http).
 *
 * This file is the glue: it checks the options, loads the engine, and dispatches each request to
 * its route (routes.ts), which parses it, calls the run ledger (ledger.ts: per-run state, queue,
 * group commit, idempotency) and renders the outcome. Errors a route throws as HttpError are the
 * client's (4xx); a store failure is 503 (or 500 outcome-unknown); anything else is a bug: 500,
 * logged.
 */
import { ENGINE_OPTION_KEYS } from "../keys.js";
import type { Criterion, Engine, EngineOptions } from "../types.js";
import { checkKeys } from "../validate.js";
import { type Judge, type Rule, type RuleSet, labelsJudge, rulesFromRubric, rulesJudge } from "./judges.js";
import { type LlmJudge, type LlmJudgeOptions, llmJudge } from "../judge/llm/index.js";
import { AssembledRewards, GROUPING_DEFAULTS, type MakeAssembler } from "./grouping.js";
import { rowJudge } from "./judging.js";
import { RunLedger } from "./ledger.js";
import { Metrics } from "./metrics.js";
import { type RequestLimits, parseRun, requestLimits } from "./parse.js";
import { HttpError, PROBLEM_TYPES, problem } from "./problem.js";
import { type Service, matchRoute, scoreAssembled } from "./routes.js";
import { MemoryStore, type StateStore, StoreUnavailableError } from "./store.js";

export { decodeRunRecord } from "./window.js";

/** A rubric criterion as the service reads it: the engine's fields plus an optional rule for the `rules` judge. */
export interface ServiceCriterion extends Criterion {
  rule?: Rule | readonly Rule[];
}

/** Also the per-request limits (parse.ts): maxRows, maxGroups, maxCells. */
export interface HandlerOptions extends Omit<EngineOptions, "rubric">, Partial<RequestLimits> {
  rubric: { criteria: readonly ServiceCriterion[] } | readonly ServiceCriterion[];
  /** Makes an engine: `createEngine` from the package's entry, or `createEngineFrom(load, ...)` of its core. */
  createEngine: (options: EngineOptions) => Engine | Promise<Engine>;
  /** Where the runs' stream states live. Default: a MemoryStore (per process / isolate). */
  store?: StateStore;
  /** Judge of `POST /get_reward`: "labels" (default), "rules", "llm" or your own function. */
  judge?: "labels" | "rules" | "llm" | Judge;
  /** Rules of the `rules` judge; default: the `rule` fields of the rubric's criteria. */
  rules?: RuleSet;
  /** Settings of the `llm` judge (src/judge/llm); its criteria are the rubric's (`text`, `choices`). */
  llm?: Omit<LlmJudgeOptions, "criteria">;
  /** A judge that has not answered by then marks its rollout invalid. Default 30000 ms (llm: 300000). */
  judgeTimeoutMs?: number;
  /** Judge calls in flight per request. Default 32. */
  judgeConcurrency?: number;
  /** Request bodies larger than this answer 413. Default 8 MiB. */
  maxBodyBytes?: number;
  /** How many recent Idempotency-Keys a run remembers. Default 1024. */
  idempotencyWindow?: number;
  /**
   * Most bytes of stored answers a run keeps for its keys; older keys leave the window past it, and
   * a larger answer is not stored (its key is: a retry answers 409, never applies twice). Default 64 MiB.
   */
  idempotencyWindowBytes?: number;
  /** Most queued requests of one run applied per state write. Default 256. */
  maxBatch?: number;
  /** Run used when a request names none. Default "default". */
  defaultRun?: string;
  /** Runs whose engines stay in memory (others are reloaded from the store). Default 1024. */
  maxCachedRuns?: number;
  /** Estimated bytes of the cached runs' engines and states past which idle runs leave the cache. Default 256 MiB. */
  maxCachedBytes?: number;
  /** A call of more scores (rows x criteria) than this makes its run's engine be remade afterwards, giving its grown memory back. Default 1048576. */
  engineRecycleCells?: number;
  /**
   * Stream scope: step-keyed updates (spec "Step-keyed stream updates"). Every request must carry
   * its training step (`step` in the body or `?step=`); all requests of a step get the same
   * weights, the run's state folds once per step. Default false: a step only labels the reply and
   * every request updates the state on its own.
   */
  stepped?: boolean;
  /**
   * Group assembly for per-sample clients (OpenRLHF, slime): rows of one run with the same group
   * key (`group_ids`/`group`, else the prompt) are held until this many arrived or `groupWaitMs`
   * passed, then scored as one group. Default: none (each request is its own batch).
   */
  groupSize?: number;
  /** Longest hold of a group after its first row, in ms. Default 5000. */
  groupWaitMs?: number;
  /** Most rows held at once (past it: 503 + Retry-After). Default 65536. */
  maxHeldRows?: number;
  /** Most open groups at once. Default 16384. */
  maxHeldGroups?: number;
  /**
   * Where groups are assembled. Default: in this process. Several replicas behind one load
   * balancer: `(o, score) => RedisGroupAssembler.open(url, { ...o, codec: heldRowCodec }, score)`.
   */
  makeAssembler?: MakeAssembler;
  /**
   * What `/get_reward` answers in `rewards` (slime: `reward`): "reward" (default) or "advantage",
   * for trainers run with their own normalization off. Methods whose effect lives only in the
   * advantages (gdpo, sa-mrpo, fGrpo) are refused on /get_reward unless it is "advantage".
   */
  rewardOutput?: "reward" | "advantage";
  /** Where judge failures (rate-limited) and internal errors (500s) are logged. Default: console.error (stderr). */
  log?: (line: string) => void;
}

export type FetchHandler = ((request: Request) => Promise<Response>) & {
  /** Resolves once the rubric and engine loaded (rejects when they cannot). */
  readonly ready: Promise<void>;
  /** Stop taking requests (503), let queued updates finish and close the store. */
  close(): Promise<void>;
  /** Score the groups held for assembly as they are (shutdown); resolves when they are answered. */
  flush(): Promise<void>;
};

const KNOWN_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]);

/** createHandler's own options; the rest are the engine's (src/keys.ts). */
const HANDLER_KEYS = [
  "rubric", "createEngine", "store", "judge", "rules", "llm", "judgeTimeoutMs", "judgeConcurrency", "maxBodyBytes",
  "idempotencyWindow", "idempotencyWindowBytes", "maxBatch", "defaultRun", "maxCachedRuns", "maxCachedBytes", "engineRecycleCells", "log", "stepped",
  "groupSize", "groupWaitMs", "maxHeldRows", "maxHeldGroups", "makeAssembler", "rewardOutput",
  "maxRows", "maxGroups", "maxCells",
];

export function createHandler(options: HandlerOptions): FetchHandler {
  if (options === null || typeof options !== "object") throw new TypeError("createHandler: expected an options object { rubric, createEngine, ... }");
  checkKeys("createHandler", options, [...HANDLER_KEYS, ...ENGINE_OPTION_KEYS.filter((k) => k !== "rubric")], "option");
  const {
    rubric,
    createEngine,
    store: storeOption,
    judge: judgeOption = "labels",
    rules,
    llm: llmOptions,
    judgeTimeoutMs = judgeOption === "llm" ? 300_000 : 30_000,
    judgeConcurrency = 32,
    maxBodyBytes = 8 * 1024 * 1024,
    idempotencyWindow = 1024,
    idempotencyWindowBytes = 64 * 1024 * 1024,
    maxBatch = 256,
    defaultRun = "default",
    maxCachedRuns = 1024,
    maxCachedBytes = 256 * 1024 * 1024,
    engineRecycleCells = 1 << 20,
    log: logOption,
    stepped = false,
    groupSize,
    groupWaitMs = GROUPING_DEFAULTS.waitMs,
    maxHeldRows = GROUPING_DEFAULTS.maxHeldRows,
    maxHeldGroups = GROUPING_DEFAULTS.maxHeldGroups,
    makeAssembler,
    rewardOutput = "reward",
    maxRows,
    maxGroups,
    maxCells,
    ...engineRest
  } = options;
  const limits = requestLimits({ maxRows, maxGroups, maxCells });
  const store: StateStore = storeOption ?? new MemoryStore();
  const log = logOption ?? ((l: string) => console.error(l));
  for (const [name, v, min] of [
    ["judgeTimeoutMs", judgeTimeoutMs, 1],
    ["judgeConcurrency", judgeConcurrency, 1],
    ["maxBodyBytes", maxBodyBytes, 1],
    ["idempotencyWindow", idempotencyWindow, 0],
    ["maxBatch", maxBatch, 1],
    ["maxCachedRuns", maxCachedRuns, 1],
    ["idempotencyWindowBytes", idempotencyWindowBytes, 0],
    ["maxCachedBytes", maxCachedBytes, 0],
    ["engineRecycleCells", engineRecycleCells, 1],
  ] as const) {
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) throw new RangeError(`createHandler: ${name} must be an integer >= ${min}, got ${String(v)}`);
  }
  if (typeof createEngine !== "function") throw new TypeError("createHandler: createEngine must be a function (the package's createEngine)");
  parseRun(defaultRun, "defaultRun", "default");
  const serviceCriteria: readonly ServiceCriterion[] = Array.isArray(rubric) ? rubric : (rubric as { criteria?: readonly ServiceCriterion[] } | undefined)?.criteria ?? (undefined as never);
  if (!Array.isArray(serviceCriteria)) throw new TypeError("rubric: expected { criteria: [...] } or an array of criteria");
  const engineCriteria: Criterion[] = serviceCriteria.map(({ rule: _rule, ...c }) => c);
  const engineOptions: EngineOptions = { ...engineRest, rubric: { criteria: engineCriteria } };
  const metrics = new Metrics();
  let llm: LlmJudge | undefined;
  if (judgeOption === "llm") {
    if (!llmOptions) throw new TypeError('createHandler: judge "llm" needs the llm option ({ url, model, ... })');
    llm = llmJudge({ log: options.log, ...llmOptions, criteria: serviceCriteria });
  }
  if (rewardOutput !== "reward" && rewardOutput !== "advantage") throw new RangeError(`createHandler: rewardOutput must be "reward" or "advantage", got ${JSON.stringify(rewardOutput)}`);
  // A method whose effect lives only in the advantages gives /get_reward's trainer nothing to learn from.
  const advantageOnly = engineRest.method === "gdpo" || engineRest.method === "sa-mrpo" ? `method "${engineRest.method}"`
    : engineRest.fGrpo !== undefined ? "fGrpo" : undefined;
  const judge: Judge =
    typeof judgeOption === "function"
      ? judgeOption
      : llm ?? (judgeOption === "rules" ? rulesJudge(rules ?? rulesFromRubric(serviceCriteria)) : labelsJudge());

  let closing = false;
  let inflight = 0;
  let idle: (() => void) | undefined;
  const ledger = new RunLedger({
    store,
    // A run's results are rendered before it scores again: reused outputs cost no allocation.
    createEngine: (purpose) => createEngine(purpose === "run" ? { ...engineOptions, reuseOutputs: true } : engineOptions),
    window: idempotencyWindow,
    windowBytes: idempotencyWindowBytes,
    maxBatch,
    maxCachedRuns,
    maxCachedBytes,
    recycleCells: engineRecycleCells,
    events: metrics,
  });
  let service: Service | undefined;
  const grouping = groupSize === undefined ? undefined
    : new AssembledRewards({ groupSize, waitMs: groupWaitMs, maxHeldRows, maxHeldGroups }, (run, step, rows) => scoreAssembled(service!, run, step, rows), makeAssembler);

  // Out-of-scale scores: counted in /metrics, logged once per run and criterion with the count.
  const warnedScale = new Set<string>();
  const scored = (run: string, m: Record<string, number>) => {
    const criteria = service!.ctx.criteria;
    metrics.scored(criteria, m);
    if (!(m["focal/frac_out_of_scale"]! > 0)) return;
    for (const c of criteria) {
      const n = m[`focal/${c}/out_of_scale`], key = `${run}\u0000${c}`;
      if (!n || warnedScale.has(key)) continue;
      if (warnedScale.size >= 4096) warnedScale.delete(warnedScale.values().next().value!);
      warnedScale.add(key);
      log(`focal-reward: warning: run=${run} criterion=${c}: ${n} scores outside its scale, clamped into it (give the rubric the right scale; outOfScale "error" refuses them); logged once per run and criterion, counted in focal_scores_out_of_scale_total`);
    }
  };

  const ready = (async () => {
    const template = await createEngine(engineOptions);
    const stream = template.scope === "stream";
    if (stepped && !stream) throw new RangeError(`createHandler: stepped needs scope "stream", not "${template.scope}"`);
    // The group scope shares one engine across all runs and saves nothing: a method with state
    // across calls (pow3r's contrasts) would mix the runs' traffic.
    if (template.method === "pow3r") throw new RangeError('createHandler: method "pow3r" cannot be served: it carries state from call to call, which scope "group" would share across all runs and never save (and scope "stream" is focal\'s); score pow3r offline (focal-reward score/replay) or serve another method');
    const criteria = template.criteria;
    const byId = new Map(serviceCriteria.map((c) => [c.id, c] as const));
    const index = new Map(criteria.map((c, k) => [c, k] as const));
    service = {
      ctx: { criteria, index, baseWeights: criteria.map((c) => Math.abs(byId.get(c)?.weight ?? 1)), defaultRun, limits },
      template,
      stream,
      stepped,
      ledger,
      grouping,
      metrics,
      scored,
      llm,
      judgeRows: rowJudge({ judge, criteria, index, timeoutMs: judgeTimeoutMs, concurrency: judgeConcurrency, onFailure: (r) => metrics.judgeFailure(r), log }),
      maxBodyBytes,
      idempotencyWindow,
      defaultRun,
      rewardOutput,
      needsLabels: judgeOption === "labels",
      advantageOnly,
      closing: () => closing,
    };
  })();
  ready.catch(() => {}); // surfaced through `ready` and as 500s

  async function dispatch(request: Request, url: URL, found: ReturnType<typeof matchRoute>): Promise<Response> {
    if (closing) return problem(503, "server is shutting down", undefined, { "retry-after": "1", connection: "close" });
    try {
      await ready;
    } catch (e) {
      throw new HttpError(500, `engine failed to load: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (!found) return problem(404, `no route ${url.pathname}`);
    const { route, run } = found;
    const allowed = route.methods.includes("GET") ? [...route.methods, "HEAD"] : route.methods;
    if (request.method === "HEAD" && allowed.includes("HEAD")) {
      // HEAD is GET without the body.
      const response = await route.handle(service!, { request: new Request(request, { method: "GET" }), url, run });
      return new Response(null, { status: response.status, headers: response.headers });
    }
    if (!allowed.includes(request.method)) {
      return problem(405, `${request.method} is not allowed on ${route.name}`, undefined, { allow: allowed.join(", ") });
    }
    return route.handle(service!, { request, url, run });
  }

  const handler = async (request: Request): Promise<Response> => {
    const t0 = performance.now();
    let response: Response;
    const url = new URL(request.url);
    const found = matchRoute(url.pathname);
    inflight++;
    try {
      response = await dispatch(request, url, found);
    } catch (e) {
      if (e instanceof HttpError) response = problem(e.status, e.message, e.field, e.headers, e.reason, e.type);
      else if (e instanceof StoreUnavailableError) response = storeProblem(e);
      else {
        // A bug, not the client's fault: 500, and the stack where the operator looks.
        log(`focal-reward: internal error on ${request.method} ${found?.route.name ?? url.pathname}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
        response = problem(500, `internal error: ${e instanceof Error ? e.message : String(e)}`);
      }
    } finally {
      inflight--;
      if (inflight === 0 && idle) idle();
    }
    const method = KNOWN_METHODS.has(request.method) ? request.method : "other";
    metrics.request(found?.route.name ?? "other", method, response.status, (performance.now() - t0) / 1000);
    return response;
  };

  async function close(): Promise<void> {
    closing = true;
    // Held rows are scored now, as their groups stand, so their requests can finish.
    await grouping?.flush();
    if (inflight > 0) await new Promise<void>((r) => (idle = r));
    await ledger.drain();
    await grouping?.close();
    await store.close?.();
  }

  const flush = async (): Promise<void> => { await grouping?.flush(); };
  // A Redis assembler connects before the first request; a failure is the handler's failure to start.
  const allReady = grouping ? Promise.all([ready, grouping.ready]).then(() => {}) : ready;
  allReady.catch(() => {});
  return Object.assign(handler, { ready: allReady, close, flush });
}

/** The store is down (503, nothing applied) or a write's reply was lost (500: the outcome is unknown). */
function storeProblem(e: StoreUnavailableError): Response {
  if (!e.unknownOutcome) return problem(503, `state store unavailable: ${e.message}`, undefined, { "retry-after": "1" }, undefined, PROBLEM_TYPES.storeUnavailable);
  return problem(500, `state store write outcome unknown (${e.message}): retry with the same Idempotency-Key to learn whether it was applied`, undefined, {}, undefined, PROBLEM_TYPES.outcomeUnknown);
}
