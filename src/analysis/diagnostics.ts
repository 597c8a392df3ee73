/**
 * Diagnostics of a method over one call or a whole replay: add() each call's inputs and the
 * engine's result, read metrics() at any time. Memory is O(K), whatever the number of calls.
 *
 * Names: TRL's where TRL has one (`reward`, `reward_std`, `frac_reward_zero_std`,
 * `rewards/<id>/mean|std`), the rest under `focal/...` and `balance/...`:
 *
 * Per criterion k (over the groups where k is present in a valid row):
 *   rewards/<id>/mean, rewards/<id>/std   u over the valid rows where present (pooled, unbiased std)
 *   focal/<id>/saturation, focal/<id>/weight   mean over those groups of s_k and of the weight used
 *   focal/<id>/frac_constant        share of the groups where u_k is constant (no learning signal)
 *   focal/<id>/weight_on_constant   share of k's weight that went to those groups
 *   focal/<id>/unexplored           share of the groups where no valid rollout satisfies k
 *                                   (u_k >= threshold)
 *   focal/<id>/suppressed           among rollouts satisfying k in groups where k discriminates
 *                                   (some rollouts satisfy it, some not), the share whose
 *                                   advantage is <= 0: the criterion is won but not reinforced
 * Overall: the same shares pooled over all (group, criterion) pairs (focal/frac_constant_criteria,
 *   focal/weight_on_constant, focal/frac_unexplored, focal/frac_suppressed), the direct reward
 *   (focal/direct_reward) and the share of valid rows (focal/frac_valid).
 * Balance, over the per-criterion means m_k of u (criteria seen at least once):
 *   balance/worst_criterion_mean = min m_k; balance/spread_std (population std of the m_k),
 *   balance/spread_range = max - min, balance/gini = sum_jk |m_j - m_k| / (2 K^2 mean m);
 *   balance/strict_completion = share of valid rows where every present required criterion (every
 *   criterion when none is marked required) has u >= threshold.
 *   These describe the rollouts themselves, so they are the same for every method on a fixed log.
 *   The balance/top1/... versions describe each group's preferred rollout under the method (the
 *   rows with the group's highest reward, ties sharing the weight): which criteria the method
 *   pushes the policy towards.
 * Ranking against the direct reward d (groups with >= 2 valid rows):
 *   focal/kendall_distance   discordant pairs (r and d order them oppositely: 1; tied in exactly
 *                            one of them: 1/2) over all pairs, pooled over the groups
 *   focal/sign_flip_rate     share of valid rows whose advantage has the opposite sign of the
 *                            direct GRPO advantage d_i - mean d (both non-zero)
 *   focal/top1_agreement     share of groups where a row with the best d also has the best r
 *   focal/mean_abs_advantage mean |advantage| over the valid rows (the size of the update; F-GRPO
 *                            and all-or-nothing shrink it)
 */
import { compileRubric, normalizeRows, scaleOf, type CompiledRubric } from "../rubric.js";
import type { Criterion, Rubric, ScoreResult } from "../types.js";
import { bitCount } from "./pairs.js";

export interface DiagnosticsOptions {
  /** A criterion is satisfied at u >= threshold (the [0, 1] scale). Default 0.5. */
  threshold?: number;
}

/** One call's inputs in diagnostic terms; prepare() once, add() it for every method. */
export interface PreparedCall {
  n: number;
  sizes: ArrayLike<number>;
  /** n x K normalized scores, NaN = absent. */
  u: Float64Array;
  /** G x K: 1 where the criterion is judged in a valid row of the group (valid: the caller's mask). */
  present: Uint8Array;
  /** Per criterion: scores of unmasked rows outside the scale (clamped into it), as the engine counts them. */
  outOfScale: Float64Array;
  /** Their total, and the present scores of unmasked rows (the share's denominator). */
  clamped: number;
  scored: number;
  /** Kept by Diagnostics.add for the other methods on this call (see memoOf). */
  memo?: CallMemo;
}

