import type { Backend, Batch, Outputs, RawResult, Settings, StreamState } from "./backend.js";
import { deliver } from "./backend.js";
import { Stat } from "./abi.js";
import { countOutOfScale, normalizedScore, outOfScaleError, type CompiledRubric } from "./rubric.js";
import { infiniteScoreError } from "./validate.js";
import { isAggregator, ReferenceAggregators } from "./aggregators.js";

/**
 * The `js` backend: the spec written out plainly in float64, one step per block. It is the
 * readable reference for the wasm kernels (which agree with it to ~1e-6) and runs where wasm cannot.
 */
/** constant "drop": a criterion whose values in a group spread no more than this is constant (spec). */
export const CONSTANT_SPREAD = 1e-6;

export class ReferenceBackend implements Backend {
  readonly name = "js" as const;
  private readonly k: number;
  private sbar: Float64Array;
  private seen: Uint8Array;
  private streamF!: Float64Array;
  private streamReward!: ArrayLike<number>;
  private readonly agg: ReferenceAggregators;

  constructor(private readonly rubric: CompiledRubric, private readonly s: Settings) {
    this.k = rubric.ids.length;
    this.sbar = new Float64Array(this.k);
    this.seen = new Uint8Array(this.k);
    this.agg = new ReferenceAggregators(rubric, s);
    this.setStreamWeights(this.sbar, this.seen);
  }

  input(n: number): Float32Array {
    return new Float32Array(n * this.k);
  }

  /** Normalized score u (NaN = absent): clamp to the scale, flip penalties. */
  private normalize(x: number, k: number): number {
    return normalizedScore(this.rubric, x, k);
  }

  /** sum w u / sum w over the present criteria of u; NaN when that sum of weights is 0. */
  private weightedMean(u: Float64Array, w: ArrayLike<number>): number {
    let num = 0, den = 0;
    for (let k = 0; k < this.k; k++) {
      if (Number.isNaN(u[k])) continue;
      num += w[k] * u[k];
      den += w[k];
    }
    return den > 0 ? num / den : NaN;
  }

  /**
   * Steps 4-6: focal weights f from saturation s (NaN = criterion not in use) and base weights b:
   * b (1 - s + eps)^gamma normalized (b normalized when that sum is 0), then bounds and mix.
   * Fixed criteria (spec "Guarded criteria") keep b_k / sum b; the others share the rest, and only
   * they are projected onto the bounds. Also returns the vector to weight rewards with:
   * proportional to f, and the raw coefficients where nothing rescales them, so that gamma = 0
   * gives the direct reward exactly.
   */
  private focal(s: ArrayLike<number>, b: ArrayLike<number>): { f: Float64Array; reward: ArrayLike<number> } {
    const { gamma, eps, mix } = this.s;
    const fixed = this.rubric.fixed;
    const f = new Float64Array(this.k);
    let total = 0, sumB = 0, fixedB = 0, anyFixed = false;
    for (let k = 0; k < this.k; k++) {
      if (Number.isNaN(s[k])) continue;
      sumB += b[k];
      if (fixed[k]) { anyFixed = true; fixedB += b[k]; continue; }
      const h = 1 - s[k] + eps;
      f[k] = b[k] * (gamma === 0 ? 1 : h > 0 ? Math.pow(h, gamma) : 0);
      total += f[k];
    }
    const guarded = anyFixed && gamma !== 0;
    const share = 1 - fixedB / sumB;
    const coef = f.slice();
    for (let k = 0; k < this.k; k++) {
      if (Number.isNaN(s[k])) continue;
      if (!anyFixed) f[k] = total > 0 ? f[k] / total : b[k] / sumB;
      else f[k] = guarded && !fixed[k] && total > 0 ? (share * f[k]) / total : b[k] / sumB;
    }
    const bounded = this.s.minWeight !== undefined || this.s.maxWeight !== undefined;
    if (bounded) this.project(f, s, anyFixed ? share : 1);
    if (mix !== 1) {
      for (let k = 0; k < this.k; k++) if (!Number.isNaN(s[k])) f[k] = mix * f[k] + (1 - mix) * (b[k] / sumB);
    }
    return { f, reward: bounded || mix !== 1 || guarded ? f : total > 0 && !anyFixed ? coef : b };
  }

