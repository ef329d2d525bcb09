// FedSVRPG-M's sampled kernel (issue 12 item 2): the cost per trajectory step of a local round
// with `svrpg` (GPOMDP at theta and the w-weighted GPOMDP at thetaPrev on one batch) against
// today's Eq. 5 estimator per trajectory step, backend by backend, in one run. Target: within
// 1.5x. Also shown: a plain sampled local round (Eq. 5) per step. H = 10 (the CLI default): the
// rows of pi_thetaPrev are computed once per round, not per step.
// Usage: npm run build && node bench/svrpg.bench.js   (FEDPG_BENCH_QUICK=1: short times)
import { Bench } from 'tinybench';
import { loadedBackends } from './loaded-backends.js';
import { environmentSpec } from '../dist/mdp/model.js';
import { randomMdp } from '../dist/mdp/generate.js';
import { agentStream } from '../dist/rng.js';

const quick = process.env.FEDPG_BENCH_QUICK === '1';
const time = quick ? 150 : 1500;
const backends = await loadedBackends();

const rows = [];
for (const [S, A, K, M, H] of [[6, 3, 30, 100, 10], [100, 10, 50, 10, 10], [1000, 20, 30, 10, 10]]) {
  const mdp = randomMdp({ states: S, actions: A, agents: 1, seed: 1 });
  const SA = S * A;
  const theta = Float64Array.from({ length: SA }, (_, j) => Math.sin(j));
  const thetaPrev = theta.map((v, j) => v + 0.1 * Math.cos(j));
  const u = Float64Array.from({ length: SA }, (_, j) => 0.01 * Math.sin(3 * j));
  const g = new Float64Array(SA);
  const bench = new Bench({ time, warmupTime: quick ? 30 : 300 });
  for (const b of backends) {
    const env = b.createEnvironment(environmentSpec(mdp));
    const rng = agentStream(0, 0);
    const th = Float64Array.from(theta);
    const round = { reward: mdp.rewards[0], correction: null, eta: 1e-3, steps: H, gradient: 'sampled', horizon: K, batch: M, rng };
    bench.add(`${b.name} estimator`, () => env.estimateGradient(theta, mdp.rewards[0], K, M, rng, g));
    bench.add(`${b.name} round`, () => { th.set(theta); env.localRound({ ...round, theta: th }); });
    bench.add(`${b.name} svrpg round`, () => { th.set(theta); env.localRound({ ...round, theta: th, svrpg: { thetaPrev, u, beta: 0.2, clip: 20 } }); });
  }
  await bench.run();
  const ms = Object.fromEntries(bench.tasks.map((t) => [t.name, t.result.latency.p50]));
  for (const b of backends) {
    const perStep = (name, steps) => (ms[`${b.name} ${name}`] * 1e6) / steps;
    const est = perStep('estimator', K * M), rnd = perStep('round', H * K * M), sv = perStep('svrpg round', H * K * M);
    rows.push({
      kernel: `S=${S} A=${A} K=${K} M=${M} H=${H}`,
      backend: b.name,
      'estimator ns/step': +est.toFixed(2),
      'Eq.5 round ns/step': +rnd.toFixed(2),
      'svrpg round ns/step': +sv.toFixed(2),
      'svrpg / estimator': +(sv / est).toFixed(3),
    });
  }
}
console.table(rows);
