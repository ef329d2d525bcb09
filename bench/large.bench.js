// Large MDPs (issue 14): the sparse solvers past the dense limit, against scipy in the same run.
//   - exact evaluation at theta = 0 of the 300 x 300 multi-task gridworld (9 x 10^4 states,
//     4 agents: 4 reward tables and the occupancy) vs scipy's splu of I - gamma P_pi;
//   - J* of its average MDP vs scipy's value iteration (both to the same proven 1e-12 bound);
//   - `fedpg evaluate` on it, the whole command (a fresh process: start-up, loading, the solves,
//     writing the report) as a large-MDP user runs it, MDP in .npz and `--json --out report.npz`,
//     vs scipy's evaluation plus value iteration without loading; and, for honesty, the same
//     command on the JSON form of the MDP. Peak memory (maxRSS) via /usr/bin/time when present;
//   - exact-gradient training on the 100 x 100 gridworld (Fast-FedPG, 4 agents, H = 10): one
//     local step (localRound's H steps / H) vs one cold exact evaluation of one reward table, and
//     what warm vectors kept across rounds would save (step 0, and the log's evaluation);
//   - with FEDPG_BENCH_LARGE=1 (several minutes), the 1000 x 1000 gridworld (10^6 states) as
//     `fedpg generate` writes it: loading its .npz (bench/large-load.js, a fresh process) vs
//     numpy's np.load of the same file plus building the scipy CSR matrix (also a fresh process,
//     `bench/large_scipy.py load`), alternating; and the whole `fedpg evaluate --json --out`
//     command with its peak memory vs scipy's evaluation plus value iteration at 10^6 states.
// scipy runs when python3 with scipy is present (bench/large_scipy.py; skipped otherwise: the
// project never depends on Python). Medians of tinybench samples; the solves and scipy alternate
// over several rounds and each ratio is the median of the rounds' ratios (a shared machine's load
// changes within minutes).
// Usage: npm run build && node bench/large.bench.js   (FEDPG_BENCH_QUICK=1: 100 x 100 only, short;
// FEDPG_BENCH_WIDTH=1000: a W x W gridworld instead of 300 x 300, without the whole-command row;
// FEDPG_BENCH_PART=training: the exact-training rows only; FEDPG_BENCH_ETA: its step size, 0.1 S by default;
// FEDPG_BENCH_LARGE=1: also the 10^6-state load and command, FEDPG_BENCH_LARGE_ROUNDS of them, default 1)
import { Bench } from 'tinybench';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadBackendByName } from '../dist/backends/select.js';
import { gridworldMdp } from '../dist/mdp/generate.js';
import { averageReward, environmentSpec, stackedRewards } from '../dist/mdp/model.js';
import { loadMdp } from '../dist/mdp/format.js';
import { mdpToJson } from '../dist/mdp/parse.js';
import { writeNpz } from '../dist/mdp/npz.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const quick = process.env.FEDPG_BENCH_QUICK === '1';
const large = process.env.FEDPG_BENCH_LARGE === '1';
const largeRounds = Number(process.env.FEDPG_BENCH_LARGE_ROUNDS ?? 1);
const trainingOnly = process.env.FEDPG_BENCH_PART === 'training';
const W = quick ? 100 : Number(process.env.FEDPG_BENCH_WIDTH ?? 300);
const time = quick ? 200 : 2000;
const tmp = mkdtempSync(join(tmpdir(), 'fedpg-large-bench-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

const notes = [];
const backends = [];
for (const name of ['native', 'wasm', 'js']) {
  try {
    backends.push(await loadBackendByName(name));
  } catch (e) {
    notes.push(`${name} backend not loaded: ${e.message.split('\n')[0]}`);
  }
}
const native = backends.find((b) => b.name === 'native') ?? null;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const mdp = gridworldMdp({ width: W, height: W, agents: 4 });
const S = mdp.states, A = mdp.actions, SA = S * A, N = mdp.rewards.length;
const spec = environmentSpec(mdp);
const rewards = stackedRewards(mdp, mdp.rewards.map((_, i) => i));
const rbar = averageReward(mdp);
const theta0 = new Float64Array(SA);
const evalOut = (n) => ({ J: new Float64Array(n), V: new Float64Array(n * S), Q: new Float64Array(n * SA), grad: new Float64Array(n * SA), occupancy: new Float64Array(S) });

// ---- scipy ------------------------------------------------------------------------------------

function scipy(width, reps) {
  return python([String(width), String(width), '4', String(reps)]);
}

function python(args) {
  const r = spawnSync('python3', [join(root, 'bench', 'large_scipy.py'), ...args], {
    encoding: 'utf8',
    timeout: 900_000,
  });
  if (r.error || r.status !== 0) {
    notes.push(`scipy not measured (python3 with scipy absent or failed: ${(r.error?.message ?? r.stderr ?? '').trim().split('\n').slice(-1)[0]})`);
    return null;
  }
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

// ---- evaluation and J* -------------------------------------------------------------------------

// The machine may be shared, and its load changes within minutes: so the project's solves and
// scipy's alternate, round by round, and each ratio is the median of the rounds' ratios.
const rounds = quick ? 2 : 5;
const got = {};
const ratios = {};
async function solvesRound() {
  const bench = new Bench({ time: time / 4, warmupTime: time / 20, iterations: 3, warmupIterations: 1 });
  const envs = [];
  for (const b of backends) {
    // js solves the same systems in the same order, only slower: timed at 100 x 100 (quick) only.
    if (b.name === 'js' && W > 100) continue;
    const env = b.createEnvironment(spec);
    envs.push(env);
    const out = evalOut(N);
    const v = new Float64Array(S);
    bench.add(`${b.name} evaluate`, () => env.evaluate(theta0, rewards, out));
    bench.add(`${b.name} J*`, () => env.optimal(rbar, v));
  }
  await bench.run();
  const r = {};
  for (const t of bench.tasks) r[t.name] = t.result.latency.p50 / 1e3;
  for (const e of envs) e.dispose();
  return r;
}

async function solves() {
  const per = {};
  for (let k = 0; k < rounds; k++) {
    const r = await solvesRound();
    const py = scipy(W, 1);
    for (const [name, s] of Object.entries(r)) {
      (per[name] ??= []).push(s);
      if (py) (ratios[name] ??= []).push(s / (name.endsWith('J*') ? py.value_iteration_s : py.evaluate_s));
    }
    if (py) {
      (per['scipy splu evaluation'] ??= []).push(py.evaluate_s);
      (per['scipy value iteration'] ??= []).push(py.value_iteration_s);
      scipyInfo = py;
    }
  }
  for (const [name, xs] of Object.entries(per)) got[name] = median(xs);
  for (const [name, xs] of Object.entries(ratios)) ratios[name] = median(xs);
}
let scipyInfo = null;

// ---- the whole `fedpg evaluate` command --------------------------------------------------------

const cli = join(root, 'dist', 'cli', 'main.js');
const timeTool = existsSync('/usr/bin/time') ? '/usr/bin/time' : null;

/**
 * Runs `fedpg ARGS` in a fresh process: wall seconds, and with /usr/bin/time its peak memory
 * (maxRSS, MiB) and CPU seconds (user + system, all threads), else null.
 */
function fedpg(args) {
  const usage = join(tmp, 'usage.txt');
  const [cmd, argv] = timeTool ? [timeTool, ['-f', '%M %U %S', '-o', usage, process.execPath, cli, ...args]] : [process.execPath, [cli, ...args]];
  const t = performance.now();
  const r = spawnSync(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 1 << 30, timeout: 1_800_000 });
  const s = (performance.now() - t) / 1e3;
  if (r.status !== 0) throw new Error(`fedpg ${args.join(' ')} failed: ${String(r.stderr).trim().split('\n').pop()}`);
  if (!timeTool) return { s, rssMiB: null, cpu: null };
  const [kib, user, sys] = readFileSync(usage, 'utf8').trim().split('\n').pop().split(' ').map(Number);
  return { s, rssMiB: kib / 1024, cpu: user + sys };
}

/**
 * `fedpg evaluate` as a large-MDP user runs it (the MDP in .npz, `--json --out report.npz`) and on
 * the JSON form of the same MDP, alternating with scipy's evaluation plus value iteration; the
 * ratio of each round, then their median.
 */
function wholeCommand() {
  if (!native) return null;
  const npz = join(tmp, `gridworld-${W}.npz`), json = join(tmp, `gridworld-${W}.json`);
  writeNpz(npz, mdp);
  writeFileSync(json, JSON.stringify(mdpToJson(mdp)));
  const report = join(tmp, 'report.npz');
  const runs = { npz: [], json: [], rss: [], cpu: [], base: [], baseCpu: [], rNpz: [], rJson: [], rCpu: [] };
  for (let k = 0; k < 3; k++) {
    try {
      const a = fedpg(['evaluate', npz, '--backend', 'native', '--json', '--out', report]);
      const b = fedpg(['evaluate', json, '--backend', 'native', '--json', '--out', report]);
      runs.npz.push(a.s);
      runs.json.push(b.s);
      if (a.rssMiB !== null) runs.rss.push(a.rssMiB);
      if (a.cpu !== null) runs.cpu.push(a.cpu);
    } catch (e) {
      notes.push(e.message);
      return null;
    }
    const py = scipy(W, 1);
    if (py) {
      const base = py.evaluate_s + py.value_iteration_s;
      runs.base.push(base);
      runs.rNpz.push(runs.npz.at(-1) / base);
      runs.rJson.push(runs.json.at(-1) / base);
      const baseCpu = py.evaluate_cpu_s + py.value_iteration_cpu_s;
      runs.baseCpu.push(baseCpu);
      if (runs.cpu.length === k + 1) runs.rCpu.push(runs.cpu.at(-1) / baseCpu);
    }
  }
  const loads = [];
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    loadMdp(npz);
    loads.push((performance.now() - t) / 1e3);
  }
  const m = (xs) => (xs.length ? median(xs) : null);
  return {
    npz: m(runs.npz), json: m(runs.json), rss: m(runs.rss), cpu: m(runs.cpu), load: median(loads),
    base: m(runs.base), baseCpu: m(runs.baseCpu), rNpz: m(runs.rNpz), rJson: m(runs.rJson), rCpu: m(runs.rCpu),
  };
}

// ---- 10^6 states (FEDPG_BENCH_LARGE=1) -----------------------------------------------------------

/**
 * The 1000 x 1000 gridworld as `fedpg generate` writes it: its load against numpy's (each in fresh
 * processes, alternating, after a warm-up load of a small file), and the whole evaluate command
 * with its peak memory against scipy's two solves.
 */
function millionStates() {
  if (!native) return null;
  const file = join(tmp, 'gridworld-1000.npz'), small = join(tmp, 'gridworld-30.npz');
  fedpg(['generate', 'gridworld', '--width', '1000', '--height', '1000', '--agents', '4', '--out', file]);
  fedpg(['generate', 'gridworld', '--width', '30', '--height', '30', '--agents', '4', '--out', small]);
  const out = { cold: [], warm: [], npCold: [], npWarm: [], rCold: [], rWarm: [], cmd: [], rss: [], cpu: [], base: [], baseCpu: [], rCmd: [], rCpu: [] };
  for (let k = 0; k < 5; k++) {
    const r = spawnSync(process.execPath, [join(root, 'bench', 'large-load.js'), file, small, '3'], { encoding: 'utf8', timeout: 600_000 });
    if (r.status !== 0) {
      notes.push(`large-load.js failed: ${r.stderr.trim().split('\n').pop()}`);
      return null;
    }
    const ours = JSON.parse(r.stdout.trim().split('\n').pop());
    out.cold.push(ours.cold_s);
    out.warm.push(ours.warm_s);
    const py = python(['load', file, '3', small]);
    if (py) {
      out.npCold.push(py.cold_s);
      out.npWarm.push(py.warm_s);
      out.rCold.push(ours.cold_s / py.cold_s);
      out.rWarm.push(ours.warm_s / py.warm_s);
    }
  }
  const report = join(tmp, 'report-1000.npz');
  for (let k = 0; k < largeRounds; k++) {
    const a = fedpg(['evaluate', file, '--backend', 'native', '--json', '--out', report]);
    out.cmd.push(a.s);
    if (a.rssMiB !== null) out.rss.push(a.rssMiB);
    if (a.cpu !== null) out.cpu.push(a.cpu);
    const py = scipy(1000, 1);
    if (py) {
      const base = py.evaluate_s + py.value_iteration_s, baseCpu = py.evaluate_cpu_s + py.value_iteration_cpu_s;
      out.base.push(base);
      out.baseCpu.push(baseCpu);
      out.rCmd.push(a.s / base);
      if (a.cpu !== null) out.rCpu.push(a.cpu / baseCpu);
    }
  }
  const m = (xs) => (xs.length ? median(xs) : null);
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, m(v)]));
}

