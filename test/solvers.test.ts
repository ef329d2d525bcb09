import { beforeAll, describe, expect, it } from 'vitest';
import type { Backend, Environment, EnvironmentSpec, Evaluation, WarmStart } from '../src/backends/types.js';
import { jsBackend } from '../src/backends/js/index.js';
import { gridworldMdp, randomMdp } from '../src/mdp/generate.js';
import { averageReward, environmentSpec, stackedRewards, type Mdp } from '../src/mdp/model.js';
import { evaluatePolicy } from '../src/evaluate.js';
import { testedBackends } from './helpers/backends.js';
import { untimed } from './helpers/fixtures.js';
import { train, type TrainOptions } from '../src/federation/train.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * The sparse solvers past the dense limit (S > 2048): certified ILU(0)-BiCGSTAB evaluation,
 * warm starts and the policy-iteration J*. Their contract: a proven relative error of 1e-12
 * (relative to max(1, |V|_inf), and to |d|_1 = 1 for the occupancy), so every backend agrees with
 * every other to 1e-11 and with a manufactured exact solution to 1e-11 as well.
 */

let backends: Backend[] = [];
beforeAll(async () => {
  backends = await testedBackends();
});

function buffers(n: number, S: number, A: number): Evaluation {
  return {
    J: new Float64Array(n),
    V: new Float64Array(n * S),
    Q: new Float64Array(n * S * A),
    grad: new Float64Array(n * S * A),
    occupancy: new Float64Array(S),
  };
}

function stacked(mdp: Mdp): Float64Array {
  const SA = mdp.states * mdp.actions;
  const out = new Float64Array(mdp.rewards.length * SA);
  mdp.rewards.forEach((r, i) => out.set(r, i * SA));
  return out;
}

/** A smooth, non-trivial theta from a fixed formula (no randomness to seed). */
function thetaOf(SA: number, scale: number, phase = 0): Float64Array {
  return Float64Array.from({ length: SA }, (_, j) => scale * Math.sin(0.37 * j + phase));
}

/** max |a - b| / max(1, max |b|): the scale the solvers' bound is stated in. */
function errorScaled(a: Float64Array, b: Float64Array): number {
  let d = 0, m = 1;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / m;
}

/** Kernel rows of a spec as (s, a) -> [next, prob][] (dense or sparse). */
function rowsOf(spec: EnvironmentSpec): (row: number, f: (j: number, p: number) => void) => void {
  const t = spec.transitions, S = spec.states;
  if (t.kind === 'dense')
    return (row, f) => {
      for (let j = 0; j < S; j++) if (t.p[row * S + j] !== 0) f(j, t.p[row * S + j]!);
    };
  return (row, f) => {
    for (let k = t.rowStart[row]!; k < t.rowStart[row + 1]!; k++) f(t.next[k]!, t.prob[k]!);
  };
}

/**
 * R(s, a) = V(s) - gamma (P V)(s, a): then V = (I - gamma P_pi)^{-1} r_pi for every policy pi,
 * up to the rounding in forming R, so V is a known exact solution.
 */
function manufacturedReward(spec: EnvironmentSpec, vTrue: Float64Array): Float64Array {
  const rows = rowsOf(spec);
  const A = spec.actions, SA = spec.states * A;
  const R = new Float64Array(SA);
  for (let row = 0; row < SA; row++) {
    let pv = 0;
    rows(row, (j, p) => (pv += p * vTrue[j]!));
    R[row] = vTrue[Math.floor(row / A)]! - spec.gamma * pv;
  }
  return R;
}

// 75 x 75 = 5625 states (4 actions, slippery moves, gamma 0.9 and 0.99), and a random sparse MDP
// of 6000 states with 4 successors per row: both past the dense limit.
const grid = gridworldMdp({ width: 75, height: 75, agents: 4, seed: 3 });
const grid99 = { ...gridworldMdp({ width: 75, height: 75, agents: 2, seed: 4, gamma: 0.99 }) };
const random = randomMdp({ states: 6000, actions: 3, agents: 2, seed: 9, branching: 4, gamma: 0.95 });
const cases: [string, Mdp][] = [
  ['gridworld 75 x 75, gamma 0.9', grid],
  ['gridworld 75 x 75, gamma 0.99', grid99],
  ['random sparse, S = 6000, gamma 0.95', random],
];

