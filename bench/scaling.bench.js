// Issue 14: how each large-MDP cost scales with the number of states S, on a log-log plot.
// Multi-task gridworlds of 10^2 to 10^6 states (10 x 10, 32 x 32, 100 x 100, 316 x 316,
// 1000 x 1000; 4 actions, 4 agents), native backend, per size (tinybench medians):
//   - exact evaluation at theta = 0 of the 4 reward tables and the occupancy (env.evaluate);
//   - J* of the average MDP (env.optimal);
//   - one sampled local step (Fast-FedPG, K = 50, M = 10), measured as bench/lazy-step.bench.js
//     does: (median(round of H = 101 steps) - median(round of H = 1)) / 100, which removes the
//     per-call O(S*A) part (the dense write of theta, the input checks);
//   - loading the MDP's .npz (loadMdp: read, inflate, every check), written as `fedpg generate
//     --out FILE.npz` writes it.
// Writes OUT/scaling.json (every median and the fitted slopes), OUT/scaling.csv and OUT/scaling.svg
// (src/plot/scaling.ts: log-log, one line per cost, slopes fitted over S >= 10^4, the sparse
// regime; below 2048 states the exact solvers are a dense LU).
// Bounded: about 2 minutes on an idle 2-vCPU machine (the 10^6 point takes 2 samples of each
// solve, the smaller ones more); the 10^6-state tables take about 1.5 GB.
// Usage: npm run build && node bench/scaling.bench.js [OUT]   (default OUT: a temporary directory;
// the README's plot: node bench/scaling.bench.js docs/plots/scaling; FEDPG_BENCH_QUICK=1: up to
// 10^4 states, short)
import { Bench } from 'tinybench';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadBackendByName } from '../dist/backends/select.js';
import { renderSvg, toCsv } from '../dist/experiments/render.js';
import { loadMdp } from '../dist/mdp/format.js';
import { gridworldMdp } from '../dist/mdp/generate.js';
import { averageReward, environmentSpec, stackedRewards } from '../dist/mdp/model.js';
import { writeNpz } from '../dist/mdp/npz.js';
import { scalingChart, scalingSlopes } from '../dist/plot/scaling.js';
import { agentStream } from '../dist/rng.js';

const quick = process.env.FEDPG_BENCH_QUICK === '1';
const out = process.argv[2] ?? mkdtempSync(join(tmpdir(), 'fedpg-scaling-'));
const scratch = mkdtempSync(join(tmpdir(), 'fedpg-scaling-npz-'));
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }));

const K = 50, M = 10, H1 = 101;
const FIT_FROM = 1e4;
// Up to this many states the exact solvers are a dense LU, above it the sparse ones (README).
const DENSE_LIMIT = 2048;
// Per size: the grid's side and tinybench's minimum time (ms) and samples. Large sizes are
// bounded by samples alone (time 0): a 10^6-state J* takes seconds.
const SIZES = [
  { side: 10, time: 500, iterations: 10 },
  { side: 32, time: 500, iterations: 10 },
  { side: 100, time: 500, iterations: 5 },
  { side: 316, time: 0, iterations: 3 },
  { side: 1000, time: 0, iterations: 2 },
].filter((s) => !quick || s.side <= 100);

const native = await loadBackendByName('native');
const COSTS = {
  evaluate: 'exact evaluation, 4 tables',
  optimal: 'J* (average MDP)',
  step: `sampled local step (K = ${K}, M = ${M})`,
  load: 'npz load (loadMdp)',
};

