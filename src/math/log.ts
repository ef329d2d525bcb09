import { f64, HI, LO, u32 } from './bits.js';

/**
 * log(x) (natural), the same bits on every backend and machine.
 *
 * Algorithm: fdlibm's e_log.c (Sun Microsystems, 1993; V8's Math.log is the same code), with its
 * integer steps on the double's words (exact) and +, -, *, / for the rest:
 *  1. x = 2^k (1 + f) with sqrt(2)/2 < 1 + f < sqrt(2) (subnormals are first scaled by 2^54).
 *  2. s = f/(2 + f), log(1 + f) = f - s (f - R) with R = the Remez polynomial
 *     z (Lg1 + z (Lg3 + ...)) + w (Lg2 + ...) in z = s^2, w = z^2, error below 2^-58.45.
 *  3. log(x) = k ln2_hi - ((hfsq - (s (hfsq + R) + k ln2_lo)) - f), ln2_hi with trailing zeros so
 *     k ln2_hi is exact.
 * Error bound: below 1 ulp (fdlibm's error analysis; measured against a 50-digit reference, see
 * test/detmath.test.ts). Special values: log(+-0) = -Infinity, log(x < 0) = NaN, log(NaN) = NaN,
 * log(+Inf) = +Inf, log(1) = +0.
 *
 * Same expressions in the same order: native/src/detmath.h, assembly/detmath.ts.
 */

const LN2_HI = 6.93147180369123816490e-1;
const LN2_LO = 1.90821492927058770002e-10;
const TWO54 = 1.80143985094819840000e16;
const LG1 = 6.666666666666735130e-1;
const LG2 = 3.999999999940941908e-1;
const LG3 = 2.857142874366239149e-1;
const LG4 = 2.222219843214978396e-1;
const LG5 = 1.818357216161805012e-1;
const LG6 = 1.531383769920937332e-1;
const LG7 = 1.479819860511658591e-1;

export function detLog(x: number): number {
  // The words of x are read and written in place in one shared double (f64/u32): fewer typed-array
  // round trips than separate word helpers, which is most of this function's cost in V8.
  f64[0] = x;
  let hx = u32[HI]! | 0;
  const lx = u32[LO]!;
  let k = 0;
  if (hx < 0x00100000) {
    // x < 2^-1022: zero, negative or subnormal
    if (((hx & 0x7fffffff) | lx) === 0) return -Infinity;
    if (hx < 0) return NaN;
    k -= 54;
    f64[0] = x * TWO54;
    hx = u32[HI]! | 0;
  }
  if (hx >= 0x7ff00000) return x + x;
  k += (hx >> 20) - 1023;
  hx &= 0x000fffff;
  let i = (hx + 0x95f64) & 0x100000;
  u32[HI] = hx | (i ^ 0x3ff00000); // x or x/2 into [sqrt(2)/2, sqrt(2)); the low word stays
  x = f64[0]!;
  k += i >> 20;
  const f = x - 1;
  if ((0x000fffff & (2 + hx)) < 3) {
    // |f| < 2^-20
    if (f === 0) {
      if (k === 0) return 0;
      return k * LN2_HI + k * LN2_LO;
    }
    const R = f * f * (0.5 - 0.33333333333333333 * f);
    if (k === 0) return f - R;
    return k * LN2_HI - ((R - k * LN2_LO) - f);
  }
  const s = f / (2 + f);
  const z = s * s;
  i = hx - 0x6147a;
  const w = z * z;
  const j = 0x6b851 - hx;
  const t1 = w * (LG2 + w * (LG4 + w * LG6));
  const t2 = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7)));
  i |= j;
  const R = t2 + t1;
  if (i > 0) {
    const hfsq = 0.5 * f * f;
    if (k === 0) return f - (hfsq - s * (hfsq + R));
    return k * LN2_HI - ((hfsq - (s * (hfsq + R) + k * LN2_LO)) - f);
  }
  if (k === 0) return f - s * (f - R);
  return k * LN2_HI - ((s * (f - R) - k * LN2_LO) - f);
}
