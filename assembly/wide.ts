// The focal method's float64 path (spec "Precision contract"): the direct rewards, the tilt, the
// saturation and the focal rewards in f64. In float32 the rounding of d_i (~6e-8) becomes a
// relative error of 6e-8 / tau in the tilt, and gamma / (1 - s + eps) amplifies the saturation's
// error into the weights: 1e-5 and more at tau = 1e-3, gamma 16. Same discipline as rows.ts: each
// v128 branch (two criteria or two rows a turn in f64x2 lanes) runs the same f64 operations in the
// same order as its scalar branch (4 per-lane partial sums in chunk order, then (l0 + l2) + (l1 + l3)).

import { K, KP, TAIL_KEEP, noteInfinity, clamp01, fill } from "./rows";
import { exp64, expw } from "./mathf";

/** 1.0 in f32x4 lanes, then in f64x2 lanes: loaded once a group rather than built at each use. */
const ONES = memory.data<f64>([
  reinterpret<f64>(0x3f8000003f800000), reinterpret<f64>(0x3f8000003f800000), 1.0, 1.0,
]);

/** Set by normalizeGroup: some row of the group is valid; some valid row has an absent criterion. */
export let groupAnyValid: bool = false;
export let groupHasAbsent: bool = false;
/**
 * Set by normalizeGroup (simd build): every score of the group is present and within its scale
 * (assembly/scale.ts need not count it); groupStats's results for the group are already in place.
 */
export let groupInScale: bool = false;
export let groupStatsDone: bool = false;

// Regions normalizeGroup reads and writes besides its arguments (src/abi.ts), set once by wideLayout.
let SCALE_LO: usize, SCALE_HI: usize, G_SUM: usize, G_SQ: usize, G_CNT: usize, G_MIN: usize, G_MAX: usize;

/** The raw scale ends (f32) and groupStats's five vectors, from index.ts's layout(). */
export function wideLayout(scaleLo: usize, scaleHi: usize, sum: usize, sq: usize, cnt: usize, min: usize, max: usize): void {
  SCALE_LO = scaleLo; SCALE_HI = scaleHi; G_SUM = sum; G_SQ = sq; G_CNT = cnt; G_MIN = min; G_MAX = max;
}

/** Notes an infinite score among the m rows of K scores at `src`. */
function findInfinity(src: usize, m: i32): void {
  for (let o: usize = 0, end = <usize>m * K << 2; o < end; o += 4) {
    if (abs(load<f32>(src + o)) == Infinity) { noteInfinity(); return; }
  }
}

/** Set by normalizeRowWide: the row has an absent (NaN) criterion. */
export let rowAbsent: bool = false;

// @ts-ignore: decorator
@inline function clampWide(x: v128): v128 {
  return f64x2.pmax(f64x2.pmin(x, f64x2.splat(1)), f64x2.splat(0));
}

// @ts-ignore: decorator
@inline function clamp01d(x: f64): f64 {
  x = <f64>1 < x ? <f64>1 : x;
  return x < 0 ? <f64>0 : x;
}

/**
 * One row of K raw scores at `src`: u into `dst` in f32 (as rows.ts's normalizeRow, for the
 * statistics and the other methods) and into `dstW` in f64 from the unrounded map (loW, invW);
 * returns the direct reward sum(w u) / sum(w) in f64 over the present lanes (w: f64 weights,
 * den = laneSumWide(w); NaN when that sum is 0). Lanes past K are 0 in both rows.
 */