// ---- exact-gradient training on the 100 x 100 gridworld ----------------------------------------
//
// Fast-FedPG with exact gradients, 4 agents, H = 10, written out against the backend (the server
// step is Eq. 7 with alpha_g = 1: theta_bar = the mean of the agents' thetas; c_i = g - g_i with the
// exact g_i(theta_bar)), so the round can be timed exactly at a point of a run. Timed at round
// WARMUP + 1: (a) the 4 agents' localRound calls (H exact steps each, warm-started within the call)
// per step, against (b) one cold evaluation of one table at theta_bar (each agent's table in turn,
// per table): the target is a <= b. Also measured, for the choice of how long warm vectors live:
// (c) an agent's step 0 warm-started from its own last step of the previous round (what keeping
// the vectors across rounds would buy: (b - c) / H per step), and (d) the log's evaluation of the
// 4 tables at theta_bar warm-started from the previous round's, against (e) a cold one. Timed in
// CPU time (cpuNow), each task's median per round, each ratio the median of the rounds' ratios.

const WARMUP = 3;
// This process's CPU time in ms (the kernels are single-threaded): on a shared machine, time
// slicing inflates wall-clock samples at random, CPU time much less; on an idle one they agree.
const cpuNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e3;
};

async function exactTraining() {
  const grid = gridworldMdp({ width: 100, height: 100, agents: 4 });
  const sSpec = environmentSpec(grid);
  const Ss = grid.states, SAs = Ss * grid.actions, n = grid.rewards.length;
  const H = 10, eta = Number(process.env.FEDPG_BENCH_ETA ?? 0.1 * Ss);
  const all = stackedRewards(grid, grid.rewards.map((_, i) => i));
  const out = (k) => ({ J: new Float64Array(k), V: new Float64Array(k * Ss), Q: new Float64Array(k * SAs), grad: new Float64Array(k * SAs), occupancy: new Float64Array(Ss) });
  const warmOf = (k) => ({ V: new Float64Array(k * Ss), occupancy: new Float64Array(Ss) });
  const rows = {};
  const perRound = {};
  for (const b of backends) {
    if (b.name === 'js' && !quick) continue; // the same algorithm, only slower
    const env = b.createEnvironment(sSpec);
    const one = out(1), four = out(n);
    // One round of the run from theta_bar: the corrections, the agents' rounds (as the warm
    // recurrence of evaluate calls, which localRound equals bit for bit), the new theta_bar.
    // Returns the corrections and each agent's warm vectors after its last step.
    const round = (thetaBar, evalWarm) => {
      env.evaluate(thetaBar, all, four, evalWarm ?? undefined);
      const g = new Float64Array(SAs);
      for (let i = 0; i < n; i++) for (let j = 0; j < SAs; j++) g[j] += four.grad[i * SAs + j] / n;
      const corr = [], last = [], next = new Float64Array(SAs);
      for (let i = 0; i < n; i++) {
        const c = Float64Array.from(g, (x, j) => x - four.grad[i * SAs + j]);
        const th = thetaBar.slice(), w = warmOf(1);
        for (let h = 0; h < H; h++) {
          env.evaluate(th, grid.rewards[i], one, w);
          for (let j = 0; j < SAs; j++) th[j] = th[j] + eta * (one.grad[j] + c[j]);
        }
        for (let j = 0; j < SAs; j++) next[j] += th[j] / n;
        corr.push(c);
        last.push(w);
      }
      return { corr, last, next };
    };
    let thetaBar = new Float64Array(SAs);
    let prev = null;
    const evalWarm = warmOf(n);
    for (let t = 0; t < WARMUP; t++) {
      prev = round(thetaBar, evalWarm);
      thetaBar = prev.next;
    }
    // evalWarm now holds the evaluation at the previous theta_bar; round WARMUP + 1 starts here.
    const { corr } = round(thetaBar, null);
    const work = new Float64Array(SAs);
    const rng = new Uint32Array(4);
    // Each call is one agent's (its index rotates), so a task's samples are short and the rounds
    // alternate the tasks every second or so: a shared machine's load shifts hit all of them alike.
    let k = 0;
    const tasks = {
      step: () => {
        const i = k++ % n;
        work.set(thetaBar);
        env.localRound({ theta: work, reward: grid.rewards[i], correction: corr[i], eta, steps: H, gradient: 'exact', horizon: 1, batch: 1, rng });
      },
      cold: () => env.evaluate(thetaBar, grid.rewards[k++ % n], one),
      crossRound: () => {
        const i = k++ % n;
        env.evaluate(thetaBar, grid.rewards[i], one, { V: prev.last[i].V.slice(), occupancy: prev.last[i].occupancy.slice() });
      },
      evalCold: () => env.evaluate(thetaBar, all, four),
      evalWarm: () => env.evaluate(thetaBar, all, four, { V: evalWarm.V.slice(), occupancy: evalWarm.occupancy.slice() }),
    };
    const per = { step: H, cold: 1, crossRound: 1, evalCold: 1, evalWarm: 1 };
    const got = {};
    for (let r = 0; r < 3 * rounds; r++) {
      // Exactly 2n samples per task (each agent twice), medians per task and round.
      const bench = new Bench({ time: 0, warmupTime: 0, iterations: 2 * n, warmupIterations: 1, now: cpuNow });
      for (const [name, f] of Object.entries(tasks)) bench.add(name, f);
      await bench.run();
      const row = {};
      for (const t of bench.tasks) {
        row[t.name] = t.result.latency.p50 / 1e3 / per[t.name];
        (got[t.name] ??= []).push(row[t.name]);
      }
      (perRound[b.name] ??= []).push(row);
    }
    const ratio = (a, c) => median(perRound[b.name].map((r) => r[a] / r[c]));
    rows[b.name] = {
      step: median(got.step), cold: median(got.cold), crossRound: median(got.crossRound), evalCold: median(got.evalCold), evalWarm: median(got.evalWarm),
      stepPerCold: ratio('step', 'cold'), crossPerCold: ratio('crossRound', 'cold'), evalWarmPerCold: ratio('evalWarm', 'evalCold'),
      // The whole round (4 agents' localRound calls + the log's 4-table evaluation), and what
      // cross-round vectors would save of it: (cold - crossRound) per agent, and evalCold - evalWarm.
      crossSaving: median(perRound[b.name].map((r) => (n * (r.cold - r.crossRound) + (r.evalCold - r.evalWarm)) / (n * H * r.step + r.evalCold))),
      eta,
    };
    env.dispose();
  }
  return rows;
}

