/**
 * The judging service as a standard fetch handler: `(request: Request) => Promise<Response>`,
 * WHATWG fetch API only, so the same code runs in Cloudflare Workers, Vercel Edge, Deno, Bun and
 * Node (src/service/node.ts adapts it to node:http).
 *
 * Stream state: one engine state per run, kept in a StateStore under `run/<run>` together with
 * the run's update counter (`seq`) and the recent Idempotency-Keys. Updates of one run go through
 * one queue and are applied in arrival order; each drained batch is written once (group commit)
 * with a compare-and-set on the record's version, and no response of the batch is sent before
 * that write resolved. So N concurrent requests end in the state of the same N requests applied
 * one after another in `seq` order, an acknowledged update is never lost, and a request retried
 * with the same Idempotency-Key gets the first response back without a second update.
 */
import { ENGINE_OPTION_KEYS } from "../keys.js";
import type { Criterion, Engine, EngineOptions, ScoreResult } from "../types.js";
import { checkKeys } from "../validate.js";
import { type Judge, JudgeTimeout, type Rule, type RuleSet, labelsJudge, rulesFromRubric, rulesJudge, runJudge } from "./judges.js";
import { type LlmJudge, type LlmJudgeOptions, llmJudge } from "../judge/llm/index.js";
import { AssembledRewards, GROUPING_DEFAULTS, type HeldRow, type MakeAssembler, type RowAnswer, gatherByKey, renderAssemblyMetrics } from "./grouping.js";
import { Metrics, type RunGauge } from "./metrics.js";
import { type Batch, type ParseContext, parseRewardBody, parseRun, parseScoreBody } from "./parse.js";
import { HttpError, PROBLEM_TYPES, bad, problem, problemBody } from "./problem.js";
import { MemoryStore, type StateStore, StoreUnavailableError } from "./store.js";
import { type KeyEntry, KeyWindow, decodeRunRecord, hex, keyEntry } from "./window.js";

export { decodeRunRecord } from "./window.js";

/** A rubric criterion as the service reads it: the engine's fields plus an optional rule for the `rules` judge. */
export interface ServiceCriterion extends Criterion {
  rule?: Rule | readonly Rule[];
}

export interface HandlerOptions extends Omit<EngineOptions, "rubric"> {
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
  /** Most queued requests of one run applied per state write. Default 256. */
  maxBatch?: number;
  /** Run used when a request names none. Default "default". */
  defaultRun?: string;
  /** Runs whose engines stay in memory (others are reloaded from the store). Default 1024. */
  maxCachedRuns?: number;
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
  /** Where judge failures are logged (rate-limited). Default: console.error (stderr). */
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

interface Reply {
  status: number;
  body: string;
  replayed?: boolean;
}

type Render = (result: ScoreResult, seq: number | undefined) => unknown;

interface Item {
  batch: Batch;
  render: Render;
  keyHash: string | undefined;
  bodyHash: string;
  resolve(reply: Reply): void;
  reject(err: unknown): void;
  /** For PUT state: a snapshot to restore instead of a score. */
  restore?: { bytes: Uint8Array; ifMatch: number | undefined };
}

interface RunSlot {
  run: string;
  engine: Engine | undefined;
  loaded: boolean;
  version: number;
  seq: number;
  snapshot: Uint8Array | undefined;
  /** Idempotency window: committed key hashes and the batches holding their answers. */
  window: KeyWindow;
  queue: Item[];
  running: Promise<void> | undefined;
  weights: Float32Array | undefined;
  saturation: Float32Array | undefined;
}

const JSON_HEADERS = { "content-type": "application/json" };
const enc = new TextEncoder();
const dec = new TextDecoder();

async function sha256hex(data: Uint8Array | string, bytes: number): Promise<string> {
  const input = typeof data === "string" ? enc.encode(data) : data;
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", input as Uint8Array<ArrayBuffer>));
  return hex(d.subarray(0, bytes));
}

function randomId(): string {
  return hex(crypto.getRandomValues(new Uint8Array(8)));
}

const runKey = (run: string) => `run/${run}`;
const respKey = (run: string, batch: string) => `resp/${run}/${batch}`;

function arr(a: ArrayLike<number>): (number | null)[] {
  const out = new Array<number | null>(a.length);
  for (let i = 0; i < a.length; i++) {
    const v = a[i]!;
    out[i] = Number.isFinite(v) ? v : null;
  }
  return out;
}

function byCriterion(criteria: readonly string[], a: ArrayLike<number>, offset = 0): Record<string, number | null> {
  const o: Record<string, number | null> = {};
  for (let k = 0; k < criteria.length; k++) {
    const v = a[offset + k]!;
    o[criteria[k]!] = Number.isFinite(v) ? v : null;
  }
  return o;
}

function cleanMetrics(m: Record<string, number>): Record<string, number | null> {
  const o: Record<string, number | null> = {};
  for (const k in m) o[k] = Number.isFinite(m[k]!) ? m[k]! : null;
  return o;
}

/** Route names used as the metrics' `route` label. */
function routeOf(path: string): { route: string; run?: string } {
  if (path === "/v1/score" || path === "/get_reward" || path === "/healthz" || path === "/metrics") return { route: path };
  const m = /^\/v1\/runs\/([^/]+)\/state$/.exec(path);
  if (m) {
    let run: string;
    try {
      run = decodeURIComponent(m[1]!);
    } catch {
      run = m[1]!;
    }
    return { route: "/v1/runs/:run/state", run };
  }
  return { route: "other" };
}

const KNOWN_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]);