export function normalizeRowWide(src: usize, dst: usize, dstW: usize, lo: usize, inv: usize, loW: usize, invW: usize, w: usize, den: f64): f64 {
  let chunks = KP >> 2;
  let tail = (K & 3) != 0;
  let num: f64;
  if (ASC_FEATURE_SIMD) {
    let accL = f64x2.splat(0), accH = f64x2.splat(0);
    let big = f32x4.splat(0);
    let keep = v128.load(TAIL_KEEP);
    for (let c = 0; c < chunks; c++) {
      let o = <usize>c << 4;
      let ow = <usize>c << 5;
      let x = v128.load(src + o);
      if (tail && c == chunks - 1) x = v128.and(x, keep); // lanes past K read past the row
      big = f32x4.pmax(big, f32x4.abs(x)); // never NaN: a NaN x is skipped
      let u = f32x4.pmax(f32x4.pmin(f32x4.mul(f32x4.sub(x, v128.load(lo + o)), v128.load(inv + o)), f32x4.splat(1)), f32x4.splat(0));
      v128.store(dst + o, u);
      let xl = f64x2.promote_low_f32x4(x);
      let xh = f64x2.promote_low_f32x4(v128.shuffle<f32>(x, x, 2, 3, 0, 1));
      let ul = clampWide(f64x2.mul(f64x2.sub(xl, v128.load(loW + ow)), v128.load(invW + ow)));
      let uh = clampWide(f64x2.mul(f64x2.sub(xh, v128.load(loW + ow, 16)), v128.load(invW + ow, 16)));
      v128.store(dstW + ow, ul);
      v128.store(dstW + ow, uh, 16);
      accL = f64x2.add(accL, f64x2.mul(v128.load(w + ow), ul));
      accH = f64x2.add(accH, f64x2.mul(v128.load(w + ow, 16), uh));
    }
    if (v128.any_true(f32x4.eq(big, f32x4.splat(Infinity)))) noteInfinity();
    num = (f64x2.extract_lane(accL, 0) + f64x2.extract_lane(accH, 0)) + (f64x2.extract_lane(accL, 1) + f64x2.extract_lane(accH, 1));
  } else {
    let n0: f64 = 0, n1: f64 = 0, n2: f64 = 0, n3: f64 = 0;
    for (let c = 0; c < chunks; c++) {
      for (let l = 0; l < 4; l++) {
        let k = (c << 2) + l;
        let o = <usize>k << 2;
        let ow = <usize>k << 3;
        let x: f32 = k < K ? load<f32>(src + o) : 0;
        if (abs(x) == Infinity) noteInfinity();
        store<f32>(dst + o, clamp01((x - load<f32>(lo + o)) * load<f32>(inv + o)));
        let u = clamp01d((<f64>x - load<f64>(loW + ow)) * load<f64>(invW + ow));
        store<f64>(dstW + ow, u);
        let t = load<f64>(w + ow) * u;
        if (l == 0) n0 += t;
        else if (l == 1) n1 += t;
        else if (l == 2) n2 += t;
        else n3 += t;
      }
    }
    num = (n0 + n2) + (n1 + n3);
  }
  // w u is NaN exactly where a criterion is absent (u is clamped, w finite).
  rowAbsent = num != num;
  if (rowAbsent) return weightedMeanWide(dstW, w);
  return den > 0 ? num / den : NaN;
}

/** Row i's direct reward into dW (f64) and d (f32), NaN for an invalid row; returns what was stored. */
// @ts-ignore: decorator
@inline function storeDirect(i: i32, di: f64, valid: usize, dW: usize, d: usize): f64 {
  if (valid != 0 && load<u8>(valid + <usize>i) == 0) di = NaN;
  store<f64>(dW + (<usize>i << 3), di);
  store<f32>(d + (<usize>i << 2), <f32>di);
  return di;
}

/** unitRows's findings about a chunk's raw scores. */
const OUTSIDE = 1;

/**
 * normalizeGroup's f32 turn over one chunk (byte offset o) of m rows: u into U, and into G_SUM ...
 * G_MAX groupStats's dense results over every row, rows in order, from the raw extremes (pmin /
 * pmax skip NaN): u is monotone in x, so the u of the raw extremes are u's extremes (up to the
 * sign of a zero, which min == max and max - min do not see). Returns OUTSIDE when a score lies
 * outside its scale (or is infinite). `masked`: the last chunk, whose lanes past K read
 * past the row.
 */
// @ts-ignore: decorator
@inline function unitRows(xs: usize, us: usize, m: i32, o: usize, lo: usize, inv: usize, masked: bool, k: i32): i32 {
  let rowBytes = <usize>k << 2;
  let uBytes = <usize>((k + 3) & ~3) << 2;
  let keep = masked ? v128.load(TAIL_KEEP) : i32x4.splat(-1);
  let one = v128.load(ONES);
  let lo4 = v128.load(lo + o), inv4 = v128.load(inv + o);
  let sLo = v128.load(SCALE_LO + o), sHi = v128.load(SCALE_HI + o);
  let xMin = f32x4.splat(Infinity), xMax = f32x4.splat(-Infinity);
  let s = f32x4.splat(0), q = f32x4.splat(0);
  let i = 0;
  for (; i + 2 <= m; i += 2) { // two rows a turn: one loop test for both, each still added in row order
    let x = v128.load(xs), y = v128.load(xs + rowBytes);
    if (masked) { x = v128.and(x, keep); y = v128.and(y, keep); }
    xMin = f32x4.pmin(f32x4.pmin(xMin, x), y);
    xMax = f32x4.pmax(f32x4.pmax(xMax, x), y);
    let u = unit4(x, lo4, inv4, one), v = unit4(y, lo4, inv4, one);
    v128.store(us, u);
    v128.store(us + uBytes, v);
    s = f32x4.add(f32x4.add(s, u), v);
    q = f32x4.add(f32x4.add(q, f32x4.mul(u, u)), f32x4.mul(v, v));
    xs += rowBytes << 1; us += uBytes << 1;
  }
  if (i < m) {
    let x = v128.load(xs);
    if (masked) x = v128.and(x, keep);
    xMin = f32x4.pmin(xMin, x);
    xMax = f32x4.pmax(xMax, x);
    let u = unit4(x, lo4, inv4, one);
    v128.store(us, u);
    s = f32x4.add(s, u);
    q = f32x4.add(q, f32x4.mul(u, u));
  }
  let uA = unit4(xMin, lo4, inv4, one), uB = unit4(xMax, lo4, inv4, one);
  v128.store(G_SUM + o, s); v128.store(G_SQ + o, q); v128.store(G_MIN + o, f32x4.pmin(uA, uB)); v128.store(G_MAX + o, f32x4.pmax(uA, uB));
  return v128.any_true(v128.or(f32x4.lt(xMin, sLo), f32x4.gt(xMax, sHi))) ? OUTSIDE : 0;
}

