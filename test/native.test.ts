import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import type { EnvironmentSpec, Evaluation } from '../src/backends/types.js';
import { BackendUnavailableError } from '../src/backends/select.js';
import { jsBackend } from '../src/backends/js/index.js';
import { loadNativeAddon, nativeBackendFrom, type NativeBackend, type RawEnvironment, type SimdLevel } from '../src/backends/native/index.js';
import { loadMdp } from '../src/mdp/format.js';
import { environmentSpec, stackedRewards, type Mdp } from '../src/mdp/model.js';
import { agentStream, nextDouble } from '../src/rng.js';
import { fixturePath, relativeError } from './helpers/fixtures.js';

/**
 * Native-specific behaviour (the shared kernel suite, test/kernels.test.ts, covers the numbers):
 * the loader's error, argument checks at the Node-API boundary, worker threads, async variants,
 * the random-stream contract against js, and the CPU paths of the LU.
 */

let native: NativeBackend | null = null;
let why = '';
try {
  native = nativeBackendFrom();
} catch (e) {
  why = e instanceof Error ? e.message : String(e);
  if (process.env.CI === 'true' && process.env.FEDPG_ALLOW_MISSING_BACKENDS !== 'native') throw e;
  console.warn(`[tests] native backend not built, skipping test/native.test.ts: ${why.split('\n')[0]}`);
}

const FIXTURES = ['random-s6-a3-n4', 'plateau-s6-a3-n4', 'random-s20-a4-n8', 'random-s20-a4-n8-sparse', 'random-s50-a5-n3', 'speedup-s5-a3-n8'];

function evalBuffers(n: number, S: number, A: number): Evaluation {
  return { J: new Float64Array(n), V: new Float64Array(n * S), Q: new Float64Array(n * S * A), grad: new Float64Array(n * S * A), occupancy: new Float64Array(S) };
}

/** A dense random MDP from a fixed stream; `power` > 1 makes rows peaked (pivoting matters more). */
function randomSpec(S: number, A: number, seed: number, power = 1): { spec: EnvironmentSpec; reward: Float64Array; theta: Float64Array } {
  const r = agentStream(seed, 0);
  const p = new Float64Array(S * A * S);
  for (let row = 0; row < S * A; row++) {
    let z = 0;
    for (let j = 0; j < S; j++) z += p[row * S + j] = nextDouble(r) ** power;
    for (let j = 0; j < S; j++) p[row * S + j] = p[row * S + j]! / z;
  }
  const initial = new Float64Array(S).fill(1 / S);
  const reward = Float64Array.from({ length: S * A }, () => nextDouble(r));
  const theta = Float64Array.from({ length: S * A }, () => 4 * nextDouble(r) - 2);
  return { spec: { states: S, actions: A, gamma: 0.95, initial, transitions: { kind: 'dense', p } }, reward, theta };
}

function sameBits(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

describe('the native loader', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('explains, path by path, why nothing loaded, and how to fix it', () => {
    const root = mkdtempSync(join(tmpdir(), 'fedpg-noaddon-'));
    dirs.push(root);
    writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'fast-fedpg' }));
    let err: unknown;
    try {
      loadNativeAddon(root);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BackendUnavailableError);
    const msg = (err as Error).message;
    expect(msg.split('\n')[0]).toMatch(/native addon is not built/);
    expect(msg).toContain(join(root, 'build', 'Release', 'fedpg_native.node') + ': not found');
    expect(msg).toContain(join(root, 'prebuilds', `${process.platform}-${process.arch}`));
    expect(msg).toMatch(/npm rebuild fast-fedpg/);
    expect(msg).toMatch(/g\+\+/);
    expect(msg).toMatch(/--backend wasm/);
  });

  it('reports a binary that fails to load, and still finds a good one after it', () => {
    const root = mkdtempSync(join(tmpdir(), 'fedpg-badaddon-'));
    dirs.push(root);
    writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'fast-fedpg' }));
    mkdirSync(join(root, 'build', 'Release'), { recursive: true });
    writeFileSync(join(root, 'build', 'Release', 'fedpg_native.node'), 'not an ELF file');
    expect(() => loadNativeAddon(root)).toThrow(/fedpg_native\.node: .*(invalid ELF header|file too short|not a valid)/s);
    if (!native) return;
    const pre = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
    mkdirSync(pre, { recursive: true });
    writeFileSync(join(pre, 'fast-fedpg.napi.node'), readFileSync(native.path));
    const got = loadNativeAddon(root);
    expect(got.path).toBe(join(pre, 'fast-fedpg.napi.node'));
    expect(got.addon.abiVersion).toBe(3);
  });
});

