import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { Environment, EnvironmentSpec, Evaluation } from '../src/backends/types.js';
import { loadWasmBackend, wasmFileUrl } from '../src/backends/wasm/index.js';
import { instantiateWasmBackend, simdSupported, wasmFileName, type WasmBackend } from '../src/backends/wasm/core.js';
import { jsBackend } from '../src/backends/js/index.js';
import { DenseLU } from '../src/backends/js/exact.js';
import { averageReward, environmentSpec, stackedRewards, type Mdp } from '../src/mdp/model.js';
import { randomMdp } from '../src/mdp/generate.js';
import { agentStream } from '../src/rng.js';
import { relativeError } from './helpers/fixtures.js';

/**
 * What only the wasm backend has: two builds (SIMD and scalar) that must agree bit for bit, a
 * linear memory that grows under live environments, the blocked LU, the lockstep sampler and its
 * lanes, and the facade's refusals. The shared kernel suite (kernels.test.ts) covers the rest.
 */

const simd = await loadWasmBackend({ simd: true });
const scalar = await loadWasmBackend({ simd: false });

function evalBuffers(n: number, S: number, A: number): Evaluation {
  return { J: new Float64Array(n), V: new Float64Array(n * S), Q: new Float64Array(n * S * A), grad: new Float64Array(n * S * A), occupancy: new Float64Array(S) };
}

function evaluateAll(env: Environment, mdp: Mdp, theta: Float64Array, rewards = stackedRewards(mdp)): Evaluation {
  const out = evalBuffers(rewards.length / (mdp.states * mdp.actions), mdp.states, mdp.actions);
  env.evaluate(theta, rewards, out);
  return out;
}

function thetaFor(mdp: Mdp, scale = 1.5): Float64Array {
  return Float64Array.from({ length: mdp.states * mdp.actions }, (_, j) => scale * Math.sin(1.3 * j + 0.4));
}