/** clamp((x - lo) * inv, 0, 1) on f32 lanes (`one`: 1 in every lane). */
// @ts-ignore: decorator
@inline function unit4(x: v128, lo: v128, inv: v128, one: v128): v128 {
  return f32x4.pmax(f32x4.pmin(f32x4.mul(f32x4.sub(x, lo), inv), one), f32x4.splat(0));
}

/**
 * Whether (x - lo) * inv lies in [0, 1] in f64 for every score x within its scale (the map is
 * monotone in x: its values at the scale's float32 ends bound all others), so that clamping
 * changes nothing there. Set by configureWide once the host wrote the rubric.
 */
let scaleInUnit = false;

/** Reads the rubric's f64 map (loW, invW) against the float32 scale ends, for scaleInUnit. */
export function configureWide(loW: usize, invW: usize): void {
  scaleInUnit = true;
  for (let k = 0; k < K; k++) {
    let lo = load<f64>(loW + (<usize>k << 3)), inv = load<f64>(invW + (<usize>k << 3));
    let a = (<f64>load<f32>(SCALE_LO + (<usize>k << 2)) - lo) * inv;
    let b = (<f64>load<f32>(SCALE_HI + (<usize>k << 2)) - lo) * inv;
    if (!(a >= 0 && a <= 1 && b >= 0 && b <= 1)) scaleInUnit = false;
  }
}

/**
 * normalizeGroup's f64 turn over one chunk (f64 offset ow) of m rows: u into UW (clamped when
 * `clamp`; without, the same values where scaleInUnit holds) and each row's two partial sums of
 * w u at `part`, added to the earlier chunks' unless `first`. `masked`: as unitRows.
 */
// @ts-ignore: decorator
@inline function wideRows(xs: usize, uws: usize, ps: usize, m: i32, ow: usize, loW: usize, invW: usize, w: usize, masked: bool, first: bool, clamp: bool, k: i32): void {
  let rowBytes = <usize>k << 2;
  let uwBytes = <usize>((k + 3) & ~3) << 3;
  let keep = masked ? v128.load(TAIL_KEEP) : i32x4.splat(-1);
  let loL = v128.load(loW + ow), loH = v128.load(loW + ow, 16);
  let invL = v128.load(invW + ow), invH = v128.load(invW + ow, 16);
  let wL = v128.load(w + ow), wH = v128.load(w + ow, 16);
  let i = 0;
  for (; i + 2 <= m; i += 2) { // two rows a turn: one loop test for both
    let x = v128.load(xs), y = v128.load(xs + rowBytes);
    if (masked) { x = v128.and(x, keep); y = v128.and(y, keep); }
    wideRow(x, uws, ps, loL, loH, invL, invH, wL, wH, first, clamp);
    wideRow(y, uws + uwBytes, ps + 32, loL, loH, invL, invH, wL, wH, first, clamp);
    xs += rowBytes << 1; uws += uwBytes << 1; ps += 64;
  }
  if (i < m) wideRow(masked ? v128.and(v128.load(xs), keep) : v128.load(xs), uws, ps, loL, loH, invL, invH, wL, wH, first, clamp);
}

/** wideRows's work on one row's chunk x: its f64 u at `uws`, its two partial sums at `ps`. */
// @ts-ignore: decorator
@inline function wideRow(x: v128, uws: usize, ps: usize, loL: v128, loH: v128, invL: v128, invH: v128, wL: v128, wH: v128, first: bool, clamp: bool): void {
  let xl = f64x2.promote_low_f32x4(x);
  let xh = f64x2.promote_low_f32x4(v128.shuffle<f32>(x, x, 2, 3, 0, 1));
  let ul = f64x2.mul(f64x2.sub(xl, loL), invL);
  let uh = f64x2.mul(f64x2.sub(xh, loH), invH);
  if (clamp) {
    let one = f64x2.splat(1);
    ul = f64x2.pmax(f64x2.pmin(ul, one), f64x2.splat(0));
    uh = f64x2.pmax(f64x2.pmin(uh, one), f64x2.splat(0));
  }
  v128.store(uws, ul);
  v128.store(uws, uh, 16);
  let tl = f64x2.mul(wL, ul), th = f64x2.mul(wH, uh);
  if (!first) {
    tl = f64x2.add(v128.load(ps), tl);
    th = f64x2.add(v128.load(ps, 16), th);
  }
  v128.store(ps, tl);
  v128.store(ps, th, 16);
}

/**
 * normalizeGroup's chunk turns (unitRows, then wideRows) over every chunk of k criteria; returns
 * unitRows's findings. `k`: K, or a constant equal to it for constant strides.
 */
