/**
 * The service's routes: each parses its request (parse.ts, body.ts), calls the run ledger (or the
 * shared engine of the group scope) and renders the outcome (render.ts; problem.ts for errors).
 * Errors are thrown as HttpError (input, 4xx) or StoreUnavailableError; anything else is a bug,
 * answered 500 by the handler.
 */
import type { Engine, ScoreResult } from "../types.js";
import type { LlmJudge } from "../judge/llm/index.js";
import { base64, parseJson, readBody, unbase64 } from "./body.js";
import { type AssembledRewards, type HeldRow, type RowAnswer, gatherByKey, renderAssemblyMetrics } from "./grouping.js";
import type { Judged } from "./judging.js";
import { CorruptRunError, type Idempotency, type RemoveOutcome, type RestoreOutcome, type RunLedger, type ScoreOutcome } from "./ledger.js";
import type { Metrics } from "./metrics.js";
import { type Batch, type ParseContext, type RewardRequest, parseRewardBody, parseRun, parseScoreBody } from "./parse.js";
import { HttpError, PROBLEM_TYPES, bad } from "./problem.js";
import { arr, byCriterion, renderScore, rewardLogs, rewardReply } from "./render.js";
import { StoreUnavailableError } from "./store.js";

/** What the routes need of a started service (handler.ts makes it once the engine loaded). */
export interface Service {
  ctx: ParseContext;
  /** The engine of the group scope (no run state). */
  template: Engine;
  stream: boolean;
  stepped: boolean;
  ledger: RunLedger;
  grouping: AssembledRewards | undefined;
  metrics: Metrics;
  /** Every scored call's metrics, for the out-of-scale count and its log line. */
  scored(run: string, metrics: Record<string, number>): void;
  llm: LlmJudge | undefined;
  judgeRows(req: RewardRequest): Promise<Judged>;
  maxBodyBytes: number;
  idempotencyWindow: number;
  defaultRun: string;
  rewardOutput: "reward" | "advantage";
  /** The labels judge needs labels. */
  needsLabels: boolean;
  /** Why /get_reward cannot answer rewards with this method (it acts on advantages only), if so. */
  advantageOnly: string | undefined;
  closing(): boolean;
}

export interface RouteRequest {
  request: Request;
  url: URL;
  /** `:run` of the path. */
  run: string | undefined;
}

export interface Route {
  /** The `route` label of the metrics. */
  name: string;
  methods: readonly string[];
  handle(s: Service, r: RouteRequest): Promise<Response>;
}

const JSON_HEADERS = { "content-type": "application/json" };
const STEP_REQUIRED = "required: this server is step-keyed (stepped); send the training step in the body or as ?step=";

/** A scored batch: a ledger outcome (stream scope) or the shared engine's answer (group scope). */
type Scored = ScoreOutcome | { kind: "stateless"; body: string };

/** An engine refusal: the engine validates what the routes passed it, so its RangeErrors are the request's fault. */
function engineError(e: unknown): unknown {
  if (e instanceof HttpError) return e;
  // By name: the engine may come from another copy of the package (a bundle, a worker).
  if (e instanceof Error && e.name === "StepConflictError") return new HttpError(409, e.message, "step");
  if (e instanceof Error && e.name === "OutOfScaleError") return new HttpError(400, `rejected by the engine: ${e.message}`, "scores");
  if (e instanceof RangeError || (e instanceof Error && e.name === "RangeError")) return new HttpError(400, `rejected by the engine: ${e.message}`, "body");
  return e;
}

/** A run whose record cannot be used: 409, saying how to go on. */
function corrupt(run: string, reason: string): HttpError {
  const path = `/v1/runs/${encodeURIComponent(run)}`;
  return new HttpError(409, `run '${run}': ${reason}. To go on with this server: PUT ${path}/state a snapshot taken with its rubric (without If-Match) to replace the record, or DELETE ${path} to start the run afresh`, "run");
}

/** A stored answer that could not be read: 503 when the store may answer on a retry (an I/O error), else a 500 (logged). */
function unreadable(e: unknown): unknown {
  if (e instanceof StoreUnavailableError) return e;
  const message = e instanceof Error ? e.message : String(e);
  const what = "the stored answer of this Idempotency-Key could not be read";
  if (typeof (e as { code?: unknown } | null)?.code === "string") {
    return new HttpError(503, `${what} (${message}); nothing was applied again: retry`, undefined, { "retry-after": "1" }, undefined, PROBLEM_TYPES.storeUnavailable);
  }
  return new Error(`${what} (${message}); its update was applied once, earlier`, { cause: e });
}

