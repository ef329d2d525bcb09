import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { evalCadence } from '../src/federation/cadence.js';
import { resolveSettings } from '../src/federation/settings.js';
import { train, type TrainOptions } from '../src/federation/train.js';
import { loadMdp } from '../src/mdp/format.js';
import { gridworldMdp } from '../src/mdp/generate.js';
import { fixturePath, untimed } from './helpers/fixtures.js';

const mdp = loadMdp(fixturePath('random-s6-a3-n4.json'));

describe('the evaluation cadence (--eval-every)', () => {
  const o: TrainOptions = { gradient: 'sampled', rounds: 7, localSteps: 2, horizon: 8, batch: 2, seed: 3, backend: 'js' };
  it('evaluates at t % R === 0 and t === T with the every-round values; every other entry is null', async () => {
    const every = await train(mdp, o);
    const sparse = await train(mdp, { ...o, evalEvery: 3 });
    expect(sparse.theta).toEqual(every.theta); // the evaluation never feeds back
    const shown = [0, 3, 6, 7];
    sparse.J.forEach((J, t) => expect(J).toBe(shown.includes(t) ? every.J[t] : null));
    // gradNormSq of round t is at its start: the evaluation of round t - 1
    sparse.gradNormSq.forEach((g, k) => expect(g).toBe(shown.includes(k) ? every.gradNormSq[k] : null));
    sparse.records.forEach((r, k) => {
      const t = k + 1;
      expect(r.gap).toBe(shown.includes(t) ? every.records[k]!.gap : null);
      expect(r.agentJ).toEqual(shown.includes(t) ? every.records[k]!.agentJ : null);
      expect(r.trajectories).toBe(every.records[k]!.trajectories);
    });
  });

  it('resumes from a checkpoint with the nulls in place, bit for bit', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'fedpg-cadence-')), 'c.ckpt');
    const ref = await train(mdp, { ...o, evalEvery: 2, personalize: 'ditto:0.01' });
    await train(mdp, { ...o, rounds: 4, evalEvery: 2, personalize: 'ditto:0.01', checkpoint: { path, every: 1 } });
    const resumed = await train(mdp, { ...o, evalEvery: 2, personalize: 'ditto:0.01', checkpoint: { path, every: 1 } });
    expect(untimed(resumed)).toEqual(untimed(ref));
    expect(ref.personalJ![1]).toBeNull();
  });

  it('auto: every round for exact gradients and small S; a size-based cadence for large sampled runs', () => {
    const s = resolveSettings({ gradient: 'sampled', horizon: 20, batch: 1, localSteps: 5 });
    expect(evalCadence('auto', mdp, s, 'native')).toBe(1);
    const big = gridworldMdp({ width: 60, height: 60, agents: 4 });
    expect(big.states).toBeGreaterThan(2048);
    expect(evalCadence('auto', big, resolveSettings({ gradient: 'exact' }), 'native')).toBe(1);
    const R = evalCadence('auto', big, s, 'native');
    expect(R).toBeGreaterThan(1);
    expect(evalCadence('auto', big, s, 'native')).toBe(R); // deterministic
    expect(() => evalCadence(0, mdp, s, 'js')).toThrow(/evalEvery must be an integer >= 1 or auto/);
  });
});

describe('the evaluation cadence over the network', () => {
  it('agents skip J_i on the rounds train skips; the rest equals train', async () => {
    const { runInProcessFederation } = await import('../src/network/inprocess.js');
    const { jsBackend } = await import('../src/backends/js/index.js');
    const s = { gradient: 'sampled' as const, rounds: 5, localSteps: 2, horizon: 8, batch: 2, seed: 3 };
    const ref = await train(mdp, { ...s, backend: 'js', evalEvery: 2 });
    const net = await runInProcessFederation(mdp, { ...s, backend: jsBackend, evalEvery: 2 });
    expect(net.J).toEqual(ref.J);
    expect(Array.from(net.theta)).toEqual(ref.theta!.flat());
  });
});