describe('the two wasm builds', () => {
  it('load as asked and report which one runs', () => {
    expect(simdSupported()).toBe(true); // Node 20's V8 runs wasm SIMD
    expect(simd.simd).toBe(true);
    expect(scalar.simd).toBe(false);
    expect(simd.name).toBe('wasm');
    expect(wasmFileName(true)).toBe('fedpg-simd.wasm');
    expect(wasmFileName(false)).toBe('fedpg.wasm');
  });

  it('instantiate from raw bytes, as the browser entry and Web Workers do', async () => {
    const bytes = new Uint8Array(readFileSync(fileURLToPath(wasmFileUrl(false))));
    const b = await instantiateWasmBackend(bytes);
    const mdp = randomMdp({ states: 7, actions: 2, agents: 1, seed: 3 });
    const out = evaluateAll(b.createEnvironment(environmentSpec(mdp)), mdp, thetaFor(mdp));
    const ref = evaluateAll(jsBackend.createEnvironment(environmentSpec(mdp)), mdp, thetaFor(mdp));
    expect(relativeError(Array.from(out.grad), Array.from(ref.grad))).toBeLessThan(1e-12);
    await expect(instantiateWasmBackend(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 9]))).rejects.toThrow();
  });

  // 150 states: two full LU panels of 64 and a last one of 22, a trailing matrix whose order is
  // not a multiple of 4 (row and column remainders of the micro-kernel).
  const mdp = randomMdp({ states: 150, actions: 4, agents: 3, seed: 21, gamma: 0.97 });
  const sparse = randomMdp({ states: 90, actions: 3, agents: 2, seed: 22, branching: 5, gamma: 0.9 });

  it.each([
    ['dense', mdp],
    ['sparse', sparse],
  ] as const)('give identical bits on every kernel (%s kernel)', (_k, m) => {
    const theta = thetaFor(m);
    const S = m.states, SA = S * m.actions, N = m.rewards.length;
    const a = simd.createEnvironment(environmentSpec(m));
    const b = scalar.createEnvironment(environmentSpec(m));
    const ea = evaluateAll(a, m, theta), eb = evaluateAll(b, m, theta);
    for (const k of ['J', 'V', 'Q', 'grad', 'occupancy'] as const) expect(Array.from(ea[k])).toEqual(Array.from(eb[k]));
    const ta = { JK: new Float64Array(N), gradK: new Float64Array(N * SA) };
    const tb = { JK: new Float64Array(N), gradK: new Float64Array(N * SA) };
    a.truncated(theta, stackedRewards(m), 17, ta);
    b.truncated(theta, stackedRewards(m), 17, tb);
    expect(Array.from(ta.gradK)).toEqual(Array.from(tb.gradK));
    const va = new Float64Array(S), vb = new Float64Array(S);
    expect(a.optimal(averageReward(m), va)).toBe(b.optimal(averageReward(m), vb));
    expect(Array.from(va)).toEqual(Array.from(vb));
    const ra = agentStream(5, 2), rb = agentStream(5, 2);
    const ga = new Float64Array(SA), gb = new Float64Array(SA);
    a.estimateGradient(theta, m.rewards[1]!, 25, 19, ra, ga);
    b.estimateGradient(theta, m.rewards[1]!, 25, 19, rb, gb);
    expect(Array.from(ga)).toEqual(Array.from(gb));
    expect(Array.from(ra)).toEqual(Array.from(rb));
    for (const gradient of ['exact', 'sampled'] as const) {
      const xa = Float64Array.from(theta), xb = Float64Array.from(theta);
      const corr = Float64Array.from({ length: SA }, (_, j) => 0.01 * Math.cos(j));
      a.localRound({ theta: xa, reward: m.rewards[0]!, correction: corr, eta: 0.3, steps: 2, gradient, horizon: 10, batch: 3, rng: ra });
      b.localRound({ theta: xb, reward: m.rewards[0]!, correction: corr, eta: 0.3, steps: 2, gradient, horizon: 10, batch: 3, rng: rb });
      expect(Array.from(xa)).toEqual(Array.from(xb));
    }
    // FedSVRPG-M's kernel (8+ actions would take the SIMD action pick; these take the scalar one).
    const prev = theta.map((v, j) => v + 0.2 * Math.sin(j));
    const sv = { thetaPrev: prev, u: Float64Array.from({ length: SA }, (_, j) => 0.1 * Math.cos(j)), beta: 0.4, clip: 5 };
    const ya = Float64Array.from(theta), yb = Float64Array.from(theta);
    a.localRound({ theta: ya, reward: m.rewards[0]!, correction: null, eta: 0.3, steps: 3, gradient: 'sampled', horizon: 10, batch: 4, rng: ra, svrpg: sv });
    b.localRound({ theta: yb, reward: m.rewards[0]!, correction: null, eta: 0.3, steps: 3, gradient: 'sampled', horizon: 10, batch: 4, rng: rb, svrpg: sv });
    expect(Array.from(ya)).toEqual(Array.from(yb));
    expect(Array.from(ra)).toEqual(Array.from(rb));
    // ... and both agree with the js reference.
    const ej = evaluateAll(jsBackend.createEnvironment(environmentSpec(m)), m, theta);
    for (const k of ['J', 'V', 'Q', 'grad', 'occupancy'] as const) expect(relativeError(Array.from(ea[k]), Array.from(ej[k]))).toBeLessThan(1e-12);
  });
});

describe('the blocked LU', () => {
  it.each([1, 3, 64, 65, 131])('factors like the js DenseLU (n = %i): same pivots, factors to 1e-13', (n) => {
    const a = Float64Array.from({ length: n * n }, (_, i) => Math.sin(0.7 * i + 1) + (i % (n + 1) === 0 ? 0.5 : 0));
    const ref = new DenseLU(n, Float64Array.from(a));
    ref.factor();
    for (const b of [simd, scalar]) {
      const f = Float64Array.from(a);
      const piv = b.factorLU(f, n);
      expect(Array.from(piv)).toEqual(Array.from(ref.piv));
      expect(relativeError(Array.from(f), Array.from(ref.a))).toBeLessThan(1e-13);
    }
  });

  it('refuses a singular matrix with a message', () => {
    const n = 70;
    const a = Float64Array.from({ length: n * n }, (_, i) => Math.cos(i));
    for (let j = 0; j < n; j++) a[5 * n + j] = 2 * a[9 * n + j]!; // two proportional rows
    a.fill(0, 30 * n, 31 * n);
    expect(() => simd.factorLU(a, n)).toThrow(/singular/);
  });
});

