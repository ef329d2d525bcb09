import { describe, expect, it } from 'vitest';
import type { Backend, Environment, Evaluation } from '../src/backends/types.js';
import { loadMdp, loadTheta } from '../src/mdp/format.js';
import { averageReward, environmentSpec, stackedRewards, type Mdp } from '../src/mdp/model.js';
import { gridworldMdp, randomMdp } from '../src/mdp/generate.js';
import { agentStream } from '../src/rng.js';
import { jsBackend } from '../src/backends/js/index.js';
import { testedBackends } from './helpers/backends.js';
import { worstZ } from './helpers/stats.js';
import { expectedFixtures, fixturePath, readExpect, relativeError, table } from './helpers/fixtures.js';

/**
 * The kernel suite, run against every backend that loads (js, native, wasm), plus agreement of
 * each backend with the js reference on inputs no fixture covers.
 */

const backends = await testedBackends();

function evalBuffers(n: number, S: number, A: number): Evaluation {
  return { J: new Float64Array(n), V: new Float64Array(n * S), Q: new Float64Array(n * S * A), grad: new Float64Array(n * S * A), occupancy: new Float64Array(S) };
}

function evaluateAll(env: Environment, mdp: Mdp, theta: Float64Array, rewards = stackedRewards(mdp)): Evaluation {
  const out = evalBuffers(rewards.length / (mdp.states * mdp.actions), mdp.states, mdp.actions);
  env.evaluate(theta, rewards, out);
  return out;
}

function perAgentTables(t: Float64Array, N: number, S: number, A: number): number[][][] {
  return Array.from({ length: N }, (_, i) => table(t.subarray(i * S * A, (i + 1) * S * A), A));
}

