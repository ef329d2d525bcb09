// The kernels behind the Environment interface (src/backends/types.ts). Every function checks the
// sizes it is given (ArgumentError) before touching memory, whatever the N-API layer checked.
// A Workspace holds one thread's scratch: the JS thread's environment object owns one, and every
// async job creates its own, so jobs never share mutable memory.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "lu.h"
#include "model.h"
#include "sparse.h"
#include "staterecords.h"

namespace fedpg {

/** A length-checked view of caller memory. */
template <class T>
struct Span {
  T* p = nullptr;
  size_t n = 0;
  Span() = default;
  Span(T* p_, size_t n_) : p(p_), n(n_) {}
  T& operator[](size_t i) const { return p[i]; }
};

using In = Span<const double>;
using Out = Span<double>;

struct SamplerScratch {
  // What a trajectory step touches for a state, one interleaved record per state (staterecords.h),
  // and lazyD [S*A], in Buffers (2 MiB pages when large): at 10^6 states a step's TLB misses
  // otherwise cost more than its cache misses. logPi [S*A] only on the paths that need log pi.
  StateRecords rec;
  Buffer<double> lazyD;
  std::vector<double> logPi, disc, draws, G, terms;
  // FedSVRPG-M: rows of pi_thetaPrev and their logs (current when prevStamp[s] == prevGen), and the
  // weighted sum W (acc holds C; sampler.cc svrpgLanes).
  // Rows of pi_thetaPrev stay valid across the steps of one round (prevGen changes per call).
  std::vector<double> piPrev, logPiPrev, accPrev;
  std::vector<uint64_t> prevStamp;
  uint64_t prevGen = 0;
  // One finished row of both sums [2A] (svrpgRow), and c = (1 - beta) u of a lazy round.
  std::vector<double> svRow, svrpgC;
  // Visit counts as integers (exact, like the js doubles, and cheaper to increment).
  std::vector<int32_t> visited, trajS, trajSa, state;
  std::vector<const AliasEntry*> pending;
  std::vector<double> pendingFrac;
  // The records' stamps are 32-bit (a record fits two cache lines): nextStamp and nextTrajectory
  // in sampler.cc clear them before the counters wrap.
  uint32_t stamp = 0;
  uint32_t trajStamp = 0;
  // A sampled local round's lazy theta (lazyRound in sampler.cc): while lzD is set, row s of theta
  // is (start[s] + lzLc * c[s]) + D[s], formed into lzRow when a policy row is needed. `formed`
  // lists the states whose row (and zeroed acc row) the current batch formed: every estimator
  // reads only those acc rows.
  const double* lzStart = nullptr;
  const double* lzC = nullptr;
  double lzLc = 0;
  double* lzD = nullptr;
  std::vector<double> lzRow;
  std::vector<int32_t> formed;
  int64_t nFormed = 0;
  // A pulled round (FedProx, Ditto): D holds x = theta - center as of step pullT[s] (-1: untouched,
  // x = start - center at step 0); qp[n] = q^n, gs[n] = sum_{i<n} q^i by their recurrences.
  const double* lzCenter = nullptr;
  const double* lzQp = nullptr;
  const double* lzGs = nullptr;
  double lzEta = 0;
  int64_t lzStep = 0;
  std::vector<int64_t> pullT;
  std::vector<double> qp, gs;
};

struct ExactScratch {
  std::vector<double> pi, logPi, d, v, vNext, q;
  DenseLU lu;
  // Rows of a policy's state-to-state kernel (iterative path).
  std::vector<int64_t> kStart;
  std::vector<int32_t> kCol;
  std::vector<double> kVal;
  std::vector<double> rowAcc;
  std::vector<int32_t> rowMark, rowCols;
  // I - gamma P_theta's ILU(0) and the certified BiCGSTAB solves (iterative path).
  SparseSolver sparse;
  std::vector<double> b;
};

struct Workspace {
  SamplerScratch s;
  ExactScratch e;
  // localRound with exact gradients: one table's evaluation.
  std::vector<double> oneJ, oneV, oneQ, oneGrad, oneOcc;
};

/** Rejects a non-finite theta entry, naming it as theta[s][a]. */
void checkThetaValues(const Model& m, In theta);

/**
 * A local round's overflow check (src/backends/checks.ts thetaOverflow: the same rule and messages):
 * when theta holds a non-finite entry after exact step `step` (1-based) of `steps`, or, with step 0,
 * at the end of a sampled round (a non-finite entry never becomes finite again), rejects the first
 * non-finite entry of reward, correction or u (null: none), else theta's as an overflow.
 */
void checkRoundTheta(const Model& m, const double* theta, int64_t step, int64_t steps, const double* reward,
                     const double* correction = nullptr, const double* u = nullptr);

/**
 * One dense ascent step theta += eta (g + c) (c may be null) over n entries; returns the OR of
 * nonFiniteBits of the new entries (non-zero when one is not finite), for checkRoundTheta.
 */
inline uint64_t ascentStep(double* th, const double* g, const double* c, double eta, size_t n) {
  uint64_t bits = 0;
  if (c) {
    for (size_t j = 0; j < n; j++) {
      th[j] = th[j] + eta * (g[j] + c[j]);
      bits |= nonFiniteBits(th[j]);
    }
  } else {
    for (size_t j = 0; j < n; j++) {
      th[j] = th[j] + eta * g[j];
      bits |= nonFiniteBits(th[j]);
    }
  }
  return bits;
}

/** Rejects an entropy weight that is not a finite number >= 0. */
void checkEntropy(double tau);

/**
 * Exact V, Q, J, occupancy and gradient for n = rewards.n / (S*A) reward tables; with tau > 0
 * those of the entropy-regularised objective J_tau (SPEC.md, regfedpg). warmV [n*S] and warmOcc [S]
 * (both or neither; p = nullptr for none) are the caller's warm start: read as the initial guesses
 * of the sparse solves (S > kDenseLimit), then overwritten with this call's V and occupancy.
 */
void evaluate(const Model& m, Workspace& w, In theta, In rewards, Out J, Out V, Out Q, Out grad, Out occupancy,
              double tau = 0, Out warmV = Out(), Out warmOcc = Out());

/**
 * localRound's exact steps (arguments checked by localRound): theta += eta (grad J(theta) +
 * correction) `steps` times, in place. Past the dense limit step 0 solves cold and every later step
 * starts its solves from the previous step's V and occupancy (as js and wasm); nothing outlives the call.
 */
void exactRound(const Model& m, Workspace& w, double* theta, In reward, const double* correction, double eta,
                int64_t steps, double tau);

/** J_K and grad_K J for every reward table. */
void truncated(const Model& m, Workspace& w, In theta, In rewards, int64_t horizon, Out JK, Out gradK);

/** J* of one reward table by policy iteration (exact LU solves, or certified sparse solves); V* into vOut. */
double optimal(const Model& m, Workspace& w, In reward, Out vOut);

/** The Eq. 5 estimator (mean of `batch` truncated REINFORCE estimates) into out; advances rng. */
void estimateGradient(const Model& m, Workspace& w, In theta, In reward, int64_t horizon, int64_t batch,
                      Span<uint32_t> rng, Out out);

/**
 * The entropy-regularised GPOMDP estimator (regfedpg): the draws of estimateGradient, with
 * g = sum_l grad log pi(a_l|s_l) sum_{t>=l} gamma^t (r_t - tau log pi(a_t|s_t)), mean over the batch.
 */
void estimateRegularized(const Model& m, Workspace& w, In theta, In reward, double tau, int64_t horizon,
                         int64_t batch, Span<uint32_t> rng, Out out);

/** FedSVRPG-M's fields of a local round (LocalRoundArgs.svrpg in src/backends/types.ts). */
struct SvrpgArgs {
  In thetaPrev, u;
  double beta = 0, clip = 0;
};

/** A local round's pull towards center (LocalRoundArgs.pull): theta += eta (g + c - weight (theta - center)). */
struct PullArgs {
  In center;
  double weight = 0;
};

/**
 * FedSVRPG-M's estimates on one batch sampled under theta (Environment.estimateSvrpg): outCur the
 * GPOMDP estimate at theta, outPrev the mean of w_m GPOMDP_m at thetaPrev, w_m = det::exp of the
 * trajectory's summed log-ratio, clipped to [1/clip, clip] when clip > 0. Advances rng.
 */
void estimateSvrpg(const Model& m, Workspace& w, In theta, In thetaPrev, In reward, int64_t horizon, int64_t batch,
                   double clip, Span<uint32_t> rng, Out outCur, Out outPrev);

/**
 * H steps theta <- theta + eta (g(theta) + correction); correction.p may be null. tau > 0 ascends
 * J_tau (the regularised estimator or exact gradient). With svrpg (sampled only, no correction,
 * tau = 0): FedSVRPG-M's step theta += eta (gc + (1 - beta) u - (1 - beta) gw), one batch per step,
 * in the lazy form and expression order of js Sampler.localRoundSvrpg.
 */
void localRound(const Model& m, Workspace& w, Out theta, In reward, In correction, double eta, int64_t steps,
                bool sampled, int64_t horizon, int64_t batch, Span<uint32_t> rng, double tau = 0,
                const SvrpgArgs* svrpg = nullptr, const PullArgs* pull = nullptr);

}  // namespace fedpg
