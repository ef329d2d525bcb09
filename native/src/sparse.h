// Certified sparse solves of (I - gamma K) x = b and (I - gamma K)^T x = b, for the policy kernels
// K = P_pi of MDPs past the dense LU's limit: BiCGSTAB (right-preconditioned, restarted) with an
// ILU(0) factorisation of I - gamma K, whose transpose preconditions the transposed system. The
// same algorithm, in the same operation order, is src/backends/js/sparse.ts and assembly/sparse.ts.
//
// The stopping rule proves the error bound instead of hoping for it. K has non-negative entries
// and row sums at most kappa (computed, rounded up), with gamma kappa < 1, so
//   ||(I - gamma K)^{-1}||_inf = ||(I - gamma K^T)^{-1}||_1 <= 1 / (1 - gamma kappa)
// (Neumann series). For any iterate x_k the residual r_k = b - (I - gamma K) x_k = (I - gamma K)(x - x_k),
// hence |x - x_k|_inf <= |r_k|_inf / (1 - gamma kappa) (values), and the same in the 1-norm with the
// transposed operator (occupancy). r_k is recomputed from K itself (not from the recursion) and its
// rounding is bounded a priori: each entry is a sum of at most m products of non-negative K entries
// with x, then three more operations, so |fl(r_k) - r_k| <= (m + 4) u (|b| + (1 + gamma kappa)|x|)
// entrywise in the norm used (m = most entries in a row, or column for the transposed case; u = 2^-53).
// A solve stops when
//   (|fl(r_k)| + floor) / (1 - gamma kappa) <= max(tol * max(1, |x_k|), 4 floor / (1 - gamma kappa)),
// which proves |x - x_k| <= tol * max(1, |x_k|) whenever the rounding floor is below a quarter of
// the target (gamma <= 0.99 with a few entries per row is far inside); closer to 1 the proven bound
// is the floor's 4 floor / (1 - gamma kappa), the accuracy any method attains in double precision.
#pragma once

#include <cstdint>
#include <vector>

namespace fedpg {

class SparseSolver {
 public:
  /** The relative error the solves prove (see above). */
  static constexpr double kTolerance = 1e-12;

  /**
   * Takes K's rows (CSR, columns sorted ascending, n rows) and gamma; builds I - gamma K and its
   * ILU(0) factors. The arrays must stay alive and unchanged while solves run.
   */
  void prepare(int n, const int64_t* start, const int32_t* col, const double* val, double gamma);

  /**
   * x = (I - gamma K)^{-1} b (transposed = false; error proven in the inf-norm) or
   * x = (I - gamma K^T)^{-1} b (transposed = true; in the 1-norm). x holds the initial guess on entry
   * (zeros for a cold start). Returns the BiCGSTAB iterations used; throws NumericError when the
   * bound cannot be reached.
   */
  int solve(const double* b, double* x, bool transposed, double tol = kTolerance);

  /**
   * Several systems solved together (system k transposed when transposed[k]): each follows exactly
   * the iterates it has alone (the same operations in the same order, restarts included; solve()
   * is this with one system), but each row of the triangular solves and products is visited once
   * for all of them, so their independent dependency chains overlap in the CPU. x[k] holds the
   * initial guess.
   */
  void solveMany(int count, const double* const* b, double* const* x, const bool* transposed, double tol = kTolerance);

  /** The rounding floor of a residual: (m + 4) u with m the most entries in a row (or column). */
  double floorFactor(bool transposed) const;
  /** gamma kappa: the contraction factor the bound uses. */
  double contraction() const { return gk_; }
  /** The certified bound of the last solve, relative to max(1, |x|) (diagnostics and tests). */
  double lastBound() const { return lastBound_; }

  /** Preconditioner choice (ILU(0) in production; Jacobi only for the solver comparison bench). */
  enum class Precond { Ilu0, Jacobi, None };
  void setPreconditioner(Precond p) { precond_ = p; }

 private:
  /** fl(b - (I - gamma K) x) computed from K; returns the certified bound divided by max(1, |x|), and whether it passes. */
  bool certify(const double* b, const double* x, double* res, bool transposed, double tol, double* goal);

  int n_ = 0;
  double gamma_ = 0, gk_ = 0;
  const int64_t* kStart_ = nullptr;
  const int32_t* kCol_ = nullptr;
  const double* kVal_ = nullptr;
  int maxRow_ = 0, maxCol_ = 0;
  // A = I - gamma K with an explicit diagonal; lu_ holds ILU(0) (L unit lower, U upper) on A's pattern.
  std::vector<int64_t> start_;
  std::vector<int32_t> col_;
  std::vector<int64_t> diag_;
  std::vector<double> a_, lu_;
  // The factors again as separate compact rows for the triangular solves (strictly lower L,
  // strictly upper U), and 1 / U's diagonal: the solves are latency-bound chains, so they multiply
  // instead of dividing.
  std::vector<int64_t> lStart_, uStart_;
  std::vector<int32_t> lCol_, uCol_;
  std::vector<double> lVal_, uVal_, invDiag_;
  std::vector<int64_t> pos_;
  std::vector<int32_t> colCount_;
  std::vector<double> work_;

  /** One system of solveMany: its vectors and BiCGSTAB state. */
  struct Lane {
    const double* b = nullptr;
    double* x = nullptr;
    std::vector<double> r, rh, p, v, s, t, ph, sh;
    double rho = 1, rhoNew = 1, alpha = 1, omega = 1, previous = 0, target = 0;
    int iterations = 0, stalls = 0;
    bool transposed = false, iterating = false, done = false;
  };
  std::vector<Lane> lanes_;
  /** lane.*out = M^{-1} lane.*in (M^{-T} for a transposed lane) for the lanes listed, one pass over the rows. */
  void preconditionLanes(const std::vector<Lane*>& ls, std::vector<double> Lane::*in, std::vector<double> Lane::*out);
  /** lane.*out = A lane.*in (A^T for a transposed lane), one pass over the rows. */
  void applyLanes(const std::vector<Lane*>& ls, std::vector<double> Lane::*in, std::vector<double> Lane::*out);
  Precond precond_ = Precond::Ilu0;
  double lastBound_ = 0;
};

}  // namespace fedpg
