#include "sparse.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "common.h"

namespace fedpg {

namespace {

constexpr double kUnit = 1.1102230246251565e-16;  // u = 2^-53
/** BiCGSTAB iterations (all restarts together) before a solve gives up. */
constexpr int kMaxIterations = 20000;

/** x . y with four interleaved partial sums, combined as (s0 + s1) + (s2 + s3): the order js and wasm use. */
double dot4(const double* x, const double* y, int n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += x[i] * y[i];
    s1 += x[i + 1] * y[i + 1];
    s2 += x[i + 2] * y[i + 2];
    s3 += x[i + 3] * y[i + 3];
  }
  double s = (s0 + s1) + (s2 + s3);
  for (; i < n; i++) s += x[i] * y[i];
  return s;
}

/** The norm the bound of the solve uses: inf-norm for values, 1-norm for the transposed system. */
double norm(const double* x, int n, bool one) {
  double m = 0;
  if (one) {
    for (int i = 0; i < n; i++) m += std::fabs(x[i]);
  } else {
    for (int i = 0; i < n; i++) m = std::max(m, std::fabs(x[i]));
  }
  return m;
}

}  // namespace

void SparseSolver::prepare(int n, const int64_t* start, const int32_t* col, const double* val, double gamma) {
  n_ = n;
  gamma_ = gamma;
  kStart_ = start;
  kCol_ = col;
  kVal_ = val;
  // kappa = the largest row sum of K, rounded up; m = most entries in a row or column.
  double kappa = 0;
  maxRow_ = 0;
  std::vector<int32_t>& colCount = colCount_;
  colCount.assign(size_t(n), 0);
  for (int i = 0; i < n; i++) {
    double sum = 0;
    for (int64_t p = start[i]; p < start[i + 1]; p++) {
      sum += val[p];
      colCount[col[p]]++;
    }
    kappa = std::max(kappa, sum);
    maxRow_ = std::max(maxRow_, int(start[i + 1] - start[i]));
  }
  maxCol_ = n ? *std::max_element(colCount.begin(), colCount.end()) : 0;
  gk_ = gamma * kappa * (1 + (maxRow_ + 2) * kUnit);
  if (!(gk_ < 1))
    throw NumericError("the policy's kernel has a row summing to " + str(kappa) + ": gamma * that is not below 1, so " +
                       "I - gamma P is not invertible by the bound the sparse solver uses");
  // A = I - gamma K with the diagonal always stored.
  start_.assign(size_t(n) + 1, 0);
  col_.clear();
  a_.clear();
  diag_.assign(size_t(n), 0);
  for (int i = 0; i < n; i++) {
    bool placed = false;
    for (int64_t p = start[i]; p < start[i + 1]; p++) {
      const int j = col[p];
      if (!placed && j >= i) {
        diag_[i] = int64_t(col_.size());
        placed = true;
        if (j == i) {
          col_.push_back(i);
          a_.push_back(1 - gamma * val[p]);
          continue;
        }
        col_.push_back(i);
        a_.push_back(1);
      }
      col_.push_back(j);
      a_.push_back(-gamma * val[p]);
    }
    if (!placed) {
      diag_[i] = int64_t(col_.size());
      col_.push_back(i);
      a_.push_back(1);
    }
    start_[i + 1] = int64_t(col_.size());
  }
  // ILU(0), row by row (IKJ): A is an M-matrix (positive diagonal, non-positive off-diagonals,
  // strictly diagonally dominant by rows), so every pivot stays positive.
  lu_.assign(a_.begin(), a_.end());
  std::vector<int64_t>& pos = pos_;
  pos.assign(size_t(n), -1);
  for (int i = 0; i < n; i++) {
    for (int64_t p = start_[i]; p < start_[i + 1]; p++) pos[col_[p]] = p;
    for (int64_t p = start_[i]; p < diag_[i]; p++) {
      const int k = col_[p];
      const double l = lu_[p] / lu_[diag_[k]];
      lu_[p] = l;
      for (int64_t q = diag_[k] + 1; q < start_[k + 1]; q++) {
        const int64_t at = pos[col_[q]];
        if (at >= 0) lu_[at] = lu_[at] - l * lu_[q];
      }
    }
    for (int64_t p = start_[i]; p < start_[i + 1]; p++) pos[col_[p]] = -1;
  }
  invDiag_.resize(size_t(n));
  lStart_.assign(size_t(n) + 1, 0);
  uStart_.assign(size_t(n) + 1, 0);
  lCol_.clear();
  lVal_.clear();
  uCol_.clear();
  uVal_.clear();
  for (int i = 0; i < n; i++) {
    invDiag_[i] = 1 / lu_[diag_[i]];
    for (int64_t p = start_[i]; p < diag_[i]; p++) {
      lCol_.push_back(col_[p]);
      lVal_.push_back(lu_[p]);
    }
    for (int64_t p = diag_[i] + 1; p < start_[i + 1]; p++) {
      uCol_.push_back(col_[p]);
      uVal_.push_back(lu_[p]);
    }
    lStart_[i + 1] = int64_t(lCol_.size());
    uStart_[i + 1] = int64_t(uCol_.size());
  }
  for (auto* v : {&r_, &rh_, &p_, &v_, &s_, &t_, &ph_, &sh_, &work_}) v->resize(size_t(n));
}