describe.each(cases)('sparse exact solvers on the %s', (_name, mdp) => {
  const S = mdp.states, A = mdp.actions, SA = S * A, n = mdp.rewards.length;
  const spec = environmentSpec(mdp);
  const rewards = stacked(mdp);
  const theta = thetaOf(SA, 1.5);

  it('are past the dense limit', () => {
    expect(S).toBeGreaterThan(2048);
  });

  it('every backend agrees with js to 1e-11 on J, V, Q, the gradient, the occupancy and J*', () => {
    const ref = buffers(n, S, A);
    const js = jsBackend.createEnvironment(spec);
    js.evaluate(theta, rewards, ref);
    const rbar = averageReward(mdp);
    const vRef = new Float64Array(S);
    const jRef = js.optimal(rbar, vRef);
    for (const b of backends) {
      if (b.name === 'js') continue;
      const env = b.createEnvironment(spec);
      const got = buffers(n, S, A);
      env.evaluate(theta, rewards, got);
      for (const k of ['J', 'V', 'Q', 'grad', 'occupancy'] as const) expect(errorScaled(got[k], ref[k]), `${b.name} ${k}`).toBeLessThan(1e-11);
      const v = new Float64Array(S);
      expect(Math.abs(env.optimal(rbar, v) - jRef) / Math.max(1, Math.abs(jRef)), `${b.name} J*`).toBeLessThan(1e-11);
      expect(errorScaled(v, vRef), `${b.name} V*`).toBeLessThan(1e-11);
      env.dispose();
    }
  });

  it('recover a manufactured solution to 1e-11: R(s, a) = V(s) - gamma (P V)(s, a) has the value V', () => {
    // Exactly V = (I - gamma P_pi)^{-1} r_pi for every policy, up to the rounding in forming R.
    const vTrue = Float64Array.from({ length: S }, (_, s) => 3 + 2 * Math.cos(0.01 * s));
    const R = manufacturedReward(spec, vTrue);
    for (const b of backends) {
      const env = b.createEnvironment(spec);
      const got = buffers(1, S, A);
      env.evaluate(theta, R, got);
      expect(errorScaled(got.V, vTrue), `${b.name}`).toBeLessThan(1e-11);
      // The occupancy, independently: d^T r_pi / (1 - gamma) = rho^T V = J for any reward, and sum d = 1.
      const pi = new Float64Array(SA);
      for (let s = 0; s < S; s++) {
        let m = -Infinity, z = 0;
        for (let a = 0; a < A; a++) m = Math.max(m, theta[s * A + a]!);
        for (let a = 0; a < A; a++) z += pi[s * A + a] = Math.exp(theta[s * A + a]! - m);
        for (let a = 0; a < A; a++) pi[s * A + a] = pi[s * A + a]! / z;
      }
      let dr = 0, mass = 0;
      for (let s = 0; s < S; s++) {
        let r = 0;
        for (let a = 0; a < A; a++) r += pi[s * A + a]! * R[s * A + a]!;
        dr += got.occupancy[s]! * r;
        mass += got.occupancy[s]!;
      }
      expect(Math.abs(mass - 1), `${b.name} sum d`).toBeLessThan(1e-11);
      expect(Math.abs(dr / (1 - spec.gamma) - got.J[0]!) / Math.max(1, Math.abs(got.J[0]!)), `${b.name} d^T r`).toBeLessThan(1e-11);
      env.dispose();
    }
  });

  it('J* is the fixed point of value iteration (checked here by plain value iteration to 1e-13)', () => {
    const rbar = averageReward(mdp);
    const rows = rowsOf(spec);
    const g = spec.gamma;
    let v = new Float64Array(S), next = new Float64Array(S);
    for (let it = 0; it < 100000; it++) {
      let res = 0, vn = 1;
      for (let s = 0; s < S; s++) {
        let best = -Infinity;
        for (let a = 0; a < A; a++) {
          let pv = 0;
          rows(s * A + a, (j, p) => (pv += p * v[j]!));
          best = Math.max(best, rbar[s * A + a]! + g * pv);
        }
        next[s] = best;
        res = Math.max(res, Math.abs(best - v[s]!));
        vn = Math.max(vn, Math.abs(best));
      }
      [v, next] = [next, v];
      if (res / (1 - g) <= 1e-13 * vn) break;
    }
    let jVi = 0;
    for (let s = 0; s < S; s++) jVi += spec.initial[s]! * v[s]!;
    for (const b of backends) {
      const env = b.createEnvironment(spec);
      const vOut = new Float64Array(S);
      const J = env.optimal(rbar, vOut);
      expect(Math.abs(J - jVi) / Math.max(1, Math.abs(jVi)), b.name).toBeLessThan(1e-11);
      expect(errorScaled(vOut, v), b.name).toBeLessThan(1e-11);
      env.dispose();
    }
  }, 120_000);
});

