import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Backend } from '../src/backends/types.js';
import { InputError } from '../src/errors.js';
import { AgentFailure, parseFaults } from '../src/federation/faults.js';
import { Training, train, trainRounds, type TrainOptions, type TrainResult } from '../src/federation/train.js';
import { agentsOf, P_EVAL, P_IDLE, P_LOCAL, P_MEMORY } from '../src/federation/workers/layout.js';
import { failureFromCurrent, WorkerPool, type FailedPhase } from '../src/federation/workers/pool.js';
import { keptNames } from '../src/federation/agent.js';
import { algorithmOf } from '../src/federation/algorithms/registry.js';
import { planWorkers } from '../src/federation/workers/plan.js';
import { evaluationChunks, roundCosts } from '../src/federation/workers/plan-costs.js';
import { resolveSettings } from '../src/federation/settings.js';
import { randomMdp } from '../src/mdp/generate.js';
import { stackedRewards } from '../src/mdp/model.js';
import { environmentSpec } from '../src/mdp/model.js';
import { testedBackends } from './helpers/backends.js';
import { untimed } from './helpers/fixtures.js';

/**
 * The worker-thread runtime (issue 6). Workers run the compiled scripts in dist/ (npm test
 * builds first). Every fault is injected at a named agent, round and phase, never by timing.
 */

const backends = await testedBackends();
const tmp = mkdtempSync(join(tmpdir(), 'fedpg-workers-'));
const mdp = randomMdp({ states: 6, actions: 3, agents: 8, seed: 11 });
const base: TrainOptions = { rounds: 6, localSteps: 3, horizon: 8, batch: 2, eta: 0.3, seed: 5, backend: 'js' };

/** Everything a run reports, as one string: equal strings mean bit-identical runs. */
function fingerprint(r: TrainResult): string {
  const bits = (x: unknown): unknown =>
    typeof x === 'number' ? Array.from(new Uint32Array(new Float64Array([x]).buffer)) : Array.isArray(x) ? x.map(bits) : x;
  return JSON.stringify([bits(r.J), bits(r.gradNormSq), bits(r.theta), bits(r.thetas ?? null), r.records.map((x) => [x.round, bits(x.J), bits(x.gap), bits(x.gradNormSq), x.trajectories, x.bytes])]);
}

/** Threads and ports this process holds (a worker thread shows up as MessagePort). */
function liveHandles(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'MessagePort' || r === 'Worker').length;
}

/** Waits (up to 5 s: a loaded machine delays a terminating thread's exit) for the handles to fall back to `target`. */
async function settle(target: number): Promise<void> {
  for (const end = Date.now() + 5000; liveHandles() > target && Date.now() < end; ) await new Promise((r) => setTimeout(r, 20));
}