double SparseSolver::floorFactor(bool transposed) const { return ((transposed ? maxCol_ : maxRow_) + 4) * kUnit; }

void SparseSolver::apply(const double* x, double* y, bool transposed) const {
  const int n = n_;
  if (!transposed) {
    for (int i = 0; i < n; i++) {
      double sum = 0;
      for (int64_t p = start_[i]; p < start_[i + 1]; p++) sum += a_[p] * x[col_[p]];
      y[i] = sum;
    }
  } else {
    std::fill(y, y + n, 0.0);
    for (int i = 0; i < n; i++) {
      const double xi = x[i];
      for (int64_t p = start_[i]; p < start_[i + 1]; p++) y[col_[p]] += a_[p] * xi;
    }
  }
}

void SparseSolver::precondition(const double* r, double* z, bool transposed) const {
  const int n = n_;
  if (precond_ == Precond::None) {
    std::copy(r, r + n, z);
    return;
  }
  if (precond_ == Precond::Jacobi) {
    for (int i = 0; i < n; i++) z[i] = r[i] / a_[diag_[i]];
    return;
  }
  if (z != r) std::copy(r, r + n, z);
  const int64_t* ls = lStart_.data();
  const int32_t* lc = lCol_.data();
  const double* lv = lVal_.data();
  const int64_t* us = uStart_.data();
  const int32_t* uc = uCol_.data();
  const double* uv = uVal_.data();
  const double* id = invDiag_.data();
  if (!transposed) {
    // L z = r (unit diagonal; columns ascending, so the nearest neighbour comes last), then
    // U z = z (columns descending, for the same reason).
    for (int i = 0; i < n; i++) {
      double sum = z[i];
      for (int64_t p = ls[i]; p < ls[i + 1]; p++) sum -= lv[p] * z[lc[p]];
      z[i] = sum;
    }
    for (int i = n - 1; i >= 0; i--) {
      double sum = z[i];
      for (int64_t p = us[i + 1] - 1; p >= us[i]; p--) sum -= uv[p] * z[uc[p]];
      z[i] = sum * id[i];
    }
  } else {
    // U^T y = r (U's rows scattered forward), then L^T z = y (L's rows scattered backward).
    for (int i = 0; i < n; i++) {
      const double yi = z[i] * id[i];
      z[i] = yi;
      for (int64_t p = us[i]; p < us[i + 1]; p++) z[uc[p]] -= uv[p] * yi;
    }
    for (int i = n - 1; i >= 0; i--) {
      const double zi = z[i];
      for (int64_t p = ls[i]; p < ls[i + 1]; p++) z[lc[p]] -= lv[p] * zi;
    }
  }
}

