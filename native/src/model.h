// The environment shared by the agents that use it: S, A, gamma, rho and the transition kernel,
// copied into native memory once and immutable afterwards, so sync calls on the JS thread and
// async jobs on the libuv pool can read it at the same time. The alias tables are built on the
// first sampled call (exact-only runs never pay for them), once, under a per-model mutex.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "common.h"

namespace fedpg {

/** Past this many states the exact solves switch from a dense LU to sparse iterations (as js). */
constexpr int kDenseLimit = 2048;
/** Largest S*A (indices are int32, as in the js backend's typed arrays). */
constexpr int64_t kMaxStateActions = 0x7fffffff;

/** One column of a Vose alias table: take `hi` when the fractional part is below `prob`, else `lo`. */
struct AliasEntry {
  double prob;
  int32_t hi;
  int32_t lo;
};

/** Alias tables of `rows` distributions; row r occupies entries [start[r], start[r+1]). */
struct AliasTable {
  Buffer<int64_t> start;  // a Buffer: read at random once per step (huge pages when large)
  Buffer<AliasEntry> entries;
};

struct ModelOptions {
  Simd simd = Simd::Generic;
  /** Trajectories sampled in lockstep; 0 picks by the size of the alias tables. */
  int lanes = 0;
};

class Model {
 public:
  /** Dense kernel p [S*A*S]. Throws ArgumentError on bad sizes or values. */
  static std::shared_ptr<Model> dense(int64_t S, int64_t A, double gamma, const double* initial, size_t initialLen,
                                      const double* p, size_t pLen, const ModelOptions& opt);
  /** CSR kernel over the S*A rows. Throws ArgumentError on bad sizes, indices or values. */
  static std::shared_ptr<Model> sparse(int64_t S, int64_t A, double gamma, const double* initial, size_t initialLen,
                                       const int32_t* rowStart, size_t rowStartLen, const int32_t* next, size_t nextLen,
                                       const double* prob, size_t probLen, const ModelOptions& opt);

  int S = 0;
  int A = 0;
  double gamma = 0;
  std::vector<double> initial;
  bool isDense = true;
  /** Dense kernel, [S*A*S]: row (s, a) starts at (s*A + a)*S. */
  Buffer<double> p;
  /** Sparse kernel (CSR over the S*A rows). */
  std::vector<int64_t> rowStart;
  std::vector<int32_t> next;
  std::vector<double> prob;
  ModelOptions options;

  int64_t SA() const { return int64_t(S) * A; }
  bool denseSolver() const { return S <= kDenseLimit; }

  /** Calls f(next, p) for every stored entry of row (s, a); dense rows skip zeros (as js). */
  template <class F>
  void forEachNext(int64_t row, F&& f) const {
    if (isDense) {
      const double* r = p.data() + row * S;
      for (int j = 0; j < S; j++)
        if (r[j] != 0) f(j, r[j]);
    } else {
      for (int64_t k = rowStart[row]; k < rowStart[row + 1]; k++) f(next[k], prob[k]);
    }
  }

  /** (P v)(s, a) = sum_s' P(s'|s, a) v(s'). */
  double expectNext(int64_t row, const double* v) const;

  /** Alias tables of the S*A transition rows (built on first use; thread-safe). */
  const AliasTable& transitionAlias() const;
  /** Alias table of rho (one row). */
  const AliasTable& initialAlias() const;
  /** Lanes the estimator runs in lockstep for a call with this horizon (1 = one at a time). */
  int lanesFor(int64_t horizon) const;
  /** The sampler's tables outgrow the caches (then its lanes prefetch). Needs transitionAlias(). */
  bool bigTables() const;

 private:
  Model() = default;
  void buildAlias() const;

  mutable std::mutex aliasMutex_;
  mutable std::atomic<bool> aliasReady_{false};
  mutable AliasTable trans_;
  mutable AliasTable init_;
};

/** x . y with eight fixed partial sums: the same bits on every CPU path. */
double dot(const double* x, const double* y, int64_t n);
/** y[i] -= alpha * x[i]. */
void axpySub(double* y, const double* x, double alpha, int64_t n);
/** y[i] += alpha * x[i]. */
void axpyAdd(double* y, const double* x, double alpha, int64_t n);

}  // namespace fedpg
