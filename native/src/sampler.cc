// The Eq. 5 estimator, consuming the random stream exactly as src/backends/js/sampler.ts: per
// trajectory one double for s_0, then per step one for the action and, except after the last
// step, one for the next state (4K uint32 outputs per trajectory). Scores are kept as visit
// counts, g[s, a] += G (c(s, a) - n(s) pi(a|s)) per trajectory in trajectory order, then / M.
//
// Two loops produce the same bits. The sequential one follows the js code step by step (M = 1,
// or very long horizons). The lockstep one pre-draws each lane's 2K doubles sequentially from the
// stream (so the stream is consumed in the same order), advances L trajectories one step at a time
// (8 lanes: their dependency chains overlap; with tables larger than the caches, 16 lanes that
// prefetch each new state's lines and next alias column, so their cache and TLB misses overlap
// too), and then adds the trajectories' contributions in trajectory order. What a step touches per
// state lives in one record (staterecords.h), so a new state costs few lines. The action draw and
// the alias choice are branch-free: their outcomes are random, and a mispredicted branch per step
// cost a third of the step.
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
/** A state's alias rows are prefetched whole up to this many entries (8 cache lines). */
constexpr int64_t kAliasPrefetchEntries = 32;

void checkCount(const char* what, int64_t v) {
  if (v < 1 || v > kMaxCount) throw ArgumentError(std::string(what) + " must be an integer in [1, 2^31-1], got " + std::to_string(v));
}

void prepareScratch(const Model& m, SamplerScratch& sc) {
  if (!sc.rec.fits(m.S, m.A)) {
    const size_t S = size_t(m.S);
    sc.rec.reset(m.S, m.A);
    sc.visited.assign(S, 0);
    sc.stamp = 0;
    sc.trajStamp = 0;
    sc.formed.assign(S, 0);
    sc.lzRow.assign(size_t(m.A), 0.0);
    sc.lazyD.reset(size_t(m.SA()));
    sc.pullT.assign(S, -1);
  }
}

/** A new stamp for the rows of one estimate or step (the records' stamps are cleared before it wraps). */
uint32_t nextStamp(SamplerScratch& sc) {
  if (sc.stamp == UINT32_MAX) {
    sc.rec.clearPiStamps();
    sc.stamp = 0;
  }
  return ++sc.stamp;
}

/** A new trajectory number for the visit counts (likewise). */
uint32_t nextTrajectory(SamplerScratch& sc) {
  if (sc.trajStamp == UINT32_MAX) {
    sc.rec.clearVisitStamps();
    sc.trajStamp = 0;
  }
  return ++sc.trajStamp;
}

/**
 * The estimate acc / M into out [S*A]: the rows this call formed (the only acc rows it wrote, each
 * zeroed when formed) and 0 elsewhere, as a dense zeroed acc would give (0 / M = +0). The records
 * of states the call never visited are not read: at 10^6 states a pass over them would cost more
 * than the sampling.
 */
void accMean(SamplerScratch& sc, int A, int64_t M, double* out, size_t SA) {
  std::fill(out, out + SA, 0.0);
  for (int64_t k = 0; k < sc.nFormed; k++) {
    const int s = sc.formed[size_t(k)];
    const double* acc = sc.rec.acc(s);
    for (int b = 0; b < A; b++) out[int64_t(s) * A + b] = acc[b] / double(M);
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
  double* pi = sc.rec.pi(s);
  double* cum = sc.rec.cum(s);
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
  } else {
    softmaxRow<kLog>(theta + base, A, pi, kLog ? sc.logPi.data() + base : nullptr);
  }
  std::fill(sc.rec.acc(s), sc.rec.acc(s) + A, 0.0);
  sc.formed[size_t(sc.nFormed++)] = s;
  double c = 0;
  int last = 0;
  for (int a = 0; a < A; a++) {
    const double p = pi[a];
    c += p;
    cum[a] = c;
    if (p > 0) last = a;
  }
  StateRecords::Header& h = sc.rec.head(s);
  h.lastPositive = last;
  h.piStamp = sc.stamp;
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
  for (int v = 0; v < nv; v++) {
    const int s = sc.visited[v];
    const double* pi = sc.rec.pi(s);
    const int32_t* counts = sc.rec.counts(s);
    double* acc = sc.rec.acc(s);
    const double n = double(sc.rec.head(s).visits);
    for (int b = 0; b < A; b++) acc[b] += G * (double(counts[b]) - n * pi[b]);
  }
}