bool SparseSolver::certify(const double* b, const double* x, double* res, bool transposed, double tol, double* goal) {
  const int n = n_;
  const double g = gamma_;
  if (!transposed) {
    for (int i = 0; i < n; i++) {
      double sum = 0;
      for (int64_t p = kStart_[i]; p < kStart_[i + 1]; p++) sum += kVal_[p] * x[kCol_[p]];
      res[i] = (b[i] + g * sum) - x[i];
    }
  } else {
    double* y = work_.data();
    std::fill(y, y + n, 0.0);
    for (int i = 0; i < n; i++) {
      const double xi = x[i];
      for (int64_t p = kStart_[i]; p < kStart_[i + 1]; p++) y[kCol_[p]] += kVal_[p] * xi;
    }
    for (int i = 0; i < n; i++) res[i] = (b[i] + g * y[i]) - x[i];
  }
  // Sums of n non-negative terms are off by at most a factor 1 + n u: round the norms outwards.
  const double up = transposed ? 1 + (n + 1) * kUnit : 1, down = transposed ? 1 - (n + 1) * kUnit : 1;
  const double rn = norm(res, n, transposed) * up;
  const double bn = norm(b, n, transposed) * up;
  const double xn = norm(x, n, transposed);
  const double floor = floorFactor(transposed) * (bn + (1 + gk_) * xn * up);
  const double denom = (1 - gk_) * (1 - 4 * kUnit);
  const double scale = std::max(1.0, xn * down);
  const double allowed = std::max(tol * scale, 4 * floor / denom);
  const double bound = (rn + floor) / denom;
  lastBound_ = bound / scale;
  // The residual norm that would pass (used as the iteration's goal).
  *goal = allowed * denom - floor;
  if (!std::isfinite(bound)) throw NumericError("sparse solve: the iterate is not finite");
  return bound <= allowed;
}

int SparseSolver::solve(const double* b, double* x, bool transposed, double tol) {
  const int n = n_;
  const bool one = transposed;
  double* r = r_.data();
  double* rh = rh_.data();
  double* p = p_.data();
  double* v = v_.data();
  double* s = s_.data();
  double* t = t_.data();
  double* ph = ph_.data();
  double* sh = sh_.data();
  int iterations = 0, stalls = 0;
  double previous = std::numeric_limits<double>::infinity();
  for (;;) {
    double goal = 0;
    if (certify(b, x, r, transposed, tol, &goal)) return iterations;
    const double rn = norm(r, n, one);
    if (rn > 0.5 * previous && ++stalls >= 3)
      throw NumericError("sparse solve stagnated at a proven relative error of " + str(lastBound_) + " (target " +
                         str(tol) + ")");
    previous = rn;
    if (iterations >= kMaxIterations)
      throw NumericError("sparse solve did not reach its error bound in " + std::to_string(kMaxIterations) +
                         " BiCGSTAB iterations (proven relative error " + str(lastBound_) + ")");
    // BiCGSTAB from x, right-preconditioned, so r stays the residual of the system itself. The
    // recursion's residual drifts from the true one; the certificate above has the last word.
    const double target = 0.5 * goal;
    std::copy(r, r + n, rh);
    std::fill(p, p + n, 0.0);
    std::fill(v, v + n, 0.0);
    double rho = 1, alpha = 1, omega = 1;
    while (iterations < kMaxIterations) {
      const double rhoNew = dot4(rh, r, n);
      if (rhoNew == 0 || !std::isfinite(rhoNew)) break;
      const double beta = (rhoNew / rho) * (alpha / omega);
      for (int i = 0; i < n; i++) p[i] = r[i] + beta * (p[i] - omega * v[i]);
      precondition(p, ph, transposed);
      apply(ph, v, transposed);
      const double den = dot4(rh, v, n);
      if (den == 0 || !std::isfinite(den)) break;
      alpha = rhoNew / den;
      for (int i = 0; i < n; i++) s[i] = r[i] - alpha * v[i];
      iterations++;
      if (norm(s, n, one) <= target) {
        for (int i = 0; i < n; i++) x[i] = x[i] + alpha * ph[i];
        break;
      }
      precondition(s, sh, transposed);
      apply(sh, t, transposed);
      const double tt = dot4(t, t, n);
      if (tt == 0 || !std::isfinite(tt)) {
        for (int i = 0; i < n; i++) x[i] = x[i] + alpha * ph[i];
        break;
      }
      omega = dot4(t, s, n) / tt;
      for (int i = 0; i < n; i++) {
        x[i] = x[i] + alpha * ph[i] + omega * sh[i];
        r[i] = s[i] - omega * t[i];
      }
      if (norm(r, n, one) <= target || omega == 0) break;
      rho = rhoNew;
    }
  }
}

}  // namespace fedpg