  /**
   * constant "drop": focal weights over the kept criteria; where none varies, f = b (normalized).
   * Weights rewards with f itself where focal() would hand back b, which still covers the dropped.
   */
  private focalDropping(kept: ArrayLike<number>, b: ArrayLike<number>, anyVaries: boolean): { f: Float64Array; reward: ArrayLike<number> } {
    if (!anyVaries) return { f: this.staticWeights(kept, b), reward: b };
    const { f, reward } = this.focal(kept, b);
    return { f, reward: reward === b ? f : reward };
  }

  /**
   * Step 5: Euclidean projection of the non-fixed criteria in use onto {sum f = target, lo <= f <= hi}
   * (target = 1 - the fixed share). Where the box cannot hold the target with their count n, it
   * widens to lo' = min(lo, target / n), hi' = max(hi, target / n) (the spec's fallback for target 1).
   */
  private project(f: Float64Array, s: ArrayLike<number>, target: number): void {
    const used: number[] = [];
    for (let k = 0; k < this.k; k++) if (!Number.isNaN(s[k]) && !this.rubric.fixed[k]) used.push(k);
    const kg = used.length;
    if (kg === 0) return;
    let lo = this.s.minWeight ?? 0, hi = this.s.maxWeight ?? 1;
    if (!(lo * kg <= target && target <= hi * kg)) {
      lo = Math.min(lo, target / kg);
      hi = Math.max(hi, target / kg);
    }
    const sum = (theta: number) => used.reduce((acc, k) => acc + Math.min(Math.max(f[k] - theta, lo), hi), 0);
    // sum(theta) falls as theta rises: bisect between a theta where it is >= target and one where it is <= target.
    let a = Math.min(...used.map((k) => f[k])) - hi, b = Math.max(...used.map((k) => f[k])) - lo;
    for (let i = 0; i < 200 && b - a > 1e-15; i++) {
      const mid = (a + b) / 2;
      if (sum(mid) > target) a = mid;
      else b = mid;
    }
    const theta = (a + b) / 2;
    for (const k of used) f[k] = Math.min(Math.max(f[k] - theta, lo), hi);
  }

  /** Stream weights from sbar over all K criteria; no estimate yet counts as 0. */
  private setStreamWeights(sbar: Float64Array, seen: Uint8Array): void {
    const { f, reward } = this.focal(Array.from(sbar, (v, k) => (seen[k] ? v : 0)), this.rubric.base);
    this.streamF = f;
    this.streamReward = reward;
  }

  /** Stream weights f for a state, leaving this backend's own alone (step-keyed calls: src/stepped.ts). */
  streamWeightsFor(sbar: ArrayLike<number>, seen: ArrayLike<number>): Float64Array {
    return this.focal(Array.from(sbar, (v, k) => (seen[k] ? v : 0)), this.rubric.base).f;
  }

  /** Fresh arrays serve "reuse" too: this backend is the readable reference, not the fast path. */
  score(batch: Batch, outputs: Outputs): RawResult {
    const raw = this.compute(batch);
    return typeof outputs === "object" ? deliver(raw, outputs) : raw;
  }