/** Counts one visit of (s, a) in the trajectory numbered traj (a state's first visit resets its counts). */
inline void countVisit(int A, SamplerScratch& sc, uint32_t traj, int& nv, int s, int a) {
  StateRecords::Header& h = sc.rec.head(s);
  int32_t* counts = sc.rec.counts(s);
  if (h.visitStamp != traj) {
    h.visitStamp = traj;
    sc.visited[nv++] = s;
    h.visits = 0;
    std::fill(counts, counts + A, 0);
  }
  h.visits += 1;
  counts[a] += 1;
}

/** Adds one trajectory's G (c(s,.) - n(s) pi(.|s)) to acc, as the js end-of-trajectory loop. */
void contribute(int A, SamplerScratch& sc, const int32_t* ts, const int32_t* tsa, int64_t K, double G) {
  const uint32_t traj = nextTrajectory(sc);
  int nv = 0;
  for (int64_t t = 0; t < K; t++) countVisit(A, sc, traj, nv, ts[t], int(tsa[t] - int64_t(ts[t]) * A));
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
  const uint32_t stamp = sc.stamp;
  int32_t* path = kSvrpg ? sc.trajS.data() : nullptr;
  int32_t* pathSa = kSvrpg ? sc.trajSa.data() : nullptr;
  for (int64_t mm = 0; mm < M; mm++) {
    const uint32_t traj = kSvrpg ? 0 : nextTrajectory(sc);
    int nv = 0;
    double G = 0;
    double disc = 1;
    int s = aliasDraw(iE, iN, rng.nextDouble());
    for (int64_t step = 0; step < K; step++) {
      if (sc.rec.head(s).piStamp != stamp) policyRow<kSvrpg>(theta, A, s, sc);
      const int a = pickAction(sc.rec.cum(s), A, rng.nextDouble(), sc.rec.head(s).lastPositive);
      const int64_t sa = int64_t(s) * A + a;
      if (kSvrpg) {
        path[step] = s;
        pathSa[step] = int32_t(sa);
      } else {
        G += disc * R[sa];
        disc *= gamma;
        countVisit(A, sc, traj, nv, s, a);
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
  const uint32_t stamp = sc.stamp;
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
          // Everything the state's step reads and writes, for every lane before any lane forms its
          // row, so the lanes' misses overlap: its record, its theta rows, and (before the action is
          // drawn, so that miss does not wait for the row) the starts of its alias rows and its rewards.
          sc.rec.prefetch(s);
          const int64_t base = int64_t(s) * A;
          // (the caller's rows need not be aligned: a row may span two lines)
          __builtin_prefetch(theta + base);
          __builtin_prefetch(theta + base + A - 1);
          if (sc.lzD) {
            __builtin_prefetch(sc.lzD + base, 1);
            __builtin_prefetch(sc.lzD + base + A - 1, 1);
            if (sc.lzC) {
              __builtin_prefetch(sc.lzC + base);
              __builtin_prefetch(sc.lzC + base + A - 1);
            }
          }
          if (sc.lzCenter) {
            __builtin_prefetch(sc.lzCenter + base);
            __builtin_prefetch(sc.lzCenter + base + A - 1);
          }
          __builtin_prefetch(tStart + base);
          __builtin_prefetch(tStart + base + A);
          __builtin_prefetch(R + base);
          __builtin_prefetch(R + base + A - 1);
        }
      }
      for (int l = 0; l < nl; l++) {
        const int s = sc.state[l];
        if (sc.rec.head(s).piStamp != stamp) policyRow<kSvrpg>(theta, A, s, sc);
        if (kPrefetch) {
          // The state's alias rows (its row starts were prefetched above and have had the other
          // lanes' work to arrive): the next state's column is one of their lines, and its miss
          // now overlaps this step's remaining passes instead of opening the next step. Only when
          // they are short (sparse kernels such as gridworlds): a dense kernel's rows span
          // thousands of lines, of which the draw reads one.
          const int64_t base = int64_t(s) * A;
          const AliasEntry* first = tE + tStart[base];
          const AliasEntry* end = tE + tStart[base + A];
          if (end - first <= kAliasPrefetchEntries) {
            for (const AliasEntry* p = first; p < end; p += 64 / sizeof(AliasEntry)) __builtin_prefetch(p);
            __builtin_prefetch(end - 1);
          }
        }
      }
      // 2: the action.
      for (int l = 0; l < nl; l++) {
        const int s = sc.state[l];
        const int a = pickAction(sc.rec.cum(s), A, draws[l * D + 1 + 2 * t], sc.rec.head(s).lastPositive);
        sc.trajS[l * K + t] = s;
        sc.trajSa[l * K + t] = int32_t(int64_t(s) * A + a);
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
  const uint32_t stamp = sc.stamp;
  sc.trajS.resize(size_t(K));
  sc.trajSa.resize(size_t(K));
  sc.terms.resize(size_t(K));
  if (sc.logPi.size() != size_t(m.SA())) sc.logPi.assign(size_t(m.SA()), 0.0);
  const double* logPi = sc.logPi.data();
  int32_t* states = sc.trajS.data();
  int32_t* actions = sc.trajSa.data();
  double* terms = sc.terms.data();
  for (int64_t mm = 0; mm < M; mm++) {
    int s = aliasDraw(iE, iN, rng.nextDouble());
    double disc = 1;
    for (int64_t step = 0; step < K; step++) {
      if (sc.rec.head(s).piStamp != stamp) policyRow<true>(theta, A, s, sc);
      const int a = pickAction(sc.rec.cum(s), A, rng.nextDouble(), sc.rec.head(s).lastPositive);
      const int64_t sa = int64_t(s) * A + a;
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
      const double* pi = sc.rec.pi(states[l]);
      double* acc = sc.rec.acc(states[l]);
      const int al = actions[l];
      for (int b = 0; b < A; b++) acc[b] += togo * ((b == al ? 1.0 : 0.0) - pi[b]);
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
      sc.rec.acc(ts[t])[sa - int64_t(ts[t]) * A] += togo;
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
inline void svrpgRow(SamplerScratch& sc, int A, int s, double* cur, double* prev) {
  const int64_t base = int64_t(s) * A;
  const double* C = sc.rec.acc(s);
  const double* W = sc.accPrev.data() + base;
  const double* pi = sc.rec.pi(s);
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
  const size_t SA = size_t(m.SA());
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
  nextStamp(sc);
  sc.nFormed = 0;  // the rows it forms get a zeroed acc (policyRow)
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
    if (sc.rec.head(s).piStamp == sc.stamp) svrpgRow(sc, A, s, cur, prev);
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
bool svrpgLazyRound(const Model& m, SamplerScratch& sc, double* th, const SvrpgArgs& sv, const double* R, double eta,
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
    nextStamp(sc);
    sc.nFormed = 0;
    svrpgBatch(m, sc, th, cx, K, M, rngState);
    for (int64_t k = 0; k < sc.nFormed; k++) {
      const int s = sc.formed[size_t(k)];
      const int64_t base = int64_t(s) * A;
      svrpgRow(sc, A, s, cur, prev);
      for (int b = 0; b < A; b++) {
        D[base + b] = D[base + b] + eta * (cur[b] * invM - omb * (prev[b] * invM));
        accPrev[base + b] = 0;
      }
    }
  }
  // theta_H, densely, once (checked in the same pass: nonFiniteBits); D is left all zero for the next round.
  const double hc = double(steps) * eta;
  uint64_t bits = 0;
  for (size_t j = 0; j < SA; j++) {
    const double x = th[j] + hc * c[j] + D[j];
    th[j] = x;
    D[j] = 0;
    bits |= nonFiniteBits(x);
  }
  return bits == 0;
}

/** The estimator without argument checks (localRound checks once, then calls this H times). */
void estimateUnchecked(const Model& m, SamplerScratch& sc, const double* theta, const double* R, int64_t K, int64_t M,
                       uint32_t* rngState, double* out, bool gpomdp = false, double tau = 0) {
  m.transitionAlias();  // builds the tables (or throws) before anything is touched
  prepareScratch(m, sc);
  nextStamp(sc);
  sc.nFormed = 0;
  Xoshiro128 rng(rngState);
  const int L = int(std::min<int64_t>(m.lanesFor(K), M));
  if (gpomdp) regularized(m, sc, theta, R, tau, K, M, rng);
  else if (L > 1 && m.bigTables()) lockstep<true>(m, sc, theta, R, K, M, rng, L);
  else if (L > 1) lockstep<false>(m, sc, theta, R, K, M, rng, L);
  else sequential(m, sc, theta, R, K, M, rng);
  rng.store(rngState);
  accMean(sc, m.A, M, out, size_t(m.SA()));
}

/**
 * Eq. 5's steps of a sampled local round in the lazy form, operation for operation as js
 * Sampler.localRoundLazy: row_l = (start + (l*eta)*c) + D formed per visited state, then
 * D += eta*(acc/M) on the formed rows, and theta = row_H densely at the end. A step costs
 * O(K M + A * visited states), not O(S A).
 */
bool lazyRound(const Model& m, SamplerScratch& sc, double* th, const double* R, const double* c, double eta,
               int64_t steps, int64_t K, int64_t M, uint32_t* rngState, const PullArgs* pull) {
  m.transitionAlias();  // builds the tables (or throws) before anything is touched
  prepareScratch(m, sc);
  const int A = m.A;
  const size_t SA = size_t(m.SA());
  double* D = sc.lazyD.data();
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
    nextStamp(sc);
    sc.nFormed = 0;
    Xoshiro128 rng(rngState);
    if (L > 1 && m.bigTables()) lockstep<true>(m, sc, th, R, K, M, rng, L);
    else if (L > 1) lockstep<false>(m, sc, th, R, K, M, rng, L);
    else sequential(m, sc, th, R, K, M, rng);
    rng.store(rngState);
    for (int64_t k = 0; k < sc.nFormed; k++) {
      const int s = sc.formed[size_t(k)];
      const int64_t base = int64_t(s) * A;
      const double* acc = sc.rec.acc(s);
      if (!pull) {
        for (int b = 0; b < A; b++) D[base + b] = D[base + b] + eta * (acc[b] / double(M));
      } else if (c) {
        for (int b = 0; b < A; b++) D[base + b] = q * D[base + b] + eta * (acc[b] / double(M) + c[base + b]);
        sc.pullT[size_t(s)] = l + 1;
      } else {
        for (int b = 0; b < A; b++) D[base + b] = q * D[base + b] + eta * (acc[b] / double(M));
        sc.pullT[size_t(s)] = l + 1;
      }
    }
  }
  if (pull) {
    // theta_H = center + x, every row brought to step H; D and the steps reset for the next round.
    const double* ce = pull->center.p;
    uint64_t bits = 0;
    for (int s = 0; s < m.S; s++) {
      const int64_t base = int64_t(s) * A;
      pullRow(sc, A, s, steps);
      for (int b = 0; b < A; b++) {
        const double x = ce[base + b] + D[base + b];
        th[base + b] = x;
        D[base + b] = 0;
        bits |= nonFiniteBits(x);
      }
      sc.pullT[size_t(s)] = -1;
    }
    return bits == 0;
  }
  // theta_H, densely, once (checked in the same pass); D is left all zero for the next round.
  const double hc = double(steps) * eta;
  uint64_t bits = 0;
  if (c) {
    for (size_t j = 0; j < SA; j++) {
      const double x = th[j] + hc * c[j] + D[j];
      th[j] = x;
      D[j] = 0;
      bits |= nonFiniteBits(x);
    }
  } else {
    for (size_t j = 0; j < SA; j++) {
      const double x = th[j] + D[j];
      th[j] = x;
      D[j] = 0;
      bits |= nonFiniteBits(x);
    }
  }
  return bits == 0;
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
    if (!svrpgLazyRound(m, w.s, th, *svrpg, reward.p, eta, steps, horizon, batch, rng.p))
      checkRoundTheta(m, th, 0, steps, reward.p, nullptr, svrpg->u.p);
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
    if (!lazyRound(m, w.s, th, reward.p, c, eta, steps, horizon, batch, rng.p, pull)) checkRoundTheta(m, th, 0, steps, reward.p, c);
    return;
  }
  if (!sampled) {
    exactRound(m, w, th, reward, c, eta, steps, tau);
    return;
  }
  // Checked as the lazy rounds are, once for the round (a non-finite entry stays non-finite), with
  // the bits OR-ed in the update passes instead of a separate scan.
  uint64_t bits = 0;
  for (int64_t h = 0; h < steps; h++) {
    estimateUnchecked(m, w.s, th, reward.p, horizon, batch, rng.p, g, tau > 0, tau);
    bits |= ascentStep(th, g, c, eta, SA);
  }
  if (bits) checkRoundTheta(m, th, 0, steps, reward.p, c);
}

}  // namespace fedpg