const METHODS: Record<string, string[]> = {
  "/v1/score": ["POST"],
  "/get_reward": ["POST"],
  "/healthz": ["GET"],
  "/metrics": ["GET"],
  "/v1/runs/:run/state": ["GET", "PUT"],
};

async function readBody(request: Request, limit: number): Promise<Uint8Array> {
  const tooLarge = () => new HttpError(413, `request body larger than ${limit} bytes`, "body");
  const cl = request.headers.get("content-length");
  if (cl !== null && Number(cl) > limit) throw tooLarge();
  if (!request.body) return new Uint8Array(0);
  if (cl !== null) {
    const buf = new Uint8Array(await request.arrayBuffer());
    if (buf.length > limit) throw tooLarge();
    return buf;
  }
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

function parseJson(bytes: Uint8Array): unknown {
  if (bytes.length === 0) throw bad("body", "empty; expected a JSON object");
  try {
    return JSON.parse(dec.decode(bytes));
  } catch (e) {
    throw bad("body", `malformed JSON (${(e as Error).message})`);
  }
}

function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function unbase64(s: string): Uint8Array {
  const b = atob(s);
  const out = new Uint8Array(b.length);
  for (let i = 0; i < b.length; i++) out[i] = b.charCodeAt(i);
  return out;
}

/** createHandler's own options; the rest are the engine's (src/keys.ts). */
const HANDLER_KEYS = [
  "rubric", "createEngine", "store", "judge", "rules", "llm", "judgeTimeoutMs", "judgeConcurrency", "maxBodyBytes",
  "idempotencyWindow", "maxBatch", "defaultRun", "maxCachedRuns", "log", "stepped",
  "groupSize", "groupWaitMs", "maxHeldRows", "maxHeldGroups", "makeAssembler", "rewardOutput",
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
    maxBatch = 256,
    defaultRun = "default",
    maxCachedRuns = 1024,
    log: _log,
    stepped = false,
    groupSize,
    groupWaitMs = GROUPING_DEFAULTS.waitMs,
    maxHeldRows = GROUPING_DEFAULTS.maxHeldRows,
    maxHeldGroups = GROUPING_DEFAULTS.maxHeldGroups,
    makeAssembler,
    rewardOutput = "reward",
    ...engineRest
  } = options;
  const store: StateStore = storeOption ?? new MemoryStore();
  for (const [name, v, min] of [
    ["judgeTimeoutMs", judgeTimeoutMs, 1],
    ["judgeConcurrency", judgeConcurrency, 1],
    ["maxBodyBytes", maxBodyBytes, 1],
    ["idempotencyWindow", idempotencyWindow, 0],
    ["maxBatch", maxBatch, 1],
    ["maxCachedRuns", maxCachedRuns, 1],
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

  // Judge failures on stderr, at most one line per run and criterion every 10 s (with how many were not shown).
  const logged = new Map<string, { at: number; hidden: number }>();
  const logFailure = (run: string, criterion: string, reason: string) => {
    const key = `${run}\u0000${criterion}`;
    const now = Date.now();
    const last = logged.get(key);
    if (last && now - last.at < 10_000) {
      last.hidden++;
      return;
    }
    const more = last?.hidden ? ` (${last.hidden} more since the last line)` : "";
    logged.set(key, { at: now, hidden: 0 });
    if (logged.size > 4096) logged.delete(logged.keys().next().value!);
    (options.log ?? ((l: string) => console.error(l)))(`focal-reward: judge failure: run=${run} criterion=${criterion} reason=${reason}${more}`);
  };

  let template: Engine;
  let ctx: ParseContext;
  let stream = false;
  const ready = (async () => {
    template = await createEngine(engineOptions);
    stream = template.scope === "stream";
    if (stepped && !stream) throw new RangeError(`createHandler: stepped needs scope "stream", not "${template.scope}"`);
    const criteria = template.criteria;
    const byId = new Map(serviceCriteria.map((c) => [c.id, c] as const));
    ctx = {
      criteria,
      index: new Map(criteria.map((c, k) => [c, k] as const)),
      baseWeights: criteria.map((c) => Math.abs(byId.get(c)?.weight ?? 1)),
      defaultRun,
    };
  })();
  ready.catch(() => {}); // surfaced through `ready` and as 500s

  const grouping = groupSize === undefined ? undefined
    : new AssembledRewards({ groupSize, waitMs: groupWaitMs, maxHeldRows, maxHeldGroups }, (run, step, rows) => scoreAssembled(run, step, rows), makeAssembler);
  const runs = new Map<string, RunSlot>();
  let closing = false;
  let inflight = 0;
  let idle: (() => void) | undefined;

  function slotOf(run: string): RunSlot {
    let s = runs.get(run);
    if (s) {
      runs.delete(run); // LRU order: most recent last
      runs.set(run, s);
      return s;
    }
    s = {
      run,
      engine: undefined,
      loaded: false,
      version: 0,
      seq: 0,
      snapshot: undefined,
      window: new KeyWindow(),
      queue: [],
      running: undefined,
      weights: undefined,
      saturation: undefined,
    };
    runs.set(run, s);
    if (runs.size > maxCachedRuns) {
      for (const [name, other] of runs) {
        if (runs.size <= maxCachedRuns) break;
        if (other !== s && !other.running && other.queue.length === 0) runs.delete(name);
      }
    }
    return s;
  }

  async function load(slot: RunSlot): Promise<void> {
    // Each result is rendered before the run scores again: reused outputs cost no allocation.
    slot.engine ??= await createEngine({ ...engineOptions, reuseOutputs: true });
    const rec = await store.get(runKey(slot.run));
    if (!rec) {
      slot.engine.reset();
      Object.assign(slot, { version: 0, seq: 0, snapshot: undefined, window: new KeyWindow() });
    } else {
      const r = decodeRunRecord(rec.value);
      slot.engine.restore(r.snapshot);
      Object.assign(slot, { version: rec.version, seq: r.seq, snapshot: r.snapshot, window: r.window });
    }
    slot.loaded = true;
  }

  function scoreWith(engine: Engine, b: Batch): ScoreResult {
    const opts: { valid?: Uint8Array; weights?: Float64Array; step?: number } = {};
    if (b.valid) opts.valid = b.valid;
    if (b.weights) opts.weights = b.weights;
    if (stepped) opts.step = b.step;
    return engine.score(b.scores, b.groupSizes, opts);
  }

  function engineError(e: unknown): Reply {
    if (e instanceof HttpError) return { status: e.status, body: problemBody(e.status, e.message, e.field, e.reason) };
    // By name: the engine may come from another copy of the package (a bundle, a worker).
    if (e instanceof Error && e.name === "StepConflictError") return { status: 409, body: problemBody(409, e.message, "step") };
    return { status: 400, body: problemBody(400, `rejected by the engine: ${e instanceof Error ? e.message : String(e)}`, "body") };
  }

  async function replayStored(slot: RunSlot, item: Item, batchId: string): Promise<Reply> {
    const rec = await store.get(respKey(slot.run, batchId));
    const entry = rec && (JSON.parse(dec.decode(rec.value)) as Record<string, { b: string; body: string }>)[item.keyHash!];
    if (!entry) {
      return { status: 409, body: problemBody(409, "this Idempotency-Key was applied, but its response is no longer stored", "Idempotency-Key") };
    }
    if (entry.b !== item.bodyHash) return mismatch();
    metrics.replay();
    return { status: 200, body: entry.body, replayed: true };
  }

  const mismatch = (): Reply => ({
    status: 422,
    body: problemBody(422, "this Idempotency-Key was used with a different request body", "Idempotency-Key"),
  });

  /** Apply a drained batch in order and commit it with one compare-and-set write. */
  async function processBatch(slot: RunSlot, items: Item[]): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      if (!slot.loaded) await load(slot);
      const engine = slot.engine!;
      const replies: (Reply | Promise<Reply> | number)[] = new Array(items.length);
      const pending = new Map<string, number>();
      const newKeys: string[] = [];
      const stored: Record<string, { b: string; body: string }> = {};
      let applied = 0;
      let restored: { bytes: Uint8Array } | undefined;
      let last: { weights: Float32Array; saturation: Float32Array } | undefined;
      for (let i = 0; i < items.length; i++) {
        const item = items[i]!;
        if (item.restore) {
          if (item.restore.ifMatch !== undefined && (item.restore.ifMatch !== slot.version || applied > 0 || restored)) {
            replies[i] = { status: 412, body: problemBody(412, `run state is at version ${slot.version}`, "If-Match") };
            continue;
          }
          engine.restore(item.restore.bytes); // validated before queuing
          restored = { bytes: item.restore.bytes }; // a restore changes the state but is no update: seq stays
          replies[i] = -1; // filled after commit
          continue;
        }
        const h = item.keyHash;
        if (h !== undefined) {
          const j = pending.get(h);
          if (j !== undefined) {
            replies[i] = items[j]!.bodyHash === item.bodyHash ? j : mismatch();
            continue;
          }
          const committed = slot.window.batchOf(h);
          if (committed !== undefined) {
            replies[i] = replayStored(slot, item, committed);
            continue;
          }
        }
        let result: ScoreResult;
        try {
          result = scoreWith(engine, item.batch);
        } catch (e) {
          replies[i] = engineError(e);
          continue;
        }
        applied++;
        const body = JSON.stringify(item.render(result, slot.seq + applied));
        replies[i] = { status: 200, body };
        // copies: outputs may be views into the engine's memory
        last = { weights: result.weights.slice(0, ctx.criteria.length), saturation: result.saturation.slice(0, ctx.criteria.length) };
        if (h !== undefined) {
          pending.set(h, i);
          newKeys.push(h);
          stored[h] = { b: item.bodyHash, body };
        }
      }
      if (applied > 0 || restored) {
        const snapshot = engine.snapshot();
        const batchId = randomId();
        const added: KeyEntry[] = newKeys.map((h) => keyEntry(h, batchId));
        const { drop, freed } = slot.window.plan(added, idempotencyWindow);
        let version: number | undefined;
        try {
          if (newKeys.length) await store.put(respKey(slot.run, batchId), enc.encode(JSON.stringify(stored)));
          version = await store.put(runKey(slot.run), slot.window.encode(slot.seq + applied, added, drop, snapshot), slot.version);
        } catch (e) {
          // Nothing of this batch is acknowledged: reload the engine from the store, fail what was applied.
          slot.loaded = false;
          const err = e instanceof StoreUnavailableError ? e
            : new HttpError(503, `state store write failed: ${e instanceof Error ? e.message : String(e)}`, undefined, { "retry-after": "1" });
          for (let i = 0; i < items.length; i++) {
            const r = replies[i]!;
            if (r instanceof Promise) r.then(items[i]!.resolve, items[i]!.reject);
            else if (typeof r === "number" || r.status === 200) items[i]!.reject(err);
            else items[i]!.resolve(r);
          }
          return;
        }
        if (version === undefined) {
          // Another writer moved this run: reload its state and apply the whole batch again.
          metrics.commit(true);
          slot.loaded = false;
          for (const r of replies) if (r instanceof Promise) r.catch(() => {});
          if (newKeys.length) void store.delete(respKey(slot.run, batchId)).catch(() => {});
          if (attempt >= 16) {
            const err = new HttpError(503, "run state kept changing under this request (compare-and-set conflicts)", undefined, { "retry-after": "1" });
            for (const it of items) it.reject(err);
            return;
          }
          // Replicas racing for one run would collide again at once: back off up to 2^attempt ms (at most 256), jittered.
          await new Promise((r) => setTimeout(r, Math.random() * 2 ** Math.min(attempt + 1, 8)));
          continue;
        }
        metrics.commit(false);
        slot.window.apply(added, drop);
        Object.assign(slot, { version, seq: slot.seq + applied, snapshot });
        if (last) {
          slot.weights = last.weights;
          slot.saturation = last.saturation;
        } else if (restored) {
          slot.weights = undefined;
          slot.saturation = undefined;
        }
        for (const b of freed) void store.delete(respKey(slot.run, b)).catch(() => {});
      }
      for (let i = 0; i < items.length; i++) {
        const r = replies[i]!;
        if (r === -1) {
          items[i]!.resolve({ status: 200, body: JSON.stringify({ run: slot.run, version: slot.version, seq: slot.seq }) });
        } else if (typeof r === "number") {
          const first = replies[r] as Reply;
          items[i]!.resolve({ ...first, replayed: true });
          metrics.replay();
        } else if (r instanceof Promise) r.then(items[i]!.resolve, items[i]!.reject);
        else items[i]!.resolve(r);
      }
      return;
    }
  }

  function enqueue(slot: RunSlot, item: Omit<Item, "resolve" | "reject">): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => {
      slot.queue.push({ ...item, resolve, reject });
      if (!slot.running) {
        slot.running = (async () => {
          try {
            while (slot.queue.length) {
              const items = slot.queue.splice(0, maxBatch);
              try {
                await processBatch(slot, items);
              } catch (e) {
                slot.loaded = false;
                for (const it of items) it.reject(e);
              }
            }
          } finally {
            slot.running = undefined;
          }
        })();
      }
    });
  }

  async function score(batch: Batch, render: Render, request: Request, bodyBytes: Uint8Array): Promise<Reply> {
    if (!stream) {
      try {
        return { status: 200, body: JSON.stringify(render(scoreWith(template, batch), undefined)) };
      } catch (e) {
        return engineError(e);
      }
    }
    if (batch.weights) throw bad(batch.groupIds ? "groups[].weights" : "weights", "instance weights need the group scope");
    if (stepped && batch.step === undefined) throw bad("step", "required: this server is step-keyed (stepped); send the training step in the body or as ?step=");
    const key = request.headers.get("idempotency-key");
    let keyHash: string | undefined;
    if (key !== null && idempotencyWindow > 0) {
      if (key.length === 0 || key.length > 255) throw bad("Idempotency-Key", "1-255 characters");
      keyHash = await sha256hex(`${batch.run}\u0000${key}`, 8);
    }
    const bodyHash = keyHash === undefined ? "" : await sha256hex(bodyBytes, 16);
    return enqueue(slotOf(batch.run), { batch, render, keyHash, bodyHash });
  }

  function renderScore(batch: Batch): Render {
    const criteria = ctx.criteria;
    return (r, seq) => {
      const K = criteria.length;
      const G = batch.groupSizes.length;
      const perGroup = !stream;
      const out: Record<string, unknown> = { run: batch.run };
      if (batch.step !== undefined) out.step = batch.step;
      if (seq !== undefined) out.seq = seq;
      if (batch.groupIds) out.groups = batch.groupIds;
      out.criteria = criteria;
      out.rewards = arr(r.rewards);
      out.direct = arr(r.direct);
      out.advantages = arr(r.advantages);
      out.weights = perGroup && r.weights.length >= G * K && G > 0
        ? Array.from({ length: G }, (_, g) => byCriterion(criteria, r.weights, g * K))
        : byCriterion(criteria, r.weights);
      out.saturation = perGroup && r.saturation.length >= G * K && G > 0
        ? Array.from({ length: G }, (_, g) => byCriterion(criteria, r.saturation, g * K))
        : byCriterion(criteria, r.saturation);
      out.metrics = cleanMetrics(r.metrics);
      return out;
    };
  }

  async function handleScore(request: Request): Promise<Reply> {
    const bytes = await readBody(request, maxBodyBytes);
    const batch = parseScoreBody(parseJson(bytes), ctx, new URL(request.url).searchParams.get("step"));
    return score(batch, renderScore(batch), request, bytes);
  }

  async function handleReward(request: Request, url: URL): Promise<Reply> {
    const bytes = await readBody(request, maxBodyBytes);
    const req = parseRewardBody(parseJson(bytes), url.searchParams.get("run"), defaultRun, url.searchParams.get("step"));
    // OpenRLHF with several reward URLs shards one sample: the other servers get {"query": []}.
    if (req.query.length === 0) return { status: 200, body: JSON.stringify({ rewards: [], scores: [], extra_logs: {} }) };
    if (advantageOnly !== undefined && rewardOutput === "reward") {
      throw new HttpError(400, `${advantageOnly} acts only on the advantages, which /get_reward does not return as rewards: start serve with --reward-output advantage (and switch the trainer's own advantage normalization off), or use /v1/score`, "method");
    }
    if (judgeOption === "labels" && req.labels === undefined) {
      throw bad(req.slime ? "label" : "labels", `required by the labels judge (${req.slime ? "a JSON object of scores" : "one JSON object of scores per query"})`);
    }
    // Group assembly (--group-size) holds rows across requests; explicit groupSizes are whole groups already.
    const assembling = grouping !== undefined && req.groupSizes === undefined;
    if (assembling) {
      if (request.headers.get("idempotency-key") !== null) {
        throw bad("Idempotency-Key", "not taken with group assembly (--group-size): a row is scored with other requests' rows, so a retry cannot be answered alone");
      }
      if (req.keys === undefined) throw bad("prompts", "group assembly (--group-size) needs a group key per row: prompts, group_ids or group");
      if (stepped && req.step === undefined) throw bad("step", "required: this server is step-keyed (stepped); send the training step in the body or as ?step=");
    }
    const n = req.query.length;
    const K = ctx.criteria.length;
    const scores = new Float32Array(n * K).fill(NaN);
    const valid = new Uint8Array(n).fill(1);
    let failures = 0;
    const failuresByStatus: Record<string, number> = {};
    let firstError: string | undefined;
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < n; i = next++) {
        let ok = false;
        try {
          const out = await runJudge(judge, [req.query[i]!, req.prompts[i]!, req.labels?.[i]], i, ctx.criteria, judgeTimeoutMs);
          if (out === null || typeof out !== "object") throw new TypeError("judge answered no object");
          const row = new Float32Array(K).fill(NaN);
          for (const c in out) {
            const k = ctx.index.get(c);
            const v = out[c];
            if (k === undefined) throw new TypeError(`judge scored unknown criterion '${c}'`);
            if (v === null || v === undefined) continue;
            if (typeof v !== "number" || !Number.isFinite(v)) throw new TypeError(`judge gave '${c}' a non-finite score`);
            row[k] = v;
          }
          scores.set(row, i * K);
          ok = true;
        } catch (e) {
          const own = (e as { reason?: unknown; status?: unknown } | null) ?? {};
          const reason = e instanceof JudgeTimeout ? "timeout" : own.reason === "timeout" || own.reason === "invalid" || own.reason === "error" ? own.reason : e instanceof TypeError ? "invalid" : "error";
          metrics.judgeFailure(reason);
          const status = typeof own.status === "string" ? own.status : reason;
          failuresByStatus[status] = (failuresByStatus[status] ?? 0) + 1;
          const message = e instanceof Error ? e.message : String(e);
          firstError ??= message;
          const criterion = /criterion '([^']*)'|gave '([^']*)'/.exec(message);
          logFailure(req.run, criterion?.[1] ?? criterion?.[2] ?? "*", `${reason}: ${message}`);
        }
        if (!ok) {
          valid[i] = 0;
          failures++;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(judgeConcurrency, n) }, worker));
    // Every rollout failed: no reward to give. 502 so the trainer's client retries and its user sees why.
    if (failures === n) return { status: 502, body: problemBody(502, `the judge failed on all ${n} rollouts; first error: ${firstError}`, "labels") };
    // OpenRLHF turns every value into torch.tensor([value]): finite numbers only, no null.
    const failureLogs: Record<string, number> = { judge_failures: failures };
    for (const status in failuresByStatus) failureLogs[`judge_failures/${status}`] = failuresByStatus[status]!;
    if (assembling) {
      const keys = req.keys!;
      const items = keys.map((key, i) => ({ key, row: { scores: scores.slice(i * K, i * K + K), valid: valid[i]!, text: req.query[i]!, step: req.step } }));
      const answers = await grouping!.submit(req.run, items);
      return { status: 200, body: JSON.stringify(rewardReply(req.slime, answers, failureLogs)) };
    }
    // One call for the request: rows gathered by key over the whole request (or as sized by the client).
    const gathered = req.groupSizes !== undefined ? { order: Int32Array.from({ length: n }, (_, i) => i), sizes: req.groupSizes }
      : gatherByKey(req.keys ?? req.query.map((_, i) => `\u0000${i}`));
    const grouped = new Float32Array(n * K), groupedValid = new Uint8Array(n);
    gathered.order.forEach((i, j) => {
      grouped.set(scores.subarray(i * K, i * K + K), j * K);
      groupedValid[j] = valid[i]!;
    });
    const batch: Batch = { run: req.run, step: req.step, scores: grouped, groupSizes: gathered.sizes, valid: groupedValid, weights: undefined, groupIds: undefined };
    const render: Render = (r, seq) => {
      const logs = rewardLogs(r, seq);
      const answers: RowAnswer[] = new Array(n);
      gathered.order.forEach((i, j) => {
        answers[i] = { reward: r.rewards[j]!, direct: Number.isFinite(r.direct[j]!) ? r.direct[j]! : null, advantage: r.advantages[j]!, logs };
      });
      return rewardReply(req.slime, answers, failureLogs);
    };
    return score(batch, render, request, bytes);
  }

  /** `extra_logs` of a call: finite numbers only (OpenRLHF turns every value into torch.tensor([value])). */
  function rewardLogs(r: ScoreResult, seq: number | undefined): Record<string, number> {
    const criteria = ctx.criteria;
    const extra: Record<string, number> = {};
    for (const key in r.metrics) if (Number.isFinite(r.metrics[key]!)) extra[key] = r.metrics[key]!;
    for (let k = 0; k < criteria.length; k++) {
      const w = r.weights[k];
      if (stream && w !== undefined && Number.isFinite(w)) extra[`focal/${criteria[k]}/weight`] = w;
    }
    if (seq !== undefined) extra.seq = seq;
    return extra;
  }

  /** The reply of /get_reward: OpenRLHF's lists, or slime's one-sample object with `reward`. */
  function rewardReply(slime: boolean, answers: readonly RowAnswer[], failureLogs: Record<string, number>): unknown {
    const out = (a: RowAnswer) => (rewardOutput === "advantage" ? a.advantage : a.reward);
    const extra_logs = { ...failureLogs, ...answers[0]?.logs };
    if (slime) {
      const a = answers[0]!;
      return { reward: out(a), direct: a.direct, advantage: a.advantage, extra_logs };
    }
    // An invalid rollout's direct reward is reported as 0 in `scores` (lists of numbers); its reward is its group's mean.
    return { rewards: answers.map(out), scores: answers.map((a) => a.direct ?? 0), extra_logs };
  }

  /** Scores one assembled group (one engine call), on the run's state or the shared engine. */
  async function scoreAssembled(run: string, step: number | undefined, rows: readonly HeldRow[]): Promise<RowAnswer[]> {
    const K = ctx.criteria.length, m = rows.length;
    const scores = new Float32Array(m * K), valid = new Uint8Array(m);
    rows.forEach((row, i) => {
      scores.set(row.scores, i * K);
      valid[i] = row.valid;
    });
    const batch: Batch = { run, step, scores, groupSizes: [m], valid, weights: undefined, groupIds: undefined };
    // The answers travel as JSON like any reply (float32 values are exact in it).
    const render: Render = (r, seq) => ({ rewards: arr(r.rewards), direct: arr(r.direct), advantages: arr(r.advantages), logs: rewardLogs(r, seq) });
    let reply: Reply;
    if (!stream) {
      try {
        reply = { status: 200, body: JSON.stringify(render(scoreWith(template, batch), undefined)) };
      } catch (e) {
        reply = engineError(e);
      }
    } else if (stepped && step === undefined) {
      reply = engineError(bad("step", "required: this server is step-keyed (stepped); send the training step in the body or as ?step="));
    } else {
      reply = await enqueue(slotOf(run), { batch, render, keyHash: undefined, bodyHash: "" });
    }
    const out = JSON.parse(reply.body) as { rewards: number[]; direct: (number | null)[]; advantages: number[]; logs: Record<string, number>; detail?: string; field?: string };
    if (reply.status !== 200) throw new HttpError(reply.status, out.detail ?? "the group could not be scored", out.field);
    return rows.map((_, i) => ({ reward: out.rewards[i] ?? 0, direct: out.direct[i] ?? null, advantage: out.advantages[i] ?? 0, logs: { ...out.logs } }));
  }

  async function handleState(request: Request, run: string): Promise<Response> {
    run = parseRun(run, "run", defaultRun);
    if (!stream) throw new HttpError(404, "the group scope keeps no run state", "run");
    const slot = slotOf(run);
    if (request.method === "GET") {
      // The last committed state; read from the store (without touching the slot) when not cached.
      let view: { version: number; seq: number; snapshot: Uint8Array | undefined };
      if (slot.loaded) view = { version: slot.version, seq: slot.seq, snapshot: slot.snapshot };
      else {
        const rec = await store.get(runKey(run));
        view = rec ? { version: rec.version, ...decodeRunRecord(rec.value) } : { version: 0, seq: 0, snapshot: undefined };
      }
      if (view.version === 0 || !view.snapshot) throw new HttpError(404, `run '${run}' has no state yet`, "run");
      const headers = { etag: `"${view.version}"`, "x-focal-seq": String(view.seq) };
      if ((request.headers.get("accept") ?? "").includes("application/json")) {
        const body = {
          run,
          version: view.version,
          seq: view.seq,
          criteria: ctx.criteria,
          saturation: slot.loaded && slot.saturation ? byCriterion(ctx.criteria, slot.saturation) : null,
          weights: slot.loaded && slot.weights ? byCriterion(ctx.criteria, slot.weights) : null,
          snapshot: base64(view.snapshot),
        };
        return new Response(JSON.stringify(body), { headers: { ...JSON_HEADERS, ...headers } });
      }
      return new Response(view.snapshot.slice(), { headers: { "content-type": "application/octet-stream", ...headers } });
    }
    // PUT: restore a snapshot, as raw bytes or {"snapshot": base64}.
    const raw = await readBody(request, maxBodyBytes);
    let bytes = raw;
    if ((request.headers.get("content-type") ?? "").includes("json")) {
      const body = parseJson(raw) as { snapshot?: unknown };
      if (body === null || typeof body !== "object" || typeof body.snapshot !== "string") throw bad("snapshot", "a base64 string");
      try {
        bytes = unbase64(body.snapshot);
      } catch {
        throw bad("snapshot", "not valid base64");
      }
    }
    if (bytes.length === 0) throw bad("body", "empty; expected a state snapshot");
    const scratch = await createEngine(engineOptions);
    try {
      scratch.restore(bytes);
    } catch (e) {
      throw bad("body", `not a valid snapshot for this rubric (${e instanceof Error ? e.message : String(e)})`);
    }
    let ifMatch: number | undefined;
    const im = request.headers.get("if-match");
    if (im !== null) {
      const m = /^"?(\d+)"?$/.exec(im.trim());
      if (!m) throw bad("If-Match", 'an ETag from GET, e.g. "12"');
      ifMatch = Number(m[1]);
    }
    const reply = await enqueue(slot, {
      batch: undefined as unknown as Batch,
      render: () => null,
      keyHash: undefined,
      bodyHash: "",
      restore: { bytes, ifMatch },
    });
    return new Response(reply.body, { status: reply.status, headers: reply.status === 200 ? JSON_HEADERS : { "content-type": "application/problem+json" } });
  }

  function gauges(): RunGauge[] {
    const out: RunGauge[] = [];
    for (const s of runs.values()) {
      if (s.version > 0) out.push({ run: s.run, criteria: ctx.criteria, weights: s.weights, saturation: s.saturation, updates: s.seq });
    }
    return out;
  }

  async function route(request: Request, url: URL, route: string, run: string | undefined): Promise<{ response: Response; route: string }> {
    const methods = METHODS[route];
    if (!methods) return { route, response: problem(404, `no route ${url.pathname}`) };
    const allowed = methods.includes("GET") ? [...methods, "HEAD"] : methods;
    if (request.method === "HEAD" && allowed.includes("HEAD")) {
      // HEAD is GET without the body.
      const { response } = await answer(new Request(request, { method: "GET" }), url, route, run);
      return { route, response: new Response(null, { status: response.status, headers: response.headers }) };
    }
    if (!allowed.includes(request.method)) {
      return { route, response: problem(405, `${request.method} is not allowed on ${route}`, undefined, { allow: allowed.join(", ") }) };
    }
    return answer(request, url, route, run);
  }

  async function answer(request: Request, url: URL, route: string, run: string | undefined): Promise<{ response: Response; route: string }> {
    if (route === "/healthz") {
      const body = { status: closing ? "closing" : "ok", scope: stream ? "stream" : "group", stepped, backend: template.backend, criteria: ctx.criteria };
      return { route, response: new Response(JSON.stringify(body), { status: closing ? 503 : 200, headers: JSON_HEADERS }) };
    }
    if (route === "/metrics") {
      const text = metrics.render(gauges()) + (llm?.metrics() ?? "") + (grouping ? renderAssemblyMetrics(grouping.stats()) : "");
      return { route, response: new Response(text, { headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" } }) };
    }
    if (route === "/v1/runs/:run/state") return { route, response: await handleState(request, run!) };
    const reply = route === "/v1/score" ? await handleScore(request) : await handleReward(request, url);
    const headers: Record<string, string> = { "content-type": reply.status < 300 ? "application/json" : "application/problem+json" };
    if (reply.replayed) headers["idempotent-replayed"] = "true";
    return { route, response: new Response(reply.body, { status: reply.status, headers }) };
  }

  const handler = async (request: Request): Promise<Response> => {
    const t0 = performance.now();
    let response: Response;
    const url = new URL(request.url);
    const { route: routeName, run } = routeOf(url.pathname);
    inflight++;
    try {
      if (closing) {
        response = problem(503, "server is shutting down", undefined, { "retry-after": "1", connection: "close" });
      } else {
        try {
          await ready;
        } catch (e) {
          throw new HttpError(500, `engine failed to load: ${e instanceof Error ? e.message : String(e)}`);
        }
        ({ response } = await route(request, url, routeName, run));
      }
    } catch (e) {
      if (e instanceof HttpError) response = problem(e.status, e.message, e.field, e.headers, e.reason);
      else if (e instanceof StoreUnavailableError) response = storeProblem(e);
      else response = problem(500, e instanceof Error ? e.message : String(e));
    } finally {
      inflight--;
      if (inflight === 0 && idle) idle();
    }
    const method = KNOWN_METHODS.has(request.method) ? request.method : "other";
    metrics.request(routeName, method, response.status, (performance.now() - t0) / 1000);
    return response;
  };

  async function close(): Promise<void> {
    closing = true;
    // Held rows are scored now, as their groups stand, so their requests can finish.
    await grouping?.flush();
    if (inflight > 0) await new Promise<void>((r) => (idle = r));
    await Promise.allSettled([...runs.values()].map((s) => s.running));
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
