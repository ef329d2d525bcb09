/**
 * exp, log and cos with the same bits as src/math/{exp,log,cos}.ts and native/src/detmath.h: the
 * same fdlibm algorithms, the same expressions in the same order, only +, -, *, / and exact bit
 * operations (doc comments and error bounds: the TypeScript files). WebAssembly has no fused
 * multiply-add outside relaxed-simd, and binaryen does not reassociate floating point, so the
 * compiled code rounds exactly where the source says.
 */

// @ts-ignore: decorator
@inline function highWord(x: f64): i32 {
  return <i32>(reinterpret<u64>(x) >>> 32);
}
// @ts-ignore: decorator
@inline function lowWord(x: f64): u32 {
  return <u32>reinterpret<u64>(x);
}
// @ts-ignore: decorator
@inline function fromWords(hi: u32, lo: u32): f64 {
  return reinterpret<f64>((<u64>hi << 32) | <u64>lo);
}
/** 2^k exactly for k in [-1022, 1023]. */
// @ts-ignore: decorator
@inline function pow2(k: i32): f64 {
  return fromWords(<u32>(k + 1023) << 20, 0);
}

const O_THRESHOLD: f64 = 7.09782712893383973096e2;
const U_THRESHOLD: f64 = -7.45133219101941108420e2;
const HALF_LN2: f64 = 3.46573590279972643113e-1;
const TWO_M28: f64 = 3.7252902984619140625e-9;
const LN2_HI: f64 = 6.93147180369123816490e-1;
const LN2_LO: f64 = 1.90821492927058770002e-10;
const INV_LN2: f64 = 1.44269504088896338700e0;
const P1: f64 = 1.66666666666666019037e-1;
const P2: f64 = -2.77777777770155933842e-3;
const P3: f64 = 6.61375632143793436117e-5;
const P4: f64 = -1.65339022054652515390e-6;
const P5: f64 = 4.13813679705723846039e-8;
const TWO_M1000: f64 = 9.33263618503218878990e-302;

export function detExp(x: f64): f64 {
  if (x > O_THRESHOLD) return Infinity;
  if (x < U_THRESHOLD) return 0;
  if (x != x) return x;
  const ax = x < 0 ? -x : x;
  let k: i32 = 0;
  let hi: f64 = 0;
  let lo: f64 = 0;
  let r = x;
  if (ax > HALF_LN2) {
    k = <i32>(INV_LN2 * x + (x < 0 ? -0.5 : 0.5));
    const kd = <f64>k;
    hi = x - kd * LN2_HI;
    lo = kd * LN2_LO;
    r = hi - lo;
  } else if (ax < TWO_M28) {
    return 1 + x;
  }
  const t = r * r;
  const c = r - t * (P1 + t * (P2 + t * (P3 + t * (P4 + t * P5))));
  if (k == 0) return 1 - ((r * c) / (c - 2) - r);
  const y = 1 - ((lo - (r * c) / (2 - c)) - hi);
  if (k >= -1021) return k == 1024 ? y * 2 * pow2(1023) : y * pow2(k);
  return y * pow2(k + 1000) * TWO_M1000;
}

const TWO54: f64 = 1.80143985094819840000e16;
const LG1: f64 = 6.666666666666735130e-1;
const LG2: f64 = 3.999999999940941908e-1;
const LG3: f64 = 2.857142874366239149e-1;
const LG4: f64 = 2.222219843214978396e-1;
const LG5: f64 = 1.818357216161805012e-1;
const LG6: f64 = 1.531383769920937332e-1;
const LG7: f64 = 1.479819860511658591e-1;

export function detLog(x: f64): f64 {
  let hx = highWord(x);
  const lx = lowWord(x);
  let k: i32 = 0;
  if (hx < 0x00100000) {
    if (((hx & 0x7fffffff) | <i32>lx) == 0) return -Infinity;
    if (hx < 0) return NaN;
    k -= 54;
    x *= TWO54;
    hx = highWord(x);
  }
  if (hx >= 0x7ff00000) return x + x;
  k += (hx >> 20) - 1023;
  hx &= 0x000fffff;
  let i = (hx + 0x95f64) & 0x100000;
  x = fromWords(<u32>(hx | (i ^ 0x3ff00000)), lowWord(x));
  k += i >> 20;
  const f = x - 1;
  const dk = <f64>k;
  if ((0x000fffff & (2 + hx)) < 3) {
    if (f == 0) {
      if (k == 0) return 0;
      return dk * LN2_HI + dk * LN2_LO;
    }
    const R = f * f * (0.5 - 0.33333333333333333 * f);
    if (k == 0) return f - R;
    return dk * LN2_HI - ((R - dk * LN2_LO) - f);
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
    if (k == 0) return f - (hfsq - s * (hfsq + R));
    return dk * LN2_HI - ((hfsq - (s * (hfsq + R) + dk * LN2_LO)) - f);
  }
  if (k == 0) return f - s * (f - R);
  return dk * LN2_HI - ((s * (f - R) - dk * LN2_LO) - f);
}

