// Focal Reward kernels. The fixed region (rubric, stream state, settings, per-criterion scratch) is laid
// out by src/abi.ts, shared with the host; the host places the per-call buffers after it
// (src/wasm.ts). Nothing here allocates.
// Per-row work runs in 4-lane chunks (rows.ts); per-group bookkeeping below is scalar code shared
// by both builds, or lane-wise vector code that adds the same values in the same order (see
// foldStats), so the simd and scalar builds give the same bits.
// One file (~950 lines): the exports (configure, score, scoreOne, the stream state) share the
// region pointers and settings held in this module's globals; rows.ts, wide.ts, aggregators.ts and
// scale.ts hold the kernels, given what they need as arguments or once at layout time.

import {
  K, KP, setShape, sawInfinity, resetInfinity, rowHasAbsent, normalizeRow, weightedMean, weightedMeanDense4, rowMean, laneSum, groupStats, fill,
  loadPadded, storeUnpadded,
} from "./rows";
import {
  normalizeGroup, normalizeRowWide, groupAnyValid, groupHasAbsent, groupInScale, groupStatsDone, wideLayout, configureWide, weightedMeanWide, denseRewardsWide, laneSumWide, tiltWide, tiltedSums, saturationWide,
} from "./wide";
import { countOutOfScale, addPresent, totalOf } from "./scale";
import { aggregatorLayout, configureAggregators, aggregateGroup, aggregateOne, beginCall, fGrpoScale, pow3rRewards } from "./aggregators";
import { AbiQuery, AdvantageCode, Call, Head, MethodCode, Region, ScopeCode, Setting, Stat, Summary } from "../src/abi";

export function trap(message: usize, file: usize, line: u32, column: u32): void {
  unreachable();
}

let method = MethodCode.Focal;
let scope = ScopeCode.Group;
let advantage = AdvantageCode.Grpo;
/** gamma as float32, for sa-mrpo's factors. */
let gamma: f32 = 3;
let bounded = false;
let minWeight: f64 = 0;
let maxWeight: f64 = 1;
let decay: f32 = 0.9, decayW: f64 = 0.9;
let advEps: f64 = 1e-6;
// The same settings unrounded, for the f64 path (spec "Precision contract").
let gammaW: f64 = 3;
let epsW: f64 = 0.05;
let tauW: f64 = 1;
let mixW: f64 = 1;
/** constant "drop" (group scope, focal): leave a group's constant criteria out of steps 4-7. */
let dropConstant = false;
/** outOfScale "error": a call with a score out of scale changes nothing (score() returns 2). */
let refuseOutOfScale = false;
/** Some criterion of the rubric is fixed (guarded); read from Region.Fixed by configure(). */
let rubricFixed = false;
/** The spread at or below which a criterion is constant in its group (spec). */
const CONSTANT_SPREAD: f32 = 1e-6;

// The fixed region (src/abi.ts): a head of f64 slots, then vectors of KP lanes.
let HEAD: usize;
let LO: usize, INV: usize, BASE: usize, SBAR: usize, SEEN: usize, FSTREAM: usize;
let ROW: usize, ROWU: usize, SAT: usize, FW: usize, GB: usize;
let LOW: usize, INVW: usize, BASEW: usize, GBW: usize, ROWW: usize, ACCW: usize, MASSW: usize, SATW: usize, COEFW: usize, FWW: usize, MASKW: usize, KEPTW: usize;
let GSUM: usize, GSQ: usize, GCNT: usize, GMIN: usize, GMAX: usize, SATSUM: usize, SATN: usize;
let MSUM: usize, MSQ: usize, MCNT: usize, MCONST: usize, MPRES: usize, MWEIGHT: usize, MSAT: usize;
let SORT: usize, SUMMARY: usize, FSTREAMR: usize, FIXED: usize, SAF: usize;
let SCALE_LO: usize, SCALE_HI: usize, OUTSIDE: usize, PRESENT: usize, DCONST: usize;

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
  SAT = region(Region.Saturation);
  FW = region(Region.FocalWeights); GB = region(Region.GroupBase);
  GSUM = region(Region.GroupSum); GSQ = region(Region.GroupSq); GCNT = region(Region.GroupCount);
  GMIN = region(Region.GroupMin); GMAX = region(Region.GroupMax); SATSUM = region(Region.SatSum); SATN = region(Region.SatCount);
  SAF = region(Region.SaMrpoFactor);
  LOW = region(Region.LoWide); INVW = region(Region.InvWide); BASEW = region(Region.BaseWide); GBW = region(Region.GroupBaseWide);
  ROWW = region(Region.RowWide); ACCW = region(Region.AccWide); MASSW = region(Region.MassWide); SATW = region(Region.SaturationWide);
  COEFW = region(Region.CoefficientsWide); FWW = region(Region.FocalWide); MASKW = region(Region.MaskWide); KEPTW = region(Region.KeptWide);
  let stat = (f: i32): usize => region(Region.Stats + 2 * f);
  MSUM = stat(Stat.Sum); MSQ = stat(Stat.Sq); MCNT = stat(Stat.Count); MCONST = stat(Stat.Constant);
  MPRES = stat(Stat.Present); MWEIGHT = stat(Stat.Weight); MSAT = stat(Stat.Saturation);
  SORT = region(Region.Sort);
  SCALE_LO = region(Region.ScaleLo); SCALE_HI = region(Region.ScaleHi); OUTSIDE = region(Region.OutOfScale); PRESENT = region(Region.ScalePresent);
  DCONST = region(Region.DenseConstant);
  wideLayout(SCALE_LO, SCALE_HI, GSUM, GSQ, GCNT, GMIN, GMAX);
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
  gamma = <f32>setting(Setting.Gamma);
  bounded = setting(Setting.Bounded) != 0; minWeight = setting(Setting.MinWeight); maxWeight = setting(Setting.MaxWeight);
  decay = <f32>setting(Setting.Decay); decayW = setting(Setting.Decay); advEps = setting(Setting.AdvEps);
  dropConstant = setting(Setting.DropConstant) != 0;
  refuseOutOfScale = setting(Setting.RefuseOutOfScale) != 0;
  rubricFixed = false;
  for (let k = 0; k < K; k++) if (load<f32>(FIXED + (<usize>k << 2)) != 0) rubricFixed = true;
  gammaW = setting(Setting.Gamma); epsW = setting(Setting.Eps); tauW = setting(Setting.Tau); mixW = setting(Setting.Mix);
  configureWide(LOW, INVW);
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
// Weights (spec steps 4-6), in f64 scalar code shared by both builds (K values a group).