// ---- run --------------------------------------------------------------------------------------

if (!trainingOnly) await solves();
const py = scipyInfo && { ...scipyInfo, evaluate_s: got['scipy splu evaluation'], value_iteration_s: got['scipy value iteration'] };
const cmd = quick || W > 300 || trainingOnly ? null : wholeCommand();
const train = await exactTraining();
const million = large && !trainingOnly ? millionStates() : null;

const say = (ok, what) => console.log(`${ok ? 'met ' : 'MISSED'}  ${what}`);
const fmt = (x, d = 3) => (x === null || x === undefined ? '-' : +x.toFixed(d));
const rows = [];
for (const [name, s] of Object.entries(got)) {
  const ratio = ratios[name] ?? (name.startsWith('scipy') ? 1 : null);
  rows.push({ work: `${W} x ${W} gridworld, ${name}`, 'median s': +s.toFixed(4), 'x scipy': ratio === null ? '-' : +ratio.toFixed(3) });
}
if (cmd) {
  rows.push({ work: `fedpg evaluate ${W}x${W}.npz --json --out report.npz (whole command)`, 'median s': fmt(cmd.npz), 'x scipy': fmt(cmd.rNpz), 'maxRSS MiB': fmt(cmd.rss, 0) });
  rows.push({ work: `fedpg evaluate ${W}x${W}.json --json --out report.npz (whole command)`, 'median s': fmt(cmd.json), 'x scipy': fmt(cmd.rJson) });
  rows.push({ work: `  scipy evaluation + value iteration (no loading), same rounds`, 'median s': fmt(cmd.base), 'x scipy': 1 });
  rows.push({ work: `  CPU seconds (all threads): fedpg evaluate ${W}x${W}.npz / scipy`, 'median s': `${fmt(cmd.cpu)} / ${fmt(cmd.baseCpu)}`, 'x scipy': fmt(cmd.rCpu) });
  rows.push({ work: `  loading the ${W}x${W}.npz (in-process)`, 'median s': fmt(cmd.load), 'x scipy': cmd.base ? fmt(cmd.load / cmd.base) : '-' });
}
if (million) {
  rows.push({ work: '1000x1000.npz: fedpg load, first in a process', 'median s': fmt(million.cold), 'x scipy': fmt(million.rCold) });
  rows.push({ work: '1000x1000.npz: np.load + csr_matrix, first in a process', 'median s': fmt(million.npCold), 'x scipy': 1 });
  rows.push({ work: '1000x1000.npz: fedpg load, repeated in one process', 'median s': fmt(million.warm), 'x scipy': fmt(million.rWarm) });
  rows.push({ work: '1000x1000.npz: np.load + csr_matrix, repeated', 'median s': fmt(million.npWarm), 'x scipy': 1 });
  rows.push({ work: 'fedpg evaluate 1000x1000.npz --json --out report.npz (whole command)', 'median s': fmt(million.cmd, 2), 'x scipy': fmt(million.rCmd), 'maxRSS MiB': fmt(million.rss, 0) });
  rows.push({ work: '  scipy evaluation + value iteration at 10^6 states (no loading)', 'median s': fmt(million.base, 2), 'x scipy': 1 });
  rows.push({ work: '  CPU seconds (all threads): fedpg evaluate 1000x1000.npz / scipy', 'median s': `${fmt(million.cpu, 1)} / ${fmt(million.baseCpu, 1)}`, 'x scipy': fmt(million.rCpu) });
}
for (const [name, t] of Object.entries(train)) {
  rows.push({ work: `100 x 100, ${name}: exact local step (4 agents' localRound, H = 10, per step)`, 'median s': +t.step.toFixed(5), 'x scipy': '-' });
  rows.push({ work: `100 x 100, ${name}: cold evaluation of one table at theta_bar`, 'median s': +t.cold.toFixed(5), 'x scipy': '-' });
  rows.push({ work: `100 x 100, ${name}: step 0 warm from the previous round's last step`, 'median s': +t.crossRound.toFixed(5), 'x scipy': '-' });
  rows.push({ work: `100 x 100, ${name}: the log's evaluation of 4 tables, cold / warm from the previous round`, 'median s': `${t.evalCold.toFixed(5)} / ${t.evalWarm.toFixed(5)}`, 'x scipy': '-' });
}
console.table(rows);
if (py) notes.push(`scipy ${py.scipy}: J = ${py.J[0]}, J* = ${py.Jstar}`);
for (const n of notes) console.log(`- ${n}`);