// @ts-ignore: decorator
@inline function chunkPasses(src: usize, U: usize, UW: usize, m: i32, lo: usize, inv: usize, loW: usize, invW: usize, w: usize, part: usize, k: i32): i32 {
  let chunks = ((k + 3) & ~3) >> 2;
  let flags = 0;
  for (let c = 0; c < chunks; c++) {
    let o = <usize>c << 4;
    let ow = <usize>c << 5;
    let xs = src + o, uws = UW + ow;
    if (c == chunks - 1 && (k & 3) != 0) {
      flags |= unitRows(xs, U + o, m, o, lo, inv, true, k);
      wideRows(xs, uws, part, m, ow, loW, invW, w, true, c == 0, true, k);
      continue;
    }
    let f = unitRows(xs, U + o, m, o, lo, inv, false, k);
    flags |= f;
    let clamp = f != 0 || !scaleInUnit;
    if (c == 0) {
      if (clamp) wideRows(xs, uws, part, m, ow, loW, invW, w, false, true, true, k);
      else wideRows(xs, uws, part, m, ow, loW, invW, w, false, true, false, k);
    } else {
      if (clamp) wideRows(xs, uws, part, m, ow, loW, invW, w, false, false, true, k);
      else wideRows(xs, uws, part, m, ow, loW, invW, w, false, false, false, k);
    }
  }
  return flags;
}

/**
 * chunkPasses for K = 16 (constant strides and chunk count). Both copies are functions of their own:
 * their loops get registers to themselves (inlined into normalizeGroup, they spilled ~3.5x as often)
 * and an inlined pair would be folded back into one.
 */
function chunkPasses16(src: usize, U: usize, UW: usize, m: i32, lo: usize, inv: usize, loW: usize, invW: usize, w: usize, part: usize): i32 {
  return chunkPasses(src, U, UW, m, lo, inv, loW, invW, w, part, 16);
}

/** chunkPasses for any K. */
function chunkPassesK(src: usize, U: usize, UW: usize, m: i32, lo: usize, inv: usize, loW: usize, invW: usize, w: usize, part: usize): i32 {
  return chunkPasses(src, U, UW, m, lo, inv, loW, invW, w, part, K);
}

/**
 * normalizeRowWide over the m rows of a group (K scores apart at `src`; KP lanes apart at `U`
 * and `UW`): direct rewards in f64 into dW and in f32 into d, NaN where `valid` (0 = no mask)
 * marks the row invalid. Returns the best direct reward among the valid rows (-Infinity: none).
 * `part`: scratch of 32 bytes a row (simd build).
 */
export function normalizeGroup(src: usize, U: usize, UW: usize, m: i32, valid: usize, d: usize, dW: usize,
  lo: usize, inv: usize, loW: usize, invW: usize, w: usize, den: f64, part: usize): f64 {
  let rowBytes = <usize>K << 2;
  let uBytes = <usize>KP << 2;
  let top: f64 = -Infinity;
  let any = false;
  let absent = false;
  let nan = false;
  groupInScale = false;
  groupStatsDone = false;
  if (ASC_FEATURE_SIMD) {
    // normalizeRowWide's v128 branch with the loops swapped: a chunk of 4 criteria at a time over
    // all the rows, first in f32 (unitRows: U, the statistics, the raw extremes), then in f64
    // (wideRows: UW, the direct sums), its affine map and weights held in registers; each row's
    // two partial sums kept at `part` (2 f64x2 a row) between chunks, so that every row still
    // adds its chunks in order. When the raw extremes lie in their scales, no score of the group
    // is out of scale or infinite. Each turn has copies of its own (constant flags) that leave an
    // operation out: the lane mask but in a last chunk that is part of the row, the first chunk's
    // sum, the f64 clamps where the scores lie in their scales and scaleInUnit holds.
    // K = 16 (the common rubric size) gets a copy with constant strides.
    let flags = K == 16
      ? chunkPasses16(src, U, UW, m, lo, inv, loW, invW, w, part)
      : chunkPassesK(src, U, UW, m, lo, inv, loW, invW, w, part);
    let uwBytes = uBytes << 1;
    let i = 0;
    if (valid == 0 && den > 0) {
      // Two rows a turn while both have every criterion: d = num / den in f64x2 lanes, the best
      // by pmax (d >= 0, never NaN here: the same as the row loop's d > top).
      let dv = f64x2.splat(den);
      let best = f64x2.splat(-Infinity);
      let pairs = false;
      for (; i + 2 <= m; i += 2) {
        let ps = part + (<usize>i << 5);
        let a = f64x2.add(v128.load(ps), v128.load(ps, 16)); // (l0 + l2), (l1 + l3) of row i
        let b = f64x2.add(v128.load(ps, 32), v128.load(ps, 48)); // and of row i + 1
        let num = f64x2.add(v128.shuffle<f64>(a, b, 0, 2), v128.shuffle<f64>(a, b, 1, 3));
        if (i32x4.bitmask(f64x2.eq(num, num)) != 15) break; // a row has an absent criterion
        let q = f64x2.div(num, dv);
        v128.store(dW + (<usize>i << 3), q);
        v128.store64_lane(d + (<usize>i << 2), f32x4.demote_f64x2_zero(q), 0);
        best = f64x2.pmax(best, q);
        pairs = true;
      }
      if (pairs) {
        any = true;
        top = max(f64x2.extract_lane(best, 0), f64x2.extract_lane(best, 1));
      }
    }
    for (; i < m; i++) {
      let ps = part + (<usize>i << 5);
      let num = (load<f64>(ps) + load<f64>(ps, 16)) + (load<f64>(ps, 8) + load<f64>(ps, 24));
      // w u is NaN exactly where a criterion is absent (u is clamped, w finite).
      let rowNaN = num != num;
      if (rowNaN) nan = true;
      let di = storeDirect(i, rowNaN ? weightedMeanWide(UW + <usize>i * uwBytes, w) : den > 0 ? num / den : NaN, valid, dW, d);
      if (di == di) {
        any = true;
        if (di > top) top = di;
        if (rowNaN) absent = true;
      }
    }
    let out = (flags & OUTSIDE) != 0;
    if (out) findInfinity(src, m);
    groupInScale = !out && !nan;
    // With every row valid and present, the registers held groupStats's dense sums.
    if (valid == 0 && den > 0 && !nan) {
      fill(G_CNT, <f32>m);
      groupStatsDone = true;
    }
  } else {
    for (let i = 0; i < m; i++) {
      let di = storeDirect(i, normalizeRowWide(src + <usize>i * rowBytes, U + <usize>i * uBytes, UW + (<usize>i * uBytes << 1), lo, inv, loW, invW, w, den), valid, dW, d);
      if (di == di) {
        any = true;
        if (di > top) top = di;
        if (rowAbsent) absent = true;
      }
    }
  }
  groupAnyValid = any;
  groupHasAbsent = absent;
  return top;
}

