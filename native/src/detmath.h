// exp, log and cos with the same bits as src/math/{exp,log,cos}.ts and assembly/detmath.ts: the
// same algorithms (Tang's table-driven exp, fdlibm's log and cos), the same expressions in the
// same order, only +, -, *, / and exact bit operations (the doc comments and error bounds are in
// the TypeScript files). The addon is built
// with -ffp-contract=off, so no multiply-add is fused; do not build this file with -ffast-math.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace fedpg {
namespace det {

inline int32_t highWord(double x) {
  uint64_t b;
  std::memcpy(&b, &x, 8);
  return int32_t(uint32_t(b >> 32));
}
inline uint32_t lowWord(double x) {
  uint64_t b;
  std::memcpy(&b, &x, 8);
  return uint32_t(b);
}
inline double fromWords(uint32_t hi, uint32_t lo) {
  const uint64_t b = (uint64_t(hi) << 32) | lo;
  double x;
  std::memcpy(&x, &b, 8);
  return x;
}
/** 2^k exactly for k in [-1022, 1023]. */
inline double pow2(int k) { return fromWords(uint32_t(k + 1023) << 20, 0); }

/** 2^(j/64) = kExpHi[j] + kExpLo[j] (src/math/exp-table.ts). */
inline constexpr double kExpHi[64] = {
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
};
inline constexpr double kExpLo[64] = {
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
};

inline double exp(double x) {
  constexpr double O_THRESHOLD = 7.09782712893383973096e2;
  constexpr double U_THRESHOLD = -7.45133219101941108420e2;
  constexpr double INV_L = 92.33248261689366;
  constexpr double L1 = 0.010830424696223417;
  constexpr double L2 = 2.572804622327669e-14;
  constexpr double C2 = 0.5;
  constexpr double C3 = 0.16666666666666666;
  constexpr double C4 = 0.041666666666666664;
  constexpr double C5 = 0.008333333333333333;
  constexpr double C6 = 0.001388888888888889;
  constexpr double TWO_M1000 = 9.33263618503218878990e-302;
  if (x > O_THRESHOLD) return std::numeric_limits<double>::infinity();
  if (x < U_THRESHOLD) return 0;
  if (x != x) return x;
  const int n = int(INV_L * x + (x < 0 ? -0.5 : 0.5));
  const double nd = double(n);
  const double r = (x - nd * L1) - nd * L2;
  const int j = n & 63;
  const int k = (n - j) / 64;
  const double p = r + (r * r) * (C2 + r * (C3 + r * (C4 + r * (C5 + r * C6))));
  const double th = kExpHi[j];
  const double y = th + (kExpLo[j] + th * p);
  if (k >= -1022) return k == 1024 ? y * 2 * pow2(1023) : y * pow2(k);
  return y * pow2(k + 1000) * TWO_M1000;
}

inline double log(double x) {
  constexpr double LN2_HI = 6.93147180369123816490e-1;
  constexpr double LN2_LO = 1.90821492927058770002e-10;
  constexpr double TWO54 = 1.80143985094819840000e16;
  constexpr double LG1 = 6.666666666666735130e-1;
  constexpr double LG2 = 3.999999999940941908e-1;
  constexpr double LG3 = 2.857142874366239149e-1;
  constexpr double LG4 = 2.222219843214978396e-1;
  constexpr double LG5 = 1.818357216161805012e-1;
  constexpr double LG6 = 1.531383769920937332e-1;
  constexpr double LG7 = 1.479819860511658591e-1;
  int32_t hx = highWord(x);
  const uint32_t lx = lowWord(x);
  int32_t k = 0;
  if (hx < 0x00100000) {
    if (((hx & 0x7fffffff) | int32_t(lx)) == 0) return -std::numeric_limits<double>::infinity();
    if (hx < 0) return std::numeric_limits<double>::quiet_NaN();
    k -= 54;
    x *= TWO54;
    hx = highWord(x);
  }
  if (hx >= 0x7ff00000) return x + x;
  k += (hx >> 20) - 1023;
  hx &= 0x000fffff;
  int32_t i = (hx + 0x95f64) & 0x100000;
  x = fromWords(uint32_t(hx | (i ^ 0x3ff00000)), lowWord(x));
  k += i >> 20;
  const double f = x - 1;
  const double dk = double(k);
  if ((0x000fffff & (2 + hx)) < 3) {
    if (f == 0) {
      if (k == 0) return 0;
      return dk * LN2_HI + dk * LN2_LO;
    }
    const double R = f * f * (0.5 - 0.33333333333333333 * f);
    if (k == 0) return f - R;
    return dk * LN2_HI - ((R - dk * LN2_LO) - f);
  }
  const double s = f / (2 + f);
  const double z = s * s;
  i = hx - 0x6147a;
  const double w = z * z;
  const int32_t j = 0x6b851 - hx;
  const double t1 = w * (LG2 + w * (LG4 + w * LG6));
  const double t2 = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7)));
  i |= j;
  const double R = t2 + t1;
  if (i > 0) {
    const double hfsq = 0.5 * f * f;
    if (k == 0) return f - (hfsq - s * (hfsq + R));
    return dk * LN2_HI - ((hfsq - (s * (hfsq + R) + dk * LN2_LO)) - f);
  }
  if (k == 0) return f - s * (f - R);
  return dk * LN2_HI - ((s * (f - R) - dk * LN2_LO) - f);
}

