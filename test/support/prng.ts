/** Seeded random test data: the same sequence on every run. */
import type { Criterion } from "../../src/types.js";

export type Rng = () => number;

/** mulberry32: a tiny seeded PRNG. */
export function prng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const pick = <T>(r: Rng, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
export const int = (r: Rng, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));

/** Group sizes of 1..maxGroup adding up to `rows`. */
export function randomSizes(r: Rng, rows: number, maxGroup: number): number[] {
  const sizes: number[] = [];
  for (let n = 0; n < rows; ) {
    const m = Math.min(int(r, 1, maxGroup), rows - n);
    sizes.push(m);
    n += m;
  }
  return sizes;
}

/**
 * n x K raw scores on each criterion's scale: 3% of rows all NaN, each other cell NaN with pNaN,
 * values slightly beyond the scale (to exercise clamping), or on a 9-step grid (ties).
 */
export function randomScores(r: Rng, n: number, criteria: readonly Criterion[], pNaN: number, grid: boolean): Float32Array {
  const K = criteria.length;
  const scores = new Float32Array(n * K);
  for (let i = 0; i < n; i++) {
    const allNaN = r() < 0.03;
    for (let k = 0; k < K; k++) {
      if (allNaN || r() < pNaN) {
        scores[i * K + k] = NaN;
        continue;
      }
      const [lo, hi] = criteria[k].scale ?? [0, 1];
      const x = grid ? Math.floor(r() * 9) / 8 : r() * 1.1 - 0.05;
      scores[i * K + k] = lo + x * (hi - lo);
    }
  }
  return scores;
}

/** Instance weights with the `zeroed` criteria at 0 in every group (the rubric's |weight| elsewhere when none were drawn). */
export function zeroWeights(w: ArrayLike<number> | undefined, criteria: readonly Criterion[], zeroed: readonly number[], groups: number): number[] | undefined {
  if (zeroed.length === 0) return w === undefined ? undefined : Array.from(w);
  const K = criteria.length;
  const out = w !== undefined ? Array.from(w) : Array.from({ length: groups * K }, (_, i) => Math.abs(criteria[i % K].weight ?? 1));
  for (let g = 0; g < groups; g++) for (const k of zeroed) out[g * K + k] = 0;
  return out;
}
