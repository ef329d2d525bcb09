#include "model.h"

#include <algorithm>
#include <cmath>

namespace fedpg {

// ---------------------------------------------------------------------------------------------
// CPU levels. __builtin_cpu_supports reads what libgcc's constructor found (cpuid and XCR0), so
// an AVX-512 path is only taken when the OS also saves the zmm registers.

bool simdSupported(Simd s) {
  switch (s) {
    case Simd::Generic:
      return true;
#if FEDPG_X86
    case Simd::Avx2:
      return __builtin_cpu_supports("avx2");
    case Simd::Avx512:
      return __builtin_cpu_supports("avx512f");
#endif
    default:
      return false;
  }
}

Simd bestSimd() {
  if (simdSupported(Simd::Avx512)) return Simd::Avx512;
  if (simdSupported(Simd::Avx2)) return Simd::Avx2;
  return Simd::Generic;
}

const char* simdName(Simd s) {
  switch (s) {
    case Simd::Avx512:
      return "avx512";
    case Simd::Avx2:
      return "avx2";
    default:
      return "generic";
  }
}

bool parseSimd(const std::string& name, Simd* out) {
  if (name == "auto") *out = bestSimd();
  else if (name == "generic") *out = Simd::Generic;
  else if (name == "avx2") *out = Simd::Avx2;
  else if (name == "avx512") *out = Simd::Avx512;
  else return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Vector helpers (multi-versioned; see FEDPG_CLONES).

FEDPG_CLONES double dot(const double* x, const double* y, int64_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    s0 += x[i] * y[i];
    s1 += x[i + 1] * y[i + 1];
    s2 += x[i + 2] * y[i + 2];
    s3 += x[i + 3] * y[i + 3];
    s4 += x[i + 4] * y[i + 4];
    s5 += x[i + 5] * y[i + 5];
    s6 += x[i + 6] * y[i + 6];
    s7 += x[i + 7] * y[i + 7];
  }
  double s = ((s0 + s4) + (s1 + s5)) + ((s2 + s6) + (s3 + s7));
  for (; i < n; i++) s += x[i] * y[i];
  return s;
}

FEDPG_CLONES void axpySub(double* y, const double* x, double alpha, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] -= alpha * x[i];
}

