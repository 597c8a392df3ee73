/**
 * String(x) of a float32 value, written as ASCII bytes without making a string (String() of a
 * score output cost ~210 ns, a quarter of `score`). ECMAScript's Number::toString gives the
 * fewest digits that read back as the double x, the closest such on a choice (the even one on a
 * tie). A float32 value is m / 2^s (m < 2^24), so its decimal digits come exactly from double
 * arithmetic: digit = floor(10 * frac / 2^s), frac = 10 * frac mod 2^s, exact while 10 * 2^s < 2^53.
 * Digits that read back as x are within half a double ulp of it: half an ulp of m / 2^s
 * (m >= 2^23, as a double m * 2^29 / 2^(s + 29)) is 2^-30 in units of 2^-s, so after P
 * fractional digits a remainder `dist` (in those units) qualifies when dist * 2^30 <= 10^P.
 * Only |x| in [1e-5, 2^23), with m not a power of two (there the ulp below is half the ulp
 * above), is written here: everything else returns -1 and the caller uses String(x).
 */

const f32 = new Float32Array(1);
const bits = new Uint32Array(f32.buffer);
/** 2^s and 2^-s, exact (a table: `2 ** s` of a variable s is a pow call, ~half the time here). */
const POW2 = Float64Array.from({ length: 41 }, (_, i) => 2 ** i);
const INV_POW2 = Float64Array.from({ length: 41 }, (_, i) => 2 ** -i);
/** 10^P / 2^30, exact: the largest remainder that qualifies after P fractional digits. */
const LIMIT = Float64Array.from({ length: 32 }, (_, i) => 10 ** i / 2 ** 30);
const POW10 = Float64Array.from({ length: 8 }, (_, i) => 10 ** i);
/** The two ASCII digits of 0..99. */
const PAIRS = Uint8Array.from({ length: 200 }, (_, i) => 48 + (i & 1 ? (i >> 1) % 10 : Math.floor(i / 20)));

/**
 * Writes String(x) into out at `at` (ASCII) and returns the index past it, or -1 (nothing
 * written) when x is not a float32 value in the range done here. `out` needs 32 bytes free.
 */
export function writeFloat32(out: Uint8Array, at: number, x: number): number {
  f32[0] = x;
  if (f32[0] !== x) return -1; // NaN, or not a float32 value
  if (x === 0) {
    out[at] = 48; // String(-0) is "0" too
    return at + 1;
  }
  const b = bits[0]!;
  const mant = b & 0x7fffff;
  const s = 150 - ((b >>> 23) & 0xff); // |x| = m / 2^s
  if (mant === 0 || !((x < 0 ? -x : x) >= 1e-5) || s < 1) return -1;
  const m = mant | 0x800000, one = POW2[s]!, inv = INV_POW2[s]!;
  let whole = Math.floor(m * inv), frac = m - whole * one;
  let o = at;
  if (x < 0) out[o++] = 45;
  const first = o;
  if (whole === 0) out[o++] = 48;
  else {
    let n = 1;
    while (n < 7 && whole >= POW10[n]!) n++;
    for (let j = o + n - 1; j >= o; j--, whole = Math.floor(whole / 10)) out[j] = 48 + (whole % 10);
    o += n;
  }
  const point = o;
  if (frac === 0) return point;
  out[o++] = 46;
  // The first 10 fractional digits: no remainder (>= 1 unit) qualifies before them. Two chunks
  // of 5 (frac * 10^5 is exact: frac * 5^5 < 2^(s + 12)); zeros past the end of the digits are stripped.
  for (let c = 0; c < 2; c++, o += 5) {
    const t = frac * 100000, d = Math.floor(t * inv);
    frac = t - d * one;
    const hi = Math.floor(d / 1000), lo = d - hi * 1000, mid = Math.floor(lo / 10);
    out[o] = PAIRS[2 * hi]!;
    out[o + 1] = PAIRS[2 * hi + 1]!;
    out[o + 2] = PAIRS[2 * mid]!;
    out[o + 3] = PAIRS[2 * mid + 1]!;
    out[o + 4] = 48 + lo - mid * 10;
  }
  let p = 10;
  // Jumps of 4 digits while the end of the jump does not qualify: then no digit before it did (a
  // remainder that qualifies keeps qualifying: a nearer p-digit decimal is a (p+1)-digit one).
  // frac * 10^4 is exact: frac * 5^4 < 2^(s + 10).
  while (frac !== 0) {
    const t = frac * 10000, d = Math.floor(t * inv), rest = t - d * one, limit = LIMIT[p + 4]!;
    if (rest <= limit || one - rest <= limit) break;
    const hi = Math.floor(d / 100), lo = d - hi * 100;
    out[o] = PAIRS[2 * hi]!;
    out[o + 1] = PAIRS[2 * hi + 1]!;
    out[o + 2] = PAIRS[2 * lo]!;
    out[o + 3] = PAIRS[2 * lo + 1]!;
    o += 4;
    p += 4;
    frac = rest;
  }
  let up = false;
  for (; frac !== 0; p++) {
    const rest = one - frac, limit = LIMIT[p]!;
    if (frac <= limit || rest <= limit) {
      // the nearer of the two candidates (on a tie, the even one)
      up = frac > rest || (frac === rest && (out[o - 1]! & 1) === 1);
      break;
    }
    const t = frac * 10, d = Math.floor(t * inv);
    out[o++] = 48 + d;
    frac = t - d * one;
  }
  if (up) {
    let j = o - 1;
    for (; j >= first && (out[j] === 57 || j === point); j--) if (j !== point) out[j] = 48;
    if (j >= first) out[j]!++;
    else {
      // 9.99... -> 10: one more digit before the point
      out.copyWithin(first + 1, first, o);
      out[first] = 49;
      return strip(out, point + 1, o + 1);
    }
  }
  return strip(out, point, o);
}

/** The end of the number after trailing zeros of the fraction, and then the point, are dropped. */
function strip(out: Uint8Array, point: number, o: number): number {
  while (o > point + 1 && out[o - 1] === 48) o--;
  return o === point + 1 ? point : o;
}
