// The yardstick for bench/native.bench.js: plain, hand-written C++ with no Node-API and no tricks,
// doing what the native backend's kernels do, so the bench can say how close the addon comes to
// straightforward compiled code.
//
//   estimate: the Eq. 5 estimator as one sequential loop (the draw order, alias tables and
//             xoshiro128** of src/backends/js, alias columns packed as {prob, hi, lo} like the
//             addon's), reporting steps/s and, for a cross-check, the first call's estimate and
//             the stream state after it.
//   evaluate: exact V, Q and gradient with a textbook LU (partial pivoting, row-major, i-k-j
//             loops the compiler vectorises), reporting ms per evaluation and per factorisation.
//
// Input: a binary MDP file written by the bench (little-endian): int32 S, int32 A, float64 gamma,
// then float64 initial[S], P[S*A*S], reward[S*A], theta[S*A].
// Usage: yardstick estimate FILE K M SECONDS R0 R1 R2 R3
//        yardstick evaluate FILE SECONDS
// Output: one JSON object on stdout. Build: bench/build-yardstick.sh.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "../native/src/detmath.h"

namespace {

struct Mdp {
  int S = 0, A = 0;
  double gamma = 0;
  std::vector<double> initial, P, reward, theta;
};

Mdp readMdp(const char* path) {
  FILE* f = std::fopen(path, "rb");
  if (!f) throw std::runtime_error(std::string("cannot open ") + path);
  Mdp m;
  int32_t hdr[2];
  auto rd = [&](void* p, size_t bytes) {
    if (std::fread(p, 1, bytes, f) != bytes) throw std::runtime_error("short read");
  };
  rd(hdr, sizeof hdr);
  m.S = hdr[0];
  m.A = hdr[1];
  rd(&m.gamma, sizeof m.gamma);
  const size_t S = size_t(m.S), SA = S * size_t(m.A);
  m.initial.resize(S);
  m.P.resize(SA * S);
  m.reward.resize(SA);
  m.theta.resize(SA);
  rd(m.initial.data(), S * 8);
  rd(m.P.data(), SA * S * 8);
  rd(m.reward.data(), SA * 8);
  rd(m.theta.data(), SA * 8);
  std::fclose(f);
  return m;
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// ---- the estimator ------------------------------------------------------------------------------

struct Rng {
  uint32_t s[4];
  uint32_t next() {
    const uint32_t m = s[1] * 5u;
    const uint32_t r = ((m << 7) | (m >> 25)) * 9u;
    const uint32_t t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 11) | (s[3] >> 21);
    return r;
  }
  double uniform() {
    const uint32_t x = next() >> 5, y = next() >> 6;
    return (double(x) * 67108864.0 + double(y)) * 1.1102230246251565e-16;
  }
};

struct Alias {
  struct Col {
    double prob;
    int32_t hi, lo;
  };
  std::vector<int64_t> start;
  std::vector<Col> col;

  // Vose, in the order of src/backends/js/alias.ts.
  void addRow(const std::vector<int>& out, const std::vector<double>& p) {
    const int n = int(out.size());
    const size_t base = col.size();
    start.push_back(int64_t(base));
    col.resize(base + n);
    std::vector<double> scaled(n);
    std::vector<int> small, large;
    for (int k = 0; k < n; k++) {
      scaled[k] = p[k] * n;
      col[base + k] = {0, out[k], out[k]};
      (scaled[k] < 1 ? small : large).push_back(k);
    }
    while (!small.empty() && !large.empty()) {
      const int l = small.back(), g = large.back();
      small.pop_back();
      large.pop_back();
      col[base + l].prob = scaled[l];
      col[base + l].lo = out[g];
      scaled[g] = scaled[g] + scaled[l] - 1;
      (scaled[g] < 1 ? small : large).push_back(g);
    }
    for (int k : large) col[base + k].prob = 1;
    for (int k : small) col[base + k].prob = 1;
  }
  int draw(int64_t row, double u) const {
    const int64_t b = start[row], n = start[row + 1] - b;
    const double x = u * double(n);
    const int64_t k = int64_t(x);
    return x - double(k) < col[b + k].prob ? col[b + k].hi : col[b + k].lo;
  }
};

struct Estimator {
  int S, A;
  double gamma;
  Alias trans, init;
  std::vector<double> pi, cum, visits, counts, acc;
  std::vector<int> last, visited;
  std::vector<uint64_t> piStamp, visitStamp;
  uint64_t stamp = 0, traj = 0;

  explicit Estimator(const Mdp& m) : S(m.S), A(m.A), gamma(m.gamma) {
    std::vector<int> out;
    std::vector<double> p;
    for (int64_t r = 0; r < int64_t(S) * A; r++) {
      out.clear();
      p.clear();
      for (int j = 0; j < S; j++)
        if (m.P[r * S + j] > 0) {
          out.push_back(j);
          p.push_back(m.P[r * S + j]);
        }
      trans.addRow(out, p);
    }
    trans.start.push_back(int64_t(trans.col.size()));
    out.clear();
    p.clear();
    for (int s = 0; s < S; s++)
      if (m.initial[s] > 0) {
        out.push_back(s);
        p.push_back(m.initial[s]);
      }
    init.addRow(out, p);
    init.start.push_back(int64_t(init.col.size()));
    const size_t SA = size_t(S) * A;
    pi.assign(SA, 0);
    cum.assign(SA, 0);
    counts.assign(SA, 0);
    acc.assign(SA, 0);
    visits.assign(S, 0);
    last.assign(S, 0);
    visited.assign(S, 0);
    piStamp.assign(S, 0);
    visitStamp.assign(S, 0);
  }