  private compute(batch: Batch): RawResult {
    const { n, scores, sizes, valid, weights } = batch;
    const K = this.k, G = sizes.length, s = this.s;
    const stream = s.scope === "stream";
    // Before anything changes: outOfScale "error" refuses the call whole.
    const outOfScale = new Float64Array(K);
    const counted = countOutOfScale(this.rubric, scores, n, valid, outOfScale);
    if (counted.outside > 0 && s.outOfScale === "error") throw outOfScaleError(this.rubric, scores, n, valid);
    const gdpoLike = s.method === "gdpo" || s.method === "sa-mrpo";
    // Step 1: normalized scores u (NaN = absent) and the direct reward; invalid rows keep d = NaN.
    const U = new Float64Array(n * K);
    const d = new Float64Array(n).fill(NaN);
    const row = (i: number) => U.subarray(i * K, i * K + K);
    for (let i = 0; i < n * K; i++) {
      if (scores[i] === Infinity || scores[i] === -Infinity) throw infiniteScoreError(scores, K);
      U[i] = this.normalize(scores[i], i % K);
    }
    const baseOf = (g: number) => (weights ? weights.subarray(g * K, g * K + K) : this.rubric.base);
    for (let g = 0, i = 0; g < G; g++) {
      for (const end = i + sizes[g]; i < end; i++) if (!(valid && !valid[i])) d[i] = this.weightedMean(row(i), baseOf(g));
    }

    const r = new Float64Array(n).fill(NaN);
    const stats = new Float64Array(Stat.End * K);
    const weightsOut = new Float32Array(stream ? K : G * K), satOut = new Float32Array(stream ? K : G * K);
    const gdpoA = new Float64Array(n);
    const satSum = new Float64Array(K), satCount = new Float64Array(K);
    this.agg.begin();
    for (let g = 0, start = 0; g < G; start += sizes[g++]) {
      const end = start + sizes[g], b = baseOf(g);
      // Steps 2-3: reward-tilted rollout weights p_i = exp(d_i / tau) over the valid rows, and the
      // saturation s_k = sum p u / sum p over the rows that have k. The shift by the best d among
      // those rows cancels in the ratio and keeps exp from underflowing; statistics come along.
      let anyValid = false;
      for (let i = start; i < end; i++) if (!Number.isNaN(d[i])) anyValid = true;
      const sat = new Float64Array(K).fill(NaN);
      // constant "drop": the criteria that stay in steps 4-7 (NaN = left out like an absent one).
      const kept = new Float64Array(K).fill(NaN);
      let anyVaries = false;
      for (let k = 0; k < K; k++) {
        let top = -Infinity;
        for (let i = start; i < end; i++) if (!Number.isNaN(U[i * K + k]) && d[i] > top) top = d[i];
        let num = 0, mass = 0, count = 0, sum = 0, sq = 0, lo = Infinity, hi = -Infinity;
        for (let i = start; i < end; i++) {
          const u = U[i * K + k];
          if (Number.isNaN(d[i]) || Number.isNaN(u)) continue;
          const p = Math.exp((d[i] - top) / s.tau);
          num += p * u; mass += p;
          count++; sum += u; sq += u * u; lo = Math.min(lo, u); hi = Math.max(hi, u);
        }
        if (count === 0) continue;
        sat[k] = Math.min(Math.max(num / mass, 0), 1);
        const constant = count < 2 || hi - lo <= CONSTANT_SPREAD;
        if (!constant) anyVaries = true;
        if (!constant || this.rubric.fixed[k]) kept[k] = sat[k];
        stats[Stat.Sum * K + k] += sum; stats[Stat.Sq * K + k] += sq; stats[Stat.Count * K + k] += count;
        stats[Stat.Constant * K + k] += lo === hi ? 1 : 0; stats[Stat.Present * K + k] += 1;
        if (stream) { satSum[k] += sat[k]; satCount[k]++; }
      }
      if (stream) continue;
      satOut.set(sat, g * K);
      if (!anyValid) continue;
      // Steps 4-7 (a row whose present criteria all weigh 0 keeps its direct reward).
      const aggregated = isAggregator(s.method);
      const { f, reward } = aggregated ? { f: this.agg.group(g, start, end, U, d, sat, b, r), reward: b }
        : s.method !== "focal" ? { f: this.staticWeights(sat, b), reward: b }
        : s.constant === "drop" ? this.focalDropping(anyVaries ? kept : sat, b, anyVaries) : this.focal(sat, b);
      for (let i = start; i < end; i++) {
        if (Number.isNaN(d[i]) || aggregated) continue;
        const ri = s.method === "focal" ? this.weightedMean(row(i), reward) : d[i];
        r[i] = Number.isNaN(ri) ? d[i] : ri;
      }
      if (s.method === "gdpo") this.gdpoGroup(start, end, U, d, b, gdpoA);
      for (let k = 0; k < K; k++) {
        if (Number.isNaN(sat[k])) continue;
        stats[Stat.Weight * K + k] += f[k];
        stats[Stat.Saturation * K + k] += sat[k];
      }
      weightsOut.set(f, g * K);
    }

    if (s.method === "sa-mrpo") {
      // SA-MRPO: batch saturation s_k = mean u over the valid rows where k is present, then the
      // GDPO z-scores weighted by b_k (1 - s_k)^gamma (gamma = 0: exactly gdpo's weights).
      const factor = Array.from({ length: K }, (_, k) => (stats[Stat.Count * K + k] > 0 ? Math.pow(1 - stats[k] / stats[Stat.Count * K + k], s.gamma) : 1));
      for (let g = 0, start = 0; g < G; start += sizes[g++]) this.gdpoGroup(start, start + sizes[g], U, d, baseOf(g), gdpoA, factor);
    }
    if (s.method === "pow3r") ({ sbar: this.sbar, seen: this.seen } = this.agg.pow3rFinish(U, d, r, this.sbar, this.seen, weightsOut, stats));
    if (stream) {
      // Streaming saturation: EMA of the mean group saturation; a first estimate is taken as is.
      const sbar = this.sbar.slice(), seen = this.seen.slice();
      for (let k = 0; k < K; k++) {
        if (satCount[k] === 0) continue;
        const shat = satSum[k] / satCount[k];
        sbar[k] = seen[k] ? s.decay * sbar[k] + (1 - s.decay) * shat : shat;
        seen[k] = 1;
      }
      this.sbar = sbar;
      this.seen = seen;
      this.setStreamWeights(sbar, seen);
      for (let i = 0; i < n; i++) {
        if (Number.isNaN(d[i])) continue;
        const ri = this.weightedMean(row(i), this.streamReward);
        r[i] = Number.isNaN(ri) ? d[i] : ri;
      }
      for (let k = 0; k < K; k++) {
        weightsOut[k] = this.streamF[k];
        satOut[k] = seen[k] ? sbar[k] : NaN;
        stats[Stat.Weight * K + k] = this.streamF[k];
        stats[Stat.Saturation * K + k] = seen[k] ? sbar[k] : 0;
      }
    }

    // Step 8: invalid rows take their group's mean reward, empty groups the batch's. Step 9.
    const rewards = Float32Array.from(r), advantages = new Float32Array(n);
    let batchSum = 0, batchCount = 0, zeroStd = 0, active = 0;
    const empty: number[] = [];
    for (let g = 0, start = 0; g < G; start += sizes[g++]) {
      const end = start + sizes[g];
      let sum = 0, count = 0, lo = Infinity, hi = -Infinity;
      for (let i = start; i < end; i++) {
        if (Number.isNaN(d[i])) continue;
        sum += rewards[i]; count++;
        lo = Math.min(lo, rewards[i]); hi = Math.max(hi, rewards[i]);
      }
      batchSum += sum; batchCount += count;
      if (count === 0) { empty.push(g); continue; }
      active++;
      if (lo === hi) zeroStd++;
      const mean = sum / count;
      for (let i = start; i < end; i++) if (Number.isNaN(d[i])) rewards[i] = mean;
      if (!gdpoLike) this.groupAdvantages(start, end, count, mean, rewards, d, advantages);
    }
    if (empty.length > 0) {
      const mean = batchCount > 0 ? batchSum / batchCount : 0;
      for (let g = 0, start = 0; g < G; start += sizes[g++]) {
        if (empty.includes(g)) rewards.fill(mean, start, start + sizes[g]);
      }
    }
    if (gdpoLike) this.gdpoBatch(Float32Array.from(gdpoA), d, advantages);
    this.agg.fGrpo(sizes, d, advantages);
    return { rewards, direct: Float32Array.from(d), advantages, weights: weightsOut, saturation: satOut, stats, zeroStdGroups: zeroStd, activeGroups: active, outOfScale, scalePresent: counted.present };
  }

