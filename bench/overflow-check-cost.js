// The cost of a local round's overflow check (src/backends/checks.ts thetaOverflow: after every
// exact step, once at the end of a sampled round), as the ratio of this checkout's localRound to a
// baseline checkout's (one without the check, built: dist/, build/Release, wasm/), both loaded in
// this process and timed interleaved, in this process's CPU time, medians over rounds.
// Cases: a sampled round at S = 10^6 with H = 1 (the check's O(S*A) pass against the round's own
// dense write, the worst case), the same with H = 10, and exact rounds at S = 6, 100 and 400.
// Usage: npm run build && node bench/overflow-check-cost.js /path/to/baseline/checkout
import { Bench } from 'tinybench';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { cpuNow, median } from './timing.js';

const baseDir = process.argv[2];
if (!baseDir) {
  console.error('usage: node bench/overflow-check-cost.js BASELINE_CHECKOUT');
  process.exit(2);
}
const here = resolve(new URL('..', import.meta.url).pathname);
const load = (dir, mod) => import(pathToFileURL(resolve(dir, 'dist', mod)).href);
const variants = [];
for (const [label, dir] of [['check', here], ['baseline', resolve(baseDir)]]) {
  const sel = await load(dir, 'backends/select.js');
  const backends = [];
  for (const name of sel.BACKEND_NAMES) backends.push(await sel.loadBackendByName(name));
  variants.push({ label, backends, gen: await load(dir, 'mdp/generate.js'), model: await load(dir, 'mdp/model.js'), rng: await load(dir, 'rng.js') });
}
const ROUNDS = process.env.FEDPG_BENCH_QUICK === '1' ? 3 : 9;

const cases = [
  { name: 'sampled 1000x1000 grid, H=1, K=50, M=10', mdp: (g) => g.gridworldMdp({ width: 1000, height: 1000, agents: 1, seed: 1 }), gradient: 'sampled', H: 1, samples: 5 },
  { name: 'sampled 1000x1000 grid, H=10, K=50, M=10', mdp: (g) => g.gridworldMdp({ width: 1000, height: 1000, agents: 1, seed: 1 }), gradient: 'sampled', H: 10, samples: 5 },
  { name: 'exact random S=6 A=3, H=10', mdp: (g) => g.randomMdp({ states: 6, actions: 3, agents: 1, seed: 1 }), gradient: 'exact', H: 10, samples: 400 },
  { name: 'exact random S=100 A=10, H=10', mdp: (g) => g.randomMdp({ states: 100, actions: 10, agents: 1, seed: 1 }), gradient: 'exact', H: 10, samples: 20 },
  { name: 'exact random S=400 A=10, H=3', mdp: (g) => g.randomMdp({ states: 400, actions: 10, agents: 1, seed: 1 }), gradient: 'exact', H: 3, samples: 5 },
];
// FEDPG_BENCH_CASES=exact (a substring of the case names) runs only the matching cases.
const only = process.env.FEDPG_BENCH_CASES;
const rows = [];
for (const c of cases.filter((c) => !only || c.name.includes(only))) {
  const calls = {};
  for (const v of variants) {
    const mdp = c.mdp(v.gen);
    const SA = mdp.states * mdp.actions;
    const theta = Float64Array.from({ length: SA }, (_, j) => 0.1 * Math.sin(j));
    const corr = Float64Array.from({ length: SA }, (_, j) => 0.01 * Math.cos(3 * j));
    const th = new Float64Array(SA);
    for (const b of v.backends) {
      const env = b.createEnvironment(v.model.environmentSpec(mdp));
      const args = { reward: mdp.rewards[0], correction: corr, eta: 0.05, gradient: c.gradient, horizon: 50, batch: 10, steps: c.H, theta: th };
      const f = () => {
        th.set(theta);
        env.localRound({ ...args, rng: v.rng.agentStream(0, 0) });
      };
      f(); // alias tables and scratch, outside the timing
      calls[`${b.name} ${v.label}`] = f;
    }
  }
  const ratios = {};
  for (let r = 0; r < ROUNDS; r++) {
    const bench = new Bench({ time: 0, warmupTime: 0, iterations: c.samples, warmupIterations: 0, now: cpuNow });
    // Odd rounds run the baseline first: neither variant always follows the other backend's tasks.
    const order = r % 2 ? [...variants].reverse() : variants;
    for (const b of variants[0].backends) for (const v of order) bench.add(`${b.name} ${v.label}`, calls[`${b.name} ${v.label}`]);
    await bench.run();
    const ms = Object.fromEntries(bench.tasks.map((t) => [t.name, t.result.latency.p50]));
    for (const b of variants[0].backends) (ratios[b.name] ??= []).push({ ratio: ms[`${b.name} check`] / ms[`${b.name} baseline`], ms: ms[`${b.name} check`], base: ms[`${b.name} baseline`] });
  }
  for (const [name, rs] of Object.entries(ratios)) {
    const rr = rs.map((x) => x.ratio);
    rows.push({ case: c.name, backend: name, 'median ms (check)': +median(rs.map((x) => x.ms)).toFixed(4), 'median ms (baseline)': +median(rs.map((x) => x.base)).toFixed(4), 'median ratio': +median(rr).toFixed(3), range: `${Math.min(...rr).toFixed(3)}..${Math.max(...rr).toFixed(3)}` });
  }
}
console.table(rows);
