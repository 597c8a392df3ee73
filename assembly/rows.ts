// Per-row and per-criterion kernels over 4-lane chunks of a padded criterion vector (KP lanes).
// Every function has a v128 branch and a scalar branch that performs the same f32 operations
// in the same order (per-lane sums in chunk order, then the tree (l0 + l2) + (l1 + l3)), so the
// two builds give identical bits. Lanes past K hold 0 in rows and weights (present, weight 0).


export let K: i32 = 0;
export let KP: i32 = 0;

/** Lane mask of the last chunk: all-ones for the lanes that belong to the row. */
export const TAIL_KEEP = memory.data(16, 16);

export function setShape(k: i32): void {
  K = k;
  KP = (k + 3) & ~3;
  for (let l = 0; l < 4; l++) store<i32>(TAIL_KEEP + (<usize>l << 2), l < (k & 3) ? -1 : 0);
}

/** Set when a normalized row met an infinite score; cleared by resetInfinity. */
export let sawInfinity: bool = false;

/** Lets the other kernel files set sawInfinity (an imported binding is read-only). */
export function noteInfinity(): void {
  sawInfinity = true;
}

export function resetInfinity(): void {
  sawInfinity = false;
}
/** Set by normalizeRow: the row has an absent (NaN) criterion. */
export let rowHasAbsent: bool = false;

