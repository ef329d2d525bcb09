import { describe, expect, it } from 'vitest';
import type { Backend, Environment } from '../src/backends/types.js';
import { jsBackend } from '../src/backends/js/index.js';
import { loadMdp, loadTheta } from '../src/mdp/format.js';
import { environmentSpec } from '../src/mdp/model.js';
import { randomMdp } from '../src/mdp/generate.js';
import { agentStream } from '../src/rng.js';
import { fixturePath } from './helpers/fixtures.js';
import { testedBackends } from './helpers/backends.js';
import { worstZ } from './helpers/stats.js';

/**
 * FedSVRPG-M's sampled kernel (SPEC.md, "The two closest rivals"; issue 12 item 2), on every
 * backend: Environment.estimateSvrpg and localRound with `svrpg`. Unclipped, gc estimates
 * grad_K J(theta) and gw = mean w * GPOMDP(thetaPrev) estimates grad_K J(thetaPrev) (importance
 * sampling: the trajectories come from theta); both are checked against the exact truncated
 * gradient with z-scores from the sample variance. Every backend gives the js bits.
 */

const backends = await testedBackends();
const mdp = loadMdp(fixturePath('random-s6-a3-n4.json'));
const spec = environmentSpec(mdp);
const S = mdp.states, A = mdp.actions, SA = S * A;
const theta = loadTheta(fixturePath('random-s6-a3-n4.expect.json'), S, A);
// Near theta, far enough that w != 1 matters (|log w| per step up to about 0.6).
const thetaPrev = theta.map((v, j) => v + 0.3 * Math.sin(3 * j + 1));
const R = mdp.rewards[1]!;
const K = 5;

function gradK(env: Environment, at: Float64Array): Float64Array {
  const out = { JK: new Float64Array(1), gradK: new Float64Array(SA) };
  env.truncated(at, R, K, out);
  return out.gradK;
}

/** Sample moments of n batch means (batch B) of gc and gw. */
function moments(env: Environment, n: number, B: number, clip: number) {
  const rng = agentStream(20261129, 3);
  const gc = new Float64Array(SA), gw = new Float64Array(SA);
  const m = { c: new Float64Array(SA), c2: new Float64Array(SA), w: new Float64Array(SA), w2: new Float64Array(SA), n };
  for (let i = 0; i < n; i++) {
    env.estimateSvrpg(theta, thetaPrev, R, K, B, clip, rng, gc, gw);
    for (let j = 0; j < SA; j++) {
      m.c[j]! += gc[j]!;
      m.c2[j]! += gc[j]! * gc[j]!;
      m.w[j]! += gw[j]!;
      m.w2[j]! += gw[j]! * gw[j]!;
    }
  }
  return m;
}

function sameBits(a: Float64Array, b: Float64Array): boolean {
  return a.length === b.length && a.every((v, j) => Object.is(v, b[j]));
}

function round(env: Environment, svrpg: { thetaPrev: Float64Array; u: Float64Array; beta: number; clip: number }, seed = 5) {
  const th = Float64Array.from(theta);
  const rng = agentStream(seed, 1);
  env.localRound({ theta: th, reward: R, correction: null, eta: 0.4, steps: 7, gradient: 'sampled', horizon: 12, batch: 6, rng, svrpg });
  return { theta: th, rng };
}

const u = Float64Array.from({ length: SA }, (_, j) => 0.2 * Math.cos(j));

/**
 * FedSVRPG-M's local round written densely, step by step, from env.estimateSvrpg, in the order the
 * kernels document (js Sampler.localRoundSvrpg): omb = 1 - beta, c = omb*u;
 * theta_l = (theta_0 + (l*eta)*c) + D; D = D + eta*(gc - omb*gw); theta_H = (theta_0 + (H*eta)*c) + D.
 */
