// Large MDPs (issue 14): the sparse solvers past the dense limit, against scipy in the same run.
//   - exact evaluation at theta = 0 of the 300 x 300 multi-task gridworld (9 x 10^4 states,
//     4 agents: 4 reward tables and the occupancy) vs scipy's splu of I - gamma P_pi;
//   - J* of its average MDP vs scipy's value iteration (both to the same proven 1e-12 bound);
//   - `fedpg evaluate` on it, the whole command with loading, vs scipy's evaluation plus value
//     iteration without loading (and how much of the command is loading the JSON file);
//   - exact-gradient training on the 100 x 100 gridworld (Fast-FedPG, 4 agents, H = 10): one
//     local step (localRound's H steps / H) vs one cold exact evaluation of one reward table, and
//     what warm vectors kept across rounds would save (step 0, and the log's evaluation).
// scipy runs when python3 with scipy is present (bench/large_scipy.py; skipped otherwise: the
// project never depends on Python). Medians of tinybench samples; the solves and scipy alternate
// over several rounds and each ratio is the median of the rounds' ratios (a shared machine's load
// changes within minutes).
// Usage: npm run build && node bench/large.bench.js   (FEDPG_BENCH_QUICK=1: 100 x 100 only, short;
// FEDPG_BENCH_WIDTH=1000: a W x W gridworld instead of 300 x 300, without the whole-command row;
// FEDPG_BENCH_PART=training: the exact-training rows only; FEDPG_BENCH_ETA: its step size, 0.1 S by default)
import { Bench } from 'tinybench';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadBackendByName } from '../dist/backends/select.js';
import { gridworldMdp } from '../dist/mdp/generate.js';
import { averageReward, environmentSpec, stackedRewards } from '../dist/mdp/model.js';
import { loadMdp } from '../dist/mdp/format.js';
import { mdpToJson } from '../dist/mdp/parse.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const quick = process.env.FEDPG_BENCH_QUICK === '1';
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
  const r = spawnSync('python3', [join(root, 'bench', 'large_scipy.py'), String(width), String(width), '4', String(reps)], {
    encoding: 'utf8',
    timeout: 600_000,
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

function wholeCommand() {
  if (!native) return null;
  const file = join(tmp, `gridworld-${W}.json`);
  writeFileSync(file, JSON.stringify(mdpToJson(mdp)));
  const cli = join(root, 'dist', 'cli', 'main.js');
  const times = [];
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    const r = spawnSync(process.execPath, [cli, 'evaluate', file, '--backend', 'native', '--json'], { stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 1 << 30 });
    if (r.status !== 0) {
      notes.push(`fedpg evaluate failed: ${String(r.stderr).trim().split('\n')[0]}`);
      return null;
    }
    times.push((performance.now() - t) / 1e3);
  }
  const loads = [];
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    loadMdp(file);
    loads.push((performance.now() - t) / 1e3);
  }
  return { command: median(times), load: median(loads) };
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

const say = (ok, what) => console.log(`${ok ? 'met ' : 'MISSED'}  ${what}`);
const rows = [];
for (const [name, s] of Object.entries(got)) {
  const ratio = ratios[name] ?? (name.startsWith('scipy') ? 1 : null);
  rows.push({ work: `${W} x ${W} gridworld, ${name}`, 'median s': +s.toFixed(4), 'x scipy': ratio === null ? '-' : +ratio.toFixed(3) });
}
if (cmd) {
  const base = py ? py.evaluate_s + py.value_iteration_s : null;
  rows.push({ work: `fedpg evaluate ${W} x ${W} --json (whole command)`, 'median s': +cmd.command.toFixed(3), 'x scipy': base ? +(cmd.command / base).toFixed(3) : '-' });
  rows.push({ work: `  of which loading the ${W} x ${W} JSON file (in-process)`, 'median s': +cmd.load.toFixed(3), 'x scipy': base ? +(cmd.load / base).toFixed(3) : '-' });
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
  if (cmd) {
    const r = cmd.command / (py.evaluate_s + py.value_iteration_s);
    say(r <= 1, `fedpg evaluate (whole command) <= scipy evaluation + value iteration: ${r.toFixed(3)}x (loading the JSON alone: ${(cmd.load / (py.evaluate_s + py.value_iteration_s)).toFixed(3)}x)`);
  }
}
for (const [name, t] of Object.entries(train)) {
  say(t.stepPerCold <= 1, `${name}: exact local step <= one cold evaluation of one table (100 x 100, 4 agents, H = 10, eta = ${t.eta}): ${t.stepPerCold.toFixed(3)}x`);
  console.log(
    `        ${name}: cross-round warm vectors would make step 0 ${t.crossPerCold.toFixed(3)}x a cold evaluation and the log's evaluation ${t.evalWarmPerCold.toFixed(3)}x its cold one: ` +
      `${(100 * t.crossSaving).toFixed(1)}% of a round (4 localRounds + the log's evaluation)`,
  );
}
