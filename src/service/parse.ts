/** Validation of request bodies: every rejection is a 400 naming the field. */
import { unknownName } from "../validate.js";
import { HttpError, bad } from "./problem.js";

export const RUN_RE = /^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$/;

export interface Batch {
  run: string;
  step: number | undefined;
  /** n x K, rubric order; NaN = not judged. */
  scores: Float32Array;
  groupSizes: number[];
  valid: Uint8Array | undefined;
  /** G x K instance weights (group scope), rubric order. */
  weights: Float64Array | undefined;
  /** Group ids of the record form. */
  groupIds: string[] | undefined;
}

export interface ParseContext {
  criteria: readonly string[];
  index: ReadonlyMap<string, number>;
  /** |base weight| per criterion (rubric order), to fill groups without instance weights. */
  baseWeights: readonly number[];
  defaultRun: string;
  limits: RequestLimits;
}

/**
 * The work one request may cause, checked before anything is allocated for it: the engine's
 * cells are rows x the rubric's criteria whatever the body names (a columnar body naming 1 of 32
 * criteria still costs 32 cells a row), and a group-scope reply has one weights and one
 * saturation entry per group and criterion. Past a limit: 413 naming it and the number.
 */
export interface RequestLimits {
  /** Rows (rollouts) per request (/v1/score and /get_reward). */
  maxRows: number;
  /** Groups per request. */
  maxGroups: number;
  /** Score cells (rows x rubric criteria) per request. */
  maxCells: number;
}

/** Defaults a training step fits in (e.g. 4,096 prompts x 64 samples x 16 criteria). */
export const REQUEST_LIMITS: RequestLimits = { maxRows: 262_144, maxGroups: 16_384, maxCells: 4_194_304 };

const LIMIT_FLAGS: Record<keyof RequestLimits, string> = { maxRows: "--max-rows", maxGroups: "--max-groups", maxCells: "--max-cells" };

/** The limits given (createHandler options), checked, over the defaults. */
export function requestLimits(given: Partial<Record<keyof RequestLimits, unknown>>): RequestLimits {
  const out = { ...REQUEST_LIMITS };
  for (const k of Object.keys(REQUEST_LIMITS) as (keyof RequestLimits)[]) {
    const v = given[k];
    if (v === undefined) continue;
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1) throw new RangeError(`createHandler: ${k} must be an integer >= 1, got ${String(v)}`);
    out[k] = v;
  }
  return out;
}

/** 413 when `count` is over the limit `which`. */
export function checkLimit(limits: RequestLimits, which: keyof RequestLimits, count: number, field: string, what: string): void {
  const max = limits[which];
  if (count <= max) return;
  const reason = `${count} ${what} in one request, more than the limit of ${max} (serve ${LIMIT_FLAGS[which]}, createHandler ${which}); split the request`;
  throw new HttpError(413, `${field}: ${reason}`, field, {}, reason);
}

/** Rows, cells (rows x the rubric's K) and groups of one request, against the limits. */
function checkSize(ctx: ParseContext, rows: number, groups: number, field: string): void {
  checkLimit(ctx.limits, "maxRows", rows, field, "rows");
  checkLimit(ctx.limits, "maxCells", rows * ctx.criteria.length, field, `score cells (${rows} rows x ${ctx.criteria.length} criteria)`);
  checkLimit(ctx.limits, "maxGroups", groups, field, "groups");
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

export function parseRun(v: unknown, field: string, fallback: string): string {
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "string" || !RUN_RE.test(v)) {
    throw bad(field, "a run id is 1-128 characters of A-Z a-z 0-9 . _ : @ + -, starting with a letter or digit");
  }
  return v;
}

/** A training step from the body, else from `?step=` (both given: they must agree). */
export function parseStep(v: unknown, param: string | null = null): number | undefined {
  const fromQuery = param === null ? undefined : /^\d+$/.test(param) ? Number(param) : NaN;
  if (fromQuery !== undefined && !Number.isSafeInteger(fromQuery)) throw bad("step", "?step= must be a non-negative integer");
  if (v === undefined || v === null) return fromQuery;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) throw bad("step", "a non-negative integer");
  if (fromQuery !== undefined && fromQuery !== v) throw bad("step", `the body says ${v}, ?step= says ${fromQuery}`);
  return v;
}