describe('linear memory', () => {
  it('grows under live environments without corrupting them (a big MDP after a small one)', async () => {
    const b = await loadWasmBackend();
    const small = randomMdp({ states: 6, actions: 3, agents: 2, seed: 1 });
    const se = b.createEnvironment(environmentSpec(small));
    const ref = jsBackend.createEnvironment(environmentSpec(small));
    const th = thetaFor(small);
    const r1 = agentStream(1, 0), r2 = agentStream(1, 0);
    const g1 = new Float64Array(18), g2 = new Float64Array(18);
    se.estimateGradient(th, small.rewards[0]!, 30, 10, r1, g1);
    ref.estimateGradient(th, small.rewards[0]!, 30, 10, r2, g2);
    expect(relativeError(Array.from(g1), Array.from(g2))).toBeLessThan(1e-12);
    const before = b.memoryBytes();

    // 700 states: the 3.9 MB LU matrix and the CSR of 2.1M transition entries do not fit the
    // memory the module started with.
    const big = randomMdp({ states: 700, actions: 3, agents: 1, seed: 2, gamma: 0.95 });
    const be = b.createEnvironment(environmentSpec(big));
    const bth = thetaFor(big, 0.5);
    const out = evaluateAll(be, big, bth);
    expect(b.memoryBytes()).toBeGreaterThan(before + 20e6);
    const jsOut = evaluateAll(jsBackend.createEnvironment(environmentSpec(big)), big, bth);
    for (const k of ['J', 'V', 'Q', 'grad', 'occupancy'] as const) expect(relativeError(Array.from(out[k]), Array.from(jsOut[k]))).toBeLessThan(1e-12);

    // The small environment's views were detached by the growth: it must still work, and right.
    se.estimateGradient(th, small.rewards[1]!, 30, 10, r1, g1);
    ref.estimateGradient(th, small.rewards[1]!, 30, 10, r2, g2);
    expect(Array.from(r1)).toEqual(Array.from(r2));
    expect(relativeError(Array.from(g1), Array.from(g2))).toBeLessThan(1e-12);
    const t1 = Float64Array.from(th), t2 = Float64Array.from(th);
    se.localRound({ theta: t1, reward: small.rewards[0]!, correction: null, eta: 0.1, steps: 3, gradient: 'sampled', horizon: 20, batch: 2, rng: r1 });
    ref.localRound({ theta: t2, reward: small.rewards[0]!, correction: null, eta: 0.1, steps: 3, gradient: 'sampled', horizon: 20, batch: 2, rng: r2 });
    expect(relativeError(Array.from(t1), Array.from(t2))).toBeLessThan(1e-12);

    // Freed blocks are reused: building and dropping the big environment again does not grow memory.
    be.dispose();
    be.dispose(); // idempotent
    const grown = b.memoryBytes();
    for (let i = 0; i < 2; i++) {
      const again = b.createEnvironment(environmentSpec(big));
      evaluateAll(again, big, bth);
      again.dispose();
    }
    expect(b.memoryBytes()).toBe(grown);
    expect(() => evaluateAll(be, big, bth)).toThrow(/disposed/);
  });

  it('takes the sparse iterative path past 2048 states, like js', () => {
    const mdp = randomMdp({ states: 2100, actions: 2, agents: 2, seed: 8, branching: 4, gamma: 0.9 });
    const theta = thetaFor(mdp, 0.7);
    const w = evaluateAll(simd.createEnvironment(environmentSpec(mdp)), mdp, theta);
    const j = evaluateAll(jsBackend.createEnvironment(environmentSpec(mdp)), mdp, theta);
    for (const k of ['J', 'V', 'Q', 'grad', 'occupancy'] as const) expect(relativeError(Array.from(w[k]), Array.from(j[k]))).toBeLessThan(1e-12);
    const rbar = averageReward(mdp);
    const vw = new Float64Array(mdp.states), vj = new Float64Array(mdp.states);
    const envW = simd.createEnvironment(environmentSpec(mdp));
    expect(Math.abs(envW.optimal(rbar, vw) - jsBackend.createEnvironment(environmentSpec(mdp)).optimal(rbar, vj))).toBeLessThan(1e-12);
    expect(relativeError(Array.from(vw), Array.from(vj))).toBeLessThan(1e-12);
  });
});

