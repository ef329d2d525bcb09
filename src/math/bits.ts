/**
 * The exact bit-level helpers the deterministic functions need (src/math/exp.ts, log.ts, cos.ts):
 * the 32-bit words of a double, and 2^k. Every operation here is
 * exact (no rounding), so the same helpers in C++ (native/src/detmath.h, memcpy) and
 * AssemblyScript (assembly/detmath.ts, reinterpret) give the same bits.
 */

/** One double and its two 32-bit words, for the functions that work on words in place (log.ts). */
export const f64 = new Float64Array(1);
export const u32 = new Uint32Array(f64.buffer);
/** Word order of a double in a typed array on this platform (every JS engine we run on is little-endian). */
const LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
/** Indices of the high and low words in u32. */
export const HI = LE ? 1 : 0;
export const LO = LE ? 0 : 1;

/** The high word (sign, exponent, 20 mantissa bits) of x, as a signed int32 (fdlibm's __HI). */
export function highWord(x: number): number {
  f64[0] = x;
  return u32[HI]! | 0;
}


/** 2^k for k in [-1022, 1023], built by exact doubling and halving. */
const POW2 = (() => {
  const t = new Float64Array(2046);
  t[1022] = 1;
  for (let k = 1; k <= 1023; k++) t[1022 + k] = t[1021 + k]! * 2;
  for (let k = 1; k <= 1022; k++) t[1022 - k] = t[1023 - k]! * 0.5;
  return t;
})();

/** 2^k exactly, for an integer k in [-1022, 1023] (the normal range; callers keep k there). */
export function pow2(k: number): number {
  return POW2[k + 1022]!;
}