if (native && py) {
  const ev = ratios['native evaluate'], js = ratios['native J*'];
  say(ev <= 0.5, `native evaluation <= 0.5x scipy splu: ${ev.toFixed(3)}x`);
  say(js <= 0.5, `native J* <= 0.5x scipy value iteration: ${js.toFixed(3)}x`);
}
if (cmd && cmd.rNpz !== null) say(cmd.rNpz <= 1, `fedpg evaluate ${W}x${W}.npz --json --out (whole command) <= scipy evaluation + value iteration: ${cmd.rNpz.toFixed(3)}x (the JSON file: ${cmd.rJson.toFixed(3)}x; CPU seconds: ${cmd.rCpu === null ? '-' : cmd.rCpu.toFixed(3)}x)`);
if (million && million.rCold !== null) {
  say(million.rCold <= 2, `10^6 states: loading the npz <= 2x np.load + CSR: ${million.rCold.toFixed(3)}x first load in a process (${million.rWarm.toFixed(3)}x repeated)`);
}
if (million && million.rCmd !== null) say(million.rCmd <= 1, `10^6 states: fedpg evaluate (whole command) <= scipy evaluation + value iteration: ${million.rCmd.toFixed(3)}x`);
if (million && million.rss !== null) say(million.rss < 4096, `10^6 states: fedpg evaluate peak memory < 4 GiB: ${million.rss.toFixed(0)} MiB`);
for (const [name, t] of Object.entries(train)) {
  say(t.stepPerCold <= 1, `${name}: exact local step <= one cold evaluation of one table (100 x 100, 4 agents, H = 10, eta = ${t.eta}): ${t.stepPerCold.toFixed(3)}x`);
  console.log(
    `        ${name}: cross-round warm vectors would make step 0 ${t.crossPerCold.toFixed(3)}x a cold evaluation and the log's evaluation ${t.evalWarmPerCold.toFixed(3)}x its cold one: ` +
      `${(100 * t.crossSaving).toFixed(1)}% of a round (4 localRounds + the log's evaluation)`,
  );
}