describe.runIf(!!native)('the native backend', () => {
  const nb = native!;
  const mdp = loadMdp(fixturePath('random-s6-a3-n4.json'));
  const spec = environmentSpec(mdp);
  const S = 6, A = 3, SA = 18;
  const R = mdp.rewards[0]!;

  it('reports the CPU path it chose and accepts every path the CPU supports', () => {
    expect(nb.info.abiVersion).toBe(3);
    expect(nb.info.napiVersion).toBe(8);
    expect(nb.info.simdSupported).toContain('generic');
    expect(nb.info.simdSupported).toContain(nb.info.simd);
    for (const simd of nb.info.simdSupported) expect(nb.createEnvironment(spec, { simd }).simd).toBe(simd);
    const unsupported = (['avx2', 'avx512'] as SimdLevel[]).filter((s) => !nb.info.simdSupported.includes(s));
    for (const simd of unsupported) expect(() => nb.createEnvironment(spec, { simd })).toThrow(/not supported by this CPU/);
    expect(() => nb.createEnvironment(spec, { simd: 'sse9' as SimdLevel })).toThrow(RangeError);
  });

  describe('bad input at the boundary throws an Error with a message, never crashes', () => {
    const raw: RawEnvironment = new (loadNativeAddon().addon.Environment)(spec);
    const ok = new Float64Array(SA);
    const out = evalBuffers(1, S, A);
    const rng = () => agentStream(0, 0);

    it('the facade: lengths, non-finite theta, sizes, types', () => {
      const env = nb.createEnvironment(spec);
      expect(() => env.estimateGradient(new Float64Array(17), R, 5, 1, rng(), ok)).toThrow(/theta has length 17, expected 18/);
      expect(() => env.estimateGradient(ok, R, 2 ** 31, 1, rng(), ok)).toThrow(RangeError);
      expect(() => env.estimateGradient(ok, R, 5, 1.5, rng(), ok)).toThrow(/batch/);
      const inf = Float64Array.from(ok);
      inf[17] = -Infinity;
      expect(() => env.evaluate(inf, R, out)).toThrow(/theta\[5\]\[2\] is -Infinity/);
      expect(() => env.evaluate(ok, new Float64Array(19), out)).toThrow(/rewards has length 19/);
      expect(() => env.evaluate(ok, R, { ...out, Q: new Float64Array(17) })).toThrow(/Q output has length 17, expected 18/);
      expect(() => env.truncated(ok, R, 10, { JK: new Float64Array(2), gradK: new Float64Array(SA) })).toThrow(/JK output has length 2/);
      expect(() => env.truncated(ok, R, 2 ** 30, { JK: new Float64Array(1), gradK: new Float64Array(SA) })).toThrow(/too large/);
      expect(() => env.optimal(R, new Float64Array(5))).toThrow(/V output has length 5, expected 6/);
      expect(() => env.localRound({ theta: Float64Array.from(ok), reward: R, correction: new Float64Array(3), eta: 0.1, steps: 1, gradient: 'exact', horizon: 1, batch: 1, rng: rng() })).toThrow(/correction has length 3/);
      expect(() => env.localRound({ theta: Float64Array.from(ok), reward: R, correction: null, eta: NaN, steps: 1, gradient: 'exact', horizon: 1, batch: 1, rng: rng() })).toThrow(/eta/);
      expect(() => env.evaluateRegularized(ok, R, -0.5, out)).toThrow(/tau must be a finite number >= 0/);
      env.dispose();
      env.dispose(); // idempotent
      expect(() => env.evaluate(ok, R, out)).toThrow(/disposed/);
    });

    it('the raw addon (no facade): wrong types', () => {
      const bad: unknown[] = [undefined, null, 3, 'theta', [0, 1], new Float32Array(SA), new Int32Array(SA), {}];
      for (const v of bad) {
        expect(() => raw.evaluate(v as Float64Array, R, out.J, out.V, out.Q, out.grad, out.occupancy)).toThrow(TypeError);
        expect(() => raw.estimateGradient(ok, R, 5, 1, v as Uint32Array, ok)).toThrow(/rng must be a Uint32Array/);
      }
      expect(() => raw.estimateGradient(ok, R, '5' as unknown as number, 1, rng(), ok)).toThrow(/horizon must be a number, got a string/);
      // localRound takes one options object, read by name: a missing or mistyped field is named.
      const round = { theta: ok, reward: R, correction: null, eta: 0.1, steps: 1, gradient: 'sampled' as const, horizon: 5, batch: 1, rng: rng() };
      const call = (o: unknown) => () => raw.localRound(o as typeof round);
      expect(call(undefined)).toThrow(/localRound takes one options object, got undefined/);
      expect(call(ok)).toThrow(/localRound takes one options object, got a Float64Array/);
      expect(call({ ...round, gradient: 'yes' })).toThrow(/options\.gradient must be 'exact' or 'sampled', got a string 'yes'/);
      expect(call({ ...round, gradient: undefined })).toThrow(/options\.gradient must be 'exact' or 'sampled', got undefined/);
      for (const field of ['theta', 'reward', 'rng', 'eta', 'steps', 'horizon', 'batch'] as const) {
        const { [field]: _gone, ...rest } = round;
        expect(call(rest), field).toThrow(TypeError);
        expect(call(rest), field).toThrow(new RegExp(`options\\.${field} must be .*, got undefined`));
        expect(call({ ...round, [field]: 'x' }), field).toThrow(new RegExp(`options\\.${field} must be .*, got a string`));
      }
      expect(call({ ...round, correction: [1, 2] })).toThrow(/options\.correction must be a Float64Array, got an Array/);
      expect(call({ ...round, entropy: '0.1' })).toThrow(/options\.entropy must be a number, got a string/);
      expect(call({ ...round, gradient: 'exact', rng: undefined, horizon: undefined })).not.toThrow(); // exact reads no stream
      // FedSVRPG-M's fields, by name too; the kernel's own checks (RangeError) behind them.
      const sv = { thetaPrev: ok, u: new Float64Array(SA), beta: 0.2, clip: 20 };
      expect(call({ ...round, svrpg: 3 })).toThrow(/options\.svrpg must be an object, got a number/);
      expect(call({ ...round, svrpg: { ...sv, thetaPrev: undefined } })).toThrow(/options\.svrpg\.thetaPrev must be a Float64Array, got undefined/);
      expect(call({ ...round, svrpg: { ...sv, u: new Float64Array(2) } })).toThrow(/options\.svrpg\.u has length 2, expected 18/);
      expect(call({ ...round, svrpg: { ...sv, beta: '1' } })).toThrow(/options\.svrpg\.beta must be a number, got a string/);
      expect(call({ ...round, svrpg: { ...sv, clip: 0.5 } })).toThrow(/clip must be 0 \(no clipping\) or a finite number >= 1, got 0\.5/);
      expect(call({ ...round, svrpg: sv, correction: ok })).toThrow(/svrpg cannot be combined with a correction/);
      expect(call({ ...round, svrpg: sv, entropy: 0.1 })).toThrow(/svrpg cannot be combined with entropy/);
      expect(call({ ...round, svrpg: sv, gradient: 'exact' })).toThrow(/svrpg is sampled only/);
      expect(() => raw.estimateSvrpg(ok, ok, R, 5, 2, 0, rng(), ok, new Float64Array(3))).toThrow(/gradient output \(weighted\) has length 3/);
      expect(() => raw.estimateSvrpg(ok, [1] as unknown as Float64Array, R, 5, 2, 0, rng(), ok, ok)).toThrow(/thetaPrev must be a Float64Array, got an Array/);
      expect(() => (raw.evaluate as (...a: unknown[]) => void)()).toThrow(/theta must be a Float64Array, got undefined/);
    });

    it('the raw addon (no facade): lengths, values and sizes', () => {
      expect(() => raw.estimateGradient(new Float64Array(17), R, 5, 1, rng(), ok)).toThrow(/theta has length 17, expected 18/);
      expect(() => raw.estimateGradient(ok, R, 5, 1, new Uint32Array(3), ok)).toThrow(/rng has length 3, expected 4/);
      expect(() => raw.estimateGradient(ok, R, 5, 1, rng(), new Float64Array(1e3))).toThrow(/gradient output has length 1000/);
      for (const h of [0, -1, 1.5, NaN, Infinity, 2 ** 31]) expect(() => raw.estimateGradient(ok, R, h, 1, rng(), ok)).toThrow(/horizon must be an integer in \[1, 2\^31-1\]/);
      for (const m of [0, 2 ** 53]) expect(() => raw.estimateGradient(ok, R, 5, m, rng(), ok)).toThrow(/batch/);
      const nan = new Float64Array(SA);
      nan[4] = NaN;
      expect(() => raw.estimateGradient(nan, R, 5, 1, rng(), ok)).toThrow(/theta\[1\]\[1\] is NaN, not a finite number/);
      expect(() => raw.localRound({ theta: nan, reward: R, correction: null, eta: 0.1, steps: 1, gradient: 'exact', horizon: 0, batch: 0, rng: rng() })).toThrow(RangeError);
      expect(() => raw.evaluate(ok, new Float64Array(0), out.J, out.V, out.Q, out.grad, out.occupancy)).toThrow(/rewards has length 0/);
      expect(() => raw.truncated(ok, R, -1, out.J, out.grad)).toThrow(/horizon/);
      expect(() => raw.localRound({ theta: ok, reward: R, correction: null, eta: 0.1, steps: -1, gradient: 'exact', horizon: 0, batch: 0, rng: rng() })).toThrow(/options\.steps must be an integer/);
      expect(() => raw.localRound({ theta: ok, reward: R, correction: new Float64Array(3), eta: 0.1, steps: 1, gradient: 'exact', horizon: 0, batch: 0, rng: rng() })).toThrow(/options\.correction has length 3, expected 18/);
      // A detached buffer has length 0: a length error, not a read of freed memory.
      const t = new Float64Array(SA);
      structuredClone(t.buffer, { transfer: [t.buffer] });
      expect(() => raw.estimateGradient(t, R, 5, 1, rng(), ok)).toThrow(/theta has length 0/);
    });

    it('the constructor checks the spec', () => {
      const Env = loadNativeAddon().addon.Environment;
      const make = (patch: Record<string, unknown>, tr?: Record<string, unknown>) => () =>
        new Env({ ...spec, ...patch, transitions: tr ?? spec.transitions } as EnvironmentSpec);
      expect(make({ states: 0 })).toThrow(/states must be an integer/);
      expect(make({ states: 2 ** 31 })).toThrow(RangeError);
      expect(make({ actions: 65536, states: 65536 })).toThrow(/exceeds 2\^31-1/);
      expect(make({ gamma: 1 })).toThrow(/gamma must be in \[0, 1\)/);
      expect(make({ gamma: NaN })).toThrow(/gamma/);
      expect(make({ initial: new Float64Array(5) })).toThrow(/initial has length 5, expected 6/);
      expect(make({}, { kind: 'dense', p: new Float64Array(10) })).toThrow(/dense transitions have length 10, expected S\*A\*S = 108/);
      const neg = new Float64Array(108).fill(1 / 6);
      neg[40] = -0.1;
      expect(make({}, { kind: 'dense', p: neg })).toThrow(/transitions\[2\]\[0\]\[4\] is -0.1/);
      expect(make({}, { kind: 'tabular' })).toThrow(/kind must be 'dense' or 'sparse'/);
      expect(make({}, { kind: 'sparse', rowStart: new Int32Array(19), next: new Int32Array(0), prob: new Float64Array(1) })).toThrow(/differ in length/);
      const rowStart = Int32Array.from({ length: 19 }, (_, r) => r);
      expect(make({}, { kind: 'sparse', rowStart, next: new Int32Array(18).fill(6), prob: new Float64Array(18).fill(1) })).toThrow(/next\[0\] = 6 is not a state index/);
      expect(make({}, { kind: 'sparse', rowStart: rowStart.map((x) => 18 - x), next: new Int32Array(18), prob: new Float64Array(18).fill(1) })).toThrow(/rowStart\[0\] must be 0/);
      expect(() => new Env(null as unknown as EnvironmentSpec)).toThrow(/spec must be an object, got null/);
      expect(() => (Env as unknown as () => unknown)()).toThrow(TypeError);
      // A row with no mass: exact solves work, sampling refuses with a message.
      const p = Float64Array.from((spec.transitions as { p: Float64Array }).p);
      p.fill(0, 0, 6);
      const env = nb.createEnvironment({ ...spec, transitions: { kind: 'dense', p } });
      expect(() => env.estimateGradient(ok, R, 5, 3, rng(), new Float64Array(SA))).toThrow(/row \(state 0, action 0\) has no positive probability/);
    });
  });

  describe('the random-stream contract: same stream, same trajectories as js', () => {
    it.each(FIXTURES)('%s: the rng state and the estimate bit for bit, for every lane count', (name) => {
      const m = loadMdp(fixturePath(`${name}.json`));
      const sp = environmentSpec(m);
      const SA2 = m.states * m.actions;
      const theta = Float64Array.from({ length: SA2 }, (_, j) => 1.5 * Math.sin(7 * j + 1));
      const js = jsBackend.createEnvironment(sp);
      const envs = [nb.createEnvironment(sp), ...[1, 3, 8, 16].map((lanes) => nb.createEnvironment(sp, { lanes }))];
      for (const [K, M, seed] of [[1, 1, 1], [30, 100, 2], [7, 13, 3], [200, 5, 4]] as const) {
        const rj = agentStream(seed, 3);
        const gj = new Float64Array(SA2);
        js.estimateGradient(theta, m.rewards[1]!, K, M, rj, gj);
        let first: Float64Array | null = null;
        for (const env of envs) {
          const rn = agentStream(seed, 3);
          const gn = new Float64Array(SA2);
          env.estimateGradient(theta, m.rewards[1]!, K, M, rn, gn);
          expect(Array.from(rn)).toEqual(Array.from(rj));
          expect(sameBits(gn, gj)).toBe(true); // our own exp and log, the js summation order
          if (first) expect(sameBits(gn, first)).toBe(true); // lanes change the speed, not the bits
          first ??= gn;
        }
      }
    });

    it('a sampled local round matches js bit for bit (theta and rng), with and without correction and entropy', () => {
      const js = jsBackend.createEnvironment(spec);
      const env = nb.createEnvironment(spec);
      const corr = Float64Array.from({ length: SA }, (_, j) => 0.01 * Math.cos(j));
      for (const [correction, entropy] of [[null, 0], [corr, 0], [null, 0.2]] as const) {
        const tj = Float64Array.from({ length: SA }, (_, j) => Math.sin(j)), tn = Float64Array.from(tj);
        const rj = agentStream(11, 0), rn = agentStream(11, 0);
        const args = { reward: R, correction, eta: 0.3, steps: 10, gradient: 'sampled' as const, horizon: 30, batch: 20, entropy };
        js.localRound({ ...args, theta: tj, rng: rj });
        env.localRound({ ...args, theta: tn, rng: rn });
        expect(Array.from(rn)).toEqual(Array.from(rj));
        expect(sameBits(tn, tj)).toBe(true);
      }
    });
  });

  describe('exact quantities', () => {
    it('every CPU path of the blocked LU gives the same bits, and js to 1e-12 (several panels)', () => {
      const { spec: sp, reward, theta } = randomSpec(203, 3, 5, 6);
      const rewards = new Float64Array(2 * 203 * 3);
      rewards.set(reward);
      rewards.set(reward.map((x) => 1 - x), 203 * 3);
      const ref = evalBuffers(2, 203, 3);
      jsBackend.createEnvironment(sp).evaluate(theta, rewards, ref);
      let first: Evaluation | null = null;
      for (const simd of nb.info.simdSupported) {
        const got = evalBuffers(2, 203, 3);
        nb.createEnvironment(sp, { simd }).evaluate(theta, rewards, got);
        for (const k of ['J', 'V', 'Q', 'grad', 'occupancy'] as const) {
          expect(relativeError(Array.from(got[k]), Array.from(ref[k]))).toBeLessThan(1e-12);
          if (first) expect(sameBits(got[k], first[k])).toBe(true);
        }
        first ??= got;
      }
    });

    it('the iterative solver (sparse, S > 2048) agrees with js', () => {
      const S = 2100, A = 2;
      const r = agentStream(21, 0);
      const rowStart = new Int32Array(S * A + 1), next: number[] = [], prob: number[] = [];
      for (let row = 0; row < S * A; row++) {
        const a = Math.floor(nextDouble(r) * S), b = (a + 1 + Math.floor(nextDouble(r) * (S - 1))) % S;
        const w = nextDouble(r);
        next.push(Math.min(a, b), Math.max(a, b));
        prob.push(a < b ? w : 1 - w, a < b ? 1 - w : w);
        rowStart[row + 1] = next.length;
      }
      const sp: EnvironmentSpec = { states: S, actions: A, gamma: 0.9, initial: new Float64Array(S).fill(1 / S), transitions: { kind: 'sparse', rowStart, next: Int32Array.from(next), prob: Float64Array.from(prob) } };
      const theta = Float64Array.from({ length: S * A }, (_, j) => Math.sin(j));
      const reward = Float64Array.from({ length: S * A }, (_, j) => (Math.cos(j) + 1) / 2);
      const a = evalBuffers(1, S, A), b = evalBuffers(1, S, A);
      jsBackend.createEnvironment(sp).evaluate(theta, reward, a);
      nb.createEnvironment(sp).evaluate(theta, reward, b);
      for (const k of ['J', 'V', 'Q', 'grad', 'occupancy'] as const) expect(relativeError(Array.from(b[k]), Array.from(a[k]))).toBeLessThan(1e-12);
    });

    it('entropy-regularised evaluation and estimator agree with js', () => {
      const js = jsBackend.createEnvironment(spec), env = nb.createEnvironment(spec);
      const theta = Float64Array.from({ length: SA }, (_, j) => 2 * Math.sin(j));
      const a = evalBuffers(1, S, A), b = evalBuffers(1, S, A);
      js.evaluateRegularized!(theta, R, 0.3, a);
      env.evaluateRegularized(theta, R, 0.3, b);
      for (const k of ['J', 'V', 'Q', 'grad'] as const) expect(relativeError(Array.from(b[k]), Array.from(a[k]))).toBeLessThan(1e-12);
      for (const tau of [0, 0.25]) {
        const rj = agentStream(4, 4), rn = agentStream(4, 4), gj = new Float64Array(SA), gn = new Float64Array(SA);
        js.estimateRegularized!(theta, R, tau, 40, 25, rj, gj);
        env.estimateRegularized(theta, R, tau, 40, 25, rn, gn);
        expect(Array.from(rn)).toEqual(Array.from(rj));
        expect(sameBits(gn, gj)).toBe(true);
      }
    });
  });

  describe('threads', () => {
    function inWorker(path: string, sp: EnvironmentSpec, rewards: Float64Array, theta: Float64Array): Promise<{ ev: Evaluation; g: Float64Array; rng: Uint32Array }> {
      const code = `
        const { parentPort, workerData } = require('node:worker_threads');
        const addon = require(workerData.path);
        const { spec, rewards, theta, S, A, n } = workerData;
        const env = new addon.Environment(spec);
        const ev = { J: new Float64Array(n), V: new Float64Array(n * S), Q: new Float64Array(n * S * A), grad: new Float64Array(n * S * A), occupancy: new Float64Array(S) };
        const rng = Uint32Array.from(workerData.rng);
        const g = new Float64Array(S * A);
        for (let i = 0; i < 200; i++) {
          env.evaluate(theta, rewards, ev.J, ev.V, ev.Q, ev.grad, ev.occupancy);
          env.estimateGradient(theta, rewards.subarray(0, S * A), 30, 50, rng, g);
        }
        parentPort.postMessage({ ev, g, rng });`;
      const n = rewards.length / (sp.states * sp.actions);
      return new Promise((resolve, reject) => {
        const w = new Worker(code, { eval: true, workerData: { path, spec: sp, rewards, theta, S: sp.states, A: sp.actions, n, rng: Array.from(agentStream(8, 0)) } });
        w.once('message', (m) => {
          resolve(m);
          void w.terminate();
        });
        w.once('error', reject);
      });
    }

    it('loads and runs in two worker threads at once, with the main thread\'s results', async () => {
      const m: Mdp = loadMdp(fixturePath('random-s20-a4-n8.json'));
      const sp = environmentSpec(m);
      const rewards = stackedRewards(m);
      const theta = Float64Array.from({ length: 80 }, (_, j) => Math.cos(j));
      const [a, b] = await Promise.all([inWorker(nb.path, sp, rewards, theta), inWorker(nb.path, sp, rewards, theta)]);
      const env = nb.createEnvironment(sp);
      const ev = evalBuffers(8, 20, 4);
      const rng = agentStream(8, 0);
      const g = new Float64Array(80);
      for (let i = 0; i < 200; i++) {
        env.evaluate(theta, rewards, ev);
        env.estimateGradient(theta, rewards.subarray(0, 80), 30, 50, rng, g);
      }
      for (const w of [a, b]) {
        for (const k of ['J', 'V', 'Q', 'grad', 'occupancy'] as const) expect(sameBits(w.ev[k], ev[k])).toBe(true);
        expect(sameBits(w.g, g)).toBe(true);
        expect(Array.from(w.rng)).toEqual(Array.from(rng));
      }
    });

    it('async variants run off the event loop and give the sync results', async () => {
      const { spec: sp, reward, theta } = randomSpec(300, 4, 9);
      const env = nb.createEnvironment(sp);
      const args = (t: Float64Array) => ({ theta: t, reward, correction: null, eta: 0.1, steps: 25, gradient: 'exact' as const, horizon: 1, batch: 1, rng: agentStream(0, 0) });
      const sync = Float64Array.from(theta);
      const t0 = performance.now();
      env.localRound(args(sync));
      const syncMs = performance.now() - t0;
      let ticks = 0;
      const timer = setInterval(() => ticks++, 1);
      const async = Float64Array.from(theta);
      const pending = env.localRoundAsync(args(async));
      expect(sameBits(async, theta)).toBe(true); // written back only when the job is done
      env.dispose(); // the job keeps what it needs
      await pending;
      clearInterval(timer);
      expect(syncMs).toBeGreaterThan(5); // long enough for a 1 ms timer to fire...
      expect(ticks).toBeGreaterThan(0); // ...and it did, while the job ran
      expect(sameBits(async, sync)).toBe(true);

      const env2 = nb.createEnvironment(sp);
      const ev = evalBuffers(1, 300, 4), evA = evalBuffers(1, 300, 4);
      env2.evaluate(theta, reward, ev);
      await env2.evaluateAsync(theta, reward, evA);
      for (const k of ['J', 'V', 'Q', 'grad', 'occupancy'] as const) expect(sameBits(evA[k], ev[k])).toBe(true);
      const rs = agentStream(2, 2), ra = agentStream(2, 2), gs = new Float64Array(1200), ga = new Float64Array(1200);
      env2.estimateGradient(theta, reward, 30, 40, rs, gs);
      await env2.estimateGradientAsync(theta, reward, 30, 40, ra, ga);
      expect(Array.from(ra)).toEqual(Array.from(rs));
      expect(sameBits(ga, gs)).toBe(true);
      const vs = new Float64Array(300), va = new Float64Array(300);
      expect(await env2.optimalAsync(reward, va)).toBe(env2.optimal(reward, vs));
      expect(sameBits(va, vs)).toBe(true);
      await expect(env2.evaluateAsync(theta, reward, { ...evA, V: new Float64Array(3) })).rejects.toThrow(/V output has length 3/);
      await expect(env2.estimateGradientAsync(theta, reward, 0, 1, ra, ga)).rejects.toThrow(/horizon/);
      // An output detached while the job runs: the promise rejects, nothing is written anywhere.
      const evD = evalBuffers(1, 300, 4);
      const job = env2.evaluateAsync(theta, reward, evD);
      structuredClone(evD.Q.buffer, { transfer: [evD.Q.buffer as ArrayBuffer] });
      await expect(job).rejects.toThrow(/detached or resized/);
      expect(evD.J[0]).toBe(0);
    });
  });
});