// @ts-ignore: decorator
@inline function present(mask: usize, k: i32): bool {
  let m = load<f64>(mask + (<usize>k << 3));
  return m == m;
}

/**
 * Euclidean projection of the present lanes of the f64 vector f onto {sum = target, lo <= f <= hi}
 * (spec step 5; target = 1 - the fixed criteria's share). An infeasible box widens to target / count.
 */
function project(f: usize, mask: usize, target: f64): void {
  let kg = 0;
  for (let k = 0; k < K; k++) if (present(mask, k)) kg++;
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
    if (!present(mask, k)) continue;
    let x = load<f64>(f + (<usize>k << 3));
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
      if (!present(mask, k)) continue;
      let x = load<f64>(f + (<usize>k << 3));
      if (x - mid <= lo) fixed += lo;
      else if (x - mid >= hi) fixed += hi;
      else { free++; freeSum += x; }
    }
    theta = free > 0 ? (freeSum + fixed - target) / free : b;
  } else theta = load<f64>(SORT);
  for (let k = 0; k < K; k++) {
    if (!present(mask, k)) continue;
    let o = <usize>k << 3;
    store<f64>(f + o, min(max(load<f64>(f + o) - theta, lo), hi));
  }
}

function clampedSum(f: usize, mask: usize, theta: f64, lo: f64, hi: f64): f64 {
  let s: f64 = 0;
  for (let k = 0; k < K; k++) {
    if (present(mask, k)) s += min(max(load<f64>(f + (<usize>k << 3)) - theta, lo), hi);
  }
  return s;
}

/** Static weights: the f64 b normalized over the lanes where the f64 `mask` is present, into FWW and FW. */
function staticWeights(b: usize, mask: usize): void {
  let sumB: f64 = 0;
  for (let k = 0; k < K; k++) if (present(mask, k)) sumB += load<f64>(b + (<usize>k << 3));
  for (let k = 0; k < KP; k++) {
    let o = <usize>k << 3;
    store<f64>(FWW + o, k < K && present(mask, k) ? load<f64>(b + o) / sumB : 0);
  }
  storeFocal();
}

/** FW (f32) from FWW (f64); lanes past K 0. */
function storeFocal(): void {
  for (let k = 0; k < KP; k++) store<f32>(FW + (<usize>k << 2), <f32>load<f64>(FWW + (<usize>k << 3)));
}

/**
 * Focal coefficients c = b (1 - s + eps)^gamma into COEFW over the lanes where `sat` (f64) is
 * present, 0 elsewhere; returns the sum of those whose lane is not fixed when `skipFixed`. A whole
 * gamma up to 8 is repeated multiplication; any other is exp(gamma (ln h - ln max h)), relative
 * to the largest h, so that weights far apart stay apart where h^gamma itself would underflow
 * (gamma 40: 0.05^40 = 9e-53). The common factor cancels in the normalized weights.
 */
function focalCoefficients(sat: usize, b: usize, skipFixed: bool): f64 {
  let power = <i32>gammaW;
  let whole = <f64>power == gammaW && power <= 8;
  let top: f64 = 0;
  if (!whole) {
    for (let k = 0; k < K; k++) {
      let s = load<f64>(sat + (<usize>k << 3));
      let h = (1 - s) + epsW;
      if (s == s && h > top) top = h;
    }
  }
  let lnTop = top > 0 ? Math.log(top) : 0;
  let total: f64 = 0;
  for (let k = 0; k < KP; k++) {
    let o = <usize>k << 3;
    let s = k < K ? load<f64>(sat + o) : <f64>NaN;
    let c: f64 = 0;
    if (s == s) {
      let h = (1 - s) + epsW;
      let pw: f64 = 1;
      if (whole) {
        for (let j = 0; j < power; j++) pw = pw * h;
      } else if (gammaW != 0) pw = h > 0 ? Math.exp(gammaW * (Math.log(h) - lnTop)) : 0;
      c = load<f64>(b + o) * pw;
      if (!(skipFixed && load<f32>(FIXED + (<usize>k << 2)) != 0)) total += c;
    }
    store<f64>(COEFW + o, c);
  }
  return total;
}