  void row(const double* theta, int s) {
    const double* t = theta + int64_t(s) * A;
    double* p = &pi[int64_t(s) * A];
    double* c = &cum[int64_t(s) * A];
    double m = t[0];
    for (int a = 1; a < A; a++) m = t[a] > m ? t[a] : m;
    double z = 0;
    // The addon's own exp (native/src/detmath.h), so the cross-check compares the same bits.
    for (int a = 0; a < A; a++) z += p[a] = fedpg::det::exp(t[a] - m);
    double run = 0;
    int lp = 0;
    for (int a = 0; a < A; a++) {
      p[a] /= z;
      run += p[a];
      c[a] = run;
      if (p[a] > 0) lp = a;
    }
    last[s] = lp;
    piStamp[s] = stamp;
  }

  void estimate(const double* theta, const double* R, int K, int M, Rng& rng, double* out) {
    ++stamp;
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int m = 0; m < M; m++) {
      ++traj;
      int nv = 0;
      double G = 0, disc = 1;
      int s = init.draw(0, rng.uniform());
      for (int t = 0; t < K; t++) {
        if (piStamp[s] != stamp) row(theta, s);
        const int64_t base = int64_t(s) * A;
        const double u = rng.uniform();
        int a = 0;
        while (a < A && !(u < cum[base + a])) a++;
        if (a == A) a = last[s];
        const int64_t sa = base + a;
        G += disc * R[sa];
        disc *= gamma;
        if (visitStamp[s] != traj) {
          visitStamp[s] = traj;
          visited[nv++] = s;
          visits[s] = 0;
          for (int b = 0; b < A; b++) counts[base + b] = 0;
        }
        visits[s] += 1;
        counts[sa] += 1;
        if (t + 1 < K) s = trans.draw(sa, rng.uniform());
      }
      for (int v = 0; v < nv; v++) {
        const int64_t base = int64_t(visited[v]) * A;
        for (int b = 0; b < A; b++) acc[base + b] += G * (counts[base + b] - visits[visited[v]] * pi[base + b]);
      }
    }
    for (size_t j = 0; j < acc.size(); j++) out[j] = acc[j] / M;
  }
};

// ---- exact evaluation with a textbook LU ------------------------------------------------------------

struct Lu {
  int n;
  std::vector<double> a;
  std::vector<int> piv;
  explicit Lu(int n_) : n(n_), a(size_t(n_) * n_), piv(n_) {}
  void factor() {
    for (int k = 0; k < n; k++) {
      int p = k;
      double best = std::fabs(a[size_t(k) * n + k]);
      for (int i = k + 1; i < n; i++)
        if (std::fabs(a[size_t(i) * n + k]) > best) best = std::fabs(a[size_t(p = i) * n + k]);
      piv[k] = p;
      if (p != k)
        for (int j = 0; j < n; j++) std::swap(a[size_t(k) * n + j], a[size_t(p) * n + j]);
      const double d = a[size_t(k) * n + k];
      if (d == 0) throw std::runtime_error("singular");
      const double* kr = &a[size_t(k) * n];
      for (int i = k + 1; i < n; i++) {
        double* r = &a[size_t(i) * n];
        const double l = r[k] / d;
        r[k] = l;
        for (int j = k + 1; j < n; j++) r[j] -= l * kr[j];
      }
    }
  }
  void solve(double* b) const {
    for (int k = 0; k < n; k++) std::swap(b[k], b[piv[k]]);
    for (int i = 0; i < n; i++)
      for (int j = 0; j < i; j++) b[i] -= a[size_t(i) * n + j] * b[j];
    for (int i = n - 1; i >= 0; i--) {
      for (int j = i + 1; j < n; j++) b[i] -= a[size_t(i) * n + j] * b[j];
      b[i] /= a[size_t(i) * n + i];
    }
  }
  void solveTransposed(double* b) const {
    for (int i = 0; i < n; i++) {
      b[i] /= a[size_t(i) * n + i];
      for (int j = i + 1; j < n; j++) b[j] -= a[size_t(i) * n + j] * b[i];
    }
    for (int i = n - 1; i >= 0; i--)
      for (int j = 0; j < i; j++) b[j] -= a[size_t(i) * n + j] * b[i];
    for (int k = n - 1; k >= 0; k--) std::swap(b[k], b[piv[k]]);
  }
};

struct Evaluation {
  double J = 0, factorMs = 0;
  std::vector<double> V, Q, grad, d;
};

