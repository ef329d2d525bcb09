// Exact quantities, mirroring src/backends/js/exact.ts: one LU factorisation of I - gamma P_theta
// serves the value solves of every reward table and the transposed solve for the occupancy
// measure; past kDenseLimit states one ILU(0) of the sparse I - gamma P_theta preconditions
// BiCGSTAB solves whose stopping rule proves a relative error of 1e-12 (sparse.h), optionally
// warm-started from the caller's previous solution. J* there is policy iteration with such solves,
// stopped by a proven bound on the Bellman residual.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

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

namespace {
/** Throws for x's first non-finite entry, named as what[s][a] (x may be null: nothing to check). */
void checkEntries(const Model& m, const char* what, const double* x) {
  if (!x) return;
  const size_t SA = size_t(m.SA());
  for (size_t j = 0; j < SA; j++) {
    if (!std::isfinite(x[j])) {
      const size_t s = j / size_t(m.A);
      throw ArgumentError(std::string(what) + "[" + std::to_string(s) + "][" + std::to_string(j - s * m.A) + "] is " + str(x[j]) +
                          ", not a finite number");
    }
  }
}
}  // namespace

void checkRoundTheta(const Model& m, const double* theta, int64_t step, int64_t steps, const double* reward,
                     const double* correction, const double* u) {
  const size_t SA = size_t(m.SA());
  size_t j = 0;
  while (j < SA && std::isfinite(theta[j])) j++;
  if (j == SA) return;
  // An input the boundary checks do not scan may be the cause: looked for only here, on the error path.
  checkEntries(m, "reward", reward);
  checkEntries(m, "correction", correction);
  checkEntries(m, "svrpg.u", u);
  const size_t s = j / size_t(m.A);
  const std::string when = step > 0 ? "after local step " + std::to_string(step) + " of " + std::to_string(steps)
                                    : "at the end of a local round of " + std::to_string(steps) + (steps == 1 ? " step" : " steps");
  throw ArgumentError("theta[" + std::to_string(s) + "][" + std::to_string(j - s * m.A) + "] is " + str(theta[j]) + " " + when +
                      " (the steps overflowed the float64 range: lower eta)");
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

/** Factors I - gamma P_policy (dense path; returns true) or builds its sparse rows and ILU(0) (false). */
bool prepare(const Model& m, ExactScratch& e, const double* policy) {
  if (!m.denseSolver()) {
    kernelRows(m, e, policy);
    e.sparse.prepare(m.S, e.kStart.data(), e.kCol.data(), e.kVal.data(), m.gamma);
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

/** The warm start: both vectors or neither, of the right lengths, finite. */
void checkWarm(Out warmV, Out warmOcc, size_t nV, size_t nOcc) {
  if (!warmV.p && !warmOcc.p) return;
  if (!warmV.p || !warmOcc.p) throw ArgumentError("warm start needs both V and occupancy");
  checkLen("warm.V", warmV.n, nV);
  checkLen("warm.occupancy", warmOcc.n, nOcc);
  for (size_t j = 0; j < nV; j++)
    if (!std::isfinite(warmV[j])) throw ArgumentError("warm.V[" + std::to_string(j) + "] is " + str(warmV[j]) + ", not a finite number");
  for (size_t j = 0; j < nOcc; j++)
    if (!std::isfinite(warmOcc[j]))
      throw ArgumentError("warm.occupancy[" + std::to_string(j) + "] is " + str(warmOcc[j]) + ", not a finite number");
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
              double tau, Out warmV, Out warmOcc) {
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
  checkWarm(warmV, warmOcc, n * S, size_t(S));
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
  if (dense) {
    std::copy(m.initial.begin(), m.initial.end(), d);
    e.lu.solveTransposed(d);
  } else {
    // The unnormalised occupancy x = d / (1 - gamma) solves (I - gamma P^T) x = rho.
    for (int s = 0; s < S; s++) d[s] = warmOcc.p ? warmOcc[s] / (1 - g) : 0.0;
  }
  // The right-hand sides r_theta of every table (into V for the dense path, which solves in place).
  if (!dense) e.b.resize(n * S);
  for (size_t i = 0; i < n; i++) {
    const double* R = rewards.p + i * SA;
    double* v = dense ? V.p + i * S : e.b.data() + i * S;
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
    if (dense) e.lu.solve(v);
  }
  if (!dense) {
    // The occupancy and every table's values together (each system with exactly the iterates it
    // would have alone).
    std::vector<const double*> bs(n + 1);
    std::vector<double*> xs(n + 1);
    std::unique_ptr<bool[]> tr(new bool[n + 1]());
    bs[0] = m.initial.data();
    xs[0] = d;
    tr[0] = true;
    for (size_t i = 0; i < n; i++) {
      bs[i + 1] = e.b.data() + i * S;
      xs[i + 1] = V.p + i * S;
      for (int s = 0; s < S; s++) xs[i + 1][s] = warmV.p ? warmV[i * S + s] : 0.0;
    }
    e.sparse.solveMany(int(n + 1), bs.data(), xs.data(), tr.get());
  }
  for (int s = 0; s < S; s++) d[s] = (1 - g) * d[s];
  for (size_t i = 0; i < n; i++) {
    const double* v = V.p + i * S;
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
  // The warm start may be the outputs themselves (exactRound): then there is nothing to copy.
  if (warmV.p && warmV.p != V.p) std::copy(V.p, V.p + n * S, warmV.p);
  if (warmOcc.p && warmOcc.p != d) std::copy(d, d + S, warmOcc.p);
}

void exactRound(const Model& m, Workspace& w, double* th, In reward, const double* c, double eta, int64_t steps,
                double tau) {
  const int S = m.S;
  const size_t SA = size_t(m.SA());
  w.oneJ.resize(1);
  w.oneV.resize(size_t(S));
  w.oneQ.resize(SA);
  w.oneOcc.resize(size_t(S));
  w.oneGrad.resize(SA);
  double* g = w.oneGrad.data();
  // Finite rewards before the first solve (as js and wasm: a NaN would end in a solver's own error).
  checkEntries(m, "reward", reward.p);
  // The warm start is this call's own V and occupancy, read and overwritten in place by each
  // step's solves; zeros (step 0) are exactly the cold start. The dense LU has no use for one.
  const bool warm = !m.denseSolver();
  if (warm) {
    std::fill(w.oneV.begin(), w.oneV.end(), 0.0);
    std::fill(w.oneOcc.begin(), w.oneOcc.end(), 0.0);
  }
  const Out V(w.oneV.data(), size_t(S)), occ(w.oneOcc.data(), size_t(S));
  for (int64_t h = 0; h < steps; h++) {
    evaluate(m, w, In(th, SA), reward, Out(w.oneJ.data(), 1), V, Out(w.oneQ.data(), SA), Out(g, SA), occ, tau,
             warm ? V : Out(), warm ? occ : Out());
    // The next solve needs a finite theta: the round stops at the step that overflowed (as js and wasm).
    if (ascentStep(th, g, c, eta, SA)) checkRoundTheta(m, th, h + 1, steps, reward.p, c);
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

namespace {

/** The initial policy of both paths: the action of the largest immediate reward (the first on ties). */
std::vector<int> greedyOnReward(const Model& m, const double* reward) {
  const int S = m.S, A = m.A;
  std::vector<int> choice(static_cast<size_t>(S));
  for (int s = 0; s < S; s++) {
    int best = 0;
    for (int a = 1; a < A; a++)
      if (reward[int64_t(s) * A + a] > reward[int64_t(s) * A + best]) best = a;
    choice[s] = best;
  }
  return choice;
}

/**
 * Dense path: policy iteration with exact LU solves, finite and accurate to rounding. An action
 * changes only when it improves Q by more than 1e-12 (relative), so ties cannot cycle.
 */
double optimalDense(const Model& m, ExactScratch& e, const double* reward, double* v) {
  const int S = m.S, A = m.A;
  const double g = m.gamma;
  std::vector<double> policy(static_cast<size_t>(m.SA()), 0.0);
  std::vector<int> choice = greedyOnReward(m, reward);
  for (int iter = 0; iter < 10000; iter++) {
    std::fill(policy.begin(), policy.end(), 0.0);
    for (int s = 0; s < S; s++) policy[int64_t(s) * A + choice[s]] = 1;
    prepare(m, e, policy.data());
    for (int s = 0; s < S; s++) v[s] = reward[int64_t(s) * A + choice[s]];
    e.lu.solve(v);
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

/**
 * Sparse path: policy iteration whose evaluations are certified BiCGSTAB solves warm-started from
 * the previous policy's values, loose while far from V* (inexact policy iteration). The answer is certified by the Bellman residual, not by the policy
 * becoming stable: the optimality operator T is a (gamma kappa)-contraction in the inf-norm
 * (kappa = the largest row sum of P, rounded up), so |V* - v|_inf <= |T v - v|_inf / (1 - gamma kappa),
 * and J = rho^T v is within that of J* (rho sums to 1; plus the rounding of that sum of S terms, at most
 * S u |v|_inf, in practice far less). Computing T v - v rounds by at most
 * floor = (m + 4) u (|R|_inf + (1 + gamma kappa)|v|_inf) (m = most entries in a row of P), so the loop
 * stops when (|fl(T v - v)|_inf + floor) / (1 - gamma kappa) <= max(1e-12 max(1, |v|_inf), 4 floor / (1 - gamma kappa)),
 * the rule of the sparse solves (sparse.h). The final evaluations run to half that tolerance and an
 * action changes only when it gains more than a quarter of it (times 1 - gamma kappa), so once the
 * policy is stable the residual passes, and near-ties cannot make the iteration cycle.
 */
/** Gauss-Seidel value-iteration sweeps that choose optimalSparse's first policy. */
constexpr int kInitialSweeps = 4;

double optimalSparse(const Model& m, ExactScratch& e, const double* reward, double* v) {
  constexpr double u = 1.1102230246251565e-16;
  const int S = m.S, A = m.A;
  const int64_t SA = m.SA();
  const double g = m.gamma;
  double kappa = 0, rn = 0;
  int maxRow = 0;
  for (int64_t row = 0; row < SA; row++) {
    double sum = 0;
    int count = 0;
    m.forEachNext(row, [&](int, double p) {
      sum += p;
      count += p != 0;  // adding an exact zero does not round
    });
    kappa = std::max(kappa, sum);
    maxRow = std::max(maxRow, count);
    rn = std::max(rn, std::fabs(reward[row]));
  }
  const double gk = g * kappa * (1 + (maxRow + 2) * u);
  if (!(gk < 1))
    throw NumericError("a transition row sums to " + str(kappa) + ": gamma * that is not below 1, so value iteration does not contract");
  const double denom = (1 - gk) * (1 - 4 * u);
  const double tol = SparseSolver::kTolerance;
  std::vector<double> policy(static_cast<size_t>(SA), 0.0);
  std::vector<int> choice(static_cast<size_t>(S), 0);
  std::vector<double> rPi(static_cast<size_t>(S));
  // The first policy: greedy after a few in-place (Gauss-Seidel) value-iteration sweeps from 0,
  // alternately in state order and backwards, so each sweep carries the rewards across the whole
  // grid in its direction; policy iteration from there needs a handful of improvements, not one
  // per step of distance to the rewards.
  std::fill(v, v + S, 0.0);
  for (int k = 0; k < kInitialSweeps; k++) {
    for (int t = 0; t < S; t++) {
      const int s = k % 2 == 0 ? t : S - 1 - t;
      double qBest = -std::numeric_limits<double>::infinity();
      for (int a = 0; a < A; a++) {
        const double qa = reward[int64_t(s) * A + a] + g * m.expectNext(int64_t(s) * A + a, v);
        if (qa > qBest) {
          qBest = qa;
          choice[s] = a;
        }
      }
      v[s] = qBest;
    }
  }
  // Inexact policy iteration: while far from V*, an evaluation only needs to be accurate to a
  // tenth of the current distance to it (|T v - v| / (1 - gamma kappa), relative); the last ones run
  // to half the final tolerance.
  double evalTol = 1e-3;
  for (int iter = 0; iter < 10000; iter++) {
    std::fill(policy.begin(), policy.end(), 0.0);
    for (int s = 0; s < S; s++) {
      policy[int64_t(s) * A + choice[s]] = 1;
      rPi[s] = reward[int64_t(s) * A + choice[s]];
    }
    prepare(m, e, policy.data());
    e.sparse.solve(rPi.data(), v, false, evalTol);
    double vn = 0;
    for (int s = 0; s < S; s++) vn = std::max(vn, std::fabs(v[s]));
    const double scale = std::max(1.0, vn);
    const double gain = 0.25 * tol * scale * (1 - gk);
    double bellman = 0;
    bool changed = false;
    for (int s = 0; s < S; s++) {
      const int cur = choice[s];
      double qCur = 0, qBest = -std::numeric_limits<double>::infinity();
      int best = cur;
      for (int a = 0; a < A; a++) {
        const double qa = reward[int64_t(s) * A + a] + g * m.expectNext(int64_t(s) * A + a, v);
        if (a == cur) qCur = qa;
        if (qa > qBest) {
          best = a;
          qBest = qa;
        }
      }
      bellman = std::max(bellman, std::fabs(qBest - v[s]));
      if (best != cur && qBest - qCur > gain) {
        choice[s] = best;
        changed = true;
      }
    }
    const double floor = (maxRow + 4) * u * (rn + (1 + gk) * vn);
    if ((bellman + floor) / denom <= std::max(tol * scale, 4 * floor / denom)) {
      double J = 0;
      for (int s = 0; s < S; s++) J += m.initial[s] * v[s];
      return J;
    }
    if (!changed) {
      // Stable but not certified: the evaluation was too loose (or, at full accuracy, rounding won).
      if (evalTol <= 0.5 * tol)
        throw NumericError("policy iteration stopped with a Bellman residual of " + str(bellman) +
                           ", above what its error bound needs");
      evalTol = 0.5 * tol;
    } else {
      evalTol = std::max(0.5 * tol, std::min(1e-3, 0.1 * bellman / (denom * scale)));
    }
  }
  throw NumericError("policy iteration did not converge in 10000 iterations");
}

}  // namespace

double optimal(const Model& m, Workspace& w, In reward, Out vOut) {
  const int S = m.S;
  const int64_t SA = m.SA();
  checkLen("reward", reward.n, size_t(SA));
  checkLen("V output", vOut.n, size_t(S));
  for (size_t j = 0; j < reward.n; j++)
    if (!std::isfinite(reward[j])) throw ArgumentError("reward[" + std::to_string(j) + "] is " + str(reward[j]) + ", not a finite number");
  return m.denseSolver() ? optimalDense(m, w.e, reward.p, vOut.p) : optimalSparse(m, w.e, reward.p, vOut.p);
}

}  // namespace fedpg
