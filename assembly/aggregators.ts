// Aggregators beyond focal / weighted-mean / gdpo (issue 3). Same discipline as rows.ts: every
// per-row kernel has a v128 branch and a scalar branch running the same f32 operations in the same
// order (4 lane partial sums in chunk order, then (l0 + l2) + (l1 + l3)), so the simd and scalar
// builds give identical bits. Per-criterion group statistics are plain scalar f64 code shared by
// both builds. src/aggregators.ts is the float64 reference of every formula below.
// One file for the twelve (~520 lines): they share the row kernels, the masks and the group
// statistics at its top, and src/aggregators.ts mirrors it formula for formula.
//
// Notation (per row i): u_ik the normalized score (NaN = absent; penalties already flipped), b_k
// the base weight of the row's group (>= 0), "active" = present and b_k > 0, W_i = sum_active b_k.
// A row is valid only if its direct reward d_i is (some active criterion); invalid rows never
// reach these kernels. Where a formula gives NaN (no term), the row takes d_i.

import { K, KP, laneSum, sumWhere, divideWhere, weightedMean, normalizeRow, loadPadded } from "./rows";
import { expf, expv, logf, logv } from "./mathf";
import { MethodCode, Setting } from "../src/abi";


/** Scores below this count as 0 in power means (keeps logf on normal numbers). */
const TINY: f32 = 1e-30;

let power: f32 = 1;
let temperature: f32 = 0.1;
let alpha: f32 = 0.25;
/** threshold - 1e-6: a score passes at u >= threshold up to the rounding of the scale map. */
let passAt: f32 = 0.5;
/** F-GRPO exponent; < 0 = off. */
let fGamma: f64 = -1;
let floorW: f32 = 0.02;
let clipW: f32 = 1;
let zEps: f64 = 1e-6;

// Regions of the fixed region (src/abi.ts), set by index.ts's layout().
let PEN: usize, REQ: usize, ROWU: usize, VW: usize;
let CSUM: usize, CCNT: usize, ZMEAN: usize, ZSCALE: usize;
let LO: usize, INV: usize, SBAR: usize, SEEN: usize, MWEIGHT: usize;

/** Takes the addresses index.ts's layout() computed from the ABI's regions. */
export function aggregatorLayout(pen: usize, req: usize, rowu: usize, vw: usize, csum: usize, ccnt: usize, zmean: usize, zscale: usize,
  lo: usize, inv: usize, sbar: usize, seen: usize, mweight: usize): void {
  PEN = pen; REQ = req; ROWU = rowu; VW = vw; CSUM = csum; CCNT = ccnt; ZMEAN = zmean; ZSCALE = zscale;
  LO = lo; INV = inv; SBAR = sbar; SEEN = seen; MWEIGHT = mweight;
}

/** Reads the aggregator options from the settings slots at `settings` (f64 each). */
export function configureAggregators(settings: usize): void {
  power = <f32>load<f64>(settings + (<usize>Setting.Power << 3));
  temperature = <f32>load<f64>(settings + (<usize>Setting.Temperature << 3));
  alpha = <f32>load<f64>(settings + (<usize>Setting.Alpha << 3));
  passAt = <f32>load<f64>(settings + (<usize>Setting.PassAt << 3));
  fGamma = load<f64>(settings + (<usize>Setting.FGrpo << 3));
  floorW = <f32>load<f64>(settings + (<usize>Setting.WeightFloor << 3));
  clipW = <f32>load<f64>(settings + (<usize>Setting.WeightClip << 3));
  zEps = load<f64>(settings + (<usize>Setting.AdvEps << 3));
}

// ---------------------------------------------------------------------------------------------
// Lane helpers