describe.each(backends.map((b) => [b.name, b] as const))('kernels on the %s backend', (_name, backend: Backend) => {
  describe.each(expectedFixtures())('fixture %s', (name) => {
    const mdp = loadMdp(fixturePath(`${name}.json`));
    const exp = readExpect(name).expect;
    const theta = loadTheta(fixturePath(`${name}.expect.json`), mdp.states, mdp.actions);
    const S = mdp.states, A = mdp.actions, N = mdp.rewards.length;
    const envs = mdp.kernels.map((_, k) => backend.createEnvironment(environmentSpec(mdp, k)));

    it('exact J and gradients per agent match to 1e-9', () => {
      const J: number[] = [];
      const grads: number[][][] = [];
      for (let i = 0; i < N; i++) {
        const env = envs.length === 1 ? envs[0]! : envs[i]!;
        const out = evaluateAll(env, mdp, theta, mdp.rewards[i]!);
        J.push(out.J[0]!);
        grads.push(table(out.grad, A));
      }
      expect(relativeError(J, exp.J)).toBeLessThanOrEqual(1e-9);
      expect(relativeError(grads, exp.grad)).toBeLessThanOrEqual(1e-9);
      const gradAvg = grads[0]!.map((row, s) => row.map((_, a) => grads.reduce((acc, g) => acc + g[s]![a]!, 0) / N));
      expect(relativeError(gradAvg, exp.gradAvg)).toBeLessThanOrEqual(1e-9);
    });

    it('truncated J_K and grad_K match to 1e-9', () => {
      const JK: number[] = [];
      const gradK: number[][][] = [];
      for (let i = 0; i < N; i++) {
        const env = envs.length === 1 ? envs[0]! : envs[i]!;
        const out = { JK: new Float64Array(1), gradK: new Float64Array(S * A) };
        env.truncated(theta, mdp.rewards[i]!, exp.K, out);
        JK.push(out.JK[0]!);
        gradK.push(table(out.gradK, A));
      }
      expect(relativeError(JK, exp.JK)).toBeLessThanOrEqual(1e-9);
      expect(relativeError(gradK, exp.gradK)).toBeLessThanOrEqual(1e-9);
    });

    it.runIf(!mdp.perAgentKernels)('V, Q of the average MDP and J*, V* match to 1e-9', () => {
      const rbar = averageReward(mdp);
      const out = evaluateAll(envs[0]!, mdp, theta, rbar);
      expect(relativeError(Array.from(out.V), exp.V)).toBeLessThanOrEqual(1e-9);
      expect(relativeError(table(out.Q, A), exp.Q)).toBeLessThanOrEqual(1e-9);
      const vstar = new Float64Array(S);
      const Jstar = envs[0]!.optimal(rbar, vstar);
      expect(relativeError([Jstar], [exp.Jstar])).toBeLessThanOrEqual(1e-9);
      expect(relativeError(Array.from(vstar), exp.Vstar)).toBeLessThanOrEqual(1e-9);
    });

    it.runIf(!mdp.perAgentKernels)('Proposition 1: the mean of the agents\u2019 J and gradients is the average MDP\u2019s', () => {
      const all = evaluateAll(envs[0]!, mdp, theta);
      const avg = evaluateAll(envs[0]!, mdp, theta, averageReward(mdp));
      const meanJ = Array.from(all.J).reduce((a, b) => a + b, 0) / N;
      expect(Math.abs(meanJ - avg.J[0]!)).toBeLessThan(1e-12 * Math.max(1, Math.abs(meanJ)));
      const meanGrad = Array.from({ length: S * A }, (_, j) => Array.from({ length: N }, (_, i) => all.grad[i * S * A + j]!).reduce((a, b) => a + b, 0) / N);
      expect(relativeError(meanGrad, Array.from(avg.grad))).toBeLessThan(1e-12);
    });

    it('the occupancy measure is a distribution', () => {
      const out = evaluateAll(envs[0]!, mdp, theta, mdp.rewards[0]!);
      const sum = Array.from(out.occupancy).reduce((a, b) => a + b, 0);
      expect(Math.abs(sum - 1)).toBeLessThan(1e-12);
      expect(Math.min(...out.occupancy)).toBeGreaterThanOrEqual(0);
    });
  });

  it('the exact gradient equals central finite differences of J', () => {
    const mdp = loadMdp(fixturePath('random-s6-a3-n4.json'));
    const theta = loadTheta(fixturePath('random-s6-a3-n4.expect.json'), mdp.states, mdp.actions);
    const env = backend.createEnvironment(environmentSpec(mdp));
    const R = mdp.rewards[1]!;
    const g = evaluateAll(env, mdp, theta, R).grad;
    const h = 1e-5;
    let worst = 0;
    for (let j = 0; j < theta.length; j++) {
      const tp = Float64Array.from(theta), tm = Float64Array.from(theta);
      tp[j]! += h;
      tm[j]! -= h;
      const fd = (evaluateAll(env, mdp, tp, R).J[0]! - evaluateAll(env, mdp, tm, R).J[0]!) / (2 * h);
      worst = Math.max(worst, Math.abs(fd - g[j]!));
    }
    // Central differences are exact to O(h^2) ~ 1e-10 here, plus rounding ~1e-16 / h.
    expect(worst).toBeLessThan(1e-8);
  });

  it('the Eq. 5 estimator is unbiased for grad_K (z-scores from the sample variance)', () => {
    const mdp = loadMdp(fixturePath('random-s6-a3-n4.json'));
    const theta = loadTheta(fixturePath('random-s6-a3-n4.expect.json'), mdp.states, mdp.actions);
    const env = backend.createEnvironment(environmentSpec(mdp));
    const R = mdp.rewards[2]!;
    const K = 10;
    const SA = mdp.states * mdp.actions;
    const rng = agentStream(20261124, 0);
    const n = 200000;
    const sum = new Float64Array(SA), sumSq = new Float64Array(SA), g = new Float64Array(SA);
    for (let m = 0; m < n; m++) {
      env.estimateGradient(theta, R, K, 1, rng, g);
      for (let j = 0; j < SA; j++) {
        sum[j]! += g[j]!;
        sumSq[j]! += g[j]! * g[j]!;
      }
    }
    const zScores = (target: Float64Array): number => worstZ(sum, sumSq, n, target);
    const truth = { JK: new Float64Array(1), gradK: new Float64Array(SA) };
    env.truncated(theta, R, K, truth);
    // 18 coordinates: P(max |z| > 5) < 18 * 5.7e-7 for a correct estimator.
    expect(zScores(truth.gradK)).toBeLessThan(5);
    // The test has power: the same samples reject the gradient of a shorter horizon, and a 25% bias.
    const wrong = { JK: new Float64Array(1), gradK: new Float64Array(SA) };
    env.truncated(theta, R, K - 5, wrong);
    expect(zScores(wrong.gradK)).toBeGreaterThan(5);
    expect(zScores(truth.gradK.map((v) => 0.75 * v))).toBeGreaterThan(5);
  });

  it('a batch of M is the mean of M single-trajectory estimates drawn from the same stream', () => {
    const mdp = loadMdp(fixturePath('random-s20-a4-n8.json'));
    const env = backend.createEnvironment(environmentSpec(mdp));
    const theta = Float64Array.from({ length: mdp.states * mdp.actions }, (_, j) => Math.sin(j));
    const SA = theta.length;
    const r1 = agentStream(7, 3), r2 = agentStream(7, 3);
    const batch = new Float64Array(SA), one = new Float64Array(SA), acc = new Float64Array(SA);
    env.estimateGradient(theta, mdp.rewards[0]!, 15, 8, r1, batch);
    for (let m = 0; m < 8; m++) {
      env.estimateGradient(theta, mdp.rewards[0]!, 15, 1, r2, one);
      for (let j = 0; j < SA; j++) acc[j]! += one[j]!;
    }
    expect(Array.from(r1)).toEqual(Array.from(r2));
    expect(relativeError(Array.from(batch), Array.from(acc, (v) => v / 8))).toBeLessThan(1e-13);
  });

  it('each trajectory consumes exactly 4K outputs of the stream', () => {
    const mdp = loadMdp(fixturePath('random-s6-a3-n4.json'));
    const env = backend.createEnvironment(environmentSpec(mdp));
    const rng = agentStream(1, 0);
    const ref = agentStream(1, 0);
    env.estimateGradient(new Float64Array(18), mdp.rewards[0]!, 7, 3, rng, new Float64Array(18));
    const s = Uint32Array.from(ref);
    for (let k = 0; k < 4 * 7 * 3; k++) {
      // xoshiro128** step, written out independently of src/rng.ts
      const t = (s[1]! << 9) >>> 0;
      s[2]! ^= s[0]!;
      s[3]! ^= s[1]!;
      s[1]! ^= s[2]!;
      s[0]! ^= s[3]!;
      s[2]! ^= t;
      s[3] = ((s[3]! << 11) | (s[3]! >>> 21)) >>> 0;
    }
    expect(Array.from(rng)).toEqual(Array.from(s));
  });

  it('localRound with exact gradients takes H plain ascent steps (and adds the correction)', () => {
    const mdp = loadMdp(fixturePath('random-s6-a3-n4.json'));
    const env = backend.createEnvironment(environmentSpec(mdp));
    const SA = 18;
    const start = loadTheta(fixturePath('random-s6-a3-n4.expect.json'), 6, 3);
    const corr = Float64Array.from({ length: SA }, (_, j) => 0.01 * Math.cos(j));
    const mine = Float64Array.from(start);
    for (let h = 0; h < 3; h++) {
      const g = evaluateAll(env, mdp, mine, mdp.rewards[0]!).grad;
      for (let j = 0; j < SA; j++) mine[j] = mine[j]! + 0.5 * (g[j]! + corr[j]!);
    }
    const theta = Float64Array.from(start);
    env.localRound({ theta, reward: mdp.rewards[0]!, correction: corr, eta: 0.5, steps: 3, gradient: 'exact', horizon: 1, batch: 1, rng: agentStream(0, 0) });
    expect(relativeError(Array.from(theta), Array.from(mine))).toBeLessThan(1e-12);
  });

  it('a sampled local round is the documented lazy form: theta_l = (start + (l eta) c) + D, D += eta g_hat, written once', () => {
    // The reference forms theta_l densely and calls the plain estimator on it with the same stream;
    // the kernel forms only the rows its batches visit. Object.is per entry: the order is the contract.
    // 200 x 4 with K M = 10 x 3 forms rows lazily; 6 x 3 with K M = 20 x 7 forms them all up front.
    for (const mdp of [randomMdp({ states: 200, actions: 4, agents: 2, seed: 5, branching: 3 }), loadMdp(fixturePath('random-s6-a3-n4.json'))]) {
      const SA = mdp.states * mdp.actions;
      const [K, M] = mdp.states === 200 ? [10, 3] : [20, 7];
      const env = backend.createEnvironment(environmentSpec(mdp));
      const ref = backend.createEnvironment(environmentSpec(mdp));
      const corr = Float64Array.from({ length: SA }, (_, j) => 0.03 * Math.sin(7 * j));
      const eta = 0.4, H = 5;
      const theta = Float64Array.from({ length: SA }, (_, j) => Math.cos(3 * j));
      const rng = agentStream(17, 3), rngRef = agentStream(17, 3);
      // Two rounds on one environment (the sparse sum must be empty again at the second), with and without c.
      for (const c of [corr, null, corr]) {
        const start = Float64Array.from(theta);
        const D = new Float64Array(SA), row = new Float64Array(SA), g = new Float64Array(SA);
        const form = (l: number): void => {
          for (let j = 0; j < SA; j++) row[j] = c ? start[j]! + (l * eta) * c[j]! + D[j]! : start[j]! + D[j]!;
        };
        for (let l = 0; l < H; l++) {
          form(l);
          ref.estimateGradient(row, mdp.rewards[0]!, K, M, rngRef, g);
          for (let j = 0; j < SA; j++) D[j] = D[j]! + eta * g[j]!;
        }
        form(H);
        env.localRound({ theta, reward: mdp.rewards[0]!, correction: c, eta, steps: H, gradient: 'sampled', horizon: K, batch: M, rng });
        expect(Array.from(rng)).toEqual(Array.from(rngRef));
        expect(Array.from(theta).every((v, j) => Object.is(v, row[j])), `${mdp.states} states, correction ${c !== null}`).toBe(true);
      }
      // A plain estimate afterwards reads theta itself again (no lazy state left behind).
      const ga = new Float64Array(SA), gb = new Float64Array(SA);
      env.estimateGradient(theta, mdp.rewards[1]!, K, M, agentStream(3, 3), ga);
      ref.estimateGradient(theta, mdp.rewards[1]!, K, M, agentStream(3, 3), gb);
      expect(Array.from(ga).every((v, j) => Object.is(v, gb[j]))).toBe(true);
    }
  });

  it('a pulled local round is the documented lazy form: x = theta - center decays by q = 1 - eta w, rows brought up to date when visited', () => {
    // The dense reference keeps x for every row at every step: x <- q x + eta (g_hat + c) on the
    // rows a batch formed, and on the others the closed form qp[n] x + gs[n] (eta c) applied when the
    // row is next formed (the kernel's order). Object.is per entry.
    // 200 x 4 with K M = 10 x 3 visits few rows per step; 30 x 3 with 10 x 10 most (where the plain
    // estimator would form every row up front); the fixture's 6 x 3 with 20 x 7 all of them.
    const cases = [
      [randomMdp({ states: 200, actions: 4, agents: 2, seed: 6, branching: 3 }), 10, 3],
      [randomMdp({ states: 30, actions: 3, agents: 2, seed: 7, branching: 2 }), 10, 10],
      [loadMdp(fixturePath('random-s6-a3-n4.json')), 20, 7],
    ] as const;
    for (const [mdp, K, M] of cases) {
      const S = mdp.states, A = mdp.actions, SA = S * A;
      const env = backend.createEnvironment(environmentSpec(mdp));
      const ref = backend.createEnvironment(environmentSpec(mdp));
      const corr = Float64Array.from({ length: SA }, (_, j) => 0.03 * Math.sin(7 * j));
      const center = Float64Array.from({ length: SA }, (_, j) => 0.5 * Math.sin(2 * j));
      const eta = 0.4, H = 5, weight = 0.3, q = 1 - eta * weight;
      const qp = [1], gs = [0];
      for (let n = 1; n <= H; n++) {
        qp.push(qp[n - 1]! * q);
        gs.push(gs[n - 1]! * q + 1);
      }
      const theta = Float64Array.from({ length: SA }, (_, j) => Math.cos(3 * j));
      const rng = agentStream(21, 3), rngRef = agentStream(21, 3);
      for (const c of [corr, null, corr]) {
        const x = new Float64Array(SA), T = new Int32Array(S).fill(-1), row = new Float64Array(SA), g = new Float64Array(SA);
        const bring = (s: number, l: number): void => {
          if (T[s]! < 0) {
            for (let a = 0; a < A; a++) x[s * A + a] = theta[s * A + a]! - center[s * A + a]!;
            T[s] = 0;
          }
          const n = l - T[s]!;
          for (let a = 0; a < A; a++) x[s * A + a] = c ? qp[n]! * x[s * A + a]! + gs[n]! * (eta * c[s * A + a]!) : qp[n]! * x[s * A + a]!;
          T[s] = l;
        };
        for (let l = 0; l < H; l++) {
          // theta_l densely: every row brought to l on a copy (the kernel brings only the rows it visits).
          for (let s = 0; s < S; s++) {
            const savedT = T[s]!, savedX = x.slice(s * A, s * A + A);
            bring(s, l);
            for (let a = 0; a < A; a++) row[s * A + a] = center[s * A + a]! + x[s * A + a]!;
            x.set(savedX, s * A);
            T[s] = savedT;
          }
          ref.estimateGradient(row, mdp.rewards[0]!, K, M, rngRef, g);
          // The rows the batch visited: those with a nonzero estimate (random rewards: a visited row's
          // estimate is never exactly 0 here). Only they take the step's q x + eta (g + c).
          for (let s = 0; s < S; s++) {
            let visited = false;
            for (let a = 0; a < A; a++) if (g[s * A + a] !== 0) visited = true;
            if (!visited) continue;
            bring(s, l);
            for (let a = 0; a < A; a++) {
              const j = s * A + a;
              x[j] = c ? q * x[j]! + eta * (g[j]! + c[j]!) : q * x[j]! + eta * g[j]!;
            }
            T[s] = l + 1;
          }
        }
        const want = new Float64Array(SA);
        for (let s = 0; s < S; s++) {
          bring(s, H);
          for (let a = 0; a < A; a++) want[s * A + a] = center[s * A + a]! + x[s * A + a]!;
        }
        env.localRound({ theta, reward: mdp.rewards[0]!, correction: c, eta, steps: H, gradient: 'sampled', horizon: K, batch: M, rng, pull: { weight, center } });
        expect(Array.from(rng)).toEqual(Array.from(rngRef));
        expect(Array.from(theta).every((v, j) => Object.is(v, want[j])), `${S} states, correction ${c !== null}`).toBe(true);
      }
    }
  });

  it('a pull is refused outside sampled Eq. 5 rounds and with a bad weight or center', () => {
    const mdp = loadMdp(fixturePath('random-s6-a3-n4.json'));
    const env = backend.createEnvironment(environmentSpec(mdp));
    const base = { theta: new Float64Array(18), reward: mdp.rewards[0]!, correction: null, eta: 0.1, steps: 1, horizon: 5, batch: 2, rng: agentStream(0, 0) };
    const center = new Float64Array(18);
    expect(() => env.localRound({ ...base, gradient: 'exact', pull: { weight: 0.1, center } })).toThrow(/pull/);
    expect(() => env.localRound({ ...base, gradient: 'sampled', entropy: 0.1, pull: { weight: 0.1, center } })).toThrow(/pull/);
    expect(() => env.localRound({ ...base, gradient: 'sampled', pull: { weight: NaN, center } })).toThrow(/pull\.weight/);
    expect(() => env.localRound({ ...base, gradient: 'sampled', pull: { weight: 0.1, center: new Float64Array(5) } })).toThrow(/pull\.center/);
  });

  it.runIf(typeof backend.createEnvironment(environmentSpec(loadMdp(fixturePath('random-s6-a3-n4.json')))).estimateRegularized === 'function')(
    'entropy-regularised kernels: the exact gradient is the derivative of J_tau, and the GPOMDP estimator is unbiased for it',
    () => {
      const mdp = loadMdp(fixturePath('random-s6-a3-n4.json'));
      const env = backend.createEnvironment(environmentSpec(mdp));
      const theta = loadTheta(fixturePath('random-s6-a3-n4.expect.json'), 6, 3);
      const R = mdp.rewards[0]!;
      const tau = 0.3;
      const ev = (th: Float64Array): Evaluation => {
        const out = evalBuffers(1, 6, 3);
        env.evaluateRegularized!(th, R, tau, out);
        return out;
      };
      const g = ev(theta).grad;
      let worst = 0;
      for (let j = 0; j < 18; j++) {
        const tp = Float64Array.from(theta), tm = Float64Array.from(theta);
        tp[j]! += 1e-5;
        tm[j]! -= 1e-5;
        worst = Math.max(worst, Math.abs((ev(tp).J[0]! - ev(tm).J[0]!) / 2e-5 - g[j]!));
      }
      expect(worst).toBeLessThan(1e-8);
      // tau = 0 is the plain objective.
      const plain = evaluateAll(env, mdp, theta, R);
      const zero = evalBuffers(1, 6, 3);
      env.evaluateRegularized!(theta, R, 0, zero);
      expect(relativeError(Array.from(zero.grad), Array.from(plain.grad))).toBeLessThan(1e-14);
      // K = 200 at gamma = 0.9 leaves a truncation bias of about 1e-9, far below the noise.
      const rng = agentStream(5, 5);
      const n = 20000, K = 200;
      const sum = new Float64Array(18), sumSq = new Float64Array(18), one = new Float64Array(18);
      for (let m = 0; m < n; m++) {
        env.estimateRegularized!(theta, R, tau, K, 1, rng, one);
        for (let j = 0; j < 18; j++) {
          sum[j]! += one[j]!;
          sumSq[j]! += one[j]! * one[j]!;
        }
      }
      const z = (target: ArrayLike<number>): number => {
        let w = 0;
        for (let j = 0; j < 18; j++) {
          const mean = sum[j]! / n;
          const se = Math.sqrt((sumSq[j]! - n * mean * mean) / (n - 1) / n);
          w = Math.max(w, Math.abs(mean - target[j]!) / se);
        }
        return w;
      };
      expect(z(g)).toBeLessThan(5);
      expect(z(plain.grad)).toBeGreaterThan(5); // the entropy term is visible: the plain gradient is rejected
    },
  );

  it('refuses bad arguments with a message instead of reading out of bounds', () => {
    const mdp = loadMdp(fixturePath('random-s6-a3-n4.json'));
    const env = backend.createEnvironment(environmentSpec(mdp));
    const ok = new Float64Array(18);
    const rng = agentStream(0, 0);
    expect(() => env.estimateGradient(new Float64Array(17), mdp.rewards[0]!, 5, 1, rng, ok)).toThrow(/theta has length 17, expected 18/);
    expect(() => env.estimateGradient(ok, new Float64Array(3), 5, 1, rng, ok)).toThrow(/reward has length 3/);
    expect(() => env.estimateGradient(ok, mdp.rewards[0]!, 0, 1, rng, ok)).toThrow(/horizon/);
    expect(() => env.estimateGradient(ok, mdp.rewards[0]!, 5, 1, new Uint32Array(3), ok)).toThrow(/rng/);
    const nan = new Float64Array(18);
    nan[4] = NaN;
    expect(() => env.evaluate(nan, mdp.rewards[0]!, evalBuffers(1, 6, 3))).toThrow(/theta\[1\]\[1\] is NaN/);
    nan[4] = Infinity;
    expect(() => env.localRound({ theta: nan, reward: mdp.rewards[0]!, correction: null, eta: 0.1, steps: 1, gradient: 'sampled', horizon: 5, batch: 1, rng })).toThrow(/Infinity/);
  });
});