/** The body of a successful outcome; throws the error of any other. */
function answerOf(o: Scored | RestoreOutcome | RemoveOutcome): { body: string; replayed: boolean } {
  switch (o.kind) {
    case "applied":
    case "stateless":
      return { body: o.body, replayed: false };
    case "replayed":
      return { body: o.body, replayed: true };
    case "restored":
      return { body: JSON.stringify({ run: o.run, version: o.version, seq: o.seq }), replayed: false };
    case "removed":
      if (!o.existed) throw new HttpError(404, `run '${o.run}' has no state`, "run");
      return { body: JSON.stringify({ run: o.run, deleted: true }), replayed: false };
    case "corrupt":
      throw corrupt(o.run, o.reason);
    case "keyReused":
      throw new HttpError(422, "this Idempotency-Key was used with a different request body", "Idempotency-Key");
    case "responseGone":
      throw new HttpError(409, "this Idempotency-Key was applied, but its response is not stored (it left the run's window, or was larger than the window's bytes)", "Idempotency-Key");
    case "preconditionFailed":
      throw new HttpError(412, `run state is at version ${o.version}`, "If-Match");
    case "invalidSnapshot": {
      const e = o.error;
      if (!(e instanceof RangeError || e instanceof TypeError)) throw e;
      throw bad("body", `not a valid snapshot for this rubric (${e.message})`);
    }
    case "rejected":
      throw engineError(o.error);
    case "conflict":
      throw new HttpError(503, "run state kept changing under this request (compare-and-set conflicts)", undefined, { "retry-after": "1" });
    case "storeFailed": {
      const e = o.error;
      if (o.during === "replay") throw unreadable(e);
      if (e instanceof StoreUnavailableError) throw e;
      if (o.during === "commit") throw new HttpError(503, `state store write failed: ${e instanceof Error ? e.message : String(e)}`, undefined, { "retry-after": "1" });
      throw e;
    }
  }
  throw new Error(`unknown outcome ${(o as { kind: string }).kind}`);
}

function reply(o: Scored | RestoreOutcome | RemoveOutcome): Response {
  const { body, replayed } = answerOf(o);
  const headers: Record<string, string> = { ...JSON_HEADERS };
  if (replayed) headers["idempotent-replayed"] = "true";
  return new Response(body, { status: 200, headers });
}

function scoreWith(s: Service, engine: Engine, b: Batch): ScoreResult {
  const opts: { valid?: Uint8Array; weights?: Float64Array; step?: number } = {};
  if (b.valid) opts.valid = b.valid;
  if (b.weights) opts.weights = b.weights;
  if (s.stepped) opts.step = b.step;
  const r = engine.score(b.scores, b.groupSizes, opts);
  s.scored(b.run, r.metrics);
  return r;
}

/** Score a batch: on its run's state (stream scope, through the ledger) or on the shared engine. */
async function scoreBatch(s: Service, batch: Batch, render: (r: ScoreResult, seq: number | undefined) => unknown, idempotency?: Idempotency): Promise<Scored> {
  if (!s.stream) {
    try {
      return { kind: "stateless", body: JSON.stringify(render(scoreWith(s, s.template, batch), undefined)) };
    } catch (error) {
      return { kind: "rejected", error };
    }
  }
  if (batch.weights) throw bad(batch.groupIds ? "groups[].weights" : "weights", "instance weights need the group scope");
  if (s.stepped && batch.step === undefined) throw bad("step", STEP_REQUIRED);
  return s.ledger.score(batch.run, {
    score: (engine) => scoreWith(s, engine, batch),
    render: (r, seq) => JSON.stringify(render(r, seq)),
    idempotency,
    cells: batch.scores.length,
  });
}

/** The request's Idempotency-Key with its body, when the service keeps keys; keys are scoped by route. */
function idempotencyOf(s: Service, route: string, request: Request, body: Uint8Array): Idempotency | undefined {
  const key = request.headers.get("idempotency-key");
  if (key === null || s.idempotencyWindow === 0) return undefined;
  if (key.length === 0 || key.length > 255) throw bad("Idempotency-Key", "1-255 characters");
  return { scope: route, key, body };
}

async function postScore(s: Service, { request, url }: RouteRequest): Promise<Response> {
  const bytes = await readBody(request, s.maxBodyBytes);
  const batch = parseScoreBody(parseJson(bytes), s.ctx, url.searchParams.get("step"));
  const perGroup = !s.stream;
  const idem = s.stream ? idempotencyOf(s, "/v1/score", request, bytes) : undefined;
  return reply(await scoreBatch(s, batch, (r, seq) => renderScore(s.ctx.criteria, perGroup, batch, r, seq), idem));
}

