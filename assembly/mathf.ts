// Lane-exact exp and log: the v128 and the scalar versions run the same f32 operations in the
// same order, so the simd and scalar builds agree bit for bit (std Mathf has no vector form).
// Cephes-style range reduction and minimax polynomials, ~1 ulp on the ranges used here.

const LOG2E: f32 = 1.44269504;
const LN2_HI: f32 = 0.693359375;
const LN2_LO: f32 = -2.12194440e-4;
const EXP_MIN: f32 = -87.3;
const EXP_MAX: f32 = 88.3;
const SQRT_HALF: f32 = 0.707106781;

const E0: f32 = 1.9875691500e-4;
const E1: f32 = 1.3981999507e-3;
const E2: f32 = 8.3334519073e-3;
const E3: f32 = 4.1665795894e-2;
const E4: f32 = 1.6666665459e-1;
const E5: f32 = 5.0000001201e-1;

const L0: f32 = 7.0376836292e-2;
const L1: f32 = -1.1514610310e-1;
const L2: f32 = 1.1676998740e-1;
const L3: f32 = -1.2420140846e-1;
const L4: f32 = 1.4249322787e-1;
const L5: f32 = -1.6668057665e-1;
const L6: f32 = 2.0000714765e-1;
const L7: f32 = -2.4999993993e-1;
const L8: f32 = 3.3333331174e-1;

/** e^x for finite x (clamped to the f32 normal range); exp(0) = 1 exactly. */
export function expf(x: f32): f32 {
  x = x < EXP_MIN ? EXP_MIN : x; // f32x4.pmax / pmin: one instruction each, NaN passes through
  x = EXP_MAX < x ? EXP_MAX : x;
  let n = nearest(x * LOG2E);
  let r = x - n * LN2_HI;
  r = r - n * LN2_LO;
  let p = E0;
  p = p * r + E1;
  p = p * r + E2;
  p = p * r + E3;
  p = p * r + E4;
  p = p * r + E5;
  p = p * (r * r) + r;
  p = p + 1;
  let scale = reinterpret<f32>((i32(n) + 127) << 23);
  return p * scale;
}

/** ln x for x > 0 (normal). */
export function logf(x: f32): f32 {
  let bits = reinterpret<i32>(x);
  let e = (bits >> 23) - 126;
  let m = reinterpret<f32>((bits & 0x7fffff) | 0x3f000000); // [0.5, 1)
  let small = m < SQRT_HALF;
  e = e - i32(small);
  let t = select<f32>(m, 0, small);
  let y = (m + t) - 1;
  let z = y * y;
  let p = L0;
  p = p * y + L1;
  p = p * y + L2;
  p = p * y + L3;
  p = p * y + L4;
  p = p * y + L5;
  p = p * y + L6;
  p = p * y + L7;
  p = p * y + L8;
  let fe = f32(e);
  let q = p * y * z;
  q = q + fe * LN2_LO;
  q = q - z * 0.5;
  let res = y + q;
  return res + fe * LN2_HI;
}

/** Four lanes of expf, operation for operation. */
// @ts-ignore: decorator
@inline export function expv(x: v128): v128 {
  x = f32x4.pmin(f32x4.pmax(x, f32x4.splat(EXP_MIN)), f32x4.splat(EXP_MAX));
  let n = f32x4.nearest(f32x4.mul(x, f32x4.splat(LOG2E)));
  let r = f32x4.sub(x, f32x4.mul(n, f32x4.splat(LN2_HI)));
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(LN2_LO)));
  let p = f32x4.splat(E0);
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(E1));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(E2));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(E3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(E4));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(E5));
  p = f32x4.add(f32x4.mul(p, f32x4.mul(r, r)), r);
  p = f32x4.add(p, f32x4.splat(1));
  let scale = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(n), i32x4.splat(127)), 23);
  return f32x4.mul(p, scale);
}

/** Four lanes of logf, operation for operation. */
// @ts-ignore: decorator
@inline export function logv(x: v128): v128 {
  let e = i32x4.sub(i32x4.shr_s(x, 23), i32x4.splat(126));
  let m = v128.or(v128.and(x, i32x4.splat(0x7fffff)), i32x4.splat(0x3f000000));
  let small = f32x4.lt(m, f32x4.splat(SQRT_HALF));
  e = i32x4.add(e, small); // small lanes are -1
  let t = v128.and(m, small);
  let y = f32x4.sub(f32x4.add(m, t), f32x4.splat(1));
  let z = f32x4.mul(y, y);
  let p = f32x4.splat(L0);
  p = f32x4.add(f32x4.mul(p, y), f32x4.splat(L1));
  p = f32x4.add(f32x4.mul(p, y), f32x4.splat(L2));
  p = f32x4.add(f32x4.mul(p, y), f32x4.splat(L3));
  p = f32x4.add(f32x4.mul(p, y), f32x4.splat(L4));
  p = f32x4.add(f32x4.mul(p, y), f32x4.splat(L5));
  p = f32x4.add(f32x4.mul(p, y), f32x4.splat(L6));
  p = f32x4.add(f32x4.mul(p, y), f32x4.splat(L7));
  p = f32x4.add(f32x4.mul(p, y), f32x4.splat(L8));
  let fe = f32x4.convert_i32x4_s(e);
  let q = f32x4.mul(f32x4.mul(p, y), z);
  q = f32x4.add(q, f32x4.mul(fe, f32x4.splat(LN2_LO)));
  q = f32x4.sub(q, f32x4.mul(z, f32x4.splat(0.5)));
  let res = f32x4.add(y, q);
  return f32x4.add(res, f32x4.mul(fe, f32x4.splat(LN2_HI)));
}