function score(v: unknown, field: string): number {
  if (v === null || v === undefined) return NaN;
  if (typeof v !== "number") throw bad(field, "a number or null");
  if (!Number.isFinite(v)) throw bad(field, "a finite number");
  return v;
}

function weight(v: unknown, field: string): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) throw bad(field, "a finite number >= 0");
  return v;
}

/** `POST /v1/score`, record form or columnar form. */
export function parseScoreBody(body: unknown, ctx: ParseContext, stepParam: string | null = null): Batch {
  if (!isObject(body)) throw bad("body", "a JSON object");
  const run = parseRun(body.run, "run", ctx.defaultRun);
  const step = parseStep(body.step, stepParam);
  const K = ctx.criteria.length;
  if (body.groups !== undefined) {
    for (const f of ["criteria", "scores", "groupSizes"]) {
      if (body[f] !== undefined) throw bad(f, "not allowed with `groups` (record form); use one form");
    }
    const groups = body.groups;
    if (!Array.isArray(groups) || groups.length === 0) throw bad("groups", "a non-empty array");
    checkLimit(ctx.limits, "maxGroups", groups.length, "groups", "groups");
    let n = 0;
    for (let g = 0; g < groups.length; g++) {
      const grp = groups[g];
      if (!isObject(grp)) throw bad(`groups[${g}]`, "an object {id, rows}");
      if (!Array.isArray(grp.rows) || grp.rows.length === 0) throw bad(`groups[${g}].rows`, "a non-empty array");
      n += grp.rows.length;
    }
    checkSize(ctx, n, groups.length, "groups");
    const scores = new Float32Array(n * K).fill(NaN);
    const groupSizes: number[] = [];
    const groupIds: string[] = [];
    let weights: Float64Array | undefined;
    let i = 0;
    for (let g = 0; g < groups.length; g++) {
      const grp = groups[g] as Record<string, unknown>;
      const id = grp.id ?? String(g);
      if (typeof id !== "string" && typeof id !== "number") throw bad(`groups[${g}].id`, "a string or number");
      groupIds.push(String(id));
      const rows = grp.rows as unknown[];
      groupSizes.push(rows.length);
      for (let r = 0; r < rows.length; r++, i++) {
        const row = rows[r];
        const where = `groups[${g}].rows[${r}]`;
        if (!isObject(row)) throw bad(where, "an object {criterion: score}");
        for (const key in row) {
          const k = ctx.index.get(key);
          if (k === undefined) throw bad(`${where}.${key}`, "unknown criterion");
          scores[i * K + k] = score(row[key], `${where}.${key}`);
        }
      }
      if (grp.weights !== undefined) {
        if (!isObject(grp.weights)) throw bad(`groups[${g}].weights`, "an object {criterion: weight}");
        if (!weights) {
          weights = new Float64Array(groups.length * K);
          for (let h = 0; h < groups.length; h++) for (let k = 0; k < K; k++) weights[h * K + k] = ctx.baseWeights[k]!;
        }
        for (let k = 0; k < K; k++) weights[g * K + k] = 0;
        for (const key in grp.weights) {
          const k = ctx.index.get(key);
          if (k === undefined) throw bad(`groups[${g}].weights.${key}`, "unknown criterion");
          weights[g * K + k] = weight(grp.weights[key], `groups[${g}].weights.${key}`);
        }
      }
    }
    return { run, step, scores, groupSizes, valid: undefined, weights, groupIds };
  }
  if (body.scores === undefined) throw bad("groups", "required: `groups` (record form) or `criteria`, `scores`, `groupSizes` (columnar form)");
  const crit = body.criteria;
  if (!Array.isArray(crit) || crit.length === 0) throw bad("criteria", "a non-empty array of criterion ids");
  const cols: number[] = [];
  const seen = new Set<number>();
  for (let c = 0; c < crit.length; c++) {
    const k = typeof crit[c] === "string" ? ctx.index.get(crit[c]) : undefined;
    if (k === undefined) throw bad(`criteria[${c}]`, typeof crit[c] === "string" ? "unknown criterion" : "a criterion id");
    if (seen.has(k)) throw bad(`criteria[${c}]`, "duplicate criterion");
    seen.add(k);
    cols.push(k);
  }
  const sizes = body.groupSizes;
  if (!Array.isArray(sizes) || sizes.length === 0) throw bad("groupSizes", "a non-empty array of positive integers");
  checkLimit(ctx.limits, "maxGroups", sizes.length, "groupSizes", "groups");
  let n = 0;
  for (let g = 0; g < sizes.length; g++) {
    const s = sizes[g];
    if (typeof s !== "number" || !Number.isSafeInteger(s) || s < 1) throw bad(`groupSizes[${g}]`, "a positive integer");
    n += s;
  }
  checkSize(ctx, n, sizes.length, "groupSizes");
  const raw = body.scores;
  const C = cols.length;
  if (!Array.isArray(raw)) throw bad("scores", "an array of numbers (n x criteria, row-major)");
  if (raw.length !== n * C) throw bad("scores", `length ${raw.length}, expected ${n * C} (sum(groupSizes) = ${n} rows x ${C} criteria)`);
  const scores = new Float32Array(n * K).fill(NaN);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < C; c++) scores[i * K + cols[c]!] = score(raw[i * C + c], `scores[${i * C + c}]`);
  }
  let valid: Uint8Array | undefined;
  if (body.valid !== undefined) {
    const v = body.valid;
    if (!Array.isArray(v) || v.length !== n) throw bad("valid", `an array of ${n} booleans`);
    valid = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const x = v[i];
      if (typeof x !== "boolean" && x !== 0 && x !== 1) throw bad(`valid[${i}]`, "a boolean");
      valid[i] = x ? 1 : 0;
    }
  }
  let weights: Float64Array | undefined;
  if (body.weights !== undefined) {
    const w = body.weights;
    const G = sizes.length;
    if (!Array.isArray(w) || w.length !== G * C) throw bad("weights", `an array of ${G * C} numbers (groups x criteria)`);
    weights = new Float64Array(G * K);
    for (let g = 0; g < G; g++) for (let c = 0; c < C; c++) weights[g * K + cols[c]!] = weight(w[g * C + c], `weights[${g * C + c}]`);
  }
  return { run, step, scores, groupSizes: sizes as number[], valid, weights, groupIds: undefined };
}

