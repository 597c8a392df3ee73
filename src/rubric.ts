import type { Criterion, Rubric } from "./types.js";
import { CRITERION_KEYS } from "./keys.js";
import { checkCriterionId, checkKeys, short } from "./validate.js";

/** A validated rubric in the engine's terms: every criterion "higher is better" with weight >= 0. */
export interface CompiledRubric {
  readonly ids: readonly string[];
  readonly index: ReadonlyMap<string, number>;
  /** Scale start and 1 / (hi - lo): u = clamp((x - lo) * inv, 0, 1). */
  readonly lo: Float64Array;
  readonly inv: Float64Array;
  /** Scale ends as float32 (scores are float32): a score outside [lo32, hi32] is out of scale. */
  readonly lo32: Float32Array;
  readonly hi32: Float32Array;
  /** 1 for a penalty criterion (u <- 1 - u), else 0. */
  readonly penalty: Float64Array;
  /** |weight| (not normalized: every formula divides by the sum over the criteria in use). */
  readonly base: Float64Array;
  readonly required: Uint8Array;
  /** 1 for a guarded criterion: focal reweighting keeps its base share (default: penalties). */
  readonly fixed: Uint8Array;
  readonly criteria: readonly Criterion[];
}

/** The largest |weight| (and 1 / scale width): any product of them stays finite in float32. */
export const MAX_WEIGHT = 1e30;

export function compileRubric(rubric: Rubric | readonly Criterion[]): CompiledRubric {
  if (rubric !== null && typeof rubric === "object" && !Array.isArray(rubric)) {
    checkKeys("rubric", rubric, ["criteria"], "rubric key");
  }
  const criteria = Array.isArray(rubric) ? (rubric as readonly Criterion[]) : (rubric as Rubric)?.criteria;
  if (!Array.isArray(criteria)) throw new TypeError("rubric: expected { criteria: [...] } or an array of criteria");
  if (criteria.length === 0) throw new RangeError("rubric: it has no criteria");
  const k = criteria.length;
  const index = new Map<string, number>();
  const lo = new Float64Array(k), inv = new Float64Array(k), penalty = new Float64Array(k);
  const lo32 = new Float32Array(k), hi32 = new Float32Array(k);
  const base = new Float64Array(k), required = new Uint8Array(k), fixed = new Uint8Array(k);
  criteria.forEach((c, i) => {
    if (c === null || typeof c !== "object" || Array.isArray(c)) throw new TypeError(`rubric: criterion ${i}: expected an object`);
    const id = checkCriterionId(c.id, `rubric: criterion ${i}`);
    const where = `rubric: criterion '${id}'`;
    checkKeys(where, c, CRITERION_KEYS);
    if (index.has(id)) throw new RangeError(`rubric: duplicate criterion id '${id}'`);
    index.set(id, i);
    const weight = c.weight ?? 1;
    if (typeof weight !== "number") throw new TypeError(`${where}: weight must be a number, got ${JSON.stringify(c.weight)}`);
    if (!(Math.abs(weight) > 0 && Math.abs(weight) <= MAX_WEIGHT)) {
      throw new RangeError(`${where}: weight must satisfy 0 < |weight| <= ${short(MAX_WEIGHT)}, got ${weight}` +
        (weight === 0 ? " (leave the criterion out, or give a group weight 0 in instance weights)" : ""));
    }
    const scale = c.scale ?? [0, 1];
    if (!Array.isArray(scale) || scale.length !== 2 || typeof scale[0] !== "number" || typeof scale[1] !== "number") {
      throw new TypeError(`${where}: scale must be an array [lo, hi] of two numbers, got ${JSON.stringify(c.scale)}`);
    }
    const [l, h] = scale;
    if (!(Math.abs(l) <= MAX_WEIGHT && Math.abs(h) <= MAX_WEIGHT)) throw new RangeError(`${where}: scale ends must be finite with |x| <= ${short(MAX_WEIGHT)}, got [${l}, ${h}]`);
    if (!(l < h)) throw new RangeError(`${where}: scale needs lo < hi, got [${l}, ${h}]`);
    if (!(1 / (h - l) <= MAX_WEIGHT)) throw new RangeError(`${where}: scale [${l}, ${h}] is narrower than 1 / ${short(MAX_WEIGHT)}`);
    const polarity = c.polarity;
    if (polarity !== undefined && polarity !== "reward" && polarity !== "penalty") {
      throw new RangeError(`${where}: polarity must be "reward" or "penalty", got ${JSON.stringify(polarity)}`);
    }
    if (polarity === "reward" && weight < 0) {
      throw new RangeError(`${where}: weight ${weight} with polarity "reward" contradicts itself (a negative weight marks a penalty); ` +
        `give a positive weight, or polarity "penalty"`);
    }
    for (const flag of ["required", "fixed"] as const) {
      if (c[flag] !== undefined && typeof c[flag] !== "boolean") throw new TypeError(`${where}: ${flag} must be true or false, got ${JSON.stringify(c[flag])}`);
    }
    if (c.description !== undefined && typeof c.description !== "string") throw new TypeError(`${where}: description must be a string`);
    lo[i] = l;
    inv[i] = 1 / (h - l);
    lo32[i] = l;
    hi32[i] = h;
    penalty[i] = weight < 0 || polarity === "penalty" ? 1 : 0;
    base[i] = Math.abs(weight);
    required[i] = c.required ? 1 : 0;
    fixed[i] = (c.fixed ?? penalty[i] === 1) ? 1 : 0;
  });
  return { ids: [...index.keys()], index, lo, inv, lo32, hi32, penalty, base, required, fixed, criteria };
}