const points = [];
const rows = [];
for (const { side, time, iterations } of SIZES) {
  const mdp = gridworldMdp({ width: side, height: side, agents: 4, seed: 1 });
  const S = mdp.states, SA = S * mdp.actions, N = mdp.rewards.length;
  const file = join(scratch, `grid-${side}.npz`);
  writeNpz(file, mdp);
  const env = native.createEnvironment(environmentSpec(mdp));
  const rewards = stackedRewards(mdp, mdp.rewards.map((_, i) => i));
  const rbar = averageReward(mdp);
  const theta0 = new Float64Array(SA);
  const ev = { J: new Float64Array(N), V: new Float64Array(N * S), Q: new Float64Array(N * SA), grad: new Float64Array(N * SA), occupancy: new Float64Array(S) };
  const vstar = new Float64Array(S);
  // The lazy-step bench's theta and correction: a non-uniform policy and a dense correction.
  const theta = Float64Array.from({ length: SA }, (_, j) => 0.1 * Math.sin(j));
  const corr = Float64Array.from({ length: SA }, (_, j) => 0.01 * Math.cos(3 * j));
  const th = new Float64Array(SA);
  const round = { reward: mdp.rewards[0], correction: corr, eta: 0.05, gradient: 'sampled', horizon: K, batch: M, rng: agentStream(0, 0) };

  const solves = new Bench({ time, iterations, warmup: side <= 100, warmupTime: 100, warmupIterations: 2 });
  solves.add('evaluate', () => env.evaluate(theta0, rewards, ev));
  solves.add('optimal', () => env.optimal(rbar, vstar));
  solves.add('load', () => loadMdp(file));
  await solves.run();
  // Sampling is cheap at every size: enough samples for a steady median everywhere.
  const steps = new Bench({ time: quick ? 200 : 1000, iterations: 10, warmupTime: 100, warmupIterations: 3 });
  // th.set(theta) is in both tasks, so it cancels in the difference.
  steps.add('H=1', () => { th.set(theta); env.localRound({ ...round, theta: th, steps: 1 }); });
  steps.add(`H=${H1}`, () => { th.set(theta); env.localRound({ ...round, theta: th, steps: H1 }); });
  await steps.run();
  env.dispose();

  const ms = Object.fromEntries([...solves.tasks, ...steps.tasks].map((t) => [t.name, t.result.latency.p50]));
  const samples = Object.fromEntries(solves.tasks.map((t) => [t.name, t.result.latency.samplesCount ?? t.result.latency.samples?.length ?? null]));
  const stepMs = (ms[`H=${H1}`] - ms['H=1']) / (H1 - 1);
  const got = { evaluate: ms.evaluate, optimal: ms.optimal, step: stepMs, load: ms.load };
  for (const [key, v] of Object.entries(got)) points.push({ cost: COSTS[key], states: S, seconds: v / 1e3 });
  rows.push({
    grid: `${side}x${side}`,
    S,
    'evaluate s': +(got.evaluate / 1e3).toPrecision(3),
    'J* s': +(got.optimal / 1e3).toPrecision(3),
    'step us': +(got.step * 1e3).toPrecision(3),
    'npz load s': +(got.load / 1e3).toPrecision(3),
    'solve samples': samples.evaluate,
  });
  console.log(`${side} x ${side} (S = ${S}) done`);
}

console.table(rows);
const slopes = Object.fromEntries(scalingSlopes(points, FIT_FROM));
console.table(Object.entries(slopes).map(([cost, b]) => ({ cost, [`slope (S >= ${FIT_FROM})`]: b === null ? 'n/a' : +b.toFixed(2) })));

mkdirSync(out, { recursive: true });
const machine = `native backend, node ${process.version}, medians`;
writeFileSync(join(out, 'scaling.json'), JSON.stringify({ format: 'fedpg-scaling/1', machine, K, M, fitFrom: FIT_FROM, slopes, points }, null, 1) + '\n');
writeFileSync(join(out, 'scaling.csv'), toCsv(['cost', 'states', 'seconds'], points));
const svg = await renderSvg(
  scalingChart(points, {
    title: 'fast-fedpg: cost against the number of states (gridworld, 4 agents)',
    subtitle: [`node bench/scaling.bench.js; ${machine}; a step is (round of H = ${H1} - round of H = 1) / ${H1 - 1}`],
    fitFrom: FIT_FROM,
    marker: { states: DENSE_LIMIT, text: 'dense LU | sparse solvers' },
  }),
);
writeFileSync(join(out, 'scaling.svg'), svg);
console.log(`wrote ${join(out, 'scaling.svg')}, scaling.csv and scaling.json`);