describe('warm starts', () => {
  const mdp = grid;
  const S = mdp.states, A = mdp.actions, SA = S * A, n = mdp.rewards.length;
  const spec = environmentSpec(mdp);
  const rewards = stacked(mdp);
  const theta0 = thetaOf(SA, 1.5);
  // A local step's worth of change.
  const theta1 = Float64Array.from(theta0, (t, j) => t + 0.05 * Math.cos(0.11 * j));

  it('agree with cold solves to the proven tolerance, and hand back this call V and occupancy', () => {
    for (const b of backends) {
      const env = b.createEnvironment(spec);
      const first = buffers(n, S, A);
      const warm: WarmStart = { V: new Float64Array(n * S), occupancy: new Float64Array(S) };
      env.evaluate(theta0, rewards, first, warm);
      expect(Array.from(warm.V), b.name).toEqual(Array.from(first.V));
      expect(Array.from(warm.occupancy), b.name).toEqual(Array.from(first.occupancy));
      const warmed = buffers(n, S, A), cold = buffers(n, S, A);
      env.evaluate(theta1, rewards, warmed, warm);
      env.evaluate(theta1, rewards, cold);
      for (const k of ['J', 'V', 'Q', 'grad', 'occupancy'] as const) expect(errorScaled(warmed[k], cold[k]), `${b.name} ${k}`).toBeLessThan(2e-12);
      // The warm start moved the iterates: the two solves are not the same computation.
      expect(Array.from(warmed.V)).not.toEqual(Array.from(cold.V));
      expect(Array.from(warm.V)).toEqual(Array.from(warmed.V));
      env.dispose();
    }
  });

  it('from all zeros is exactly the cold start (so a fresh run and a resumed one match bit for bit)', () => {
    for (const b of backends) {
      const env = b.createEnvironment(spec);
      const a = buffers(n, S, A), c = buffers(n, S, A);
      env.evaluate(theta0, rewards, a, { V: new Float64Array(n * S), occupancy: new Float64Array(S) });
      env.evaluate(theta0, rewards, c);
      for (const k of ['J', 'V', 'Q', 'grad', 'occupancy'] as const) expect(Array.from(a[k]), `${b.name} ${k}`).toEqual(Array.from(c[k]));
      env.dispose();
    }
  });

  it('the same warm input gives the same bits (checkpointed vectors resume exactly)', () => {
    for (const b of backends) {
      const env = b.createEnvironment(spec);
      const warm: WarmStart = { V: new Float64Array(n * S), occupancy: new Float64Array(S) };
      env.evaluate(theta0, rewards, buffers(n, S, A), warm);
      const saved: WarmStart = { V: warm.V.slice(), occupancy: warm.occupancy.slice() };
      const a = buffers(n, S, A), c = buffers(n, S, A);
      env.evaluate(theta1, rewards, a, warm);
      const other = b.createEnvironment(spec);
      other.evaluate(theta1, rewards, c, saved);
      for (const k of ['J', 'V', 'grad', 'occupancy'] as const) expect(Array.from(a[k]), `${b.name} ${k}`).toEqual(Array.from(c[k]));
      env.dispose();
      other.dispose();
    }
  });

  it('leave the dense path (S <= 2048) bit-identical and only receive its solution', () => {
    const small = gridworldMdp({ width: 20, height: 20, agents: 2, seed: 1 });
    const sp = environmentSpec(small);
    const Ss = small.states, SAs = Ss * small.actions;
    const r = stacked(small);
    const th = thetaOf(SAs, 1);
    for (const b of backends) {
      const env = b.createEnvironment(sp);
      const a = buffers(2, Ss, small.actions), c = buffers(2, Ss, small.actions);
      const warm: WarmStart = { V: new Float64Array(2 * Ss).fill(7), occupancy: new Float64Array(Ss).fill(0.5) };
      env.evaluate(th, r, a, warm);
      env.evaluate(th, r, c);
      for (const k of ['J', 'V', 'Q', 'grad', 'occupancy'] as const) expect(Array.from(a[k]), `${b.name} ${k}`).toEqual(Array.from(c[k]));
      expect(Array.from(warm.V)).toEqual(Array.from(c.V));
      env.dispose();
    }
  });

  it('refuse a warm start of the wrong length or with a non-finite entry, naming it', () => {
    for (const b of backends) {
      const env = b.createEnvironment(spec);
      const out = buffers(n, S, A);
      expect(() => env.evaluate(theta0, rewards, out, { V: new Float64Array(S), occupancy: new Float64Array(S) }), b.name).toThrow(
        `warm.V has length ${S}, expected ${n * S}`,
      );
      const bad: WarmStart = { V: new Float64Array(n * S), occupancy: new Float64Array(S) };
      bad.occupancy[17] = NaN;
      expect(() => env.evaluate(theta0, rewards, out, bad), b.name).toThrow('warm.occupancy[17] is NaN, not a finite number');
      env.dispose();
    }
  });

  it('native: evaluateAsync reads and writes the warm start as evaluate does', async () => {
    const nb = backends.find((b) => b.name === 'native');
    if (!nb) return;
    const env = nb.createEnvironment(spec) as Environment & {
      evaluateAsync(t: Float64Array, r: Float64Array, o: Evaluation, w?: WarmStart): Promise<void>;
    };
    const w1: WarmStart = { V: new Float64Array(n * S), occupancy: new Float64Array(S) };
    const w2: WarmStart = { V: new Float64Array(n * S), occupancy: new Float64Array(S) };
    env.evaluate(theta0, rewards, buffers(n, S, A), w1);
    env.evaluate(theta0, rewards, buffers(n, S, A), w2);
    const a = buffers(n, S, A), c = buffers(n, S, A);
    env.evaluate(theta1, rewards, a, w1);
    await env.evaluateAsync(theta1, rewards, c, w2);
    expect(Array.from(c.V)).toEqual(Array.from(a.V));
    expect(Array.from(w2.V)).toEqual(Array.from(w1.V));
    expect(Array.from(w2.occupancy)).toEqual(Array.from(w1.occupancy));
    env.dispose();
  });
});

