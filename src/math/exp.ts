import { pow2 } from './bits.js';

/**
 * exp(x), the same bits on every backend and machine.
 *
 * Algorithm: fdlibm's e_exp.c (Sun Microsystems, 1993; the algorithm of V8's Math.exp and of
 * FreeBSD's libm), restated with +, -, *, / and exact operations only:
 *  1. Reduction: k = trunc(x/ln2 +- 1/2) (nearest integer), r = hi - lo with hi = x - k ln2_hi,
 *     lo = k ln2_lo; ln2_hi has 32 trailing zero bits, so k ln2_hi and x - k ln2_hi are exact for
 *     |k| <= 1075 and |r| <= ln2/2 (plus a few ulps).
 *  2. exp(r) = 1 + r + r c/(2 - c) with c = r - r^2 (P1 + r^2 (P2 + ... r^2 P5)), the Remez
 *     polynomial of degree 5 in r^2 on [0, 0.35] with error below 2^-59 (fdlibm's bound).
 *  3. exp(x) = 2^k exp(r), scaled by exact multiplications by powers of two (two factors when the
 *     result is subnormal, so it is rounded once).
 * Error bound: below 1 ulp over the whole range (fdlibm's error analysis; measured against a
 * 50-digit reference over 10^6 arguments in [-745, 710], see test/detmath.test.ts and README
 * "Equivalence"). Special values: exp(NaN) = NaN, exp(+Inf) = +Inf, exp(-Inf) = 0, x > 709.78...
 * overflows to +Inf, x < -745.13... underflows to 0.
 *
 * The same expressions, in the same order, are in native/src/detmath.h and assembly/detmath.ts;
 * none of the three toolchains fuses a multiply and an add (V8 never does, C++ is built with
 * -ffp-contract=off, WebAssembly has no fused instruction outside relaxed-simd).
 */

const O_THRESHOLD = 7.09782712893383973096e2;
const U_THRESHOLD = -7.45133219101941108420e2;
const HALF_LN2 = 3.46573590279972643113e-1;
const TWO_M28 = 3.7252902984619140625e-9;
const LN2_HI = 6.93147180369123816490e-1;
const LN2_LO = 1.90821492927058770002e-10;
const INV_LN2 = 1.44269504088896338700e0;
const P1 = 1.66666666666666019037e-1;
const P2 = -2.77777777770155933842e-3;
const P3 = 6.61375632143793436117e-5;
const P4 = -1.65339022054652515390e-6;
const P5 = 4.13813679705723846039e-8;
const TWO_M1000 = 9.33263618503218878990e-302;

export function detExp(x: number): number {
  if (x > O_THRESHOLD) return Infinity;
  if (x < U_THRESHOLD) return 0;
  if (x !== x) return x;
  const ax = x < 0 ? -x : x;
  let k = 0;
  let hi = 0;
  let lo = 0;
  let r = x;
  if (ax > HALF_LN2) {
    k = Math.trunc(INV_LN2 * x + (x < 0 ? -0.5 : 0.5));
    hi = x - k * LN2_HI;
    lo = k * LN2_LO;
    r = hi - lo;
  } else if (ax < TWO_M28) {
    return 1 + x;
  }
  const t = r * r;
  const c = r - t * (P1 + t * (P2 + t * (P3 + t * (P4 + t * P5))));
  if (k === 0) return 1 - ((r * c) / (c - 2) - r);
  const y = 1 - ((lo - (r * c) / (2 - c)) - hi);
  if (k >= -1021) return k === 1024 ? y * 2 * pow2(1023) : y * pow2(k);
  return y * pow2(k + 1000) * TWO_M1000;
}
