// Backend by backend, in one run: environment steps/s of the Eq. 5 estimator, and the time of
// one exact evaluation (V, Q, gradient). Quote medians; compare ratios within one run.
import { Bench } from 'tinybench';
import { loadedBackends } from './loaded-backends.js';
import { environmentSpec } from '../dist/mdp/model.js';
import { randomMdp } from '../dist/mdp/generate.js';
import { agentStream } from '../dist/rng.js';

const quick = process.env.FEDPG_BENCH_QUICK === '1';
const backends = await loadedBackends();

const rows = [];
const time = quick ? 100 : 1000;

async function estimator(S, A, K, M) {
  const mdp = randomMdp({ states: S, actions: A, agents: 1, seed: 1 });
  const bench = new Bench({ time, warmupTime: quick ? 20 : 200 });
  const theta = Float64Array.from({ length: S * A }, (_, j) => Math.sin(j));
  const out = new Float64Array(S * A);
  for (const b of backends) {
    const env = b.createEnvironment(environmentSpec(mdp));
    const rng = agentStream(0, 0);
    bench.add(b.name, () => env.estimateGradient(theta, mdp.rewards[0], K, M, rng, out));
  }
  await bench.run();
  for (const t of bench.tasks) {
    const ms = t.result.latency.p50;
    rows.push({ kernel: `estimator S=${S} A=${A} K=${K} M=${M}`, backend: t.name, 'median ms': +ms.toFixed(4), 'M steps/s': +((K * M) / ms / 1e3).toFixed(2) });
  }
}

async function evaluation(S, A) {
  const mdp = randomMdp({ states: S, actions: A, agents: 1, seed: 2 });
  const bench = new Bench({ time, warmupTime: quick ? 20 : 200, iterations: 5 });
  const theta = Float64Array.from({ length: S * A }, (_, j) => Math.sin(j));
  const out = { J: new Float64Array(1), V: new Float64Array(S), Q: new Float64Array(S * A), grad: new Float64Array(S * A), occupancy: new Float64Array(S) };
  for (const b of backends) {
    const env = b.createEnvironment(environmentSpec(mdp));
    bench.add(b.name, () => env.evaluate(theta, mdp.rewards[0], out));
  }
  await bench.run();
  for (const t of bench.tasks) {
    const ms = t.result.latency.p50;
    // LU: 2/3 S^3 flops, dominant at these sizes.
    rows.push({ kernel: `exact evaluation S=${S} A=${A}`, backend: t.name, 'median ms': +ms.toFixed(3), 'LU GFLOP/s': +((2 / 3) * S ** 3 / ms / 1e6).toFixed(2) });
  }
}

await estimator(6, 3, 30, 100);
await estimator(100, 10, 50, 10);
if (!quick) await estimator(1000, 20, 30, 10);
await evaluation(100, 10);
if (!quick) await evaluation(1000, 10);
console.table(rows);