/** sum(w u) / sum(w) over the present lanes of an f64 row; NaN if that sum of weights is 0. */
export function weightedMeanWide(u: usize, w: usize): f64 {
  let chunks = KP >> 2;
  if (ASC_FEATURE_SIMD) {
    let nl = f64x2.splat(0), nh = f64x2.splat(0), dl = f64x2.splat(0), dh = f64x2.splat(0);
    for (let c = 0; c < chunks; c++) {
      let ow = <usize>c << 5;
      let xl = v128.load(u + ow), xh = v128.load(u + ow, 16);
      let wl = v128.load(w + ow), wh = v128.load(w + ow, 16);
      let ml = f64x2.eq(xl, xl), mh = f64x2.eq(xh, xh);
      nl = f64x2.add(nl, v128.and(ml, f64x2.mul(wl, xl)));
      nh = f64x2.add(nh, v128.and(mh, f64x2.mul(wh, xh)));
      dl = f64x2.add(dl, v128.and(ml, wl));
      dh = f64x2.add(dh, v128.and(mh, wh));
    }
    let d = (f64x2.extract_lane(dl, 0) + f64x2.extract_lane(dh, 0)) + (f64x2.extract_lane(dl, 1) + f64x2.extract_lane(dh, 1));
    let n = (f64x2.extract_lane(nl, 0) + f64x2.extract_lane(nh, 0)) + (f64x2.extract_lane(nl, 1) + f64x2.extract_lane(nh, 1));
    return d > 0 ? n / d : NaN;
  } else {
    let n0: f64 = 0, n1: f64 = 0, n2: f64 = 0, n3: f64 = 0;
    let d0: f64 = 0, d1: f64 = 0, d2: f64 = 0, d3: f64 = 0;
    for (let c = 0; c < chunks; c++) {
      let ow = <usize>c << 5;
      let x0 = load<f64>(u + ow), x1 = load<f64>(u + ow, 8), x2 = load<f64>(u + ow, 16), x3 = load<f64>(u + ow, 24);
      let w0 = load<f64>(w + ow), w1 = load<f64>(w + ow, 8), w2 = load<f64>(w + ow, 16), w3 = load<f64>(w + ow, 24);
      n0 += select<f64>(w0 * x0, 0, x0 == x0); d0 += select<f64>(w0, 0, x0 == x0);
      n1 += select<f64>(w1 * x1, 0, x1 == x1); d1 += select<f64>(w1, 0, x1 == x1);
      n2 += select<f64>(w2 * x2, 0, x2 == x2); d2 += select<f64>(w2, 0, x2 == x2);
      n3 += select<f64>(w3 * x3, 0, x3 == x3); d3 += select<f64>(w3, 0, x3 == x3);
    }
    let d = (d0 + d2) + (d1 + d3);
    return d > 0 ? ((n0 + n2) + (n1 + n3)) / d : NaN;
  }
}