/** f = mix f + (1 - mix) b / sumB on the present lanes of FWW. */
function mixFocal(b: usize, sat: usize, sumB: f64): void {
  for (let k = 0; k < K; k++) {
    if (!present(sat, k)) continue;
    let o = <usize>k << 3;
    store<f64>(FWW + o, mixW * load<f64>(FWW + o) + (1 - mixW) * (load<f64>(b + o) / sumB));
  }
}

/** Sum of b over the criteria present in `sat`, in criterion order. */
function presentSum(sat: usize, b: usize): f64 {
  let sumB: f64 = 0;
  for (let k = 0; k < K; k++) if (present(sat, k)) sumB += load<f64>(b + (<usize>k << 3));
  return sumB;
}

/** gamma is a whole number up to 8: focalCoefficients multiplies h by itself. */
// @ts-ignore: decorator
@inline function wholePower(): bool {
  let power = <i32>gammaW;
  return <f64>power == gammaW && power <= 8;
}

/**
 * focalWeights without fixed criteria, bounds or mixing, for a whole gamma (the defaults): the
 * same operations lane by lane (simd: two criteria a turn), the coefficients' total in criterion
 * order in both builds. Into COEFW, FWW and FW; returns COEFW (b where the total is 0).
 */
function plainFocal(sat: usize, b: usize): usize {
  let power = <i32>gammaW;
  let coef = COEFW;
  // h^power as ((h h) h)...: the product starts at h, which 1 h is exactly. Lanes without a
  // saturation (and those past K) hold +0, which leaves the total, in criterion order, as it is.
  let total: f64 = 0;
  let k = 0;
  if (ASC_FEATURE_SIMD) {
    let one = f64x2.splat(1), eps = f64x2.splat(epsW);
    for (let o: usize = 0, end = <usize>KP << 3; o < end; o += 16) {
      let s = v128.load(sat + o);
      let h = f64x2.add(f64x2.sub(one, s), eps);
      let pw = power == 3 ? f64x2.mul(f64x2.mul(h, h), h) : power == 2 ? f64x2.mul(h, h) : power > 0 ? h : one; // the default 3 without the loop
      for (let j = power == 3 ? 3 : power == 2 ? 2 : 1; j < power; j++) pw = f64x2.mul(pw, h);
      let c = v128.and(f64x2.eq(s, s), f64x2.mul(v128.load(b + o), pw));
      v128.store(coef + o, c);
      total += f64x2.extract_lane(c, 0);
      total += f64x2.extract_lane(c, 1);
    }
  } else {
    for (; k < KP; k++) {
      let o = <usize>k << 3;
      let s = load<f64>(sat + o);
      let h = (1 - s) + epsW;
      let pw: f64 = power > 0 ? h : 1;
      for (let j = 1; j < power; j++) pw = pw * h;
      let c = s == s ? load<f64>(b + o) * pw : 0;
      store<f64>(coef + o, c);
      total += c;
    }
  }
  if (!(total > 0)) {
    let sumB = presentSum(sat, b);
    for (k = 0; k < KP; k++) {
      let o = <usize>k << 3;
      store<f64>(FWW + o, k < K && present(sat, k) ? load<f64>(b + o) / sumB : 0);
    }
    storeFocal();
    return b;
  }
  k = 0;
  if (ASC_FEATURE_SIMD) {
    let t = f64x2.splat(total);
    let fww = FWW, fw = FW;
    for (let o: usize = 0, end = <usize>KP << 3; o < end; o += 16) {
      let f = f64x2.div(v128.load(coef + o), t);
      v128.store(fww + o, f);
      v128.store64_lane(fw + (o >> 1), f32x4.demote_f64x2_zero(f), 0);
    }
  } else {
    for (; k < KP; k++) {
      let o = <usize>k << 3;
      let f = load<f64>(COEFW + o) / total;
      store<f64>(FWW + o, f);
      store<f32>(FW + (<usize>k << 2), <f32>f);
    }
  }
  return COEFW;
}

/**
 * Focal weights from the f64 saturation `sat` (NaN = criterion not in use) and the f64 base
 * weights b: into FWW (f64) and `out` (f32). Returns the f64 vector to weight rewards with:
 * proportional to the weights, and unnormalized where it can be, so that gamma = 0 gives the
 * direct reward bit for bit (b itself).
 */