  /** Weighted-mean and GDPO report the base weights normalized over the criteria in use. */
  private staticWeights(sat: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
    const f = new Float64Array(this.k);
    let sumB = 0;
    for (let k = 0; k < this.k; k++) if (!Number.isNaN(sat[k])) sumB += b[k];
    for (let k = 0; k < this.k; k++) if (!Number.isNaN(sat[k])) f[k] = b[k] / sumB;
    return f;
  }

  /**
   * GDPO: z-score each criterion within the group (valid rows where present), a_i = sum_k b_k z_ik,
   * with b normalized once over every criterion of the (instance) rubric, as TRL's normalize_then_sum:
   * a criterion absent from the group adds nothing, and the others keep their rubric-wide share.
   */
  private gdpoGroup(start: number, end: number, U: Float64Array, d: Float64Array, base: ArrayLike<number>, out: Float64Array,
    factor?: readonly number[]): void {
    const K = this.k;
    let sumB = 0;
    for (let k = 0; k < K; k++) sumB += base[k];
    const b = Array.from(base, (w, k) => (w / sumB) * (factor ? factor[k] : 1));
    for (let k = 0; k < K; k++) {
      let count = 0, sum = 0, ss = 0;
      const present = (i: number) => !Number.isNaN(d[i]) && !Number.isNaN(U[i * K + k]);
      for (let i = start; i < end; i++) if (present(i)) { count++; sum += U[i * K + k]; }
      if (count < 2) continue;
      const mean = sum / count;
      for (let i = start; i < end; i++) if (present(i)) ss += (U[i * K + k] - mean) ** 2;
      const std = Math.sqrt(ss / (count - 1));
      for (let i = start; i < end; i++) if (present(i)) out[i] += b[k] * ((U[i * K + k] - mean) / (std + this.s.advEps));
    }
  }