/** sum(w u) over all KP lanes of an f64 row, in normalizeRowWide's order. */
export function laneDotWide(u: usize, w: usize): f64 {
  let chunks = KP >> 2;
  if (ASC_FEATURE_SIMD) {
    let nl = f64x2.splat(0), nh = f64x2.splat(0);
    for (let c = 0; c < chunks; c++) {
      let ow = <usize>c << 5;
      nl = f64x2.add(nl, f64x2.mul(v128.load(w + ow), v128.load(u + ow)));
      nh = f64x2.add(nh, f64x2.mul(v128.load(w + ow, 16), v128.load(u + ow, 16)));
    }
    return (f64x2.extract_lane(nl, 0) + f64x2.extract_lane(nh, 0)) + (f64x2.extract_lane(nl, 1) + f64x2.extract_lane(nh, 1));
  } else {
    let n0: f64 = 0, n1: f64 = 0, n2: f64 = 0, n3: f64 = 0;
    for (let c = 0; c < chunks; c++) {
      let ow = <usize>c << 5;
      n0 += load<f64>(w + ow) * load<f64>(u + ow);
      n1 += load<f64>(w + ow, 8) * load<f64>(u + ow, 8);
      n2 += load<f64>(w + ow, 16) * load<f64>(u + ow, 16);
      n3 += load<f64>(w + ow, 24) * load<f64>(u + ow, 24);
    }
    return (n0 + n2) + (n1 + n3);
  }
}

/**
 * sum(w u) / den for the m f64 rows at UW (KP lanes apart), every lane present (den =
 * laneSumWide(w) > 0), in f32 into `out`; a row whose `d` (f32) is NaN is left as it is. The
 * same sums as laneDotWide's, in a loop of their own. `allValid` (simd build): no d is NaN and
 * every u is finite, so that no r is NaN either (w is finite and >= 0).
 */
export function denseRewardsWide(UW: usize, m: i32, w: usize, den: f64, d: usize, out: usize, allValid: bool): void {
  let uwBytes = <usize>KP << 3;
  let end = <usize>KP << 3;
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    if (allValid) i = denseRewardPairs(UW, m, w, den, d, out, false);
    else i = denseRewardPairs(UW, m, w, den, d, out, true);
  }
  for (; i < m; i++) {
    let o = <usize>i << 2;
    let di = load<f32>(d + o);
    if (di != di) continue;
    let u = UW + <usize>i * uwBytes;
    let num: f64;
    if (ASC_FEATURE_SIMD) {
      let nl = f64x2.splat(0), nh = f64x2.splat(0);
      for (let ow: usize = 0; ow < end; ow += 32) {
        nl = f64x2.add(nl, f64x2.mul(v128.load(w + ow), v128.load(u + ow)));
        nh = f64x2.add(nh, f64x2.mul(v128.load(w + ow, 16), v128.load(u + ow, 16)));
      }
      // (l0 + l2) + (l1 + l3): the lanes of nl + nh, added.
      let t = f64x2.add(nl, nh);
      num = f64x2.extract_lane(t, 0) + f64x2.extract_lane(t, 1);
    } else {
      num = laneDotWide(u, w);
    }
    let r = num / den;
    store<f32>(out + o, r == r ? <f32>r : di);
  }
}

/**
 * denseRewardsWide's v128 turns: two rows a turn while both are valid, sharing the weights'
 * loads; each row's sums as laneDotWide's. `tested` (a constant): d's validity and r's NaN are
 * tested. Returns the first row left for the row loop.
 */
// @ts-ignore: decorator
@inline function denseRewardPairs(UW: usize, m: i32, w: usize, den: f64, d: usize, out: usize, tested: bool): i32 {
  let uwBytes = <usize>KP << 3;
  let end = <usize>KP << 3;
  let dv = f64x2.splat(den);
  let i = 0;
  for (; i + 2 <= m; i += 2) {
    let o = <usize>i << 2;
    let dd = f64x2.splat(0);
    if (tested) {
      dd = v128.load64_zero(d + o);
      if ((i32x4.bitmask(f32x4.eq(dd, dd)) & 3) != 3) break;
    }
    let u = UW + <usize>i * uwBytes, v = u + uwBytes;
    let al = f64x2.splat(0), ah = f64x2.splat(0), bl = f64x2.splat(0), bh = f64x2.splat(0);
    let ow: usize = 0;
    for (; ow + 64 <= end; ow += 64, u += 64, v += 64) { // two chunks a turn, still added in chunk order
      let wl = v128.load(w + ow), wh = v128.load(w + ow, 16);
      al = f64x2.add(al, f64x2.mul(wl, v128.load(u)));
      ah = f64x2.add(ah, f64x2.mul(wh, v128.load(u, 16)));
      bl = f64x2.add(bl, f64x2.mul(wl, v128.load(v)));
      bh = f64x2.add(bh, f64x2.mul(wh, v128.load(v, 16)));
      wl = v128.load(w + ow, 32); wh = v128.load(w + ow, 48);
      al = f64x2.add(al, f64x2.mul(wl, v128.load(u, 32)));
      ah = f64x2.add(ah, f64x2.mul(wh, v128.load(u, 48)));
      bl = f64x2.add(bl, f64x2.mul(wl, v128.load(v, 32)));
      bh = f64x2.add(bh, f64x2.mul(wh, v128.load(v, 48)));
    }
    if (ow < end) {
      let wl = v128.load(w + ow), wh = v128.load(w + ow, 16);
      al = f64x2.add(al, f64x2.mul(wl, v128.load(u)));
      ah = f64x2.add(ah, f64x2.mul(wh, v128.load(u, 16)));
      bl = f64x2.add(bl, f64x2.mul(wl, v128.load(v)));
      bh = f64x2.add(bh, f64x2.mul(wh, v128.load(v, 16)));
    }
    // (l0 + l2) + (l1 + l3) of each row: the lanes of its low + high sums, added.
    let a = f64x2.add(al, ah), b = f64x2.add(bl, bh);
    let num = f64x2.add(v128.shuffle<f64>(a, b, 0, 2), v128.shuffle<f64>(a, b, 1, 3));
    let r = f64x2.div(num, dv);
    // r, or d where r is NaN (d, promoted and demoted again, is d).
    if (tested) r = v128.bitselect(r, f64x2.promote_low_f32x4(dd), f64x2.eq(r, r));
    v128.store64_lane(out + o, f32x4.demote_f64x2_zero(r), 0);
  }
  return i;
}