/** The normalized score u of raw score x on criterion k: on [0, 1], penalties flipped, NaN kept. */
export function normalizedScore(r: CompiledRubric, x: number, k: number): number {
  if (Number.isNaN(x)) return NaN;
  const u = Math.min(Math.max((x - r.lo[k]) * r.inv[k], 0), 1);
  return r.penalty[k] ? 1 - u : u;
}

/**
 * One pass over a call's rows, in groups of `sizes` (they must sum to the rows): normalizedScore of
 * every score into `u`, the same operations written out (a double returned from a call that is not
 * inlined is a heap number, 16 bytes of garbage a score); over the rows the caller did not mask,
 * present[g * K + k] = 1 where group g has criterion k (else 0) and countOutOfScale's counts into
 * `outOfScale`; returns their present scores. (A number, not an object: an object returned after the
 * loop deoptimizes the loop's on-stack-replaced code each time it is entered.)
 */
export function normalizeRows(r: CompiledRubric, scores: ArrayLike<number>, sizes: ArrayLike<number>, valid: ArrayLike<number | boolean> | undefined, u: Float64Array, present: Uint8Array, outOfScale: Float64Array): number {
  const K = r.ids.length, { lo, inv, penalty } = r;
  present.fill(0);
  outOfScale.fill(0);
  let scored = 0;
  for (let g = 0, i = 0; g < sizes.length; g++) {
    const p = g * K;
    for (const end = i + sizes[g]!; i < end; i++) {
      const o = i * K, unmasked = valid === undefined || !!valid[i];
      for (let k = 0; k < K; k++) {
        const x = scores[o + k]!;
        if (x !== x) {
          u[o + k] = NaN;
          continue;
        }
        const v = Math.min(Math.max((x - lo[k]!) * inv[k]!, 0), 1);
        u[o + k] = penalty[k] ? 1 - v : v;
        if (!unmasked) continue;
        present[p + k] = 1;
        scored++;
        if (outsideScale(r, x, k)) outOfScale[k]!++;
      }
    }
  }
  return scored;
}

/**
 * Whether score x lies outside criterion k's scale, as the kernels test it (assembly/scale.ts):
 * against the scale's float32 bounds; NaN (absent) is inside.
 */
export function outsideScale(r: CompiledRubric, x: number, k: number): boolean {
  return x < r.lo32[k]! || x > r.hi32[k]!;
}

/** What outOfScale "error" refuses: the first score outside its criterion's scale, named. */
export class OutOfScaleError extends RangeError {
  /** `row`: the row of the call (-1 for scoreOne's one row). */
  constructor(readonly row: number, readonly criterion: string, readonly value: number, readonly scale: readonly [number, number], where = `score: row ${row}`) {
    super(`${where}, criterion '${criterion}' is ${value}, outside its scale [${scale[0]}, ${scale[1]}] ` +
      `(outOfScale "error"; give the criterion its real scale in the rubric, or outOfScale "clamp" to clamp it)`);
    this.name = "OutOfScaleError";
  }
}

/**
 * Per criterion, over the rows the caller did not mask: scores outside the scale (into `out`) and
 * present scores (the total is returned with the total outside). The js backend's count; the
 * kernels count the same (assembly/scale.ts).
 */
export function countOutOfScale(r: CompiledRubric, scores: ArrayLike<number>, n: number, valid: ArrayLike<number | boolean> | undefined, out: Float64Array): { outside: number; present: number } {
  const k = r.ids.length;
  out.fill(0);
  let outside = 0, present = 0;
  for (let i = 0; i < n; i++) {
    if (valid !== undefined && !valid[i]) continue;
    for (let c = 0; c < k; c++) {
      const x = scores[i * k + c];
      if (x !== x) continue;
      present++;
      if (outsideScale(r, x, c)) { out[c]++; outside++; }
    }
  }
  return { outside, present };
}

/** The error for the first score of an unmasked row outside its scale (call it only when there is one). */
export function outOfScaleError(r: CompiledRubric, scores: ArrayLike<number>, n: number, valid: ArrayLike<number | boolean> | undefined): RangeError {
  const k = r.ids.length;
  for (let i = 0; i < n; i++) {
    if (valid !== undefined && !valid[i]) continue;
    for (let c = 0; c < k; c++) {
      const x = scores[i * k + c];
      if (outsideScale(r, x, c)) {
        if (x === Infinity || x === -Infinity) return new RangeError(`scores: row ${i}, criterion ${c} is ${x}; scores must be finite or NaN (absent)`);
        return new OutOfScaleError(i, r.ids[c], x, scaleOf(r, c));
      }
    }
  }
  return new RangeError("score: a score outside its scale was counted but not found");
}

/** Criterion k's scale [lo, hi] as the rubric gives it. */
export function scaleOf(r: CompiledRubric, k: number): readonly [number, number] {
  return (r.criteria[k].scale ?? [0, 1]) as readonly [number, number];
}