// @ts-ignore: decorator
@inline export function hsum(v: v128): f32 {
  let h = f32x4.add(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(h, 0) + f32x4.extract_lane(h, 1);
}

// @ts-ignore: decorator
@inline function lanesMask(x: v128): v128 {
  return f32x4.eq(x, x);
}

// Clamps as pmin/pmax (one x86 instruction each, where min/max take several): NaN passes through.
// @ts-ignore: decorator
@inline export function clamp01(x: f32): f32 {
  x = <f32>1 < x ? <f32>1 : x;
  return x < 0 ? <f32>0 : x;
}

// @ts-ignore: decorator
@inline function clamp01v(x: v128): v128 {
  return f32x4.pmax(f32x4.pmin(x, f32x4.splat(1)), f32x4.splat(0));
}

/** clamp((x - lo) * inv, 0, 1) on one chunk. */
// @ts-ignore: decorator
@inline function unitv(x: v128, lo: usize, inv: usize): v128 {
  return clamp01v(f32x4.mul(f32x4.sub(x, v128.load(lo)), v128.load(inv)));
}

/**
 * Normalizes one row of K raw scores at `src` into `dst` (KP lanes; NaN = absent; lanes past K
 * are 0, which weigh 0 everywhere): u = clamp((x - lo) * inv, 0, 1), where a penalty has
 * lo = hi and inv < 0. Returns sum(w u) / sum(w) over the present lanes (NaN when that sum of
 * weights is 0); `den` = laneSum(w). Rows with an absent criterion take the masked sums.
 */
// @ts-ignore: decorator
@inline export function normalizeRow(src: usize, dst: usize, lo: usize, inv: usize, w: usize, den: f32): f32 {
  let chunks = KP >> 2;
  let tail = (K & 3) != 0;
  let num: f32;
  if (ASC_FEATURE_SIMD) {
    let acc = f32x4.splat(0);
    let big = f32x4.splat(0);
    let full = tail ? chunks - 1 : chunks;
    let c = 0;
    for (; c + 2 <= full; c += 2) { // two chunks a turn; acc still adds them in chunk order
      let o = <usize>c << 4;
      let x = v128.load(src + o);
      let y = v128.load(src + o, 16);
      big = f32x4.pmax(f32x4.pmax(big, f32x4.abs(x)), f32x4.abs(y)); // big is never NaN: a NaN x is skipped
      let u = unitv(x, lo + o, inv + o);
      let v = unitv(y, lo + o + 16, inv + o + 16);
      v128.store(dst + o, u);
      v128.store(dst + o, v, 16);
      acc = f32x4.add(f32x4.add(acc, f32x4.mul(v128.load(w + o), u)), f32x4.mul(v128.load(w + o, 16), v));
    }
    if (c < full) {
      let o = <usize>c << 4;
      let x = v128.load(src + o);
      big = f32x4.pmax(big, f32x4.abs(x));
      let u = unitv(x, lo + o, inv + o);
      v128.store(dst + o, u);
      acc = f32x4.add(acc, f32x4.mul(v128.load(w + o), u));
    }
    if (tail) {
      // The last chunk: lanes past K read past the row (the next row, or padding) and are masked.
      let keep = v128.load(TAIL_KEEP);
      let o = <usize>full << 4;
      let x = v128.and(v128.load(src + o), keep);
      big = f32x4.pmax(big, f32x4.abs(x));
      let u = v128.and(unitv(x, lo + o, inv + o), keep);
      v128.store(dst + o, u);
      acc = f32x4.add(acc, f32x4.mul(v128.load(w + o), u));
    }
    if (v128.any_true(f32x4.eq(big, f32x4.splat(Infinity)))) sawInfinity = true;
    num = hsum(acc);
  } else {
    let n0: f32 = 0, n1: f32 = 0, n2: f32 = 0, n3: f32 = 0;
    for (let c = 0; c < chunks; c++) {
      for (let l = 0; l < 4; l++) {
        let k = (c << 2) + l;
        let o = <usize>k << 2;
        let x: f32 = k < K ? load<f32>(src + o) : 0;
        if (abs(x) == Infinity) sawInfinity = true;
        let u = clamp01((x - load<f32>(lo + o)) * load<f32>(inv + o));
        if (k >= K) u = 0;
        store<f32>(dst + o, u);
        let t = load<f32>(w + o) * u;
        if (l == 0) n0 += t;
        else if (l == 1) n1 += t;
        else if (l == 2) n2 += t;
        else n3 += t;
      }
    }
    num = (n0 + n2) + (n1 + n3);
  }
  return rowReward(num, dst, w, den);
}

/** normalizeRow's result from num = laneSum(w u) of the normalized row at `dst`. */
// @ts-ignore: decorator
@inline function rowReward(num: f32, dst: usize, w: usize, den: f32): f32 {
  // w u is NaN exactly where a criterion is absent (u is clamped, w finite).
  rowHasAbsent = num != num;
  if (rowHasAbsent) return weightedMean(dst, w);
  return den > 0 ? num / den : NaN;
}



/** sum(w u) / sum(w) over the present lanes of a normalized row; NaN if sum(w) = 0. */
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

/** laneSum(w u) of a normalized row: normalizeRow's sum, in the same order. */
// @ts-ignore: decorator
@inline function laneDot(u: usize, w: usize): f32 {
  let chunks = KP >> 2;
  if (ASC_FEATURE_SIMD) {
    let num = f32x4.splat(0);
    let c = 0;
    for (; c + 2 <= chunks; c += 2) { // two chunks a turn, added in chunk order
      let o = <usize>c << 4;
      num = f32x4.add(f32x4.add(num, f32x4.mul(v128.load(w + o), v128.load(u + o))),
        f32x4.mul(v128.load(w + o, 16), v128.load(u + o, 16)));
    }
    if (c < chunks) {
      let o = <usize>c << 4;
      num = f32x4.add(num, f32x4.mul(v128.load(w + o), v128.load(u + o)));
    }
    return hsum(num);
  } else {
    let n0: f32 = 0, n1: f32 = 0, n2: f32 = 0, n3: f32 = 0;
    for (let c = 0; c < chunks; c++) {
      let o = <usize>c << 4;
      n0 += load<f32>(w + o) * load<f32>(u + o);
      n1 += load<f32>(w + o, 4) * load<f32>(u + o, 4);
      n2 += load<f32>(w + o, 8) * load<f32>(u + o, 8);
      n3 += load<f32>(w + o, 12) * load<f32>(u + o, 12);
    }
    return (n0 + n2) + (n1 + n3);
  }
}

/**
 * weightedMean for a row with every lane present, given den = laneSum(w): the same sums
 * without the masks, so the same bits.
 */
export function weightedMeanDense(u: usize, w: usize, den: f32): f32 {
  let num = laneDot(u, w);
  return den > 0 ? num / den : NaN;
}

/**
 * weightedMeanDense of the four normalized rows at `u` (KP lanes apart), one row a lane: each row
 * sums its chunks in order, then the lane tree (l0 + l2) + (l1 + l3) of hsum. SIMD build only.
 */
// @ts-ignore: decorator
@inline export function weightedMeanDense4(u: usize, w: usize, den: f32): v128 {
  let uBytes = <usize>KP << 2;
  let a = f32x4.splat(0), b = f32x4.splat(0), c = f32x4.splat(0), d = f32x4.splat(0);
  for (let o: usize = 0; o < uBytes; o += 16) {
    let wv = v128.load(w + o);
    let at = u + o;
    a = f32x4.add(a, f32x4.mul(wv, v128.load(at)));
    b = f32x4.add(b, f32x4.mul(wv, v128.load(at + uBytes)));
    c = f32x4.add(c, f32x4.mul(wv, v128.load(at + 2 * uBytes)));
    d = f32x4.add(d, f32x4.mul(wv, v128.load(at + 3 * uBytes)));
  }
  let ab = f32x4.add(v128.shuffle<f32>(a, b, 0, 1, 4, 5), v128.shuffle<f32>(a, b, 2, 3, 6, 7)); // a0 + a2, a1 + a3, b0 + b2, ..
  let cd = f32x4.add(v128.shuffle<f32>(c, d, 0, 1, 4, 5), v128.shuffle<f32>(c, d, 2, 3, 6, 7));
  let num = f32x4.add(v128.shuffle<f32>(ab, cd, 0, 2, 4, 6), v128.shuffle<f32>(ab, cd, 1, 3, 5, 7));
  return den > 0 ? f32x4.div(num, f32x4.splat(den)) : f32x4.splat(NaN);
}

/**
 * normalizeRow's result for a row already normalized at `u` (den = laneSum(w)): the same sums,
 * the masked ones when the row has an absent criterion. Sets rowHasAbsent.
 */
export function rowMean(u: usize, w: usize, den: f32): f32 {
  return rowReward(laneDot(u, w), u, w, den);
}

/** Sum of all KP lanes in the lane tree order (the masked sums' order when all are present). */
export function laneSum(w: usize): f32 {
  let chunks = KP >> 2;
  if (ASC_FEATURE_SIMD) {
    let t = f32x4.splat(0);
    for (let c = 0; c < chunks; c++) t = f32x4.add(t, v128.load(w + (<usize>c << 4)));
    return hsum(t);
  } else {
    let t0: f32 = 0, t1: f32 = 0, t2: f32 = 0, t3: f32 = 0;
    for (let c = 0; c < chunks; c++) {
      let o = <usize>c << 4;
      t0 += load<f32>(w + o); t1 += load<f32>(w + o, 4); t2 += load<f32>(w + o, 8); t3 += load<f32>(w + o, 12);
    }
    return (t0 + t2) + (t1 + t3);
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
  let o: usize = 0;
  let end = <usize>K << 2;
  if (ASC_FEATURE_SIMD) {
    for (; o + 16 <= end; o += 16) v128.store(dst + o, v128.load(src + o));
  }
  for (; o < end; o += 4) store<f32>(dst + o, load<f32>(src + o));
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


/**
 * Per-criterion statistics of a group's normalized rows U (m rows of KP lanes), criterion by
 * criterion (vertical, rows in order): sum u, sum u^2, count, min, max over the valid rows (d not
 * NaN) where the criterion is present. `dense` (no valid row has an absent criterion): no masks.
 */
export function groupStats(U: usize, d: usize, m: i32, dense: bool, sum: usize, sq: usize, cnt: usize, lo: usize, hi: usize): void {
  let uBytes = <usize>KP << 2;
  let valid: f32 = 0;
  if (dense && !ASC_FEATURE_SIMD) {
    for (let i = 0; i < m; i++) {
      let di = load<f32>(d + (<usize>i << 2));
      if (di == di) valid += 1;
    }
  }
  if (ASC_FEATURE_SIMD) {
    let one = f32x4.splat(1);
    let inf = f32x4.splat(Infinity);
    let ninf = f32x4.splat(-Infinity);
    if (dense) {
      // Two chunks a turn (one when the last is alone), their sums in registers over the rows;
      // the valid rows counted on the first turn, and not tested again when all are.
      let all = false;
      for (let o: usize = 0; o < uBytes; o += 32) {
        let single = o + 32 > uBytes;
        let s = f32x4.splat(0), q = f32x4.splat(0), mn = inf, mx = ninf;
        let s1 = f32x4.splat(0), q1 = f32x4.splat(0), mn1 = inf, mx1 = ninf;
        let at = U + o;
        for (let i = 0; i < m; i++, at += uBytes) {
          if (!all) {
            let di = load<f32>(d + (<usize>i << 2));
            if (di != di) continue;
            if (o == 0) valid += 1;
          }
          let x = v128.load(at);
          s = f32x4.add(s, x);
          q = f32x4.add(q, f32x4.mul(x, x));
          mn = f32x4.pmin(mn, x);
          mx = f32x4.pmax(mx, x);
          if (single) continue;
          let y = v128.load(at, 16);
          s1 = f32x4.add(s1, y);
          q1 = f32x4.add(q1, f32x4.mul(y, y));
          mn1 = f32x4.pmin(mn1, y);
          mx1 = f32x4.pmax(mx1, y);
        }
        all = valid == <f32>m;
        let n = f32x4.splat(valid);
        v128.store(sum + o, s); v128.store(sq + o, q); v128.store(cnt + o, n); v128.store(lo + o, mn); v128.store(hi + o, mx);
        if (single) break;
        v128.store(sum + o, s1, 16); v128.store(sq + o, q1, 16); v128.store(cnt + o, n, 16); v128.store(lo + o, mn1, 16); v128.store(hi + o, mx1, 16);
      }
      return;
    }
    for (let o: usize = 0; o < uBytes; o += 16) {
      let s = f32x4.splat(0), q = f32x4.splat(0), n = f32x4.splat(0);
      let mn = inf, mx = ninf;
      for (let i = 0; i < m; i++) {
        let di = load<f32>(d + (<usize>i << 2));
        if (di != di) continue;
        let x = v128.load(U + <usize>i * uBytes + o);
        let mk = f32x4.eq(x, x);
        let xm = v128.and(mk, x);
        s = f32x4.add(s, xm);
        q = f32x4.add(q, f32x4.mul(xm, xm));
        n = f32x4.add(n, v128.and(mk, one));
        mn = f32x4.pmin(mn, v128.bitselect(x, inf, mk));
        mx = f32x4.pmax(mx, v128.bitselect(x, ninf, mk));
      }
      v128.store(sum + o, s); v128.store(sq + o, q); v128.store(cnt + o, n); v128.store(lo + o, mn); v128.store(hi + o, mx);
    }
  } else {
    for (let o: usize = 0; o < uBytes; o += 4) {
      let s: f32 = 0, q: f32 = 0, n: f32 = 0;
      let mn: f32 = Infinity, mx: f32 = -Infinity;
      for (let i = 0; i < m; i++) {
        let di = load<f32>(d + (<usize>i << 2));
        if (di != di) continue;
        let x = load<f32>(U + <usize>i * uBytes + o);
        if (x != x) continue;
        s += x; q += x * x; n += 1;
        mn = x < mn ? x : mn; // pmin
        mx = mx < x ? x : mx; // pmax
      }
      if (dense) n = valid;
      store<f32>(sum + o, s); store<f32>(sq + o, q); store<f32>(cnt + o, n); store<f32>(lo + o, mn); store<f32>(hi + o, mx);
    }
  }
}
