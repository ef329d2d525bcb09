import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { detCos, detLog } from '../src/math/index.js';
import type { Backend } from '../src/backends/types.js';
import { aggregateInto, parseAggregation, ruleProblem } from '../src/federation/aggregate.js';
import { registerAlgorithm } from '../src/federation/algorithms/registry.js';
import type { AlgorithmPlugin } from '../src/federation/algorithms/types.js';
import { drawParticipants, participantCount } from '../src/federation/participation.js';
import { standardNormal } from '../src/federation/noise.js';
import type { TrainSettings } from '../src/federation/settings.js';
import { train, type TrainOptions, type TrainResult } from '../src/federation/train.js';
import { loadMdp } from '../src/mdp/format.js';
import { randomMdp } from '../src/mdp/generate.js';
import { runInProcessFederation } from '../src/network/inprocess.js';
import { agentStream, nextDouble } from '../src/rng.js';
import { testedBackends } from './helpers/backends.js';
import { fixturePath, relativeError, untimed } from './helpers/fixtures.js';
import { toyAlgorithm } from './helpers/toy-algorithm.js';

const backends = await testedBackends();
const mdp = loadMdp(fixturePath('random-s6-a3-n4.json'));
const SA = mdp.states * mdp.actions;

/** The flags of a peers fixture as library settings (written here, apart from the CLI's parser). */
function settingsOf(args: string[]): Partial<TrainSettings> {
  const keys: Record<string, keyof TrainSettings> = {
    '--gradient': 'gradient', '--rounds': 'rounds', '--local-steps': 'localSteps', '--eta': 'eta', '--alpha-g': 'alphaG',
    '--algorithm': 'algorithm', '--prox-mu': 'proxMu', '--server-momentum': 'serverMomentum', '--participation': 'participation',
    '--seed': 'seed', '--aggregation': 'aggregation', '--byzantine': 'byzantine', '--attack': 'attack', '--personalize': 'personalize',
    '--topology': 'topology', '--entropy': 'entropy', '--momentum-beta': 'momentumBeta',
  };
  const out: Record<string, unknown> = {};
  for (let k = 0; k < args.length; k += 2) {
    const key = keys[args[k]!];
    if (!key) throw new Error(`unknown flag ${args[k]}`);
    const v = args[k + 1]!;
    out[key] = /^-?[0-9.]+$/.test(v) ? Number(v) : v;
  }
  return out as Partial<TrainSettings>;
}

const peers = JSON.parse(readFileSync(fixturePath('random-s6-a3-n4.peers.json'), 'utf8')) as {
  common: string[];
  runs: { args: string[]; J: number[]; theta: number[][]; personalJ?: number[] }[];
};

describe.each(backends.map((b) => [b.name, b] as const))("the field's methods on the %s backend", (_n, backend: Backend) => {
  it.each(peers.runs.map((r) => [r.args.join(' '), r] as const))('%s matches the independent iterates to 1e-9', async (_label, run) => {
    const r = await train(mdp, { ...settingsOf([...peers.common, ...run.args]), backend });
    expect(relativeError(r.J, run.J)).toBeLessThanOrEqual(1e-9);
    expect(relativeError(r.theta, run.theta)).toBeLessThanOrEqual(1e-9);
    if (run.personalJ) expect(relativeError(r.personalJ, run.personalJ)).toBeLessThanOrEqual(1e-9);
  });

  it('every option runs with sampled gradients and is reproducible', async () => {
    const base: TrainOptions = { gradient: 'sampled', rounds: 4, localSteps: 3, eta: 0.3, horizon: 8, batch: 2, seed: 5, backend };
    for (const extra of [
      { algorithm: 'fedprox', proxMu: 0.1 },
      { algorithm: 'fedavgm', serverMomentum: 0.5, participation: 0.5 },
      { algorithm: 'fast-fedpg', aggregation: 'geomed', byzantine: 1, attack: 'gaussian:0.3' },
      { algorithm: 'fast-fedpg', personalize: 'ditto:0.01', participation: 0.75 },
      { algorithm: 'fedavg', aggregation: 'krum:1' },
    ] as Partial<TrainSettings>[]) {
      const a = await train(mdp, { ...base, ...extra });
      const b = await train(mdp, { ...base, ...extra });
      expect(untimed(a)).toEqual(untimed(b));
      expect(a.J.every(Number.isFinite)).toBe(true);
      expect(a.records.at(-1)!.trajectories).toBeGreaterThan(0);
    }
  });
});

