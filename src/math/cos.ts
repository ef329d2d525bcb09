import { highWord } from './bits.js';

/**
 * cos(x) for the Box-Muller transform (SPEC.md, hostile agents' `gaussian` attack), the same bits
 * on every backend and machine.
 *
 * Algorithm: fdlibm/FreeBSD msun (s_cos.c, e_rem_pio2.c, k_cos.c, k_sin.c), with +, -, *, / only:
 *  1. Reduction (Cody-Waite, fdlibm's "medium" case): n = nearest integer to |x| 2/pi, and
 *     y0 + y1 = |x| - n pi/2 with pi/2 split into three 33-bit pieces and their tails (each
 *     n * piece exact for n < 2^20); the second and third stages run only after a cancellation
 *     (y0 + y1 then carries 118 or 151 bits, enough for every double below 2^19 pi/2).
 *  2. Kernels on [-pi/4, pi/4]: cos(y0 + y1) = w + (((1 - w) - z/2) + (z r - y0 y1)) with
 *     w = 1 - z/2, z = y0^2 (k_cos.c, polynomial error below 2^-58); sin likewise (k_sin.c).
 *  3. cos(x) = cos, -sin, -cos, sin of the reduced argument for n mod 4 = 0, 1, 2, 3.
 * Error bound: below 1 ulp for |x| <= 2^19 pi/2 (msun's analysis; measured against a 50-digit
 * reference in test/detmath.test.ts). Domain: |x| > 2^19 pi/2 = 823549.66..., Inf and NaN give NaN
 * (Box-Muller only needs [0, 2 pi)); that keeps Payne-Hanek's table out of three code bases.
 *
 * Same expressions in the same order: native/src/detmath.h, assembly/detmath.ts.
 */

const PIO4 = 7.85398163397448278999e-1;
const MEDIUM = 8.23549664718750000000e5; // 2^19 pi/2 rounded down (fdlibm's 0x413921fb high word)
const INV_PIO2 = 6.36619772367581382433e-1;
const PIO2_1 = 1.57079632673412561417e0;
const PIO2_1T = 6.07710050650619224932e-11;
const PIO2_2 = 6.07710050630396597660e-11;
const PIO2_2T = 2.02226624879595063154e-21;
const PIO2_3 = 2.02226624871116645580e-21;
const PIO2_3T = 8.47842766036889956997e-32;

const C1 = 4.16666666666666019037e-2;
const C2 = -1.38888888888741095749e-3;
const C3 = 2.48015872894767294178e-5;
const C4 = -2.75573143513906633035e-7;
const C5 = 2.08757232129817482790e-9;
const C6 = -1.13596475577881948265e-11;

const S1 = -1.66666666666666324348e-1;
const S2 = 8.33333333332248946124e-3;
const S3 = -1.98412698298579493134e-4;
const S4 = 2.75573137070700676789e-6;
const S5 = -2.50507602534068634195e-8;
const S6 = 1.58969099521155010221e-10;

/** cos(x + y) for |x + y| <= pi/4, y a tail much smaller than x. */
function kernelCos(x: number, y: number): number {
  const z = x * x;
  let w = z * z;
  const r = z * (C1 + z * (C2 + z * C3)) + w * w * (C4 + z * (C5 + z * C6));
  const hz = 0.5 * z;
  w = 1 - hz;
  return w + (((1 - w) - hz) + (z * r - x * y));
}

/** sin(x + y) for |x + y| <= pi/4. */
function kernelSin(x: number, y: number): number {
  const z = x * x;
  const w = z * z;
  const r = S2 + z * (S3 + z * S4) + z * w * (S5 + z * S6);
  const v = z * x;
  return x - ((z * (0.5 * y - v * r) - y) - v * S1);
}

export function detCos(x: number): number {
  const t = x < 0 ? -x : x;
  if (t <= PIO4) return kernelCos(t, 0);
  if (!(t <= MEDIUM)) return NaN;
  const n = Math.trunc(t * INV_PIO2 + 0.5);
  // Cody-Waite (e_rem_pio2.c's medium case): n * PIO2_k is exact for n < 2^20; each stage's
  // (u - r) - w recovers the rounding error of r = u - w; a stage runs when the previous one
  // cancelled more than 16 (then 49) bits, as measured by the exponent drop from t to y0.
  const j = highWord(t) >> 20;
  let r = t - n * PIO2_1;
  let w = n * PIO2_1T;
  let y0 = r - w;
  if (j - ((highWord(y0) >> 20) & 0x7ff) > 16) {
    let u = r;
    w = n * PIO2_2;
    r = u - w;
    w = n * PIO2_2T - ((u - r) - w);
    y0 = r - w;
    if (j - ((highWord(y0) >> 20) & 0x7ff) > 49) {
      u = r;
      w = n * PIO2_3;
      r = u - w;
      w = n * PIO2_3T - ((u - r) - w);
      y0 = r - w;
    }
  }
  const y1 = (r - y0) - w;
  switch (n & 3) {
    case 0:
      return kernelCos(y0, y1);
    case 1:
      return -kernelSin(y0, y1);
    case 2:
      return -kernelCos(y0, y1);
    default:
      return kernelSin(y0, y1);
  }
}
