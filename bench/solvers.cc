// The sparse policy-evaluation methods compared on the W x W gridworld (src/mdp/generate.ts's
// kernel: four slippery moves, slip 0.1), for the uniform policy and a "go right" policy, at
// several gamma: Gauss-Seidel from zero (the old path, stopped at a relative change of 1e-15),
// and BiCGSTAB with ILU(0), Jacobi and no preconditioning, each to the certified bound of
// native/src/sparse.h. Prints one JSON line per case (milliseconds, iterations).
// Build and run: g++ -O3 -std=c++17 -ffp-contract=off -Inative/src bench/solvers.cc native/src/sparse.cc -o build/solvers && build/solvers 300
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <vector>

#include "sparse.h"

using namespace fedpg;

struct Kernel {
  std::vector<int64_t> start;
  std::vector<int32_t> col;
  std::vector<double> val;
};

static Kernel gridKernel(int W, const std::vector<double>& policy) {
  const int S = W * W, A = 4;
  const int mv[4][2] = {{0, -1}, {1, 0}, {0, 1}, {-1, 0}};
  const double slip = 0.1;
  Kernel k;
  k.start.push_back(0);
  for (int s = 0; s < S; s++) {
    std::map<int, double> acc;
    const int x = s % W, y = s / W;
    for (int a = 0; a < A; a++) {
      const double w = policy[size_t(s) * A + a];
      if (w == 0) continue;
      for (int b = 0; b < A; b++) {
        const double p = (b == a ? 1 - slip : 0) + slip / A;
        const int nx = x + mv[b][0], ny = y + mv[b][1];
        const int t = nx < 0 || nx >= W || ny < 0 || ny >= W ? s : ny * W + nx;
        acc[t] += w * p;
      }
    }
    for (auto& e : acc) {
      k.col.push_back(e.first);
      k.val.push_back(e.second);
    }
    k.start.push_back(int64_t(k.col.size()));
  }
  return k;
}

static double ms(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

/** The old path: Gauss-Seidel sweeps from zero until the largest change is 1e-15 of the largest entry. */
static int gaussSeidel(const Kernel& k, double g, const std::vector<double>& b, std::vector<double>& x) {
  const int S = int(b.size());
  std::fill(x.begin(), x.end(), 0.0);
  for (int it = 1; it <= 100000; it++) {
    double diff = 0, scale = 0;
    for (int s = 0; s < S; s++) {
      double sum = b[s], diag = 0;
      for (int64_t q = k.start[s]; q < k.start[s + 1]; q++) {
        if (k.col[q] == s) diag = k.val[q];
        else sum += g * k.val[q] * x[k.col[q]];
      }
      const double v = sum / (1 - g * diag);
      diff = std::max(diff, std::fabs(v - x[s]));
      scale = std::max(scale, std::fabs(v));
      x[s] = v;
    }
    if (diff <= 1e-15 * std::max(scale, 1e-300)) return it;
  }
  return -1;
}

int main(int argc, char** argv) {
  const int W = argc > 1 ? std::atoi(argv[1]) : 300;
  const int S = W * W, A = 4;
  std::vector<double> uniform(size_t(S) * A, 0.25), right(size_t(S) * A, 0.0);
  for (int s = 0; s < S; s++) right[size_t(s) * A + 1] = 1;
  std::vector<double> reward(S, 0.0), rho(S, 1.0 / S);
  reward[S - 1] = 1;
  for (double g : {0.9, 0.99, 0.999}) {
    if (argc > 2 && g != std::atof(argv[2])) continue;
    for (int pol = 0; pol < 2; pol++) {
      const Kernel k = gridKernel(W, pol ? right : uniform);
      const char* pname = pol ? "right" : "uniform";
      std::vector<double> x(S);
      auto t0 = std::chrono::steady_clock::now();
      const int gs = gaussSeidel(k, g, reward, x);
      std::printf("{\"gamma\":%g,\"policy\":\"%s\",\"method\":\"gauss-seidel\",\"system\":\"V\",\"ms\":%.2f,\"iterations\":%d}\n", g,
                  pname, ms(t0), gs);
      const std::pair<SparseSolver::Precond, const char*> pcs[] = {
          {SparseSolver::Precond::Ilu0, "bicgstab-ilu0"},
          {SparseSolver::Precond::Jacobi, "bicgstab-jacobi"},
          {SparseSolver::Precond::None, "bicgstab"}};
      for (auto& pc : pcs) {
        SparseSolver solver;
        solver.setPreconditioner(pc.first);

        for (int tr = 0; tr < 2; tr++) {
          // The best of five cold solves (prepare included: the ILU and the schedules are per policy).
          double elapsed = 1e300;
          int it = -1;
          for (int rep = 0; rep < 5; rep++) {
            std::fill(x.begin(), x.end(), 0.0);
            t0 = std::chrono::steady_clock::now();
            try {
              solver.prepare(S, k.start.data(), k.col.data(), k.val.data(), g);
              it = solver.solve(tr ? rho.data() : reward.data(), x.data(), tr == 1);
            } catch (const std::exception& e) {
              std::fprintf(stderr, "%s: %s\n", pc.second, e.what());
            }
            elapsed = std::min(elapsed, ms(t0));
            if (it < 0 || elapsed > 2000) break;
          }
          std::printf(
              "{\"gamma\":%g,\"policy\":\"%s\",\"method\":\"%s\",\"system\":\"%s\",\"ms\":%.2f,\"iterations\":%d,\"bound\":%.3g}\n",
              g, pname, pc.second, tr ? "occupancy" : "V", elapsed, it, solver.lastBound());
        }
      }
    }
  }
}