function focalWeights(sat: usize, b: usize, out: usize): usize {
  if (!rubricFixed && !bounded && mixW == 1 && out == FW && wholePower()) return plainFocal(sat, b);
  let sumB = presentSum(sat, b);
  let anyFixed = false;
  for (let k = 0; k < K; k++) {
    if (present(sat, k) && load<f32>(FIXED + (<usize>k << 2)) != 0) anyFixed = true;
  }
  let total = focalCoefficients(sat, b, anyFixed);
  let w: usize;
  if (anyFixed) {
    guardedWeights(sat, b, sumB, total);
    if (mixW != 1) mixFocal(b, sat, sumB);
    w = gammaW == 0 && !bounded && mixW == 1 ? b : FWW;
  } else {
    for (let k = 0; k < KP; k++) {
      let o = <usize>k << 3;
      let f: f64 = 0;
      if (k < K && present(sat, k)) f = total > 0 ? load<f64>(COEFW + o) / total : load<f64>(b + o) / sumB;
      store<f64>(FWW + o, f);
    }
    if (bounded) project(FWW, sat, 1);
    if (mixW != 1) mixFocal(b, sat, sumB);
    w = bounded || mixW != 1 ? FWW : total > 0 ? COEFW : b;
  }
  if (out == FW) storeFocal();
  else for (let k = 0; k < KP; k++) store<f32>(out + (<usize>k << 2), <f32>load<f64>(FWW + (<usize>k << 3)));
  return w;
}

/**
 * Guarded criteria (spec "Guarded criteria"), some fixed one present: it keeps b_k / sum b and the
 * others share the rest in proportion to COEFW (b if gamma = 0 or COEFW sums to 0); bounds then
 * project only the others. `total`: the sum of the others' coefficients.
 */
function guardedWeights(sat: usize, b: usize, sumB: f64, total: f64): void {
  let fixedB: f64 = 0;
  for (let k = 0; k < K; k++) {
    if (present(sat, k) && load<f32>(FIXED + (<usize>k << 2)) != 0) fixedB += load<f64>(b + (<usize>k << 3));
  }
  let share: f64 = 1 - fixedB / sumB;
  let free = gammaW != 0 && total > 0;
  for (let k = 0; k < KP; k++) {
    let o = <usize>k << 3;
    let s = k < K ? load<f64>(sat + o) : <f64>NaN;
    let fixed = s == s && load<f32>(FIXED + (<usize>k << 2)) != 0;
    store<f64>(MASKW + o, fixed ? <f64>NaN : s);
    let f: f64 = 0;
    if (s == s) f = free && !fixed ? share * load<f64>(COEFW + o) / total : load<f64>(b + o) / sumB;
    store<f64>(FWW + o, f);
  }
  if (bounded) project(FWW, MASKW, share);
}

/**
 * constant "drop": focal weights over the criteria of the group that vary (GMIN / GMAX / GCNT over
 * its valid rows), fixed ones always kept; where none varies, f = b. Returns the f64 reward
 * vector: FWW itself where focalWeights would hand back b, which still weighs the dropped criteria.
 */
function focalKept(b: usize): usize {
  let varies = false;
  for (let k = 0; k < KP; k++) {
    let o = <usize>k << 2;
    let s = k < K ? load<f64>(SATW + (<usize>k << 3)) : <f64>NaN;
    let constant = load<f32>(GCNT + o) < 2 || load<f32>(GMAX + o) - load<f32>(GMIN + o) <= CONSTANT_SPREAD;
    if (s == s && !constant) varies = true;
    store<f64>(KEPTW + (<usize>k << 3), s == s && (!constant || load<f32>(FIXED + o) != 0) ? s : <f64>NaN);
  }
  if (!varies) {
    staticWeights(b, SATW);
    return b;
  }
  let w = focalWeights(KEPTW, b, FW);
  return w == b ? FWW : w;
}

// ---------------------------------------------------------------------------------------------
// Batches

/**
 * Steps 4-7 for one group (focal, group scope): the weights from SATW into FW, the rewards of its
 * m rows (UW, direct rewards at d) into `out`; invalid rows are left to finishRewards.
 */
function focalRewards(bW: usize, UW: usize, m: i32, dense: bool, d: usize, out: usize): void {
  let w = dropConstant ? focalKept(bW) : focalWeights(SATW, bW, FW);
  if (w == bW) {
    // The base weights: the focal reward is the direct one (the same f64 sums).
    memory.copy(out, d, <usize>m << 2);
    return;
  }
  let den = laneSumWide(w);
  if (dense && den > 0) {
    denseRewardsWide(UW, m, w, den, d, out, groupStatsDone);
    return;
  }
  let uwBytes = <usize>KP << 3;
  for (let i = 0; i < m; i++) {
    let o = <usize>i << 2;
    let di = load<f32>(d + o);
    if (di != di) continue;
    let r = dense ? <f64>NaN : weightedMeanWide(UW + <usize>i * uwBytes, w);
    store<f32>(out + o, r == r ? <f32>r : di);
  }
}

// @ts-ignore: decorator
@inline function call(c: i32): f64 { return load<f64>(slot(Head.CallAt + c)); }

