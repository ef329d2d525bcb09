#include "lu.h"

#include <algorithm>
#include <cmath>

#include "model.h"

#if FEDPG_X86
#include <immintrin.h>
#endif

namespace fedpg {

namespace {

int64_t roundUp(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// ---- trailing-update kernels ------------------------------------------------------------------
// Shapes: AVX-512 8 rows x 24 columns (24 zmm accumulators, then 8 x 8 for a narrow tail), AVX2
// 4 x 12 (then 4 x 4), generic 4 x 8. Row and column ranges start and end at multiples of 8 (the
// padding of the matrix guarantees it), so no edge case exists. Each C entry is updated as
// c = c - a*b for p in order, in every kernel: the same bits whatever the vector width.
// The two vector kernels are 64-byte aligned: otherwise their start (and their inner loops) moves
// with the size of unrelated code linked before them, and at 16 mod 64 the dense evaluation at
// S = 400 ran 12% slower (a cold throw path added in sampler.cc was enough to move it).

#if FEDPG_X86
__attribute__((target("avx512f"), aligned(64))) void gemmAvx512(double* a, int64_t ld, int64_t i0, int64_t i1, int64_t j0,
                                                     int64_t j1, int64_t p0, int kb) {
  int64_t j = j0;
  for (; j + 24 <= j1; j += 24) {
    const double* B = a + p0 * ld + j;
    for (int64_t i = i0; i < i1; i += 8) {
      double* C = a + i * ld + j;
      const double* Ar = a + i * ld + p0;
#define FEDPG_LOAD(r)                                 \
  __m512d c##r##0 = _mm512_load_pd(C + (r) * ld);     \
  __m512d c##r##1 = _mm512_load_pd(C + (r) * ld + 8); \
  __m512d c##r##2 = _mm512_load_pd(C + (r) * ld + 16);
      FEDPG_LOAD(0) FEDPG_LOAD(1) FEDPG_LOAD(2) FEDPG_LOAD(3) FEDPG_LOAD(4) FEDPG_LOAD(5) FEDPG_LOAD(6) FEDPG_LOAD(7)
#undef FEDPG_LOAD
      for (int p = 0; p < kb; p++) {
        const double* b = B + p * ld;
        const __m512d b0 = _mm512_load_pd(b), b1 = _mm512_load_pd(b + 8), b2 = _mm512_load_pd(b + 16);
#define FEDPG_STEP(r)                                           \
  {                                                             \
    const __m512d x = _mm512_set1_pd(Ar[(r) * ld + p]);         \
    c##r##0 = _mm512_sub_pd(c##r##0, _mm512_mul_pd(x, b0));     \
    c##r##1 = _mm512_sub_pd(c##r##1, _mm512_mul_pd(x, b1));     \
    c##r##2 = _mm512_sub_pd(c##r##2, _mm512_mul_pd(x, b2));     \
  }
        FEDPG_STEP(0) FEDPG_STEP(1) FEDPG_STEP(2) FEDPG_STEP(3) FEDPG_STEP(4) FEDPG_STEP(5) FEDPG_STEP(6) FEDPG_STEP(7)
#undef FEDPG_STEP
      }
#define FEDPG_STORE(r)                          \
  _mm512_store_pd(C + (r) * ld, c##r##0);       \
  _mm512_store_pd(C + (r) * ld + 8, c##r##1);   \
  _mm512_store_pd(C + (r) * ld + 16, c##r##2);
      FEDPG_STORE(0) FEDPG_STORE(1) FEDPG_STORE(2) FEDPG_STORE(3) FEDPG_STORE(4) FEDPG_STORE(5) FEDPG_STORE(6)
      FEDPG_STORE(7)
#undef FEDPG_STORE
    }
  }
  for (; j < j1; j += 8) {  // narrow tail: 8 rows x 8 columns
    const double* B = a + p0 * ld + j;
    for (int64_t i = i0; i < i1; i += 8) {
      double* C = a + i * ld + j;
      const double* Ar = a + i * ld + p0;
      __m512d c[8];
      for (int r = 0; r < 8; r++) c[r] = _mm512_load_pd(C + r * ld);
      for (int p = 0; p < kb; p++) {
        const __m512d b = _mm512_load_pd(B + p * ld);
        for (int r = 0; r < 8; r++) c[r] = _mm512_sub_pd(c[r], _mm512_mul_pd(_mm512_set1_pd(Ar[r * ld + p]), b));
      }
      for (int r = 0; r < 8; r++) _mm512_store_pd(C + r * ld, c[r]);
    }
  }
}

__attribute__((target("avx2"), aligned(64))) void gemmAvx2(double* a, int64_t ld, int64_t i0, int64_t i1, int64_t j0, int64_t j1,
                                                int64_t p0, int kb) {
  int64_t j = j0;
  for (; j + 12 <= j1; j += 12) {
    const double* B = a + p0 * ld + j;
    for (int64_t i = i0; i < i1; i += 4) {
      double* C = a + i * ld + j;
      const double* Ar = a + i * ld + p0;
#define FEDPG_LOAD(r)                                    \
  __m256d c##r##0 = _mm256_loadu_pd(C + (r) * ld);       \
  __m256d c##r##1 = _mm256_loadu_pd(C + (r) * ld + 4);   \
  __m256d c##r##2 = _mm256_loadu_pd(C + (r) * ld + 8);
      FEDPG_LOAD(0) FEDPG_LOAD(1) FEDPG_LOAD(2) FEDPG_LOAD(3)
#undef FEDPG_LOAD
      for (int p = 0; p < kb; p++) {
        const double* b = B + p * ld;
        const __m256d b0 = _mm256_loadu_pd(b), b1 = _mm256_loadu_pd(b + 4), b2 = _mm256_loadu_pd(b + 8);
#define FEDPG_STEP(r)                                           \
  {                                                             \
    const __m256d x = _mm256_broadcast_sd(Ar + (r) * ld + p);   \
    c##r##0 = _mm256_sub_pd(c##r##0, _mm256_mul_pd(x, b0));     \
    c##r##1 = _mm256_sub_pd(c##r##1, _mm256_mul_pd(x, b1));     \
    c##r##2 = _mm256_sub_pd(c##r##2, _mm256_mul_pd(x, b2));     \
  }
        FEDPG_STEP(0) FEDPG_STEP(1) FEDPG_STEP(2) FEDPG_STEP(3)
#undef FEDPG_STEP
      }
#define FEDPG_STORE(r)                           \
  _mm256_storeu_pd(C + (r) * ld, c##r##0);       \
  _mm256_storeu_pd(C + (r) * ld + 4, c##r##1);   \
  _mm256_storeu_pd(C + (r) * ld + 8, c##r##2);
      FEDPG_STORE(0) FEDPG_STORE(1) FEDPG_STORE(2) FEDPG_STORE(3)
#undef FEDPG_STORE
    }
  }
  for (; j < j1; j += 4) {  // narrow tail: 4 rows x 4 columns
    const double* B = a + p0 * ld + j;
    for (int64_t i = i0; i < i1; i += 4) {
      double* C = a + i * ld + j;
      const double* Ar = a + i * ld + p0;
      __m256d c[4];
      for (int r = 0; r < 4; r++) c[r] = _mm256_loadu_pd(C + r * ld);
      for (int p = 0; p < kb; p++) {
        const __m256d b = _mm256_loadu_pd(B + p * ld);
        for (int r = 0; r < 4; r++) c[r] = _mm256_sub_pd(c[r], _mm256_mul_pd(_mm256_broadcast_sd(Ar + r * ld + p), b));
      }
      for (int r = 0; r < 4; r++) _mm256_storeu_pd(C + r * ld, c[r]);
    }
  }
}
#endif

void gemmGeneric(double* a, int64_t ld, int64_t i0, int64_t i1, int64_t j0, int64_t j1, int64_t p0, int kb) {
  for (int64_t j = j0; j < j1; j += 8) {
    const double* B = a + p0 * ld + j;
    for (int64_t i = i0; i < i1; i += 4) {
      double c[4][8];
      for (int r = 0; r < 4; r++)
        for (int q = 0; q < 8; q++) c[r][q] = a[(i + r) * ld + j + q];
      const double* Ar = a + i * ld + p0;
      for (int p = 0; p < kb; p++) {
        const double* b = B + p * ld;
        for (int r = 0; r < 4; r++) {
          const double x = Ar[r * ld + p];
          for (int q = 0; q < 8; q++) c[r][q] = c[r][q] - x * b[q];
        }
      }
      for (int r = 0; r < 4; r++)
        for (int q = 0; q < 8; q++) a[(i + r) * ld + j + q] = c[r][q];
    }
  }
}

}  // namespace

void gemmUpdate(Simd simd, double* a, int64_t ld, int64_t i0, int64_t i1, int64_t j0, int64_t j1, int64_t p0, int kb) {
  if (i0 >= i1 || j0 >= j1 || kb <= 0) return;
  if ((i0 % 8) || (i1 % 8) || (j0 % 8) || (j1 % 8) || (ld % 24))
    throw std::logic_error("gemmUpdate: blocks not aligned to the kernel shape");
#if FEDPG_X86
  if (simd == Simd::Avx512) return gemmAvx512(a, ld, i0, i1, j0, j1, p0, kb);
  if (simd == Simd::Avx2) return gemmAvx2(a, ld, i0, i1, j0, j1, p0, kb);
#else
  (void)simd;
#endif
  gemmGeneric(a, ld, i0, i1, j0, j1, p0, kb);
}

void DenseLU::resize(int n) {
  if (n < 0) throw ArgumentError("matrix order must be >= 0");
  n_ = n;
  rows_ = int(roundUp(n, 8));
  ld_ = roundUp(std::max(n, 1), 24);
  a_.reset(size_t(rows_) * size_t(ld_));
  piv_.assign(size_t(n), 0);
}

// Columns [c0, c1) (at most 8), rows [c0, n): pivot search, whole-row swap (as the js
// reference), multipliers, and the update restricted to these columns.
void DenseLU::narrowPanel(int c0, int c1) {
  const int n = n_;
  const int64_t ld = ld_;
  double* a = a_.data();
  for (int k = c0; k < c1; k++) {
    int p = k;
    double best = std::fabs(a[int64_t(k) * ld + k]);
    for (int i = k + 1; i < n; i++) {
      const double v = std::fabs(a[int64_t(i) * ld + k]);
      if (v > best) {
        best = v;
        p = i;
      }
    }
    piv_[k] = p;
    if (p != k) std::swap_ranges(a + int64_t(k) * ld, a + int64_t(k) * ld + n, a + int64_t(p) * ld);
    const double* krow = a + int64_t(k) * ld;
    const double d = krow[k];
    if (d == 0) throw NumericError("singular matrix in LU factorisation");
    const int w = c1 - (k + 1);
    for (int i = k + 1; i < n; i++) {
      double* r = a + int64_t(i) * ld;
      const double l = r[k] / d;
      r[k] = l;
      if (l != 0)
        for (int j = 0; j < w; j++) r[k + 1 + j] -= l * krow[k + 1 + j];
    }
  }
}

// Rows [r0, r1) of the columns [j0, j1): U = L^{-1} A with L the unit lower triangle of rows
// [k0, r1) x columns [k0, r1), where rows [k0, r0) are already solved. Blocks of 8 rows: the
// solved rows enter through the update kernel, the 8 x 8 triangle row by row.
void DenseLU::triangularRows(Simd simd, int k0, int r0, int r1, int64_t j0, int64_t j1) {
  const int64_t ld = ld_;
  double* a = a_.data();
  for (int b0 = r0; b0 < r1; b0 += 8) {
    const int b1 = std::min(b0 + 8, r1);
    if (b0 > k0) gemmUpdate(simd, a, ld, b0, b0 + 8, j0, j1, k0, b0 - k0);
    for (int p = b0 + 1; p < b1; p++) {
      double* r = a + int64_t(p) * ld;
      for (int q = b0; q < p; q++) {
        const double l = r[q];
        if (l != 0) axpySub(r + j0, a + int64_t(q) * ld + j0, l, j1 - j0);
      }
    }
  }
}

// Blocked right-looking LU (as LAPACK's getrf): a panel of kPanel columns is factored in
// sub-panels of 8 columns whose updates run in the kernel, then U12 = L11^{-1} A12 and
// A22 -= L21 U12 over the padded trailing block (padding rows and columns are zero and stay zero).
void DenseLU::factor(Simd simd) {
  const int n = n_;
  const int64_t ld = ld_;
  double* a = a_.data();
  for (int k0 = 0; k0 < n; k0 += kPanel) {
    const int kend = std::min(n, k0 + kPanel);
    const int64_t kendPad = std::min<int64_t>(roundUp(kend, 8), ld);
    for (int c0 = k0; c0 < kend; c0 += 8) {
      const int c1 = std::min(c0 + 8, kend);
      narrowPanel(c0, c1);
      if (c1 >= kend) break;
      // Rows [c0, c1) of the panel's remaining columns, then the rows below.
      triangularRows(simd, c0, c0, c1, c1, kendPad);
      gemmUpdate(simd, a, ld, c1, rows_, c1, kendPad, c0, c1 - c0);
    }
    if (kend >= n) break;
    triangularRows(simd, k0, k0, kend, kend, ld);
    gemmUpdate(simd, a, ld, kend, rows_, kend, ld, k0, kend - k0);
  }
}

void DenseLU::solve(double* b) const {
  const int n = n_;
  const double* a = a_.data();
  for (int k = 0; k < n; k++) {
    const int p = piv_[k];
    if (p != k) std::swap(b[k], b[p]);
  }
  for (int i = 1; i < n; i++) b[i] -= dot(a + int64_t(i) * ld_, b, i);
  for (int i = n - 1; i >= 0; i--) {
    const double* r = a + int64_t(i) * ld_;
    b[i] = (b[i] - dot(r + i + 1, b + i + 1, n - i - 1)) / r[i];
  }
}

void DenseLU::solveTransposed(double* b) const {
  const int n = n_;
  const double* a = a_.data();
  // U^T y = b, column by column (rows of U are contiguous).
  for (int i = 0; i < n; i++) {
    const double* r = a + int64_t(i) * ld_;
    const double y = b[i] / r[i];
    b[i] = y;
    if (y != 0) axpySub(b + i + 1, r + i + 1, y, n - i - 1);
  }
  // L^T z = y (unit diagonal).
  for (int i = n - 1; i > 0; i--) {
    const double z = b[i];
    if (z != 0) axpySub(b, a + int64_t(i) * ld_, z, i);
  }
  for (int k = n - 1; k >= 0; k--) {
    const int p = piv_[k];
    if (p != k) std::swap(b[k], b[p]);
  }
}

}  // namespace fedpg
