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
  work_.resize(size_t(n));
}

double SparseSolver::floorFactor(bool transposed) const { return ((transposed ? maxCol_ : maxRow_) + 4) * kUnit; }

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

void SparseSolver::preconditionLanes(const std::vector<Lane*>& ls, std::vector<double> Lane::*in,
                                     std::vector<double> Lane::*out) {
  const int n = n_, m = int(ls.size());
  for (Lane* l : ls) {
    const double* r = (l->*in).data();
    double* z = (l->*out).data();
    if (precond_ == Precond::Jacobi) {
      for (int i = 0; i < n; i++) z[i] = r[i] / a_[diag_[i]];
    } else {
      std::copy(r, r + n, z);
    }
  }
  if (precond_ != Precond::Ilu0 || m == 0) return;
  std::vector<double*> zs(static_cast<size_t>(m));
  std::vector<char> tr(static_cast<size_t>(m));
  for (int k = 0; k < m; k++) {
    zs[k] = (ls[k]->*out).data();
    tr[k] = ls[k]->transposed;
  }
  const int64_t* lst = lStart_.data();
  const int32_t* lc = lCol_.data();
  const double* lv = lVal_.data();
  const int64_t* ust = uStart_.data();
  const int32_t* uc = uCol_.data();
  const double* uv = uVal_.data();
  const double* id = invDiag_.data();
  // Forward pass: L z = r (columns ascending, so the nearest neighbour comes last), or for a
  // transposed lane U^T y = r (U's rows scattered forward).
  for (int i = 0; i < n; i++) {
    for (int k = 0; k < m; k++) {
      double* z = zs[k];
      if (!tr[k]) {
        double sum = z[i];
        for (int64_t p = lst[i]; p < lst[i + 1]; p++) sum -= lv[p] * z[lc[p]];
        z[i] = sum;
      } else {
        const double yi = z[i] * id[i];
        z[i] = yi;
        for (int64_t p = ust[i]; p < ust[i + 1]; p++) z[uc[p]] -= uv[p] * yi;
      }
    }
  }
  // Backward pass: U z = z (columns descending), or L^T z = y (L's rows scattered backward).
  for (int i = n - 1; i >= 0; i--) {
    for (int k = 0; k < m; k++) {
      double* z = zs[k];
      if (!tr[k]) {
        double sum = z[i];
        for (int64_t p = ust[i + 1] - 1; p >= ust[i]; p--) sum -= uv[p] * z[uc[p]];
        z[i] = sum * id[i];
      } else {
        const double zi = z[i];
        for (int64_t p = lst[i]; p < lst[i + 1]; p++) z[lc[p]] -= lv[p] * zi;
      }
    }
  }
}

void SparseSolver::applyLanes(const std::vector<Lane*>& ls, std::vector<double> Lane::*in, std::vector<double> Lane::*out) {
  const int n = n_, m = int(ls.size());
  std::vector<const double*> xs(static_cast<size_t>(m));
  std::vector<double*> ys(static_cast<size_t>(m));
  std::vector<char> tr(static_cast<size_t>(m));
  for (int k = 0; k < m; k++) {
    xs[k] = (ls[k]->*in).data();
    ys[k] = (ls[k]->*out).data();
    tr[k] = ls[k]->transposed;
    if (tr[k]) std::fill(ys[k], ys[k] + n, 0.0);
  }
  // y = A x row by row (gather), or y = A^T x (each row scattered, rows ascending).
  for (int i = 0; i < n; i++) {
    const int64_t p0 = start_[i], p1 = start_[i + 1];
    for (int k = 0; k < m; k++) {
      if (!tr[k]) {
        const double* x = xs[k];
        double sum = 0;
        for (int64_t p = p0; p < p1; p++) sum += a_[p] * x[col_[p]];
        ys[k][i] = sum;
      } else {
        const double xi = xs[k][i];
        double* y = ys[k];
        for (int64_t p = p0; p < p1; p++) y[col_[p]] += a_[p] * xi;
      }
    }
  }
}

int SparseSolver::solve(const double* b, double* x, bool transposed, double tol) {
  const bool tr[1] = {transposed};
  solveMany(1, &b, &x, tr, tol);
  return lanes_[0].iterations;
}

void SparseSolver::solveMany(int count, const double* const* b, double* const* x, const bool* transposed, double tol) {
  const int n = n_;
  if (int(lanes_.size()) < count) lanes_.resize(size_t(count));
  for (int k = 0; k < count; k++) {
    Lane& l = lanes_[k];
    l.b = b[k];
    l.x = x[k];
    l.transposed = transposed[k];
    for (auto* v : {&l.r, &l.rh, &l.p, &l.v, &l.s, &l.t, &l.ph, &l.sh}) v->resize(size_t(n));
    l.iterations = 0;
    l.stalls = 0;
    l.previous = std::numeric_limits<double>::infinity();
    l.iterating = false;
    l.done = false;
  }
  std::vector<Lane*> first, second;
  for (;;) {
    // Restarts: the certificate, then a fresh BiCGSTAB cycle from x. The recursion's residual
    // drifts from the true one; the certificate has the last word.
    for (int k = 0; k < count; k++) {
      Lane& l = lanes_[k];
      if (l.done || l.iterating) continue;
      double goal = 0;
      if (certify(l.b, l.x, l.r.data(), l.transposed, tol, &goal)) {
        l.done = true;
        continue;
      }
      const double rn = norm(l.r.data(), n, l.transposed);
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
    // One BiCGSTAB iteration (right-preconditioned, so r stays the residual of the system) for
    // every lane in a cycle; a lane that converges or breaks down goes back to the certificate.
    bool any = false;
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
    preconditionLanes(first, &Lane::p, &Lane::ph);
    applyLanes(first, &Lane::ph, &Lane::v);
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
      if (norm(l.s.data(), n, l.transposed) <= l.target) {
        for (int i = 0; i < n; i++) l.x[i] = l.x[i] + l.alpha * l.ph[i];
        l.iterating = false;
        continue;
      }
      second.push_back(&l);
    }
    preconditionLanes(second, &Lane::s, &Lane::sh);
    applyLanes(second, &Lane::sh, &Lane::t);
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
      if (norm(l.r.data(), n, l.transposed) <= l.target || l.omega == 0) {
        l.iterating = false;
        continue;
      }
      l.rho = l.rhoNew;
    }
  }
}

}  // namespace fedpg