/**
 * Per group (nv: its valid rows, 0 = not kept yet), per row (strict: the row passes every required
 * criterion) and per group x criterion, what add() keeps. `passed`: bit x set where the group's
 * x-th valid row has u >= at (kept for groups of at most MASK_ROWS valid rows).
 */
interface CallMemo {
  /** The threshold the counts of passes (yes) are for. */
  at: number;
  nv: Int32Array; rows: Int32Array; strict: Uint8Array;
  c: Int32Array; yes: Int32Array; flat: Uint8Array; passed: Int32Array;
  s0: Float64Array; s1: Float64Array; q0: Float64Array; q1: Float64Array;
}

/** The most valid rows of a group whose passes are kept as bits of one int32. */
const MASK_ROWS = 32;

function memoOf(call: PreparedCall, G: number, K: number, at: number): CallMemo {
  const m = call.memo;
  if (m && m.nv.length === G && m.c.length === G * K && m.rows.length === call.n) {
    if (m.at !== at) {
      m.at = at;
      m.nv.fill(0);
    }
    return m;
  }
  const f = () => new Float64Array(G * K);
  return (call.memo = {
    at,
    nv: new Int32Array(G), rows: new Int32Array(call.n), strict: new Uint8Array(call.n),
    c: new Int32Array(G * K), yes: new Int32Array(G * K), flat: new Uint8Array(G * K), passed: new Int32Array(G * K),
    s0: f(), s1: f(), q0: f(), q1: f(),
  });
}

function sameRows(kept: Int32Array, at: number, valid: Int32Array, nv: number): boolean {
  for (let x = 0; x < nv; x++) if (kept[at + x] !== valid[x]) return false;
  return true;
}

/**
 * Normalized scores (penalties flipped) of a call, shared by the methods compared on it.
 * `reuse`: the previous call's, whose buffers are written again (a replay's calls, one after
 * another: fresh buffers per call cost their page faults and garbage collections).
 */
export function prepare(rubric: CompiledRubric, scores: ArrayLike<number>, groupSizes: ArrayLike<number>, valid?: ArrayLike<number | boolean>, reuse?: PreparedCall): PreparedCall {
  const K = rubric.ids.length;
  const n = checkRows(scores.length, K, groupSizes, valid);
  const G = groupSizes.length;
  const u = reuse && reuse.u.buffer.byteLength >= 8 * n * K ? new Float64Array(reuse.u.buffer, 0, n * K) : new Float64Array(n * K);
  const present = reuse && reuse.present.buffer.byteLength >= G * K ? new Uint8Array(reuse.present.buffer, 0, G * K) : new Uint8Array(G * K);
  const outOfScale = reuse ? reuse.outOfScale : new Float64Array(K);
  const scored = normalizeRows(rubric, scores, groupSizes, valid, u, present, outOfScale);
  let clamped = 0;
  for (let k = 0; k < K; k++) clamped += outOfScale[k]!;
  const memo = reuse?.memo;
  if (memo) memo.nv.fill(0); // kept for this call's groups anew
  return { n, sizes: groupSizes, u, present, outOfScale, clamped, scored, memo };
}

/** The rows of a call of `length` scores of K criteria, checked against its group sizes and mask before anything is written. */
function checkRows(length: number, K: number, groupSizes: ArrayLike<number>, valid: ArrayLike<number | boolean> | undefined): number {
  const n = length / K;
  let rows = 0;
  for (let g = 0; g < groupSizes.length; g++) {
    const m = groupSizes[g]!;
    if (!Number.isSafeInteger(m) || m < 0) throw new RangeError(`prepare: group ${g} has size ${m}; sizes must be integers >= 0`);
    rows += m;
  }
  if (rows !== n) throw new RangeError(`prepare: the group sizes sum to ${rows} rows, the scores hold ${n} (${length} scores of ${K} criteria)`);
  if (valid !== undefined && valid.length !== n) throw new RangeError(`prepare: valid must have one entry per row (${n}), got ${valid.length}`);
  return n;
}

