// The wasm backend against js and native, in one run (npm run build first; node bench/wasm.bench.js).
//   estimator: Eq. 5 on random MDPs (dense kernels, as bench/backends.bench.js) at S=6 A=3 and
//              S=1000 A=20, K=30: medians per call and environment steps/s, wasm SIMD and
//              scalar builds, js, native (when it loads).
//   exact:     one exact evaluation (V, Q, gradient, occupancy) at S=1000 A=10, and the dense LU
//              of order 1000 alone, against a plain C++ LU yardstick (row-major, partial
//              pivoting, i-k-j loops, g++ -O3 -mavx2 -mfma) compiled here when g++ exists.
// FEDPG_BENCH_QUICK=1 shortens every measurement (smoke test); quote the full run's numbers.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Bench } from 'tinybench';
import { jsBackend } from '../dist/backends/js/index.js';
import { loadBackendByName } from '../dist/backends/select.js';
import { loadWasmBackend } from '../dist/backends/wasm/index.js';
import { environmentSpec } from '../dist/mdp/model.js';
import { randomMdp } from '../dist/mdp/generate.js';
import { agentStream } from '../dist/rng.js';

const quick = process.env.FEDPG_BENCH_QUICK === '1';
const time = quick ? 100 : 1000;
const warmupTime = quick ? 20 : 300;

const wasmSimd = await loadWasmBackend({ simd: true });
const wasmScalar = await loadWasmBackend({ simd: false });
let native = null;
try {
  native = await loadBackendByName('native');
} catch (e) {
  console.log(`(native backend not loaded: ${e.message.split('\n')[0]})`);
}
const backends = [
  ['js', jsBackend],
  ['wasm-simd', wasmSimd],
  ['wasm-scalar', wasmScalar],
  ...(native ? [['native', native]] : []),
];

const rows = [];

function ratios(kernel, results) {
  const base = results.find((r) => r.backend === 'js');
  const nat = results.find((r) => r.backend === 'native');
  for (const r of results) {
    rows.push({
      kernel,
      backend: r.backend,
      'median ms': +r.ms.toPrecision(4),
      [r.unit]: +r.rate.toPrecision(4),
      'speed vs js': base ? +(base.ms / r.ms).toFixed(2) : null,
      'speed vs native': nat ? +(nat.ms / r.ms).toFixed(2) : null,
    });
  }
}

async function estimator(S, A, K, M, mdp) {
  const theta = Float64Array.from({ length: S * A }, (_, j) => Math.sin(j));
  const out = new Float64Array(S * A);
  const bench = new Bench({ time, warmupTime });
  const envs = [];
  for (const [name, b] of backends) {
    const env = b.createEnvironment(environmentSpec(mdp));
    envs.push(env);
    const rng = agentStream(0, 0);
    env.estimateGradient(theta, mdp.rewards[0], K, M, rng, out); // builds the alias tables outside the timing
    bench.add(name, () => env.estimateGradient(theta, mdp.rewards[0], K, M, rng, out));
  }
  await bench.run();
  envs.forEach((e) => e.dispose());
  ratios(
    `estimator S=${S} A=${A} K=${K} M=${M}`,
    bench.tasks.map((t) => ({ backend: t.name, ms: t.result.latency.p50, unit: 'M steps/s', rate: (K * M) / t.result.latency.p50 / 1e3 })),
  );
}

/** The plain C++ LU (the yardstick of the exact kernels), built into a temp dir; null without g++. */
function cppYardstick(dir) {
  const src = String.raw`#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>
// Plain right-looking LU with partial pivoting, row-major, as src/backends/js/exact.ts DenseLU.
static int lu(double* a, int* piv, int n) {
  for (int k = 0; k < n; k++) {
    int p = k; double best = std::fabs(a[(size_t)k * n + k]);
    for (int i = k + 1; i < n; i++) { double v = std::fabs(a[(size_t)i * n + k]); if (v > best) { best = v; p = i; } }
    piv[k] = p;
    if (p != k) for (int j = 0; j < n; j++) std::swap(a[(size_t)k * n + j], a[(size_t)p * n + j]);
    const double d = a[(size_t)k * n + k]; if (d == 0) return 1;
    const double* kr = a + (size_t)k * n;
    for (int i = k + 1; i < n; i++) {
      double* r = a + (size_t)i * n; const double l = r[k] / d; r[k] = l;
      if (l != 0) for (int j = k + 1; j < n; j++) r[j] -= l * kr[j];
    }
  }
  return 0;
}
int main(int argc, char** argv) {
  const int n = std::atoi(argv[1]), reps = std::atoi(argv[2]);
  std::vector<double> m((size_t)n * n), a; std::vector<int> piv(n);
  for (size_t i = 0; i < m.size(); i++) m[i] = std::sin(0.7 * (double)i) + ((i % (n + 1)) == 0 ? n : 0);
  std::vector<double> t;
  for (int r = 0; r < reps + 1; r++) {
    a = m; auto t0 = std::chrono::steady_clock::now(); lu(a.data(), piv.data(), n);
    auto t1 = std::chrono::steady_clock::now();
    if (r > 0) t.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(t.begin(), t.end());
  std::printf("%.4f\n", t[t.size() / 2]);
}
`;
  try {
    writeFileSync(join(dir, 'lu.cc'), src);
    execFileSync('g++', ['-O3', '-mavx2', '-mfma', '-o', join(dir, 'lu'), join(dir, 'lu.cc')], { stdio: 'pipe' });
    return (n, reps) => Number(execFileSync(join(dir, 'lu'), [String(n), String(reps)]).toString());
  } catch (e) {
    console.log(`(C++ yardstick not built: ${String(e.message).split('\n')[0]})`);
    return null;
  }
}

