// Dense LU with partial pivoting, P M = L U, blocked for the cache. The trailing update (the
// O(n^3) part) runs in a register-blocked kernel chosen at run time for the CPU (AVX-512, AVX2 or
// plain C++). Every kernel performs the same IEEE operations in the same order (a product, then a
// subtraction, accumulated over the panel in order; no fused multiply-add), so the three paths
// give bit-identical factors and the result does not depend on the machine.
#pragma once

#include <cstdint>
#include <vector>

#include "common.h"

namespace fedpg {

class DenseLU {
 public:
  /** Panel width: a multiple of the kernels' row (8) and column (24) blocks. */
  static constexpr int kPanel = 96;

  /** Allocates an n x n matrix (padded to the kernel blocks) and zeroes it. */
  void resize(int n);
  int n() const { return n_; }
  int64_t ld() const { return ld_; }
  /** Row i of the matrix (fill columns [0, n) before factor(); the padding must stay zero). */
  double* row(int i) { return a_.data() + int64_t(i) * ld_; }
  const double* row(int i) const { return a_.data() + int64_t(i) * ld_; }

  /** Factors in place; throws NumericError on an exactly singular pivot (as the js backend). */
  void factor(Simd simd);
  /** Solves M x = b in place. */
  void solve(double* b) const;
  /** Solves M^T x = b in place (M = P^T L U, so M^T = U^T L^T P). */
  void solveTransposed(double* b) const;

 private:
  void narrowPanel(int c0, int c1);
  void triangularRows(Simd simd, int k0, int r0, int r1, int64_t j0, int64_t j1);
  int n_ = 0;
  int rows_ = 0;
  int64_t ld_ = 0;
  Buffer<double> a_;
  std::vector<int32_t> piv_;
};

/** C[i0:i1, j0:j1] -= A[i0:i1, p0:p0+kb] B[p0:p0+kb, j0:j1], all inside one matrix of leading dimension ld. */
void gemmUpdate(Simd simd, double* a, int64_t ld, int64_t i0, int64_t i1, int64_t j0, int64_t j1, int64_t p0, int kb);

}  // namespace fedpg
