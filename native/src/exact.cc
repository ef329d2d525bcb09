// Exact quantities, mirroring src/backends/js/exact.ts: one LU factorisation of I - gamma P_theta
// serves the value solves of every reward table and the transposed solve for the occupancy
// measure; past kDenseLimit states Gauss-Seidel (values) and Jacobi (occupancy) sweeps over the
// sparse rows of P_theta, converged to a relative 1e-15.
#include <algorithm>
#include <cmath>

#include "kernels.h"

namespace fedpg {

namespace detail {
void checkLen(const char* what, size_t got, size_t want) {
  if (got != want)
    throw ArgumentError(std::string(what) + " has length " + std::to_string(got) + ", expected " + std::to_string(want));
}
}  // namespace detail

using detail::checkLen;

void checkThetaValues(const Model& m, In theta) {
  checkLen("theta", theta.n, size_t(m.SA()));
  for (size_t j = 0; j < theta.n; j++) {
    if (!std::isfinite(theta[j])) {
      const size_t s = j / size_t(m.A);
      throw ArgumentError("theta[" + std::to_string(s) + "][" + std::to_string(j - s * m.A) + "] is " + str(theta[j]) +
                          ", not a finite number");
    }
  }
}

void checkEntropy(double tau) {
  if (!(std::isfinite(tau) && tau >= 0))
    throw ArgumentError("entropy weight tau must be a finite number >= 0, got " + str(tau));
}

namespace {

/** log pi(a|s) from theta directly (exact even where pi underflows), as the js backend. */
void logSoftmax(const double* theta, int S, int A, double* out) {
  for (int s = 0; s < S; s++) {
    const int64_t base = int64_t(s) * A;
    double m = theta[base];
    for (int a = 1; a < A; a++)
      if (theta[base + a] > m) m = theta[base + a];
    double z = 0;
    for (int a = 0; a < A; a++) z += std::exp(theta[base + a] - m);
    const double logZ = std::log(z);
    for (int a = 0; a < A; a++) out[base + a] = theta[base + a] - m - logZ;
  }
}

/** Full softmax policy (max subtracted, exp, sequential sum, divide), as the js backend. */
void softmaxPolicy(const double* theta, int S, int A, double* pi) {
  for (int s = 0; s < S; s++) {
    const int64_t base = int64_t(s) * A;
    double m = theta[base];
    for (int a = 1; a < A; a++)
      if (theta[base + a] > m) m = theta[base + a];
    double z = 0;
    for (int a = 0; a < A; a++) {
      const double e = std::exp(theta[base + a] - m);
      pi[base + a] = e;
      z += e;
    }
    for (int a = 0; a < A; a++) pi[base + a] = pi[base + a] / z;
  }
}

/** Sparse rows of P_policy (iterative path), columns sorted, values summed over actions in order. */
void kernelRows(const Model& m, ExactScratch& e, const double* policy) {
  const int S = m.S, A = m.A;
  e.kStart.assign(size_t(S) + 1, 0);
  e.kCol.clear();
  e.kVal.clear();
  e.rowAcc.assign(size_t(S), 0.0);
  e.rowMark.assign(size_t(S), 0);
  e.rowCols.clear();
  for (int s = 0; s < S; s++) {
    for (int a = 0; a < A; a++) {
      const double w = policy[int64_t(s) * A + a];
      if (w == 0) continue;
      m.forEachNext(int64_t(s) * A + a, [&](int j, double p) {
        if (!e.rowMark[j]) {
          e.rowMark[j] = 1;
          e.rowCols.push_back(j);
          e.rowAcc[j] = 0;
        }
        e.rowAcc[j] += w * p;
      });
    }
    std::sort(e.rowCols.begin(), e.rowCols.end());
    for (int j : e.rowCols) {
      e.kCol.push_back(j);
      e.kVal.push_back(e.rowAcc[j]);
      e.rowMark[j] = 0;
    }
    e.rowCols.clear();
    e.kStart[s + 1] = int64_t(e.kCol.size());
  }
}

/** Factors I - gamma P_policy (dense path; returns true) or builds its sparse rows (false). */
bool prepare(const Model& m, ExactScratch& e, const double* policy) {
  if (!m.denseSolver()) {
    kernelRows(m, e, policy);
    return false;
  }
  const int S = m.S, A = m.A;
  const double g = m.gamma;
  if (e.lu.n() != S) e.lu.resize(S);
  for (int s = 0; s < S; s++) {
    double* row = e.lu.row(s);
    std::fill(row, row + S, 0.0);
    for (int a = 0; a < A; a++) {
      const double w = policy[int64_t(s) * A + a];
      if (w == 0) continue;
      const int64_t r = int64_t(s) * A + a;
      if (m.isDense) {
        axpyAdd(row, m.p.data() + r * S, w, S);
      } else {
        for (int64_t k = m.rowStart[r]; k < m.rowStart[r + 1]; k++) row[m.next[k]] += w * m.prob[k];
      }
    }
    for (int j = 0; j < S; j++) row[j] = -g * row[j];
    row[s] += 1;
  }
  e.lu.factor(m.options.simd);
  return true;
}

/** x = (I - gamma K)^{-1} b in place: Gauss-Seidel, or Jacobi on K^T for the transposed system. */
void iterate(const Model& m, ExactScratch& e, double* b, bool transposed) {
  const int S = m.S;
  const double g = m.gamma;
  e.rhs.assign(b, b + S);
  double* x = b;
  const int64_t* ks = e.kStart.data();
  const int32_t* kc = e.kCol.data();
  const double* kv = e.kVal.data();
  if (transposed) {
    e.next.assign(size_t(S), 0.0);
    double* nx = e.next.data();
    for (int it = 0; it < 100000; it++) {
      std::copy(e.rhs.begin(), e.rhs.end(), nx);
      for (int s = 0; s < S; s++) {
        const double xs = x[s];
        if (xs == 0) continue;
        for (int64_t q = ks[s]; q < ks[s + 1]; q++) nx[kc[q]] = nx[kc[q]] + g * kv[q] * xs;
      }
      double diff = 0, scale = 0;
      for (int s = 0; s < S; s++) {
        diff = std::max(diff, std::fabs(nx[s] - x[s]));
        scale = std::max(scale, std::fabs(nx[s]));
      }
      std::copy(nx, nx + S, x);
      if (diff <= 1e-15 * std::max(scale, 1e-300)) return;
    }
    throw NumericError("iterative solve did not converge in 100000 sweeps");
  }
  for (int it = 0; it < 100000; it++) {
    double diff = 0, scale = 0;
    for (int s = 0; s < S; s++) {
      double sum = e.rhs[s];
      double diag = 0;
      for (int64_t q = ks[s]; q < ks[s + 1]; q++) {
        const int j = kc[q];
        if (j == s) diag = kv[q];
        else sum += g * kv[q] * x[j];
      }
      const double v = sum / (1 - g * diag);
      diff = std::max(diff, std::fabs(v - x[s]));
      scale = std::max(scale, std::fabs(v));
      x[s] = v;
    }
    if (diff <= 1e-15 * std::max(scale, 1e-300)) return;
  }
  throw NumericError("iterative solve did not converge in 100000 sweeps");
}

void solve(const Model& m, ExactScratch& e, bool dense, double* b) {
  if (dense) e.lu.solve(b);
  else iterate(m, e, b, false);
}

void solveTransposed(const Model& m, ExactScratch& e, bool dense, double* b) {
  if (dense) e.lu.solveTransposed(b);
  else iterate(m, e, b, true);
}

size_t tableCount(const Model& m, In rewards) {
  const size_t SA = size_t(m.SA());
  if (rewards.n % SA != 0)
    throw ArgumentError("rewards has length " + std::to_string(rewards.n) + ", not a multiple of S*A = " +
                        std::to_string(SA));
  return rewards.n / SA;
}

}  // namespace

void evaluate(const Model& m, Workspace& w, In theta, In rewards, Out J, Out V, Out Q, Out grad, Out occupancy,
              double tau) {
  const int S = m.S, A = m.A;
  const int64_t SA = m.SA();
  const double g = m.gamma;
  checkThetaValues(m, theta);
  checkEntropy(tau);
  const size_t n = tableCount(m, rewards);
  checkLen("J", J.n, n);
  checkLen("V", V.n, n * S);
  checkLen("Q", Q.n, n * SA);
  checkLen("grad", grad.n, n * SA);
  checkLen("occupancy", occupancy.n, size_t(S));
  ExactScratch& e = w.e;
  e.pi.resize(size_t(SA));
  double* pi = e.pi.data();
  softmaxPolicy(theta.p, S, A, pi);
  const double* logPi = nullptr;
  if (tau > 0) {
    e.logPi.resize(size_t(SA));
    logSoftmax(theta.p, S, A, e.logPi.data());
    logPi = e.logPi.data();
  }
  const bool dense = prepare(m, e, pi);
  double* d = occupancy.p;
  std::copy(m.initial.begin(), m.initial.end(), d);
  solveTransposed(m, e, dense, d);
  for (int s = 0; s < S; s++) d[s] = (1 - g) * d[s];
  for (size_t i = 0; i < n; i++) {
    const double* R = rewards.p + i * SA;
    double* v = V.p + i * S;
    for (int s = 0; s < S; s++) {
      double r = 0;
      for (int a = 0; a < A; a++) r += pi[int64_t(s) * A + a] * R[int64_t(s) * A + a];
      if (logPi) {
        double h = 0;
        for (int a = 0; a < A; a++) h -= pi[int64_t(s) * A + a] * logPi[int64_t(s) * A + a];
        r += tau * h;
      }
      v[s] = r;
    }
    solve(m, e, dense, v);
    double Ji = 0;
    for (int s = 0; s < S; s++) Ji += m.initial[s] * v[s];
    J[i] = Ji;
  }
  // Q and the gradient: each transition row is read once for all tables.
  for (int s = 0; s < S; s++) {
    for (int a = 0; a < A; a++) {
      const int64_t row = int64_t(s) * A + a;
      for (size_t i = 0; i < n; i++) {
        const double* v = V.p + i * S;
        const double q = rewards.p[i * SA + row] + g * m.expectNext(row, v);
        Q[i * SA + row] = q;
        const double adv = logPi ? q - tau * logPi[row] - v[s] : q - v[s];
        grad[i * SA + row] = (d[s] * pi[row] * adv) / (1 - g);
      }
    }
  }
}

void truncated(const Model& m, Workspace& w, In theta, In rewards, int64_t K, Out JK, Out gradK) {
  const int S = m.S, A = m.A;
  const int64_t SA = m.SA();
  const double g = m.gamma;
  checkThetaValues(m, theta);
  const size_t n = tableCount(m, rewards);
  if (K < 0 || K > 0x7fffffff) throw ArgumentError("horizon must be an integer in [0, 2^31-1], got " + std::to_string(K));
  if (double(K) * S > double(int64_t(1) << 28))
    throw ArgumentError("horizon * states = " + std::to_string(K) + " * " + std::to_string(S) +
                        " is too large for the truncated evaluation (it keeps K occupancy vectors of S entries)");
  checkLen("JK", JK.n, n);
  checkLen("gradK", gradK.n, n * SA);
  ExactScratch& e = w.e;
  e.pi.resize(size_t(SA));
  double* pi = e.pi.data();
  softmaxPolicy(theta.p, S, A, pi);
  // d_t for t < K, forward: d_{t+1}(s') = sum_s d_t(s) sum_a pi(a|s) P(s'|s,a).
  e.d.assign(size_t(K) * S, 0.0);
  double* d = e.d.data();
  if (K > 0) std::copy(m.initial.begin(), m.initial.end(), d);
  for (int64_t t = 0; t + 1 < K; t++) {
    double* dn = d + (t + 1) * S;
    for (int s = 0; s < S; s++) {
      const double ds = d[t * S + s];
      if (ds == 0) continue;
      for (int a = 0; a < A; a++) {
        const double wgt = ds * pi[int64_t(s) * A + a];
        if (wgt == 0) continue;
        const int64_t row = int64_t(s) * A + a;
        if (m.isDense) axpyAdd(dn, m.p.data() + row * S, wgt, S);
        else
          for (int64_t k = m.rowStart[row]; k < m.rowStart[row + 1]; k++) dn[m.next[k]] += wgt * m.prob[k];
      }
    }
  }
  e.v.assign(size_t(S), 0.0);
  e.vNext.assign(size_t(S), 0.0);
  e.q.assign(size_t(SA), 0.0);
  for (size_t i = 0; i < n; i++) {
    const double* R = rewards.p + i * SA;
    double* gk = gradK.p + i * SA;
    std::fill(gk, gk + SA, 0.0);
    double* v = e.v.data();
    double* vn = e.vNext.data();
    std::fill(v, v + S, 0.0);
    double* q = e.q.data();
    for (int64_t h = 1; h <= K; h++) {
      for (int s = 0; s < S; s++) {
        double vs = 0;
        for (int a = 0; a < A; a++) {
          const int64_t row = int64_t(s) * A + a;
          const double qa = R[row] + g * m.expectNext(row, v);
          q[row] = qa;
          vs += pi[row] * qa;
        }
        vn[s] = vs;
      }
      const int64_t t = K - h;
      const double wt = std::pow(g, double(t));
      for (int s = 0; s < S; s++) {
        const double ds = wt * d[t * S + s];
        for (int a = 0; a < A; a++) {
          const int64_t row = int64_t(s) * A + a;
          gk[row] = gk[row] + ds * pi[row] * (q[row] - vn[s]);
        }
      }
      std::swap(v, vn);
    }
    double Ji = 0;
    for (int s = 0; s < S; s++) Ji += m.initial[s] * v[s];
    JK[i] = Ji;
  }
}

double optimal(const Model& m, Workspace& w, In reward, Out vOut) {
  const int S = m.S, A = m.A;
  const int64_t SA = m.SA();
  const double g = m.gamma;
  checkLen("reward", reward.n, size_t(SA));
  checkLen("V output", vOut.n, size_t(S));
  for (size_t j = 0; j < reward.n; j++)
    if (!std::isfinite(reward[j])) throw ArgumentError("reward[" + std::to_string(j) + "] is " + str(reward[j]) + ", not a finite number");
  ExactScratch& e = w.e;
  std::vector<double> policy(static_cast<size_t>(SA), 0.0);
  std::vector<int> choice(static_cast<size_t>(S));
  for (int s = 0; s < S; s++) {
    int best = 0;
    for (int a = 1; a < A; a++)
      if (reward[int64_t(s) * A + a] > reward[int64_t(s) * A + best]) best = a;
    choice[s] = best;
  }
  double* v = vOut.p;
  for (int iter = 0; iter < 10000; iter++) {
    std::fill(policy.begin(), policy.end(), 0.0);
    for (int s = 0; s < S; s++) policy[int64_t(s) * A + choice[s]] = 1;
    const bool dense = prepare(m, e, policy.data());
    for (int s = 0; s < S; s++) v[s] = reward[int64_t(s) * A + choice[s]];
    solve(m, e, dense, v);
    bool changed = false;
    for (int s = 0; s < S; s++) {
      const int cur = choice[s];
      const double qCur = reward[int64_t(s) * A + cur] + g * m.expectNext(int64_t(s) * A + cur, v);
      int best = cur;
      double qBest = qCur;
      for (int a = 0; a < A; a++) {
        const double qa = reward[int64_t(s) * A + a] + g * m.expectNext(int64_t(s) * A + a, v);
        if (qa > qBest) {
          best = a;
          qBest = qa;
        }
      }
      if (best != cur && qBest - qCur > 1e-12 * std::max(1.0, std::fabs(qCur))) {
        choice[s] = best;
        changed = true;
      }
    }
    if (!changed) {
      double J = 0;
      for (int s = 0; s < S; s++) J += m.initial[s] * v[s];
      return J;
    }
  }
  throw NumericError("policy iteration did not converge in 10000 iterations");
}

}  // namespace fedpg
