/**
 * The aggregators of issue 3, written out plainly in float64: the `js` backend's part, and the
 * readable reference of assembly/aggregators.ts (which states the same formulas and agrees with
 * this file to ~1e-6). docs/aggregators.md lists every formula and the choices made where a paper
 * leaves one.
 *
 * Notation (per row i): u_ik the normalized score (NaN = absent; penalties already flipped to
 * 1 - u), b_k the base weight of the row's group (>= 0), "active" = present with b_k > 0,
 * W_i = sum over the active criteria of b_k, w_k = b_k / W_i. A row is valid only if its direct
 * reward d_i is (it has an active criterion). Where a formula has no term (0/0), the row takes d_i.
 */
import type { Settings } from "./backend.js";
import type { CompiledRubric } from "./rubric.js";
import type { Method } from "./types.js";
import { MethodCode, Stat } from "./abi.js";
import { methodsBetween } from "./codes.js";

/** Methods handled here: the ABI codes from WeightedSum up to SaMrpo. */
export type AggregatorMethod = Exclude<Method, "focal" | "weighted-mean" | "gdpo" | "sa-mrpo">;
export const AGGREGATORS = methodsBetween(MethodCode.WeightedSum, MethodCode.SaMrpo) as readonly AggregatorMethod[];

export function isAggregator(m: Method): m is AggregatorMethod {
  return (AGGREGATORS as readonly string[]).includes(m);
}

/** Options of the aggregators after validation. */
export interface AggregatorSettings {
  /** power-mean exponent p (finite in [-64, 64], or +-Infinity). Default 0 (geometric). */
  power: number;
  /** soft-min temperature T > 0. Default 0.1. */
  temperature: number;
  /** cvar tail share alpha in (0, 1]. Default 0.25. */
  alpha: number;
  /** Pass threshold on the [0, 1] scale (gated, hierarchical, all-or-nothing, F-GRPO success). Default 0.5. */
  threshold: number;
  /** F-GRPO exponent gamma_f >= 0: advantages times (1 - group success rate)^gamma_f; undefined = off. */
  fGrpo: number | undefined;
}

export const AGGREGATOR_DEFAULTS: AggregatorSettings = { power: 0, temperature: 0.1, alpha: 0.25, threshold: 0.5, fGrpo: undefined };

/** A score passes at u >= threshold - PASS_SLACK: the slack absorbs the rounding of the scale map. */
export const PASS_SLACK = 1e-6;
/** Scores below this count as 0 in power means. */
export const TINY = 1e-30;
/** pow3r's weight floor when minWeight is not given. */
export const POW3R_FLOOR = 0.02;

export function aggregatorSettings(s: Settings): AggregatorSettings {
  return s.aggregator ?? AGGREGATOR_DEFAULTS;
}

/** 1 for a required criterion; every criterion when the rubric marks none. */
export function requiredMask(r: CompiledRubric): Float32Array {
  const any = r.required.some((x) => x === 1);
  return Float32Array.from(r.required, (x) => (any ? x : 1));
}

/** Validates the aggregator options (RangeError naming the option); defaults for the rest. */
export function aggregatorOptions(o: {
  power?: unknown; temperature?: unknown; alpha?: unknown; threshold?: unknown; fGrpo?: unknown;
}): AggregatorSettings {
  const num = (name: string, v: unknown, fallback: number, ok: (x: number) => boolean, what: string): number => {
    if (v === undefined) return fallback;
    if (typeof v !== "number" || Number.isNaN(v) || !ok(v)) throw new RangeError(`${name} must be ${what}, got ${String(v)}`);
    return v;
  };
  const d = AGGREGATOR_DEFAULTS;
  return {
    power: num("power", o.power, d.power, (x) => Math.abs(x) === Infinity || Math.abs(x) <= 64, "a number in [-64, 64] or +-Infinity"),
    temperature: num("temperature", o.temperature, d.temperature, (x) => x >= 1e-6 && x <= 1e6, "in [1e-6, 1e6]"),
    alpha: num("alpha", o.alpha, d.alpha, (x) => x > 0 && x <= 1, "in (0, 1]"),
    threshold: num("threshold", o.threshold, d.threshold, (x) => x >= 0 && x <= 1, "in [0, 1]"),
    fGrpo: o.fGrpo === undefined ? undefined : num("fGrpo", o.fGrpo, 0, (x) => x >= 0 && x <= 64, "in [0, 64]"),
  };
}