describe('exact local rounds past the dense limit (warm starts within the call)', () => {
  // One agent's round of H exact steps theta += eta (grad J(theta) + c) on the 75 x 75 gridworld
  // (plain, and entropy-regularised as regfedpg runs it). Contract: step 0 solves cold, each later
  // step starts from the previous step's V and occupancy, in every backend; nothing outlives the call.
  const mdp = grid;
  const S = mdp.states, A = mdp.actions, SA = S * A;
  const spec = environmentSpec(mdp);
  const reward = mdp.rewards[1]!;
  const theta0 = thetaOf(SA, 1.5);
  const correction = thetaOf(SA, 1e-4, 2);
  const H = 4;
  // Large enough to move the visited rows by O(1) per step (the gradient's entries are d pi adv / (1 - gamma)).
  const eta = 0.1 * S;

  /** The round written out with evaluate: warm = null solves every step cold. */
  function manual(env: Environment, tau: number, warm: WarmStart | null, steps: number[][] | null = null): Float64Array {
    const th = theta0.slice();
    const out = buffers(1, S, A);
    for (let h = 0; h < H; h++) {
      if (tau > 0) env.evaluateRegularized(th, reward, tau, out, warm ?? undefined);
      else env.evaluate(th, reward, out, warm ?? undefined);
      steps?.push(Array.from(th));
      for (let j = 0; j < SA; j++) th[j] = th[j]! + eta * (out.grad[j]! + correction[j]!);
    }
    return th;
  }

  function round(env: Environment, tau: number): Float64Array {
    const th = theta0.slice();
    env.localRound({ theta: th, reward, correction, eta, steps: H, gradient: 'exact', horizon: 1, batch: 1, rng: new Uint32Array(4), entropy: tau });
    return th;
  }

  it.each([0, 0.05])('are the warm-started recurrence bit for bit, in every backend (entropy %s)', (tau) => {
    for (const b of backends) {
      const env = b.createEnvironment(spec);
      const got = round(env, tau);
      const warm: WarmStart = { V: new Float64Array(S), occupancy: new Float64Array(S) };
      expect(Array.from(got), `${b.name} localRound = warm recurrence`).toEqual(Array.from(manual(env, tau, warm)));
      // A second call starts cold again (nothing is carried over from the first).
      expect(Array.from(round(env, tau)), `${b.name} a second call`).toEqual(Array.from(got));
      // The warm starts changed the computation: the cold recurrence has other bits.
      expect(Array.from(got), `${b.name} differs from cold`).not.toEqual(Array.from(manual(env, tau, null)));
      env.dispose();
    }
  }, 120_000);

  it('agree with the cold recurrence to what the solves prove, step by step', () => {
    for (const b of backends) {
      const env = b.createEnvironment(spec);
      // At every theta of the warm round, the warm step's gradient against a cold solve at that theta.
      const thetas: number[][] = [];
      manual(env, 0, { V: new Float64Array(S), occupancy: new Float64Array(S) }, thetas);
      const warm: WarmStart = { V: new Float64Array(S), occupancy: new Float64Array(S) };
      let gradError = 0;
      for (const t of thetas) {
        const th = Float64Array.from(t);
        const w = buffers(1, S, A), c = buffers(1, S, A);
        env.evaluate(th, reward, w, warm);
        env.evaluate(th, reward, c);
        for (const k of ['J', 'V', 'grad', 'occupancy'] as const) expect(errorScaled(w[k], c[k]), `${b.name} ${k}`).toBeLessThan(2e-12);
        for (let j = 0; j < SA; j++) gradError = Math.max(gradError, Math.abs(w.grad[j]! - c.grad[j]!));
      }
      // Whole rounds: the per-step gradient differences, times eta, summed over the H steps, with
      // a factor 4 for their propagation through later steps' gradients (eta |dgrad/dtheta| < 1 here).
      const warmTheta = round(env, 0), coldTheta = manual(env, 0, null);
      let d = 0;
      for (let j = 0; j < SA; j++) d = Math.max(d, Math.abs(warmTheta[j]! - coldTheta[j]!));
      expect(d, b.name).toBeLessThanOrEqual(4 * H * eta * gradError);
      env.dispose();
    }
  }, 120_000);

  it('every backend agrees with js to 1e-11 on the round (relative to the distance theta moved)', () => {
    const ref = round(jsBackend.createEnvironment(spec), 0);
    let moved = 0;
    for (let j = 0; j < SA; j++) moved = Math.max(moved, Math.abs(ref[j]! - theta0[j]!));
    expect(moved).toBeGreaterThan(0.1);
    for (const b of backends) {
      if (b.name === 'js') continue;
      const env = b.createEnvironment(spec);
      const got = round(env, 0);
      let d = 0;
      for (let j = 0; j < SA; j++) d = Math.max(d, Math.abs(got[j]! - ref[j]!));
      expect(d / moved, b.name).toBeLessThan(1e-11);
      env.dispose();
    }
  }, 120_000);
});

