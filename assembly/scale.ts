// The out-of-scale count (spec "Validation ranges and strictness"): a pass of its own over the raw
// scores, before score() changes anything, so that outOfScale "error" can refuse the call whole.

import { K, KP, TAIL_KEEP } from "./rows";

/**
 * Counts, per criterion, over the rows of `rows` raw rows at `src` that the caller did not mask
 * (`valid`: one byte per row, 0 = no mask), the present scores (not NaN) and those outside their
 * scale: x < lo or x > hi, with the raw ends at `lo` and `hi` (f32 lanes). Writes i32 lanes at
 * `out` and `present`; returns the total outside. Counts are integers: both builds agree exactly.
 */
export function outOfScale(src: usize, rows: i32, valid: usize, lo: usize, hi: usize, out: usize, present: usize): i32 {
  let bytes = <usize>KP << 2;
  memory.fill(out, 0, bytes);
  memory.fill(present, 0, bytes);
  let rowBytes = <usize>K << 2;
  let chunks = KP >> 2;
  let tail = (K & 3) != 0;
  let full = tail ? chunks - 1 : chunks;
  for (let i = 0; i < rows; i++) {
    if (valid != 0 && load<u8>(valid + <usize>i) == 0) continue;
    let r = src + <usize>i * rowBytes;
    if (ASC_FEATURE_SIMD) {
      // Lanes past K (the next row, or the host's zero padding after the last) are masked off.
      for (let c = 0; c <= full; c++) {
        if (c == full && !tail) break;
        let o = <usize>c << 4;
        let x = v128.load(r + o);
        let outside = v128.or(f32x4.lt(x, v128.load(lo + o)), f32x4.gt(x, v128.load(hi + o)));
        let here = f32x4.eq(x, x);
        if (c == full) {
          let keep = v128.load(TAIL_KEEP);
          outside = v128.and(outside, keep);
          here = v128.and(here, keep);
        }
        v128.store(out + o, i32x4.sub(v128.load(out + o), outside));
        v128.store(present + o, i32x4.sub(v128.load(present + o), here));
      }
    } else {
      for (let k = 0; k < K; k++) {
        let o = <usize>k << 2;
        let x = load<f32>(r + o);
        if (x < load<f32>(lo + o) || x > load<f32>(hi + o)) store<i32>(out + o, load<i32>(out + o) + 1);
        if (x == x) store<i32>(present + o, load<i32>(present + o) + 1);
      }
    }
  }
  let total = 0;
  for (let k = 0; k < K; k++) total += load<i32>(out + (<usize>k << 2));
  return total;
}
