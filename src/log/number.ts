/**
 * Decimal numbers read in place from a line (no substring): the value is the same double as
 * Number() / JSON.parse give. Up to 15 significant digits with a power of ten of at most 22 the
 * conversion is one exact multiply or divide (correctly rounded, so exact). A score, which the
 * engine keeps as float32, may have more digits (full-precision doubles, as Python writes them):
 * its float32 is taken from a near double when every double that near rounds to the same float32.
 * Anything else, the checked text goes to Number().
 */

/** Exact powers of ten as doubles (10^22 is the last one). */
const POW10 = Array.from({ length: 23 }, (_, i) => 10 ** i);

/** Where the last scan stopped (one past the number's last character). */
export let scanEnd = 0;

/**
 * The JSON number at b[i..] (its bytes as one-byte characters) into out[k], as scanNumber(text,
 * i, true) reads it; returns the index past it, or -1 if there is none. The usual score
 * spellings ("1", "0.37", "-0.5": at most 15 digits, no exponent) are read in one pass; the rest
 * goes to exactBytes. The value is the same double: mant is exact (< 2^53) and so is
 * mant / 10^frac, one correctly rounded division. `float32`: only Math.fround of the value is
 * used, so a number of more digits may be read as that float32 (see nearFloat32). (Written to
 * out, not returned: a double returned from a call that is not inlined is a heap number, 16 bytes
 * of garbage per score.)
 */
export function scanJsonBytes(b: Uint8Array, i: number, out: Float64Array, k: number, float32 = false): number {
  let j = i, c = b[j]!;
  const neg = c === 45;
  if (neg) c = b[++j]!;
  if (!(c >= 48 && c <= 57)) return -1;
  let mant = c - 48, digits = 1, frac = 0;
  c = b[++j]!;
  if (mant === 0 && c >= 48 && c <= 57) return slowBytes(b, i, out, k); // a leading zero: not JSON
  while (c >= 48 && c <= 57) {
    mant = mant * 10 + (c - 48);
    digits++;
    c = b[++j]!;
  }
  if (c === 46) {
    c = b[++j]!;
    if (!(c >= 48 && c <= 57)) return -1;
    while (c >= 48 && c <= 57) {
      mant = mant * 10 + (c - 48);
      digits++;
      frac++;
      c = b[++j]!;
    }
  }
  if (digits > 15 || c === 101 || c === 69) return exactBytes(b, i, j, frac, out, k, float32);
  const v = frac === 0 ? mant : mant < SMALL && frac <= 3 ? SMALL_VALUES[(frac - 1) * SMALL + mant]! : mant / POW10[frac]!;
  out[k] = neg ? -v : v;
  return j;
}

/**
 * The rest of scanJsonBytes: the number at b[i..], its digits (JSON's, checked) up to `mantEnd`
 * with `frac` of them after the point, then maybe an exponent. Read in place when its significant
 * digits times a power of ten of at most 22 give the value exactly (at most 15 digits) or, for
 * `float32`, its float32 for certain; else by slowBytes.
 */
function exactBytes(b: Uint8Array, i: number, mantEnd: number, frac: number, out: Float64Array, k: number, float32: boolean): number {
  let j = mantEnd, c = b[j]!, exp = 0;
  if (c === 101 || c === 69) {
    c = b[++j]!;
    const negExp = c === 45;
    if (c === 43 || c === 45) c = b[++j]!;
    if (!(c >= 48 && c <= 57)) return slowBytes(b, i, out, k);
    for (; c >= 48 && c <= 57; c = b[++j]!) if (exp < 1e4) exp = exp * 10 + (c - 48);
    if (negExp) exp = -exp;
  }
  // The significant digits: the first 15 in hi (exact), up to 4 more in lo, the rest dropped.
  const neg = b[i] === 45;
  let hi = 0, lo = 0, n = 0, dropped = 0;
  for (let a = neg ? i + 1 : i; a < mantEnd; a++) {
    const d = b[a]! - 48;
    if (d < 0) continue; // the point
    if (n === 0 && d === 0) continue;
    if (n < 15) hi = hi * 10 + d;
    else if (n < 19) lo = lo * 10 + d;
    else dropped++;
    n++;
  }
  const v = fromDigits(hi, lo, n, dropped, exp - frac + dropped, float32);
  if (v !== v) return slowBytes(b, i, out, k);
  out[k] = neg ? -v : v;
  return j;
}

/**
 * A decimal's value from its significant digits: the first 15 (`hi`), up to 4 more (`lo`), n in
 * all with `dropped` of them left out, times 10^p. Exact for at most 15 digits and |p| <= 22; for
 * `float32` with more digits, its float32 when certain (nearFloat32); else NaN: ask Number().
 */