async function exact(S, A) {
  const mdp = randomMdp({ states: S, actions: A, agents: 1, seed: 2 });
  const theta = Float64Array.from({ length: S * A }, (_, j) => Math.sin(j));
  const out = { J: new Float64Array(1), V: new Float64Array(S), Q: new Float64Array(S * A), grad: new Float64Array(S * A), occupancy: new Float64Array(S) };
  const bench = new Bench({ time: quick ? 200 : 2000, warmupTime: quick ? 0 : 500, iterations: 3 });
  const envs = [];
  for (const [name, b] of backends) {
    const env = b.createEnvironment(environmentSpec(mdp));
    envs.push(env);
    if (name === 'js' && !quick) {
      // ~1 s per call: three calls, no warm-up beyond one.
      env.evaluate(theta, mdp.rewards[0], out);
    }
    bench.add(name, () => env.evaluate(theta, mdp.rewards[0], out));
  }
  await bench.run();
  envs.forEach((e) => e.dispose());
  const flops = (2 / 3) * S ** 3;
  ratios(
    `exact evaluation S=${S} A=${A}`,
    bench.tasks.map((t) => ({ backend: t.name, ms: t.result.latency.p50, unit: 'GFLOP/s', rate: flops / t.result.latency.p50 / 1e6 })),
  );
  return bench.tasks.find((t) => t.name === 'wasm-simd').result.latency.p50;
}

async function luAlone(n, evalMs) {
  const a = Float64Array.from({ length: n * n }, (_, i) => Math.sin(0.7 * i) + (i % (n + 1) === 0 ? n : 0));
  const bench = new Bench({ time: quick ? 200 : 1500, warmupTime: quick ? 0 : 300, iterations: 5 });
  const work = new Float64Array(n * n);
  bench.add('wasm-simd', () => {
    work.set(a);
    wasmSimd.factorLU(work, n);
  });
  bench.add('wasm-scalar', () => {
    work.set(a);
    wasmScalar.factorLU(work, n);
  });
  await bench.run();
  const flops = (2 / 3) * n ** 3;
  const results = bench.tasks.map((t) => ({ backend: t.name, ms: t.result.latency.p50, unit: 'GFLOP/s', rate: flops / t.result.latency.p50 / 1e6 }));
  const dir = mkdtempSync(join(tmpdir(), 'fedpg-lu-'));
  try {
    const yard = cppYardstick(dir);
    if (yard) {
      const ms = yard(n, quick ? 1 : 5);
      results.push({ backend: 'C++ LU -O3 -mavx2 -mfma', ms, unit: 'GFLOP/s', rate: flops / ms / 1e6 });
      console.log(
        `wasm-simd exact evaluation S=${n}: ${evalMs.toFixed(1)} ms; the C++ LU alone: ${ms.toFixed(1)} ms ` +
          `(evaluation at ${(ms / evalMs).toFixed(2)}x the yardstick's speed; the task asks >= 0.5)`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  ratios(`dense LU n=${n} (factorisation alone, copies included)`, results);
}

await estimator(6, 3, 30, 1, randomMdp({ states: 6, actions: 3, agents: 1, seed: 1 }));
await estimator(6, 3, 30, 100, randomMdp({ states: 6, actions: 3, agents: 1, seed: 1 }));
{
  const big = randomMdp({ states: 1000, actions: 20, agents: 1, seed: 1 });
  await estimator(1000, 20, 30, 1, big);
  await estimator(1000, 20, 30, 10, big);
  if (!quick) await estimator(1000, 20, 30, 100, big);
}
const evalMs = await exact(quick ? 300 : 1000, 10);
await luAlone(quick ? 300 : 1000, evalMs);
console.table(rows);
