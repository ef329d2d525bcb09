// The native backend against the js reference, the wasm backend (when it loads) and a plain C++
// yardstick (bench/yardstick.cc: the same estimator as one sequential loop, and a textbook LU), in
// one run, one table:
//   - Eq. 5 estimator, environment steps/s: dense S=6 A=3 K=30 M=100, and dense random S=1000 A=20
//   - exact evaluation (V, Q, gradient) at S=100 and S=1000, A=10, ms per call
//   - the share of a whole `fedpg train --gradient sampled --backend native` run spent in the kernels
// The yardstick is built on first use (bench/build-yardstick.sh, needs g++); every yardstick result
// is first checked against the addon's (same stream, same estimate; same J), so the rows compare
// the same computation. Quote medians and ratios within one run; the machine may be shared.
// Usage: npm run build && node bench/native.bench.js   (FEDPG_BENCH_QUICK=1: small sizes, short times)
import { Bench } from 'tinybench';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { jsBackend } from '../dist/backends/js/index.js';
import { loadBackendByName } from '../dist/backends/select.js';
import { agentStream, nextDouble } from '../dist/rng.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const quick = process.env.FEDPG_BENCH_QUICK === '1';
const time = quick ? 150 : 1500;
const tmp = mkdtempSync(join(tmpdir(), 'fedpg-native-bench-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

const notes = [];
const backends = [jsBackend];
let native = null;
for (const name of ['native', 'wasm']) {
  try {
    const b = await loadBackendByName(name);
    backends.push(b);
    if (name === 'native') native = b;
  } catch (e) {
    notes.push(`${name} backend not loaded: ${e.message.split('\n')[0]}`);
  }
}
if (native) notes.push(`native addon: ${native.path} (LU path ${native.info.simd}; CPU supports ${native.info.simdSupported.join(', ')})`);

// ---- the yardstick ----------------------------------------------------------------------------

function yardsticks() {
  const dir = join(root, 'build', 'bench');
  const src = join(root, 'bench', 'yardstick.cc');
  const bins = [
    ['C++ yardstick (-O3)', join(dir, 'yardstick')],
    ['C++ yardstick (-O3 -mavx2 -mfma)', join(dir, 'yardstick-avx2')],
  ];
  const stale = bins.some(([, p]) => !existsSync(p) || statSync(p).mtimeMs < statSync(src).mtimeMs);
  if (stale) {
    const r = spawnSync('sh', [join(root, 'bench', 'build-yardstick.sh'), dir], { encoding: 'utf8' });
    if (r.status !== 0) {
      notes.push(`C++ yardstick not built (bench/build-yardstick.sh: ${(r.stderr || r.error?.message || '').trim().split('\n')[0]})`);
      return [];
    }
  }
  return bins;
}
const sticks = yardsticks();

function runYardstick(bin, args) {
  return JSON.parse(execFileSync(bin, args, { encoding: 'utf8', maxBuffer: 1 << 28 }));
}

// ---- MDPs -------------------------------------------------------------------------------------

/** A dense random MDP from a fixed stream: rows of uniform weights, normalised. */
function randomDense(S, A, seed) {
  const r = agentStream(seed, 0);
  const p = new Float64Array(S * A * S);
  for (let row = 0; row < S * A; row++) {
    let z = 0;
    for (let j = 0; j < S; j++) z += p[row * S + j] = nextDouble(r);
    for (let j = 0; j < S; j++) p[row * S + j] /= z;
  }
  const initial = new Float64Array(S).fill(1 / S);
  const reward = Float64Array.from({ length: S * A }, () => nextDouble(r));
  const theta = Float64Array.from({ length: S * A }, () => 2 * nextDouble(r) - 1);
  return { spec: { states: S, actions: A, gamma: 0.9, initial, transitions: { kind: 'dense', p } }, reward, theta };
}

/** The yardstick's input: int32 S, int32 A, float64 gamma, initial, P, reward, theta (little-endian). */
function writeMdp(m) {
  const path = join(tmp, `mdp-${m.spec.states}-${m.spec.actions}.bin`);
  const head = Buffer.alloc(16);
  head.writeInt32LE(m.spec.states, 0);
  head.writeInt32LE(m.spec.actions, 4);
  head.writeDoubleLE(m.spec.gamma, 8);
  const b = (a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  writeFileSync(path, Buffer.concat([head, b(m.spec.initial), b(m.spec.transitions.p), b(m.reward), b(m.theta)]));
  return path;
}

function relErr(a, b) {
  let scale = 1, err = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  for (let i = 0; i < b.length; i++) err = Math.max(err, Math.abs(a[i] - b[i]));
  return err / scale;
}

const rows = [];
const results = {};

// ---- the estimator ----------------------------------------------------------------------------

async function estimator(S, A, K, M) {
  const label = `estimator S=${S} A=${A} K=${K} M=${M}`;
  const m = randomDense(S, A, 1);
  const seed = [3, 0];
  const bench = new Bench({ time, warmupTime: time / 5, iterations: 10, warmupIterations: 4 });
  const envs = [];
  for (const b of backends) {
    const variants = b.name === 'native' ? [['native', {}], ['native (one trajectory at a time)', { lanes: 1 }]] : [[b.name, undefined]];
    for (const [name, opts] of variants) {
      const env = opts ? b.createEnvironment(m.spec, opts) : b.createEnvironment(m.spec);
      envs.push(env);
      const rng = agentStream(...seed);
      const out = new Float64Array(S * A);
      bench.add(name, () => env.estimateGradient(m.theta, m.reward, K, M, rng, out));
    }
  }
  await bench.run();
  const got = {};
  for (const t of bench.tasks) {
    const ms = t.result.latency.p50;
    got[t.name] = { ms, msteps: (K * M) / ms / 1e3 };
  }
  if (sticks.length) {
    const file = writeMdp(m);
    const check = native?.createEnvironment(m.spec);
    const rng = agentStream(...seed);
    const first = new Float64Array(S * A);
    check?.estimateGradient(m.theta, m.reward, K, M, rng, first);
    check?.dispose();
    for (const [name, bin] of sticks) {
      const y = runYardstick(bin, ['estimate', file, K, M, time / 1000, ...agentStream(...seed)]);
      if (check) {
        const same = y.rngAfterFirst.every((v, i) => v === rng[i]) && relErr(y.first, first) < 1e-12;
        if (!same) notes.push(`WARNING: ${name} does not reproduce the addon's estimate on ${label}`);
      }
      got[name] = { ms: y.usPerCall / 1e3, msteps: y.stepsPerSec / 1e6 };
    }
  }
  const stick = got['C++ yardstick (-O3)'];
  for (const [name, r] of Object.entries(got)) {
    rows.push({
      kernel: label,
      backend: name,
      'median ms/call': +r.ms.toFixed(4),
      'M steps/s': +r.msteps.toFixed(2),
      'x js': +(r.msteps / got.js.msteps).toFixed(2),
      'x C++ yardstick': stick ? +(r.msteps / stick.msteps).toFixed(2) : '-',
    });
  }
  results[label] = got;
  for (const e of envs) e.dispose();
}

// ---- exact evaluation -------------------------------------------------------------------------

async function evaluation(S, A) {
  const label = `exact evaluation S=${S} A=${A}`;
  const m = randomDense(S, A, 2);
  const big = S >= 1000;
  const bench = new Bench({ time, warmupTime: time / 5, iterations: big ? 4 : 20, warmupIterations: big ? 1 : 8 });
  const out = { J: new Float64Array(1), V: new Float64Array(S), Q: new Float64Array(S * A), grad: new Float64Array(S * A), occupancy: new Float64Array(S) };
  const envs = [];
  for (const b of backends) {
    const variants = b.name === 'native' ? native.info.simdSupported.slice().reverse().map((simd) => [simd === native.info.simd ? 'native' : `native (LU path ${simd})`, { simd }]) : [[b.name, undefined]];
    for (const [name, opts] of variants) {
      const env = opts ? b.createEnvironment(m.spec, opts) : b.createEnvironment(m.spec);
      envs.push(env);
      bench.add(name, () => env.evaluate(m.theta, m.reward, out));
    }
  }
  await bench.run();
  const got = {};
  for (const t of bench.tasks) got[t.name] = t.result.latency.p50;
  let J = null;
  if (native) {
    const env = native.createEnvironment(m.spec);
    env.evaluate(m.theta, m.reward, out);
    J = out.J[0];
    env.dispose();
  }
  const factor = {};
  if (sticks.length) {
    const file = writeMdp(m);
    for (const [name, bin] of sticks) {
      const y = runYardstick(bin, ['evaluate', file, time / 1000]);
      if (J !== null && Math.abs(y.J - J) > 1e-10 * Math.max(1, Math.abs(J))) notes.push(`WARNING: ${name} J = ${y.J} differs from the addon's ${J} on ${label}`);
      got[name] = y.msPerEvaluate;
      factor[name] = y.msPerFactor;
    }
  }
  const stick = got['C++ yardstick (-O3)'];
  for (const [name, ms] of Object.entries(got)) {
    rows.push({
      kernel: label,
      backend: name + (factor[name] !== undefined ? ` [LU alone ${factor[name].toFixed(2)} ms]` : ''),
      'median ms/call': +ms.toFixed(3),
      'M steps/s': '-',
      'x js': +(got.js / ms).toFixed(2),
      'x C++ yardstick': stick ? +(stick / ms).toFixed(2) : '-',
    });
  }
  results[label] = got;
  for (const e of envs) e.dispose();
}

// ---- a whole training run ---------------------------------------------------------------------

/** Times every NativeEnvironment call of `fedpg train` (in-process agents) through a preloaded hook. */
function trainShare() {
  const fixture = join(root, 'test', 'fixtures', 'random-s6-a3-n4.json');
  const cli = join(root, 'dist', 'cli', 'main.js');
  if (!native || !existsSync(fixture) || !existsSync(cli)) return;
  const hook = join(tmp, 'hook.mjs');
  writeFileSync(
    hook,
    `import { NativeEnvironment } from ${JSON.stringify(pathToFileURL(join(root, 'dist', 'backends', 'native', 'index.js')).href)};
const t0 = performance.now();
let ms = 0, calls = 0;
for (const name of Object.getOwnPropertyNames(NativeEnvironment.prototype)) {
  const f = NativeEnvironment.prototype[name];
  if (name === 'constructor' || name === 'dispose' || typeof f !== 'function') continue;
  NativeEnvironment.prototype[name] = function (...a) {
    const s = performance.now();
    try { return f.apply(this, a); } finally { ms += performance.now() - s; calls++; }
  };
}
process.on('exit', () => process.stderr.write('FEDPG_KERNEL_TIME ' + JSON.stringify({ kernelMs: ms, calls, sinceHookMs: performance.now() - t0 }) + '\\n'));
`,
  );
  const args = [cli, 'train', fixture, '--gradient', 'sampled', '--backend', 'native', '--rounds', '300', '--local-steps', '10', '--batch', '100', '--horizon', '30', '--workers', '1', '--json'];
  const runs = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, ['--import', pathToFileURL(hook).href, ...args], { encoding: 'utf8', maxBuffer: 1 << 26 });
    const wall = performance.now() - t0;
    const line = (r.stderr || '').split('\n').find((l) => l.startsWith('FEDPG_KERNEL_TIME '));
    if (r.status !== 0 || !line) {
      notes.push(`train run not measured: ${(r.stderr || '').trim().split('\n').slice(-1)[0]}`);
      return;
    }
    runs.push({ wall, ...JSON.parse(line.slice('FEDPG_KERNEL_TIME '.length)) });
  }
  const t0 = performance.now();
  spawnSync(process.execPath, [cli, '--version']);
  const startup = performance.now() - t0;
  const best = runs.sort((a, b) => a.wall - b.wall)[0];
  const steps = 4 * 100 * (1 + 300 * 11) * 30;
  rows.push({
    kernel: 'fedpg train (N=4 H=10 T=300 M=100 K=30, S=6 A=3, --workers 1)',
    backend: `native: ${best.calls} kernel calls`,
    'median ms/call': +best.wall.toFixed(1),
    'M steps/s': +(steps / best.wall / 1e3).toFixed(2),
    'x js': '-',
    'x C++ yardstick': '-',
  });
  results.train = { ...best, startupMs: startup };
  notes.push(
    `train run (best of 3): ${best.wall.toFixed(0)} ms wall, ${best.kernelMs.toFixed(0)} ms (${((100 * best.kernelMs) / best.wall).toFixed(0)}%) inside native kernel calls; ` +
      `the rest: process start and module loading (\`fedpg --version\` alone takes ${startup.toFixed(0)} ms), parsing, the federation loop in JS, output`,
  );
}

await estimator(6, 3, 30, 100);
if (!quick) await estimator(1000, 20, 30, 100);
await evaluation(100, 10);
if (!quick) await evaluation(1000, 10);
trainShare();

console.table(rows);
for (const n of notes) console.log(`- ${n}`);

// The targets, as measured in this run.
const say = (ok, what) => console.log(`${ok ? 'met ' : 'MISSED'}  ${what}`);
const e6 = results['estimator S=6 A=3 K=30 M=100'];
if (native && e6) {
  const y = e6['C++ yardstick (-O3)'];
  if (y) say(e6.native.msteps >= 0.8 * y.msteps, `native estimator >= 0.8x the C++ yardstick at S=6: ${(e6.native.msteps / y.msteps).toFixed(2)}x`);
  for (const [label, r] of Object.entries(results)) {
    if (label.startsWith('estimator')) say(r.native.msteps > r.js.msteps, `native estimator faster than js on ${label}: ${(r.native.msteps / r.js.msteps).toFixed(2)}x`);
  }
  const e1000 = results['estimator S=1000 A=20 K=30 M=100'];
  if (e1000?.['C++ yardstick (-O3)']) {
    const r = e1000.native.msteps / e1000['C++ yardstick (-O3)'].msteps;
    say(r > 1, `native estimator beats the plain C++ yardstick at S=1000 A=20: ${r.toFixed(2)}x`);
  }
  const x1000 = results['exact evaluation S=1000 A=10'];
  if (x1000) say(x1000.native <= 50, `exact evaluation at S=1000 A=10 within ~50 ms: ${x1000.native.toFixed(1)} ms`);
}