function denseSvrpgRound(
  env: Environment, theta0: Float64Array, sv: { thetaPrev: Float64Array; u: Float64Array; beta: number; clip: number },
  reward: Float64Array, eta: number, steps: number, K: number, M: number, rng: Uint32Array,
): Float64Array {
  const n = theta0.length, omb = 1 - sv.beta;
  const c = sv.u.map((v) => omb * v);
  const D = new Float64Array(n), th = new Float64Array(n), gc = new Float64Array(n), gw = new Float64Array(n);
  for (let l = 0; l < steps; l++) {
    for (let j = 0; j < n; j++) th[j] = theta0[j]! + (l * eta) * c[j]! + D[j]!;
    env.estimateSvrpg(th, sv.thetaPrev, reward, K, M, sv.clip, rng, gc, gw);
    for (let j = 0; j < n; j++) D[j] = D[j]! + eta * (gc[j]! - omb * gw[j]!);
  }
  for (let j = 0; j < n; j++) th[j] = theta0[j]! + (steps * eta) * c[j]! + D[j]!;
  return th;
}

describe.each(backends.map((b) => [b.name, b] as const))('FedSVRPG-M kernel on the %s backend', (_name, backend: Backend) => {
  const env = backend.createEnvironment(spec);

  it('gc estimates grad_K J(theta); unclipped, gw estimates grad_K J(thetaPrev) (5 standard errors)', () => {
    const n = 40000, B = 4;
    const m = moments(env, n, B, 0);
    const atTheta = gradK(env, theta), atPrev = gradK(env, thetaPrev);
    // 18 coordinates: P(max |z| > 5) < 18 * 5.7e-7 for a correct estimator.
    expect(worstZ(m.c, m.c2, n, atTheta)).toBeLessThan(5);
    expect(worstZ(m.w, m.w2, n, atPrev)).toBeLessThan(5);
    // Power: the same samples reject the other point's gradient for each (so an inverted,
    // dropped or misplaced w cannot pass), and a 20% bias.
    expect(worstZ(m.w, m.w2, n, atTheta)).toBeGreaterThan(5);
    expect(worstZ(m.c, m.c2, n, atPrev)).toBeGreaterThan(5);
    expect(worstZ(m.w, m.w2, n, atPrev.map((v) => 0.8 * v))).toBeGreaterThan(5);
  });

  it('with thetaPrev = theta, w = 1 and gw = gc bit for bit; clipping at C = 1 forces w = 1', () => {
    const gc = new Float64Array(SA), gw = new Float64Array(SA);
    env.estimateSvrpg(theta, theta, R, 8, 50, 0, agentStream(1, 1), gc, gw);
    expect(sameBits(gc, gw)).toBe(true);
    expect(gc.some((v) => v !== 0)).toBe(true);
    // C = 1 clips every w to 1; against a clip so large it never binds, gc is unchanged and gw moves.
    const c1 = new Float64Array(SA), w1 = new Float64Array(SA), cBig = new Float64Array(SA), wBig = new Float64Array(SA);
    env.estimateSvrpg(theta, thetaPrev, R, 8, 50, 1, agentStream(2, 1), c1, w1);
    env.estimateSvrpg(theta, thetaPrev, R, 8, 50, 1e300, agentStream(2, 1), cBig, wBig);
    expect(sameBits(c1, cBig)).toBe(true); // gc does not depend on the clip
    expect(sameBits(w1, wBig)).toBe(false); // the weights did matter
  });

  it('draws from the stream exactly as the Eq. 5 estimator does (4K outputs per trajectory)', () => {
    const r1 = agentStream(9, 0), r2 = agentStream(9, 0);
    const g = new Float64Array(SA);
    env.estimateSvrpg(theta, thetaPrev, R, 7, 13, 20, r1, g, new Float64Array(SA));
    env.estimateGradient(theta, R, 7, 13, r2, g);
    expect(Array.from(r1)).toEqual(Array.from(r2));
  });

  it('localRound with svrpg is the dense step-by-step round from estimateSvrpg, bit for bit (the documented order)', () => {
    for (const [sv, seed] of [[{ thetaPrev, u, beta: 0.3, clip: 20 }, 5], [{ thetaPrev, u, beta: 1, clip: 0 }, 6], [{ thetaPrev, u, beta: 0.6, clip: 2 }, 7]] as const) {
      const got = round(env, sv, seed);
      const rng = agentStream(seed, 1);
      const want = denseSvrpgRound(env, theta, sv, R, 0.4, 7, 12, 6, rng);
      expect(sameBits(got.theta, want), `beta ${sv.beta} clip ${sv.clip}`).toBe(true);
      expect(Array.from(got.rng)).toEqual(Array.from(rng));
    }
    // The same on a table larger than a batch visits (most rows untouched: they move by eta c only).
    const big = randomMdp({ states: 300, actions: 7, agents: 1, seed: 4 });
    const n = 300 * 7;
    const t0 = Float64Array.from({ length: n }, (_, j) => Math.sin(7 * j));
    const sv = { thetaPrev: t0.map((v, j) => v + 0.2 * Math.cos(j)), u: Float64Array.from({ length: n }, (_, j) => Math.cos(5 * j)), beta: 0.2, clip: 20 };
    const benv = backend.createEnvironment(environmentSpec(big));
    const th = Float64Array.from(t0), r1 = agentStream(11, 2), r2 = agentStream(11, 2);
    benv.localRound({ theta: th, reward: big.rewards[0]!, correction: null, eta: 0.3, steps: 6, gradient: 'sampled', horizon: 9, batch: 11, rng: r1, svrpg: sv });
    expect(sameBits(th, denseSvrpgRound(benv, t0, sv, big.rewards[0]!, 0.3, 6, 9, 11, r2))).toBe(true);
    benv.dispose();
  });

  it('gives the js bits: estimateSvrpg and whole rounds (clipped and not) on dense, sparse and per-agent kernels', () => {
    for (const name of ['random-s6-a3-n4', 'random-s20-a4-n8-sparse', 'labbi-challenging', 'random-s50-a5-n3']) {
      const m = loadMdp(fixturePath(`${name}.json`));
      const n = m.states * m.actions;
      const t0 = Float64Array.from({ length: n }, (_, j) => 2 * Math.sin(5 * j));
      const tp = t0.map((v, j) => v - 0.5 * Math.cos(j));
      const uu = Float64Array.from({ length: n }, (_, j) => 0.1 * Math.sin(j));
      for (let k = 0; k < m.kernels.length; k++) {
        const mine = backend.createEnvironment(environmentSpec(m, k)), ref = jsBackend.createEnvironment(environmentSpec(m, k));
        const r = m.rewards[k % m.rewards.length]!;
        // batch 1 takes the backends' one-trajectory paths, 9 and 40 their lockstep lanes.
        for (const batch of [1, 9, 40]) {
          const a = [new Float64Array(n), new Float64Array(n)], b = [new Float64Array(n), new Float64Array(n)];
          const ra = agentStream(3, k), rb = agentStream(3, k);
          mine.estimateSvrpg(t0, tp, r, 15, batch, 0, ra, a[0]!, a[1]!);
          ref.estimateSvrpg(t0, tp, r, 15, batch, 0, rb, b[0]!, b[1]!);
          expect(sameBits(a[0]!, b[0]!) && sameBits(a[1]!, b[1]!), `${name} kernel ${k} batch ${batch}`).toBe(true);
          expect(Array.from(ra)).toEqual(Array.from(rb));
        }
        for (const clip of [0, 3]) {
          const ta = Float64Array.from(t0), tb = Float64Array.from(t0);
          const sa = agentStream(4, k), sb = agentStream(4, k);
          const args = { reward: r, correction: null, eta: 0.5, steps: 5, gradient: 'sampled' as const, horizon: 20, batch: 7, svrpg: { thetaPrev: tp, u: uu, beta: 0.6, clip } };
          mine.localRound({ ...args, theta: ta, rng: sa });
          ref.localRound({ ...args, theta: tb, rng: sb });
          expect(sameBits(ta, tb), `${name} kernel ${k} clip ${clip}`).toBe(true);
          expect(Array.from(sa)).toEqual(Array.from(sb));
        }
      }
    }
  });

  it.runIf(backend.name === 'native')('native: localRoundAsync with svrpg gives the sync bits', async () => {
    const sv = { thetaPrev, u, beta: 0.3, clip: 20 };
    const sync = round(env, sv, 8);
    const th = Float64Array.from(theta), rng = agentStream(8, 1);
    const ne = env as Environment & { localRoundAsync(a: unknown): Promise<void> };
    await ne.localRoundAsync({ theta: th, reward: R, correction: null, eta: 0.4, steps: 7, gradient: 'sampled', horizon: 12, batch: 6, rng, svrpg: sv });
    expect(sameBits(th, sync.theta)).toBe(true);
    expect(Array.from(rng)).toEqual(Array.from(sync.rng));
  });

  it('refuses svrpg with a correction, with entropy, with exact gradients, and bad fields', () => {
    const base = { theta: Float64Array.from(theta), reward: R, correction: null, eta: 0.1, steps: 1, gradient: 'sampled' as const, horizon: 3, batch: 2, rng: agentStream(1, 1) };
    const sv = { thetaPrev, u, beta: 0.2, clip: 20 };
    expect(() => env.localRound({ ...base, correction: u, svrpg: sv })).toThrow(/svrpg cannot be combined with a correction/);
    expect(() => env.localRound({ ...base, entropy: 0.1, svrpg: sv })).toThrow(/svrpg cannot be combined with entropy/);
    expect(() => env.localRound({ ...base, gradient: 'exact', svrpg: sv })).toThrow(/svrpg is sampled only/);
    expect(() => env.localRound({ ...base, svrpg: { ...sv, u: new Float64Array(3) } })).toThrow(/svrpg\.u has length 3, expected 18/);
    expect(() => env.localRound({ ...base, svrpg: { ...sv, thetaPrev: new Float64Array(SA).fill(NaN) } })).toThrow(/svrpg\.thetaPrev\[0\]\[0\] is NaN/);
    expect(() => env.localRound({ ...base, svrpg: { ...sv, clip: 0.5 } })).toThrow(/svrpg\.clip must be 0 \(no clipping\) or a finite number >= 1, got 0\.5/);
    expect(() => env.localRound({ ...base, svrpg: { ...sv, beta: NaN } })).toThrow(/svrpg\.beta must be finite/);
    const g = new Float64Array(SA);
    expect(() => env.estimateSvrpg(theta, thetaPrev, R, 3, 2, -1, agentStream(1, 1), g, new Float64Array(SA))).toThrow(/clip must be 0/);
    expect(() => env.estimateSvrpg(theta, thetaPrev, R, 3, 2, 0, agentStream(1, 1), g, new Float64Array(2))).toThrow(/has length 2/);
    expect(Array.from(base.theta)).toEqual(Array.from(theta)); // nothing moved
  });
});