describe.each(backends.filter((b) => b.name !== 'js').map((b) => [b.name, b] as const))('%s agrees with the js reference', (_n, backend: Backend) => {
  const mdps = [
    randomMdp({ states: 30, actions: 5, agents: 3, seed: 11, gamma: 0.95 }),
    randomMdp({ states: 40, actions: 3, agents: 2, seed: 12, branching: 4, gamma: 0.8 }),
  ];
  it.each(mdps.map((m) => [m.name!, m] as const))('exact evaluation and truncation on %s', (_n2, mdp) => {
    const theta = Float64Array.from({ length: mdp.states * mdp.actions }, (_, j) => 2 * Math.sin(3 * j));
    const a = backend.createEnvironment(environmentSpec(mdp));
    const b = jsBackend.createEnvironment(environmentSpec(mdp));
    const oa = evaluateAll(a, mdp, theta), ob = evaluateAll(b, mdp, theta);
    for (const k of ['J', 'V', 'Q', 'grad', 'occupancy'] as const) expect(relativeError(Array.from(oa[k]), Array.from(ob[k]))).toBeLessThan(1e-12);
    const ta = { JK: new Float64Array(mdp.rewards.length), gradK: new Float64Array(mdp.rewards.length * theta.length) };
    const tb = { JK: new Float64Array(mdp.rewards.length), gradK: new Float64Array(mdp.rewards.length * theta.length) };
    a.truncated(theta, stackedRewards(mdp), 25, ta);
    b.truncated(theta, stackedRewards(mdp), 25, tb);
    expect(relativeError(Array.from(ta.gradK), Array.from(tb.gradK))).toBeLessThan(1e-12);
    const rbar = averageReward(mdp);
    expect(Math.abs(a.optimal(rbar, new Float64Array(mdp.states)) - b.optimal(rbar, new Float64Array(mdp.states)))).toBeLessThan(1e-11);
  });

  it.each(mdps.map((m) => [m.name!, m] as const))('the same stream gives the same estimate, bit for bit, on %s', (_n2, mdp) => {
    const theta = Float64Array.from({ length: mdp.states * mdp.actions }, (_, j) => Math.cos(j));
    const a = backend.createEnvironment(environmentSpec(mdp));
    const b = jsBackend.createEnvironment(environmentSpec(mdp));
    const ra = agentStream(99, 1), rb = agentStream(99, 1);
    const ga = new Float64Array(theta.length), gb = new Float64Array(theta.length);
    for (const [K, M] of [[1, 1], [20, 7], [60, 3]] as const) {
      a.estimateGradient(theta, mdp.rewards[0]!, K, M, ra, ga);
      b.estimateGradient(theta, mdp.rewards[0]!, K, M, rb, gb);
      expect(Array.from(ra)).toEqual(Array.from(rb));
      // Object.is per entry: the estimate is bit-identical across backends (src/math, one summation order).
      expect(Array.from(ga).every((v, j) => Object.is(v, gb[j]))).toBe(true);
    }
  });

  it.each(mdps.map((m) => [m.name!, m] as const))('the GPOMDP estimator gives the js bits on %s, tau = 0 included (plain GPOMDP, not Eq. 5)', (_n2, mdp) => {
    const SA = mdp.states * mdp.actions;
    const theta = Float64Array.from({ length: SA }, (_, j) => 2 * Math.sin(j));
    const a = backend.createEnvironment(environmentSpec(mdp));
    const b = jsBackend.createEnvironment(environmentSpec(mdp));
    for (const tau of [0, 0.3]) {
      for (const M of [1, 17]) {
        const ra = agentStream(8, 1), rb = agentStream(8, 1);
        const ga = new Float64Array(SA), gb = new Float64Array(SA);
        a.estimateRegularized!(theta, mdp.rewards[0]!, tau, 20, M, ra, ga);
        b.estimateRegularized!(theta, mdp.rewards[0]!, tau, 20, M, rb, gb);
        expect(Array.from(ra)).toEqual(Array.from(rb));
        expect(Array.from(ga).every((v, j) => Object.is(v, gb[j])), `tau ${tau}, M ${M}`).toBe(true);
      }
    }
  });

  it('on tables larger than the caches (native lanes prefetch, wasm lanes touch ahead): estimates and local rounds give the js bits', () => {
    // A 100 x 100 gridworld: its alias tables and per-state scratch pass the 1 MiB past which both
    // backends' lanes load each state's rows ahead, a path the small fixtures never reach.
    const g = gridworldMdp({ width: 100, height: 100, agents: 1, seed: 3 });
    const SA = g.states * g.actions;
    const a = backend.createEnvironment(environmentSpec(g));
    const b = jsBackend.createEnvironment(environmentSpec(g));
    const start = Float64Array.from({ length: SA }, (_, j) => 0.5 * Math.sin(3 * j + 1));
    const corr = Float64Array.from({ length: SA }, (_, j) => 0.01 * Math.cos(j));
    const center = Float64Array.from({ length: SA }, (_, j) => 0.2 * Math.cos(5 * j));
    const reward = Float64Array.from({ length: SA }, (_, j) => (Math.cos(j) + 1) / 2);
    const same = (x: Float64Array, y: Float64Array): boolean => x.every((v, j) => Object.is(v, y[j]));
    const ga = new Float64Array(SA), gb = new Float64Array(SA), pa = new Float64Array(SA), pb = new Float64Array(SA);
    const ra = agentStream(5, 1), rb = agentStream(5, 1);
    a.estimateGradient(start, reward, 40, 20, ra, ga);
    b.estimateGradient(start, reward, 40, 20, rb, gb);
    expect(ga.some((x) => x !== 0)).toBe(true);
    expect(same(ga, gb)).toBe(true);
    a.estimateRegularized!(start, reward, 0.2, 40, 20, ra, ga);
    b.estimateRegularized!(start, reward, 0.2, 40, 20, rb, gb);
    expect(same(ga, gb)).toBe(true);
    a.estimateSvrpg(start, center, reward, 40, 20, 3, ra, ga, pa);
    b.estimateSvrpg(start, center, reward, 40, 20, 3, rb, gb, pb);
    expect(same(ga, gb) && same(pa, pb)).toBe(true);
    expect(Array.from(ra)).toEqual(Array.from(rb));
    const svrpg = { thetaPrev: center, u: corr, beta: 0.4, clip: 3 };
    for (const [correction, pull, sv] of [[null, null, null], [corr, null, null], [corr, { weight: 0.5, center }, null], [null, { weight: 0.5, center }, null], [null, null, svrpg]] as const) {
      const ta = Float64Array.from(start), tb = Float64Array.from(start);
      const args = { reward, correction, pull, svrpg: sv, eta: 0.3, steps: 6, gradient: 'sampled' as const, horizon: 50, batch: 10 };
      a.localRound({ ...args, theta: ta, rng: ra });
      b.localRound({ ...args, theta: tb, rng: rb });
      expect(Array.from(ra)).toEqual(Array.from(rb));
      expect(same(ta, tb)).toBe(true);
      expect(same(ta, start)).toBe(false);
    }
  });

  it.each(mdps.map((m) => [m.name!, m] as const))('sampled local rounds (plain, corrected, entropy) give the js bits on %s', (_n2, mdp) => {
    const SA = mdp.states * mdp.actions;
    const a = backend.createEnvironment(environmentSpec(mdp));
    const b = jsBackend.createEnvironment(environmentSpec(mdp));
    const corr = Float64Array.from({ length: SA }, (_, j) => 0.05 * Math.sin(5 * j));
    for (const [correction, entropy] of [[null, 0], [corr, 0], [null, 0.3], [corr, 0.1]] as const) {
      const ta = Float64Array.from({ length: SA }, (_, j) => 3 * Math.cos(2 * j)), tb = Float64Array.from(ta);
      const ra = agentStream(5, 2), rb = agentStream(5, 2);
      const args = { reward: mdp.rewards[1]!, correction, eta: 0.7, steps: 6, gradient: 'sampled' as const, horizon: 25, batch: 9, entropy };
      a.localRound({ ...args, theta: ta, rng: ra });
      b.localRound({ ...args, theta: tb, rng: rb });
      expect(Array.from(ra)).toEqual(Array.from(rb));
      expect(Array.from(ta).every((v, j) => Object.is(v, tb[j])), `correction ${correction !== null}, tau ${entropy}`).toBe(true);
    }
  });
});