const C1: f64 = 4.16666666666666019037e-2;
const C2: f64 = -1.38888888888741095749e-3;
const C3: f64 = 2.48015872894767294178e-5;
const C4: f64 = -2.75573143513906633035e-7;
const C5: f64 = 2.08757232129817482790e-9;
const C6: f64 = -1.13596475577881948265e-11;
const S1: f64 = -1.66666666666666324348e-1;
const S2: f64 = 8.33333333332248946124e-3;
const S3: f64 = -1.98412698298579493134e-4;
const S4: f64 = 2.75573137070700676789e-6;
const S5: f64 = -2.50507602534068634195e-8;
const S6: f64 = 1.58969099521155010221e-10;
const PIO4: f64 = 7.85398163397448278999e-1;
const MEDIUM: f64 = 8.23549664718750000000e5;
const INV_PIO2: f64 = 6.36619772367581382433e-1;
const PIO2_1: f64 = 1.57079632673412561417e0;
const PIO2_1T: f64 = 6.07710050650619224932e-11;
const PIO2_2: f64 = 6.07710050630396597660e-11;
const PIO2_2T: f64 = 2.02226624879595063154e-21;
const PIO2_3: f64 = 2.02226624871116645580e-21;
const PIO2_3T: f64 = 8.47842766036889956997e-32;

function kernelCos(x: f64, y: f64): f64 {
  const z = x * x;
  let w = z * z;
  const r = z * (C1 + z * (C2 + z * C3)) + w * w * (C4 + z * (C5 + z * C6));
  const hz = 0.5 * z;
  w = 1 - hz;
  return w + (((1 - w) - hz) + (z * r - x * y));
}

function kernelSin(x: f64, y: f64): f64 {
  const z = x * x;
  const w = z * z;
  const r = S2 + z * (S3 + z * S4) + z * w * (S5 + z * S6);
  const v = z * x;
  return x - ((z * (0.5 * y - v * r) - y) - v * S1);
}

export function detCos(x: f64): f64 {
  const t = x < 0 ? -x : x;
  if (t <= PIO4) return kernelCos(t, 0);
  if (!(t <= MEDIUM)) return NaN;
  const n = <i32>(t * INV_PIO2 + 0.5);
  const fn = <f64>n;
  const j = highWord(t) >> 20;
  let r = t - fn * PIO2_1;
  let w = fn * PIO2_1T;
  let y0 = r - w;
  if (j - ((highWord(y0) >> 20) & 0x7ff) > 16) {
    let u = r;
    w = fn * PIO2_2;
    r = u - w;
    w = fn * PIO2_2T - ((u - r) - w);
    y0 = r - w;
    if (j - ((highWord(y0) >> 20) & 0x7ff) > 49) {
      u = r;
      w = fn * PIO2_3;
      r = u - w;
      w = fn * PIO2_3T - ((u - r) - w);
      y0 = r - w;
    }
  }
  const y1 = (r - y0) - w;
  const q = n & 3;
  if (q == 0) return kernelCos(y0, y1);
  if (q == 1) return -kernelSin(y0, y1);
  if (q == 2) return -kernelCos(y0, y1);
  return kernelSin(y0, y1);
}

/**
 * out[i] = f(x[i]) for n doubles (tests and benches): 0 detExp, 1 detLog, 2 detCos, 3..5
 * AssemblyScript's own Math.exp, Math.log, Math.cos.
 */
export function mapMath(which: i32, x: usize, out: usize, n: i32): void {
  // One loop per function, so a bench times the function and not a per-element switch.
  if (which == 0) for (let i = 0; i < n; i++) store<f64>(out + ((<usize>i) << 3), detExp(load<f64>(x + ((<usize>i) << 3))));
  else if (which == 1) for (let i = 0; i < n; i++) store<f64>(out + ((<usize>i) << 3), detLog(load<f64>(x + ((<usize>i) << 3))));
  else if (which == 2) for (let i = 0; i < n; i++) store<f64>(out + ((<usize>i) << 3), detCos(load<f64>(x + ((<usize>i) << 3))));
  else if (which == 3) for (let i = 0; i < n; i++) store<f64>(out + ((<usize>i) << 3), Math.exp(load<f64>(x + ((<usize>i) << 3))));
  else if (which == 4) for (let i = 0; i < n; i++) store<f64>(out + ((<usize>i) << 3), Math.log(load<f64>(x + ((<usize>i) << 3))));
  else for (let i = 0; i < n; i++) store<f64>(out + ((<usize>i) << 3), Math.cos(load<f64>(x + ((<usize>i) << 3))));
}
