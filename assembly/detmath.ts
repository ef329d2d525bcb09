/**
 * exp, log and cos with the same bits as src/math/{exp,log,cos}.ts and native/src/detmath.h: the
 * same algorithms (Tang's table-driven exp, fdlibm's log and cos), the same expressions in the
 * same order, only +, -, *, / and exact bit operations (doc comments and error bounds: the
 * TypeScript files). WebAssembly has no fused
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
const INV_L: f64 = 92.33248261689366;
const L1: f64 = 0.010830424696223417;
const L2: f64 = 2.572804622327669e-14;
const E2: f64 = 0.5;
const E3: f64 = 0.16666666666666666;
const E4: f64 = 0.041666666666666664;
const E5: f64 = 0.008333333333333333;
const E6: f64 = 0.001388888888888889;
const TWO_M1000: f64 = 9.33263618503218878990e-302;
/** 2^(j/64) = EXP_HI[j] + EXP_LO[j] (src/math/exp-table.ts), in static memory. */
const EXP_HI = memory.data<f64>([
  1.0, 1.0108892860517005, 1.0218971486541166, 1.0330248790212284,
  1.0442737824274138, 1.0556451783605572, 1.0671404006768237, 1.0787607977571199,
  1.0905077326652577, 1.102382583307841, 1.1143867425958924, 1.1265216186082418,
  1.1387886347566916, 1.1511892299529827, 1.1637248587775775, 1.1763969916502812,
  1.189207115002721, 1.202156731452703, 1.215247359980469, 1.22848053610687,
  1.241857812073484, 1.255380757024691, 1.2690509571917332, 1.2828700160787783,
  1.2968395546510096, 1.3109612115247644, 1.3252366431597413, 1.339667524053303,
  1.3542555469368927, 1.3690024229745905, 1.383909881963832, 1.3989796725383112,
  1.4142135623730951, 1.42961333839197, 1.4451808069770467, 1.460917794180647,
  1.4768261459394993, 1.4929077282912648, 1.5091644275934228, 1.5255981507445384,
  1.5422108254079407, 1.559004400237837, 1.5759808451078865, 1.593142151342267,
  1.6104903319492543, 1.6280274218573478, 1.645755478153965, 1.6636765803267364,
  1.681792830507429, 1.7001063537185235, 1.718619298122478, 1.7373338352737062,
  1.7562521603732995, 1.7753764925265212, 1.7947090750031072, 1.8142521755003989,
  1.8340080864093424, 1.8539791250833855, 1.8741676341103, 1.8945759815869656,
  1.9152065613971474, 1.9360617934922943, 1.9571441241754002, 1.978456026387951,
]);
const EXP_LO = memory.data<f64>([
  0.0, -1.5234778603368577e-17, 5.109225028973444e-17,
  7.600838874027088e-18, 8.551889705537965e-17, 1.759325738772092e-18,
  -7.899853966841582e-17, -6.656660436056593e-17, -3.046782079812471e-17,
  5.2660368715706944e-17, 1.0410278456845571e-16, 5.165856758795457e-17,
  8.912812676025408e-17, 3.250710218863827e-17, 3.8292048369240935e-17,
  5.554203254218079e-17, 3.982015231465646e-17, 6.644981499252301e-17,
  -7.712630692681488e-17, -1.89878163130253e-17, 4.658027591836937e-17,
  -6.7113898212968784e-18, 2.667932131342186e-18, 1.713594918243561e-17,
  2.5382502794888315e-17, -7.181536135519454e-17, -2.8587312100388614e-17,
  8.927282594831732e-17, 7.70094837980299e-17, 9.593797919118849e-17,
  -6.770511658794786e-17, -9.614213209051323e-17, -9.667293313452913e-17,
  -1.2031642489053655e-17, -3.0237581349939873e-17, -5.600377186075216e-17,
  -3.483994556892796e-17, 1.4192920154284036e-17, -1.016455327754295e-16,
  -1.1024941712342561e-16, 7.949834809697621e-17, 3.7812070533575275e-17,
  -1.0136916471278304e-17, -1.0094406542311964e-16, 2.4707192569797888e-17,
  -6.712955084707084e-17, -1.0125679913674773e-16, 5.8909926967131e-17,
  8.199010020581497e-17, -8.0237193703977e-18, -1.851380418263111e-17,
  3.164389299292957e-17, 2.960140695448873e-17, 6.429731796556572e-17,
  1.8227458427912087e-17, -9.969531538920349e-17, 3.283107224245627e-17,
  9.761887490727594e-17, -6.122763413004143e-17, 3.4034035352165297e-17,
  -1.0619946056195963e-16, 1.0332385960676326e-16, 8.960767791036668e-17,
  4.0388753109278167e-17,
]);

// @ts-ignore: decorator
@inline export function detExp(x: f64): f64 {
  if (x > O_THRESHOLD) return Infinity;
  if (x < U_THRESHOLD) return 0;
  if (x != x) return x;
  const n = <i32>(INV_L * x + (x < 0 ? -0.5 : 0.5));
  const nd = <f64>n;
  const r = (x - nd * L1) - nd * L2;
  const j = n & 63;
  const k = (n - j) / 64;
  const p = r + (r * r) * (E2 + r * (E3 + r * (E4 + r * (E5 + r * E6))));
  const th = load<f64>(EXP_HI + ((<usize>j) << 3));
  const y = th + (load<f64>(EXP_LO + ((<usize>j) << 3)) + th * p);
  if (k >= -1022) return k == 1024 ? y * 2 * pow2(1023) : y * pow2(k);
  return y * pow2(k + 1000) * TWO_M1000;
}

const LN2_HI: f64 = 6.93147180369123816490e-1;
const LN2_LO: f64 = 1.90821492927058770002e-10;
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