FEDPG_CLONES void axpyAdd(double* y, const double* x, double alpha, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

// ---------------------------------------------------------------------------------------------
// Construction and validation.

namespace {

void checkShape(int64_t S, int64_t A, double gamma) {
  if (S < 1 || S > 0x7fffffff) throw ArgumentError("states must be an integer in [1, 2^31-1], got " + std::to_string(S));
  if (A < 1 || A > 0x7fffffff) throw ArgumentError("actions must be an integer in [1, 2^31-1], got " + std::to_string(A));
  if (S * A > kMaxStateActions)
    throw ArgumentError("states * actions = " + std::to_string(S * A) + " exceeds 2^31-1");
  if (!(gamma >= 0 && gamma < 1)) throw ArgumentError("gamma must be in [0, 1), got " + str(gamma));
}

void copyInitial(Model& m, const double* initial, size_t len) {
  if (len != size_t(m.S))
    throw ArgumentError("initial has length " + std::to_string(len) + ", expected " + std::to_string(m.S));
  m.initial.assign(initial, initial + len);
  for (int s = 0; s < m.S; s++) {
    const double v = m.initial[s];
    if (!std::isfinite(v) || v < 0)
      throw ArgumentError("initial[" + std::to_string(s) + "] is " + str(v) + ", not a finite number >= 0");
  }
}

}  // namespace

std::shared_ptr<Model> Model::dense(int64_t S, int64_t A, double gamma, const double* initial, size_t initialLen,
                                    const double* p, size_t pLen, const ModelOptions& opt) {
  checkShape(S, A, gamma);
  std::shared_ptr<Model> m(new Model());
  m->S = int(S);
  m->A = int(A);
  m->gamma = gamma;
  m->options = opt;
  m->isDense = true;
  copyInitial(*m, initial, initialLen);
  const uint64_t want = uint64_t(S) * uint64_t(A) * uint64_t(S);
  if (uint64_t(pLen) != want)
    throw ArgumentError("dense transitions have length " + std::to_string(pLen) + ", expected S*A*S = " +
                        std::to_string(want));
  m->p.reset(pLen, false);
  double* q = m->p.data();
  for (size_t k = 0; k < pLen; k++) {
    q[k] = p[k];
    if (!(q[k] >= 0 && std::isfinite(q[k]))) {  // also rejects NaN
      const uint64_t row = k / uint64_t(S);
      throw ArgumentError("transitions[" + std::to_string(row / A) + "][" + std::to_string(row % A) + "][" +
                          std::to_string(k % uint64_t(S)) + "] is " + str(q[k]) + ", not a finite number >= 0");
    }
  }
  return m;
}

std::shared_ptr<Model> Model::sparse(int64_t S, int64_t A, double gamma, const double* initial, size_t initialLen,
                                     const int32_t* rowStart, size_t rowStartLen, const int32_t* next, size_t nextLen,
                                     const double* prob, size_t probLen, const ModelOptions& opt) {
  checkShape(S, A, gamma);
  std::shared_ptr<Model> m(new Model());
  m->S = int(S);
  m->A = int(A);
  m->gamma = gamma;
  m->options = opt;
  m->isDense = false;
  copyInitial(*m, initial, initialLen);
  const int64_t rows = S * A;
  if (int64_t(rowStartLen) != rows + 1)
    throw ArgumentError("sparse rowStart has length " + std::to_string(rowStartLen) + ", expected S*A+1 = " +
                        std::to_string(rows + 1));
  if (nextLen != probLen)
    throw ArgumentError("sparse next and prob differ in length (" + std::to_string(nextLen) + " and " +
                        std::to_string(probLen) + ")");
  if (rowStart[0] != 0) throw ArgumentError("sparse rowStart[0] must be 0, got " + std::to_string(rowStart[0]));
  for (int64_t r = 0; r < rows; r++) {
    if (rowStart[r + 1] < rowStart[r])
      throw ArgumentError("sparse rowStart decreases at row " + std::to_string(r + 1));
  }
  if (int64_t(rowStart[rows]) != int64_t(nextLen))
    throw ArgumentError("sparse rowStart ends at " + std::to_string(rowStart[rows]) + ", but there are " +
                        std::to_string(nextLen) + " entries");
  m->rowStart.assign(rowStart, rowStart + rowStartLen);
  m->next.assign(next, next + nextLen);
  m->prob.assign(prob, prob + probLen);
  for (size_t k = 0; k < nextLen; k++) {
    if (m->next[k] < 0 || m->next[k] >= S)
      throw ArgumentError("sparse next[" + std::to_string(k) + "] = " + std::to_string(m->next[k]) +
                          " is not a state index in [0, " + std::to_string(S) + ")");
    if (!(m->prob[k] >= 0 && std::isfinite(m->prob[k])))
      throw ArgumentError("sparse prob[" + std::to_string(k) + "] is " + str(m->prob[k]) + ", not a finite number >= 0");
  }
  return m;
}

double Model::expectNext(int64_t row, const double* v) const {
  if (isDense) return dot(p.data() + row * S, v, S);
  double sum = 0;
  for (int64_t k = rowStart[row]; k < rowStart[row + 1]; k++) sum += prob[k] * v[next[k]];
  return sum;
}

// ---------------------------------------------------------------------------------------------
// Alias tables: Vose's construction in exactly the order of src/backends/js/alias.ts.

namespace {

struct VoseScratch {
  std::vector<double> scaled;
  std::vector<int32_t> small, large;
  explicit VoseScratch(size_t n) : scaled(n), small(n), large(n) {}
};

void fillRow(const int32_t* outcomes, const double* probs, int n, AliasEntry* e, VoseScratch& w) {
  int ns = 0, nl = 0;
  for (int k = 0; k < n; k++) {
    w.scaled[k] = probs[k] * n;
    e[k].prob = 0;
    e[k].hi = outcomes[k];
    e[k].lo = outcomes[k];
    if (w.scaled[k] < 1) w.small[ns++] = k;
    else w.large[nl++] = k;
  }
  while (ns > 0 && nl > 0) {
    const int l = w.small[--ns];
    const int g = w.large[--nl];
    e[l].prob = w.scaled[l];
    e[l].lo = outcomes[g];
    w.scaled[g] = w.scaled[g] + w.scaled[l] - 1;
    if (w.scaled[g] < 1) w.small[ns++] = g;
    else w.large[nl++] = g;
  }
  while (nl > 0) e[w.large[--nl]].prob = 1;
  while (ns > 0) e[w.small[--ns]].prob = 1;
}

}  // namespace

void Model::buildAlias() const {
  const int64_t rows = SA();
  AliasTable t;
  t.start.reset(size_t(rows) + 1);
  int64_t total = 0;
  int maxRow = 1;
  for (int64_t r = 0; r < rows; r++) {
    int n = 0;
    if (isDense) {
      const double* q = p.data() + r * S;
      for (int j = 0; j < S; j++) n += q[j] > 0;
    } else {
      for (int64_t k = rowStart[r]; k < rowStart[r + 1]; k++) n += prob[k] > 0;
    }
    if (n == 0)
      throw ArgumentError("transition row (state " + std::to_string(r / A) + ", action " + std::to_string(r % A) +
                          ") has no positive probability: cannot sample from it");
    t.start[r] = total;
    total += n;
    maxRow = std::max(maxRow, n);
  }
  t.start[rows] = total;
  t.entries.reset(size_t(total), false);  // fillRow writes every column
  std::vector<int32_t> outcomes(maxRow);
  std::vector<double> probs(maxRow);
  VoseScratch w(maxRow);
  for (int64_t r = 0; r < rows; r++) {
    int n = 0;
    if (isDense) {
      const double* q = p.data() + r * S;
      for (int j = 0; j < S; j++)
        if (q[j] > 0) {
          outcomes[n] = j;
          probs[n++] = q[j];
        }
    } else {
      for (int64_t k = rowStart[r]; k < rowStart[r + 1]; k++)
        if (prob[k] > 0) {
          outcomes[n] = next[k];
          probs[n++] = prob[k];
        }
    }
    fillRow(outcomes.data(), probs.data(), n, t.entries.data() + t.start[r], w);
  }

  AliasTable in;
  int n = 0;
  std::vector<int32_t> io(S);
  std::vector<double> ip(S);
  for (int s = 0; s < S; s++)
    if (initial[s] > 0) {
      io[n] = s;
      ip[n++] = initial[s];
    }
  if (n == 0) throw ArgumentError("the initial distribution has no positive probability: cannot sample s0");
  in.start.reset(2);
  in.start[0] = 0;
  in.start[1] = n;
  in.entries.reset(size_t(n));
  VoseScratch wi(n);
  fillRow(io.data(), ip.data(), n, in.entries.data(), wi);

  trans_ = std::move(t);
  init_ = std::move(in);
}

const AliasTable& Model::transitionAlias() const {
  if (!aliasReady_.load(std::memory_order_acquire)) {
    std::lock_guard<std::mutex> lock(aliasMutex_);
    if (!aliasReady_.load(std::memory_order_relaxed)) {
      buildAlias();  // throws without publishing anything
      aliasReady_.store(true, std::memory_order_release);
    }
  }
  return trans_;
}

const AliasTable& Model::initialAlias() const {
  transitionAlias();
  return init_;
}

bool Model::bigTables() const {
  const double bytes = double(trans_.start[trans_.start.size() - 1]) * sizeof(AliasEntry) + double(SA()) * (3 * sizeof(double) + sizeof(int64_t));
  return bytes > double(1 << 20);
}

int Model::lanesFor(int64_t horizon) const {
  int lanes = options.lanes;
  // Independent trajectories in lockstep overlap their dependency chains (and, with tables larger
  // than the caches, their cache and TLB misses).
  if (lanes <= 0) lanes = bigTables() ? 16 : 8;
  // The lanes pre-draw 2K doubles each; past this horizon (1 MiB of draws for 16 lanes) the
  // sequential loop, which needs no buffer, takes over.
  if (horizon > 4096) lanes = 1;
  return lanes;
}

}  // namespace fedpg