Evaluation evaluate(const Mdp& m) {
  const int S = m.S, A = m.A;
  const double g = m.gamma;
  std::vector<double> pi(size_t(S) * A);
  for (int s = 0; s < S; s++) {
    const double* t = &m.theta[size_t(s) * A];
    double mx = t[0], z = 0;
    for (int a = 1; a < A; a++) mx = std::max(mx, t[a]);
    for (int a = 0; a < A; a++) z += pi[size_t(s) * A + a] = std::exp(t[a] - mx);
    for (int a = 0; a < A; a++) pi[size_t(s) * A + a] /= z;
  }
  Lu lu(S);
  for (int s = 0; s < S; s++) {
    double* r = &lu.a[size_t(s) * S];
    for (int a = 0; a < A; a++) {
      const double w = pi[size_t(s) * A + a];
      const double* p = &m.P[(size_t(s) * A + a) * S];
      for (int j = 0; j < S; j++) r[j] += w * p[j];
    }
    for (int j = 0; j < S; j++) r[j] = -g * r[j];
    r[s] += 1;
  }
  Evaluation e;
  const double t0 = now();
  lu.factor();
  e.factorMs = (now() - t0) * 1e3;
  e.d = m.initial;
  lu.solveTransposed(e.d.data());
  for (double& x : e.d) x *= 1 - g;
  e.V.assign(S, 0);
  for (int s = 0; s < S; s++)
    for (int a = 0; a < A; a++) e.V[s] += pi[size_t(s) * A + a] * m.reward[size_t(s) * A + a];
  lu.solve(e.V.data());
  for (int s = 0; s < S; s++) e.J += m.initial[s] * e.V[s];
  e.Q.assign(size_t(S) * A, 0);
  e.grad.assign(size_t(S) * A, 0);
  for (int s = 0; s < S; s++)
    for (int a = 0; a < A; a++) {
      const size_t row = size_t(s) * A + a;
      double pv = 0;
      for (int j = 0; j < S; j++) pv += m.P[row * S + j] * e.V[j];
      e.Q[row] = m.reward[row] + g * pv;
      e.grad[row] = e.d[s] * pi[row] * (e.Q[row] - e.V[s]) / (1 - g);
    }
  return e;
}

void printArray(const char* name, const double* x, size_t n, bool comma) {
  std::printf("\"%s\":[", name);
  for (size_t i = 0; i < n; i++) std::printf("%s%.17g", i ? "," : "", x[i]);
  std::printf("]%s", comma ? "," : "");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc < 3) throw std::runtime_error("usage: yardstick estimate FILE K M SECONDS R0..R3 | evaluate FILE SECONDS");
    const std::string mode = argv[1];
    const Mdp m = readMdp(argv[2]);
    if (mode == "estimate" && argc == 10) {
      const int K = std::atoi(argv[3]), M = std::atoi(argv[4]);
      const double seconds = std::atof(argv[5]);
      Rng rng;
      for (int i = 0; i < 4; i++) rng.s[i] = uint32_t(std::strtoul(argv[6 + i], nullptr, 10));
      const double tb = now();
      Estimator est(m);
      const double buildMs = (now() - tb) * 1e3;
      std::vector<double> g(size_t(m.S) * m.A), first;
      est.estimate(m.theta.data(), m.reward.data(), K, M, rng, g.data());
      first = g;
      const Rng after = rng;
      long calls = 0;
      const double t0 = now();
      double t;
      do {
        est.estimate(m.theta.data(), m.reward.data(), K, M, rng, g.data());
        calls++;
        t = now() - t0;
      } while (t < seconds);
      std::printf("{\"mode\":\"estimate\",\"S\":%d,\"A\":%d,\"K\":%d,\"M\":%d,\"calls\":%ld,\"usPerCall\":%.4f,\"stepsPerSec\":%.6g,\"aliasBuildMs\":%.3f,",
                  m.S, m.A, K, M, calls, t / calls * 1e6, double(K) * M * calls / t, buildMs);
      std::printf("\"rngAfterFirst\":[%u,%u,%u,%u],", after.s[0], after.s[1], after.s[2], after.s[3]);
      printArray("first", first.data(), first.size(), false);
      std::printf("}\n");
      return 0;
    }
    if (mode == "evaluate" && argc == 4) {
      const double seconds = std::atof(argv[3]);
      Evaluation e = evaluate(m);
      long calls = 0;
      double factor = 0;
      const double t0 = now();
      double t;
      do {
        e = evaluate(m);
        factor += e.factorMs;
        calls++;
        t = now() - t0;
      } while (t < seconds);
      std::printf("{\"mode\":\"evaluate\",\"S\":%d,\"A\":%d,\"calls\":%ld,\"msPerEvaluate\":%.4f,\"msPerFactor\":%.4f,\"J\":%.17g,",
                  m.S, m.A, calls, t / calls * 1e3, factor / calls, e.J);
      printArray("grad", e.grad.data(), e.grad.size(), false);
      std::printf("}\n");
      return 0;
    }
    throw std::runtime_error("usage: yardstick estimate FILE K M SECONDS R0..R3 | evaluate FILE SECONDS");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "yardstick: %s\n", e.what());
    return 1;
  }
}