export interface RewardRequest {
  run: string;
  step: number | undefined;
  /** The judged texts: OpenRLHF's `query` (prompt + response), slime's `response`. */
  query: string[];
  prompts: string[];
  labels: unknown[] | undefined;
  /** Group key per row: `group_ids[i]` / `group`, else the prompt; undefined: every row its own group. */
  keys: string[] | undefined;
  /** Explicit contiguous group sizes (`groupSizes`), instead of keys. */
  groupSizes: number[] | undefined;
  /** slime's one-sample body `{prompt, response, label}`: the reply is `{"reward": r, ...}`. */
  slime: boolean;
}

const REWARD_KEYS = ["run", "step", "query", "prompts", "labels", "group_ids", "group", "groupSizes", "group_sizes"];
const SLIME_KEYS = ["run", "step", "prompt", "response", "label", "group"];

/** A group id as sent: a string, or a number (as its decimal text). */
function groupKey(v: unknown, field: string): string {
  if (typeof v === "string") return v;
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  throw bad(field, "a group id (string or number)");
}

/**
 * `POST /get_reward`: OpenRLHF's `{query, prompts, labels}` (any number of rows) or slime's
 * `{prompt, response, label}` (one). Rows are grouped by key over the whole request (never by
 * adjacency): `group_ids` (one per row) or `group` (all rows), else the prompt.
 */