/** A criterion's scores outside its scale [lo, hi] (clamped into it). */
export interface OutOfScaleCount {
  id: string;
  count: number;
  scale: readonly [number, number];
}

/** Per criterion, in rubric order; NaN where the criterion was never judged. */
export interface CriterionSummary {
  /** Valid rows where the criterion was judged. */
  judged: number[];
  /** Mean and (unbiased) std of the normalized score u. */
  mean: number[];
  std: number[];
  /** Share of the groups (where judged) in which u is constant: fewer than two values, or all equal. */
  fracConstant: number[];
  /** The rubric's weight, normalized over the criteria judged in a group, mean over groups. */
  staticWeight: number[];
  /** Mean over those groups of the method's weight, and of its saturation (where it has one). */
  weight: number[];
  saturation: number[];
  unexplored: number[];
  suppressed: number[];
  weightOnConstant: number[];
}

const PASS_SLACK = 1e-6;

export class Diagnostics {
  readonly rubric: CompiledRubric;
  private readonly K: number;
  private readonly at: number;
  private readonly pass: Float64Array;
  private readonly req: Uint8Array;
  // per criterion
  private readonly cnt: Float64Array; private readonly sum: Float64Array; private readonly sq: Float64Array;
  private readonly groups: Float64Array; private readonly constant: Float64Array;
  private readonly satSum: Float64Array; private readonly satN: Float64Array;
  private readonly wSum: Float64Array; private readonly wConst: Float64Array;
  private readonly unexplored: Float64Array;
  private readonly sat: Float64Array; private readonly suppressed: Float64Array;
  private readonly top: Float64Array; private readonly topN: Float64Array;
  private readonly staticSum: Float64Array; private readonly here: Uint8Array;
  private readonly outside: Float64Array; private scored = 0;
  // scratch, reused by every group (no allocation per group)
  private validRows_ = new Int32Array(0); private topRows = new Int32Array(0);
  private rv = new Float64Array(0); private dv = new Float64Array(0);
  // overall
  private rows = 0; private validRows = 0;
  private rSum = 0; private rSq = 0; private dSum = 0; private absA = 0;
  private activeGroups = 0; private zeroStd = 0;
  private strict = 0; private topStrict = 0; private topGroups = 0;
  private pairs = 0; private discord = 0;
  private signRows = 0; private flips = 0;
  private rankGroups = 0; private agree = 0; private zeroAdvantage = 0;

  constructor(rubric: Rubric | readonly Criterion[] | CompiledRubric, options: DiagnosticsOptions = {}) {
    this.rubric = "ids" in (rubric as CompiledRubric) ? (rubric as CompiledRubric) : compileRubric(rubric as Rubric);
    const K = (this.K = this.rubric.ids.length);
    const t = options.threshold ?? 0.5;
    if (typeof t !== "number" || !(t >= 0 && t <= 1)) throw new RangeError(`threshold must be in [0, 1], got ${String(t)}`);
    this.at = t - PASS_SLACK;
    this.pass = Float64Array.of(this.at);
    const any = this.rubric.required.some((x) => x === 1);
    this.req = Uint8Array.from(this.rubric.required, (x) => (any ? x : 1));
    const v = () => new Float64Array(K);
    this.cnt = v(); this.sum = v(); this.sq = v(); this.groups = v(); this.constant = v();
    this.satSum = v(); this.satN = v(); this.wSum = v(); this.wConst = v(); this.unexplored = v();
    this.sat = v(); this.suppressed = v(); this.top = v(); this.topN = v();
    this.staticSum = v(); this.here = new Uint8Array(K);
    this.outside = v();
  }