describe('bit-identical results whatever the number of workers', () => {
  describe.each(backends.map((b) => [b.name, b] as const))('%s backend', (_name, backend: Backend) => {
    it('fast-fedpg, sampled: W = 1, 2, 4, 8 (evaluation on the main thread and on the workers), streams and memories included', async () => {
      const runs: [string, string][] = [];
      for (const [workers, evaluation] of [
        [1, 'auto'],
        [2, 'main'],
        [2, 'workers'],
        [4, 'workers'],
        [8, 'main'],
      ] as const) {
        const path = join(tmp, `ident-${backend.name}-${workers}-${evaluation}.ckpt`);
        const r = await train(mdp, { ...base, backend, workers, evaluation, checkpoint: { path, every: 100, fresh: true } });
        // The final checkpoint holds every agent's random stream and memory, theta_bar and g.
        runs.push([fingerprint(r), readFileSync(path, 'utf8')]);
      }
      for (const [f, ck] of runs.slice(1)) {
        expect(f).toBe(runs[0]![0]);
        expect(ck).toBe(runs[0]![1]);
      }
    });

    it.each([
      ['fedavg', {}],
      ['centralized', {}],
      ['local', {}],
      ['fast-fedpg', { gradient: 'exact' as const }],
      ['fast-fedpg', { correction: 'fresh' as const }],
    ] as const)('%s %j: W = 1 and 3', async (algorithm, extra) => {
      const a = await train(mdp, { ...base, backend, algorithm, ...extra });
      const b = await train(mdp, { ...base, backend, algorithm, ...extra, workers: 3, evaluation: 'workers' });
      expect(fingerprint(b)).toBe(fingerprint(a));
    });
  });

  it('regfedpg (js): W = 1 and 2', async () => {
    const a = await train(mdp, { ...base, algorithm: 'regfedpg', entropy: 0.05 });
    const b = await train(mdp, { ...base, algorithm: 'regfedpg', entropy: 0.05, workers: 2 });
    expect(fingerprint(b)).toBe(fingerprint(a));
  });

  it('whatever order the agents finish in (delays injected at chosen agents and rounds)', async () => {
    const clean = fingerprint(await train(mdp, base));
    const faults = 'delay,agent=0,round=1,ms=60;delay,agent=7,round=2,ms=40;delay,agent=3,round=2,phase=memory,ms=30;delay,agent=4,round=3,ms=50';
    expect(fingerprint(await train(mdp, { ...base, workers: 4, faults }))).toBe(clean);
    expect(fingerprint(await train(mdp, { ...base, workers: 8, evaluation: 'workers', faults }))).toBe(clean);
  });

  it('per-agent kernels (one environment per agent on the workers)', async () => {
    const a = randomMdp({ states: 5, actions: 2, agents: 3, seed: 4 });
    const per = { ...a, kernels: [0, 1, 2].map((k) => randomMdp({ states: 5, actions: 2, agents: 1, seed: 20 + k }).kernels[0]!), perAgentKernels: true };
    const x = await train(per, base);
    const y = await train(per, { ...base, workers: 2, evaluation: 'workers' });
    expect(fingerprint(y)).toBe(fingerprint(x));
    expect(x.records.every((r) => r.gap === null)).toBe(true);
  });

  it('each J_i of a batched evaluation equals the J_i evaluated alone, on every backend (what makes J independent of W)', () => {
    for (const b of backends) {
      const env = b.createEnvironment(environmentSpec(mdp));
      const S = mdp.states, SA = S * mdp.actions, N = mdp.rewards.length;
      const theta = Float64Array.from({ length: SA }, (_, j) => Math.cos(3 * j));
      const out = (n: number) => ({ J: new Float64Array(n), V: new Float64Array(n * S), Q: new Float64Array(n * SA), grad: new Float64Array(n * SA), occupancy: new Float64Array(S) });
      const all = out(N);
      env.evaluate(theta, stackedRewards(mdp), all);
      for (let i = 0; i < N; i++) {
        const one = out(1);
        env.evaluate(theta, mdp.rewards[i]!, one);
        expect(one.J[0], `${b.name} agent ${i}`).toBe(all.J[i]);
        expect(Array.from(one.grad)).toEqual(Array.from(all.grad.subarray(i * SA, (i + 1) * SA)));
      }
      env.dispose();
    }
  });
});

