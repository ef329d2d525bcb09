import { describe, expect, it } from 'vitest';
import type { Backend } from '../src/backends/types.js';
import { train, trainRounds } from '../src/federation/train.js';
import { loadMdp, loadTheta } from '../src/mdp/format.js';
import { randomMdp } from '../src/mdp/generate.js';
import type { Mdp } from '../src/mdp/model.js';
import { testedBackends } from './helpers/backends.js';
import { expectedFixtures, fixturePath, readExpect, relativeError } from './helpers/fixtures.js';

const backends = await testedBackends();

function theta0For(name: string, mdp: Mdp): Float64Array {
  return loadTheta(fixturePath(`${name}.expect.json`), mdp.states, mdp.actions);
}

describe.each(backends.map((b) => [b.name, b] as const))('algorithms on the %s backend', (_name, backend: Backend) => {
  describe.each(expectedFixtures())('fixture %s', (name) => {
    const mdp = loadMdp(fixturePath(`${name}.json`));
    const exp = readExpect(name).expect;
    it.each([
      ['fast-fedpg', 'fastFedPG'],
      ['fedavg', 'fedAvg'],
    ] as const)('exact-gradient %s iterates match to 1e-9', async (algorithm, key) => {
      const s = exp[key];
      const r = await train(mdp, {
        algorithm,
        gradient: 'exact',
        rounds: s.rounds,
        localSteps: s.localSteps,
        eta: s.eta,
        alphaG: s.alphaG,
        theta0: theta0For(name, mdp),
        backend,
      });
      expect(r.J).toHaveLength(s.rounds + 1);
      expect(relativeError(r.J, s.J)).toBeLessThanOrEqual(1e-9);
      expect(relativeError(r.theta, s.theta)).toBeLessThanOrEqual(1e-9);
      if (s.gradNormSq) expect(relativeError(r.gradNormSq, s.gradNormSq)).toBeLessThanOrEqual(1e-9);
      if (mdp.perAgentKernels) expect(r.records.every((rec) => rec.gap === null)).toBe(true);
    });
  });

  it('FedAvg plateaus where Fast-FedPG converges to J* (plateau-s6-a3-n4, H = 10, eta = 0.5)', async () => {
    const mdp = loadMdp(fixturePath('plateau-s6-a3-n4.json'));
    const common = { gradient: 'exact' as const, rounds: 2000, localSteps: 10, eta: 0.5, backend };
    const fast = await train(mdp, { ...common, algorithm: 'fast-fedpg' });
    const avg = await train(mdp, { ...common, algorithm: 'fedavg' });
    const gap = (r: typeof fast, t: number): number => r.records[t - 1]!.gap!;
    // SPEC.md: the oracle's gap is 8.9e-3 / 1.6e-3 / 4.0e-4 after 100 / 500 / 2000 rounds; FedAvg stays at 0.15.
    expect(gap(fast, 2000)).toBeLessThan(1e-3);
    expect(gap(fast, 2000)).toBeGreaterThan(0);
    expect(gap(avg, 2000)).toBeGreaterThan(0.1);
    // O(1/T): T * gap stays bounded (about 0.8) rather than shrinking geometrically.
    for (const t of [100, 500, 2000]) expect(t * gap(fast, t)).toBeGreaterThan(0.3);
    for (const t of [100, 500, 2000]) expect(t * gap(fast, t)).toBeLessThan(2);
  });
});