/** The float64 aggregators of the `js` backend. */
export class ReferenceAggregators {
  private readonly k: number;
  private readonly a: AggregatorSettings;
  private readonly req: Float32Array;
  private readonly passAt: number;
  private readonly floor: number;
  private readonly clip: number;
  /** pow3r: contrast sums of the call, and the groups waiting for weights. */
  private cSum: Float64Array;
  private cCount: Float64Array;
  private pending: { g: number; start: number; end: number; sat: Float64Array; b: ArrayLike<number> }[] = [];

  constructor(private readonly rubric: CompiledRubric, private readonly s: Settings) {
    this.k = rubric.ids.length;
    this.a = aggregatorSettings(s);
    this.req = requiredMask(rubric);
    this.passAt = this.a.threshold - PASS_SLACK;
    this.floor = s.minWeight ?? POW3R_FLOOR;
    this.clip = s.maxWeight ?? 1;
    this.cSum = new Float64Array(this.k);
    this.cCount = new Float64Array(this.k);
  }

  private active(u: ArrayLike<number>, b: ArrayLike<number>): number[] {
    const idx: number[] = [];
    for (let k = 0; k < this.k; k++) if (!Number.isNaN(u[k]) && b[k] > 0) idx.push(k);
    return idx;
  }

  /** Every present required criterion has u >= threshold (vacuously true). */
  private passes(u: ArrayLike<number>): boolean {
    for (let k = 0; k < this.k; k++) if (this.req[k] && !Number.isNaN(u[k]) && u[k] < this.passAt) return false;
    return true;
  }

  /** Reward of a valid row for a row-wise method (see assembly/aggregators.ts); NaN = take d. */
  row(method: AggregatorMethod, u: ArrayLike<number>, b: ArrayLike<number>, d: number): number {
    const act = this.active(u, b);
    const W = act.reduce((s, k) => s + b[k], 0);
    const w = (k: number) => b[k] / W;
    const min = () => Math.min(...act.map((k) => u[k]));
    const max = () => Math.max(...act.map((k) => u[k]));
    switch (method) {
      case "weighted-sum":
        return act.reduce((s, k) => s + b[k] * u[k], 0);
      case "min":
        return min();
      case "power-mean": {
        const p = this.a.power;
        if (p === 1) return d;
        if (p === -Infinity) return min();
        if (p === Infinity) return max();
        const lo = min();
        if (p <= 0 && lo < TINY) return 0;
        const m = p < 0 ? lo : max();
        if (m < TINY) return 0;
        if (p === 0) return m * Math.exp(act.reduce((s, k) => s + w(k) * Math.log(u[k] / m), 0));
        const sum = act.reduce((s, k) => s + (u[k] < TINY ? 0 : w(k) * Math.pow(u[k] / m, p)), 0);
        return m * Math.pow(sum, 1 / p);
      }
      case "soft-min": {
        const T = this.a.temperature;
        const m = min();
        return m - T * Math.log(act.reduce((s, k) => s + w(k) * Math.exp((m - u[k]) / T), 0));
      }
      case "cvar": {
        let best = -Infinity;
        for (const j of act) {
          const short = act.reduce((s, k) => s + w(k) * Math.max(u[j] - u[k], 0), 0);
          best = Math.max(best, u[j] - short / this.a.alpha);
        }
        return best;
      }
      case "points-ratio": {
        let num = 0, den = 0;
        for (let k = 0; k < this.k; k++) {
          if (Number.isNaN(u[k])) continue;
          if (this.rubric.penalty[k]) num -= b[k] * (1 - u[k]);
          else { num += b[k] * u[k]; den += b[k]; }
        }
        return den > 0 ? Math.min(Math.max(num / den, 0), 1) : NaN;
      }
      case "all-or-nothing":
        return this.passes(u) ? 1 : 0;
      case "gated":
        return this.passes(u) ? d : 0;
      case "hierarchical": {
        if (this.passes(u)) return d;
        let num = 0;
        for (const k of act) if (this.req[k]) num += b[k] * u[k];
        return num / W;
      }
      default:
        return NaN;
    }
  }