describe('limits of the rules', () => {
  it('FedProx with MU = 0 and FedAvgM with BETA = 0 are FedAvg (to round-off)', async () => {
    const base: TrainOptions = { gradient: 'exact', rounds: 10, localSteps: 4, eta: 0.4, backend: 'js' };
    const avg = await train(mdp, { ...base, algorithm: 'fedavg' });
    const prox = await train(mdp, { ...base, algorithm: 'fedprox', proxMu: 0 });
    const mom = await train(mdp, { ...base, algorithm: 'fedavgm', serverMomentum: 0 });
    expect(relativeError(prox.theta, avg.theta)).toBeLessThan(1e-13);
    expect(relativeError(mom.theta, avg.theta)).toBeLessThan(1e-13);
    // and a non-zero weight changes the run (the tests above can fail)
    const prox2 = await train(mdp, { ...base, algorithm: 'fedprox', proxMu: 0.5 });
    expect(relativeError(prox2.theta, avg.theta)).toBeGreaterThan(1e-4);
  });

  it('participation P = 1 is Algorithm 1 bit for bit, and P < 1 moves only the drawn agents', async () => {
    const base: TrainOptions = { gradient: 'sampled', rounds: 5, localSteps: 3, eta: 0.3, horizon: 8, batch: 2, seed: 9, backend: 'js' };
    const a = await train(mdp, base);
    const b = await train(mdp, { ...base, participation: 1 });
    expect(untimed(b)).toEqual(untimed(a));
    const p = await train(mdp, { ...base, participation: 0.5, serverSeed: 4 });
    const draws = agentStream(4, 4294967295);
    for (const rec of p.records) expect(rec.participants).toEqual(drawParticipants(draws, 0.5, 4));
    // SPEC.md's counting follows who took part: N M before round 1, then m = 2 agents a round
    // with H + 1 estimates of M trajectories each.
    const N = 4, M = 2, H = 3, m = 2;
    p.records.forEach((rec, k) => expect(rec.trajectories).toBe(N * M + (k + 1) * m * (H + 1) * M));
  });

  it('the participation draw: m = ceil(P N - 1e-9), a partial Fisher-Yates shuffle, sorted', () => {
    expect(participantCount(0.07, 100)).toBe(7);
    expect(participantCount(0.01, 4)).toBe(1);
    const rng = Uint32Array.of(1, 2, 3, 4);
    const copy = rng.slice();
    const got = drawParticipants(rng, 0.5, 6);
    // the same draw written out: idx = [0..5]; for j < 3: k = j + floor(u (6 - j)), swap
    const idx = [0, 1, 2, 3, 4, 5];
    for (let j = 0; j < 3; j++) {
      const k = j + Math.floor(nextDouble(copy) * (6 - j));
      [idx[j], idx[k]] = [idx[k]!, idx[j]!];
    }
    expect(got).toEqual(idx.slice(0, 3).sort((x, y) => x - y));
    const untouched = Uint32Array.of(5, 6, 7, 8);
    expect(drawParticipants(untouched, 1, 6)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(Array.from(untouched)).toEqual([5, 6, 7, 8]);
  });

  it('Ditto: a large LAMBDA pins v_i to theta_bar; LAMBDA = 0 is local training', async () => {
    const base: TrainOptions = { gradient: 'exact', rounds: 6, localSteps: 3, eta: 0.5, backend: 'js' };
    const pinned = await train(mdp, { ...base, personalize: 'ditto:1.99' });
    const global = await train(mdp, { ...base });
    expect(untimed({ ...pinned, personalJ: undefined, personalThetas: undefined, settings: null, records: null })).toEqual(untimed({ ...global, settings: null, records: null }));
    const loose = await train(mdp, { ...base, personalize: 'ditto:0' });
    const local = await train(mdp, { ...base, algorithm: 'local' });
    // v_i with LAMBDA = 0 takes exactly local's steps from the same start
    expect(relativeError(loose.personalThetas, local.thetas)).toBeLessThan(1e-13);
    expect(pinned.records.every((r) => typeof r.personalJ === 'number' && typeof r.personalGap === 'number')).toBe(true);
    // the personal gap is against each agent's own optimum, as evaluate reports it
    const { evaluatePolicy } = await import('../src/evaluate.js');
    const star = (await evaluatePolicy(mdp, new Float64Array(SA), { backend: 'js' })).JstarPerAgent;
    const last = pinned.records.at(-1)!;
    expect(last.personalGap).toBeCloseTo(star.reduce((a, b) => a + b, 0) / 4 - last.personalJ!, 12);
  });

  it('hostile agents: zero replaces what agent 0 sends, and only that', async () => {
    const base: TrainOptions = { gradient: 'exact', rounds: 3, localSteps: 2, eta: 0.5, backend: 'js', algorithm: 'fedavg' };
    const honest = await train(mdp, { ...base, rounds: 1 });
    const hostile = await train(mdp, { ...base, rounds: 1, byzantine: 1, attack: 'zero' });
    // one round from theta = 0: mean of deltas with agent 0's replaced by zero
    const h = honest.theta!.flat(), z = hostile.theta!.flat();
    const soloRun = await train({ ...mdp, rewards: [mdp.rewards[0]!] }, { ...base, rounds: 1 });
    const d0 = soloRun.theta!.flat();
    for (let j = 0; j < SA; j++) expect(z[j]).toBeCloseTo(h[j]! - d0[j]! / 4, 12);
  });

  it('Box-Muller as SPEC.md fixes it: z = sqrt(-2 ln(1 - u1)) cos(2 pi u2)', () => {
    const s = agentStream(3, 1);
    const c = s.slice();
    const z = standardNormal(s);
    const u1 = nextDouble(c), u2 = nextDouble(c);
    expect(z).toBe(Math.sqrt(-2 * detLog(1 - u1)) * detCos(2 * Math.PI * u2));
    // many draws: mean 0, variance 1 within 5 standard errors
    const n = 20000;
    let m = 0, v = 0;
    for (let k = 0; k < n; k++) {
      const x = standardNormal(s);
      m += x;
      v += x * x;
    }
    expect(Math.abs(m / n)).toBeLessThan(5 / Math.sqrt(n));
    expect(Math.abs(v / n - 1)).toBeLessThan(5 * Math.sqrt(2 / n));
  });
});

describe('aggregation rules', () => {
  const xs = [Float64Array.of(1, 10), Float64Array.of(2, -3), Float64Array.of(100, 4), Float64Array.of(3, 5)];
  const agg = (rule: string, v = xs): number[] => Array.from(aggregateInto(new Float64Array(2), v, parseAggregation(rule)));
  it('median, trimmed, krum and geomed by hand', () => {
    expect(agg('median')).toEqual([2.5, 4.5]);
    expect(agg('median', xs.slice(0, 3))).toEqual([2, 4]);
    expect(agg('trimmed:0.25')).toEqual([2.5, 4.5]);
    expect(agg('trimmed:0')).toEqual([106 / 4, 16 / 4]);
    // krum:1 keeps n - F - 2 = 1 nearest: scores are each point's nearest squared distance
    // d(0,3) = 4 + 25 = 29, d(1,3) = 1 + 64 = 65, d(0,1) = 1 + 169 = 170: point 0 and 3 tie at 29 -> index 0
    expect(agg('krum:1')).toEqual([1, 10]);
    // geomed of three collinear points is the middle one
    const g = agg('geomed', [Float64Array.of(0, 0), Float64Array.of(1, 1), Float64Array.of(10, 10)]);
    expect(g[0]).toBeCloseTo(1, 6);
    expect(g[1]).toBeCloseTo(1, 6);
  });
  it('refuses what cannot apply', () => {
    expect(ruleProblem(parseAggregation('krum:2'), 4)).toMatch(/krum:2 needs at least 5 vectors/);
    expect(() => parseAggregation('trimmed:0.5')).toThrow(/B in \[0, 0.5\)/);
    expect(() => parseAggregation('mode')).toThrow(/mean, median, trimmed:B, krum:F or geomed, got 'mode'/);
  });
});

describe('bad combinations: one clear line', () => {
  it.each([
    [{ algorithm: 'fedavg', proxMu: 0.1 }, /proxMu \(--prox-mu\) applies to fedprox only, not fedavg/],
    [{ algorithm: 'fedavg', correction: 'fresh' }, /correction \(--correction\) applies to fast-fedpg only, not fedavg/],
    [{ personalize: 'ditto:3', eta: 0.5 }, /ditto:3 needs eta \* LAMBDA < 1/],
    [{ byzantine: 4, attack: 'zero' }, /byzantine \(--byzantine\) must be below the number of agents \(4\), got 4/],
    [{ byzantine: 1 }, /byzantine agents need an attack/],
    [{ participation: 0 }, /participation must be in \(0, 1\], got 0/],
    [{ participation: 1.5 }, /participation must be in \(0, 1\], got 1.5/],
    [{ aggregation: 'krum:2' }, /krum:2 needs at least 5 vectors/],
    [{ algorithm: 'local', participation: 0.5 }, /participation \(--participation\) needs a server step, which local does not have/],
    [{ local_steps: 3 }, /unknown option 'local_steps'; valid keys are/],
  ] as [Record<string, unknown>, RegExp][])('%j', async (extra, msg) => {
    await expect(train(mdp, { backend: 'js', rounds: 1, ...(extra as TrainOptions) })).rejects.toThrow(msg);
  });
});

describe('a plug-in from its own module', () => {
  registerAlgorithm(toyAlgorithm as AlgorithmPlugin);
  const base: TrainOptions = { algorithm: 'toy-drag', gradient: 'sampled', rounds: 4, localSteps: 3, eta: 0.3, horizon: 8, batch: 2, seed: 2, backend: 'js' };
  const strip = (r: TrainResult): unknown => untimed({ J: r.J, theta: r.theta });
  it('runs in-process, on 2 worker threads and over the network with identical results', async () => {
    const inProcess = await train(mdp, base);
    const onWorkers = await train(mdp, { ...base, workers: 2 });
    expect(strip(onWorkers)).toEqual(strip(inProcess));
    const net = await runInProcessFederation(mdp, { ...base, backend: (await testedBackends()).find((b) => b.name === 'js')! });
    expect(Array.from(net.theta)).toEqual(inProcess.theta!.flat());
    expect(net.J).toEqual(inProcess.J);
    // and the rule is its own: the server's half step differs from FedAvg's
    const avg = await train(mdp, { ...base, algorithm: 'fedavg' });
    expect(relativeError(avg.theta, inProcess.theta)).toBeGreaterThan(1e-3);
  });
});

describe('the same bits on every runtime, and across a checkpoint', () => {
  const opts: TrainOptions = {
    algorithm: 'fedavgm', serverMomentum: 0.5, participation: 0.5, aggregation: 'trimmed:0.25', personalize: 'ditto:0.01',
    gradient: 'sampled', rounds: 6, localSteps: 3, eta: 0.3, horizon: 8, batch: 2, seed: 7, serverSeed: 21, backend: 'js',
  };
  const fast: TrainOptions = { ...opts, algorithm: 'fast-fedpg', serverMomentum: undefined, aggregation: 'median' };
  const core = (r: TrainResult): unknown => untimed({ J: r.J, theta: r.theta, personalJ: r.personalJ, records: r.records });
  it('worker threads (W = 2, 4) equal in-process', async () => {
    for (const o of [opts, fast]) {
      const ref = await train(mdp, o);
      for (const workers of [2, 4]) expect(core(await train(mdp, { ...o, workers }))).toEqual(core(ref));
    }
  });
  it('over the network (router transport) equals in-process; J is null in rounds some agents sat out', async () => {
    const js = (await testedBackends()).find((b) => b.name === 'js')!;
    for (const o of [opts, fast]) {
      const ref = await train(mdp, o);
      const { backend: _b, ...settings } = o;
      const net = await runInProcessFederation(mdp, { ...settings, backend: js });
      expect(Array.from(net.theta)).toEqual(ref.theta!.flat());
      net.records.forEach((rec, k) => {
        expect(rec.participants).toEqual(ref.records[k]!.participants);
        expect(rec.J).toBe(rec.participants ? null : ref.J[k + 1]);
        expect(rec.trajectories).toBe(ref.records[k]!.trajectories);
        expect(rec.bytes).toBe(ref.records[k]!.bytes);
      });
    }
  });
  it('a run stopped and resumed from its checkpoint ends bit-identical', async () => {
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    for (const o of [opts, fast]) {
      const path = join(mkdtempSync(join(tmpdir(), 'fedpg-field-')), 'run.ckpt');
      const ref = await train(mdp, o);
      await train(mdp, { ...o, rounds: 3, checkpoint: { path, every: 1 } });
      const resumed = await train(mdp, { ...o, checkpoint: { path, every: 1 } });
      expect(core(resumed)).toEqual(core(ref));
    }
  });
});