describe('exact-gradient training past the dense limit', () => {
  // Warm vectors live within one localRound call (step 0 of every round is cold), so nothing
  // outlives a call: a checkpoint needs none, and a resumed run equals an uninterrupted one bit for
  // bit. Fails if a backend carried a warm start over from an earlier call (another agent's round
  // or the previous round), since the resumed run starts with fresh environments.
  const mdp = gridworldMdp({ width: 50, height: 50, agents: 3, seed: 6 });
  const o: TrainOptions = { algorithm: 'fast-fedpg', gradient: 'exact', rounds: 3, localSteps: 3, eta: 0.1 * mdp.states, seed: 1 };

  it('resumes from a checkpoint bit for bit in every backend', async () => {
    expect(mdp.states).toBeGreaterThan(2048);
    for (const b of backends) {
      const path = join(mkdtempSync(join(tmpdir(), 'fedpg-warm-')), 'c.ckpt');
      const ref = await train(mdp, { ...o, backend: b.name });
      await train(mdp, { ...o, backend: b.name, rounds: 2, checkpoint: { path, every: 1 } });
      const resumed = await train(mdp, { ...o, backend: b.name, checkpoint: { path, every: 1 } });
      expect(untimed(resumed), b.name).toEqual(untimed(ref));
      expect(ref.J[3]! - ref.J[0]!, b.name).toBeGreaterThan(0); // it learns: the steps are not vanishing
    }
  }, 120_000);
});