  /** Unbiased std of u_k over the group's valid rows where present; undefined if < 2 such rows. */
  private stats(k: number, start: number, end: number, U: Float64Array, d: Float64Array): { mean: number; sd: number } | undefined {
    const K = this.k;
    const xs: number[] = [];
    for (let i = start; i < end; i++) if (!Number.isNaN(d[i]) && !Number.isNaN(U[i * K + k])) xs.push(U[i * K + k]);
    if (xs.length < 2) return undefined;
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    const sd = Math.sqrt(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / (xs.length - 1));
    return { mean, sd };
  }

  /** b normalized over the criteria with a saturation in the group (the ones present). */
  private normalized(sat: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
    const f = new Float64Array(this.k);
    let sum = 0;
    for (let k = 0; k < this.k; k++) if (!Number.isNaN(sat[k])) sum += b[k];
    for (let k = 0; k < this.k; k++) if (!Number.isNaN(sat[k])) f[k] = b[k] / sum;
    return f;
  }

  private weightedMean(u: ArrayLike<number>, f: ArrayLike<number>): number {
    let num = 0, den = 0;
    for (let k = 0; k < this.k; k++) if (!Number.isNaN(u[k])) { num += f[k] * u[k]; den += f[k]; }
    return den > 0 ? num / den : NaN;
  }

  /** Clears the per-call state (pow3r's contrast sums). */
  begin(): void {
    this.cSum.fill(0);
    this.cCount.fill(0);
    this.pending = [];
  }

  /**
   * One group with a valid row: rewards of its valid rows into r, returns the reported weights.
   * dvao: f = b sigma normalized (b when all sigma are 0); mo-grpo: r = sum_k w_k z_ik;
   * pow3r: contrast only (weights and rewards come in pow3rFinish).
   */
  group(g: number, start: number, end: number, U: Float64Array, d: Float64Array, sat: Float64Array, b: ArrayLike<number>, r: Float64Array): Float64Array {
    const K = this.k;
    const method = this.s.method as AggregatorMethod;
    const row = (i: number) => U.subarray(i * K, i * K + K);
    if (method === "pow3r") {
      for (let k = 0; k < K; k++) {
        const st = this.stats(k, start, end, U, d);
        if (st) { this.cSum[k] += st.sd; this.cCount[k]++; }
      }
      this.pending.push({ g, start, end, sat: sat.slice(), b: Array.from(b) });
      return new Float64Array(K);
    }
    if (method === "dvao") {
      const v = new Float64Array(K);
      let total = 0;
      for (let k = 0; k < K; k++) {
        if (Number.isNaN(sat[k])) continue;
        v[k] = b[k] * (this.stats(k, start, end, U, d)?.sd ?? 0);
        total += v[k];
      }
      const f = total > 0 ? v.map((x) => x / total) : this.normalized(sat, b);
      for (let i = start; i < end; i++) {
        if (Number.isNaN(d[i])) continue;
        const ri = this.weightedMean(row(i), f);
        r[i] = Number.isNaN(ri) ? d[i] : ri;
      }
      return f;
    }
    const f = this.normalized(sat, b);
    if (method === "mo-grpo") {
      const st = Array.from({ length: K }, (_, k) => this.stats(k, start, end, U, d));
      for (let i = start; i < end; i++) {
        if (Number.isNaN(d[i])) continue;
        let a = 0;
        for (let k = 0; k < K; k++) {
          const x = U[i * K + k];
          const z = st[k];
          if (z && !Number.isNaN(x)) a += f[k] * ((x - z.mean) / (z.sd + this.s.advEps));
        }
        r[i] = a;
      }
      return f;
    }
    for (let i = start; i < end; i++) {
      if (Number.isNaN(d[i])) continue;
      const ri = this.row(method, row(i), b, d[i]);
      r[i] = Number.isNaN(ri) ? d[i] : ri;
    }
    return f;
  }