  /**
   * Adds one call: its prepared inputs and the engine's result for it. The sums are made in the
   * same order as a row-by-row reading would (the results do not depend on the loop layout); the
   * per-group scratch is typed and reused, so nothing is allocated per group.
   */
  add(call: PreparedCall, result: ScoreResult): void {
    const { K, at, req } = this;
    const { n, sizes, u } = call;
    const { rewards: r, direct: d, advantages: a, weights: w, saturation: s } = result;
    const G = sizes.length;
    const perGroup = w.length === G * K; // else the stream scope's one vector (the same when G = 1)
    const base = this.rubric.base;
    const { sum, sq, cnt, groups, wSum, satSum, satN, constant, wConst, unexplored, sat, suppressed, top, topN, here } = this;
    this.rows += n;
    for (let k = 0; k < K; k++) this.outside[k]! += call.outOfScale[k]!;
    this.scored += call.scored;
    for (let g = 0, start = 0; g < G; start += sizes[g++]!) {
      const end = start + sizes[g]!;
      if (this.validRows_.length < end - start) {
        this.validRows_ = new Int32Array(2 * (end - start));
        this.topRows = new Int32Array(2 * (end - start));
        this.rv = new Float64Array(2 * (end - start));
        this.dv = new Float64Array(2 * (end - start));
      }
      const valid = this.validRows_, rv = this.rv, dv = this.dv;
      let nv = 0;
      for (let i = start; i < end; i++) if (!Number.isNaN(d[i]!)) valid[nv++] = i;
      if (nv === 0) continue;
      this.activeGroups++;
      this.validRows += nv;
      // What depends on the data alone (counts, constancy, passes, the sums' step from the
      // value before to the value after this group) is kept for the next method on this call,
      // used when its valid rows are the same and its sums are where this one's were.
      const memo = memoOf(call, G, K, at);
      const record = memo.nv[g] === 0;
      const known = !record && memo.nv[g] === nv && sameRows(memo.rows, start, valid, nv);
      const rowStrict = memo.strict;
      let lo = Infinity, hi = -Infinity, best = -Infinity, bestD = -Infinity, dMean = 0;
      let rSum = this.rSum, rSq = this.rSq, dSum = this.dSum, absA = this.absA;
      const masks = nv <= MASK_ROWS;
      // low: bit x set where the x-th valid row's advantage is not positive; moved: some advantage is not 0
      let low = 0, moved = 0;
      for (let x = 0; x < nv; x++) {
        const i = valid[x]!;
        const ri = r[i]!, di = d[i]!, ai = a[i]!;
        rv[x] = ri; dv[x] = di;
        rSum += ri; rSq += ri * ri; dSum += di; dMean += di; absA += Math.abs(ai);
        lo = Math.min(lo, ri); hi = Math.max(hi, ri);
        best = Math.max(best, ri); bestD = Math.max(bestD, di);
        low |= +!(ai > 0) << x;
        moved |= +(ai !== 0);
        if (!known && !masks) rowStrict[i] = passes(u, i * K, K, req, this.pass) ? 1 : 0;
      }
      this.rSum = rSum; this.rSq = rSq; this.dSum = dSum; this.absA = absA;
      dMean /= nv;
      if (lo === hi) this.zeroStd++;
      const tops = this.topRows;
      let nt = 0;
      for (let x = 0; x < nv; x++) if (rv[x] === best) tops[nt++] = valid[x]!;
      // per criterion; strictRows: bit x clear where the x-th valid row fails a required criterion
      here.fill(0);
      let baseSum = 0, strictRows = -1;
      for (let k = 0; k < K; k++) {
        const gk = g * K + k;
        let c = 0, yes = 0, yesLow = 0, flat: boolean;
        if (known && (memo.c[gk] === 0 || (Object.is(sum[k], memo.s0[gk]) && Object.is(sq[k], memo.q0[gk])))) {
          c = memo.c[gk]!;
          if (c === 0) continue;
          sum[k] = memo.s1[gk]!; sq[k] = memo.q1[gk]!;
          yes = memo.yes[gk]!;
          flat = memo.flat[gk] === 1;
          if (yes > 0 && yes < c) {
            if (masks) yesLow = bitCount(memo.passed[gk]! & low);
            else for (let x = 0; x < nv; x++) {
              const i = valid[x]!;
              if (u[i * K + k]! >= at && !(a[i]! > 0)) yesLow++;
            }
          }
        } else {
          // judged: bit x set where the x-th valid row has a score; differs: one differs from the first
          let sk = sum[k]!, qk = sq[k]!, passed = 0, judged = 0, first = NaN, differs = 0;
          for (let x = 0; x < nv; x++) {
            const i = valid[x]!;
            const v = u[i * K + k]!;
            if (v !== v) continue;
            if (++c === 1) first = v;
            sk += v; qk += v * v;
            differs |= +(v !== first); // no branch, as below
            if (masks) { passed |= +(v >= at) << x; judged |= 1 << x; } // no branch: passes of random scores mispredict
            else if (v >= at) { yes++; if (!(a[i]! > 0)) yesLow++; }
          }
          if (masks) {
            yes = bitCount(passed);
            yesLow = bitCount(passed & low);
            if (req[k] === 1) strictRows &= passed | ~judged;
          }
          flat = differs === 0;
          if (record) {
            memo.passed[gk] = passed;
            memo.c[gk] = c; memo.yes[gk] = yes; memo.flat[gk] = flat ? 1 : 0;
            memo.s0[gk] = sum[k]!; memo.s1[gk] = sk; memo.q0[gk] = sq[k]!; memo.q1[gk] = qk;
          }
          if (c === 0) continue;
          sum[k] = sk; sq[k] = qk;
        }
        here[k] = 1;
        baseSum += base[k]!;
        cnt[k]! += c;
        groups[k]!++;
        const weight = perGroup ? w[g * K + k]! : w[k]!;
        const satur = perGroup ? s[g * K + k]! : s[k]!;
        wSum[k]! += weight;
        if (!Number.isNaN(satur)) { satSum[k]! += satur; satN[k]!++; }
        if (flat) { constant[k]!++; wConst[k]! += weight; }
        if (yes === 0) unexplored[k]!++;
        if (yes > 0 && yes < c) { sat[k]! += yes; suppressed[k]! += yesLow; }
        let tv = 0, tc = 0;
        for (let t = 0; t < nt; t++) {
          const v = u[tops[t]! * K + k]!;
          if (v === v) { tv += v; tc++; }
        }
        if (tc > 0) { top[k]! += tv / tc; topN[k]!++; }
      }
      if (!known && masks) for (let x = 0; x < nv; x++) rowStrict[valid[x]!] = (strictRows >>> x) & 1;
      let strict = 0;
      for (let x = 0; x < nv; x++) strict += rowStrict[valid[x]!]!;
      this.strict += strict;
      this.topGroups++;
      for (let t = 0; t < nt; t++) if (rowStrict[tops[t]!] === 1) this.topStrict += 1 / nt;
      if (record) {
        memo.nv[g] = nv;
        memo.rows.set(valid.subarray(0, nv), start);
      }
      if (baseSum > 0) for (let k = 0; k < K; k++) if (here[k]) this.staticSum[k]! += base[k]! / baseSum;
      // ranking against the direct reward
      if (nv < 2) continue;
      this.rankGroups++;
      if (moved === 0) this.zeroAdvantage++;
      for (let x = 0; x < nv; x++) {
        if (dv[x] === bestD && rv[x] === best) { this.agree++; break; }
      }
      let flips = 0, discord = 0;
      for (let x = 0; x < nv; x++) if ((dv[x]! - dMean) * a[valid[x]!]! < 0) flips++;
      if (finite(rv, 0, nv) && finite(dv, 0, nv)) {
        // Without branches (the signs of random differences mispredict half the time): 2 when
        // the signs are opposite, 1 when exactly one is 0.
        for (let x = 0; x < nv; x++) {
          const ri = rv[x]!, di = dv[x]!;
          for (let y = x + 1; y < nv; y++) {
            const ry = rv[y]!, dy = dv[y]!;
            const sr = +(ri > ry) - +(ri < ry), sd = +(di > dy) - +(di < dy);
            discord += 1 - sr * sd - (1 - sr * sr) * (1 - sd * sd);
          }
        }
      } else for (let x = 0; x < nv; x++) {
        const ri = rv[x]!, di = dv[x]!;
        for (let y = x + 1; y < nv; y++) {
          // discordant: 1; tied in exactly one of r and d: 1/2 (as sign(r_i - r_j) * sign(d_i - d_j))
          const xr = ri - rv[y]!, xd = di - dv[y]!;
          if (xr > 0) { if (xd < 0) discord += 2; else if (xd === 0) discord++; }
          else if (xr < 0) { if (xd > 0) discord += 2; else if (xd === 0) discord++; }
          else if (xr === 0) { if (xd !== 0) discord++; }
          else if (xd === 0) discord++;
        }
      }
      this.signRows += nv;
      this.flips += flips;
      this.pairs += (nv * (nv - 1)) / 2;
      this.discord += discord / 2;
    }
  }