  /** GDPO's advantage: a normalized over every valid row of the batch. */
  private gdpoBatch(a: Float32Array, d: Float64Array, out: Float32Array): void {
    let count = 0, sum = 0, ss = 0;
    for (let i = 0; i < a.length; i++) if (!Number.isNaN(d[i])) { count++; sum += a[i]; }
    if (count < 2) return;
    const mean = sum / count;
    for (let i = 0; i < a.length; i++) if (!Number.isNaN(d[i])) ss += (a[i] - mean) ** 2;
    const std = Math.sqrt(ss / (count - 1));
    for (let i = 0; i < a.length; i++) if (!Number.isNaN(d[i])) out[i] = (a[i] - mean) / (std + this.s.advEps);
  }

  /** Step 9 over a group's valid rows; fewer than two valid rows give 0. */
  private groupAdvantages(start: number, end: number, m: number, mean: number, r: Float32Array, d: Float64Array, out: Float32Array): void {
    const mode = this.s.advantage;
    if (m < 2 || mode === "none") return;
    let ss = 0;
    for (let i = start; i < end; i++) if (!Number.isNaN(d[i])) ss += (r[i] - mean) ** 2;
    const std = Math.sqrt(ss / (m - 1));
    for (let i = start; i < end; i++) {
      if (Number.isNaN(d[i])) continue;
      if (mode === "grpo") out[i] = (r[i] - mean) / (std + this.s.advEps);
      else if (mode === "dr-grpo") out[i] = r[i] - mean;
      else out[i] = r[i] - (mean * m - r[i]) / (m - 1);
    }
  }

  scoreOne(row: Float32Array): number {
    for (let k = 0; k < row.length; k++) if (row[k] === Infinity || row[k] === -Infinity) return NaN;
    const u = Float64Array.from(row, (x, k) => this.normalize(x, k));
    const d = this.weightedMean(u, this.rubric.base);
    if (!Number.isNaN(d) && isAggregator(this.s.method)) return this.agg.one(u, d, this.sbar, this.seen);
    // constant "drop": a group of one has only constant criteria, so f = b.
    if (Number.isNaN(d) || this.s.method !== "focal" || this.s.constant === "drop") return d;
    const w = this.s.scope === "stream" ? this.streamReward : this.focal(u, this.rubric.base).reward;
    const r = this.weightedMean(u, w);
    return Number.isNaN(r) ? d : r;
  }

  getState(): StreamState {
    return { sbar: this.sbar.slice(), seen: this.seen.slice() };
  }

  setState(state: StreamState): void {
    this.sbar = Float64Array.from(state.sbar);
    this.seen = Uint8Array.from(state.seen);
    this.setStreamWeights(this.sbar, this.seen);
  }
}