describe('training runs (js backend)', () => {
  const mdp = randomMdp({ states: 8, actions: 3, agents: 3, seed: 5 });
  const base = { gradient: 'sampled' as const, rounds: 4, localSteps: 3, eta: 0.2, horizon: 12, batch: 2, seed: 42, backend: 'js' as const };

  it('the same seed gives the same run, another seed another run', async () => {
    const a = await train(mdp, base);
    const b = await train(mdp, base);
    const c = await train(mdp, { ...base, seed: 43 });
    expect(a.theta).toEqual(b.theta);
    expect(a.J).toEqual(b.J);
    expect(c.theta).not.toEqual(a.theta);
  });

  it('an agent\u2019s draws do not depend on the agents beside it', async () => {
    const pair: Mdp = { ...mdp, rewards: mdp.rewards.slice(0, 2) };
    const three = await train(mdp, { ...base, algorithm: 'local' });
    const two = await train(pair, { ...base, algorithm: 'local' });
    expect(three.thetas![0]).toEqual(two.thetas![0]);
    expect(three.thetas![1]).toEqual(two.thetas![1]);
  });

  it('counts trajectories, steps and bytes as SPEC.md says', async () => {
    const N = 3, M = 2, H = 3, K = 12, SA = 24;
    for (const [algorithm, traj, vectors] of [
      ['fast-fedpg', (t: number) => N * M * (1 + t * (H + 1)), (t: number) => N + 4 * N * t],
      ['fedavg', (t: number) => N * M * H * t, (t: number) => 2 * N * t],
      ['centralized', (t: number) => N * M * t, (t: number) => 2 * N * t],
      ['local', (t: number) => N * M * H * t, () => 0],
    ] as const) {
      const r = await train(mdp, { ...base, algorithm });
      r.records.forEach((rec, k) => {
        const t = k + 1;
        expect(rec.round).toBe(t);
        expect(rec.trajectories).toBe(traj(t));
        expect(rec.steps).toBe(K * traj(t));
        expect(rec.bytes).toBe(8 * SA * vectors(t));
      });
    }
    const exact = await train(mdp, { ...base, gradient: 'exact' });
    expect(exact.records.every((r) => r.trajectories === 0 && r.steps === 0)).toBe(true);
  });

  it('centralized takes theta + eta * mean_i grad J_i per round', async () => {
    const r = await train(mdp, { ...base, gradient: 'exact', algorithm: 'centralized', rounds: 1, localSteps: 7, alphaG: 0.5 });
    const { evaluatePolicy } = await import('../src/evaluate.js');
    const rep = await evaluatePolicy(mdp, new Float64Array(24), { backend: 'js' });
    const want = rep.gradAvg.map((row) => row.map((g) => 0.2 * g));
    expect(relativeError(r.theta, want)).toBeLessThan(1e-14);
  });

  it('local reports per-agent thetas, null theta and gradNormSq, and J as the mean of J(theta_i)', async () => {
    const r = await train(mdp, { ...base, algorithm: 'local', gradient: 'exact' });
    expect(r.theta).toBeNull();
    expect(r.thetas).toHaveLength(3);
    expect(r.gradNormSq.every((g) => g === null)).toBe(true);
    const { evaluatePolicy } = await import('../src/evaluate.js');
    let mean = 0;
    for (const th of r.thetas!) mean += (await evaluatePolicy(mdp, Float64Array.from(th.flat()), { backend: 'js' })).Javg;
    expect(Math.abs(mean / 3 - r.J[r.J.length - 1]!)).toBeLessThan(1e-12);
  });

  it('trainRounds yields every record and stops on an AbortSignal', async () => {
    const seen: number[] = [];
    for await (const rec of trainRounds(mdp, base)) seen.push(rec.round);
    expect(seen).toEqual([1, 2, 3, 4]);
    const controller = new AbortController();
    const rounds: number[] = [];
    await expect(
      train(mdp, {
        ...base,
        rounds: 50,
        signal: controller.signal,
        onRecord: (r) => {
          rounds.push(r.round);
          if (r.round === 2) controller.abort(new Error('stop here'));
        },
      }),
    ).rejects.toThrow('stop here');
    expect(rounds).toEqual([1, 2]);
  });

  it('regfedpg is FedAvg on J_tau: one round equals H exact regularised steps per agent, averaged', async () => {
    const { jsBackend } = await import('../src/backends/js/index.js');
    const { environmentSpec } = await import('../src/mdp/model.js');
    const env = jsBackend.createEnvironment(environmentSpec(mdp));
    const tau = 0.2, eta = 0.3, H = 4, SA = 24;
    const mean = new Float64Array(SA);
    for (const R of mdp.rewards) {
      const th = new Float64Array(SA);
      for (let h = 0; h < H; h++) {
        const out = { J: new Float64Array(1), V: new Float64Array(8), Q: new Float64Array(SA), grad: new Float64Array(SA), occupancy: new Float64Array(8) };
        env.evaluateRegularized!(th, R, tau, out);
        for (let j = 0; j < SA; j++) th[j] = th[j]! + eta * out.grad[j]!;
      }
      for (let j = 0; j < SA; j++) mean[j] = mean[j]! + th[j]! / 3;
    }
    const r = await train(mdp, { ...base, algorithm: 'regfedpg', gradient: 'exact', entropy: tau, eta, localSteps: H, rounds: 1 });
    expect(relativeError(r.theta, Array.from({ length: 8 }, (_, s) => Array.from(mean.subarray(s * 3, s * 3 + 3))))).toBeLessThan(1e-13);
    const plain = await train(mdp, { ...base, algorithm: 'fedavg', gradient: 'exact', eta, localSteps: H, rounds: 1 });
    expect(relativeError(r.theta, plain.theta)).toBeGreaterThan(1e-3);
  });

  it('fast-fedpg with entropy converges to a stationary point of the regularised average objective', async () => {
    const tau = 0.1;
    const r = await train(mdp, { ...base, algorithm: 'fast-fedpg', gradient: 'exact', entropy: tau, eta: 1, localSteps: 5, rounds: 3000 });
    const { jsBackend } = await import('../src/backends/js/index.js');
    const { environmentSpec, averageReward } = await import('../src/mdp/model.js');
    const env = jsBackend.createEnvironment(environmentSpec(mdp));
    const out = { J: new Float64Array(1), V: new Float64Array(8), Q: new Float64Array(24), grad: new Float64Array(24), occupancy: new Float64Array(8) };
    env.evaluateRegularized!(Float64Array.from(r.theta!.flat()), averageReward(mdp), tau, out);
    const norm = Math.hypot(...out.grad);
    expect(norm).toBeLessThan(1e-6); // a linear rate: 1.2e-4 after 400 rounds, 1.4e-5 after 1000, 2.8e-8 after 3000
    // FedAvg-style drift would leave a visible gradient: regfedpg with the same steps does not get there.
    const drift = await train(mdp, { ...base, algorithm: 'regfedpg', gradient: 'exact', entropy: tau, eta: 1, localSteps: 5, rounds: 3000 });
    env.evaluateRegularized!(Float64Array.from(drift.theta!.flat()), averageReward(mdp), tau, out);
    expect(Math.hypot(...out.grad)).toBeGreaterThan(1e-3); // regfedpg stalls at 7.7e-3
  });

  it('the memory makes the corrections cancel: sum_i (g - g_i) = 0 in every round (not so with fresh samples)', async () => {
    const { jsBackend } = await import('../src/backends/js/index.js');
    const seen: Float64Array[] = [];
    const spy: Backend = {
      name: 'js',
      createEnvironment(spec) {
        const env = jsBackend.createEnvironment(spec);
        return Object.assign(Object.create(env), {
          localRound(args: Parameters<typeof env.localRound>[0]) {
            seen.push(Float64Array.from(args.correction!));
            env.localRound(args);
          },
        });
      },
    };
    const worst = async (correction: 'memory' | 'fresh'): Promise<number> => {
      seen.length = 0;
      await train(mdp, { ...base, backend: spy, correction, rounds: 5 });
      expect(seen).toHaveLength(5 * 3);
      let w = 0;
      for (let t = 0; t < 5; t++)
        for (let j = 0; j < 24; j++) w = Math.max(w, Math.abs(seen[3 * t]![j]! + seen[3 * t + 1]![j]! + seen[3 * t + 2]![j]!));
      return w;
    };
    expect(await worst('memory')).toBeLessThan(1e-13);
    expect(await worst('fresh')).toBeGreaterThan(1e-3);
  });

  it('--correction fresh draws one more sample per agent and round than memory', async () => {
    const fresh = await train(mdp, { ...base, correction: 'fresh' });
    const memory = await train(mdp, { ...base });
    fresh.records.forEach((rec, k) => expect(rec.trajectories - memory.records[k]!.trajectories).toBe(3 * 2 * (k + 1)));
    expect(fresh.theta).not.toEqual(memory.theta);
    // With exact gradients a fresh sample is the remembered one: identical runs.
    const fe = await train(mdp, { ...base, gradient: 'exact', correction: 'fresh' });
    const me = await train(mdp, { ...base, gradient: 'exact' });
    expect(fe.theta).toEqual(me.theta);
  });

  it('refuses bad settings with the field and the value', async () => {
    await expect(train(mdp, { ...base, eta: -1 })).rejects.toThrow('eta must be a finite number > 0, got -1');
    await expect(train(mdp, { ...base, alphaG: 1.5 })).rejects.toThrow('alphaG must be in (0, 1], got 1.5');
    await expect(train(mdp, { ...base, localSteps: 0 })).rejects.toThrow(/localSteps must be an integer/);
    await expect(train(mdp, { ...base, theta0: new Float64Array(5) })).rejects.toThrow('theta0 has 5 values, expected states*actions = 24');
    await expect(train(mdp, { ...base, algorithm: 'regfedpg' })).rejects.toThrow('regfedpg needs an entropy weight');
    await expect(train(mdp, { ...base, algorithm: 'fedavg', entropy: 0.1 })).rejects.toThrow(/entropy applies to .*regfedpg.* only, not fedavg/);
  });
});
