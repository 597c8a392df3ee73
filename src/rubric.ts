import type { Criterion, Rubric } from "./types.js";

/** A validated rubric in the engine's terms: every criterion "higher is better" with weight >= 0. */
export interface CompiledRubric {
  readonly ids: readonly string[];
  readonly index: ReadonlyMap<string, number>;
  /** Scale start and 1 / (hi - lo): u = clamp((x - lo) * inv, 0, 1). */
  readonly lo: Float64Array;
  readonly inv: Float64Array;
  /** 1 for a penalty criterion (u <- 1 - u), else 0. */
  readonly penalty: Float64Array;
  /** |weight| (not normalized: every formula divides by the sum over the criteria in use). */
  readonly base: Float64Array;
  readonly required: Uint8Array;
  /** 1 for a guarded criterion: focal reweighting keeps its base share (default: penalties). */
  readonly fixed: Uint8Array;
  readonly criteria: readonly Criterion[];
}

export function compileRubric(rubric: Rubric | readonly Criterion[]): CompiledRubric {
  const criteria = Array.isArray(rubric) ? (rubric as readonly Criterion[]) : (rubric as Rubric)?.criteria;
  if (!Array.isArray(criteria)) throw new TypeError("rubric: expected { criteria: [...] } or an array of criteria");
  if (criteria.length === 0) throw new RangeError("rubric: it has no criteria");
  const k = criteria.length;
  const index = new Map<string, number>();
  const lo = new Float64Array(k), inv = new Float64Array(k), penalty = new Float64Array(k);
  const base = new Float64Array(k), required = new Uint8Array(k), fixed = new Uint8Array(k);
  criteria.forEach((c, i) => {
    const where = `rubric: criterion ${i}`;
    if (c === null || typeof c !== "object") throw new TypeError(`${where}: expected an object`);
    if (typeof c.id !== "string" || c.id === "") throw new TypeError(`${where}: 'id' must be a non-empty string`);
    if (index.has(c.id)) throw new RangeError(`rubric: duplicate criterion id '${c.id}'`);
    index.set(c.id, i);
    const weight = c.weight ?? 1;
    if (typeof weight !== "number" || !Number.isFinite(weight)) {
      throw new RangeError(`rubric: criterion '${c.id}': weight must be a finite number, got ${String(c.weight)}`);
    }
    const [l, h] = c.scale ?? [0, 1];
    if (!Array.isArray(c.scale ?? [0, 1]) || typeof l !== "number" || typeof h !== "number" ||
        !Number.isFinite(l) || !Number.isFinite(h)) {
      throw new RangeError(`rubric: criterion '${c.id}': scale must be [lo, hi] with finite numbers`);
    }
    if (!(l < h)) throw new RangeError(`rubric: criterion '${c.id}': scale needs lo < hi, got [${l}, ${h}]`);
    const polarity = c.polarity ?? "reward";
    if (polarity !== "reward" && polarity !== "penalty") {
      throw new RangeError(`rubric: criterion '${c.id}': polarity must be "reward" or "penalty"`);
    }
    lo[i] = l;
    inv[i] = 1 / (h - l);
    penalty[i] = weight < 0 || polarity === "penalty" ? 1 : 0;
    base[i] = Math.abs(weight);
    required[i] = c.required ? 1 : 0;
    if (c.fixed !== undefined && typeof c.fixed !== "boolean") {
      throw new TypeError(`rubric: criterion '${c.id}': fixed must be true or false, got ${JSON.stringify(c.fixed)}`);
    }
    fixed[i] = (c.fixed ?? penalty[i] === 1) ? 1 : 0;
  });
  if (base.every((w) => w === 0)) throw new RangeError("rubric: every weight is 0");
  return { ids: [...index.keys()], index, lo, inv, penalty, base, required, fixed, criteria };
}

/** The normalized score u of raw score x on criterion k: on [0, 1], penalties flipped, NaN kept. */
export function normalizedScore(r: CompiledRubric, x: number, k: number): number {
  if (Number.isNaN(x)) return NaN;
  const u = Math.min(Math.max((x - r.lo[k]) * r.inv[k], 0), 1);
  return r.penalty[k] ? 1 - u : u;
}
