// Issue 14 item 5: the cost of one sampled local step (Fast-FedPG: Eq. 5 plus a constant
// correction, K = 50, M = 10) on a 10^3-state and a 10^6-state gridworld, backend by backend, in
// one run. Target: the 10^6-state step within 3x the 10^3-state step.
//
// A local round keeps theta in the lazy form (start + l eta c + a sparse sum over visited rows)
// and writes the dense theta once per call, so a call costs (fixed O(S*A): the dense write, the
// input checks and copies) + H * (one step, independent of S*A). The step is measured as the
// difference of two rounds that differ only in H: (median(H = H1) - median(H = 1)) / (H1 - 1).
// The per-call fixed part is shown beside it (median(H = 1) minus one step).
// Usage: npm run build && node bench/lazy-step.bench.js   (FEDPG_BENCH_QUICK=1: short times)
import { Bench } from 'tinybench';
import { loadedBackends } from './loaded-backends.js';
import { environmentSpec } from '../dist/mdp/model.js';
import { gridworldMdp } from '../dist/mdp/generate.js';
import { agentStream } from '../dist/rng.js';

const quick = process.env.FEDPG_BENCH_QUICK === '1';
const time = quick ? 300 : 3000;
const K = 50, M = 10;
const backends = await loadedBackends();

const rows = [];
const step = {};
for (const [W, Hgt, H1] of [[32, 32, 101], [1000, 1000, 101]]) {
  const t0 = performance.now();
  const mdp = gridworldMdp({ width: W, height: Hgt, agents: 4, seed: 1 });
  const built = performance.now() - t0;
  const SA = mdp.states * mdp.actions;
  const theta = Float64Array.from({ length: SA }, (_, j) => 0.1 * Math.sin(j));
  const corr = Float64Array.from({ length: SA }, (_, j) => 0.01 * Math.cos(3 * j));
  const th = new Float64Array(SA);
  const bench = new Bench({ time, warmupTime: quick ? 50 : 500, iterations: 5 });
  for (const b of backends) {
    const env = b.createEnvironment(environmentSpec(mdp));
    const rng = agentStream(0, 0);
    const round = { reward: mdp.rewards[0], correction: corr, eta: 0.05, gradient: 'sampled', horizon: K, batch: M, rng };
    // th.set(theta) is in both tasks, so it cancels in the difference.
    bench.add(`${b.name} H=1`, () => { th.set(theta); env.localRound({ ...round, theta: th, steps: 1 }); });
    bench.add(`${b.name} H=${H1}`, () => { th.set(theta); env.localRound({ ...round, theta: th, steps: H1 }); });
  }
  await bench.run();
  const ms = Object.fromEntries(bench.tasks.map((t) => [t.name, t.result.latency.p50]));
  for (const b of backends) {
    const one = ms[`${b.name} H=1`], many = ms[`${b.name} H=${H1}`];
    const perStep = (many - one) / (H1 - 1);
    (step[b.name] ??= []).push(perStep);
    rows.push({
      grid: `${W}x${Hgt} (S*A = ${SA}, built in ${(built / 1000).toFixed(1)} s)`,
      backend: b.name,
      'step us (median)': +(perStep * 1000).toFixed(1),
      'per-call fixed ms': +(one - perStep).toFixed(3),
      [`round H=${H1} ms`]: +many.toFixed(3),
    });
  }
}
console.table(rows);
const ratios = Object.entries(step).map(([name, [small, big]]) => ({
  backend: name,
  'step 10^3 us': +(small * 1000).toFixed(1),
  'step 10^6 us': +(big * 1000).toFixed(1),
  'ratio (target <= 3)': +(big / small).toFixed(2),
}));
console.table(ratios);