  /** The per-criterion values so far (the same numbers metrics() names). */
  criteria(): CriterionSummary {
    const K = this.K;
    const ratio = (a: number, b: number) => (b > 0 ? a / b : NaN);
    const each = (f: (k: number) => number) => Array.from({ length: K }, (_, k) => (this.groups[k] > 0 ? f(k) : NaN));
    return {
      judged: Array.from(this.cnt),
      mean: each((k) => this.sum[k] / this.cnt[k]),
      std: each((k) => {
        const c = this.cnt[k], mu = this.sum[k] / c;
        return c > 1 ? Math.sqrt(Math.max(0, (this.sq[k] - this.sum[k] * mu) / (c - 1))) : 0;
      }),
      fracConstant: each((k) => this.constant[k] / this.groups[k]),
      staticWeight: each((k) => this.staticSum[k] / this.groups[k]),
      weight: each((k) => this.wSum[k] / this.groups[k]),
      saturation: each((k) => ratio(this.satSum[k], this.satN[k])),
      unexplored: each((k) => this.unexplored[k] / this.groups[k]),
      suppressed: each((k) => ratio(this.suppressed[k], this.sat[k])),
      weightOnConstant: each((k) => ratio(this.wConst[k], this.wSum[k])),
    };
  }

  /** Share of the groups of at least two valid rows whose advantages are all 0 (NaN: no such group yet). */
  fracZeroAdvantageGroups(): number {
    return this.rankGroups > 0 ? this.zeroAdvantage / this.rankGroups : NaN;
  }