/** Sum of the KP lanes of an f64 vector in the lane tree order. */
export function laneSumWide(w: usize): f64 {
  let t0: f64 = 0, t1: f64 = 0, t2: f64 = 0, t3: f64 = 0;
  for (let o: usize = 0, end = <usize>KP << 3; o < end; o += 32) {
    t0 += load<f64>(w + o); t1 += load<f64>(w + o, 8); t2 += load<f64>(w + o, 16); t3 += load<f64>(w + o, 24);
  }
  return (t0 + t2) + (t1 + t3);
}

/** p[i] = exp((d[i] - top) / tau) in f64, 0 where d is NaN (invalid row); m rows. Returns their sum, in row order. */
export function tiltWide(d: usize, p: usize, m: i32, top: f64, tau: f64): f64 {
  let sum: f64 = 0;
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    let t = f64x2.splat(top), tv = f64x2.splat(tau);
    for (; i + 2 <= m; i += 2) {
      let o = <usize>i << 3;
      let x = v128.load(d + o);
      let e = v128.and(f64x2.eq(x, x), expw(f64x2.div(f64x2.sub(x, t), tv)));
      v128.store(p + o, e);
      sum += f64x2.extract_lane(e, 0);
      sum += f64x2.extract_lane(e, 1);
    }
  }
  for (; i < m; i++) {
    let o = <usize>i << 3;
    let x = load<f64>(d + o);
    let e = x == x ? exp64((x - top) / tau) : 0;
    store<f64>(p + o, e);
    sum += e;
  }
  return sum;
}

/**
 * tiltedSums's dense turn over `pairs` f64x2 lanes (2, 4 or 8: a constant) of the m rows at `at`:
 * acc = sum p u over the rows with p != 0, rows in order; mass = ms.
 */
// @ts-ignore: decorator
@inline function tiltedTurn(at: usize, p: usize, m: i32, acc: usize, mass: usize, ms: v128, pairs: i32): void {
  let uBytes = <usize>KP << 3;
  let a0 = f64x2.splat(0), a1 = f64x2.splat(0), a2 = f64x2.splat(0), a3 = f64x2.splat(0);
  let a4 = f64x2.splat(0), a5 = f64x2.splat(0), a6 = f64x2.splat(0), a7 = f64x2.splat(0);
  for (let i = 0; i < m; i++, at += uBytes) {
    let pi = load<f64>(p + (<usize>i << 3));
    if (pi == 0) continue;
    let pv = f64x2.splat(pi);
    a0 = f64x2.add(a0, f64x2.mul(pv, v128.load(at)));
    a1 = f64x2.add(a1, f64x2.mul(pv, v128.load(at, 16)));
    if (pairs > 2) {
      a2 = f64x2.add(a2, f64x2.mul(pv, v128.load(at, 32)));
      a3 = f64x2.add(a3, f64x2.mul(pv, v128.load(at, 48)));
    }
    if (pairs > 4) {
      a4 = f64x2.add(a4, f64x2.mul(pv, v128.load(at, 64)));
      a5 = f64x2.add(a5, f64x2.mul(pv, v128.load(at, 80)));
      a6 = f64x2.add(a6, f64x2.mul(pv, v128.load(at, 96)));
      a7 = f64x2.add(a7, f64x2.mul(pv, v128.load(at, 112)));
    }
  }
  v128.store(acc, a0); v128.store(acc, a1, 16);
  v128.store(mass, ms); v128.store(mass, ms, 16);
  if (pairs > 2) {
    v128.store(acc, a2, 32); v128.store(acc, a3, 48);
    v128.store(mass, ms, 32); v128.store(mass, ms, 48);
  }
  if (pairs > 4) {
    v128.store(acc, a4, 64); v128.store(acc, a5, 80); v128.store(acc, a6, 96); v128.store(acc, a7, 112);
    v128.store(mass, ms, 64); v128.store(mass, ms, 80); v128.store(mass, ms, 96); v128.store(mass, ms, 112);
  }
}

/**
 * Tilted sums over a group's f64 rows UW (m rows of KP lanes), criterion by criterion, rows in
 * order: acc = sum p u and mass = sum p over the valid rows where the criterion is present.
 * `dense`: p is the group's tilt (tiltWide; 0 marks an invalid row), pSum its sum. Otherwise each
 * criterion shifts by the best d among the rows that have it, which cancels in acc / mass but
 * keeps small tau from underflowing every row of a criterion the best rollout lacks.
 */
