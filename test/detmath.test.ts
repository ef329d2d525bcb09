import { describe, expect, it } from 'vitest';
import { detCos, detExp, detLog } from '../src/math/index.js';
import { T_HI, T_LO } from '../src/math/exp-table.js';
import { loadNativeAddon } from '../src/backends/native/index.js';
import { loadWasmBackend } from '../src/backends/wasm/index.js';
import { agentStream, nextDouble } from '../src/rng.js';

/**
 * Our exp, log and cos (src/math): within 1 ulp of the engine's Math functions (both are within
 * 1 ulp of the true value: V8's are fdlibm's, ours restate fdlibm, so most agree exactly), the
 * documented special values, and the same bits from the C++ and AssemblyScript copies.
 */

const bits = new Float64Array(1);
const words = new BigInt64Array(bits.buffer);
/** Position of x on the line of doubles (monotone, -0 = +0), so ulp distance is a difference. */
function ordinal(x: number): bigint {
  bits[0] = x;
  const v = words[0]!;
  return v < 0n ? -(v & 0x7fffffffffffffffn) : v;
}
function ulps(a: number, b: number): number {
  const d = ordinal(a) - ordinal(b);
  return Number(d < 0n ? -d : d);
}

const rng = agentStream(2024, 0);
const u = () => nextDouble(rng);
const N = 200_000;
const ARGS = {
  exp: [
    ...Array.from({ length: N }, () => -745.2 + 1455 * u()), // the whole range, both ends
    ...Array.from({ length: N }, () => 4 * u() - 2), // where softmax rows live
    ...Array.from({ length: 2000 }, () => -745.14 + 37 * u()), // subnormal results
    ...Array.from({ length: 2000 }, () => (u() - 0.5) * 1e-8), // the 1 + x branch
  ],
  log: [
    ...Array.from({ length: N }, () => Math.exp(1480 * u() - 745)), // every binade, subnormals too
    ...Array.from({ length: N }, () => 0.5 + 1.5 * u()),
    ...Array.from({ length: 2000 }, () => 1 + (u() - 0.5) * 1e-6), // |f| < 2^-20
    ...Array.from({ length: 2000 }, () => 5e-324 * Math.floor(1 + 1e6 * u())),
  ],
  cos: [
    ...Array.from({ length: N }, () => 2 * Math.PI * u()), // Box-Muller's range
    ...Array.from({ length: N }, () => (u() - 0.5) * 1.6e6), // the whole domain
    ...Array.from({ length: 200 }, (_, n) => (n * Math.PI) / 2), // near multiples of pi/2 (cancellation)
  ],
};
/** x and its neighbours one and two ulps away (the branch thresholds of the algorithms). */
function around(x: number): number[] {
  const b = new Float64Array([x]);
  const w = new BigInt64Array(b.buffer);
  const out: number[] = [];
  for (const d of [-2n, -1n, 0n, 1n, 2n]) {
    const c = new BigInt64Array([w[0]! + d]);
    out.push(new Float64Array(c.buffer)[0]!);
  }
  return out;
}
// log: fdlibm's thresholds on the mantissa (sqrt(2) split, |f| < 2^-20, the R-polynomial split) in many binades.
for (const m of [1 + 0x6a09c / 2 ** 20, 1 + 2 ** -20, 2 - 2 ** -19, 1 + 0x6147a / 2 ** 20, 1 + 0x6b852 / 2 ** 20, 1, 2 ** 0.5]) {
  for (const e of [-1074, -1060, -1022, -5, -1, 0, 1, 7, 300, 1023]) ARGS.log.push(...around(m * 2 ** e).filter((v) => v > 0 && v < Infinity));
}
// exp: halfway points of the reduction (n + 1/2) ln2/64, the ends of the range, the subnormal edge.
for (const n of [-68800, -68000, -64000, -2, -1, 0, 1, 2, 100, 65535]) ARGS.exp.push(...around(((n + 0.5) * Math.LN2) / 64));
for (const x of [709.782712893384, -745.1332191019411, -708.3964185322641, -708.4]) ARGS.exp.push(...around(x));
// cos: near multiples of pi/4 and pi/2 (reduction stages and quadrant changes).
for (let n = 1; n < 60; n++) ARGS.cos.push(...around((n * Math.PI) / 4));
const OURS = { exp: detExp, log: detLog, cos: detCos };
const SPECIAL = [0, -0, 1, -1, Infinity, -Infinity, NaN, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 709.782712893384, 709.79, -745.1332191019411, -745.14, 0.34657359027997264, 1.0397207708399179];

/** x as an exact rational m 2^e (m a BigInt). */
function exact(x: number): { m: bigint; e: number } {
  bits[0] = x;
  const w = words[0]!;
  const biased = Number((w >> 52n) & 0x7ffn);
  const frac = w & 0xfffffffffffffn;
  const m = biased === 0 ? frac : frac | (1n << 52n);
  return { m: w < 0n ? -m : m, e: (biased === 0 ? 1 : biased) - 1075 };
}