inline double kernelCos(double x, double y) {
  constexpr double C1 = 4.16666666666666019037e-2;
  constexpr double C2 = -1.38888888888741095749e-3;
  constexpr double C3 = 2.48015872894767294178e-5;
  constexpr double C4 = -2.75573143513906633035e-7;
  constexpr double C5 = 2.08757232129817482790e-9;
  constexpr double C6 = -1.13596475577881948265e-11;
  const double z = x * x;
  double w = z * z;
  const double r = z * (C1 + z * (C2 + z * C3)) + w * w * (C4 + z * (C5 + z * C6));
  const double hz = 0.5 * z;
  w = 1 - hz;
  return w + (((1 - w) - hz) + (z * r - x * y));
}

inline double kernelSin(double x, double y) {
  constexpr double S1 = -1.66666666666666324348e-1;
  constexpr double S2 = 8.33333333332248946124e-3;
  constexpr double S3 = -1.98412698298579493134e-4;
  constexpr double S4 = 2.75573137070700676789e-6;
  constexpr double S5 = -2.50507602534068634195e-8;
  constexpr double S6 = 1.58969099521155010221e-10;
  const double z = x * x;
  const double w = z * z;
  const double r = S2 + z * (S3 + z * S4) + z * w * (S5 + z * S6);
  const double v = z * x;
  return x - ((z * (0.5 * y - v * r) - y) - v * S1);
}

inline double cos(double x) {
  constexpr double PIO4 = 7.85398163397448278999e-1;
  constexpr double MEDIUM = 8.23549664718750000000e5;
  constexpr double INV_PIO2 = 6.36619772367581382433e-1;
  constexpr double PIO2_1 = 1.57079632673412561417e0;
  constexpr double PIO2_1T = 6.07710050650619224932e-11;
  constexpr double PIO2_2 = 6.07710050630396597660e-11;
  constexpr double PIO2_2T = 2.02226624879595063154e-21;
  constexpr double PIO2_3 = 2.02226624871116645580e-21;
  constexpr double PIO2_3T = 8.47842766036889956997e-32;
  const double t = x < 0 ? -x : x;
  if (t <= PIO4) return kernelCos(t, 0);
  if (!(t <= MEDIUM)) return std::numeric_limits<double>::quiet_NaN();
  const int n = int(t * INV_PIO2 + 0.5);
  const double fn = double(n);
  const int32_t j = highWord(t) >> 20;
  double r = t - fn * PIO2_1;
  double w = fn * PIO2_1T;
  double y0 = r - w;
  if (j - ((highWord(y0) >> 20) & 0x7ff) > 16) {
    double u = r;
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
  const double y1 = (r - y0) - w;
  switch (n & 3) {
    case 0: return kernelCos(y0, y1);
    case 1: return -kernelSin(y0, y1);
    case 2: return -kernelCos(y0, y1);
    default: return kernelSin(y0, y1);
  }
}

}  // namespace det
}  // namespace fedpg
