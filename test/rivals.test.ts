import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Backend } from '../src/backends/types.js';
import { jsBackend } from '../src/backends/js/index.js';
import { train, type TrainOptions } from '../src/federation/train.js';
import { mixingMatrix, parseTopology } from '../src/federation/topology.js';
import { resolveSettings } from '../src/federation/settings.js';
import { loadMdp } from '../src/mdp/format.js';
import { averageReward, environmentSpec } from '../src/mdp/model.js';
import { networkRefusal } from '../src/network/protocol.js';
import { testedBackends } from './helpers/backends.js';
import { fixturePath, relativeError, untimed } from './helpers/fixtures.js';

const backends = await testedBackends();
const mdp = loadMdp(fixturePath('random-s6-a3-n4.json'));
const SA = mdp.states * mdp.actions;
const peers2 = JSON.parse(readFileSync(fixturePath('random-s6-a3-n4.peers2.json'), 'utf8')) as {
  runs: { args: string[]; J: number[]; theta: number[][]; consensus?: number[] }[];
};
const common: TrainOptions = { gradient: 'exact', rounds: 30, localSteps: 5, eta: 0.3, alphaG: 1 };

function optionsOf(args: string[]): TrainOptions {
  const o: Record<string, unknown> = {};
  const key: Record<string, string> = { '--algorithm': 'algorithm', '--topology': 'topology', '--entropy': 'entropy', '--seed': 'seed', '--momentum-beta': 'momentumBeta' };
  for (let k = 0; k < args.length; k += 2) o[key[args[k]!]!] = /^[0-9.]+$/.test(args[k + 1]!) ? Number(args[k + 1]) : args[k + 1];
  return o as TrainOptions;
}

describe.each(backends.map((b) => [b.name, b] as const))('the rivals on the %s backend', (_n, backend: Backend) => {
  it.each(peers2.runs.map((r) => [r.args.join(' '), r] as const))('%s matches the independent iterates to 1e-9', async (_l, run) => {
    const o = optionsOf(run.args);
    // FedNPG's exact mode is its own default: the fixture's --gradient exact is left out for it.
    const r = await train(mdp, { ...common, ...o, backend, ...(o.algorithm === 'fednpg' ? { gradient: undefined } : {}) });
    expect(r.gradient).toBe('exact');
    expect(relativeError(r.J, run.J)).toBeLessThanOrEqual(1e-9);
    expect(relativeError(r.theta, run.theta)).toBeLessThanOrEqual(1e-9);
    if (run.consensus) expect(relativeError(r.consensus, run.consensus)).toBeLessThanOrEqual(1e-9);
  });
});