export function parseRewardBody(body: unknown, runParam: string | null, defaultRun: string, stepParam: string | null = null, ctx?: Pick<ParseContext, "criteria" | "limits">): RewardRequest {
  if (!isObject(body)) throw bad("body", "a JSON object");
  const slime = body.query === undefined && body.response !== undefined;
  for (const key of Object.keys(body)) {
    const known = slime ? SLIME_KEYS : REWARD_KEYS;
    if (!known.includes(key)) throw bad(key, unknownName(slime ? "field of the one-sample body {prompt, response, label}" : "field", key, known));
  }
  const run = parseRun(body.run ?? runParam ?? undefined, "run", defaultRun);
  const step = parseStep(body.step, stepParam);
  if (slime) {
    if (typeof body.response !== "string") throw bad("response", "a string (the text to judge)");
    // slime's prompt is a string or a list of chat messages: the key is its JSON text then.
    const prompt = body.prompt === undefined ? "" : typeof body.prompt === "string" ? body.prompt : JSON.stringify(body.prompt);
    const key = body.group !== undefined ? groupKey(body.group, "group") : body.prompt !== undefined ? prompt : undefined;
    return {
      run, step, query: [body.response], prompts: [prompt], labels: body.label === undefined ? undefined : [body.label],
      keys: key === undefined ? undefined : [key], groupSizes: undefined, slime,
    };
  }
  const query = body.query;
  if (!Array.isArray(query)) throw bad("query", "an array of strings (or send slime's {prompt, response, label})");
  if (ctx) {
    checkLimit(ctx.limits, "maxRows", query.length, "query", "rollouts");
    checkLimit(ctx.limits, "maxCells", query.length * ctx.criteria.length, "query", `score cells (${query.length} rollouts x ${ctx.criteria.length} criteria)`);
  }
  query.forEach((q, i) => {
    if (typeof q !== "string") throw bad(`query[${i}]`, "a string");
  });
  const n = query.length;
  let prompts: string[];
  if (body.prompts === undefined) prompts = query.map(() => "");
  else {
    if (!Array.isArray(body.prompts) || body.prompts.length !== n) throw bad("prompts", `an array of ${n} strings (one per query)`);
    body.prompts.forEach((p, i) => {
      if (typeof p !== "string") throw bad(`prompts[${i}]`, "a string");
    });
    prompts = body.prompts as string[];
  }
  let labels: unknown[] | undefined;
  if (body.labels !== undefined && body.labels !== null) {
    if (!Array.isArray(body.labels) || body.labels.length !== n) throw bad("labels", `an array of ${n} labels (one per query)`);
    labels = body.labels;
  }
  const given = ["group_ids", "group", "groupSizes", "group_sizes"].filter((f) => body[f] !== undefined);
  if (given.length > 1) throw bad(given[1]!, `not allowed with ${given[0]}: give one way of grouping`);
  let keys: string[] | undefined;
  let groupSizes: number[] | undefined;
  if (body.group_ids !== undefined) {
    if (!Array.isArray(body.group_ids) || body.group_ids.length !== n) throw bad("group_ids", `an array of ${n} group ids (one per query)`);
    keys = body.group_ids.map((g, i) => groupKey(g, `group_ids[${i}]`));
  } else if (body.group !== undefined) {
    const g = groupKey(body.group, "group");
    keys = query.map(() => g);
  } else if (given.length === 1) {
    const name = given[0]!;
    const gs = body[name];
    if (!Array.isArray(gs) || gs.length === 0) throw bad(name, "a non-empty array of positive integers");
    if (ctx) checkLimit(ctx.limits, "maxGroups", gs.length, name, "groups");
    let total = 0;
    gs.forEach((s, g) => {
      if (typeof s !== "number" || !Number.isSafeInteger(s) || s < 1) throw bad(`${name}[${g}]`, "a positive integer");
      total += s;
    });
    if (total !== n) throw bad(name, `sums to ${total}, expected ${n} (one per query)`);
    groupSizes = gs as number[];
  } else if (body.prompts !== undefined) keys = prompts;
  return { run, step, query: query as string[], prompts, labels, keys, groupSizes, slime };
}