describe('the lockstep sampler', () => {
  // Batches around the 16 lanes, horizons from 1, a dense and a sparse kernel, and an initial
  // distribution with zeros (alias rows skip zero-probability outcomes).
  const dense = randomMdp({ states: 12, actions: 5, agents: 1, seed: 31 });
  const sparse = randomMdp({ states: 300, actions: 4, agents: 1, seed: 32, branching: 3 });
  // 200 x 5 rows of 200 columns: 3.2 MB of alias columns, past the in-cache threshold (256 KB),
  // so next states are resolved in the separate pass that overlaps the lanes' cache misses.
  const large = randomMdp({ states: 200, actions: 5, agents: 1, seed: 33 });
  const zeroStart = (m: Mdp): EnvironmentSpec => {
    const spec = environmentSpec(m);
    const initial = new Float64Array(m.states);
    initial[2] = 0.25;
    initial[m.states - 1] = 0.75;
    return { ...spec, initial };
  };
  it.each([
    ['dense', dense],
    ['sparse', sparse],
    ['large', large],
  ] as const)('draws the same trajectories as js for any batch and horizon (%s)', (_k, m) => {
    for (const spec of [environmentSpec(m), zeroStart(m)]) {
      const a = simd.createEnvironment(spec), b = jsBackend.createEnvironment(spec);
      const theta = thetaFor(m, 2);
      const ra = agentStream(77, 3), rb = agentStream(77, 3);
      const ga = new Float64Array(theta.length), gb = new Float64Array(theta.length);
      for (const [K, M] of [[1, 1], [1, 40], [2, 16], [7, 17], [33, 15], [50, 37]] as const) {
        a.estimateGradient(theta, m.rewards[0]!, K, M, ra, ga);
        b.estimateGradient(theta, m.rewards[0]!, K, M, rb, gb);
        expect(Array.from(ra)).toEqual(Array.from(rb));
        expect(relativeError(Array.from(ga), Array.from(gb))).toBeLessThan(1e-12);
      }
      // A smaller horizon after a larger one reuses the lane buffers; a new theta touches new rows.
      const th2 = thetaFor(m, -1);
      a.estimateGradient(th2, m.rewards[0]!, 3, 5, ra, ga);
      b.estimateGradient(th2, m.rewards[0]!, 3, 5, rb, gb);
      expect(relativeError(Array.from(ga), Array.from(gb))).toBeLessThan(1e-12);
    }
  });

  it('handles a deterministic policy (probabilities that underflow to 0)', () => {
    const theta = thetaFor(dense, 400); // exp(-800) = 0: most actions get pi = 0 exactly
    const a = simd.createEnvironment(environmentSpec(dense)), b = jsBackend.createEnvironment(environmentSpec(dense));
    const ra = agentStream(4, 4), rb = agentStream(4, 4);
    const ga = new Float64Array(theta.length), gb = new Float64Array(theta.length);
    a.estimateGradient(theta, dense.rewards[0]!, 20, 20, ra, ga);
    b.estimateGradient(theta, dense.rewards[0]!, 20, 20, rb, gb);
    expect(Array.from(ra)).toEqual(Array.from(rb));
    expect(relativeError(Array.from(ga), Array.from(gb))).toBeLessThan(1e-12);
    expect(ga.some((g) => g !== 0)).toBe(true);
  });
});

