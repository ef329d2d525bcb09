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

namespace fedpg {

void SparseSolver::preconditionLanes(const std::vector<const double*>& src, const std::vector<double*>& dst) {
  const int n = n_, m = int(src.size());
  for (int k = 0; k < m; k++) std::copy(src[k], src[k] + n, dst[k]);
  const double* id = invDiag_.data();
  // As precondition(): L z = r with columns ascending, then U z = z with columns descending.
  for (int i = 0; i < n; i++) {
    const int64_t p0 = start_[i], p1 = diag_[i];
    for (int k = 0; k < m; k++) {
      double* z = dst[k];
      double sum = z[i];
      for (int64_t p = p0; p < p1; p++) sum -= lu_[p] * z[col_[p]];
      z[i] = sum;
    }
  }
  for (int i = n - 1; i >= 0; i--) {
    const int64_t p0 = diag_[i], p1 = start_[i + 1];
    for (int k = 0; k < m; k++) {
      double* z = dst[k];
      double sum = z[i];
      for (int64_t p = p1 - 1; p > p0; p--) sum -= lu_[p] * z[col_[p]];
      z[i] = sum * id[i];
    }
  }
}

void SparseSolver::applyLanes(const std::vector<const double*>& src, const std::vector<double*>& dst) {
  const int n = n_, m = int(src.size());
  for (int i = 0; i < n; i++) {
    const int64_t p0 = start_[i], p1 = start_[i + 1];
    for (int k = 0; k < m; k++) {
      const double* x = src[k];
      double sum = 0;
      for (int64_t p = p0; p < p1; p++) sum += a_[p] * x[col_[p]];
      dst[k][i] = sum;
    }
  }
}

void SparseSolver::solveMany(int count, const double* const* b, double* const* x, double tol) {
  const int n = n_;
  if (int(lanes_.size()) < count) lanes_.resize(size_t(count));
  for (int k = 0; k < count; k++) {
    Lane& l = lanes_[k];
    l.b = b[k];
    l.x = x[k];
    for (auto* v : {&l.r, &l.rh, &l.p, &l.v, &l.s, &l.t, &l.ph, &l.sh}) v->resize(size_t(n));
    l.iterations = 0;
    l.stalls = 0;
    l.previous = std::numeric_limits<double>::infinity();
    l.iterating = false;
    l.done = false;
  }
  std::vector<Lane*> first, second;
  std::vector<const double*> src;
  std::vector<double*> dst;
  auto batch = [&](const std::vector<Lane*>& ls, std::vector<double> Lane::*in, std::vector<double> Lane::*mid,
                   std::vector<double> Lane::*out) {
    src.clear();
    dst.clear();
    for (Lane* l : ls) {
      src.push_back((l->*in).data());
      dst.push_back((l->*mid).data());
    }
    preconditionLanes(src, dst);
    src.clear();
    for (Lane* l : ls) src.push_back((l->*mid).data());
    dst.clear();
    for (Lane* l : ls) dst.push_back((l->*out).data());
    applyLanes(src, dst);
  };
  for (;;) {
    // Restarts: the certificate, as in solve().
    bool any = false;
    for (int k = 0; k < count; k++) {
      Lane& l = lanes_[k];
      if (l.done || l.iterating) continue;
      double goal = 0;
      if (certify(l.b, l.x, l.r.data(), false, tol, &goal)) {
        l.done = true;
        continue;
      }
      const double rn = norm(l.r.data(), n, false);
      if (rn > 0.5 * l.previous && ++l.stalls >= 3)
        throw NumericError("sparse solve stagnated at a proven relative error of " + str(lastBound_) + " (target " +
                           str(tol) + ")");
      l.previous = rn;
      if (l.iterations >= kMaxIterations)
        throw NumericError("sparse solve did not reach its error bound in " + std::to_string(kMaxIterations) +
                           " BiCGSTAB iterations (proven relative error " + str(lastBound_) + ")");
      l.target = 0.5 * goal;
      std::copy(l.r.begin(), l.r.end(), l.rh.begin());
      std::fill(l.p.begin(), l.p.end(), 0.0);
      std::fill(l.v.begin(), l.v.end(), 0.0);
      l.rho = l.alpha = l.omega = 1;
      l.iterating = true;
    }
    first.clear();
    for (int k = 0; k < count; k++) {
      Lane& l = lanes_[k];
      if (l.done) continue;
      any = true;
      if (!l.iterating) continue;
      if (l.iterations >= kMaxIterations) {
        l.iterating = false;
        continue;
      }
      l.rhoNew = dot4(l.rh.data(), l.r.data(), n);
      if (l.rhoNew == 0 || !std::isfinite(l.rhoNew)) {
        l.iterating = false;
        continue;
      }
      const double beta = (l.rhoNew / l.rho) * (l.alpha / l.omega);
      for (int i = 0; i < n; i++) l.p[i] = l.r[i] + beta * (l.p[i] - l.omega * l.v[i]);
      first.push_back(&l);
    }
    if (!any) return;
    batch(first, &Lane::p, &Lane::ph, &Lane::v);
    second.clear();
    for (Lane* lp : first) {
      Lane& l = *lp;
      const double den = dot4(l.rh.data(), l.v.data(), n);
      if (den == 0 || !std::isfinite(den)) {
        l.iterating = false;
        continue;
      }
      l.alpha = l.rhoNew / den;
      for (int i = 0; i < n; i++) l.s[i] = l.r[i] - l.alpha * l.v[i];
      l.iterations++;
      if (norm(l.s.data(), n, false) <= l.target) {
        for (int i = 0; i < n; i++) l.x[i] = l.x[i] + l.alpha * l.ph[i];
        l.iterating = false;
        continue;
      }
      second.push_back(&l);
    }
    batch(second, &Lane::s, &Lane::sh, &Lane::t);
    for (Lane* lp : second) {
      Lane& l = *lp;
      const double tt = dot4(l.t.data(), l.t.data(), n);
      if (tt == 0 || !std::isfinite(tt)) {
        for (int i = 0; i < n; i++) l.x[i] = l.x[i] + l.alpha * l.ph[i];
        l.iterating = false;
        continue;
      }
      l.omega = dot4(l.t.data(), l.s.data(), n) / tt;
      for (int i = 0; i < n; i++) {
        l.x[i] = l.x[i] + l.alpha * l.ph[i] + l.omega * l.sh[i];
        l.r[i] = l.s[i] - l.omega * l.t[i];
      }
      if (norm(l.r.data(), n, false) <= l.target || l.omega == 0) {
        l.iterating = false;
        continue;
      }
      l.rho = l.rhoNew;
    }
  }
}

}  // namespace fedpg