describe('FedNPG', () => {
  it('on the complete graph is centralised NPG on the average MDP', async () => {
    const tau = 0.05, eta = 0.3, gamma = mdp.gamma;
    const r = await train(mdp, { algorithm: 'fednpg', rounds: 3, eta, entropy: tau, backend: 'js' });
    const env = jsBackend.createEnvironment(environmentSpec(mdp, 0));
    const Rbar = averageReward(mdp);
    let theta = new Float64Array(SA);
    const ev = { J: new Float64Array(1), V: new Float64Array(mdp.states), Q: new Float64Array(SA), grad: new Float64Array(SA), occupancy: new Float64Array(mdp.states) };
    const alpha = 1 - (eta * tau) / (1 - gamma);
    for (let t = 0; t < 3; t++) {
      env.evaluateRegularized(theta, Rbar, tau, ev);
      theta = theta.map((x, j) => alpha * x + (eta / (1 - gamma)) * ev.Q[j]!);
    }
    expect(relativeError(r.theta, Array.from(theta))).toBeLessThan(1e-12);
    expect(r.consensus!.every((c) => c < 1e-20)).toBe(true);
  });

  it('the trackers follow the mean Q on a ring (gradient tracking), and workers give the same bits', async () => {
    const o: TrainOptions = { algorithm: 'fednpg', topology: 'ring', rounds: 5, eta: 0.3, backend: 'js' };
    const inProcess = await train(mdp, o);
    const threads = await train(mdp, { ...o, workers: 2 });
    expect(untimed({ J: threads.J, theta: threads.theta, c: threads.consensus })).toEqual(untimed({ J: inProcess.J, theta: inProcess.theta, c: inProcess.consensus }));
    expect(inProcess.consensus![3]).toBeGreaterThan(0);
    // bytes: 2 tables to each neighbour per round; on a ring of 4 every agent has 2 neighbours
    expect(inProcess.records[0]!.bytes).toBe(8 * SA * 2 * 4 * 2);
  });

  it('Metropolis weights on a seeded Erdos-Renyi graph are doubly stochastic; a disconnected draw is refused', () => {
    const W = mixingMatrix(parseTopology('er:0.7'), 6, 3);
    for (let i = 0; i < 6; i++) {
      let row = 0, col = 0;
      for (let j = 0; j < 6; j++) {
        row += W[i * 6 + j]!;
        col += W[j * 6 + i]!;
        expect(W[i * 6 + j]).toBe(W[j * 6 + i]);
      }
      expect(row).toBeCloseTo(1, 14);
      expect(col).toBeCloseTo(1, 14);
    }
    expect(() => mixingMatrix(parseTopology('er:0.01'), 6, 3)).toThrow(/disconnected graph of 6 agents/);
  });

  it('is exact only, has no server step, and the network refuses it', async () => {
    await expect(train(mdp, { algorithm: 'fednpg', gradient: 'sampled', backend: 'js', rounds: 1 })).rejects.toThrow(/fednpg has no sampled form.*Q tables between neighbours/);
    await expect(train(mdp, { algorithm: 'fednpg', participation: 0.5, backend: 'js', rounds: 1 })).rejects.toThrow(/needs a server step, which fednpg does not have/);
    await expect(train(mdp, { algorithm: 'fednpg', aggregation: 'median', backend: 'js', rounds: 1 })).rejects.toThrow(/needs a server step/);
    await expect(train(mdp, { algorithm: 'fednpg', entropy: 10, eta: 0.3, backend: 'js', rounds: 1 })).rejects.toThrow(/alpha = 1 - eta \* tau \/ \(1 - gamma\) > 0/);
    expect(networkRefusal(resolveSettings({ algorithm: 'fednpg' }))).toMatch(/decentralised .* peer-to-peer transport is out of scope/);
    expect(resolveSettings({ algorithm: 'fednpg' }).gradient).toBe('exact');
  });
});

describe('FedSVRPG-M', () => {
  it('with BETA = 1 is FedAvg bit for bit (exact gradients)', async () => {
    const o: TrainOptions = { gradient: 'exact', rounds: 6, localSteps: 3, eta: 0.4, backend: 'js' };
    const a = await train(mdp, { ...o, algorithm: 'fedavg' });
    const b = await train(mdp, { ...o, algorithm: 'fedsvrpg-m', momentumBeta: 1 });
    expect(b.theta).toEqual(a.theta);
    expect(b.J).toEqual(a.J);
    const c = await train(mdp, { ...o, algorithm: 'fedsvrpg-m', momentumBeta: 0.2 });
    expect(relativeError(c.theta, a.theta)).toBeGreaterThan(1e-4);
  });

  it('counts N M (1 + T H) trajectories and N + 4 N T vectors', async () => {
    const N = 4, M = 2, H = 3, K = 6;
    const r = await train(mdp, { algorithm: 'fedsvrpg-m', gradient: 'exact', rounds: 3, localSteps: H, batch: M, horizon: K, backend: 'js' });
    r.records.forEach((rec, k) => expect(rec.bytes).toBe(8 * SA * (N + 4 * N * (k + 1))));
    expect(r.records.every((rec) => rec.trajectories === 0)).toBe(true);
  });
});