// Float64 e^x for the tilt (spec "Precision contract": d_i / tau needs more than float32's exp):
// n = round(x log2 e), r = x - n ln 2 (ln 2 in two parts, the high one exact times n), e^r by
// its Taylor series to r^13 (|r| <= 0.35: truncation < 1e-17), times 2^n. x is clamped to
// [-708, 709], where 2^n stays a normal number; both versions run the same f64 operations.

const LOG2E_W: f64 = 1.4426950408889634;
const LN2_HI_W: f64 = 6.93147180369123816490e-01;
const LN2_LO_W: f64 = 1.90821492927058770002e-10;
const EXP_MIN_W: f64 = -708;
const EXP_MAX_W: f64 = 709;
const T13: f64 = 1 / 6227020800.0;
const T12: f64 = 1 / 479001600.0;
const T11: f64 = 1 / 39916800.0;
const T10: f64 = 1 / 3628800.0;
const T9: f64 = 1 / 362880.0;
const T8: f64 = 1 / 40320.0;
const T7: f64 = 1 / 5040.0;
const T6: f64 = 1 / 720.0;
const T5: f64 = 1 / 120.0;
const T4: f64 = 1 / 24.0;
const T3: f64 = 1 / 6.0;
const T2: f64 = 0.5;

/** e^x in f64 (clamped as above); exp64(0) = 1 exactly. */
export function exp64(x: f64): f64 {
  x = x < EXP_MIN_W ? EXP_MIN_W : x;
  x = EXP_MAX_W < x ? EXP_MAX_W : x;
  let n = nearest(x * LOG2E_W);
  let r = x - n * LN2_HI_W;
  r = r - n * LN2_LO_W;
  let p = T13;
  p = p * r + T12;
  p = p * r + T11;
  p = p * r + T10;
  p = p * r + T9;
  p = p * r + T8;
  p = p * r + T7;
  p = p * r + T6;
  p = p * r + T5;
  p = p * r + T4;
  p = p * r + T3;
  p = p * r + T2;
  p = p * r + 1;
  p = p * r + 1;
  let scale = reinterpret<f64>((<i64>n + 1023) << 52);
  return p * scale;
}

/**
 * exp64's constants, each in both lanes of a v128: expw loads them, one instruction each where V8
 * builds a v128 constant in three at every use.
 */
const EXPW_TABLE = memory.data<f64>([
  EXP_MIN_W, EXP_MIN_W, EXP_MAX_W, EXP_MAX_W, LOG2E_W, LOG2E_W, LN2_HI_W, LN2_HI_W, LN2_LO_W, LN2_LO_W,
  T13, T13, T12, T12, T11, T11, T10, T10, T9, T9, T8, T8, T7, T7, T6, T6, T5, T5, T4, T4, T3, T3, T2, T2, 1, 1,
]);

// @ts-ignore: decorator
@inline function ew(j: i32): v128 { return v128.load(EXPW_TABLE + (<usize>j << 4)); }

/** Two lanes of exp64, operation for operation. */
// @ts-ignore: decorator
@inline export function expw(x: v128): v128 {
  x = f64x2.pmin(f64x2.pmax(x, ew(0)), ew(1));
  let n = f64x2.nearest(f64x2.mul(x, ew(2)));
  let r = f64x2.sub(x, f64x2.mul(n, ew(3)));
  r = f64x2.sub(r, f64x2.mul(n, ew(4)));
  let p = ew(5);
  p = f64x2.add(f64x2.mul(p, r), ew(6));
  p = f64x2.add(f64x2.mul(p, r), ew(7));
  p = f64x2.add(f64x2.mul(p, r), ew(8));
  p = f64x2.add(f64x2.mul(p, r), ew(9));
  p = f64x2.add(f64x2.mul(p, r), ew(10));
  p = f64x2.add(f64x2.mul(p, r), ew(11));
  p = f64x2.add(f64x2.mul(p, r), ew(12));
  p = f64x2.add(f64x2.mul(p, r), ew(13));
  p = f64x2.add(f64x2.mul(p, r), ew(14));
  p = f64x2.add(f64x2.mul(p, r), ew(15));
  p = f64x2.add(f64x2.mul(p, r), ew(16));
  p = f64x2.add(f64x2.mul(p, r), ew(17));
  p = f64x2.add(f64x2.mul(p, r), ew(17));
  let scale = i64x2.shl(i64x2.add(i64x2.extend_low_i32x4_s(i32x4.trunc_sat_f64x2_s_zero(n)), i64x2.splat(1023)), 52);
  return f64x2.mul(p, scale);
}
