// Focal Reward kernels. The fixed region (rubric, stream state, settings, per-criterion scratch) is laid
// out by src/abi.ts, shared with the host; the host places the per-call buffers after it
// (src/wasm.ts). Nothing here allocates.
// Per-row work runs in 4-lane chunks (rows.ts); per-group bookkeeping below is scalar code shared
// by both builds, or lane-wise vector code that adds the same values in the same order (see
// foldStats), so the simd and scalar builds give the same bits.

import {
  K, KP, setShape, sawInfinity, resetInfinity, rowHasAbsent, normalizeRow, normalizeGroup, groupAnyValid, groupHasAbsent,
  weightedMean, weightedMeanDense, weightedMeanDense4, rowMean, laneSum, groupSums, fill, loadPadded, storeUnpadded, saturationOf, focalCoefficients, divideWhere, mixWith,
  sumWhere, tilt,
} from "./rows";
import { aggregatorLayout, configureAggregators, aggregateGroup, aggregateOne, beginCall, fGrpoScale, pow3rRewards } from "./aggregators";
import { AbiQuery, AdvantageCode, Call, Head, MethodCode, Region, ScopeCode, Setting, Stat, Summary } from "../src/abi";

export function trap(message: usize, file: usize, line: u32, column: u32): void {
  unreachable();
}

let method = MethodCode.Focal;
let scope = ScopeCode.Group;
let advantage = AdvantageCode.Grpo;
let gamma: f32 = 3;
let eps: f32 = 0.05;
let tau: f32 = 1;
let bounded = false;
let minWeight: f64 = 0;
let maxWeight: f64 = 1;
let mix: f32 = 1;
let decay: f32 = 0.9;
let advEps: f64 = 1e-6;
/** constant "drop" (group scope, focal): leave a group's constant criteria out of steps 4-7. */
let dropConstant = false;
/** The spread at or below which a criterion is constant in its group (spec). */
const CONSTANT_SPREAD: f32 = 1e-6;

// The fixed region (src/abi.ts): a head of f64 slots, then vectors of KP lanes.
let HEAD: usize;
let LO: usize, INV: usize, BASE: usize, SBAR: usize, SEEN: usize, FSTREAM: usize;
let ROW: usize, ROWU: usize, ACC: usize, MASS: usize, SAT: usize, COEF: usize, FW: usize, GB: usize;
let GSUM: usize, GSQ: usize, GCNT: usize, GMIN: usize, GMAX: usize, SATSUM: usize, SATN: usize;
let MSUM: usize, MSQ: usize, MCNT: usize, MCONST: usize, MPRES: usize, MWEIGHT: usize, MSAT: usize;
let SORT: usize, SUMMARY: usize, ROWP: usize, FSTREAMR: usize, FIXED: usize, FMASK: usize, SAF: usize, KEPT: usize;

/** KP lanes per vector for k criteria. */
function lanes(k: i32): usize { return <usize>((k + 3) & ~3); }

/** Bytes the fixed region needs for k criteria. */
export function fixedSize(k: i32): usize {
  return <usize>Head.End * 8 + <usize>Region.End * lanes(k) * 4;
}

/** Byte address of a region (src/abi.ts Region) once laid out. */
export function region(r: i32): usize {
  return HEAD + <usize>Head.End * 8 + <usize>r * (lanes(K) << 2);
}

/** Byte address of a head slot (src/abi.ts Head + Setting, Call or Summary). */
export function slot(i: i32): usize {
  return HEAD + (<usize>i << 3);
}

/** Lays out and zeroes the fixed region at `base` for k criteria; the host then fills the rubric's regions. */
export function layout(base: usize, k: i32): void {
  setShape(k);
  HEAD = base;
  memory.fill(base, 0, fixedSize(k));
  LO = region(Region.Lo); INV = region(Region.Inv); BASE = region(Region.Base); FIXED = region(Region.Fixed);
  SBAR = region(Region.Sbar); SEEN = region(Region.Seen); ROW = region(Region.Row);
  FSTREAM = region(Region.StreamWeights); FSTREAMR = region(Region.StreamWeightsUsed); ROWU = region(Region.RowNormalized);
  ACC = region(Region.Acc); MASS = region(Region.Mass); SAT = region(Region.Saturation); COEF = region(Region.Coefficients);
  FW = region(Region.FocalWeights); GB = region(Region.GroupBase);
  GSUM = region(Region.GroupSum); GSQ = region(Region.GroupSq); GCNT = region(Region.GroupCount);
  GMIN = region(Region.GroupMin); GMAX = region(Region.GroupMax); SATSUM = region(Region.SatSum); SATN = region(Region.SatCount);
  FMASK = region(Region.FreeMask); SAF = region(Region.SaMrpoFactor); KEPT = region(Region.Kept); ROWP = region(Region.RowPair);
  let stat = (f: i32): usize => region(Region.Stats + 2 * f);
  MSUM = stat(Stat.Sum); MSQ = stat(Stat.Sq); MCNT = stat(Stat.Count); MCONST = stat(Stat.Constant);
  MPRES = stat(Stat.Present); MWEIGHT = stat(Stat.Weight); MSAT = stat(Stat.Saturation);
  SORT = region(Region.Sort);
  SUMMARY = slot(Head.SummaryAt);
  aggregatorLayout(region(Region.Penalty), region(Region.Required), region(Region.AggregatorRow), region(Region.AggregatorWeights),
    region(Region.CriterionSum), region(Region.CriterionCount), region(Region.ZMean), region(Region.ZScale),
    LO, INV, SBAR, SEEN, MWEIGHT);
}

