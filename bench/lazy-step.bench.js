// Issue 14 item 5: the cost of one sampled local step (Fast-FedPG: Eq. 5 plus a constant
// correction, K = 50, M = 10) on a 10^3-state and a 10^6-state gridworld, backend by backend, in
// one run. Target: the 10^6-state step within 3x the 10^3-state step.
//
// A local round keeps theta in the lazy form (start + l eta c + a sparse sum over visited rows)
// and writes the dense theta once per call, so a call costs (fixed O(S*A): the dense write, the
// input checks and copies) + H * (one step, independent of S*A). The step is measured as the
// difference of two rounds that differ only in H: (median(H = H1) - median(H = 1)) / (H1 - 1).
// The per-call fixed part is shown beside it (median(H = 1) minus one step).
//
// Timing: the machine may be shared, and at 10^6 states a step is mostly cache misses, which other
// processes' memory traffic slows at random for seconds at a time. So the calls are timed in this
// process's CPU time (tinybench's `now`, as bench/large.bench.js's training rows; the kernels are
// single-threaded, and on an idle machine it equals wall time), and every round times each
// backend's H = 1 and H = H1 calls on both grids, a few samples each: each round gives a step per
// grid and their ratio, and the tables show the medians over the rounds (the ratio column: the
// median of the rounds' ratios, and their range).
// Usage: npm run build && node bench/lazy-step.bench.js   (FEDPG_BENCH_QUICK=1: fewer rounds)
import { Bench } from 'tinybench';
import { loadedBackends } from './loaded-backends.js';
import { environmentSpec } from '../dist/mdp/model.js';
import { gridworldMdp } from '../dist/mdp/generate.js';
import { agentStream } from '../dist/rng.js';
import { cpuNow, median } from './timing.js';

const quick = process.env.FEDPG_BENCH_QUICK === '1';
const ROUNDS = quick ? 3 : 15;
const SAMPLES = quick ? 3 : 7; // calls of each H per grid and backend in a round
const K = 50, M = 10, H1 = 101;
const backends = await loadedBackends();

const grids = [];
for (const W of [32, 1000]) {
  const t0 = performance.now();
  const mdp = gridworldMdp({ width: W, height: W, agents: 4, seed: 1 });
  const built = performance.now() - t0;
  const SA = mdp.states * mdp.actions;
  const theta = Float64Array.from({ length: SA }, (_, j) => 0.1 * Math.sin(j));
  const corr = Float64Array.from({ length: SA }, (_, j) => 0.01 * Math.cos(3 * j));
  const th = new Float64Array(SA);
  const calls = {};
  for (const b of backends) {
    const env = b.createEnvironment(environmentSpec(mdp));
    const round = { reward: mdp.rewards[0], correction: corr, eta: 0.05, gradient: 'sampled', horizon: K, batch: M, rng: agentStream(0, 0) };
    // th.set(theta) is in both calls, so it cancels in the difference.
    calls[b.name] = (H) => {
      th.set(theta);
      env.localRound({ ...round, theta: th, steps: H });
    };
    calls[b.name](H1); // alias tables and scratch, outside the timing
    calls[b.name](1);
  }
  grids.push({ label: `${W}x${W} (S*A = ${SA}, built in ${(built / 1000).toFixed(1)} s)`, calls });
}

const steps = {}, fixed = {}, ratios = {};
for (let r = 0; r < ROUNDS; r++) {
  const bench = new Bench({ time: 0, warmupTime: 0, iterations: SAMPLES, warmupIterations: 0, now: cpuNow });
  for (const b of backends) {
    grids.forEach((g, k) => {
      bench.add(`${b.name} ${k} H=1`, () => g.calls[b.name](1));
      bench.add(`${b.name} ${k} H=${H1}`, () => g.calls[b.name](H1));
    });
  }
  await bench.run();
  const ms = Object.fromEntries(bench.tasks.map((t) => [t.name, t.result.latency.p50]));
  for (const b of backends) {
    const step = grids.map((g, k) => {
      const one = ms[`${b.name} ${k} H=1`], many = ms[`${b.name} ${k} H=${H1}`];
      const perStep = (many - one) / (H1 - 1);
      ((steps[b.name] ??= grids.map(() => []))[k]).push(perStep);
      ((fixed[b.name] ??= grids.map(() => []))[k]).push(one - perStep);
      return perStep;
    });
    (ratios[b.name] ??= []).push(step[1] / step[0]);
  }
}

const rows = [];
for (const b of backends) {
  grids.forEach((g, k) => {
    rows.push({
      grid: g.label,
      backend: b.name,
      'step us (median)': +(median(steps[b.name][k]) * 1000).toFixed(1),
      'per-call fixed ms': +median(fixed[b.name][k]).toFixed(3),
    });
  });
}
console.log(`CPU time; ${ROUNDS} rounds of ${SAMPLES} calls of each H per grid and backend; medians over the rounds`);
console.table(rows);
console.table(backends.map((b) => {
  const rs = ratios[b.name];
  return {
    backend: b.name,
    'step 10^3 us': +(median(steps[b.name][0]) * 1000).toFixed(1),
    'step 10^6 us': +(median(steps[b.name][1]) * 1000).toFixed(1),
    'ratio (target <= 3)': +median(rs).toFixed(2),
    'rounds min-max': `${Math.min(...rs).toFixed(2)}-${Math.max(...rs).toFixed(2)}`,
  };
}));