  /** The metrics so far (NaN where a quantity has no case yet, e.g. no group of two rows). */
  metrics(): Record<string, number> {
    const { K } = this;
    const m: Record<string, number> = {};
    const ratio = (a: number, b: number) => (b > 0 ? a / b : NaN);
    const vr = this.validRows;
    m.reward = ratio(this.rSum, vr);
    m.reward_std = vr > 1 ? Math.sqrt(Math.max(0, (this.rSq - (this.rSum * this.rSum) / vr) / (vr - 1))) : NaN;
    m.frac_reward_zero_std = ratio(this.zeroStd, this.activeGroups);
    m["focal/direct_reward"] = ratio(this.dSum, vr);
    m["focal/frac_valid"] = ratio(vr, this.rows);
    const total = (x: Float64Array) => x.reduce((s, v) => s + v, 0);
    m["focal/frac_constant_criteria"] = ratio(total(this.constant), total(this.groups));
    m["focal/weight_on_constant"] = ratio(total(this.wConst), total(this.wSum));
    m["focal/frac_unexplored"] = ratio(total(this.unexplored), total(this.groups));
    m["focal/frac_suppressed"] = ratio(total(this.suppressed), total(this.sat));
    m["focal/kendall_distance"] = ratio(this.discord, this.pairs);
    m["focal/sign_flip_rate"] = ratio(this.flips, this.signRows);
    m["focal/top1_agreement"] = ratio(this.agree, this.rankGroups);
    m["focal/mean_abs_advantage"] = ratio(this.absA, vr);
    m["focal/frac_out_of_scale"] = this.scored > 0 ? total(this.outside) / this.scored : 0;
    const means: number[] = [], tops: number[] = [];
    for (let k = 0; k < K; k++) {
      if (this.cnt[k] > 0) means.push(this.sum[k] / this.cnt[k]);
      if (this.topN[k] > 0) tops.push(this.top[k] / this.topN[k]);
    }
    Object.assign(m, balance("balance/", means), { "balance/strict_completion": ratio(this.strict, vr) });
    Object.assign(m, balance("balance/top1/", tops), { "balance/top1/strict_completion": ratio(this.topStrict, this.topGroups) });
    const c = this.criteria();
    for (let k = 0; k < K; k++) {
      if (this.groups[k] === 0) continue;
      const id = this.rubric.ids[k];
      m[`rewards/${id}/mean`] = c.mean[k]!;
      m[`rewards/${id}/std`] = c.std[k]!;
      m[`focal/${id}/saturation`] = c.saturation[k]!;
      m[`focal/${id}/weight`] = c.weight[k]!;
      m[`focal/${id}/frac_constant`] = c.fracConstant[k]!;
      m[`focal/${id}/weight_on_constant`] = c.weightOnConstant[k]!;
      m[`focal/${id}/unexplored`] = c.unexplored[k]!;
      m[`focal/${id}/suppressed`] = c.suppressed[k]!;
    }
    for (const o of this.outOfScale()) m[`focal/${o.id}/out_of_scale`] = o.count;
    return m;
  }

