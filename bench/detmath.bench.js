// Issue 17: what our own exp and log (src/math, native/src/detmath.h, assembly/detmath.ts) cost
// against each platform's (V8 Math.exp, glibc std::exp, AssemblyScript's Math.exp), and what the
// Eq. 5 estimator costs with them, before and after, in one run.
//   - functions: ns per call over 4096 arguments in the softmax range (exp on [-20, 0], log on [1, 20])
//   - estimator: ms per call, this build against the commit before issue 17 when
//     FEDPG_BASELINE_ROOT points at a build of it (bench/baseline.sh COMMIT DIR); otherwise this build only
// Usage: npm run build && node bench/detmath.bench.js   (FEDPG_BENCH_QUICK=1: short times)
import { Bench } from 'tinybench';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { detExp, detLog } from '../dist/math/index.js';
import { jsBackend } from '../dist/backends/js/index.js';
import { nativeBackendFrom, loadNativeAddon } from '../dist/backends/native/index.js';
import { loadWasmBackend } from '../dist/backends/wasm/index.js';
import { environmentSpec } from '../dist/mdp/model.js';
import { randomMdp } from '../dist/mdp/generate.js';
import { agentStream } from '../dist/rng.js';

const quick = process.env.FEDPG_BENCH_QUICK === '1';
const time = quick ? 150 : 1500;
const notes = [];
const rows = [];

// ---- the functions -------------------------------------------------------------------------
const N = 4096;
const xe = Float64Array.from({ length: N }, (_, i) => -20 * ((i * 0.6180339887) % 1));
const xl = Float64Array.from({ length: N }, (_, i) => 1 + 19 * ((i * 0.6180339887) % 1));
const out = new Float64Array(N);
let sink = 0;
const fn = new Bench({ time, warmupTime: quick ? 30 : 300 });
fn.add('js: Math.exp', () => { for (let i = 0; i < N; i++) out[i] = Math.exp(xe[i]); sink += out[7]; });
fn.add('js: detExp', () => { for (let i = 0; i < N; i++) out[i] = detExp(xe[i]); sink += out[7]; });
fn.add('js: Math.log', () => { for (let i = 0; i < N; i++) out[i] = Math.log(xl[i]); sink += out[7]; });
fn.add('js: detLog', () => { for (let i = 0; i < N; i++) out[i] = detLog(xl[i]); sink += out[7]; });
let addon = null;
try {
  addon = loadNativeAddon().addon;
  fn.add('native: std::exp', () => addon.mapMath('std.exp', xe, out));
  fn.add('native: det::exp', () => addon.mapMath('exp', xe, out));
  fn.add('native: std::log', () => addon.mapMath('std.log', xl, out));
  fn.add('native: det::log', () => addon.mapMath('log', xl, out));
} catch (e) {
  notes.push(`native not loaded: ${e.message.split('\n')[0]}`);
}
const wasm = await loadWasmBackend();
fn.add('wasm: AS Math.exp', () => wasm.mapMath('as.exp', xe, out));
fn.add('wasm: detExp', () => wasm.mapMath('exp', xe, out));
fn.add('wasm: AS Math.log', () => wasm.mapMath('as.log', xl, out));
fn.add('wasm: detLog', () => wasm.mapMath('log', xl, out));
await fn.run();
const fnNs = {};
for (const t of fn.tasks) fnNs[t.name] = (t.result.latency.p50 * 1e6) / N;
const pairs = [
  ['js: detExp', 'js: Math.exp'], ['js: detLog', 'js: Math.log'],
  ['native: det::exp', 'native: std::exp'], ['native: det::log', 'native: std::log'],
  ['wasm: detExp', 'wasm: AS Math.exp'], ['wasm: detLog', 'wasm: AS Math.log'],
];
for (const [ours, theirs] of pairs) {
  if (!(ours in fnNs)) continue;
  rows.push({ what: theirs, 'median ns/call': +fnNs[theirs].toFixed(2), 'ours / theirs': '' });
  rows.push({ what: ours, 'median ns/call': +fnNs[ours].toFixed(2), 'ours / theirs': +(fnNs[ours] / fnNs[theirs]).toFixed(3) });
}
console.log('(wasm and native rows include one boundary crossing per 4096 calls; sink', sink > 0 ? '+' : '-', ')');
console.table(rows);

// ---- the estimator, before and after -------------------------------------------------------
const builds = [['now', { js: jsBackend, native: addon ? nativeBackendFrom() : null, wasm }]];
const baseRoot = process.env.FEDPG_BASELINE_ROOT;
if (baseRoot) {
  const imp = (p) => import(pathToFileURL(join(baseRoot, 'dist', p)).href);
  const bjs = (await imp('backends/js/index.js')).jsBackend;
  let bnative = null;
  try {
    bnative = (await imp('backends/native/index.js')).nativeBackendFrom(baseRoot);
  } catch (e) {
    notes.push(`baseline native not loaded: ${e.message.split('\n')[0]}`);
  }
  const { instantiateWasmBackend, wasmFileName } = await imp('backends/wasm/core.js');
  const { readFileSync } = await import('node:fs');
  const bwasm = await instantiateWasmBackend(readFileSync(join(baseRoot, 'wasm', wasmFileName())));
  builds.push(['before', { js: bjs, native: bnative, wasm: bwasm }]);
  notes.push(`baseline: ${baseRoot}`);
} else {
  notes.push('no FEDPG_BASELINE_ROOT: the estimator rows show this build only (bench/baseline.sh COMMIT DIR builds one)');
}

const est = [];
for (const [S, A, K, M, tau] of [[6, 3, 30, 100, 0], [100, 10, 50, 10, 0], [100, 10, 50, 10, 0.1]]) {
  const mdp = randomMdp({ states: S, actions: A, agents: 1, seed: 1 });
  const theta = Float64Array.from({ length: S * A }, (_, j) => Math.sin(j));
  const g = new Float64Array(S * A);
  const bench = new Bench({ time, warmupTime: quick ? 30 : 300 });
  // Interleaved per backend (before, now), so a drift of the shared machine hits both alike.
  for (const name of ['js', 'native', 'wasm']) {
    for (const [label, set] of builds) {
      const b = set[name];
      if (!b) continue;
      const env = b.createEnvironment(environmentSpec(mdp));
      const rng = agentStream(0, 0);
      const call = tau > 0
        ? () => env.estimateRegularized(theta, mdp.rewards[0], tau, K, M, rng, g)
        : () => env.estimateGradient(theta, mdp.rewards[0], K, M, rng, g);
      bench.add(`${name} ${label}`, call);
    }
  }
  await bench.run();
  const ms = Object.fromEntries(bench.tasks.map((t) => [t.name, t.result.latency.p50]));
  for (const name of ['js', 'native', 'wasm']) {
    if (!(`${name} now` in ms)) continue;
    const kernel = `${tau > 0 ? 'GPOMDP tau=0.1' : 'Eq. 5'} S=${S} A=${A} K=${K} M=${M}`;
    const before = ms[`${name} before`];
    est.push({
      kernel,
      backend: name,
      'before ms': before !== undefined ? +before.toFixed(4) : '',
      'now ms': +ms[`${name} now`].toFixed(4),
      'now / before': before !== undefined ? +(ms[`${name} now`] / before).toFixed(3) : '',
    });
  }
}
console.table(est);
for (const n of notes) console.log(n);