describe('the table of detExp', () => {
  it('holds 2^(j/64) to 2^-104: (T_HI + T_LO)^64 = 2^j in exact integer arithmetic', () => {
    for (let j = 0; j < 64; j++) {
      const h = exact(T_HI[j]!), l = exact(T_LO[j]!);
      // v = T_HI + T_LO as M 2^E exactly.
      const E = Math.min(h.e, l.e);
      const M = (h.m << BigInt(h.e - E)) + (l.m << BigInt(l.e - E));
      // v^64 / 2^j - 1, scaled by 2^110: must be below 64 * 2^-104 * 2^110 = 4096 in magnitude.
      const num = M ** 64n, shift = -(E * 64) + j; // v^64 = num 2^(64E); compare with 2^j
      const diff = shift >= 0 ? num - (1n << BigInt(shift)) : num;
      const rel = (diff << 110n) / (1n << BigInt(shift));
      expect(rel < 0n ? -rel : rel, `j = ${j}`).toBeLessThan(4096n);
      // T_HI is the nearest double: |T_LO| <= ulp(T_HI) / 2.
      expect(Math.abs(T_LO[j]!)).toBeLessThanOrEqual(2 ** -53 * (T_HI[j]! >= 2 ? 2 : 1));
    }
  });
});

describe('detExp, detLog, detCos against Math', () => {
  for (const f of ['exp', 'log', 'cos'] as const) {
    it(`${f}: within 1 ulp of Math.${f} over ${ARGS[f].length} arguments`, () => {
      let worst = 0;
      for (const x of ARGS[f]) {
        const d = ulps(OURS[f](x), Math[f](x));
        if (d > worst) worst = d;
      }
      expect(worst).toBeLessThanOrEqual(1);
    });
  }

  it('exp: special values, overflow, underflow to 0 and subnormal results', () => {
    expect(detExp(0)).toBe(1);
    expect(detExp(-0)).toBe(1);
    expect(detExp(Infinity)).toBe(Infinity);
    expect(detExp(-Infinity)).toBe(0);
    expect(detExp(NaN)).toBeNaN();
    expect(detExp(709.79)).toBe(Infinity);
    expect(detExp(709.782712893384)).toBeGreaterThan(1.79e308); // the largest finite results
    expect(detExp(709.782712893384)).toBeLessThan(Infinity);
    expect(detExp(-745.14)).toBe(0);
    expect(detExp(-1e6)).toBe(0);
    expect(detExp(-745.1332191019411)).toBe(5e-324);
    expect(detExp(-740)).toBeGreaterThan(0);
    expect(detExp(-740)).toBeLessThan(2.2250738585072014e-308);
    expect(detExp(1)).toBe(Math.E); // correctly rounded here (V8's fdlibm Math.exp(1) is 1 ulp off)
  });

  it('log: log(0) = -Infinity, negative arguments NaN, subnormals, exact powers of two', () => {
    expect(detLog(0)).toBe(-Infinity);
    expect(detLog(-0)).toBe(-Infinity);
    expect(detLog(-1)).toBeNaN();
    expect(detLog(-Infinity)).toBeNaN();
    expect(detLog(NaN)).toBeNaN();
    expect(detLog(Infinity)).toBe(Infinity);
    expect(Object.is(detLog(1), 0)).toBe(true);
    expect(detLog(5e-324)).toBe(Math.log(5e-324));
    expect(detLog(2)).toBe(Math.LN2);
    expect(detLog(1024)).toBe(10 * Math.LN2);
  });

  it('cos: the Box-Muller range, multiples of pi/2, and NaN outside |x| <= 2^19 pi/2', () => {
    expect(detCos(0)).toBe(1);
    expect(detCos(Math.PI)).toBe(-1);
    expect(detCos(Math.PI / 2)).toBe(Math.cos(Math.PI / 2)); // 6.12e-17: the reduction keeps the tail
    expect(detCos(-2)).toBe(detCos(2));
    expect(detCos(823549)).toBe(Math.cos(823549));
    expect(detCos(1e6)).toBeNaN();
    expect(detCos(Infinity)).toBeNaN();
    expect(detCos(NaN)).toBeNaN();
  });
});

let nativeMap: ((name: string, x: Float64Array, out: Float64Array) => void) | null = null;
try {
  const { addon } = loadNativeAddon();
  nativeMap = (name, x, out) => addon.mapMath(name, x, out);
} catch (e) {
  if (process.env.CI === 'true' && process.env.FEDPG_ALLOW_MISSING_BACKENDS !== 'native') throw e;
}
const wasmBuilds = [await loadWasmBackend({ simd: true }), await loadWasmBackend({ simd: false })];

describe('the C++ and AssemblyScript copies give the same bits', () => {
  for (const f of ['exp', 'log', 'cos'] as const) {
    const x = Float64Array.from([...SPECIAL, ...ARGS[f]]);
    const want = x.map(OURS[f]);
    const differences = (got: Float64Array) => got.reduce((n, v, i) => n + (Object.is(v, want[i]) ? 0 : 1), 0);

    it.skipIf(!nativeMap)(`${f}: native (native/src/detmath.h)`, () => {
      const got = new Float64Array(x.length);
      nativeMap!(f, x, got);
      expect(differences(got)).toBe(0);
      // ... while this machine's libm differs from fdlibm in some last bits (that is the issue).
      const lib = new Float64Array(x.length);
      nativeMap!(`std.${f}`, x, lib);
      if (f !== 'log') expect(differences(lib)).toBeGreaterThan(0);
    });

    it(`${f}: wasm, SIMD and scalar builds (assembly/detmath.ts)`, () => {
      for (const w of wasmBuilds) {
        const got = new Float64Array(x.length);
        w.mapMath(f, x, got);
        expect(differences(got)).toBe(0);
      }
    });
  }
});