// @ts-ignore: decorator
@inline function setting(s: i32): f64 { return load<f64>(slot(Head.SettingsAt + s)); }

/** Reads the settings the host wrote into the head's Setting slots; then the stream weights. */
export function configure(): void {
  method = <i32>setting(Setting.Method); scope = <i32>setting(Setting.Scope); advantage = <i32>setting(Setting.Advantage);
  gamma = <f32>setting(Setting.Gamma); eps = <f32>setting(Setting.Eps); tau = <f32>setting(Setting.Tau);
  bounded = setting(Setting.Bounded) != 0; minWeight = setting(Setting.MinWeight); maxWeight = setting(Setting.MaxWeight);
  mix = <f32>setting(Setting.Mix); decay = <f32>setting(Setting.Decay); advEps = setting(Setting.AdvEps);
  dropConstant = setting(Setting.DropConstant) != 0;
  configureAggregators(slot(Head.SettingsAt));
  streamWeights();
}

/** The ABI as this build saw it (test/unit/abi.test.ts compares it with src/abi.ts). */
export function abi(q: i32): i32 {
  switch (q) {
    case AbiQuery.Methods: return MethodCode.End;
    case AbiQuery.Advantages: return AdvantageCode.End;
    case AbiQuery.Scopes: return ScopeCode.End;
    case AbiQuery.Stats: return Stat.End;
    case AbiQuery.Settings: return Setting.End;
    case AbiQuery.Calls: return Call.End;
    case AbiQuery.Summaries: return Summary.End;
    case AbiQuery.HeadEnd: return Head.End;
    case AbiQuery.RegionEnd: return Region.End;
    default: return -1;
  }
}

// ---------------------------------------------------------------------------------------------
// Weights

/**
 * Euclidean projection of the present lanes of f onto {sum = target, lo <= f <= hi} (spec step 5;
 * target = 1 - the fixed criteria's share). An infeasible box widens to target / count.
 */
function project(f: usize, mask: usize, target: f64): void {
  let kg = 0;
  for (let k = 0; k < K; k++) {
    let m = load<f32>(mask + (<usize>k << 2));
    if (m == m) kg++;
  }
  if (kg == 0) return;
  let lo = minWeight, hi = maxWeight;
  let kgf = <f64>kg;
  if (!(lo * kgf <= target && target <= hi * kgf)) {
    lo = min(lo, target / kgf);
    hi = max(hi, target / kgf);
  }
  // sum_k clamp(f_k - theta, lo, hi) falls as theta rises, with kinks at f_k - hi and f_k - lo.
  let nb = 0;
  for (let k = 0; k < K; k++) {
    let o = <usize>k << 2;
    let m = load<f32>(mask + o);
    if (m != m) continue;
    let x = <f64>load<f32>(f + o);
    store<f64>(SORT + (<usize>nb << 3), x - hi);
    store<f64>(SORT + (<usize>(nb + 1) << 3), x - lo);
    nb += 2;
  }
  for (let i = 1; i < nb; i++) {
    let v = load<f64>(SORT + (<usize>i << 3));
    let j = i - 1;
    while (j >= 0 && load<f64>(SORT + (<usize>j << 3)) > v) {
      store<f64>(SORT + (<usize>(j + 1) << 3), load<f64>(SORT + (<usize>j << 3)));
      j--;
    }
    store<f64>(SORT + (<usize>(j + 1) << 3), v);
  }
  // Find the first kink where the clamped sum drops to <= target; theta lies in the segment before it.
  let theta = load<f64>(SORT);
  let i = 0;
  for (; i < nb; i++) {
    if (clampedSum(f, mask, load<f64>(SORT + (<usize>i << 3)), lo, hi) <= target) break;
  }
  if (i == nb) theta = load<f64>(SORT + (<usize>(nb - 1) << 3));
  else if (i > 0) {
    let a = load<f64>(SORT + (<usize>(i - 1) << 3));
    let b = load<f64>(SORT + (<usize>i << 3));
    let mid = 0.5 * (a + b);
    let free = 0, fixed: f64 = 0, freeSum: f64 = 0;
    for (let k = 0; k < K; k++) {
      let o = <usize>k << 2;
      let m = load<f32>(mask + o);
      if (m != m) continue;
      let x = <f64>load<f32>(f + o);
      if (x - mid <= lo) fixed += lo;
      else if (x - mid >= hi) fixed += hi;
      else { free++; freeSum += x; }
    }
    theta = free > 0 ? (freeSum + fixed - target) / free : b;
  } else theta = load<f64>(SORT);
  for (let k = 0; k < K; k++) {
    let o = <usize>k << 2;
    let m = load<f32>(mask + o);
    if (m != m) continue;
    store<f32>(f + o, <f32>min(max(<f64>load<f32>(f + o) - theta, lo), hi));
  }
}