describe('evaluatePolicy past the dense limit', () => {
  it("solves the average MDP's reward with the agents' tables and reports exactly what a call of its own gives", async () => {
    const mdp = gridworldMdp({ width: 50, height: 50, agents: 3, seed: 2 });
    const S = mdp.states, SA = S * mdp.actions;
    const theta = thetaOf(SA, 1, 0.5);
    for (const b of backends) {
      const report = await evaluatePolicy(mdp, theta, { backend: b });
      const env = b.createEnvironment(environmentSpec(mdp));
      const avg = buffers(1, S, mdp.actions), agents = buffers(3, S, mdp.actions);
      env.evaluate(theta, averageReward(mdp), avg);
      env.evaluate(theta, stackedRewards(mdp, [0, 1, 2]), agents);
      expect(report.V, b.name).toEqual(Array.from(avg.V));
      expect(report.Q!.flat(), b.name).toEqual(Array.from(avg.Q));
      expect(report.J, b.name).toEqual(Array.from(agents.J));
      env.dispose();
    }
  });
});

describe('near gamma = 1 (the rounding floor regime)', () => {
  // At gamma = 0.999 the proven bound is the rounding floor's, 4 floor / (1 - gamma kappa): with
  // m = 5 entries per row, (5 + 4) u (|b| + 2|x|) * 4 / 1e-3, about 1.3e-11 of |V|; the solves
  // still finish and agree with each other and with a manufactured solution within twice that.
  const mdp = gridworldMdp({ width: 50, height: 50, agents: 2, seed: 5, gamma: 0.999 });
  const S = mdp.states, A = mdp.actions, SA = S * A;
  const spec = environmentSpec(mdp);
  const theta = thetaOf(SA, 1);

  it('evaluates a manufactured solution to the floor bound in every backend, and J* agrees', () => {
    const vTrue = Float64Array.from({ length: S }, (_, s) => 500 + 100 * Math.sin(0.02 * s));
    const R = manufacturedReward(spec, vTrue);
    const rbar = averageReward(mdp);
    let jRef: number | null = null;
    for (const b of backends) {
      const env = b.createEnvironment(spec);
      const got = buffers(1, S, A);
      env.evaluate(theta, R, got);
      expect(errorScaled(got.V, vTrue), b.name).toBeLessThan(3e-11);
      const J = env.optimal(rbar, new Float64Array(S));
      jRef ??= J;
      expect(Math.abs(J - jRef) / Math.max(1, Math.abs(jRef)), b.name).toBeLessThan(3e-11);
      env.dispose();
    }
  }, 120_000);
});