describe('the entropy-regularised kernels', () => {
  const mdp = randomMdp({ states: 40, actions: 4, agents: 2, seed: 41, gamma: 0.9 });
  it('match js: exact J_tau and its gradient, and the GPOMDP estimate from the same stream', () => {
    const theta = thetaFor(mdp, 3);
    const tau = 0.2;
    const a = simd.createEnvironment(environmentSpec(mdp)), c = scalar.createEnvironment(environmentSpec(mdp));
    const b = jsBackend.createEnvironment(environmentSpec(mdp));
    const R = stackedRewards(mdp);
    const oa = evalBuffers(2, 40, 4), ob = evalBuffers(2, 40, 4), oc = evalBuffers(2, 40, 4);
    a.evaluateRegularized!(theta, R, tau, oa);
    b.evaluateRegularized!(theta, R, tau, ob);
    c.evaluateRegularized!(theta, R, tau, oc);
    for (const k of ['J', 'V', 'Q', 'grad'] as const) {
      expect(relativeError(Array.from(oa[k]), Array.from(ob[k]))).toBeLessThan(1e-12);
      expect(Array.from(oa[k])).toEqual(Array.from(oc[k]));
    }
    // tau = 0 is the plain objective; tau > 0 changes it.
    const plain = evaluateAll(a, mdp, theta);
    const zero = evalBuffers(2, 40, 4);
    a.evaluateRegularized!(theta, R, 0, zero);
    expect(Array.from(zero.grad)).toEqual(Array.from(plain.grad));
    expect(oa.J[0]).toBeGreaterThan(plain.J[0]!);
    const ra = agentStream(3, 1), rb = agentStream(3, 1);
    const ga = new Float64Array(160), gb = new Float64Array(160);
    for (const [K, M] of [[1, 1], [25, 7], [40, 21]] as const) {
      a.estimateRegularized!(theta, mdp.rewards[1]!, tau, K, M, ra, ga);
      b.estimateRegularized!(theta, mdp.rewards[1]!, tau, K, M, rb, gb);
      expect(Array.from(ra)).toEqual(Array.from(rb));
      expect(relativeError(Array.from(ga), Array.from(gb))).toBeLessThan(1e-12);
    }
    // A plain call after a regularised one on the same environment is plain again.
    a.estimateGradient(theta, mdp.rewards[1]!, 25, 7, ra, ga);
    b.estimateGradient(theta, mdp.rewards[1]!, 25, 7, rb, gb);
    expect(relativeError(Array.from(ga), Array.from(gb))).toBeLessThan(1e-12);
    for (const gradient of ['exact', 'sampled'] as const) {
      const xa = Float64Array.from(theta), xb = Float64Array.from(theta);
      const args = { reward: mdp.rewards[0]!, correction: null, eta: 0.2, steps: 3, gradient, horizon: 15, batch: 4, entropy: tau };
      a.localRound({ ...args, theta: xa, rng: ra });
      b.localRound({ ...args, theta: xb, rng: rb });
      expect(relativeError(Array.from(xa), Array.from(xb))).toBeLessThan(1e-12);
      expect(Array.from(ra)).toEqual(Array.from(rb));
    }
  });
});