function clampedSum(f: usize, mask: usize, theta: f64, lo: f64, hi: f64): f64 {
  let s: f64 = 0;
  for (let k = 0; k < K; k++) {
    let o = <usize>k << 2;
    let m = load<f32>(mask + o);
    if (m == m) s += min(max(<f64>load<f32>(f + o) - theta, lo), hi);
  }
  return s;
}

/** Static weights b normalized over the lanes where `mask` is present, into `out`. */
function staticWeights(b: usize, mask: usize, out: usize): f32 {
  let sumB = sumWhere(b, mask);
  divideWhere(b, mask, sumB, out);
  return sumB;
}

/**
 * Focal weights from the saturation `sat` (NaN = criterion not in use) and base weights b, into
 * `out`. Returns the vector to weight rewards with: proportional to `out`, and unnormalized where
 * it can be, so that gamma = 0 gives the direct reward bit for bit.
 */
function focalWeights(sat: usize, b: usize, out: usize): usize {
  let total = focalCoefficients(sat, b, gamma, eps, COEF);
  let sumB = sumWhere(b, sat);
  if (guardedWeights(sat, b, out, sumB)) {
    if (mix != 1) mixWith(out, b, sat, mix, sumB);
    return gamma == 0 && !bounded && mix == 1 ? b : out;
  }
  if (total > 0) divideWhere(COEF, sat, total, out);
  else divideWhere(b, sat, sumB, out);
  if (bounded) project(out, sat, 1);
  if (mix != 1) mixWith(out, b, sat, mix, sumB);
  if (bounded || mix != 1) return out;
  return total > 0 ? COEF : b;
}

/**
 * constant "drop": focal weights over the criteria of the group that vary (GMIN / GMAX / GCNT over
 * its valid rows), fixed ones always kept; where none varies, f = b. Returns the reward vector:
 * FW itself where focalWeights would hand back b, which still weighs the dropped criteria.
 */
function focalKept(b: usize): usize {
  let varies = false;
  for (let k = 0; k < KP; k++) {
    let o = <usize>k << 2;
    let s = k < K ? load<f32>(SAT + o) : <f32>NaN;
    let constant = load<f32>(GCNT + o) < 2 || load<f32>(GMAX + o) - load<f32>(GMIN + o) <= CONSTANT_SPREAD;
    if (s == s && !constant) varies = true;
    store<f32>(KEPT + o, s == s && (!constant || load<f32>(FIXED + o) != 0) ? s : <f32>NaN);
  }
  if (!varies) {
    staticWeights(b, SAT, FW);
    return b;
  }
  let w = focalWeights(KEPT, b, FW);
  return w == b ? FW : w;
}

/**
 * Guarded criteria (spec "Guarded criteria"): when a fixed criterion is present, it keeps
 * b_k / sum b and the others share the rest in proportion to COEF (b if gamma = 0 or COEF sums to
 * 0); bounds then project only the others. Returns false (and writes nothing) with no fixed one.
 * One scalar pass on both builds, so simd and scalar agree bit for bit.
 */