  /** pow3r weights over the criteria present in `mask` (see assembly/aggregators.ts pow3rWeights). */
  pow3rWeights(b: ArrayLike<number>, mask: ArrayLike<number>, sbar: ArrayLike<number>, seen: ArrayLike<number>): Float64Array {
    const K = this.k;
    const used = (k: number) => !Number.isNaN(mask[k]);
    let v: Float64Array = new Float64Array(K);
    let total = 0;
    for (let k = 0; k < K; k++) if (used(k)) { v[k] = b[k] * (seen[k] ? sbar[k] : 0); total += v[k]; }
    if (total > 0) v = v.map((x) => x / total);
    else v = this.normalized(mask, b);
    let sum = 0;
    for (let k = 0; k < K; k++) {
      if (used(k) && b[k] > 0) v[k] = Math.min(Math.max(v[k], this.floor), this.clip);
      sum += v[k];
    }
    return sum > 0 ? v.map((x) => x / sum) : this.normalized(mask, b);
  }

  /**
   * pow3r after every group: cbar <- EMA of the call's mean group contrast, then each pending
   * group's weights and rewards. Returns the new state; stats field 5 (weight) gets the weights.
   */
  pow3rFinish(U: Float64Array, d: Float64Array, r: Float64Array, sbar: Float64Array, seen: Uint8Array,
    weightsOut: Float32Array, stats: Float64Array): { sbar: Float64Array; seen: Uint8Array } {
    const K = this.k;
    const nb = sbar.slice(), ns = seen.slice();
    for (let k = 0; k < K; k++) {
      if (this.cCount[k] === 0) continue;
      const chat = this.cSum[k] / this.cCount[k];
      nb[k] = ns[k] ? this.s.decay * nb[k] + (1 - this.s.decay) * chat : chat;
      ns[k] = 1;
    }
    for (const p of this.pending) {
      const f = this.pow3rWeights(p.b, p.sat, nb, ns);
      for (let i = p.start; i < p.end; i++) {
        if (Number.isNaN(d[i])) continue;
        const ri = this.weightedMean(U.subarray(i * K, i * K + K), f);
        r[i] = Number.isNaN(ri) ? d[i] : ri;
      }
      for (let k = 0; k < K; k++) if (!Number.isNaN(p.sat[k])) stats[Stat.Weight * K + k] += f[k];
      weightsOut.set(f, p.g * K);
    }
    this.pending = [];
    return { sbar: nb, seen: ns };
  }

  /** scoreOne: the row as a group of one (mo-grpo: 0; dvao: d; pow3r: the current state's weights). */
  one(u: Float64Array, d: number, sbar: Float64Array, seen: Uint8Array): number {
    const method = this.s.method as AggregatorMethod;
    if (method === "mo-grpo") return 0;
    if (method === "dvao") return d;
    const r = method === "pow3r"
      ? this.weightedMean(u, this.pow3rWeights(this.rubric.base, u, sbar, seen))
      : this.row(method, u, this.rubric.base, d);
    return Number.isNaN(r) ? d : r;
  }

  /** F-GRPO: each group's advantages times (1 - share of valid rows with d >= threshold)^gamma_f. */
  fGrpo(sizes: ArrayLike<number>, d: Float64Array, advantages: Float32Array): void {
    const gamma = this.a.fGrpo;
    if (gamma === undefined) return;
    for (let g = 0, start = 0; g < sizes.length; start += sizes[g++]) {
      let count = 0, ok = 0;
      for (let i = start; i < start + sizes[g]; i++) {
        if (Number.isNaN(d[i])) continue;
        count++;
        if (d[i] >= this.passAt) ok++;
      }
      if (count === 0) continue;
      const scale = Math.pow(1 - ok / count, gamma);
      for (let i = start; i < start + sizes[g]; i++) advantages[i] *= scale;
    }
  }
}