async function postReward(s: Service, { request, url }: RouteRequest): Promise<Response> {
  const bytes = await readBody(request, s.maxBodyBytes);
  const req = parseRewardBody(parseJson(bytes), url.searchParams.get("run"), s.defaultRun, url.searchParams.get("step"), s.ctx);
  // OpenRLHF with several reward URLs shards one sample: the other servers get {"query": []}.
  if (req.query.length === 0) return new Response(JSON.stringify({ rewards: [], scores: [], extra_logs: {} }), { headers: JSON_HEADERS });
  if (s.advantageOnly !== undefined && s.rewardOutput === "reward") {
    throw new HttpError(400, `${s.advantageOnly} acts only on the advantages, which /get_reward does not return as rewards: start serve with --reward-output advantage (and switch the trainer's own advantage normalization off), or use /v1/score`, "method");
  }
  if (s.needsLabels && req.labels === undefined) {
    throw bad(req.slime ? "label" : "labels", `required by the labels judge (${req.slime ? "a JSON object of scores" : "one JSON object of scores per query"})`);
  }
  // Group assembly (--group-size) holds rows across requests; explicit groupSizes are whole groups already.
  const assembling = s.grouping !== undefined && req.groupSizes === undefined;
  if (assembling) {
    if (request.headers.get("idempotency-key") !== null) {
      throw bad("Idempotency-Key", "not taken with group assembly (--group-size): a row is scored with other requests' rows, so a retry cannot be answered alone");
    }
    if (req.keys === undefined) throw bad("prompts", "group assembly (--group-size) needs a group key per row: prompts, group_ids or group");
    if (s.stepped && req.step === undefined) throw bad("step", STEP_REQUIRED);
  }
  const idem = s.stream && !assembling ? idempotencyOf(s, "/get_reward", request, bytes) : undefined;
  const n = req.query.length;
  const K = s.ctx.criteria.length;
  const { scores, valid, failures, failuresByStatus, firstError } = await s.judgeRows(req);
  // Every rollout failed: no reward to give. 502 so the trainer's client retries and its user sees why.
  if (failures === n) throw new HttpError(502, `the judge failed on all ${n} rollouts; first error: ${firstError}`, "labels");
  // OpenRLHF turns every value into torch.tensor([value]): finite numbers only, no null.
  const failureLogs: Record<string, number> = { judge_failures: failures };
  for (const status in failuresByStatus) failureLogs[`judge_failures/${status}`] = failuresByStatus[status]!;
  if (assembling) {
    const items = req.keys!.map((key, i) => ({ key, row: { scores: scores.slice(i * K, i * K + K), valid: valid[i]!, text: req.query[i]!, step: req.step } }));
    const answers = await s.grouping!.submit(req.run, items);
    return new Response(JSON.stringify(rewardReply(s.rewardOutput, req.slime, answers, failureLogs)), { headers: JSON_HEADERS });
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
  const render = (r: ScoreResult, seq: number | undefined) => {
    const logs = rewardLogs(s.ctx.criteria, s.stream, r, seq);
    const answers: RowAnswer[] = new Array(n);
    gathered.order.forEach((i, j) => {
      answers[i] = { reward: r.rewards[j]!, direct: Number.isFinite(r.direct[j]!) ? r.direct[j]! : null, advantage: r.advantages[j]!, logs };
    });
    return rewardReply(s.rewardOutput, req.slime, answers, failureLogs);
  };
  return reply(await scoreBatch(s, batch, render, idem));
}

/** Scores one assembled group (one engine call), on the run's state or the shared engine. */
export async function scoreAssembled(s: Service, run: string, step: number | undefined, rows: readonly HeldRow[]): Promise<RowAnswer[]> {
  const K = s.ctx.criteria.length, m = rows.length;
  const scores = new Float32Array(m * K), valid = new Uint8Array(m);
  rows.forEach((row, i) => {
    scores.set(row.scores, i * K);
    valid[i] = row.valid;
  });
  const batch: Batch = { run, step, scores, groupSizes: [m], valid, weights: undefined, groupIds: undefined };
  // The answers travel as JSON like any reply (float32 values are exact in it).
  const render = (r: ScoreResult, seq: number | undefined) => ({ rewards: arr(r.rewards), direct: arr(r.direct), advantages: arr(r.advantages), logs: rewardLogs(s.ctx.criteria, s.stream, r, seq) });
  const { body } = answerOf(await scoreBatch(s, batch, render));
  const out = JSON.parse(body) as { rewards: number[]; direct: (number | null)[]; advantages: number[]; logs: Record<string, number> };
  return rows.map((_, i) => ({ reward: out.rewards[i] ?? 0, direct: out.direct[i] ?? null, advantage: out.advantages[i] ?? 0, logs: { ...out.logs } }));
}

function runOf(s: Service, r: RouteRequest): string {
  const run = parseRun(r.run, "run", s.defaultRun);
  if (!s.stream) throw new HttpError(404, "the group scope keeps no run state", "run");
  return run;
}

async function getState(s: Service, r: RouteRequest): Promise<Response> {
  const run = runOf(s, r);
  const view = await s.ledger.view(run).catch((e: unknown) => {
    throw e instanceof CorruptRunError ? corrupt(run, e.reason) : e;
  });
  if (view.version === 0 || !view.snapshot) throw new HttpError(404, `run '${run}' has no state yet`, "run");
  const headers = { etag: `"${view.version}"`, "x-focal-seq": String(view.seq) };
  if ((r.request.headers.get("accept") ?? "").includes("application/json")) {
    const c = s.ctx.criteria;
    const body = {
      run,
      version: view.version,
      seq: view.seq,
      criteria: c,
      saturation: view.saturation ? byCriterion(c, view.saturation) : null,
      weights: view.weights ? byCriterion(c, view.weights) : null,
      snapshot: base64(view.snapshot),
    };
    return new Response(JSON.stringify(body), { headers: { ...JSON_HEADERS, ...headers } });
  }
  return new Response(view.snapshot.slice(), { headers: { "content-type": "application/octet-stream", ...headers } });
}

/** Restore a snapshot, as raw bytes or {"snapshot": base64}; `If-Match` makes it a compare-and-set. */
async function putState(s: Service, r: RouteRequest): Promise<Response> {
  const run = runOf(s, r);
  const raw = await readBody(r.request, s.maxBodyBytes);
  let bytes = raw;
  if ((r.request.headers.get("content-type") ?? "").includes("json")) {
    const body = parseJson(raw) as { snapshot?: unknown };
    if (body === null || typeof body !== "object" || typeof body.snapshot !== "string") throw bad("snapshot", "a base64 string");
    try {
      bytes = unbase64(body.snapshot);
    } catch {
      throw bad("snapshot", "not valid base64");
    }
  }
  if (bytes.length === 0) throw bad("body", "empty; expected a state snapshot");
  let ifMatch: number | undefined;
  const im = r.request.headers.get("if-match");
  if (im !== null) {
    const m = /^"?(\d+)"?$/.exec(im.trim());
    if (!m) throw bad("If-Match", 'an ETag from GET, e.g. "12"');
    ifMatch = Number(m[1]);
  }
  return reply(await s.ledger.restore(run, bytes, ifMatch));
}

async function healthz(s: Service): Promise<Response> {
  const closing = s.closing();
  const body = { status: closing ? "closing" : "ok", scope: s.stream ? "stream" : "group", stepped: s.stepped, backend: s.template.backend, criteria: s.ctx.criteria };
  return new Response(JSON.stringify(body), { status: closing ? 503 : 200, headers: JSON_HEADERS });
}

async function metricsText(s: Service): Promise<Response> {
  const gauges = s.ledger.cached().map((v) => ({ run: v.run, criteria: s.ctx.criteria, weights: v.weights, saturation: v.saturation, updates: v.seq }));
  const text = s.metrics.render(gauges) + (s.llm?.metrics() ?? "") + (s.grouping ? renderAssemblyMetrics(s.grouping.stats()) : "");
  return new Response(text, { headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" } });
}

/** Remove a run's record and stored answers (a corrupt one too): the run starts afresh. */
async function deleteRun(s: Service, r: RouteRequest): Promise<Response> {
  return reply(await s.ledger.remove(runOf(s, r)));
}

const RUN: Route = { name: "/v1/runs/:run", methods: ["DELETE"], handle: deleteRun };

const STATE: Route = {
  name: "/v1/runs/:run/state",
  methods: ["GET", "PUT"],
  handle: (s, r) => (r.request.method === "PUT" ? putState(s, r) : getState(s, r)),
};

/** The routes by path (`/v1/runs/:run/state` is matched by pattern). */
export const ROUTES: Readonly<Record<string, Route>> = {
  "/v1/score": { name: "/v1/score", methods: ["POST"], handle: postScore },
  "/get_reward": { name: "/get_reward", methods: ["POST"], handle: postReward },
  "/healthz": { name: "/healthz", methods: ["GET"], handle: healthz },
  "/metrics": { name: "/metrics", methods: ["GET"], handle: metricsText },
  "/v1/runs/:run": RUN,
  "/v1/runs/:run/state": STATE,
};

const RUN_PATH = /^\/v1\/runs\/([^/]+)(\/state)?$/;

/** The route of a path and its `:run`, if any. */
export function matchRoute(path: string): { route: Route; run?: string } | undefined {
  const route = Object.hasOwn(ROUTES, path) ? ROUTES[path] : undefined;
  if (route && route !== STATE && route !== RUN) return { route };
  const m = RUN_PATH.exec(path);
  if (!m) return undefined;
  let run: string;
  try {
    run = decodeURIComponent(m[1]!);
  } catch {
    run = m[1]!; // refused by parseRun
  }
  return { route: m[2] ? STATE : RUN, run };
}