export function tiltedSums(UW: usize, d: usize, p: usize, pSum: f64, m: i32, dense: bool, tau: f64, acc: usize, mass: usize): void {
  let uBytes = <usize>KP << 3;
  if (ASC_FEATURE_SIMD) {
    let ninf = f64x2.splat(-Infinity);
    let tv = f64x2.splat(tau);
    if (dense) {
      // Sixteen criteria a turn (then eight, four), their sums in registers over the rows.
      let ms = f64x2.splat(pSum);
      let o: usize = 0;
      for (; o + 128 <= uBytes; o += 128) tiltedTurn(UW + o, p, m, acc + o, mass + o, ms, 8);
      if (o + 64 <= uBytes) { tiltedTurn(UW + o, p, m, acc + o, mass + o, ms, 4); o += 64; }
      if (o < uBytes) tiltedTurn(UW + o, p, m, acc + o, mass + o, ms, 2);
      return;
    }
    for (let o: usize = 0; o < uBytes; o += 16) {
      let a = f64x2.splat(0), ms = f64x2.splat(0);
      let top = ninf;
      for (let i = 0; i < m; i++) {
        let di = load<f64>(d + (<usize>i << 3));
        if (di != di) continue;
        let x = v128.load(UW + <usize>i * uBytes + o);
        top = f64x2.pmax(top, v128.bitselect(f64x2.splat(di), ninf, f64x2.eq(x, x)));
      }
      for (let i = 0; i < m; i++) {
        let di = load<f64>(d + (<usize>i << 3));
        if (di != di) continue;
        let x = v128.load(UW + <usize>i * uBytes + o);
        let mk = f64x2.eq(x, x);
        let pv = v128.and(mk, expw(f64x2.div(f64x2.sub(f64x2.splat(di), top), tv)));
        a = f64x2.add(a, f64x2.mul(pv, v128.and(mk, x)));
        ms = f64x2.add(ms, pv);
      }
      v128.store(acc + o, a);
      v128.store(mass + o, ms);
    }
  } else {
    for (let o: usize = 0; o < uBytes; o += 8) {
      let a: f64 = 0, ms: f64 = 0;
      let top: f64 = -Infinity;
      if (!dense) {
        for (let i = 0; i < m; i++) {
          let di = load<f64>(d + (<usize>i << 3));
          let x = load<f64>(UW + <usize>i * uBytes + o);
          if (di == di && x == x) top = top < di ? di : top; // pmax
        }
      }
      for (let i = 0; i < m; i++) {
        if (dense) {
          let pi = load<f64>(p + (<usize>i << 3));
          if (pi == 0) continue;
          a += pi * load<f64>(UW + <usize>i * uBytes + o);
          continue;
        }
        let di = load<f64>(d + (<usize>i << 3));
        if (di != di) continue;
        let x = load<f64>(UW + <usize>i * uBytes + o);
        if (x != x) continue;
        let pi = exp64((di - top) / tau);
        a += pi * x; ms += pi;
      }
      store<f64>(acc + o, a);
      store<f64>(mass + o, dense ? pSum : ms);
    }
  }
}

/**
 * s = clamp(acc / mass, 0, 1) where mass > 0, NaN (no estimate) elsewhere; in f64 (sat) and f32
 * (sat32). `every`: mass > 0 in every lane.
 */
export function saturationWide(acc: usize, mass: usize, sat: usize, sat32: usize, every: bool): void {
  if (ASC_FEATURE_SIMD) {
    if (every) saturationTurns(acc, mass, sat, sat32, true);
    else saturationTurns(acc, mass, sat, sat32, false);
    return;
  }
  for (let k = 0; k < KP; k++) {
    let o = <usize>k << 3;
    let mv = load<f64>(mass + o);
    let s = mv > 0 ? clamp01d(load<f64>(acc + o) / mv) : <f64>NaN;
    store<f64>(sat + o, s);
    store<f32>(sat32 + (<usize>k << 2), <f32>s);
  }
}

/** saturationWide's v128 loop; `every` (a constant) leaves the test of mass out. */
// @ts-ignore: decorator
@inline function saturationTurns(acc: usize, mass: usize, sat: usize, sat32: usize, every: bool): void {
  let nan = f64x2.splat(NaN);
  let one = v128.load(ONES, 16), zero = f64x2.splat(0); // loaded once: V8 builds a v128 constant at each use
  for (let o: usize = 0, end = <usize>KP << 3; o < end; o += 16) {
    let mv = v128.load(mass + o);
    let q = f64x2.pmax(f64x2.pmin(f64x2.div(v128.load(acc + o), mv), one), zero); // clampWide
    let s = every ? q : v128.bitselect(q, nan, f64x2.gt(mv, zero));
    v128.store(sat + o, s);
    v128.store64_lane(sat32 + (o >> 1), f32x4.demote_f64x2_zero(s), 0);
  }
}
