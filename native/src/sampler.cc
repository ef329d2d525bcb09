// The Eq. 5 estimator, consuming the random stream exactly as src/backends/js/sampler.ts: per
// trajectory one double for s_0, then per step one for the action and, except after the last
// step, one for the next state (4K uint32 outputs per trajectory). Scores are kept as visit
// counts, g[s, a] += G (c(s, a) - n(s) pi(a|s)) per trajectory in trajectory order, then / M.
//
// Two loops produce the same bits. The sequential one follows the js code step by step (M = 1,
// or very long horizons). The lockstep one pre-draws each lane's 2K doubles sequentially from the
// stream (so the stream is consumed in the same order), advances L trajectories one step at a time
// (8 lanes: their dependency chains overlap; with tables larger than the caches, 16 lanes that
// prefetch each next row and alias column, so their cache and TLB misses overlap too), and then
// adds the trajectories' contributions in trajectory order. The action draw and the alias choice
// are branch-free: their outcomes are random, and a mispredicted branch per step cost a third of
// the step.
#include <algorithm>
#include <cmath>

#include "detmath.h"
#include "kernels.h"
#include "rng.h"

namespace fedpg {

namespace detail {
void checkLen(const char* what, size_t got, size_t want);
}
using detail::checkLen;

namespace {

constexpr int64_t kMaxCount = 0x7fffffff;

void checkCount(const char* what, int64_t v) {
  if (v < 1 || v > kMaxCount) throw ArgumentError(std::string(what) + " must be an integer in [1, 2^31-1], got " + std::to_string(v));
}

void prepareScratch(const Model& m, SamplerScratch& sc) {
  const size_t S = size_t(m.S), SA = size_t(m.SA());
  if (sc.pi.size() != SA) {
    sc.pi.reset(SA);
    sc.cum.reset(SA);
    sc.counts.reset(SA);
    sc.acc.reset(SA);
    sc.visits.reset(S);
    sc.lastPositive.reset(S);
    sc.visited.assign(S, 0);
    sc.piStamp.reset(S);
    sc.visitStamp.reset(S);
    sc.stamp = 0;
    sc.trajStamp = 0;
    sc.lazyD.reset(SA);
    sc.pullT.assign(S, -1);
    sc.formed.assign(S, 0);
    sc.lzRow.assign(size_t(m.A), 0.0);
  }
}

/**
 * pi = softmax(th) over A actions with the max subtracted (and, with kLog, lp = log pi = th - max -
 * log z, exact even where pi underflows). det::exp and det::log, z summed in action order: the
 * same bits as the js and wasm rows.
 */
template <bool kLog>
inline void softmaxRow(const double* th, int A, double* pi, double* lp) {
  double m = th[0];
  for (int a = 1; a < A; a++)
    if (th[a] > m) m = th[a];
  double z = 0;
  for (int a = 0; a < A; a++) {
    const double e = det::exp(th[a] - m);
    pi[a] = e;
    z += e;
  }
  if (kLog) {
    const double logZ = det::log(z);
    for (int a = 0; a < A; a++) lp[a] = th[a] - m - logZ;
  }
  for (int a = 0; a < A; a++) pi[a] = pi[a] / z;  // separate loop: it vectorises
}

/** Brings row s's x = theta - center (in lzD) from its step pullT[s] to step l (js pullRow). */
inline void pullRow(SamplerScratch& sc, int A, int s, int64_t l) {
  const int64_t base = int64_t(s) * A;
  double* d = sc.lzD + base;
  const double* ce = sc.lzCenter + base;
  if (sc.pullT[size_t(s)] < 0) {
    const double* st = sc.lzStart + base;
    for (int a = 0; a < A; a++) d[a] = st[a] - ce[a];
    sc.pullT[size_t(s)] = 0;
  }
  const int64_t n = l - sc.pullT[size_t(s)];
  const double qn = sc.lzQp[n], gn = sc.lzGs[n];
  if (sc.lzC) {
    const double* c = sc.lzC + base;
    for (int a = 0; a < A; a++) d[a] = qn * d[a] + gn * (sc.lzEta * c[a]);
  } else {
    for (int a = 0; a < A; a++) d[a] = qn * d[a];
  }
  sc.pullT[size_t(s)] = l;
}

/** pi(.|s) (softmaxRow), its running sum and its last positive action; log pi with kLog. */
template <bool kLog = false>
inline void policyRow(const double* theta, int A, int s, SamplerScratch& sc) {
  const int64_t base = int64_t(s) * A;
  double* pi = sc.pi.data() + base;
  double* cum = sc.cum.data() + base;
  if (sc.lzD) {
    // Row s of the lazy theta, in the documented order (js Sampler.localRoundLazy): (start + lc*c) + D.
    double* row = sc.lzRow.data();
    const double* st = sc.lzStart + base;
    const double* d = sc.lzD + base;
    if (sc.lzCenter) {
      pullRow(sc, A, s, sc.lzStep);
      const double* ce = sc.lzCenter + base;
      for (int a = 0; a < A; a++) row[a] = ce[a] + d[a];
    } else if (sc.lzC) {
      const double* c = sc.lzC + base;
      const double lc = sc.lzLc;
      for (int a = 0; a < A; a++) row[a] = st[a] + lc * c[a] + d[a];
    } else {
      for (int a = 0; a < A; a++) row[a] = st[a] + d[a];
    }
    softmaxRow<kLog>(row, A, pi, kLog ? sc.logPi.data() + base : nullptr);
    std::fill(sc.acc.data() + base, sc.acc.data() + base + A, 0.0);
    sc.formed[size_t(sc.nFormed++)] = s;
  } else {
    softmaxRow<kLog>(theta + base, A, pi, kLog ? sc.logPi.data() + base : nullptr);
  }
  double c = 0;
  int last = 0;
  for (int a = 0; a < A; a++) {
    const double p = pi[a];
    c += p;
    cum[a] = c;
    if (p > 0) last = a;
  }
  sc.lastPositive[s] = last;
  sc.piStamp[s] = sc.stamp;
}

/** Alias draw: x = u * n, column k = floor(x); hi when x - k < prob[k], else lo. */
/** hi when take, else lo, without a branch (the outcome is random: a branch mispredicts half the time). */
inline int select(bool take, int hi, int lo) {
  const int mask = -int(take);
  return (hi & mask) | (lo & ~mask);
}

inline int aliasDraw(const AliasEntry* row, int64_t n, double u) {
  const double x = u * double(n);
  int64_t k = int64_t(x);
  if (k >= n) k = n - 1;  // unreachable for u < 1; keeps the read in bounds regardless
  const AliasEntry& e = row[k];
  return select(x - double(k) < e.prob, e.hi, e.lo);
}

/**
 * The smallest a with u < cum[a], else the last action with pi > 0. cum is non-decreasing, so
 * that a is the number of entries with !(u < cum[a]): counted without branches for small A
 * (one unpredictable loop exit per step is most of a step's cost).
 */
inline int pickAction(const double* cum, int A, double u, int lastPositive) {
  int a = 0;
  if (A <= 16) {
    for (int b = 0; b < A; b++) a += !(u < cum[b]);
  } else {
    while (a < A && !(u < cum[a])) a++;
  }
  return select(a == A, lastPositive, a);
}

/** acc[s, b] += G (c(s, b) - n(s) pi(b|s)) over the trajectory's visited states (the js arithmetic: counts are exact). */
inline void addScores(int A, SamplerScratch& sc, int nv, double G) {
  const double* pi = sc.pi.data();
  const int32_t* visits = sc.visits.data();
  const int32_t* counts = sc.counts.data();
  double* acc = sc.acc.data();
  for (int v = 0; v < nv; v++) {
    const int64_t base = int64_t(sc.visited[v]) * A;
    const double n = double(visits[sc.visited[v]]);
    for (int b = 0; b < A; b++) acc[base + b] += G * (double(counts[base + b]) - n * pi[base + b]);
  }
}

/** Adds one trajectory's G (c(s,.) - n(s) pi(.|s)) to acc, as the js end-of-trajectory loop. */
void contribute(int A, SamplerScratch& sc, const int32_t* ts, const int32_t* tsa, int64_t K, double G) {
  const uint64_t traj = ++sc.trajStamp;
  int nv = 0;
  int32_t* visits = sc.visits.data();
  int32_t* counts = sc.counts.data();
  for (int64_t t = 0; t < K; t++) {
    const int s = ts[t];
    if (sc.visitStamp[s] != traj) {
      sc.visitStamp[s] = traj;
      sc.visited[nv++] = s;
      visits[s] = 0;
      std::fill(counts + int64_t(s) * A, counts + int64_t(s) * A + A, 0);
    }
    visits[s] += 1;
    counts[tsa[t]] += 1;
  }
  addScores(A, sc, nv, G);
}

struct SvrpgCtx;
void svrpgLanes(int A, SamplerScratch& sc, const SvrpgCtx& cx, int nl, int64_t K, const double* disc);

/**
 * One trajectory at a time. kSvrpg: record each path and add FedSVRPG-M's contribution
 * (svrpgLanes) instead of Eq. 5's; the rows then carry log pi.
 */
template <bool kSvrpg = false>
void sequential(const Model& m, SamplerScratch& sc, const double* theta, const double* R, int64_t K, int64_t M,
                Xoshiro128& rng, const SvrpgCtx* cx = nullptr) {
  const int A = m.A;
  const double gamma = m.gamma;
  const AliasTable& T = m.transitionAlias();
  const AliasTable& I = m.initialAlias();
  const int64_t* tStart = T.start.data();
  const AliasEntry* tE = T.entries.data();
  const AliasEntry* iE = I.entries.data();
  const int64_t iN = I.start[1];
  const uint64_t stamp = sc.stamp;
  double* cum = sc.cum.data();
  int32_t* visits = sc.visits.data();
  int32_t* counts = sc.counts.data();
  int32_t* path = kSvrpg ? sc.trajS.data() : nullptr;
  int32_t* pathSa = kSvrpg ? sc.trajSa.data() : nullptr;
  for (int64_t mm = 0; mm < M; mm++) {
    const uint64_t traj = kSvrpg ? 0 : ++sc.trajStamp;
    int nv = 0;
    double G = 0;
    double disc = 1;
    int s = aliasDraw(iE, iN, rng.nextDouble());
    for (int64_t step = 0; step < K; step++) {
      if (sc.piStamp[s] != stamp) policyRow<kSvrpg>(theta, A, s, sc);
      const int64_t base = int64_t(s) * A;
      const int a = pickAction(cum + base, A, rng.nextDouble(), sc.lastPositive[s]);
      const int64_t sa = base + a;
      if (kSvrpg) {
        path[step] = s;
        pathSa[step] = int32_t(sa);
      } else {
        G += disc * R[sa];
        disc *= gamma;
        if (sc.visitStamp[s] != traj) {
          sc.visitStamp[s] = traj;
          sc.visited[nv++] = s;
          visits[s] = 0;
          std::fill(counts + base, counts + base + A, 0);
        }
        visits[s] += 1;
        counts[sa] += 1;
      }
      if (step + 1 < K) {
        const int64_t st = tStart[sa];
        s = aliasDraw(tE + st, tStart[sa + 1] - st, rng.nextDouble());
      }
    }
    if (kSvrpg) svrpgLanes(A, sc, *cx, 1, K, sc.disc.data());
    else addScores(A, sc, nv, G);
  }
}


/**
 * kSvrpg: the paths feed FedSVRPG-M's per-trajectory contribution (svrpgLanes, in trajectory
 * order) instead of Eq. 5's; the rows then carry log pi.
 */
template <bool kPrefetch, bool kSvrpg = false>
void lockstep(const Model& m, SamplerScratch& sc, const double* theta, const double* R, int64_t K, int64_t M,
              Xoshiro128& rng, int L, const SvrpgCtx* cx = nullptr) {
  const int A = m.A;
  const double gamma = m.gamma;
  const AliasTable& T = m.transitionAlias();
  const AliasTable& I = m.initialAlias();
  const int64_t* tStart = T.start.data();
  const AliasEntry* tE = T.entries.data();
  const AliasEntry* iE = I.entries.data();
  const int64_t iN = I.start[1];
  const uint64_t stamp = sc.stamp;
  const int64_t D = 2 * K;  // doubles per trajectory
  sc.disc.resize(size_t(K));
  sc.disc[0] = 1;
  for (int64_t t = 1; t < K; t++) sc.disc[t] = sc.disc[t - 1] * gamma;
  sc.draws.resize(size_t(L) * D);
  sc.trajS.resize(size_t(L) * K);
  sc.trajSa.resize(size_t(L) * K);
  sc.state.resize(size_t(L));
  sc.G.resize(size_t(L));
  sc.pending.resize(size_t(L));
  sc.pendingFrac.resize(size_t(L));
  const double* disc = sc.disc.data();
  double* draws = sc.draws.data();
  const double* cum = sc.cum.data();
  for (int64_t m0 = 0; m0 < M; m0 += L) {
    const int nl = int(std::min<int64_t>(L, M - m0));
    for (int l = 0; l < nl; l++)
      for (int64_t i = 0; i < D; i++) draws[l * D + i] = rng.nextDouble();
    for (int l = 0; l < nl; l++) {
      sc.state[l] = aliasDraw(iE, iN, draws[l * D]);
      sc.G[l] = 0;
    }
    // Each step runs in three passes over the lanes, each issuing the prefetches the next pass
    // needs, so every lane's misses overlap with the other lanes' work (group prefetching).
    for (int64_t t = 0; t < K; t++) {
      // 1: the state (its alias entry was prefetched one step ago), its policy row.
      for (int l = 0; l < nl; l++) {
        int s;
        if (t == 0) {
          s = sc.state[l];
        } else {
          const AliasEntry* e = sc.pending[l];
          s = select(sc.pendingFrac[l] < e->prob, e->hi, e->lo);
        }
        sc.state[l] = s;
        if (kPrefetch) {
          // Everything a new row reads and writes, for every lane before any lane forms its row,
          // so the lanes' misses (one row of each of up to six S*A arrays) overlap.
          __builtin_prefetch(&sc.piStamp[size_t(s)]);
          const int64_t base = int64_t(s) * A;
          __builtin_prefetch(cum + base);
          __builtin_prefetch(sc.pi.data() + base);
          if (sc.lzD) {
            __builtin_prefetch(sc.lzStart + base);
            __builtin_prefetch(sc.lzD + base);
            if (sc.lzC) __builtin_prefetch(sc.lzC + base);
            __builtin_prefetch(sc.acc.data() + base);
          }
        }
      }
      for (int l = 0; l < nl; l++) {
        const int s = sc.state[l];
        if (sc.piStamp[s] != stamp) policyRow<kSvrpg>(theta, A, s, sc);
        if (kPrefetch) {
          const double* c = cum + int64_t(s) * A;
          __builtin_prefetch(c + A - 1);
        }
      }
      // 2: the action; prefetch the transition row's start and the reward.
      for (int l = 0; l < nl; l++) {
        const int s = sc.state[l];
        const int64_t base = int64_t(s) * A;
        const int a = pickAction(cum + base, A, draws[l * D + 1 + 2 * t], sc.lastPositive[s]);
        const int64_t sa = base + a;
        sc.trajS[l * K + t] = s;
        sc.trajSa[l * K + t] = int32_t(sa);
        if (kPrefetch) {
          __builtin_prefetch(tStart + sa);
          __builtin_prefetch(R + sa);
        }
      }
      // 3: the return, and the next state's alias column (prefetched for pass 1 of the next step).
      for (int l = 0; l < nl; l++) {
        const int64_t sa = sc.trajSa[l * K + t];
        sc.G[l] += disc[t] * R[sa];
        if (t + 1 < K) {
          const int64_t st = tStart[sa];
          const int64_t n = tStart[sa + 1] - st;
          const double x = draws[l * D + 2 + 2 * t] * double(n);
          int64_t k = int64_t(x);
          if (k >= n) k = n - 1;
          const AliasEntry* e = tE + st + k;
          if (kPrefetch) __builtin_prefetch(e);
          sc.pending[l] = e;
          sc.pendingFrac[l] = x - double(k);
        }
      }
    }
    if (kSvrpg) svrpgLanes(A, sc, *cx, nl, K, disc);
    else
      for (int l = 0; l < nl; l++) contribute(A, sc, sc.trajS.data() + l * K, sc.trajSa.data() + l * K, K, sc.G[l]);
  }
}

/**
 * The regularised GPOMDP estimator (the draws of sequential(); reward-to-go accumulation as js).
 * With tau = 0 it is plain GPOMDP, not the Eq. 5 estimator.
 */
void regularized(const Model& m, SamplerScratch& sc, const double* theta, const double* R, double tau, int64_t K,
                 int64_t M, Xoshiro128& rng) {
  const int A = m.A;
  const double gamma = m.gamma;
  const AliasTable& T = m.transitionAlias();
  const AliasTable& I = m.initialAlias();
  const int64_t* tStart = T.start.data();
  const AliasEntry* tE = T.entries.data();
  const AliasEntry* iE = I.entries.data();
  const int64_t iN = I.start[1];
  const uint64_t stamp = sc.stamp;
  sc.trajS.resize(size_t(K));
  sc.trajSa.resize(size_t(K));
  sc.terms.resize(size_t(K));
  if (sc.logPi.size() != sc.pi.size()) sc.logPi.assign(sc.pi.size(), 0.0);
  const double* pi = sc.pi.data();
  const double* logPi = sc.logPi.data();
  const double* cum = sc.cum.data();
  double* acc = sc.acc.data();
  int32_t* states = sc.trajS.data();
  int32_t* actions = sc.trajSa.data();
  double* terms = sc.terms.data();
  for (int64_t mm = 0; mm < M; mm++) {
    int s = aliasDraw(iE, iN, rng.nextDouble());
    double disc = 1;
    for (int64_t step = 0; step < K; step++) {
      if (sc.piStamp[s] != stamp) policyRow<true>(theta, A, s, sc);
      const int64_t base = int64_t(s) * A;
      const int a = pickAction(cum + base, A, rng.nextDouble(), sc.lastPositive[s]);
      const int64_t sa = base + a;
      states[step] = s;
      actions[step] = a;
      terms[step] = disc * (R[sa] - tau * logPi[sa]);
      disc *= gamma;
      if (step + 1 < K) {
        const int64_t st = tStart[sa];
        s = aliasDraw(tE + st, tStart[sa + 1] - st, rng.nextDouble());
      }
    }
    double togo = 0;
    for (int64_t l = K - 1; l >= 0; l--) {
      togo += terms[l];
      const int64_t base = int64_t(states[l]) * A;
      const int al = actions[l];
      for (int b = 0; b < A; b++) acc[base + b] += togo * ((b == al ? 1.0 : 0.0) - pi[base + b]);
    }
  }
}

/** pi_thetaPrev(.|s) and its log (FedSVRPG-M's second policy), valid while sc.prevGen is. */
inline void prevRow(const double* thetaPrev, int A, int s, SamplerScratch& sc) {
  const int64_t base = int64_t(s) * A;
  softmaxRow<true>(thetaPrev + base, A, sc.piPrev.data() + base, sc.logPiPrev.data() + base);
  sc.prevStamp[s] = sc.prevGen;
}

/** What FedSVRPG-M's per-trajectory contribution needs besides the path. */
struct SvrpgCtx {
  const double* thetaPrev;
  const double* R;
  double clip, lo;  // lo = 1/clip
};

/**
 * The FedSVRPG-M contributions of nl recorded paths (lane l's K steps at trajS + l*K, as lockstep
 * leaves them; sequential passes nl = 1), in lane (= trajectory) order, operation for operation as
 * js Sampler.svrpgBatch: lw = sum_t (log pi_prev - log pi)(a_t|s_t) in step order (rows of
 * pi_thetaPrev formed here when missing), w = det::exp(lw) clipped when clip > 0; backward
 * togo += gamma^t r_t, C(s_t, a_t) += togo (in acc), W(s_t, a_t) += w*togo (in accPrev).
 * svrpgRow finishes the sums once per batch.
 */
void svrpgLanes(int A, SamplerScratch& sc, const SvrpgCtx& cx, int nl, int64_t K, const double* disc) {
  const uint64_t prevGen = sc.prevGen;
  const double* logPi = sc.logPi.data();
  const double* logPiPrev = sc.logPiPrev.data();
  double* acc = sc.acc.data();
  double* accPrev = sc.accPrev.data();
  for (int l = 0; l < nl; l++) {
    const int32_t* ts = sc.trajS.data() + l * K;
    const int32_t* tsa = sc.trajSa.data() + l * K;
    double lw = 0;
    for (int64_t t = 0; t < K; t++) {
      const int s = ts[t];
      if (sc.prevStamp[s] != prevGen) prevRow(cx.thetaPrev, A, s, sc);
      lw += logPiPrev[tsa[t]] - logPi[tsa[t]];
    }
    double w = det::exp(lw);
    if (cx.clip > 0) w = w > cx.clip ? cx.clip : w < cx.lo ? cx.lo : w;
    double togo = 0;
    for (int64_t t = K - 1; t >= 0; t--) {
      const int32_t sa = tsa[t];
      togo += disc[t] * cx.R[sa];
      acc[sa] += togo;
      accPrev[sa] += w * togo;
    }
  }
}

/** Ends a lazy round's form when it goes out of scope (also on a throw): later calls read theta. */
struct LazyReset {
  SamplerScratch& sc;
  ~LazyReset() {
    sc.lzD = nullptr;
    sc.lzStart = nullptr;
    sc.lzC = nullptr;
    sc.lzCenter = nullptr;
  }
};

/**
 * Finishes row s of a FedSVRPG-M batch's sums (js Sampler.svrpgRow), in action order: T = sum_b C(b),
 * V = sum_b W(b); cur(b) = C(b) - T*pi(b), prev(b) = W(b) - V*pi_prev(b).
 */
inline void svrpgRow(const SamplerScratch& sc, int A, int64_t base, double* cur, double* prev) {
  const double* C = sc.acc.data() + base;
  const double* W = sc.accPrev.data() + base;
  const double* pi = sc.pi.data() + base;
  const double* piPrev = sc.piPrev.data() + base;
  double T = 0, V = 0;
  for (int b = 0; b < A; b++) {
    T += C[b];
    V += W[b];
  }
  for (int b = 0; b < A; b++) {
    cur[b] = C[b] - T * pi[b];
    prev[b] = W[b] - V * piPrev[b];
  }
}

/** FedSVRPG-M's scratch (rows of pi_thetaPrev and their logs, the weighted sum W), sized on first use. */
void prepareSvrpg(const Model& m, SamplerScratch& sc) {
  prepareScratch(m, sc);
  const size_t SA = sc.acc.size();
  if (sc.logPi.size() != SA) sc.logPi.assign(SA, 0.0);
  if (sc.piPrev.size() != SA) {
    sc.piPrev.assign(SA, 0.0);
    sc.logPiPrev.assign(SA, 0.0);
    sc.accPrev.assign(SA, 0.0);
    sc.prevStamp.assign(size_t(m.S), 0);
  }
}

/**
 * One FedSVRPG-M batch of M trajectories under theta (the lazy theta while sc.lzD is set): the
 * estimator's lanes draw the paths, svrpgLanes adds them to acc and accPrev (which the caller zeroed
 * on the rows this batch can form). Rows of pi_thetaPrev are current while sc.prevGen is.
 */
void svrpgBatch(const Model& m, SamplerScratch& sc, const double* theta, const SvrpgCtx& cx, int64_t K, int64_t M,
                uint32_t* rngState) {
  sc.disc.resize(size_t(K));
  sc.disc[0] = 1;
  for (int64_t t = 1; t < K; t++) sc.disc[t] = sc.disc[t - 1] * m.gamma;  // gamma^t as js's disc *= gamma
  Xoshiro128 rng(rngState);
  const int L = int(std::min<int64_t>(m.lanesFor(K), M));
  if (L > 1 && m.bigTables()) lockstep<true, true>(m, sc, theta, cx.R, K, M, rng, L, &cx);
  else if (L > 1) lockstep<false, true>(m, sc, theta, cx.R, K, M, rng, L, &cx);
  else {
    sc.trajS.resize(size_t(K));
    sc.trajSa.resize(size_t(K));
    sequential<true>(m, sc, theta, cx.R, K, M, rng, &cx);
  }
  rng.store(rngState);
}

/** estimateSvrpg without argument checks: both means into outCur and outPrev (new rows of pi_thetaPrev). */
void svrpgUnchecked(const Model& m, SamplerScratch& sc, const double* theta, const double* thetaPrev, const double* R,
                    int64_t K, int64_t M, double clip, uint32_t* rngState, double* outCur, double* outPrev) {
  m.transitionAlias();
  prepareSvrpg(m, sc);
  ++sc.prevGen;
  ++sc.stamp;
  sc.acc.zero();
  std::fill(sc.accPrev.begin(), sc.accPrev.end(), 0.0);
  svrpgBatch(m, sc, theta, SvrpgCtx{thetaPrev, R, clip, clip > 0 ? 1 / clip : 0}, K, M, rngState);
  // The rows this batch formed (the visited states), finished; every other row is 0 (as js).
  const int A = m.A;
  const double invM = 1 / double(M);
  sc.svRow.assign(2 * size_t(A), 0.0);
  double* cur = sc.svRow.data();
  double* prev = cur + A;
  for (int s = 0; s < m.S; s++) {
    const size_t base = size_t(s) * size_t(A);
    if (sc.piStamp[s] == sc.stamp) svrpgRow(sc, A, int64_t(base), cur, prev);
    else std::fill(cur, cur + 2 * A, 0.0);
    for (int b = 0; b < A; b++) {
      outCur[base + b] = cur[b] * invM;
      outPrev[base + b] = prev[b] * invM;
    }
  }
}

/**
 * FedSVRPG-M's local round in the lazy form, operation for operation as js Sampler.localRoundSvrpg:
 * omb = 1 - beta, c = omb*u once per call; row_l = (start + (l*eta)*c) + D formed per visited
 * state; then on the formed rows D = D + eta*(cur*invM - omb*(prev*invM)) (invM = 1/M, svrpgRow's sums);
 * theta = (start + (H*eta)*c) + D
 * densely at the end. A step costs O(K M + A * visited states), not O(S A).
 */
void svrpgLazyRound(const Model& m, SamplerScratch& sc, double* th, const SvrpgArgs& sv, const double* R, double eta,
                    int64_t steps, int64_t K, int64_t M, uint32_t* rngState) {
  m.transitionAlias();  // builds the tables (or throws) before anything is touched
  prepareSvrpg(m, sc);
  const int A = m.A;
  const size_t SA = size_t(m.SA());
  const double omb = 1 - sv.beta;
  sc.svrpgC.resize(SA);
  double* c = sc.svrpgC.data();
  for (size_t j = 0; j < SA; j++) c[j] = omb * sv.u.p[j];
  double* D = sc.lazyD.data();
  double* accPrev = sc.accPrev.data();
  std::fill(sc.accPrev.begin(), sc.accPrev.end(), 0.0);  // zero again on the formed rows after each step
  sc.svRow.resize(2 * size_t(A));
  double* cur = sc.svRow.data();
  double* prev = cur + A;
  ++sc.prevGen;
  sc.lzStart = th;
  sc.lzC = c;
  sc.lzD = D;
  // Plain estimates after this call (or after a throw) must read theta again, not the lazy form.
  const LazyReset reset{sc};
  const SvrpgCtx cx{sv.thetaPrev.p, R, sv.clip, sv.clip > 0 ? 1 / sv.clip : 0};
  const double invM = 1 / double(M);
  for (int64_t l = 0; l < steps; l++) {
    sc.lzLc = double(l) * eta;
    ++sc.stamp;
    sc.nFormed = 0;
    svrpgBatch(m, sc, th, cx, K, M, rngState);
    for (int64_t k = 0; k < sc.nFormed; k++) {
      const int64_t base = int64_t(sc.formed[size_t(k)]) * A;
      svrpgRow(sc, A, base, cur, prev);
      for (int b = 0; b < A; b++) {
        D[base + b] = D[base + b] + eta * (cur[b] * invM - omb * (prev[b] * invM));
        accPrev[base + b] = 0;
      }
    }
  }
  // theta_H, densely, once; D is left all zero for the next round.
  const double hc = double(steps) * eta;
  for (size_t j = 0; j < SA; j++) {
    th[j] = th[j] + hc * c[j] + D[j];
    D[j] = 0;
  }
}

/** The estimator without argument checks (localRound checks once, then calls this H times). */
void estimateUnchecked(const Model& m, SamplerScratch& sc, const double* theta, const double* R, int64_t K, int64_t M,
                       uint32_t* rngState, double* out, bool gpomdp = false, double tau = 0) {
  m.transitionAlias();  // builds the tables (or throws) before anything is touched
  prepareScratch(m, sc);
  ++sc.stamp;
  sc.acc.zero();
  Xoshiro128 rng(rngState);
  const int L = int(std::min<int64_t>(m.lanesFor(K), M));
  if (gpomdp) regularized(m, sc, theta, R, tau, K, M, rng);
  else if (L > 1 && m.bigTables()) lockstep<true>(m, sc, theta, R, K, M, rng, L);
  else if (L > 1) lockstep<false>(m, sc, theta, R, K, M, rng, L);
  else sequential(m, sc, theta, R, K, M, rng);
  rng.store(rngState);
  const size_t SA = sc.acc.size();
  for (size_t j = 0; j < SA; j++) out[j] = sc.acc[j] / double(M);
}

/**
 * Eq. 5's steps of a sampled local round in the lazy form, operation for operation as js
 * Sampler.localRoundLazy: row_l = (start + (l*eta)*c) + D formed per visited state, then
 * D += eta*(acc/M) on the formed rows, and theta = row_H densely at the end. A step costs
 * O(K M + A * visited states), not O(S A).
 */
void lazyRound(const Model& m, SamplerScratch& sc, double* th, const double* R, const double* c, double eta,
               int64_t steps, int64_t K, int64_t M, uint32_t* rngState, const PullArgs* pull) {
  m.transitionAlias();  // builds the tables (or throws) before anything is touched
  prepareScratch(m, sc);
  const int A = m.A;
  const size_t SA = size_t(m.SA());
  double* D = sc.lazyD.data();
  const double* acc = sc.acc.data();
  const int L = int(std::min<int64_t>(m.lanesFor(K), M));
  sc.lzStart = th;
  sc.lzC = c;
  sc.lzD = D;
  double q = 1;
  if (pull) {
    // The pulled form (js Sampler.pullRound): q = 1 - eta*weight; qp, gs by their recurrences.
    q = 1 - eta * pull->weight;
    sc.qp.assign(size_t(steps) + 1, 0.0);
    sc.gs.assign(size_t(steps) + 1, 0.0);
    sc.qp[0] = 1;
    for (int64_t n = 1; n <= steps; n++) {
      sc.qp[size_t(n)] = sc.qp[size_t(n) - 1] * q;
      sc.gs[size_t(n)] = sc.gs[size_t(n) - 1] * q + 1;
    }
    sc.lzCenter = pull->center.p;
    sc.lzQp = sc.qp.data();
    sc.lzGs = sc.gs.data();
    sc.lzEta = eta;
  }
  // Plain estimates after this call (or after a throw) must read theta again, not the lazy form.
  const LazyReset reset{sc};
  for (int64_t l = 0; l < steps; l++) {
    sc.lzLc = double(l) * eta;
    sc.lzStep = l;
    ++sc.stamp;
    sc.nFormed = 0;
    Xoshiro128 rng(rngState);
    if (L > 1 && m.bigTables()) lockstep<true>(m, sc, th, R, K, M, rng, L);
    else if (L > 1) lockstep<false>(m, sc, th, R, K, M, rng, L);
    else sequential(m, sc, th, R, K, M, rng);
    rng.store(rngState);
    for (int64_t k = 0; k < sc.nFormed; k++) {
      const int s = sc.formed[size_t(k)];
      const int64_t base = int64_t(s) * A;
      if (!pull) {
        for (int b = 0; b < A; b++) D[base + b] = D[base + b] + eta * (acc[base + b] / double(M));
      } else if (c) {
        for (int b = 0; b < A; b++) D[base + b] = q * D[base + b] + eta * (acc[base + b] / double(M) + c[base + b]);
        sc.pullT[size_t(s)] = l + 1;
      } else {
        for (int b = 0; b < A; b++) D[base + b] = q * D[base + b] + eta * (acc[base + b] / double(M));
        sc.pullT[size_t(s)] = l + 1;
      }
    }
  }
  if (pull) {
    // theta_H = center + x, every row brought to step H; D and the steps reset for the next round.
    const double* ce = pull->center.p;
    for (int s = 0; s < m.S; s++) {
      const int64_t base = int64_t(s) * A;
      pullRow(sc, A, s, steps);
      for (int b = 0; b < A; b++) {
        th[base + b] = ce[base + b] + D[base + b];
        D[base + b] = 0;
      }
      sc.pullT[size_t(s)] = -1;
    }
    return;
  }
  // theta_H, densely, once; D is left all zero for the next round.
  const double hc = double(steps) * eta;
  if (c) {
    for (size_t j = 0; j < SA; j++) {
      th[j] = th[j] + hc * c[j] + D[j];
      D[j] = 0;
    }
  } else {
    for (size_t j = 0; j < SA; j++) {
      th[j] = th[j] + D[j];
      D[j] = 0;
    }
  }
}

}  // namespace

void estimateGradient(const Model& m, Workspace& w, In theta, In reward, int64_t horizon, int64_t batch,
                      Span<uint32_t> rng, Out out) {
  checkThetaValues(m, theta);
  const size_t SA = size_t(m.SA());
  checkLen("reward", reward.n, SA);
  checkLen("gradient output", out.n, SA);
  checkCount("horizon", horizon);
  checkCount("batch", batch);
  checkLen("rng", rng.n, 4);
  estimateUnchecked(m, w.s, theta.p, reward.p, horizon, batch, rng.p, out.p);
}

void estimateRegularized(const Model& m, Workspace& w, In theta, In reward, double tau, int64_t horizon,
                         int64_t batch, Span<uint32_t> rng, Out out) {
  checkThetaValues(m, theta);
  const size_t SA = size_t(m.SA());
  checkLen("reward", reward.n, SA);
  checkLen("gradient output", out.n, SA);
  checkEntropy(tau);
  checkCount("horizon", horizon);
  checkCount("batch", batch);
  checkLen("rng", rng.n, 4);
  estimateUnchecked(m, w.s, theta.p, reward.p, horizon, batch, rng.p, out.p, true, tau);
}

void checkClip(double clip) {
  if (!(clip == 0 || (std::isfinite(clip) && clip >= 1)))
    throw ArgumentError("clip must be 0 (no clipping) or a finite number >= 1, got " + str(clip));
}

void estimateSvrpg(const Model& m, Workspace& w, In theta, In thetaPrev, In reward, int64_t horizon, int64_t batch,
                   double clip, Span<uint32_t> rng, Out outCur, Out outPrev) {
  checkThetaValues(m, theta);
  const size_t SA = size_t(m.SA());
  checkLen("thetaPrev", thetaPrev.n, SA);
  for (size_t j = 0; j < SA; j++)
    if (!std::isfinite(thetaPrev.p[j])) throw ArgumentError("thetaPrev holds a non-finite entry, got " + str(thetaPrev.p[j]));
  checkLen("reward", reward.n, SA);
  checkLen("gradient output", outCur.n, SA);
  checkLen("gradient output (weighted)", outPrev.n, SA);
  checkClip(clip);
  checkCount("horizon", horizon);
  checkCount("batch", batch);
  checkLen("rng", rng.n, 4);
  svrpgUnchecked(m, w.s, theta.p, thetaPrev.p, reward.p, horizon, batch, clip, rng.p, outCur.p, outPrev.p);
}

void localRound(const Model& m, Workspace& w, Out theta, In reward, In correction, double eta, int64_t steps,
                bool sampled, int64_t horizon, int64_t batch, Span<uint32_t> rng, double tau, const SvrpgArgs* svrpg,
                const PullArgs* pull) {
  checkEntropy(tau);
  checkThetaValues(m, In(theta.p, theta.n));
  const size_t SA = size_t(m.SA());
  checkLen("reward", reward.n, SA);
  if (correction.p) checkLen("correction", correction.n, SA);
  if (!std::isfinite(eta)) throw ArgumentError("eta must be finite, got " + str(eta));
  if (steps < 0) throw ArgumentError("steps must be a non-negative integer, got " + std::to_string(steps));
  if (sampled) {
    checkCount("horizon", horizon);
    checkCount("batch", batch);
    checkLen("rng", rng.n, 4);
  }
  w.oneGrad.resize(SA);
  double* g = w.oneGrad.data();
  double* th = theta.p;
  const double* c = correction.p;
  if (svrpg) {
    if (pull) throw ArgumentError("pull cannot be combined with svrpg");
    if (!sampled) throw ArgumentError("svrpg is sampled only");
    if (c) throw ArgumentError("svrpg cannot be combined with a correction");
    if (tau != 0) throw ArgumentError("svrpg cannot be combined with entropy, got " + str(tau));
    checkLen("svrpg.thetaPrev", svrpg->thetaPrev.n, SA);
    checkLen("svrpg.u", svrpg->u.n, SA);
    for (size_t j = 0; j < SA; j++)
      if (!std::isfinite(svrpg->thetaPrev.p[j]))
        throw ArgumentError("svrpg.thetaPrev holds a non-finite entry, got " + str(svrpg->thetaPrev.p[j]));
    if (!std::isfinite(svrpg->beta)) throw ArgumentError("svrpg.beta must be finite, got " + str(svrpg->beta));
    checkClip(svrpg->clip);
    svrpgLazyRound(m, w.s, th, *svrpg, reward.p, eta, steps, horizon, batch, rng.p);
    return;
  }
  if (pull) {
    if (!sampled) throw ArgumentError("pull is sampled only");
    if (tau != 0) throw ArgumentError("pull cannot be combined with entropy, got " + str(tau));
    if (!std::isfinite(pull->weight)) throw ArgumentError("pull.weight must be finite, got " + str(pull->weight));
    checkLen("pull.center", pull->center.n, SA);
    for (size_t j = 0; j < SA; j++)
      if (!std::isfinite(pull->center.p[j]))
        throw ArgumentError("pull.center[" + std::to_string(j) + "] must be finite, got " + str(pull->center.p[j]));
  }
  if (sampled && tau == 0) {
    lazyRound(m, w.s, th, reward.p, c, eta, steps, horizon, batch, rng.p, pull);
    return;
  }
  if (!sampled) {
    exactRound(m, w, th, reward, c, eta, steps, tau);
    return;
  }
  for (int64_t h = 0; h < steps; h++) {
    estimateUnchecked(m, w.s, th, reward.p, horizon, batch, rng.p, g, tau > 0, tau);
    if (c)
      for (size_t j = 0; j < SA; j++) th[j] = th[j] + eta * (g[j] + c[j]);
    else
      for (size_t j = 0; j < SA; j++) th[j] = th[j] + eta * g[j];
  }
}

}  // namespace fedpg