describe('the runtime', () => {
  it('assigns agents to workers in fixed contiguous blocks', () => {
    expect([0, 1, 2].map((w) => agentsOf(w, 8, 3))).toEqual([[0, 1], [2, 3, 4], [5, 6, 7]]);
    expect([0, 1].map((w) => agentsOf(w, 2, 2))).toEqual([[0], [1]]);
  });

  it('runs server algorithms in run mode, and leaves reruns, time limits and non-server algorithms to per-phase commands', async () => {
    const runs = async (o: Record<string, unknown>): Promise<boolean> => {
      const settings = resolveSettings({ ...base, ...o });
      const pool = await WorkerPool.create({
        mdp, backend: 'js', settings, workers: 2, evaluate: false, ...o,
        states: mdp.rewards.map(() => ({ rng: new Uint32Array([1, 2, 3, 4]), kept: keptNames(algorithmOf(settings.algorithm), settings).map(() => new Float64Array(18)) })),
      });
      try {
        return pool.runner !== null;
      } finally {
        await pool.close();
      }
    };
    expect(await runs({})).toBe(true);
    expect(await runs({ algorithm: 'fedavg' })).toBe(true);
    expect(await runs({ retry: 1 })).toBe(false);
    expect(await runs({ roundTimeout: 1000 })).toBe(false);
    expect(await runs({ algorithm: 'local' })).toBe(false);
  });

  it('run mode past its ring: 40 rounds (ring 8, rounds read in batches) give the in-process bits, with and without a report phase, participation and an evaluation cadence', async () => {
    const settings = resolveSettings({ ...base });
    const pool = await WorkerPool.create({
      mdp, backend: 'js', settings, workers: 2, evaluate: true,
      states: mdp.rewards.map(() => ({ rng: new Uint32Array([1, 2, 3, 4]), kept: keptNames(algorithmOf(settings.algorithm), settings).map(() => new Float64Array(18)) })),
    });
    // The ring this test means to wrap: 8 slots at this size (two at the least).
    expect(pool.ahead).toBe(8);
    await pool.close();
    for (const extra of [{}, { algorithm: 'fedavg' as const }, { participation: 0.5, serverSeed: 7, evalEvery: 3 }, { algorithm: 'fedavg' as const, participation: 0.4, serverSeed: 2 }]) {
      const o: TrainOptions = { ...base, rounds: 40, ...extra };
      const a = await train(mdp, o);
      for (const workers of [2, 3]) expect(fingerprint(await train(mdp, { ...o, workers, evaluation: 'workers' })), `${JSON.stringify(extra)} W = ${workers}`).toBe(fingerprint(a));
    }
  });

  it('shares the report phase and the evaluation out task by task in run mode on a shared kernel with W >= 2 (not with per-agent kernels, W = 1 or without reports)', async () => {
    const shares = async (m: typeof mdp, o: Record<string, unknown>, workers = 2): Promise<boolean> => {
      const settings = resolveSettings({ ...base, ...o });
      const pool = await WorkerPool.create({
        mdp: m, backend: 'js', settings, workers, evaluate: true, ...o,
        states: m.rewards.map(() => ({ rng: new Uint32Array([1, 2, 3, 4]), kept: keptNames(algorithmOf(settings.algorithm), settings).map(() => new Float64Array(18)) })),
      });
      try {
        return pool.sharesReports;
      } finally {
        await pool.close();
      }
    };
    const perAgent = { ...mdp, kernels: mdp.rewards.map((_, k) => randomMdp({ states: 6, actions: 3, agents: 1, seed: 30 + k }).kernels[0]!), perAgentKernels: true };
    expect(await shares(mdp, {})).toBe(true);
    expect(await shares(mdp, {}, 1)).toBe(false);
    expect(await shares(mdp, { algorithm: 'fedavg' })).toBe(false);
    expect(await shares(mdp, { retry: 1 })).toBe(false);
    expect(await shares(perAgent, {})).toBe(false);
  });

  it('cuts the shared evaluation into as many chunks as keep the phase short: one where the factorisation is cheap beside the rest, more for slower factorisations or more workers', () => {
    const big = randomMdp({ states: 100, actions: 10, agents: 8, seed: 1 });
    const s = resolveSettings({ horizon: 50, localSteps: 10, batch: 10 });
    // native: one chunk on two workers (repeating the factorisation would cost more than it saves).
    expect(evaluationChunks(8, 2, roundCosts(big, s, 'native'))).toBe(1);
    // js factorises 4x slower than a table: one chunk would be the phase's longest task.
    expect(evaluationChunks(8, 2, roundCosts(big, s, 'js'))).toBe(2);
    const many = randomMdp({ states: 100, actions: 10, agents: 64, seed: 1 });
    const k = evaluationChunks(64, 16, roundCosts(many, s, 'native'));
    expect(k).toBeGreaterThan(1);
    expect(k).toBeLessThanOrEqual(16);
    // Never more chunks than agents or workers.
    expect(evaluationChunks(3, 16, roundCosts(randomMdp({ states: 100, actions: 10, agents: 3, seed: 1 }), s, 'js'))).toBeLessThanOrEqual(3);
  });

  it('plans workers: counts are capped at N, auto stays in-process for small runs and uses the cores for big ones', () => {
    const s = resolveSettings({ rounds: 100 });
    expect(planWorkers(undefined, mdp, s, 'js').workers).toBe(1);
    expect(planWorkers(20, mdp, s, 'js').workers).toBe(8);
    expect(planWorkers('auto', mdp, s, 'js', 2).workers).toBe(1);
    const big = randomMdp({ states: 100, actions: 10, agents: 8, seed: 1 });
    const heavy = resolveSettings({ rounds: 1000, horizon: 50, localSteps: 10, batch: 10 });
    expect(planWorkers('auto', big, heavy, 'native', 2).workers).toBe(2);
    expect(planWorkers('auto', big, heavy, 'native', 64).workers).toBe(8);
    expect(planWorkers('auto', big, heavy, 'native', 1).workers).toBe(1);
    expect(() => planWorkers(0, mdp, s, 'js')).toThrow(InputError);
  });

  it('closes every thread after a run, after an error, and when an iterator is left early', async () => {
    const before = liveHandles();
    await train(mdp, { ...base, workers: 3 });
    await settle(before);
    expect(liveHandles()).toBe(before);
    await expect(train(mdp, { ...base, workers: 3, faults: 'throw,agent=1,round=2' })).rejects.toThrow(AgentFailure);
    await settle(before);
    expect(liveHandles()).toBe(before);
    for await (const r of trainRounds(mdp, { ...base, workers: 2 })) if (r.round === 2) break;
    await settle(before);
    expect(liveHandles()).toBe(before);
  });

  it('the async iterator yields the same records as train()', async () => {
    const all = await train(mdp, { ...base, workers: 2 });
    const seen = [];
    for await (const r of trainRounds(mdp, { ...base, workers: 2 })) seen.push(r);
    expect(untimed(seen)).toEqual(untimed(all.records));
  });
});