function fromDigits(hi: number, lo: number, n: number, dropped: number, p: number, float32: boolean): number {
  if (p < -22 || p > 22) return NaN;
  if (n <= 15) return p < 0 ? hi / POW10[-p]! : hi * POW10[p]!;
  if (!float32) return NaN;
  const x = hi * POW10[n - dropped - 15]! + lo;
  return nearFloat32(p < 0 ? x / POW10[-p]! : x * POW10[p]!);
}

/**
 * The float32 of the double nearest a decimal, from x: that decimal's value computed in at most
 * four correctly rounded steps (its dropped digits move it less than 1e-18 of itself), so the
 * double lies within 2^-51 of x, relatively. Both ends of x * (1 -+ 2^-49) rounding to the same
 * float32 makes that float32 certain (Math.fround is monotonic); else NaN (about one decimal in
 * 2^25: the caller asks Number()). Magnitudes above 1e30 are left to the caller's range check.
 */
function nearFloat32(x: number): number {
  if (x > 1e30) return NaN;
  const f = Math.fround(x * (1 - 2 ** -49));
  return f === Math.fround(x * (1 + 2 ** -49)) ? f : NaN;
}

/** scanNumber on the text of the run of number characters (digits, "+-.eE") at b[i]. */
function slowBytes(b: Uint8Array, i: number, out: Float64Array, k: number): number {
  let j = i;
  for (let c = b[j]; j < b.length && ((c! >= 48 && c! <= 57) || c === 43 || c === 45 || c === 46 || c === 101 || c === 69); c = b[++j]);
  // The run is ASCII: latin1 copies it as one-byte characters (String.fromCharCode(...bytes) took ~1 us a number).
  const buf = Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.length);
  const v = scanNumber(buf.toString("latin1", i, j), 0, true);
  if (Number.isNaN(v)) return -1;
  out[k] = v;
  return i + scanEnd;
}

/** mant / 10^frac for mant < SMALL, frac 1-3 (scores are mostly such), made once: a load is quicker than a division. */
const SMALL = 1024;
const SMALL_VALUES = Float64Array.from({ length: 3 * SMALL }, (_, i) => (i % SMALL) / POW10[1 + Math.floor(i / SMALL)]!);

/**
 * The number at s[i..], or NaN if there is none. `json`: JSON's grammar (no "+", no leading or
 * trailing ".", no leading zeros); else any decimal ("+1", ".5", "5.", "1E3"), never hex, binary,
 * octal, Infinity or "_". `float32`: only Math.fround of the value is used (see nearFloat32).
 */
export function scanNumber(s: string, i: number, json: boolean, float32 = false): number {
  const start = i;
  let c = s.charCodeAt(i);
  let neg = false;
  if (c === 45) { neg = true; c = s.charCodeAt(++i); }
  else if (c === 43 && !json) c = s.charCodeAt(++i);
  // The significant digits: the first 15 in mant (exact), up to 4 more in lo, the rest dropped.
  let mant = 0, lo = 0, digits = 0, dropped = 0, frac = 0, intDigits = 0;
  if (json && c === 48) { c = s.charCodeAt(++i); intDigits = 1; }
  else {
    while (c >= 48 && c <= 57) {
      if (mant !== 0 || c !== 48) {
        if (digits < 15) mant = mant * 10 + (c - 48);
        else if (digits < 19) lo = lo * 10 + (c - 48);
        else dropped++;
        digits++;
      }
      intDigits++;
      c = s.charCodeAt(++i);
    }
    if (json && intDigits === 0) return NaN;
  }
  let fracDigits = 0;
  if (c === 46) {
    c = s.charCodeAt(++i);
    while (c >= 48 && c <= 57) {
      if (mant !== 0 || c !== 48) {
        if (digits < 15) mant = mant * 10 + (c - 48);
        else if (digits < 19) lo = lo * 10 + (c - 48);
        else dropped++;
        digits++;
      }
      frac++;
      fracDigits++;
      c = s.charCodeAt(++i);
    }
    if (fracDigits === 0 && (json || intDigits === 0)) return NaN;
  }
  if (intDigits === 0 && fracDigits === 0) return NaN;
  let exp = 0;
  if (c === 101 || c === 69) {
    c = s.charCodeAt(++i);
    let eneg = false;
    if (c === 43 || c === 45) { eneg = c === 45; c = s.charCodeAt(++i); }
    if (!(c >= 48 && c <= 57)) return NaN;
    while (c >= 48 && c <= 57) {
      if (exp < 100000) exp = exp * 10 + (c - 48);
      c = s.charCodeAt(++i);
    }
    if (eneg) exp = -exp;
  }
  scanEnd = i;
  const v = fromDigits(mant, lo, digits, dropped, exp - frac + dropped, float32);
  if (v !== v) return Number(s.slice(start, i));
  return neg ? -v : v;
}