/**
 * Scores the batch the host described in the head's Call slots. Returns 0; 1 when a score is
 * infinite, 2 when one is out of scale under outOfScale "error" (nothing but this call's buffers
 * and counts was changed then; the out-of-scale counts are complete either way).
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
  let UW = <usize>call(Call.NormalizedWide), DW = <usize>call(Call.DirectWide);
  resetInfinity();
  let rowBytes = <usize>K << 2;
  let uBytes = <usize>KP << 2;
  for (let k = 0; k < KP * Stat.End; k++) store<f64>(MSUM + (<usize>k << 3), 0);
  store<f64>(SUMMARY, 0, Summary.ZeroStdGroups << 3);
  store<f64>(SUMMARY, 0, Summary.ActiveGroups << 3);
  memory.fill(OUTSIDE, 0, uBytes);
  memory.fill(PRESENT, 0, uBytes);
  memory.fill(DCONST, 0, uBytes);
  countedRows = 0; countedGroups = 0;
  let stream = scope != ScopeCode.Group && method == MethodCode.Focal;
  let keep = stream && uRows >= n;
  let U0 = U;
  if (stream) { memory.fill(SATSUM, 0, <usize>KP << 3); memory.fill(SATN, 0, <usize>KP << 3); }
  if (method == MethodCode.Pow3r) beginCall();

  let baseSum = laneSumWide(BASEW);
  denseGroups = 0; denseZeroStd = 0;
  let inScaleRows = 0; // rows of groups whose scores are all present and in scale, added to PRESENT once
  let start = 0;
  for (let g = 0; g < groups; g++) {
    let m = load<i32>(sizes + (<usize>g << 2));
    let b = BASE, bW = BASEW, bSum = baseSum;
    if (instW != 0) { loadGroupBase(instW + <usize>g * rowBytes); b = GB; bW = GBW; bSum = laneSumWide(GBW); }
    // Pass 1: normalize into U (f32) and UW (f64), direct reward per row (U at the rows' own places when kept).
    if (keep) U = U0 + <usize>start * uBytes;
    let rows = scores + <usize>start * rowBytes;
    let validAt = valid != 0 ? valid + <usize>start : 0;
    let top = normalizeGroup(rows, U, UW, m, validAt, outD + (<usize>start << 2), DW, LO, INV, LOW, INVW, bW, bSum, P);
    if (validAt == 0 && groupInScale) inScaleRows += m;
    else countOutOfScale(rows, m, validAt, SCALE_LO, SCALE_HI, OUTSIDE, PRESENT);
    let anyValid = groupAnyValid;
    let dense = !groupHasAbsent;
    // Tilted saturation (steps 2-3, f64) and per-criterion statistics over the valid rows.
    let pSum = dense ? tiltWide(DW, P, m, top, tauW) : 0;
    tiltedSums(UW, DW, P, pSum, m, dense, tauW, ACCW, MASSW);
    let everySat = dense && anyValid; // every criterion then has a saturation: mass = pSum >= 1
    saturationWide(ACCW, MASSW, SATW, SAT, everySat);
    if (!groupStatsDone) groupStats(U, outD + (<usize>start << 2), m, dense, GSUM, GSQ, GCNT, GMIN, GMAX);
    foldStats(anyValid, groupStatsDone, m);
    if (stream) {
      accumulatePresent();
    } else if (anyValid) {
      if (method == MethodCode.Focal) {
        focalRewards(bW, UW, m, dense, outD + (<usize>start << 2), outR + (<usize>start << 2));
        if (groupStatsDone && m > 0) finishDense(start, m, outR, outA); // every row valid
      } else if (aggregated()) {
        aggregateGroup(method, start, m, U, b, SAT, outD, outR, FW);
      } else {
        staticWeights(bW, SATW);
        memory.copy(outR + (<usize>start << 2), outD + (<usize>start << 2), <usize>m << 2);
        if (method == MethodCode.Gdpo) gdpoGroup(start, m, U, b, outD, outA);
      }
      accumulateWeights(everySat);
    } else {
      fill(FW, 0);
    }
    if (!stream) {
      storeUnpadded(FW, outW + <usize>g * rowBytes);
      storeUnpadded(SAT, outS + <usize>g * rowBytes);
    }
    start += m;
  }
  addPresent(PRESENT, inScaleRows);
  foldCounts();
  if (sawInfinity) return 1;
  if (refuseOutOfScale && totalOf(OUTSIDE) > 0) return 2;
  if (method == MethodCode.SaMrpo) saMrpo(groups, scores, valid, sizes, instW, outD, outA, U0, UW, DW, P);
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

/** acc[0..1] += x (f64x2 lanes). */
// @ts-ignore: decorator
@inline function addTo2(acc: usize, x: v128): void {
  v128.store(acc, f64x2.add(v128.load(acc), x));
}

/**
 * The group's statistics (GSUM ... GMAX) into the call's (MSUM ...). `counted` (groupStatsDone):
 * all m rows are valid and present; then the sums are added here, in group order, and the counts
 * (whole numbers: exact in any order) once a call by foldCounts.
 */
