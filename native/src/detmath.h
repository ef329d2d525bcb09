// exp, log and cos with the same bits as src/math/{exp,log,cos}.ts and assembly/detmath.ts: the
// same fdlibm algorithms, the same expressions in the same order, only +, -, *, / and exact bit
// operations (the doc comments and error bounds are in the TypeScript files). The addon is built
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

inline double exp(double x) {
  constexpr double O_THRESHOLD = 7.09782712893383973096e2;
  constexpr double U_THRESHOLD = -7.45133219101941108420e2;
  constexpr double HALF_LN2 = 3.46573590279972643113e-1;
  constexpr double TWO_M28 = 3.7252902984619140625e-9;
  constexpr double LN2_HI = 6.93147180369123816490e-1;
  constexpr double LN2_LO = 1.90821492927058770002e-10;
  constexpr double INV_LN2 = 1.44269504088896338700e0;
  constexpr double P1 = 1.66666666666666019037e-1;
  constexpr double P2 = -2.77777777770155933842e-3;
  constexpr double P3 = 6.61375632143793436117e-5;
  constexpr double P4 = -1.65339022054652515390e-6;
  constexpr double P5 = 4.13813679705723846039e-8;
  constexpr double TWO_M1000 = 9.33263618503218878990e-302;
  if (x > O_THRESHOLD) return std::numeric_limits<double>::infinity();
  if (x < U_THRESHOLD) return 0;
  if (x != x) return x;
  const double ax = x < 0 ? -x : x;
  int k = 0;
  double hi = 0, lo = 0, r = x;
  if (ax > HALF_LN2) {
    k = int(INV_LN2 * x + (x < 0 ? -0.5 : 0.5));
    const double kd = double(k);
    hi = x - kd * LN2_HI;
    lo = kd * LN2_LO;
    r = hi - lo;
  } else if (ax < TWO_M28) {
    return 1 + x;
  }
  const double t = r * r;
  const double c = r - t * (P1 + t * (P2 + t * (P3 + t * (P4 + t * P5))));
  if (k == 0) return 1 - ((r * c) / (c - 2) - r);
  const double y = 1 - ((lo - (r * c) / (2 - c)) - hi);
  if (k >= -1021) return k == 1024 ? y * 2 * pow2(1023) : y * pow2(k);
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
