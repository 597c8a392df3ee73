// Per-row and per-criterion kernels over 4-lane chunks of a padded criterion vector (KP lanes).
// Every function has a v128 branch and a scalar branch that performs the same f32 operations
// in the same order (per-lane sums in chunk order, then the tree (l0 + l2) + (l1 + l3)), so the
// two builds give identical bits. Lanes past K are NaN (absent) in score vectors and 0 in weights.

import { expf, expv, logf, logv } from "./mathf";

export let K: i32 = 0;
export let KP: i32 = 0;

/** Lane mask of the last chunk: all-ones for the lanes that belong to the row. */
const TAIL_KEEP = memory.data(16, 16);

export function setShape(k: i32): void {
  K = k;
  KP = (k + 3) & ~3;
  for (let l = 0; l < 4; l++) store<i32>(TAIL_KEEP + (<usize>l << 2), l < (k & 3) ? -1 : 0);
}

/** Set when a normalized row met an infinite score. */
export let sawInfinity: bool = false;

// @ts-ignore: decorator
@inline function hsum(v: v128): f32 {
  let h = f32x4.add(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(h, 0) + f32x4.extract_lane(h, 1);
}

// @ts-ignore: decorator
@inline function lanesMask(x: v128): v128 {
  return f32x4.eq(x, x);
}

/**
 * Normalizes one row of K raw scores at `src` into `dst` (KP lanes, NaN = absent):
 * u = |clamp((x - lo) * inv, 0, 1) - pen|, and returns sum(w u) / sum(w) over present lanes
 * (NaN when that sum of weights is 0).
 */
export function normalizeRow(src: usize, dst: usize, lo: usize, inv: usize, pen: usize, w: usize): f32 {
  let chunks = KP >> 2;
  if (ASC_FEATURE_SIMD) {
    let num = f32x4.splat(0);
    let den = f32x4.splat(0);
    let inf = f32x4.splat(0);
    let nan = f32x4.splat(NaN);
    let zero = f32x4.splat(0);
    let one = f32x4.splat(1);
    let infinity = f32x4.splat(Infinity);
    for (let c = 0; c < chunks; c++) {
      let o = <usize>c << 4;
      let x = v128.load(src + o);
      if (c == chunks - 1 && (K & 3) != 0) x = v128.bitselect(x, nan, v128.load(TAIL_KEEP));
      inf = v128.or(inf, f32x4.eq(f32x4.abs(x), infinity));
      let u = f32x4.mul(f32x4.sub(x, v128.load(lo + o)), v128.load(inv + o));
      u = f32x4.abs(f32x4.sub(f32x4.max(f32x4.min(u, one), zero), v128.load(pen + o)));
      v128.store(dst + o, u);
      let m = lanesMask(u);
      let wv = v128.load(w + o);
      num = f32x4.add(num, v128.and(m, f32x4.mul(wv, u)));
      den = f32x4.add(den, v128.and(m, wv));
    }
    if (v128.any_true(inf)) sawInfinity = true;
    let d = hsum(den);
    return d > 0 ? hsum(num) / d : NaN;
  } else {
    let n0: f32 = 0, n1: f32 = 0, n2: f32 = 0, n3: f32 = 0;
    let d0: f32 = 0, d1: f32 = 0, d2: f32 = 0, d3: f32 = 0;
    for (let c = 0; c < chunks; c++) {
      let base = c << 2;
      for (let l = 0; l < 4; l++) {
        let k = base + l;
        let o = <usize>k << 2;
        let x: f32 = k < K ? load<f32>(src + o) : NaN;
        if (abs(x) == Infinity) sawInfinity = true;
        let u = (x - load<f32>(lo + o)) * load<f32>(inv + o);
        u = abs(max(min(u, 1), 0) - load<f32>(pen + o));
        store<f32>(dst + o, u);
        let present = u == u;
        let wk = load<f32>(w + o);
        let pn = select<f32>(wk * u, 0, present);
        let pd = select<f32>(wk, 0, present);
        if (l == 0) { n0 += pn; d0 += pd; }
        else if (l == 1) { n1 += pn; d1 += pd; }
        else if (l == 2) { n2 += pn; d2 += pd; }
        else { n3 += pn; d3 += pd; }
      }
    }
    let d = (d0 + d2) + (d1 + d3);
    return d > 0 ? ((n0 + n2) + (n1 + n3)) / d : NaN;
  }
}

/** sum(w u) / sum(w) over the present lanes of an already normalized row; NaN if sum(w) = 0. */
export function weightedMean(u: usize, w: usize): f32 {
  let chunks = KP >> 2;
  if (ASC_FEATURE_SIMD) {
    let num = f32x4.splat(0);
    let den = f32x4.splat(0);
    for (let c = 0; c < chunks; c++) {
      let o = <usize>c << 4;
      let x = v128.load(u + o);
      let m = lanesMask(x);
      let wv = v128.load(w + o);
      num = f32x4.add(num, v128.and(m, f32x4.mul(wv, x)));
      den = f32x4.add(den, v128.and(m, wv));
    }
    let d = hsum(den);
    return d > 0 ? hsum(num) / d : NaN;
  } else {
    let n0: f32 = 0, n1: f32 = 0, n2: f32 = 0, n3: f32 = 0;
    let d0: f32 = 0, d1: f32 = 0, d2: f32 = 0, d3: f32 = 0;
    for (let c = 0; c < chunks; c++) {
      let o = <usize>c << 4;
      let x0 = load<f32>(u + o), x1 = load<f32>(u + o, 4), x2 = load<f32>(u + o, 8), x3 = load<f32>(u + o, 12);
      let w0 = load<f32>(w + o), w1 = load<f32>(w + o, 4), w2 = load<f32>(w + o, 8), w3 = load<f32>(w + o, 12);
      n0 += select<f32>(w0 * x0, 0, x0 == x0); d0 += select<f32>(w0, 0, x0 == x0);
      n1 += select<f32>(w1 * x1, 0, x1 == x1); d1 += select<f32>(w1, 0, x1 == x1);
      n2 += select<f32>(w2 * x2, 0, x2 == x2); d2 += select<f32>(w2, 0, x2 == x2);
      n3 += select<f32>(w3 * x3, 0, x3 == x3); d3 += select<f32>(w3, 0, x3 == x3);
    }
    let d = (d0 + d2) + (d1 + d3);
    return d > 0 ? ((n0 + n2) + (n1 + n3)) / d : NaN;
  }
}

/** acc += p u and mass += p over the present lanes of row u (vertical: lane order is row order). */
export function accumulateTilt(u: usize, p: f32, acc: usize, mass: usize): void {
  if (ASC_FEATURE_SIMD) {
    let pv = f32x4.splat(p);
    for (let o: usize = 0, end = <usize>KP << 2; o < end; o += 16) {
      let x = v128.load(u + o);
      let m = lanesMask(x);
      v128.store(acc + o, f32x4.add(v128.load(acc + o), v128.and(m, f32x4.mul(pv, x))));
      v128.store(mass + o, f32x4.add(v128.load(mass + o), v128.and(m, pv)));
    }
  } else {
    for (let o: usize = 0, end = <usize>KP << 2; o < end; o += 4) {
      let x = load<f32>(u + o);
      let present = x == x;
      store<f32>(acc + o, load<f32>(acc + o) + select<f32>(p * x, 0, present));
      store<f32>(mass + o, load<f32>(mass + o) + select<f32>(p, 0, present));
    }
  }
}

/**
 * Per-criterion statistics of a row: sum, sum of squares, count, running min and max
 * (min/max skip absent lanes), all vertical.
 */
export function accumulateStats(u: usize, sum: usize, sq: usize, cnt: usize, lo: usize, hi: usize): void {
  if (ASC_FEATURE_SIMD) {
    let one = f32x4.splat(1);
    let inf = f32x4.splat(Infinity);
    let ninf = f32x4.splat(-Infinity);
    for (let o: usize = 0, end = <usize>KP << 2; o < end; o += 16) {
      let x = v128.load(u + o);
      let m = lanesMask(x);
      let xm = v128.and(m, x);
      v128.store(sum + o, f32x4.add(v128.load(sum + o), xm));
      v128.store(sq + o, f32x4.add(v128.load(sq + o), f32x4.mul(xm, xm)));
      v128.store(cnt + o, f32x4.add(v128.load(cnt + o), v128.and(m, one)));
      v128.store(lo + o, f32x4.min(v128.load(lo + o), v128.bitselect(x, inf, m)));
      v128.store(hi + o, f32x4.max(v128.load(hi + o), v128.bitselect(x, ninf, m)));
    }
  } else {
    for (let o: usize = 0, end = <usize>KP << 2; o < end; o += 4) {
      let x = load<f32>(u + o);
      let present = x == x;
      let xm = select<f32>(x, 0, present);
      store<f32>(sum + o, load<f32>(sum + o) + xm);
      store<f32>(sq + o, load<f32>(sq + o) + xm * xm);
      store<f32>(cnt + o, load<f32>(cnt + o) + select<f32>(1, 0, present));
      store<f32>(lo + o, min(load<f32>(lo + o), select<f32>(x, Infinity, present)));
      store<f32>(hi + o, max(load<f32>(hi + o), select<f32>(x, -Infinity, present)));
    }
  }
}

/** dst[k] = value for all KP lanes. */
export function fill(dst: usize, value: f32): void {
  if (ASC_FEATURE_SIMD) {
    let v = f32x4.splat(value);
    for (let o: usize = 0, end = <usize>KP << 2; o < end; o += 16) v128.store(dst + o, v);
  } else {
    for (let o: usize = 0, end = <usize>KP << 2; o < end; o += 4) store<f32>(dst + o, value);
  }
}

/** Copies K values from `src` into KP lanes at `dst`, lanes past K set to `pad`. */
export function loadPadded(src: usize, dst: usize, pad: f32): void {
  for (let k = 0; k < KP; k++) {
    store<f32>(dst + (<usize>k << 2), k < K ? load<f32>(src + (<usize>k << 2)) : pad);
  }
}

/** Stores the first K lanes of `src` at `dst` (unpadded). */
export function storeUnpadded(src: usize, dst: usize): void {
  memory.copy(dst, src, <usize>K << 2);
}

/** s = clamp(acc / mass, 0, 1) where mass > 0, NaN (no estimate) elsewhere. */
export function saturationOf(acc: usize, mass: usize, sat: usize): void {
  if (ASC_FEATURE_SIMD) {
    let zero = f32x4.splat(0);
    let one = f32x4.splat(1);
    let nan = f32x4.splat(NaN);
    for (let o: usize = 0, end = <usize>KP << 2; o < end; o += 16) {
      let mv = v128.load(mass + o);
      let s = f32x4.max(f32x4.min(f32x4.div(v128.load(acc + o), mv), one), zero);
      v128.store(sat + o, v128.bitselect(s, nan, f32x4.gt(mv, zero)));
    }
  } else {
    for (let o: usize = 0, end = <usize>KP << 2; o < end; o += 4) {
      let mv = load<f32>(mass + o);
      let s = max(min(load<f32>(acc + o) / mv, 1), 0);
      store<f32>(sat + o, select<f32>(s, NaN, mv > 0));
    }
  }
}

/**
 * Focal coefficients c = b (1 - s + eps)^gamma over the lanes with a saturation (s not NaN),
 * 0 elsewhere; (0)^gamma = 0 for gamma > 0 and anything^0 = 1. Writes c, returns sum(c).
 */
export function focalCoefficients(sat: usize, b: usize, gamma: f32, eps: f32, coef: usize): f32 {
  let chunks = KP >> 2;
  if (ASC_FEATURE_SIMD) {
    let zero = f32x4.splat(0);
    let one = f32x4.splat(1);
    let g = f32x4.splat(gamma);
    let e = f32x4.splat(eps);
    let total = f32x4.splat(0);
    for (let c = 0; c < chunks; c++) {
      let o = <usize>c << 4;
      let s = v128.load(sat + o);
      let h = f32x4.add(f32x4.sub(one, s), e);
      let pw = one;
      if (gamma != 0) pw = v128.and(f32x4.gt(h, zero), expv(f32x4.mul(g, logv(h))));
      let cv = v128.and(lanesMask(s), f32x4.mul(v128.load(b + o), pw));
      v128.store(coef + o, cv);
      total = f32x4.add(total, cv);
    }
    return hsum(total);
  } else {
    let t0: f32 = 0, t1: f32 = 0, t2: f32 = 0, t3: f32 = 0;
    for (let c = 0; c < chunks; c++) {
      for (let l = 0; l < 4; l++) {
        let o = <usize>((c << 2) + l) << 2;
        let s = load<f32>(sat + o);
        let h = (<f32>1 - s) + eps;
        let pw: f32 = 1;
        if (gamma != 0) pw = select<f32>(expf(gamma * logf(h)), 0, h > 0);
        let cv = select<f32>(load<f32>(b + o) * pw, 0, s == s);
        store<f32>(coef + o, cv);
        if (l == 0) t0 += cv;
        else if (l == 1) t1 += cv;
        else if (l == 2) t2 += cv;
        else t3 += cv;
      }
    }
    return (t0 + t2) + (t1 + t3);
  }
}

/** dst = src / by where mask is present (not NaN), 0 elsewhere. */
export function divideWhere(src: usize, mask: usize, by: f32, dst: usize): void {
  if (ASC_FEATURE_SIMD) {
    let d = f32x4.splat(by);
    for (let o: usize = 0, end = <usize>KP << 2; o < end; o += 16) {
      v128.store(dst + o, v128.and(lanesMask(v128.load(mask + o)), f32x4.div(v128.load(src + o), d)));
    }
  } else {
    for (let o: usize = 0, end = <usize>KP << 2; o < end; o += 4) {
      let m = load<f32>(mask + o);
      store<f32>(dst + o, select<f32>(load<f32>(src + o) / by, 0, m == m));
    }
  }
}

/** f = mix f + (1 - mix) b / sumB where mask is present (not NaN), 0 elsewhere. */
export function mixWith(f: usize, b: usize, mask: usize, mix: f32, sumB: f32): void {
  let rest: f32 = 1 - mix;
  if (ASC_FEATURE_SIMD) {
    let mv = f32x4.splat(mix);
    let rv = f32x4.splat(rest);
    let sv = f32x4.splat(sumB);
    for (let o: usize = 0, end = <usize>KP << 2; o < end; o += 16) {
      let v = f32x4.add(f32x4.mul(mv, v128.load(f + o)), f32x4.mul(rv, f32x4.div(v128.load(b + o), sv)));
      v128.store(f + o, v128.and(lanesMask(v128.load(mask + o)), v));
    }
  } else {
    for (let o: usize = 0, end = <usize>KP << 2; o < end; o += 4) {
      let m = load<f32>(mask + o);
      let v = mix * load<f32>(f + o) + rest * (load<f32>(b + o) / sumB);
      store<f32>(f + o, select<f32>(v, 0, m == m));
    }
  }
}

/** Sum of the lanes of `src` where `mask` is present (not NaN), in the lane tree order. */
export function sumWhere(src: usize, mask: usize): f32 {
  let chunks = KP >> 2;
  if (ASC_FEATURE_SIMD) {
    let t = f32x4.splat(0);
    for (let c = 0; c < chunks; c++) {
      let o = <usize>c << 4;
      t = f32x4.add(t, v128.and(lanesMask(v128.load(mask + o)), v128.load(src + o)));
    }
    return hsum(t);
  } else {
    let t0: f32 = 0, t1: f32 = 0, t2: f32 = 0, t3: f32 = 0;
    for (let c = 0; c < chunks; c++) {
      let o = <usize>c << 4;
      let m0 = load<f32>(mask + o);
      t0 += select<f32>(load<f32>(src + o), 0, m0 == m0);
      let m1 = load<f32>(mask + o, 4);
      t1 += select<f32>(load<f32>(src + o, 4), 0, m1 == m1);
      let m2 = load<f32>(mask + o, 8);
      t2 += select<f32>(load<f32>(src + o, 8), 0, m2 == m2);
      let m3 = load<f32>(mask + o, 12);
      t3 += select<f32>(load<f32>(src + o, 12), 0, m3 == m3);
    }
    return (t0 + t2) + (t1 + t3);
  }
}

/** p[i] = exp((d[i] - top) / tau), 0 where d is NaN (invalid row); m rows, vertical over rows. */
export function tilt(d: usize, p: usize, m: i32, top: f32, tau: f32): void {
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    let t = f32x4.splat(top);
    let tv = f32x4.splat(tau);
    for (; i + 4 <= m; i += 4) {
      let o = <usize>i << 2;
      let x = v128.load(d + o);
      let valid = lanesMask(x);
      let e = expv(f32x4.div(f32x4.sub(x, t), tv));
      v128.store(p + o, v128.and(valid, e));
    }
  }
  for (; i < m; i++) {
    let o = <usize>i << 2;
    let x = load<f32>(d + o);
    store<f32>(p + o, x == x ? expf((x - top) / tau) : 0);
  }
}