// @ts-ignore: decorator
@inline function hsum(v: v128): f32 {
  let h = f32x4.add(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(h, 0) + f32x4.extract_lane(h, 1);
}

// @ts-ignore: decorator
@inline function active(x: v128, b: v128): v128 {
  return v128.and(f32x4.eq(x, x), f32x4.gt(b, f32x4.splat(0)));
}

/** min (or max when `top`) of u over the active lanes; +inf (-inf) when none. Exact. */
function extreme(u: usize, b: usize, top: bool): f32 {
  let chunks = KP >> 2;
  let none: f32 = top ? -Infinity : Infinity;
  if (ASC_FEATURE_SIMD) {
    let nv = f32x4.splat(none);
    let e = nv;
    for (let c = 0; c < chunks; c++) {
      let o = <usize>c << 4;
      let x = v128.load(u + o);
      let v = v128.bitselect(x, nv, active(x, v128.load(b + o)));
      e = top ? f32x4.pmax(e, v) : f32x4.pmin(e, v);
    }
    let l0 = f32x4.extract_lane(e, 0), l1 = f32x4.extract_lane(e, 1);
    let l2 = f32x4.extract_lane(e, 2), l3 = f32x4.extract_lane(e, 3);
    return top ? max(max(l0, l2), max(l1, l3)) : min(min(l0, l2), min(l1, l3));
  } else {
    let e0 = none, e1 = none, e2 = none, e3 = none;
    for (let c = 0; c < chunks; c++) {
      for (let l = 0; l < 4; l++) {
        let o = <usize>((c << 2) + l) << 2;
        let x = load<f32>(u + o);
        let v = x == x && load<f32>(b + o) > 0 ? x : none;
        if (top) {
          if (l == 0) e0 = e0 < v ? v : e0; else if (l == 1) e1 = e1 < v ? v : e1;
          else if (l == 2) e2 = e2 < v ? v : e2; else e3 = e3 < v ? v : e3;
        } else {
          if (l == 0) e0 = v < e0 ? v : e0; else if (l == 1) e1 = v < e1 ? v : e1;
          else if (l == 2) e2 = v < e2 ? v : e2; else e3 = v < e3 ? v : e3;
        }
      }
    }
    return top ? max(max(e0, e2), max(e1, e3)) : min(min(e0, e2), min(e1, e3));
  }
}

const F_SUM = 0; // b u
const F_POW = 1; // b (u/m)^p (0 for u < TINY), or b ln(u/m) when p = 0
const F_SOFT = 2; // b exp((m - u) / T)
const F_SHORT = 3; // b max(m - u, 0)
const F_WEIGHT = 4; // b
const F_POINTS = 5; // b u - pen b (present lanes, any weight)
const F_POINTS_DEN = 6; // b - pen b (present lanes, any weight)
const F_REQ = 7; // req b u (present lanes)

/**
 * Sum over the active lanes (present lanes for F_POINTS*, F_REQ) of term(u_k, b_k; m), in the lane
 * tree order. One function for all terms, so the two builds cannot drift apart.
 */
function laneTerm(kind: i32, u: usize, b: usize, m: f32): f32 {
  let chunks = KP >> 2;
  if (ASC_FEATURE_SIMD) {
    let acc = f32x4.splat(0);
    let mv = f32x4.splat(m);
    let zero = f32x4.splat(0);
    for (let c = 0; c < chunks; c++) {
      let o = <usize>c << 4;
      let x = v128.load(u + o);
      let w = v128.load(b + o);
      let mask = kind >= F_POINTS ? f32x4.eq(x, x) : active(x, w);
      let t: v128;
      if (kind == F_SUM) t = f32x4.mul(w, x);
      else if (kind == F_POW) {
        let l = logv(f32x4.div(x, mv));
        if (power == 0) t = f32x4.mul(w, l);
        else {
          let g = expv(f32x4.mul(f32x4.splat(power), l));
          if (power > 0) g = v128.and(f32x4.ge(x, f32x4.splat(TINY)), g);
          t = f32x4.mul(w, g);
        }
      } else if (kind == F_SOFT) t = f32x4.mul(w, expv(f32x4.div(f32x4.sub(mv, x), f32x4.splat(temperature))));
      else if (kind == F_SHORT) t = f32x4.mul(w, f32x4.pmax(f32x4.sub(mv, x), zero));
      else if (kind == F_WEIGHT) t = w;
      else if (kind == F_POINTS) t = f32x4.sub(f32x4.mul(w, x), f32x4.mul(v128.load(PEN + o), w));
      else if (kind == F_POINTS_DEN) t = f32x4.sub(w, f32x4.mul(v128.load(PEN + o), w));
      else t = f32x4.mul(v128.load(REQ + o), f32x4.mul(w, x));
      acc = f32x4.add(acc, v128.and(mask, t));
    }
    return hsum(acc);
  } else {
    let a0: f32 = 0, a1: f32 = 0, a2: f32 = 0, a3: f32 = 0;
    for (let c = 0; c < chunks; c++) {
      for (let l = 0; l < 4; l++) {
        let o = <usize>((c << 2) + l) << 2;
        let x = load<f32>(u + o);
        let w = load<f32>(b + o);
        let mask = kind >= F_POINTS ? x == x : x == x && w > 0;
        let t: f32;
        if (kind == F_SUM) t = w * x;
        else if (kind == F_POW) {
          let lg = logf(x / m);
          if (power == 0) t = w * lg;
          else {
            let g = expf(power * lg);
            if (power > 0) g = select<f32>(g, 0, x >= TINY);
            t = w * g;
          }
        } else if (kind == F_SOFT) t = w * expf((m - x) / temperature);
        else if (kind == F_SHORT) {
          let s = m - x;
          t = w * (s < 0 ? <f32>0 : s); // pmax(s, 0)
        } else if (kind == F_WEIGHT) t = w;
        else if (kind == F_POINTS) t = w * x - load<f32>(PEN + o) * w;
        else if (kind == F_POINTS_DEN) t = w - load<f32>(PEN + o) * w;
        else t = load<f32>(REQ + o) * (w * x);
        t = select<f32>(t, 0, mask);
        if (l == 0) a0 += t; else if (l == 1) a1 += t; else if (l == 2) a2 += t; else a3 += t;
      }
    }
    return (a0 + a2) + (a1 + a3);
  }
}

/** True when every present required lane has u >= threshold (vacuously true). */
function passes(u: usize): bool {
  let chunks = KP >> 2;
  if (ASC_FEATURE_SIMD) {
    let fail = f32x4.splat(0);
    let zero = f32x4.splat(0);
    let at = f32x4.splat(passAt);
    for (let c = 0; c < chunks; c++) {
      let o = <usize>c << 4;
      let x = v128.load(u + o);
      let bad = v128.and(v128.and(f32x4.eq(x, x), f32x4.gt(v128.load(REQ + o), zero)), f32x4.lt(x, at));
      fail = v128.or(fail, bad);
    }
    return !v128.any_true(fail);
  } else {
    for (let k = 0; k < KP; k++) {
      let o = <usize>k << 2;
      let x = load<f32>(u + o);
      if (x == x && load<f32>(REQ + o) > 0 && x < passAt) return false;
    }
    return true;
  }
}

// ---------------------------------------------------------------------------------------------
// Row aggregators

/**
 * The reward of one valid row (normalized scores at u, base weights at b, direct reward d) for a
 * row-wise method; NaN means "take d".
 *
 * - weighted-sum (TRL's sum of weighted rewards, weights not normalized):
 *     r = sum_active b_k u_k
 * - min (unweighted; weights only select):  r = min_active u_k
 * - power-mean, parameter p, w_k = b_k / W:
 *     p = 1: r = d exactly;  p = -inf: min;  p = +inf: max;
 *     p = 0 (weighted geometric):  r = M exp(sum w_k ln(u_k / M)), M = max u, 0 if min u = 0;
 *     else  r = M (sum w_k (u_k / M)^p)^(1/p), M = max u (p > 0) or min u (p < 0; r = 0 if M = 0).
 *     Dividing by M keeps every power in [0, 1] (p > 0) or [1, inf) scaled to the worst lane
 *     (p < 0) without overflow. Scores below 1e-30 count as 0.
 * - soft-min, temperature T > 0 (weighted log-sum-exp of -u):
 *     r = -T ln(sum w_k exp(-u_k / T)) = m - T ln(sum w_k exp((m - u_k) / T)), m = min u.
 *     min <= r <= weighted mean; T -> 0 gives min, T -> inf the weighted mean.
 * - cvar, alpha in (0, 1]: the mean of the worst alpha share of the row's weight (the lower-tail
 *     CVaR of the distribution putting mass w_k on u_k; the criterion at the boundary counts in
 *     part), by Rockafellar-Uryasev, exact at the atoms:
 *     r = max_j [u_j - (1 / alpha) sum_k w_k max(u_j - u_k, 0)].  alpha = 1: weighted mean.
 * - points-ratio (HealthBench): u is the fraction of a criterion met (binary rubrics: met = 1),
 *     positive criteria earn b_k u_k, a penalty criterion (whose u is already 1 - met) loses
 *     b_k (1 - u_k):  r = clamp((sum_pos b u - sum_pen b (1 - u)) / sum_pos b, 0, 1) over the
 *     present criteria; with no positive criterion present, r = d.
 * - all-or-nothing (strict completion): r = 1 if every present required criterion has
 *     u >= threshold, else 0. Required = the rubric's `required` criteria, or every criterion
 *     when none is marked. A required criterion absent from the row is left out (vacuous pass).
 * - gated:        r = d if the required criteria pass (as above), else 0.
 * - hierarchical: r = d if the required criteria pass, else sum_req b u / W: the other criteria
 *     count only once the required ones pass (they count as 0 until then), on the same scale.
 */
export function aggregateRow(method: i32, u: usize, b: usize, d: f32): f32 {
  if (method == MethodCode.WeightedSum) return laneTerm(F_SUM, u, b, 0);
  if (method == MethodCode.Min) return extreme(u, b, false);
  if (method == MethodCode.PowerMean) {
    if (power == 1) return d;
    if (power == -Infinity) return extreme(u, b, false);
    if (power == Infinity) return extreme(u, b, true);
    let lo = extreme(u, b, false);
    if (power <= 0 && lo < TINY) return 0;
    let m = power < 0 ? lo : extreme(u, b, true);
    if (m < TINY) return 0;
    let s = laneTerm(F_POW, u, b, m);
    let w = laneTerm(F_WEIGHT, u, b, 0);
    return power == 0 ? m * expf(s / w) : m * expf(logf(s / w) / power);
  }
  if (method == MethodCode.SoftMin) {
    let m = extreme(u, b, false);
    let s = laneTerm(F_SOFT, u, b, m);
    let w = laneTerm(F_WEIGHT, u, b, 0);
    return m - temperature * logf(s / w);
  }
  if (method == MethodCode.Cvar) {
    let aw = alpha * laneTerm(F_WEIGHT, u, b, 0);
    let best: f32 = -Infinity;
    for (let k = 0; k < K; k++) {
      let o = <usize>k << 2;
      let x = load<f32>(u + o);
      if (!(x == x && load<f32>(b + o) > 0)) continue;
      let v = x - laneTerm(F_SHORT, u, b, x) / aw;
      best = best < v ? v : best;
    }
    return best;
  }
  if (method == MethodCode.PointsRatio) {
    let den = laneTerm(F_POINTS_DEN, u, b, 0);
    if (!(den > 0)) return NaN;
    let r = laneTerm(F_POINTS, u, b, 0) / den;
    r = <f32>1 < r ? <f32>1 : r;
    return r < 0 ? <f32>0 : r;
  }
  let pass = passes(u);
  if (method == MethodCode.AllOrNothing) return pass ? <f32>1 : <f32>0;
  if (method == MethodCode.Gated) return pass ? d : <f32>0;
  if (method == MethodCode.Hierarchical) return pass ? d : laneTerm(F_REQ, u, b, 0) / laneTerm(F_WEIGHT, u, b, 0);
  return NaN;
}

// ---------------------------------------------------------------------------------------------
// Group methods

/** Unbiased std of u_k over the valid rows of the group where k is present; -1 if < 2 such rows. */
function criterionStats(k: i32, m: i32, U: usize, d: usize, outMean: usize): f64 {
  let uBytes = <usize>KP << 2;
  let o = <usize>k << 2;
  let cnt = 0;
  let sum: f64 = 0;
  for (let i = 0; i < m; i++) {
    let di = load<f32>(d + (<usize>i << 2));
    let x = load<f32>(U + <usize>i * uBytes + o);
    if (di == di && x == x) { cnt++; sum += x; }
  }
  if (cnt < 2) return -1;
  let mean = sum / cnt;
  let ss: f64 = 0;
  for (let i = 0; i < m; i++) {
    let di = load<f32>(d + (<usize>i << 2));
    let x = load<f32>(U + <usize>i * uBytes + o);
    if (di == di && x == x) ss += (x - mean) * (x - mean);
  }
  if (outMean != 0) store<f64>(outMean + (<usize>k << 3), mean);
  return Math.sqrt(ss / (cnt - 1));
}

/**
 * One group (rows start..start+m-1, normalized rows in U, direct rewards at outD + 4 start,
 * present criteria = lanes where sat is not NaN, base weights b): rewards into outR and the
 * reported weights into fw. Called only for a group with a valid row.
 *
 * - row-wise methods: fw = b normalized over the group's criteria; r_i = aggregateRow(...).
 * - dvao (variance-aware weights): sigma_k = unbiased std of u_k over the group's valid rows where
 *     present (0 with fewer than two such rows); f_k = b_k sigma_k / sum_j b_j sigma_j over the
 *     group's criteria (f = b normalized when that sum is 0); r_i = sum f u / sum f over the row's
 *     present criteria (r_i = d_i when that is 0/0: the row has only zero-variance criteria).
 * - mo-grpo: z_ik = (u_ik - mean_k) / (sigma_k + advEps) over the valid rows where k is present
 *     (0 where absent or with fewer than two such rows), r_i = sum_k w_k z_ik with w = b
 *     normalized over the group's criteria. The advantage is then the configured one on r
 *     (grpo: MO-GRPO's second, GRPO normalization). Unlike gdpo, no batch-level step.
 * - pow3r: this pass only accumulates the group's contrast sigma_k (see pow3rRewards); fw = 0.
 */
export function aggregateGroup(method: i32, start: i32, m: i32, U: usize, b: usize, sat: usize, outD: usize, outR: usize, fw: usize): void {
  let uBytes = <usize>KP << 2;
  let d = outD + (<usize>start << 2);
  if (method == MethodCode.Pow3r) {
    for (let k = 0; k < K; k++) {
      let sd = criterionStats(k, m, U, d, 0);
      if (sd < 0) continue;
      let w = <usize>k << 3;
      store<f64>(CSUM + w, load<f64>(CSUM + w) + sd);
      store<f64>(CCNT + w, load<f64>(CCNT + w) + 1);
    }
    for (let k = 0; k < KP; k++) store<f32>(fw + (<usize>k << 2), 0);
    return;
  }
  if (method == MethodCode.Dvao) {
    for (let k = 0; k < KP; k++) {
      let sd = k < K ? criterionStats(k, m, U, d, 0) : -1;
      store<f32>(VW + (<usize>k << 2), <f32>(<f64>load<f32>(b + (<usize>k << 2)) * max(sd, 0)));
    }
    let total = sumWhere(VW, sat);
    if (total > 0) divideWhere(VW, sat, total, fw);
    else divideWhere(b, sat, sumWhere(b, sat), fw);
    for (let i = 0; i < m; i++) {
      let di = load<f32>(d + (<usize>i << 2));
      if (di != di) continue;
      let r = weightedMean(U + <usize>i * uBytes, fw);
      store<f32>(outR + (<usize>(start + i) << 2), r == r ? r : di);
    }
    return;
  }
  let sumB = sumWhere(b, sat);
  divideWhere(b, sat, sumB, fw);
  if (method == MethodCode.MoGrpo) {
    for (let k = 0; k < K; k++) {
      let sd = criterionStats(k, m, U, d, ZMEAN);
      let w = <usize>k << 3;
      // scale 0 drops the criterion (absent, or fewer than two rows)
      store<f64>(ZSCALE + w, sd < 0 ? 0 : (<f64>load<f32>(b + (<usize>k << 2)) / <f64>sumB) / (sd + zEps));
    }
    for (let i = 0; i < m; i++) {
      let di = load<f32>(d + (<usize>i << 2));
      if (di != di) continue;
      let row = U + <usize>i * uBytes;
      let a: f64 = 0;
      for (let k = 0; k < K; k++) {
        let s = load<f64>(ZSCALE + (<usize>k << 3));
        let x = load<f32>(row + (<usize>k << 2));
        if (s != 0 && x == x) a += s * (x - load<f64>(ZMEAN + (<usize>k << 3)));
      }
      store<f32>(outR + (<usize>(start + i) << 2), <f32>a);
    }
    return;
  }
  for (let i = 0; i < m; i++) {
    let di = load<f32>(d + (<usize>i << 2));
    if (di != di) continue;
    let r = aggregateRow(method, U + <usize>i * uBytes, b, di);
    store<f32>(outR + (<usize>(start + i) << 2), r == r ? r : di);
  }
}

/** Starts a call: clears the pow3r contrast accumulators. */
export function beginCall(): void {
  for (let k = 0; k < KP; k++) {
    store<f64>(CSUM + (<usize>k << 3), 0);
    store<f64>(CCNT + (<usize>k << 3), 0);
  }
}

/**
 * MethodCode.Pow3r weights over the lanes where `mask` is present, from the contrast state cbar (SBAR; a
 * criterion without an estimate counts 0) into `out`:
 *   v_k = b_k cbar_k / sum_j b_j cbar_j   (v = b normalized when that sum is 0),
 *   f_k = clamp(v_k, floor, clip) / sum_j clamp(v_j, floor, clip)   for b_k > 0 (else 0),
 * floor = minWeight (default 0.02), clip = maxWeight (default 1).
 */
function pow3rWeights(b: usize, mask: usize, out: usize): void {
  for (let k = 0; k < KP; k++) {
    let o = <usize>k << 2;
    let c: f32 = k < K && load<f32>(SEEN + o) != 0 ? <f32>load<f64>(SBAR + (<usize>k << 3)) : 0;
    store<f32>(out + o, load<f32>(b + o) * c);
  }
  let total = sumWhere(out, mask);
  if (total > 0) divideWhere(out, mask, total, out);
  else divideWhere(b, mask, sumWhere(b, mask), out);
  for (let k = 0; k < K; k++) {
    let o = <usize>k << 2;
    let x = load<f32>(mask + o);
    if (x != x || !(load<f32>(b + o) > 0)) continue;
    let v = load<f32>(out + o);
    v = v < floorW ? floorW : v;
    store<f32>(out + o, clipW < v ? clipW : v);
  }
  let sum = sumWhere(out, mask);
  if (sum > 0) divideWhere(out, mask, sum, out);
  else divideWhere(b, mask, sumWhere(b, mask), out);
}

/**
 * MethodCode.Pow3r, after every group was seen (and the call accepted). Contrast of criterion k in a group:
 * sigma_k, the unbiased std of u_k over its valid rows (groups with fewer than two such rows left
 * out); the call's estimate chat_k is the mean over the groups; the state is its EMA,
 * cbar_k <- chat_k on the first estimate, else decay cbar_k + (1 - decay) chat_k (kept in the
 * stream-state slots: snapshot / restore / reset carry it). Each group's weights then come from
 * the updated cbar (pow3rWeights over the group's criteria), r_i = sum f u / sum f over the row's
 * present criteria (d_i when 0/0).
 */
export function pow3rRewards(groups: i32, sizes: usize, scores: usize, instW: usize, base: usize, gb: usize,
  outD: usize, outR: usize, outW: usize, outS: usize, sat: usize, fw: usize, decay: f32): void {
  for (let k = 0; k < K; k++) {
    let o = <usize>k << 2;
    let cnt = load<f64>(CCNT + (<usize>k << 3));
    if (cnt == 0) continue;
    let chat = <f32>(load<f64>(CSUM + (<usize>k << 3)) / cnt);
    let seen = load<f32>(SEEN + o) != 0;
    // cbar is f32 arithmetic kept in the f64 state slots (exact there).
    store<f64>(SBAR + (<usize>k << 3), seen ? decay * <f32>load<f64>(SBAR + (<usize>k << 3)) + (1 - decay) * chat : chat);
    store<f32>(SEEN + o, 1);
  }
  let rowBytes = <usize>K << 2;
  let start = 0;
  for (let g = 0; g < groups; g++) {
    let m = load<i32>(sizes + (<usize>g << 2));
    let any = false;
    for (let i = start; i < start + m; i++) {
      let di = load<f32>(outD + (<usize>i << 2));
      if (di == di) { any = true; break; }
    }
    if (any) {
      let b = base;
      if (instW != 0) { loadPadded(instW + <usize>g * rowBytes, gb, 0); b = gb; }
      loadPadded(outS + <usize>g * rowBytes, sat, NaN);
      pow3rWeights(b, sat, fw);
      let den = laneSum(fw); // 0 outside the group
      for (let i = start; i < start + m; i++) {
        let o = <usize>i << 2;
        let di = load<f32>(outD + o);
        if (di != di) continue;
        let r = normalizeRow(scores + <usize>i * rowBytes, ROWU, LO, INV, fw, den);
        store<f32>(outR + o, r == r ? r : di);
      }
      for (let k = 0; k < K; k++) {
        let s = load<f32>(sat + (<usize>k << 2));
        if (s != s) continue;
        let w = MWEIGHT + (<usize>k << 3);
        store<f64>(w, load<f64>(w) + load<f32>(fw + (<usize>k << 2)));
      }
      for (let o: usize = 0; o < rowBytes; o += 4) store<f32>(outW + <usize>g * rowBytes + o, load<f32>(fw + o));
    }
    start += m;
  }
}

/** scoreOne for an aggregator: a group of one (row at u, base weights b, direct reward d). */
export function aggregateOne(method: i32, u: usize, b: usize, d: f32): f32 {
  if (method == MethodCode.MoGrpo) return 0;
  if (method == MethodCode.Dvao) return d;
  if (method == MethodCode.Pow3r) {
    pow3rWeights(b, u, VW);
    let r = weightedMean(u, VW);
    return r == r ? r : d;
  }
  let r = aggregateRow(method, u, b, d);
  return r == r ? r : d;
}

/**
 * F-GRPO (prompt-level focal scaling, arXiv 2602.06717), after the advantages: in each group,
 * rho = share of its valid rows whose direct reward d_i >= threshold (a "success"), and every
 * advantage of the group is multiplied by (1 - rho)^gamma_f. Off when gamma_f < 0.
 */
export function fGrpoScale(groups: i32, sizes: usize, outD: usize, outA: usize): void {
  if (fGamma < 0) return;
  let start = 0;
  for (let g = 0; g < groups; g++) {
    let m = load<i32>(sizes + (<usize>g << 2));
    let cnt = 0, ok = 0;
    for (let i = start; i < start + m; i++) {
      let di = load<f32>(outD + (<usize>i << 2));
      if (di != di) continue;
      cnt++;
      if (di >= passAt) ok++;
    }
    if (cnt > 0) {
      let scale = Math.pow(1 - <f64>ok / <f64>cnt, fGamma);
      for (let i = start; i < start + m; i++) {
        let o = outA + (<usize>i << 2);
        store<f32>(o, <f32>(<f64>load<f32>(o) * scale));
      }
    }
    start += m;
  }
}
