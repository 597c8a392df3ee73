// The out-of-scale count (spec "Validation ranges and strictness"), group by group in score()'s
// first pass: a group whose scores normalizeGroup found all present and in scale (assembly/wide.ts)
// only adds its rows to the present counts. score() refuses the call (outOfScale "error") before
// it changes any state.

import { K, KP, TAIL_KEEP } from "./rows";

/** Rows the simd build counts a chunk of at a time (64 rows of K = 16: 4 KiB). */
const OUT_OF_SCALE_BLOCK = 64;

/**
 * Adds, per criterion, over the rows of `rows` raw rows at `src` that the caller did not mask
 * (`valid`: one byte per row, 0 = no mask), the present scores (not NaN) and those outside their
 * scale: x < lo or x > hi, with the raw ends at `lo` and `hi` (f32 lanes), to the i32 lanes at
 * `out` and `present`. Counts are integers: both builds agree exactly.
 */
export function countOutOfScale(src: usize, rows: i32, valid: usize, lo: usize, hi: usize, out: usize, present: usize): void {
  let rowBytes = <usize>K << 2;
  let chunks = KP >> 2;
  let tail = (K & 3) != 0;
  if (ASC_FEATURE_SIMD) {
    // A block of rows at a time, one chunk of 4 criteria at a time: the counts stay in registers
    // and the block's rows in L1 between chunks. Lanes past K (the next row, or the host's zero
    // padding after the last) are counted and masked off once per block.
    let keep = v128.load(TAIL_KEEP);
    for (let r0 = 0; r0 < rows; r0 += OUT_OF_SCALE_BLOCK) {
      let r1 = min(rows, r0 + OUT_OF_SCALE_BLOCK);
      for (let c = 0; c < chunks; c++) {
        let o = <usize>c << 4;
        let lov = v128.load(lo + o), hiv = v128.load(hi + o);
        let outside = i32x4.splat(0), here = i32x4.splat(0);
        let at = src + <usize>r0 * rowBytes + o;
        let end = src + <usize>r1 * rowBytes + o;
        if (valid == 0) {
          for (; at < end; at += rowBytes) {
            let x = v128.load(at);
            outside = i32x4.sub(outside, v128.or(f32x4.lt(x, lov), f32x4.gt(x, hiv)));
            here = i32x4.sub(here, f32x4.eq(x, x));
          }
        } else {
          for (let i = r0; i < r1; i++, at += rowBytes) {
            if (load<u8>(valid + <usize>i) == 0) continue;
            let x = v128.load(at);
            outside = i32x4.sub(outside, v128.or(f32x4.lt(x, lov), f32x4.gt(x, hiv)));
            here = i32x4.sub(here, f32x4.eq(x, x));
          }
        }
        if (tail && c == chunks - 1) {
          outside = v128.and(outside, keep);
          here = v128.and(here, keep);
        }
        v128.store(out + o, i32x4.add(v128.load(out + o), outside));
        v128.store(present + o, i32x4.add(v128.load(present + o), here));
      }
    }
  } else {
    for (let i = 0; i < rows; i++) {
      if (valid != 0 && load<u8>(valid + <usize>i) == 0) continue;
      let r = src + <usize>i * rowBytes;
      for (let k = 0; k < K; k++) {
        let o = <usize>k << 2;
        let x = load<f32>(r + o);
        if (x < load<f32>(lo + o) || x > load<f32>(hi + o)) store<i32>(out + o, load<i32>(out + o) + 1);
        if (x == x) store<i32>(present + o, load<i32>(present + o) + 1);
      }
    }
  }
}

/** `rows` more present scores for every criterion (i32 lanes at `present`; lanes past K stay 0). */
export function addPresent(present: usize, rows: i32): void {
  let k = 0;
  if (ASC_FEATURE_SIMD) {
    let add = i32x4.splat(rows);
    for (; k + 4 <= K; k += 4) {
      let o = <usize>k << 2;
      v128.store(present + o, i32x4.add(v128.load(present + o), add));
    }
  }
  for (; k < K; k++) {
    let o = <usize>k << 2;
    store<i32>(present + o, load<i32>(present + o) + rows);
  }
}

/** The total of the K i32 lanes at `out`. */
export function totalOf(out: usize): i32 {
  let total = 0;
  for (let k = 0; k < K; k++) total += load<i32>(out + (<usize>k << 2));
  return total;
}
