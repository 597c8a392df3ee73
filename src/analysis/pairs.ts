/**
 * A vector's pairwise order as bits, for rank statistics over small groups (Kendall's tau-b, the
 * discordance with the direct reward). For the pairs (x, y), x < y, in order, bit p of `gt` is set
 * where v[x] > v[y] and of `lt` where v[x] < v[y] (neither: tied). Each vector's pairs are compared
 * once; two vectors' pair counts are then popcounts over pairWords(n) words, not comparisons per
 * pair of vectors. For finite values only: a NaN's pairs count as ties here.
 */

/** The int32 words of the pair bits of n values. */
export function pairWords(n: number): number {
  return Math.ceil((n * (n - 1)) / 2 / 32);
}

/** The pair bits of v[o..o+n) into gt and lt at word w (pairWords(n) words each). */
export function orderBits(v: ArrayLike<number>, o: number, n: number, gt: Int32Array, lt: Int32Array, w: number): void {
  let g = 0, l = 0, bit = 0;
  for (let x = 0; x < n; x++) {
    const vx = v[o + x]!;
    for (let y = x + 1; y < n; y++) {
      const vy = v[o + y]!;
      // no branch: the orders of random values mispredict half the time
      g |= +(vx > vy) << bit;
      l |= +(vx < vy) << bit;
      if (++bit === 32) {
        gt[w] = g; lt[w] = l; w++;
        g = 0; l = 0; bit = 0;
      }
    }
  }
  if (bit > 0) { gt[w] = g; lt[w] = l; }
}

/**
 * The pair counts of two vectors' bits (at words a and b, `words` each) into out: [0] concordant,
 * [1] discordant, [2] tied in the first only, [3] tied in the second only.
 */
export function pairCounts(gt: Int32Array, lt: Int32Array, a: number, b: number, words: number, out: Float64Array): void {
  let conc = 0, disc = 0, tx = 0, ty = 0;
  for (let i = 0; i < words; i++) {
    const ga = gt[a + i]!, la = lt[a + i]!, gb = gt[b + i]!, lb = lt[b + i]!;
    const na = ga | la, nb = gb | lb;
    conc += bitCount((ga & gb) | (la & lb));
    disc += bitCount((ga & lb) | (la & gb));
    tx += bitCount(nb & ~na);
    ty += bitCount(na & ~nb);
  }
  out[0] = conc; out[1] = disc; out[2] = tx; out[3] = ty;
}

/** The set bits of a 32-bit integer. */
export function bitCount(v: number): number {
  v -= (v >>> 1) & 0x55555555;
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}

/** Scratch for pair bits of up to `vectors` vectors of n values, grown when needed. */
export class PairBits {
  gt = new Int32Array(0);
  lt = new Int32Array(0);
  readonly counts = new Float64Array(4);
  fit(n: number, vectors: number): number {
    const words = pairWords(n);
    if (this.gt.length < words * vectors) {
      this.gt = new Int32Array(2 * words * vectors);
      this.lt = new Int32Array(2 * words * vectors);
    }
    return words;
  }
}