function guardedWeights(sat: usize, b: usize, out: usize, sumB: f32): bool {
  let any = false;
  let fixedB: f32 = 0, total: f32 = 0;
  for (let k = 0; k < K; k++) {
    let o = <usize>k << 2;
    let s = load<f32>(sat + o);
    if (s != s) continue;
    if (load<f32>(FIXED + o) != 0) { any = true; fixedB += load<f32>(b + o); } else total += load<f32>(COEF + o);
  }
  if (!any) return false;
  let share: f32 = 1 - fixedB / sumB;
  let free = gamma != 0 && total > 0;
  for (let k = 0; k < KP; k++) {
    let o = <usize>k << 2;
    let s = k < K ? load<f32>(sat + o) : NaN;
    let fixed = s == s && load<f32>(FIXED + o) != 0;
    store<f32>(FMASK + o, fixed ? <f32>NaN : s);
    if (s != s) { store<f32>(out + o, 0); continue; }
    store<f32>(out + o, free && !fixed ? share * load<f32>(COEF + o) / total : load<f32>(b + o) / sumB);
  }
  if (bounded) project(out, FMASK, <f64>share);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Batches

// @ts-ignore: decorator
@inline function call(c: i32): f64 { return load<f64>(slot(Head.CallAt + c)); }

/**
 * Scores the batch the host described in the head's Call slots. Returns 0, or 1 when a score is infinite (nothing was changed then).
 * d: direct rewards (NaN marks an invalid row); outW/outS: G x K (group scope) or K (stream).
 * U: uRows normalized rows of KP lanes, at least the widest group's; with n of them, the stream
 * scope keeps every row there for its second pass instead of normalizing it again.
 */
export function score(): i32 {
  let n = <i32>call(Call.Rows), groups = <i32>call(Call.Groups);
  let scores = <usize>call(Call.Scores), valid = <usize>call(Call.Valid), sizes = <usize>call(Call.Sizes), instW = <usize>call(Call.InstanceWeights);
  let outR = <usize>call(Call.Rewards), outD = <usize>call(Call.Direct), outA = <usize>call(Call.Advantages);
  let outW = <usize>call(Call.Weights), outS = <usize>call(Call.Saturation);
  let U = <usize>call(Call.Normalized), P = <usize>call(Call.Tilt), uRows = <i32>call(Call.NormalizedRows);
  resetInfinity();
  let rowBytes = <usize>K << 2;
  let uBytes = <usize>KP << 2;
  for (let k = 0; k < KP * Stat.End; k++) store<f64>(MSUM + (<usize>k << 3), 0);
  store<f64>(SUMMARY, 0, Summary.ZeroStdGroups << 3);
  store<f64>(SUMMARY, 0, Summary.ActiveGroups << 3);
  let stream = scope != ScopeCode.Group && method == MethodCode.Focal;
  let keep = stream && uRows >= n;
  let U0 = U;
  if (stream) { fill(SATSUM, 0); fill(SATN, 0); }
  if (method == MethodCode.Pow3r) beginCall();

  let start = 0;
  for (let g = 0; g < groups; g++) {
    let m = load<i32>(sizes + (<usize>g << 2));
    let b = BASE;
    if (instW != 0) { loadPadded(instW + <usize>g * rowBytes, GB, 0); b = GB; }
    let bSum = laneSum(b);
    // Pass 1: normalize into U, direct reward per row (at the rows' own places when kept).
    if (keep) U = U0 + <usize>start * uBytes;
    let top = normalizeGroup(scores + <usize>start * rowBytes, U, m, valid != 0 ? valid + <usize>start : 0,
      outD + (<usize>start << 2), LO, INV, b, bSum);
    let anyValid = groupAnyValid;
    let dense = !groupHasAbsent;
    // Tilted saturation (steps 2-3) and per-criterion statistics over the valid rows.
    tilt(outD + (<usize>start << 2), P, m, top, tau);
    groupSums(U, outD + (<usize>start << 2), P, m, dense, tau, ACC, MASS, GSUM, GSQ, GCNT, GMIN, GMAX);
    saturationOf(ACC, MASS, SAT);
    foldStats(anyValid);
    if (stream) {
      accumulatePresent();
    } else if (anyValid) {
      if (method == MethodCode.Focal) {
        let w = dropConstant ? focalKept(b) : focalWeights(SAT, b, FW);
        let den = laneSum(w);
        let i = 0;
        if (ASC_FEATURE_SIMD && dense) {
          // Four rows a turn. An invalid row gets a value here too, which finishRewards replaces.
          for (; i + 4 <= m; i += 4) {
            let o = <usize>(start + i) << 2;
            let r = weightedMeanDense4(U + <usize>i * uBytes, w, den);
            v128.store(outR + o, v128.bitselect(r, v128.load(outD + o), f32x4.eq(r, r)));
          }
        }
        for (; i < m; i++) {
          let o = <usize>(start + i) << 2;
          let d = load<f32>(outD + o);
          if (d != d) continue;
          let u = U + <usize>i * uBytes;
          let r = dense ? weightedMeanDense(u, w, den) : weightedMean(u, w);
          store<f32>(outR + o, r == r ? r : d);
        }
      } else if (aggregated()) {
        aggregateGroup(method, start, m, U, b, SAT, outD, outR, FW);
      } else {
        staticWeights(b, SAT, FW);
        memory.copy(outR + (<usize>start << 2), outD + (<usize>start << 2), <usize>m << 2);
        if (method == MethodCode.Gdpo) gdpoGroup(start, m, U, b, outD, outA);
      }
      accumulateWeights();
    } else {
      fill(FW, 0);
    }
    if (!stream) {
      storeUnpadded(FW, outW + <usize>g * rowBytes);
      storeUnpadded(SAT, outS + <usize>g * rowBytes);
    }
    start += m;
  }
  if (sawInfinity) return 1;
  if (method == MethodCode.SaMrpo) saMrpo(groups, scores, valid, sizes, instW, outD, outA, U0);
  if (method == MethodCode.Pow3r) pow3rRewards(groups, sizes, scores, instW, BASE, GB, outD, outR, outW, outS, SAT, FW, decay);

  if (stream) {
    updateStream();
    let fSum = laneSum(FSTREAMR);
    for (let r = 0; r < n; r += 4) {
      let rows = min(4, n - r);
      if (ASC_FEATURE_SIMD && keep && rows == 4) {
        // Four rows a turn; an invalid row's value is replaced by finishRewards. When a row needs
        // rowMean's masked sums (a NaN lane), the four go row by row below.
        let f = weightedMeanDense4(U0 + <usize>r * uBytes, FSTREAMR, fSum);
        if (i32x4.bitmask(f32x4.eq(f, f)) == 15) { v128.store(outR + (<usize>r << 2), f); continue; }
      }
      for (let i = r; i < r + rows; i++) {
        let o = <usize>i << 2;
        let d = load<f32>(outD + o);
        if (d != d) continue;
        let f = keep
          ? rowMean(U0 + <usize>i * uBytes, FSTREAMR, fSum) // the same sums as normalizeRow's
          : normalizeRow(scores + <usize>i * rowBytes, ROWU, LO, INV, FSTREAMR, fSum);
        store<f32>(outR + o, f == f ? f : d);
      }
    }
    storeUnpadded(FSTREAM, outW);
    streamSaturation(outS);
  }
  finishRewards(n, groups, sizes, outR, outD, outA);
  fGrpoScale(groups, sizes, outD, outA);
  return 0;
}

// The per-criterion bookkeeping below takes two criteria a turn in f64x2 lanes on the simd build
// (four in f32x4 for accumulatePresent), then the rest one by one: each lane adds the same values
// in the same order as the scalar loop, and a lane that the loop skips keeps its value (bitselect).

/** acc[0..1] += x where mask (f64x2 lanes). */
// @ts-ignore: decorator
@inline function addWhere2(acc: usize, x: v128, mask: v128): void {
  let a = v128.load(acc);
  v128.store(acc, v128.bitselect(f64x2.add(a, x), a, mask));
}

/** Two f32 lanes at `at`, as f64x2. */
// @ts-ignore: decorator
@inline function wide2(at: usize): v128 {
  return f64x2.promote_low_f32x4(v128.load64_zero(at));
}

function foldStats(anyValid: bool): void {
  if (!anyValid) return;
  let k = 0;
  if (ASC_FEATURE_SIMD) {
    let one = f64x2.splat(1);
    for (; k + 2 <= K; k += 2) {
      let o = <usize>k << 2;
      let w = <usize>k << 3;
      let c = wide2(GCNT + o);
      let has = f64x2.ne(c, f64x2.splat(0));
      addWhere2(MSUM + w, wide2(GSUM + o), has);
      addWhere2(MSQ + w, wide2(GSQ + o), has);
      addWhere2(MCNT + w, c, has);
      addWhere2(MPRES + w, one, has);
      addWhere2(MCONST + w, one, v128.and(has, f64x2.eq(wide2(GMIN + o), wide2(GMAX + o))));
    }
  }
  for (; k < K; k++) {
    let o = <usize>k << 2;
    let w = <usize>k << 3;
    let c = load<f32>(GCNT + o);
    if (c == 0) continue;
    store<f64>(MSUM + w, load<f64>(MSUM + w) + load<f32>(GSUM + o));
    store<f64>(MSQ + w, load<f64>(MSQ + w) + load<f32>(GSQ + o));
    store<f64>(MCNT + w, load<f64>(MCNT + w) + c);
    store<f64>(MPRES + w, load<f64>(MPRES + w) + 1);
    if (load<f32>(GMIN + o) == load<f32>(GMAX + o)) store<f64>(MCONST + w, load<f64>(MCONST + w) + 1);
  }
}

function accumulateWeights(): void {
  let k = 0;
  if (ASC_FEATURE_SIMD) {
    for (; k + 2 <= K; k += 2) {
      let o = <usize>k << 2;
      let w = <usize>k << 3;
      let s = wide2(SAT + o);
      let has = f64x2.eq(s, s);
      addWhere2(MWEIGHT + w, wide2(FW + o), has);
      addWhere2(MSAT + w, s, has);
    }
  }
  for (; k < K; k++) {
    let o = <usize>k << 2;
    let s = load<f32>(SAT + o);
    if (s != s) continue;
    let w = <usize>k << 3;
    store<f64>(MWEIGHT + w, load<f64>(MWEIGHT + w) + load<f32>(FW + o));
    store<f64>(MSAT + w, load<f64>(MSAT + w) + s);
  }
}

function accumulatePresent(): void {
  let k = 0;
  if (ASC_FEATURE_SIMD) {
    let one = f32x4.splat(1);
    for (; k + 4 <= K; k += 4) {
      let o = <usize>k << 2;
      let s = v128.load(SAT + o);
      let has = f32x4.eq(s, s);
      let sum = v128.load(SATSUM + o);
      let cnt = v128.load(SATN + o);
      v128.store(SATSUM + o, v128.bitselect(f32x4.add(sum, s), sum, has));
      v128.store(SATN + o, v128.bitselect(f32x4.add(cnt, one), cnt, has));
    }
  }
  for (; k < K; k++) {
    let o = <usize>k << 2;
    let s = load<f32>(SAT + o);
    if (s != s) continue;
    store<f32>(SATSUM + o, load<f32>(SATSUM + o) + s);
    store<f32>(SATN + o, load<f32>(SATN + o) + 1);
  }
}

/** sbar <- shat on a criterion's first estimate, else decay sbar + (1 - decay) shat. */
function updateStream(): void {
  for (let k = 0; k < K; k++) {
    let o = <usize>k << 2;
    let cnt = load<f32>(SATN + o);
    if (cnt == 0) continue;
    let shat = load<f32>(SATSUM + o) / cnt;
    let seen = load<f32>(SEEN + o) != 0;
    store<f32>(SBAR + o, seen ? decay * load<f32>(SBAR + o) + (1 - decay) * shat : shat);
    store<f32>(SEEN + o, 1);
  }
  streamWeights();
}

/** Stream weights from sbar over all K criteria (no estimate counts as 0). */
export function streamWeights(): void {
  for (let k = 0; k < KP; k++) {
    let o = <usize>k << 2;
    store<f32>(SAT + o, k < K ? (load<f32>(SEEN + o) != 0 ? load<f32>(SBAR + o) : 0) : NaN);
  }
  let w = focalWeights(SAT, BASE, FSTREAM);
  memory.copy(FSTREAMR, w, <usize>KP << 2);
}

function streamSaturation(out: usize): void {
  for (let k = 0; k < K; k++) {
    let o = <usize>k << 2;
    store<f32>(out + o, load<f32>(SEEN + o) != 0 ? load<f32>(SBAR + o) : NaN);
    let w = <usize>k << 3;
    store<f64>(MWEIGHT + w, load<f32>(FSTREAM + o));
    store<f64>(MSAT + w, load<f32>(SAT + o));
  }
}

@inline function aggregated(): bool { return method >= MethodCode.WeightedSum && method != MethodCode.SaMrpo; }

/**
 * SA-MRPO (spec "Baselines"): s_k = mean u over the batch's valid rows where k is present (the
 * MSUM / MCNT statistics of the first pass), then each group's MethodCode.Gdpo z-scores weighted by
 * b_k (1 - s_k)^gamma. The rows are normalized again, group by group, into U: the first pass had
 * no s yet. gamma = 0 makes every factor exactly 1: gdpo bit for bit.
 */
function saMrpo(groups: i32, scores: usize, valid: usize, sizes: usize, instW: usize, outD: usize, outA: usize, U: usize): void {
  for (let k = 0; k < KP; k++) {
    let w = <usize>k << 3;
    let c = k < K ? load<f64>(MCNT + w) : 0;
    store<f32>(SAF + (<usize>k << 2), c > 0 ? <f32>Math.pow(1 - load<f64>(MSUM + w) / c, <f64>gamma) : 1);
  }
  let rowBytes = <usize>K << 2;
  let start = 0;
  for (let g = 0; g < groups; g++) {
    let m = load<i32>(sizes + (<usize>g << 2));
    let b = BASE;
    if (instW != 0) { loadPadded(instW + <usize>g * rowBytes, GB, 0); b = GB; }
    normalizeGroup(scores + <usize>start * rowBytes, U, m, valid != 0 ? valid + <usize>start : 0,
      outD + (<usize>start << 2), LO, INV, b, laneSum(b));
    if (groupAnyValid) gdpoGroup(start, m, U, b, outD, outA, SAF);
    start += m;
  }
}

/**
 * MethodCode.Gdpo: per-criterion z-scores within the group, a_i = sum_k b_k z_ik (b normalized over the
 * rubric; times factor[k] when `factor` is not 0, for sa-mrpo) into outA.
 */
function gdpoGroup(start: i32, m: i32, U: usize, b: usize, outD: usize, outA: usize, factor: usize = 0): void {
  let uBytes = <usize>KP << 2;
  let sumB: f64 = laneSum(b); // once over the rubric, as TRL's normalize_then_sum: absent adds nothing
  for (let i = 0; i < m; i++) store<f32>(outA + (<usize>(start + i) << 2), 0);
  for (let k = 0; k < K; k++) {
    let o = <usize>k << 2;
    let cnt = 0;
    let sum: f64 = 0;
    for (let i = 0; i < m; i++) {
      let d = load<f32>(outD + (<usize>(start + i) << 2));
      let u = load<f32>(U + <usize>i * uBytes + o);
      if (d == d && u == u) { cnt++; sum += u; }
    }
    if (cnt < 2) continue;
    let mean = sum / cnt;
    let ss: f64 = 0;
    for (let i = 0; i < m; i++) {
      let d = load<f32>(outD + (<usize>(start + i) << 2));
      let u = load<f32>(U + <usize>i * uBytes + o);
      if (d == d && u == u) ss += (u - mean) * (u - mean);
    }
    let std = Math.sqrt(ss / (cnt - 1));
    let wk = <f64>load<f32>(b + o) / sumB;
    if (factor != 0) wk *= <f64>load<f32>(factor + o);
    for (let i = 0; i < m; i++) {
      let ao = outA + (<usize>(start + i) << 2);
      let d = load<f32>(outD + (<usize>(start + i) << 2));
      let u = load<f32>(U + <usize>i * uBytes + o);
      if (d == d && u == u) store<f32>(ao, <f32>(<f64>load<f32>(ao) + wk * ((u - mean) / (std + advEps))));
    }
  }
}

/** Set by groupTotals: the number of valid rows; whether their rewards are all equal. */
let totalCount = 0;
let totalFlat = false;

/** Sum (f64, in row order) of the rewards of a group's valid rows. */
function groupTotals(start: i32, m: i32, outR: usize, outD: usize): f64 {
  let sum: f64 = 0;
  let cnt = 0;
  let lo: f32 = Infinity, hi: f32 = -Infinity;
  let i = start;
  let end = start + m;
  if (ASC_FEATURE_SIMD) {
    // Four rows a turn. An invalid row adds +0, which leaves the sum as is (it is never -0);
    // min and max lane-wise, skipping what the scalar selects skip (pmin/pmax: NaN too). Only
    // lo == hi is used, so which zero a min or max of +0 and -0 gives does not matter.
    let lov = f32x4.splat(Infinity), hiv = f32x4.splat(-Infinity);
    for (; i + 4 <= end; i += 4) {
      let o = <usize>i << 2;
      let d = v128.load(outD + o);
      let valid = f32x4.eq(d, d);
      let r = v128.load(outR + o);
      cnt += popcnt<i32>(i32x4.bitmask(valid));
      lov = f32x4.pmin(lov, v128.bitselect(r, lov, valid));
      hiv = f32x4.pmax(hiv, v128.bitselect(r, hiv, valid));
      r = v128.and(valid, r);
      let r01 = f64x2.promote_low_f32x4(r);
      let r23 = f64x2.promote_low_f32x4(v128.shuffle<f32>(r, r, 2, 3, 0, 1));
      sum += f64x2.extract_lane(r01, 0);
      sum += f64x2.extract_lane(r01, 1);
      sum += f64x2.extract_lane(r23, 0);
      sum += f64x2.extract_lane(r23, 1);
    }
    lov = f32x4.pmin(lov, v128.shuffle<f32>(lov, lov, 2, 3, 0, 1));
    hiv = f32x4.pmax(hiv, v128.shuffle<f32>(hiv, hiv, 2, 3, 0, 1));
    lo = f32x4.extract_lane(f32x4.pmin(lov, v128.shuffle<f32>(lov, lov, 1, 0, 3, 2)), 0);
    hi = f32x4.extract_lane(f32x4.pmax(hiv, v128.shuffle<f32>(hiv, hiv, 1, 0, 3, 2)), 0);
  }
  for (; i < end; i++) {
    let o = <usize>i << 2;
    let d = load<f32>(outD + o);
    if (d != d) continue;
    let r = load<f32>(outR + o);
    sum += r; cnt++;
    lo = r < lo ? r : lo;
    hi = hi < r ? r : hi;
  }
  totalCount = cnt;
  totalFlat = lo == hi;
  return sum;
}

/** Invalid rows take their group's mean reward (or the batch's); then advantages per group. */
function finishRewards(n: i32, groups: i32, sizes: usize, outR: usize, outD: usize, outA: usize): void {
  let batchSum: f64 = 0;
  let batchCount = 0;
  let emptyGroups = 0;
  let zeroStd = 0;
  let start = 0;
  for (let g = 0; g < groups; g++) {
    let m = load<i32>(sizes + (<usize>g << 2));
    let sum = groupTotals(start, m, outR, outD);
    let cnt = totalCount;
    batchSum += sum; batchCount += cnt;
    if (cnt == 0) emptyGroups++;
    else {
      if (totalFlat) zeroStd++;
      let mean = <f32>(sum / cnt);
      for (let i = start; cnt < m && i < start + m; i++) {
        let o = <usize>i << 2;
        let d = load<f32>(outD + o);
        if (d != d) store<f32>(outR + o, mean);
      }
    }
    if (method != MethodCode.Gdpo && method != MethodCode.SaMrpo) groupAdvantages(start, m, cnt, sum / <f64>max(cnt, 1), outR, outD, outA);
    start += m;
  }
  store<f64>(SUMMARY, <f64>zeroStd, Summary.ZeroStdGroups << 3);
  store<f64>(SUMMARY, <f64>(groups - emptyGroups), Summary.ActiveGroups << 3);
  if (emptyGroups > 0) {
    let mean = batchCount > 0 ? <f32>(batchSum / batchCount) : <f32>0;
    start = 0;
    for (let g = 0; g < groups; g++) {
      let m = load<i32>(sizes + (<usize>g << 2));
      let empty = true;
      for (let i = start; i < start + m; i++) {
        let d = load<f32>(outD + (<usize>i << 2));
        if (d == d) { empty = false; break; }
      }
      if (empty) for (let i = start; i < start + m; i++) store<f32>(outR + (<usize>i << 2), mean);
      start += m;
    }
  }
  if (method == MethodCode.Gdpo || method == MethodCode.SaMrpo) gdpoBatch(n, outD, outA);
}

function groupAdvantages(start: i32, m: i32, cnt: i32, mean: f64, outR: usize, outD: usize, outA: usize): void {
  let mode = cnt >= 2 ? advantage : AdvantageCode.None; // fewer than two valid rows: advantage 0
  let std: f64 = 0;
  if (mode == AdvantageCode.Grpo) {
    let ss: f64 = 0;
    for (let i = start; i < start + m; i++) {
      let o = <usize>i << 2;
      let d = load<f32>(outD + o);
      if (d == d) { let x = <f64>load<f32>(outR + o) - mean; ss += x * x; }
    }
    std = Math.sqrt(ss / (cnt - 1));
  }
  let scale = 1 / (std + advEps);
  let others = 1 / <f64>(cnt - 1);
  let total = mean * cnt;
  let i = start;
  let end = start + m;
  if (ASC_FEATURE_SIMD) {
    // Two rows a turn in f64x2 lanes: the same f64 operations per row, 0 for an invalid row.
    let mv = f64x2.splat(mean), sv = f64x2.splat(scale), tv = f64x2.splat(total), ov = f64x2.splat(others);
    for (; i + 2 <= end; i += 2) {
      let o = <usize>i << 2;
      let d = wide2(outD + o);
      let r = wide2(outR + o);
      let a = f64x2.splat(0);
      if (mode == AdvantageCode.Grpo) a = f64x2.mul(f64x2.sub(r, mv), sv);
      else if (mode == AdvantageCode.DrGrpo) a = f64x2.sub(r, mv);
      else if (mode == AdvantageCode.Rloo) a = f64x2.sub(r, f64x2.mul(f64x2.sub(tv, r), ov));
      v128.store64_lane(outA + o, f32x4.demote_f64x2_zero(v128.and(f64x2.eq(d, d), a)), 0);
    }
  }
  for (; i < end; i++) {
    let o = <usize>i << 2;
    let d = load<f32>(outD + o);
    let a: f64 = 0;
    if (d == d && mode != AdvantageCode.None) {
      let r = <f64>load<f32>(outR + o);
      if (mode == AdvantageCode.Grpo) a = (r - mean) * scale;
      else if (mode == AdvantageCode.DrGrpo) a = r - mean;
      else if (mode == AdvantageCode.Rloo) a = r - (total - r) * others;
    }
    store<f32>(outA + o, <f32>a);
  }
}

/** MethodCode.Gdpo's batch normalization of a_i over every valid row. */
function gdpoBatch(n: i32, outD: usize, outA: usize): void {
  let sum: f64 = 0;
  let cnt = 0;
  for (let i = 0; i < n; i++) {
    let o = <usize>i << 2;
    let d = load<f32>(outD + o);
    if (d == d) { sum += load<f32>(outA + o); cnt++; }
  }
  let mean = cnt > 0 ? sum / cnt : 0;
  let ss: f64 = 0;
  for (let i = 0; i < n; i++) {
    let o = <usize>i << 2;
    let d = load<f32>(outD + o);
    if (d == d) { let x = <f64>load<f32>(outA + o) - mean; ss += x * x; }
  }
  let std = cnt > 1 ? Math.sqrt(ss / (cnt - 1)) : 0;
  for (let i = 0; i < n; i++) {
    let o = <usize>i << 2;
    let d = load<f32>(outD + o);
    let a: f64 = 0;
    if (d == d && cnt > 1) a = (<f64>load<f32>(outA + o) - mean) / (std + advEps);
    store<f32>(outA + o, <f32>a);
  }
}

// ---------------------------------------------------------------------------------------------
// One rollout

/** Reward of the row in Region.Row: with the stream weights, or as a group of one. NaN if invalid. */
export function scoreOne(): f32 {
  let d = normalizeRow(ROW, ROWU, LO, INV, BASE, laneSum(BASE)); // the host rejects infinities
  if (d != d) return NaN;
  if (aggregated()) return aggregateOne(method, ROWU, BASE, d);
  if (method != MethodCode.Focal) return d;
  let w = FSTREAMR;
  if (scope == ScopeCode.Group) {
    store<f32>(ROWP, 1);
    store<f32>(ROWP, d, 4);
    groupSums(ROWU, ROWP + 4, ROWP, 1, !rowHasAbsent, tau, ACC, MASS, GSUM, GSQ, GCNT, GMIN, GMAX);
    saturationOf(ACC, MASS, SAT);
    w = dropConstant ? focalKept(BASE) : focalWeights(SAT, BASE, FW); // a row alone: all constant
  }
  let r = weightedMean(ROWU, w);
  return r == r ? r : d;
}

/** First free byte after the module's static data. */
export function heapBase(): usize {
  return __heap_base;
}

export { outOfScale } from "./scale";