describe('refusals', () => {
  const mdp = randomMdp({ states: 5, actions: 2, agents: 1, seed: 9 });
  const spec = environmentSpec(mdp);
  const env = simd.createEnvironment(spec);
  const theta = new Float64Array(10);
  const rng = agentStream(0, 0);

  it('rejects a broken environment spec before uploading it', () => {
    expect(() => simd.createEnvironment({ ...spec, states: 0 })).toThrow(/states must be an integer/);
    expect(() => simd.createEnvironment({ ...spec, gamma: 1 })).toThrow(/gamma is 1, outside \[0, 1\)/);
    expect(() => simd.createEnvironment({ ...spec, initial: new Float64Array(4) })).toThrow(/initial has length 4, expected 5/);
    expect(() => simd.createEnvironment({ ...spec, transitions: { kind: 'dense', p: new Float64Array(49) } })).toThrow(/transitions has length 49, expected 50/);
    const bad = { kind: 'sparse' as const, rowStart: Int32Array.from({ length: 11 }, (_, r) => r), next: new Int32Array(10).fill(5), prob: new Float64Array(10).fill(1) };
    expect(() => simd.createEnvironment({ ...spec, transitions: bad })).toThrow(/next state outside 0\.\.4/);
    const unordered = { ...bad, next: new Int32Array(10), rowStart: Int32Array.from([0, 2, 1, 3, 4, 5, 6, 7, 8, 9, 10]) };
    expect(() => simd.createEnvironment({ ...spec, transitions: unordered })).toThrow(/rowStart must rise/);
    const p = Float64Array.from((spec.transitions as { p: Float64Array }).p);
    p.fill(0, 10, 15); // row (state 1, action 0) loses its mass
    expect(() => simd.createEnvironment({ ...spec, transitions: { kind: 'dense', p } })).toThrow(/row without positive probability/);
    p[12] = NaN;
    expect(() => simd.createEnvironment({ ...spec, transitions: { kind: 'dense', p } })).toThrow(/not finite/);
    expect(() => simd.createEnvironment({ ...spec, initial: new Float64Array(5) })).toThrow(/initial must be probabilities/);
  });

  it('names the wrong argument, as the other backends do', () => {
    const g = new Float64Array(10);
    expect(() => env.estimateGradient(new Float64Array(9), mdp.rewards[0]!, 5, 1, rng, g)).toThrow(/theta has length 9, expected 10/);
    expect(() => env.estimateGradient(theta, mdp.rewards[0]!, 5, 0, rng, g)).toThrow(/batch must be an integer/);
    expect(() => env.estimateGradient(theta, mdp.rewards[0]!, 5, 1, rng, new Float64Array(3))).toThrow(/gradient output has length 3/);
    const nan = new Float64Array(10);
    nan[7] = NaN;
    // The finiteness scan runs inside the module; the message is still the canonical one.
    expect(() => env.estimateGradient(nan, mdp.rewards[0]!, 5, 1, rng, g)).toThrow(/theta\[3\]\[1\] is NaN/);
    expect(() => env.localRound({ theta: nan, reward: mdp.rewards[0]!, correction: null, eta: 1, steps: 1, gradient: 'exact', horizon: 1, batch: 1, rng })).toThrow(/theta\[3\]\[1\] is NaN/);
    expect(() => env.localRound({ theta, reward: mdp.rewards[0]!, correction: null, eta: 1, steps: 1, gradient: 'exact', horizon: 1, batch: 1, rng, entropy: -0.1 })).toThrow(/entropy weight tau must be a finite number >= 0, got -0.1/);
    expect(() => env.estimateRegularized!(theta, mdp.rewards[0]!, NaN, 5, 1, rng, g)).toThrow(/entropy weight tau/);
    expect(() => env.evaluate(theta, new Float64Array(15), evalBuffers(1, 5, 2))).toThrow(/rewards has length 15, not a positive multiple of states \* actions = 10/);
    expect(() => env.evaluate(theta, new Float64Array(20), evalBuffers(1, 5, 2))).toThrow(/J output has length 1, expected 2/);
    expect(() => env.truncated(theta, mdp.rewards[0]!, -1, { JK: new Float64Array(1), gradK: new Float64Array(10) })).toThrow(/horizon/);
    expect(() => env.optimal(mdp.rewards[0]!, new Float64Array(4))).toThrow(/V\* output has length 4, expected 5/);
    expect(() => simd.factorLU(new Float64Array(8), 3)).toThrow(/matrix has length 8, expected 9/);
    // The stream is untouched by a refused call.
    expect(Array.from(rng)).toEqual(Array.from(agentStream(0, 0)));
  });
});

// Type-level check: the loader's result is a full Backend.
const _typed: WasmBackend = simd;
void _typed;