function foldStats(anyValid: bool, counted: bool, m: i32): void {
  if (!anyValid) return;
  let k = 0;
  if (ASC_FEATURE_SIMD) {
    if (counted) {
      let gSum = GSUM, gSq = GSQ, gMin = GMIN, gMax = GMAX, mSum = MSUM, mSq = MSQ, dConst = DCONST; // locals: V8 reloads globals
      for (; k + 2 <= K; k += 2) {
        let o = <usize>k << 2;
        let w = <usize>k << 3;
        addTo2(mSum + w, wide2(gSum + o));
        addTo2(mSq + w, wide2(gSq + o));
      }
      for (; k < K; k++) {
        let o = <usize>k << 2;
        let w = <usize>k << 3;
        store<f64>(mSum + w, load<f64>(mSum + w) + load<f32>(gSum + o));
        store<f64>(mSq + w, load<f64>(mSq + w) + load<f32>(gSq + o));
      }
      // -1 in each constant lane (lanes past K too: foldCounts leaves them out).
      for (let o: usize = 0, end = <usize>KP << 2; o < end; o += 16) {
        v128.store(dConst + o, i32x4.add(v128.load(dConst + o), f32x4.eq(v128.load(gMin + o), v128.load(gMax + o))));
      }
      countedRows += m;
      countedGroups++;
      return;
    }
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

/** Rows and groups foldStats counted (all rows valid and present) this call; their constant lanes are in DCONST. */
let countedRows = 0;
let countedGroups = 0;

/** foldStats's counts of the counted groups into MCNT, MPRES and MCONST. */
function foldCounts(): void {
  if (countedGroups == 0) return;
  for (let k = 0; k < K; k++) {
    let w = <usize>k << 3;
    store<f64>(MCNT + w, load<f64>(MCNT + w) + <f64>countedRows);
    store<f64>(MPRES + w, load<f64>(MPRES + w) + <f64>countedGroups);
    store<f64>(MCONST + w, load<f64>(MCONST + w) - <f64>load<i32>(DCONST + (<usize>k << 2)));
  }
}

/** The group's weights and saturations into the call's sums where it has a saturation (`every`: in every lane). */
function accumulateWeights(every: bool): void {
  let k = 0;
  if (ASC_FEATURE_SIMD) {
    let sat = SAT, fw = FW, mWeight = MWEIGHT, mSat = MSAT; // locals: V8 reloads globals
    if (every) {
      for (; k + 2 <= K; k += 2) {
        let o = <usize>k << 2;
        let w = <usize>k << 3;
        addTo2(mWeight + w, wide2(fw + o));
        addTo2(mSat + w, wide2(sat + o));
      }
    }
    for (; k + 2 <= K; k += 2) {
      let o = <usize>k << 2;
      let w = <usize>k << 3;
      let s = wide2(sat + o);
      let has = f64x2.eq(s, s);
      addWhere2(mWeight + w, wide2(fw + o), has);
      addWhere2(mSat + w, s, has);
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

/** The stream scope's sums over the call's groups: each group's saturation (f64) where it has one. */
function accumulatePresent(): void {
  for (let k = 0; k < K; k++) {
    let o = <usize>k << 3;
    let s = load<f64>(SATW + o);
    if (s != s) continue;
    store<f64>(SATSUM + o, load<f64>(SATSUM + o) + s);
    store<f64>(SATN + o, load<f64>(SATN + o) + 1);
  }
}

/** sbar <- shat on a criterion's first estimate, else decay sbar + (1 - decay) shat. */
function updateStream(): void {
  for (let k = 0; k < K; k++) {
    let cnt = load<f64>(SATN + (<usize>k << 3));
    if (cnt == 0) continue;
    let shat = load<f64>(SATSUM + (<usize>k << 3)) / cnt;
    let seen = load<f32>(SEEN + (<usize>k << 2)) != 0;
    store<f64>(SBAR + (<usize>k << 3), seen ? decayW * load<f64>(SBAR + (<usize>k << 3)) + (1 - decayW) * shat : shat);
    store<f32>(SEEN + (<usize>k << 2), 1);
  }
  streamWeights();
}

/** Stream weights from sbar over all K criteria (no estimate counts as 0). */
export function streamWeights(): void {
  for (let k = 0; k < KP; k++) {
    let s: f64 = k < K ? (load<f32>(SEEN + (<usize>k << 2)) != 0 ? load<f64>(SBAR + (<usize>k << 3)) : 0) : NaN;
    store<f32>(SAT + (<usize>k << 2), <f32>s);
    store<f64>(SATW + (<usize>k << 3), s);
  }
  let w = focalWeights(SATW, BASEW, FSTREAM);
  for (let k = 0; k < KP; k++) store<f32>(FSTREAMR + (<usize>k << 2), <f32>load<f64>(w + (<usize>k << 3)));
  streamSum = laneSum(FSTREAMR);
  baseSumWide = laneSumWide(BASEW);
}

/** laneSum(FSTREAMR) and laneSumWide(BASEW), kept by streamWeights for scoreOne. */
let streamSum: f32 = 0;
let baseSumWide: f64 = 0;

/** GB (f32) and GBW (f64): a group's instance weights at `at`, lanes past K 0. */
function loadGroupBase(at: usize): void {
  loadPadded(at, GB, 0);
  for (let k = 0; k < KP; k++) store<f64>(GBW + (<usize>k << 3), <f64>load<f32>(GB + (<usize>k << 2)));
}

function streamSaturation(out: usize): void {
  for (let k = 0; k < K; k++) {
    let o = <usize>k << 2;
    store<f32>(out + o, load<f32>(SEEN + o) != 0 ? <f32>load<f64>(SBAR + (<usize>k << 3)) : NaN);
    let w = <usize>k << 3;
    store<f64>(MWEIGHT + w, load<f32>(FSTREAM + o));
    store<f64>(MSAT + w, load<f64>(SATW + w));
  }
}

@inline function aggregated(): bool { return method >= MethodCode.WeightedSum && method != MethodCode.SaMrpo; }

/**
 * SA-MRPO (spec "Baselines"): s_k = mean u over the batch's valid rows where k is present (the
 * MSUM / MCNT statistics of the first pass), then each group's MethodCode.Gdpo z-scores weighted by
 * b_k (1 - s_k)^gamma. The rows are normalized again, group by group, into U: the first pass had
 * no s yet. gamma = 0 makes every factor exactly 1: gdpo bit for bit.
 */
function saMrpo(groups: i32, scores: usize, valid: usize, sizes: usize, instW: usize, outD: usize, outA: usize, U: usize, UW: usize, DW: usize, P: usize): void {
  for (let k = 0; k < KP; k++) {
    let w = <usize>k << 3;
    let c = k < K ? load<f64>(MCNT + w) : 0;
    store<f32>(SAF + (<usize>k << 2), c > 0 ? <f32>Math.pow(1 - load<f64>(MSUM + w) / c, <f64>gamma) : 1);
  }
  let rowBytes = <usize>K << 2;
  let start = 0;
  for (let g = 0; g < groups; g++) {
    let m = load<i32>(sizes + (<usize>g << 2));
    let b = BASE, bW = BASEW;
    if (instW != 0) { loadGroupBase(instW + <usize>g * rowBytes); b = GB; bW = GBW; }
    normalizeGroup(scores + <usize>start * rowBytes, U, UW, m, valid != 0 ? valid + <usize>start : 0,
      outD + (<usize>start << 2), DW, LO, INV, LOW, INVW, bW, laneSumWide(bW), P);
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
  return totals(start, m, outR, outD, false);
}

/** groupTotals's sums; `dense` (a constant): every row is valid, outD is not read. */
// @ts-ignore: decorator
@inline function totals(start: i32, m: i32, outR: usize, outD: usize, dense: bool): f64 {
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
      let r = v128.load(outR + o);
      if (dense) {
        cnt += 4;
        lov = f32x4.pmin(lov, r);
        hiv = f32x4.pmax(hiv, r);
      } else {
        let d = v128.load(outD + o);
        let valid = f32x4.eq(d, d);
        cnt += popcnt<i32>(i32x4.bitmask(valid));
        lov = f32x4.pmin(lov, v128.bitselect(r, lov, valid));
        hiv = f32x4.pmax(hiv, v128.bitselect(r, hiv, valid));
        r = v128.and(valid, r);
      }
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
    if (!dense) {
      let d = load<f32>(outD + o);
      if (d != d) continue;
    }
    let r = load<f32>(outR + o);
    sum += r; cnt++;
    lo = r < lo ? r : lo;
    hi = hi < r ? r : hi;
  }
  totalCount = cnt;
  totalFlat = lo == hi;
  return sum;
}

/**
 * Groups finished by finishDense (in score()'s loop, or all at once for the stream scope) and the
 * zero-std ones among them: when every group of the call was, finishRewards only writes the summary.
 */
let denseGroups = 0;
let denseZeroStd = 0;

/**
 * finishRewards's work for a group of m > 0 rows that are all valid (in the group scope done while
 * its rewards are in cache): the same sums and advantages as groupTotals and groupAdvantages,
 * without the row tests.
 */
function finishDense(start: i32, m: i32, outR: usize, outA: usize): void {
  let sum = totals(start, m, outR, 0, true);
  denseGroups++;
  if (totalFlat) denseZeroStd++;
  advantages(start, m, m, sum / <f64>m, outR, 0, outA, true);
}

/** Invalid rows take their group's mean reward (or the batch's); then advantages per group. */
function finishRewards(n: i32, groups: i32, sizes: usize, outR: usize, outD: usize, outA: usize): void {
  if (method == MethodCode.Focal && denseGroups == 0 && countedGroups == groups) {
    // Stream scope (its rewards come after score()'s loop): every row of every group is valid.
    let start = 0;
    for (let g = 0; g < groups; g++) {
      let m = load<i32>(sizes + (<usize>g << 2));
      finishDense(start, m, outR, outA);
      start += m;
    }
  }
  if (denseGroups == groups) {
    store<f64>(SUMMARY, <f64>denseZeroStd, Summary.ZeroStdGroups << 3);
    store<f64>(SUMMARY, <f64>groups, Summary.ActiveGroups << 3);
    return;
  }
  // Some group needs the row tests: all of them again (a finished group gets the same values).
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
    if (method != MethodCode.Gdpo && method != MethodCode.SaMrpo) advantages(start, m, cnt, sum / <f64>max(cnt, 1), outR, outD, outA, false);
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

/**
 * A group's advantages from its cnt valid rows' mean reward (0 for an invalid row, and for all
 * when cnt < 2); `dense` (a constant): every row is valid, outD is not read. One loop per mode.
 */
// @ts-ignore: decorator
@inline function advantages(start: i32, m: i32, cnt: i32, mean: f64, outR: usize, outD: usize, outA: usize, dense: bool): void {
  let mode = cnt >= 2 ? advantage : AdvantageCode.None; // fewer than two valid rows: advantage 0
  let std: f64 = 0;
  if (mode == AdvantageCode.Grpo) {
    let ss: f64 = 0;
    for (let i = start; i < start + m; i++) {
      let o = <usize>i << 2;
      if (!dense) {
        let d = load<f32>(outD + o);
        if (d != d) continue;
      }
      let x = <f64>load<f32>(outR + o) - mean;
      ss += x * x;
    }
    std = Math.sqrt(ss / (cnt - 1));
  }
  let scale = 1 / (std + advEps);
  let others = 1 / <f64>(cnt - 1);
  let total = mean * cnt;
  let end = start + m;
  if (mode == AdvantageCode.Grpo) advantageRows(start, end, AdvantageCode.Grpo, mean, scale, total, others, outR, outD, outA, dense);
  else if (mode == AdvantageCode.DrGrpo) advantageRows(start, end, AdvantageCode.DrGrpo, mean, scale, total, others, outR, outD, outA, dense);
  else if (mode == AdvantageCode.Rloo) advantageRows(start, end, AdvantageCode.Rloo, mean, scale, total, others, outR, outD, outA, dense);
  else advantageRows(start, end, AdvantageCode.None, mean, scale, total, others, outR, outD, outA, dense);
}

/** advantages's rows start..end for one `mode` (a constant). */
// @ts-ignore: decorator
@inline function advantageRows(start: i32, end: i32, mode: i32, mean: f64, scale: f64, total: f64, others: f64,
  outR: usize, outD: usize, outA: usize, dense: bool): void {
  let i = start;
  if (ASC_FEATURE_SIMD) {
    // Two rows a turn in f64x2 lanes: the same f64 operations per row, 0 for an invalid row.
    let mv = f64x2.splat(mean), sv = f64x2.splat(scale), tv = f64x2.splat(total), ov = f64x2.splat(others);
    for (; i + 2 <= end; i += 2) {
      let o = <usize>i << 2;
      let r = wide2(outR + o);
      let a = f64x2.splat(0);
      if (mode == AdvantageCode.Grpo) a = f64x2.mul(f64x2.sub(r, mv), sv);
      else if (mode == AdvantageCode.DrGrpo) a = f64x2.sub(r, mv);
      else if (mode == AdvantageCode.Rloo) a = f64x2.sub(r, f64x2.mul(f64x2.sub(tv, r), ov));
      if (!dense) {
        let d = wide2(outD + o);
        a = v128.and(f64x2.eq(d, d), a);
      }
      v128.store64_lane(outA + o, f32x4.demote_f64x2_zero(a), 0);
    }
  }
  for (; i < end; i++) {
    let o = <usize>i << 2;
    let a: f64 = 0;
    let valid = true;
    if (!dense) {
      let d = load<f32>(outD + o);
      valid = d == d;
    }
    if (valid && mode != AdvantageCode.None) {
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

/**
 * Reward of the row in Region.Row: with the stream weights, or as a group of one. NaN if invalid,
 * and NaN for a row with an infinite score (the host then says which: it checks only NaN results).
 */
export function scoreOne(): f32 {
  resetInfinity();
  if (scope == ScopeCode.Stream && method == MethodCode.Focal) {
    // The common case in one float32 pass: with every criterion present, the float64 direct
    // reward below is NaN only when the base weights sum to 0, and normalizeRow adds the same
    // sums as rowMean below. Anything else takes the general path.
    let r = normalizeRow(ROW, ROWU, LO, INV, FSTREAMR, streamSum);
    if (sawInfinity) return NaN;
    if (!rowHasAbsent && r == r && baseSumWide > 0) return r;
  }
  let dW = normalizeRowWide(ROW, ROWU, ROWW, LO, INV, LOW, INVW, BASEW, laneSumWide(BASEW));
  if (sawInfinity || dW != dW) return NaN;
  let d = <f32>dW;
  if (aggregated()) return aggregateOne(method, ROWU, BASE, d);
  if (method != MethodCode.Focal) return d;
  if (scope == ScopeCode.Group) {
    // A group of one: s = u where present; constant "drop" leaves every criterion out (f = b).
    if (dropConstant) return d;
    let w = focalWeights(ROWW, BASEW, FW);
    let rW = weightedMeanWide(ROWW, w);
    return rW == rW ? <f32>rW : d;
  }
  let r = rowMean(ROWU, FSTREAMR, streamSum); // score()'s sums for the same row
  return r == r ? r : d;
}

/** First free byte after the module's static data. */
export function heapBase(): usize {
  return __heap_base;
}