describe('FedSVRPG-M sampled rounds across backends', () => {
  it('every backend gives the same bits for a sampled svrpg round (one-trajectory, lockstep and prefetching lanes)', () => {
    expect(backends.map((b) => b.name)).toContain('js');
    // From 300 x 7 the native sampler's tables pass 1 MiB (its prefetching lanes); 5000 x 10 is sparse
    // (6 next states per pair), most of its rows unvisited; batch 1 takes the one-trajectory loops.
    for (const [S, A, K] of [[6, 3, 25], [300, 7, 40], [5000, 10, 30]] as const) {
      const m = randomMdp({ states: S, actions: A, agents: 1, seed: S, ...(S > 1000 ? { branching: 6 } : {}) });
      const n = S * A;
      const t0 = Float64Array.from({ length: n }, (_, j) => Math.sin(3 * j));
      const sv = { thetaPrev: t0.map((v, j) => v - 0.4 * Math.cos(j)), u: Float64Array.from({ length: n }, (_, j) => 0.5 * Math.sin(j)), beta: 0.4, clip: 5 };
      for (const batch of [1, 9, 40]) {
        const outs = backends.map((b) => {
          const env = b.createEnvironment(environmentSpec(m));
          const th = Float64Array.from(t0), rng = agentStream(S, batch);
          env.localRound({ theta: th, reward: m.rewards[0]!, correction: null, eta: 0.7, steps: 4, gradient: 'sampled', horizon: K, batch, rng, svrpg: sv });
          env.dispose();
          return { name: b.name, th, rng: Array.from(rng) };
        });
        for (const o of outs.slice(1)) {
          expect(sameBits(o.th, outs[0]!.th), `${o.name} vs ${outs[0]!.name}: S ${S} batch ${batch}`).toBe(true);
          expect(o.rng).toEqual(outs[0]!.rng);
        }
        expect(outs[0]!.th.some((v, j) => v !== t0[j])).toBe(true);
      }
    }
  });
});