  /** The criteria with scores outside their scale so far, with the count and the scale. */
  outOfScale(): OutOfScaleCount[] {
    const out: OutOfScaleCount[] = [];
    for (let k = 0; k < this.K; k++) {
      if (this.outside[k] > 0) out.push({ id: this.rubric.ids[k], count: this.outside[k], scale: scaleOf(this.rubric, k) });
    }
    return out;
  }
}

/** Worst mean, spread (population std, max - min) and Gini of per-criterion means. */
function balance(prefix: string, xs: number[]): Record<string, number> {
  const n = xs.length;
  if (n === 0) return { [`${prefix}worst_criterion_mean`]: NaN, [`${prefix}spread_std`]: NaN, [`${prefix}spread_range`]: NaN, [`${prefix}gini`]: NaN };
  const mean = xs.reduce((s, x) => s + x, 0) / n;
  // sum over ordered pairs of |x_i - x_j| = 2 sum_i (2i - n - 1) x_(i), x sorted, i from 1
  const sorted = xs.slice().sort((a, b) => a - b);
  let abs = 0;
  sorted.forEach((x, i) => (abs += 2 * (2 * (i + 1) - n - 1) * x));
  return {
    [`${prefix}worst_criterion_mean`]: Math.min(...xs),
    [`${prefix}spread_std`]: Math.sqrt(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / n),
    [`${prefix}spread_range`]: Math.max(...xs) - Math.min(...xs),
    [`${prefix}gini`]: mean > 0 ? abs / (2 * n * n * mean) : 0,
  };
}

/** No NaN or infinity in v[o..o+n). */
export function finite(v: ArrayLike<number>, o: number, n: number): boolean {
  for (let i = o; i < o + n; i++) if (v[i]! - v[i]! !== 0) return false;
  return true;
}

/**
 * Every required criterion judged in the row at u[o..o+K) has u >= at[0] (a NaN is not judged).
 * The threshold comes in an array: a double argument to a call that is not inlined is a heap
 * number allocated per call.
 */
function passes(u: Float64Array, o: number, K: number, req: Uint8Array, at: Float64Array): boolean {
  const t = at[0]!;
  for (let k = 0; k < K; k++) if (req[k] === 1 && u[o + k]! < t) return false;
  return true;
}