describe('faults', () => {
  it('parses fault specs and refuses bad ones', () => {
    expect(parseFaults('throw,agent=3,round=5; hang,agent=1,round=0,phase=memory,once')).toEqual([
      { kind: 'throw', agent: 3, round: 5 },
      { kind: 'hang', agent: 1, round: 0, phase: 'memory', once: true },
    ]);
    expect(() => parseFaults('explode,agent=1,round=1')).toThrow(/kind must be one of/);
    expect(() => parseFaults('throw,round=1')).toThrow(/agent= is required/);
    expect(() => parseFaults('throw,agent=1')).toThrow(/round= is required/);
  });

  it("names the failing agent, phase and round from a worker's CURRENT word; the evaluation and a worker between phases name the worker and its agents", () => {
    // Each phase gets its own round, so a mix-up of the caller's rounds shows.
    const rounds: Record<FailedPhase, number> = { local: 4, memory: 3, evaluation: 2 };
    const at = (cur: number, block: number[], idle: FailedPhase = 'local'): AgentFailure => failureFromCurrent(cur, 1, block, idle, (p) => rounds[p], 'boom');
    expect(at(3 * 4 + P_LOCAL, [2, 3])).toMatchObject({ agent: 3, round: 4, phase: 'local', message: 'agent 3 failed in round 4 (local steps): boom' });
    expect(at(2 * 4 + P_MEMORY, [2, 3])).toMatchObject({ agent: 2, round: 3, phase: 'memory', message: 'agent 2 failed in round 3 (memory sample): boom' });
    expect(at(P_EVAL, [2, 3])).toMatchObject({ agent: 2, round: 2, phase: 'evaluation', message: 'agent 2 failed in the evaluation after round 2: on worker 1 (agents 2-3): boom' });
    expect(at(P_IDLE, [5]).message).toBe('agent 5 failed in round 4 (local steps): on worker 1 (agent 5): boom');
    expect(at(P_IDLE, [5], 'memory').message).toBe('agent 5 failed in round 3 (memory sample): on worker 1 (agent 5): boom');
    expect(at(P_IDLE, [5], 'evaluation').message).toBe('agent 5 failed in the evaluation after round 2: on worker 1 (agent 5): boom');
  });

  it('a throwing agent fails the round with an error naming the agent, the round and the cause', async () => {
    const seen: number[] = [];
    const err = await train(mdp, { ...base, workers: 3, faults: 'throw,agent=5,round=3', onRecord: (r) => seen.push(r.round) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentFailure);
    // Round 3's local steps start with round 2's evaluation: round 2 is still reported.
    expect(seen).toEqual([1, 2]);
    expect((err as AgentFailure).agent).toBe(5);
    expect((err as AgentFailure).message).toMatch(/^agent 5 failed in round 3 \(local steps\): injected fault: throw at agent 5, round 3/);
    const mem = await train(mdp, { ...base, workers: 2, faults: 'throw,agent=6,round=0,phase=memory' }).catch((e: unknown) => e);
    expect((mem as Error).message).toMatch(/^agent 6 failed in the memory samples before round 1: injected fault/);
    // A round's memory samples run in the same worker command as the next round's local steps:
    // the failure still names the round they belong to, and the round's record is not written.
    const seenChained: number[] = [];
    const chained = await train(mdp, { ...base, workers: 3, faults: 'throw,agent=5,round=3,phase=memory', onRecord: (r) => seenChained.push(r.round) }).catch((e: unknown) => e);
    expect((chained as Error).message).toMatch(/^agent 5 failed in round 3 \(memory sample\): injected fault/);
    expect(seenChained).toEqual([1, 2]);
  });

  it('a worker thread that dies fails the round naming the agent', async () => {
    const err = await train(mdp, { ...base, workers: 2, faults: 'exit,agent=2,round=2' }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/^agent 2 failed in round 2 \(local steps\): its worker thread died \(worker exited with code: 70\)/);
  });

  it('a hung agent fails the round after --round-timeout, never hangs the run', async () => {
    const t0 = performance.now();
    const err = await train(mdp, { ...base, workers: 2, roundTimeout: 300, faults: 'hang,agent=7,round=4' }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/^agent 7 failed in round 4 \(local steps\): it did not finish within 300 ms/);
    expect(performance.now() - t0).toBeLessThan(10_000);
  });

  it.each([
    ['throw', 'throw,agent=4,round=2,once'],
    ['exit', 'exit,agent=1,round=3,phase=memory,once'],
    ['hang', 'hang,agent=6,round=5,once'],
  ])('--retry 1 reruns a failed agent (%s) on a fresh worker from its saved state: the run ends bit-identical', async (_k, faults) => {
    const clean = fingerprint(await train(mdp, base));
    const notes: string[] = [];
    const r = await train(mdp, { ...base, workers: 3, retry: 1, roundTimeout: 400, faults, onInfo: (m) => notes.push(m) });
    expect(fingerprint(r)).toBe(clean);
    expect(notes.filter((m) => /rerunning it on a fresh worker thread/.test(m))).toHaveLength(1);
  });

  it('a fault that persists fails after the retries, saying so once per rerun', async () => {
    const notes: string[] = [];
    await expect(train(mdp, { ...base, workers: 2, retry: 2, faults: 'throw,agent=0,round=1', onInfo: (m) => notes.push(m) })).rejects.toThrow(/^agent 0 failed in round 1/);
    expect(notes.map((m) => /\(retry (\d) of 2\)/.exec(m)?.[1])).toEqual(['1', '2']);
  });

  it('in-process: a throw fails the round; --retry reruns from the saved state; hang and exit need threads', async () => {
    const clean = fingerprint(await train(mdp, base));
    await expect(train(mdp, { ...base, faults: 'throw,agent=2,round=2' })).rejects.toThrow(/^agent 2 failed in round 2 \(local steps\)/);
    const notes: string[] = [];
    expect(fingerprint(await train(mdp, { ...base, retry: 1, faults: 'throw,agent=2,round=2,once', onInfo: (m) => notes.push(m) }))).toBe(clean);
    expect(notes[0]).toMatch(/rerunning it in-process from its saved state \(retry 1 of 1\)/);
    await expect(train(mdp, { ...base, faults: 'hang,agent=2,round=2' })).rejects.toThrow(/needs worker threads/);
  });

  it('an AbortSignal stops a run even inside a hung round, and closes the threads', async () => {
    const before = liveHandles();
    const ac = new AbortController();
    const t0 = performance.now();
    const p = train(mdp, { ...base, workers: 2, signal: ac.signal, faults: 'hang,agent=3,round=2', onRecord: (r) => r.round === 1 && setTimeout(() => ac.abort(new Error('stop now')), 50) });
    await expect(p).rejects.toThrow('stop now');
    expect(performance.now() - t0).toBeLessThan(10_000);
    await settle(before);
    expect(liveHandles()).toBe(before);
  });
});

describe('checkpoint and resume', () => {
  const ck = (name: string): string => join(tmp, name);

  it.each([
    [1, 1],
    [2, 3],
    [4, 1],
  ])('a run stopped after round 4 (W = %i) and resumed (W = %i) ends bit-identical: theta, J, records, streams, memories', async (w1, w2) => {
    const full = ck(`full-${w1}-${w2}.ckpt`), part = ck(`part-${w1}-${w2}.ckpt`);
    const opts = { ...base, rounds: 9 };
    const uninterrupted = await train(mdp, { ...opts, workers: w1, checkpoint: { path: full, every: 3, fresh: true } });
    const ac = new AbortController();
    await expect(
      train(mdp, { ...opts, workers: w1, signal: ac.signal, checkpoint: { path: part, every: 3, fresh: true }, onRecord: (r) => r.round === 4 && ac.abort(new Error('stop')) }),
    ).rejects.toThrow('stop');
    // Stopped runs save their last finished round.
    expect(JSON.parse(readFileSync(part, 'utf8').split('\n')[1]!).round).toBe(4);
    let resumed: { round: number; records: number } | null = null;
    const notes: string[] = [];
    const r = await train(mdp, {
      ...opts,
      workers: w2,
      checkpoint: { path: part, every: 3 },
      onInfo: (m) => notes.push(m),
      onStart: (_h, res) => (resumed = res && { round: res.round, records: res.records.length }),
    });
    expect(resumed).toEqual({ round: 4, records: 4 });
    expect(notes).toContain(`resuming from checkpoint ${part} at round 4 of 9`);
    expect(fingerprint(r)).toBe(fingerprint(uninterrupted));
    expect(readFileSync(part, 'utf8')).toBe(readFileSync(full, 'utf8'));
  });

  it.each([
    ['run mode', {}],
    ['the per-phase commands (a round timeout)', { roundTimeout: 60_000 }],
  ])('with participation < 1, a run stopped on one worker count and resumed on another ends as the in-process run, and checkpoints the same server stream (%s)', async (label, extra) => {
    const opts: TrainOptions = { ...base, rounds: 9, participation: 0.5, serverSeed: 3, ...extra };
    const refPath = ck(`p-ref-${label.length}.ckpt`);
    const ref = await train(mdp, { ...opts, roundTimeout: undefined, checkpoint: { path: refPath, every: 3, fresh: true } });
    const participants = (r: TrainResult): unknown => r.records.map((x) => x.participants);
    for (const [w1, w2] of [
      [2, 1],
      [1, 2],
      [2, 2],
    ] as const) {
      const part = ck(`p-part-${label.length}-${w1}-${w2}.ckpt`);
      const ac = new AbortController();
      await expect(
        train(mdp, { ...opts, workers: w1, signal: ac.signal, checkpoint: { path: part, every: 3, fresh: true }, onRecord: (r) => r.round === 4 && ac.abort(new Error('stop')) }),
      ).rejects.toThrow('stop');
      const r = await train(mdp, { ...opts, workers: w2, checkpoint: { path: part, every: 3 } });
      expect(participants(r)).toEqual(participants(ref));
      expect(fingerprint(r)).toBe(fingerprint(ref));
      expect(readFileSync(part, 'utf8')).toBe(readFileSync(refPath, 'utf8'));
    }
  });

  it('a finished run resumed with more rounds continues it exactly', async () => {
    const path = ck('extend.ckpt');
    await train(mdp, { ...base, rounds: 4, checkpoint: { path, fresh: true } });
    const r = await train(mdp, { ...base, rounds: 7, workers: 2, checkpoint: { path } });
    expect(fingerprint(r)).toBe(fingerprint(await train(mdp, { ...base, rounds: 7 })));
  });

  it('refuses a corrupt checkpoint, one of another run, or one beyond the rounds; fresh starts over', async () => {
    const path = ck('refuse.ckpt');
    await train(mdp, { ...base, checkpoint: { path, fresh: true } });
    const text = readFileSync(path, 'utf8');
    const attempt = (o: TrainOptions, p = path) => train(mdp, { ...base, ...o, checkpoint: { path: p } });
    await expect(attempt({ eta: 0.2 })).rejects.toThrow(/refused: it belongs to another run: it was made with other settings: eta 0.3 \(this run: 0.2\)/);
    await expect(attempt({ seed: 6 })).rejects.toThrow(/other settings: seed 5 \(this run: 6\)/);
    await expect(train(randomMdp({ states: 6, actions: 3, agents: 8, seed: 12 }), { ...base, checkpoint: { path } })).rejects.toThrow(/it was made with a different MDP/);
    await expect(attempt({ theta0: new Float64Array(18).fill(0.5) })).rejects.toThrow(/different theta0/);
    await expect(attempt({ rounds: 3 })).rejects.toThrow(/it is at round 6, beyond this run's 3 rounds/);
    for (const bad of [text.slice(0, -40), text.replace('"round":6', '"round":5'), 'hello', '']) {
      writeFileSync(ck('bad.ckpt'), bad);
      await expect(attempt({}, ck('bad.ckpt'))).rejects.toThrow(/refused: (it is corrupt|it is not a fedpg checkpoint|its format)/);
    }
    const err = await attempt({}, ck('bad.ckpt')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    const r = await train(mdp, { ...base, checkpoint: { path: ck('bad.ckpt'), fresh: true } });
    expect(fingerprint(r)).toBe(fingerprint(await train(mdp, base)));
  });

  it('Training exposes the resumed round and its records', async () => {
    const path = ck('expose.ckpt');
    await train(mdp, { ...base, rounds: 3, checkpoint: { path, fresh: true } });
    const t = await Training.create(mdp, { ...base, rounds: 5, checkpoint: { path } });
    try {
      expect(t.resumed).toEqual({ path, round: 3 });
      expect(t.records.map((r) => r.round)).toEqual([1, 2, 3]);
      expect(t.roundsDone).toBe(3);
    } finally {
      await t.close();
    }
  });
});
