import { Code, ConnectError, createClient, type Transport } from '@connectrpc/connect';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { jsBackend } from '../src/backends/js/index.js';
import { applyDeltas, deltaInto, meanInto, meanOf } from '../src/federation/aggregate.js';
import { initialAgentState, LocalAgent } from '../src/federation/agent.js';
import { algorithmOf } from '../src/federation/algorithms/registry.js';
import { resolveSettings, type TrainSettings } from '../src/federation/settings.js';
import { train } from '../src/federation/train.js';
import { loadMdp, mdpToJson } from '../src/mdp/format.js';
import { environmentSpec, type Mdp } from '../src/mdp/model.js';
import { authInterceptor } from '../src/network/agent.js';
import { Aggregator } from '../src/network/aggregator.js';
import { parseNetFaults } from '../src/network/faults.js';
import { parseAggregatorTokens, parseRewards, parseShared, rewardsToJson, sharedToJson } from '../src/network/formats.js';
import { runInProcessFederation, routerTransport } from '../src/network/inprocess.js';
import { nodeTransport } from '../src/network/node.js';
import { FederationService } from '../src/network/protocol.js';
import { federationRoutes, TokenAuth } from '../src/network/service.js';
import { packF64, unpackF64 } from '../src/network/wire.js';
import { agentStream, streamKey } from '../src/rng.js';
import { fixturePath } from './helpers/fixtures.js';

/**
 * The federation over ConnectRPC (issue 8). Everything runs on loopback (127.0.0.1, --port 0),
 * with the js backend; faults are injected at named rounds (FEDPG_NET_FAULT), never raced
 * against the clock: the only deadline used (the straggler test) decides nothing a healthy agent
 * could miss unless it took longer than the deadline to answer. Every child process is killed
 * after a bound, and the tests wait on its output, not on sleeps.
 */

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli', 'main.js');
const tmp = mkdtempSync(join(tmpdir(), 'fedpg-net-'));
const FIXTURE = 'random-s6-a3-n4';
const SAMPLED = { rounds: 4, localSteps: 3, batch: 2, horizon: 10, seed: 3 };
// serve takes no --seed: the agents' streams come from `split --seed 3` (see split() below); the
// server's own draws default to server seed 0, which these settings do not use.
const SAMPLED_FLAGS = ['--rounds', '4', '--local-steps', '3', '--batch', '2', '--horizon', '10'];
const PROC_LIMIT_MS = 60_000;

interface Proc {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first match of re on stderr; rejects if the process exits first. */
  waitErr: (re: RegExp) => Promise<RegExpMatchArray>;
}

const procs: Proc[] = [];

function start(args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, FEDPG_BACKEND: '', FEDPG_NET_FAULT: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const listeners = new Set<() => void>();
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => {
    err += d;
    for (const l of [...listeners]) l();
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), PROC_LIMIT_MS);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      for (const l of [...listeners]) l();
      resolve({ code, signal });
    }),
  );
  let done = false;
  void exited.then(() => (done = true));
  const waitErr = (re: RegExp): Promise<RegExpMatchArray> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const m = err.match(re);
        if (m) {
          listeners.delete(check);
          resolve(m);
        } else if (done || child.exitCode !== null || child.signalCode !== null) {
          listeners.delete(check);
          reject(new Error(`process exited before printing ${re}: ${err}`));
        }
      };
      listeners.add(check);
      check();
    });
  const p: Proc = { child, out: () => out, err: () => err, exited, waitErr };
  procs.push(p);
  return p;
}

afterAll(() => {
  for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
});

/** split the fixture into dir (once per test) and return the paths. */
function split(name: string): { dir: string; shared: string; tokens: string } {
  const dir = join(tmp, name);
  start(['split', fixturePath(`${FIXTURE}.json`), '--out', dir, '--seed', String(SAMPLED.seed)]);
  return { dir, shared: join(dir, 'shared.json'), tokens: join(dir, 'tokens.json') };
}

async function splitDone(name: string): Promise<ReturnType<typeof split>> {
  const s = split(name);
  const p = procs[procs.length - 1]!;
  expect((await p.exited).code).toBe(0);
  return s;
}

async function serve(s: { shared: string; tokens: string }, args: string[], env: Record<string, string> = {}): Promise<{ proc: Proc; port: number; url: string }> {
  const proc = start(['serve', s.shared, '--agents', '4', '--token-file', s.tokens, '--json', ...args], env);
  const m = await proc.waitErr(/listening on (http:\/\/127\.0\.0\.1:(\d+))/);
  return { proc, port: Number(m[2]), url: m[1]! };
}

function agent(dir: string, url: string, i: number, extra: string[] = [], env: Record<string, string> = {}): Proc {
  return start(['agent', '--server', url, '--agent', String(i), '--rewards', join(dir, `rewards-${i}.json`), '--token-file', join(dir, `token-${i}.json`), '--backend', 'js', '--json', ...extra], env);
}

/** Bitwise equality of two number arrays (Object.is per element: -0 and NaN included). */
function expectBitwise(got: readonly (number | null)[], want: readonly number[]): void {
  expect(got.length).toBe(want.length);
  const diff = want.findIndex((w, k) => !Object.is(got[k], w));
  expect(diff, `first difference at ${diff}: ${got[diff]} vs ${want[diff]}`).toBe(-1);
}

async function inProcess(settings: Partial<TrainSettings>): Promise<{ J: number[]; theta: number[] }> {
  const r = await train(loadMdp(fixturePath(`${FIXTURE}.json`)), { backend: jsBackend, ...settings });
  return { J: r.J, theta: r.theta!.flat() };
}

async function result(proc: Proc): Promise<any> {
  const e = await proc.exited;
  expect(e.code, proc.err()).toBe(0);
  return JSON.parse(proc.out());
}

describe('the server arithmetic (src/federation/aggregate.ts)', () => {
  it('applyDeltas on the agents\' deltas equals train.ts\'s form on their thetas, bit for bit', () => {
    let seed = 12345;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5) * 10;
    for (const n of [1, 3, 8]) {
      const bar = Float64Array.from({ length: 37 }, rnd);
      const thetas = Array.from({ length: n }, () => Float64Array.from({ length: 37 }, rnd));
      const a = bar.slice();
      applyDeltas(a, thetas.map((t) => deltaInto(new Float64Array(37), t, bar)), 0.7);
      // the expression itself: theta_bar + (alpha/n) * sum of the deltas in agent order.
      const j = 5;
      let acc = 0;
      for (const t of thetas) acc = acc + (t[j]! - bar[j]!);
      expect(Object.is(a[j], bar[j]! + (0.7 / n) * acc)).toBe(true);
    }
    const m = meanInto(new Float64Array(2), [Float64Array.of(1, 2), Float64Array.of(0.1, 0.2), Float64Array.of(0.3, -4)]);
    expect(Array.from(m)).toEqual([(1 + 0.1 + 0.3) / 3, (2 + 0.2 + -4) / 3]);
    expect(meanOf([0.1, 0.2, 0.3])).toBe((0.1 + 0.2 + 0.3) / 3);
    expect(() => applyDeltas(new Float64Array(1), [], 1)).toThrow(/at least one/);
  });
});

describe('wire format and files', () => {
  it('packs float64 little-endian exactly (including -0) and refuses NaN, infinities and wrong lengths', () => {
    const v = Float64Array.of(-0, 1.5, Number.MIN_VALUE, -1e308);
    const bytes = packF64(v);
    expect(bytes.length).toBe(32);
    expect(new DataView(bytes.buffer).getFloat64(8, true)).toBe(1.5);
    expect(Object.is(unpackF64(bytes, 4, 'x')[0], -0)).toBe(true);
    expect(() => unpackF64(packF64(Float64Array.of(1, Number.NaN)), 2, 'delta', 1)).toThrow(/delta\[1\]\[0\] is NaN, not a finite number/);
    expect(() => unpackF64(packF64(Float64Array.of(Infinity)), 1, 'delta')).toThrow(/Infinity/);
    expect(() => unpackF64(bytes.subarray(0, 31), 4, 'delta')).toThrow(/31 bytes .* expected 32/);
  });

  it('fedpg-shared/1 and fedpg-rewards/1 round-trip an MDP; the shared file may not hold rewards', () => {
    const mdp = loadMdp(fixturePath(`${FIXTURE}.json`));
    const shared = parseShared(JSON.parse(JSON.stringify(sharedToJson(mdp))));
    expect(shared.states).toBe(6);
    expect(shared).not.toHaveProperty('rewards');
    expect(() => parseShared({ ...sharedToJson(mdp), rewards: [] })).toThrow(/must not hold rewards/);
    expect(() => parseShared({ ...sharedToJson(mdp), format: 'fedpg-mdp/1' })).toThrow(/format must be "fedpg-shared\/1"/);
    const r = parseRewards(JSON.parse(JSON.stringify(rewardsToJson(2, mdp.rewards[2]!, 6, 3, agentStream(5, 2)))), 6, 3);
    expect(r.agent).toBe(2);
    expectBitwise(Array.from(r.reward), Array.from(mdp.rewards[2]!));
    expect(() => parseRewards(rewardsToJson(0, mdp.rewards[0]!, 6, 3, agentStream(5, 0)), 6, 4, 'r.json')).toThrow(/r\.json: rewards\[0\] must have 4 entries/);
    // per-agent kernels survive (labbi: two agents, kernels that differ)
    const labbi = loadMdp(fixturePath('labbi-challenging.json'));
    expect(parseShared(JSON.parse(JSON.stringify(sharedToJson(labbi)))).kernels).toHaveLength(2);
    expect(() => parseAggregatorTokens({ tokens: { 0: 'a'.repeat(20), 1: 'a'.repeat(20) } }, 2)).toThrow(/share a token/);
    expect(() => parseAggregatorTokens({ tokens: { 0: 'a'.repeat(20) } }, 2)).toThrow(/no token for agent 1/);
  });

  it('parses injected faults', () => {
    expect(parseNetFaults('stall,round=2,agent=3; crash,round=4,phase=gradient,after=2')).toEqual({
      agent: [{ kind: 'stall', round: 2, agent: 3 }],
      crash: { round: 4, phase: 'gradient', after: 2 },
    });
    expect(() => parseNetFaults('crash,phase=local')).toThrow(/round= is required/);
  });
});

describe('in-process agents behind the same transport (Connect router transport)', () => {
  const mdp = loadMdp(fixturePath(`${FIXTURE}.json`));
  it.each([
    ['fast-fedpg, sampled', { ...SAMPLED }],
    ['fedavg, sampled', { algorithm: 'fedavg', rounds: 3, localSteps: 3, batch: 2, horizon: 10, seed: 4 }],
    ['centralized', { algorithm: 'centralized', rounds: 3, batch: 2, horizon: 10, seed: 4 }],
    ['fast-fedpg, exact', { gradient: 'exact', rounds: 3, eta: 0.5, alphaG: 0.5 }],
    ['fast-fedpg, fresh correction', { correction: 'fresh', rounds: 3, localSteps: 2, horizon: 8 }],
    ['regfedpg', { algorithm: 'regfedpg', entropy: 0.05, rounds: 2, localSteps: 2, horizon: 8 }],
  ] as [string, Partial<TrainSettings>][])('%s equals the in-process run bit for bit, costs included', async (_name, settings) => {
    const want = await train(mdp, { backend: jsBackend, ...settings });
    const got = await runInProcessFederation(mdp, { backend: jsBackend, ...settings });
    expectBitwise(got.J, want.J);
    expectBitwise(Array.from(got.theta), want.theta!.flat());
    expect(got.records.map(({ round, trajectories, steps, bytes }) => ({ round, trajectories, steps, bytes }))).toEqual(
      want.records.map(({ round, trajectories, steps, bytes }) => ({ round, trajectories, steps, bytes })),
    );
    expect(got.records.every((r) => r.gap === null && r.gradNormSq === null && r.deltas === 4 && r.gradients === 4)).toBe(true);
  });

  it('per-agent kernels (labbi-challenging, exact): every agent samples its own kernel', async () => {
    const labbi = loadMdp(fixturePath('labbi-challenging.json'));
    const s = { gradient: 'exact' as const, rounds: 3, localSteps: 4, eta: 0.5 };
    const want = await train(labbi, { backend: jsBackend, ...s });
    const got = await runInProcessFederation(labbi, { backend: jsBackend, ...s });
    expectBitwise(got.J, want.J);
    expectBitwise(Array.from(got.theta), want.theta!.flat());
  });

  it('authenticates every call: no token, an unknown token, another agent\'s token', async () => {
    const settings = resolveSettings({ rounds: 1 });
    const agg = new Aggregator({ runId: 'r', agents: 4, states: 6, actions: 3, settings, sharedMdp: new TextEncoder().encode(JSON.stringify(sharedToJson(mdp))), theta0: new Float64Array(18) });
    const tokens = ['a', 'b', 'c', 'd'].map((c) => c.repeat(24));
    const refused: string[] = [];
    const routes = federationRoutes(agg, new TokenAuth(tokens, (m) => refused.push(m)));
    const call = (t: Transport, agent: number): Promise<unknown> => createClient(FederationService, t).register({ agent, backend: 'js' });
    const { createRouterTransport } = await import('@connectrpc/connect');
    await expect(call(createRouterTransport(routes), 0)).rejects.toMatchObject({ code: Code.Unauthenticated });
    await expect(call(routerTransport(routes, 'x'.repeat(24)), 0)).rejects.toMatchObject({ code: Code.Unauthenticated, rawMessage: expect.stringMatching(/invalid token/) });
    await expect(call(routerTransport(routes, tokens[1]!), 0)).rejects.toMatchObject({ code: Code.PermissionDenied, rawMessage: expect.stringMatching(/token of agent 1/) });
    await expect(call(routerTransport(routes, tokens[0]!), 0)).resolves.toMatchObject({ agents: 4 });
    expect(refused).toHaveLength(3);
    agg.stop();
  });

  it('a phase with missing agents closes at its deadline with the quorum; the late update is refused; memory stays consistent', async () => {
    // Agent 3 stalls at round 2 (it withholds its delta until the round closed): the round's
    // theta_bar averages the three deltas it has; agent 3's late delta is refused; it rejoins.
    const s = { ...SAMPLED, rounds: 3 };
    const info: string[] = [];
    const got = await runInProcessFederation(mdp, { backend: jsBackend, ...s, quorum: 3, deadlineMs: 1000, faults: { 3: [{ kind: 'stall', round: 2 }] }, onInfo: (m) => info.push(m) });
    expect(info.some((m) => /round 2 \(local steps\) closes at its deadline with 3 of 4 updates \(missing: agent 3\)/.test(m))).toBe(true);
    expect(info.some((m) => /late delta from agent 3: round 2 \(local steps\) is closed/.test(m))).toBe(true);
    expect(got.records.map((r) => r.deltas)).toEqual([4, 3, 4]);
    expect(got.agents[3]!.refused).toBe(1);
    const want = simulate(mdp, resolveSettings(s), new Set(['2:3']));
    expectBitwise(got.J, want.J);
    expectBitwise(Array.from(got.theta), Array.from(want.theta));
  });
});

/**
 * The aggregator's rule with some deltas left out ("round:agent"), computed directly with
 * LocalAgent and the aggregate functions: what a run with stragglers must give.
 */
function simulate(mdp: Mdp, s: TrainSettings, excluded: Set<string>): { J: number[]; theta: Float64Array } {
  const SA = mdp.states * mdp.actions;
  const env = jsBackend.createEnvironment(environmentSpec(mdp, 0));
  const alg = algorithmOf(s.algorithm);
  const agents = mdp.rewards.map((r, i) => new LocalAgent(i, env, r, initialAgentState(alg, s, agentStream(s.seed, i), new Float64Array(SA)), alg, s));
  const theta = new Float64Array(SA);
  const g = new Float64Array(SA);
  const ev = { J: new Float64Array(1), V: new Float64Array(mdp.states), Q: new Float64Array(SA), grad: new Float64Array(SA), occupancy: new Float64Array(mdp.states) };
  const score = (): number =>
    meanOf(
      mdp.rewards.map((r) => {
        env.evaluate(theta, r, ev);
        return ev.J[0]!;
      }),
    );
  const sample = (): void => {
    meanInto(
      g,
      agents.map((a) => {
        const out = new Float64Array(SA);
        a.reportPhase(theta, out);
        return out;
      }),
    );
  };
  sample();
  const J = [score()];
  for (let t = 1; t <= s.rounds; t++) {
    const deltas: Float64Array[] = [];
    agents.forEach((a, i) => {
      const delta = new Float64Array(SA);
      a.localPhase(theta, [g], delta);
      if (!excluded.has(`${t}:${i}`)) deltas.push(delta);
    });
    applyDeltas(theta, deltas, s.alphaG);
    sample();
    J.push(score());
  }
  env.dispose();
  return { J, theta };
}

describe('fedpg split, serve and agent on loopback (child processes)', () => {
  it('split writes the shared MDP without rewards, one rewards and token file per agent, and the aggregator\'s tokens (mode 0600)', async () => {
    const s = await splitDone('split');
    const shared = JSON.parse(readFileSync(s.shared, 'utf8'));
    expect(shared.format).toBe('fedpg-shared/1');
    expect(shared).not.toHaveProperty('rewards');
    const mdp = mdpToJson(loadMdp(fixturePath(`${FIXTURE}.json`)));
    const tokens = JSON.parse(readFileSync(s.tokens, 'utf8')).tokens;
    for (let i = 0; i < 4; i++) {
      const r = JSON.parse(readFileSync(join(s.dir, `rewards-${i}.json`), 'utf8'));
      expect(r).toEqual({ format: 'fedpg-rewards/2', agent: i, key: streamKey(agentStream(SAMPLED.seed, i)), rewards: mdp.rewards![i] });
      const t = JSON.parse(readFileSync(join(s.dir, `token-${i}.json`), 'utf8'));
      expect(t.agent).toBe(i);
      expect(t.token).toBe(tokens[String(i)]);
      expect(t.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    }
    expect(new Set(Object.values(tokens)).size).toBe(4);
    if (process.platform !== 'win32') {
      const { statSync } = await import('node:fs');
      expect(statSync(s.tokens).mode & 0o777).toBe(0o600);
      expect(statSync(join(s.dir, 'token-0.json')).mode & 0o777).toBe(0o600);
      expect(statSync(join(s.dir, 'rewards-0.json')).mode & 0o777).toBe(0o600);
    }
  });

  it('the aggregator and 4 agent processes (Connect, gRPC, gRPC-Web) equal the in-process run bit for bit', async () => {
    const s = await splitDone('full');
    const log = join(s.dir, 'serve.jsonl');
    const srv = await serve(s, [...SAMPLED_FLAGS, '--port', '0', '--checkpoint', join(s.dir, 'ck'), '--out', log]);
    const protocols = ['connect', 'grpc', 'grpc-web', 'connect'];
    const agents = [0, 1, 2, 3].map((i) => agent(s.dir, srv.url, i, ['--protocol', protocols[i]!]));
    const r = await result(srv.proc);
    const want = await inProcess(SAMPLED);
    expectBitwise(r.J, want.J);
    expectBitwise(r.theta.flat(), want.theta);
    expect(r.backend).toBeNull();
    expect(r.agentBackends).toEqual(['js', 'js', 'js', 'js']);
    expect(r.Jstar).toBeNull();
    expect(r.records.every((x: any) => x.gap === null && x.gradNormSq === null)).toBe(true);
    expect(r.records[3].trajectories).toBe(4 * 2 * (1 + 4 * 4));
    const lines = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines[0]).toMatchObject({ type: 'header', format: 'fedpg-log/1', backend: null, Jstar: null, J0: r.J[0] });
    expect(lines.slice(1)).toEqual(r.records);
    for (const a of agents) {
      const summary = await result(a);
      expect(summary).toMatchObject({ deltas: 4, gradients: 5, refused: 0 });
    }
  });

  it('a straggler past the deadline: the round closes with the quorum, its late delta is refused, it rejoins the next round', async () => {
    const s = await splitDone('straggler');
    // Only the stalled agent misses the deadline, by construction; healthy agents answer within
    // milliseconds. The first phase's deadline starts once a quorum registered, so the agents are
    // started so that the last two start together (no process start-up inside the deadline).
    const srv = await serve(s, [...SAMPLED_FLAGS, '--port', '0', '--no-checkpoint', '--quorum', '3', '--deadline', '3000']);
    const agents: Proc[] = [];
    agents[3] = agent(s.dir, srv.url, 3, [], { FEDPG_NET_FAULT: 'stall,round=2' });
    await srv.proc.waitErr(/agent 3 registered/);
    agents[2] = agent(s.dir, srv.url, 2);
    await srv.proc.waitErr(/agent 2 registered/);
    agents[0] = agent(s.dir, srv.url, 0);
    agents[1] = agent(s.dir, srv.url, 1);
    const r = await result(srv.proc);
    expect(srv.proc.err()).toMatch(/round 2 \(local steps\) closes at its deadline with 3 of 4 updates \(missing: agent 3\)/);
    expect(srv.proc.err()).toMatch(/refused: late delta from agent 3: round 2 \(local steps\) is closed/);
    expect(r.records.map((x: any) => [x.deltas, x.gradients])).toEqual([[4, 4], [3, 4], [4, 4], [4, 4]]);
    const want = simulate(loadMdp(fixturePath(`${FIXTURE}.json`)), resolveSettings(SAMPLED), new Set(['2:3']));
    expectBitwise(r.J, want.J);
    expectBitwise(r.theta.flat(), Array.from(want.theta));
    const straggler = await result(agents[3]!);
    expect(straggler).toMatchObject({ deltas: 3, refused: 1, gradients: 5 });
    expect(agents[3]!.err()).toMatch(/refused its update for round 2 \(local steps\): late delta/);
  });

  it('refuses a bad token, malformed and oversized updates, without touching theta_bar; answers CORS for allowed origins only', async () => {
    const s = await splitDone('refusals');
    const srv = await serve(s, [...SAMPLED_FLAGS, '--port', '0', '--no-checkpoint', '--allow-origin', 'http://page.test']);
    // An agent with a wrong token is turned away (exit 1, one line), and the run is unaffected.
    const badToken = join(s.dir, 'bad-token.json');
    writeFileSync(badToken, JSON.stringify({ agent: 0, token: 'x'.repeat(43) }));
    const rogue = start(['agent', '--server', srv.url, '--agent', '0', '--rewards', join(s.dir, 'rewards-0.json'), '--token-file', badToken, '--backend', 'js']);
    const re = await rogue.exited;
    expect(re.code).toBe(1);
    expect(rogue.err()).toMatch(/^fedpg: error: the aggregator refused agent 0 \(unauthenticated\): Register for agent 0 with an invalid token\n$/m);
    const others = [1, 2, 3].map((i) => agent(s.dir, srv.url, i));
    // Agent 0's token in a hand-made client: every malformed update is refused with a clear error.
    const token0 = JSON.parse(readFileSync(join(s.dir, 'token-0.json'), 'utf8')).token as string;
    const client = createClient(FederationService, nodeTransport(srv.url, 'connect', [authInterceptor(token0)]));
    const SA = 18;
    const nan = new Float64Array(SA);
    nan[4] = Number.NaN;
    const expectRefused = (p: Promise<unknown>, code: Code, msg: RegExp): Promise<void> => expect(p).rejects.toSatisfy((e: unknown) => e instanceof ConnectError && e.code === code && msg.test(e.rawMessage));
    await expectRefused(client.pushGradient({ agent: 0, round: 0, gradient: packF64(nan), objective: 1 }), Code.InvalidArgument, /gradient for round 0\[1\]\[1\] is NaN, not a finite number/);
    await expectRefused(client.pushGradient({ agent: 0, round: 0, gradient: packF64(new Float64Array(SA - 1)), objective: 1 }), Code.InvalidArgument, /136 bytes \(17 values\), expected 144/);
    await expectRefused(client.pushGradient({ agent: 0, round: 0, gradient: packF64(new Float64Array(SA)), objective: Infinity }), Code.InvalidArgument, /J_i for round 0 is Infinity/);
    await expectRefused(client.pushDelta({ agent: 0, round: 1, delta: packF64(new Float64Array(SA)) }), Code.FailedPrecondition, /round 1 \(local steps\), which is not open/);
    // Finite but huge: no honest agent sends them (the trust issue: Number.MAX_VALUE drove theta_bar to Inf).
    await expectRefused(client.pushDelta({ agent: 0, round: 1, delta: packF64(new Float64Array(SA).fill(Number.MAX_VALUE)) }), Code.InvalidArgument, /delta for round 1 has norm Infinity, above the bound/);
    await expectRefused(client.pushDelta({ agent: 0, round: 1, delta: packF64(new Float64Array(SA).fill(1e4)) }), Code.InvalidArgument, /delta for round 1 has norm 42426\.\d+, above the bound [0-9.]+ an honest agent stays within/);
    await expectRefused(client.pushGradient({ agent: 0, round: 0, gradient: packF64(new Float64Array(SA).fill(1e6)), objective: 1 }), Code.InvalidArgument, /gradient for round 0 has norm .* above the bound/);
    await expectRefused(client.pushGradient({ agent: 0, round: 0, gradient: packF64(new Float64Array(SA)), objective: 1e308 }), Code.InvalidArgument, /J_i for round 0 is 1e\+308, outside \[0, 10\.0+\d*\]/);
    await expectRefused(client.pushGradient({ agent: 0, round: 0, gradient: packF64(new Float64Array(SA)), objective: -0.5 }), Code.InvalidArgument, /J_i for round 0 is -0\.5, outside/);
    await expectRefused(client.pushDelta({ agent: 1, round: 1, delta: packF64(new Float64Array(SA)) }), Code.PermissionDenied, /token of agent 0/);
    await expectRefused(client.pushDelta({ agent: 0, round: 1, delta: new Uint8Array(1 << 20) }), Code.ResourceExhausted, /.+/);
    // CORS: a preflight from the allowed page origin is answered; another origin is not.
    const preflight = (origin: string): Promise<Response> =>
      fetch(`${srv.url}/fedpg.v1.FederationService/PullRound`, { method: 'OPTIONS', headers: { Origin: origin, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization,content-type,connect-protocol-version' } });
    const ok = await preflight('http://page.test');
    expect(ok.status).toBe(204);
    expect(ok.headers.get('access-control-allow-origin')).toBe('http://page.test');
    expect(ok.headers.get('access-control-allow-headers')).toMatch(/Authorization/i);
    expect((await preflight('http://evil.test')).status).toBe(403);
    // Now the real agent 0: the run is exactly the in-process one.
    const a0 = agent(s.dir, srv.url, 0);
    const r = await result(srv.proc);
    const want = await inProcess(SAMPLED);
    expectBitwise(r.J, want.J);
    expectBitwise(r.theta.flat(), want.theta);
    expect((await a0.exited).code).toBe(0);
    for (const a of others) expect((await a.exited).code).toBe(0);
    expect(srv.proc.err()).toMatch(/refused: Register for agent 0 with an invalid token/);
  });

  it('the aggregator killed mid-round restarts from its checkpoint; agents push again; the result is bit-identical', async () => {
    const s = await splitDone('restart');
    const ck = join(s.dir, 'aggregator.ckpt');
    const args = [...SAMPLED_FLAGS, '--checkpoint', ck];
    const first = await serve(s, [...args, '--port', '0'], { FEDPG_NET_FAULT: 'crash,round=3,phase=local,after=2' });
    const protocols = ['connect', 'grpc', 'grpc-web', 'connect'];
    const agents = [0, 1, 2, 3].map((i) => agent(s.dir, first.url, i, ['--protocol', protocols[i]!]));
    const e = await first.proc.exited;
    expect(e.signal).toBe('SIGKILL');
    expect(first.proc.err()).toMatch(/injected fault: the aggregator crashes after accepting 2 update\(s\) of round 3 \(local steps\)/);
    expect(existsSync(ck)).toBe(true);
    const second = await serve(s, [...args, '--port', String(first.port)]);
    expect(second.proc.err()).toMatch(/resuming from checkpoint .* \(round 3, local phase\)/);
    const r = await result(second.proc);
    const want = await inProcess(SAMPLED);
    expectBitwise(r.J, want.J);
    expectBitwise(r.theta.flat(), want.theta);
    expect(r.records).toHaveLength(4);
    let resent = 0;
    for (const a of agents) resent += (await result(a)).resent;
    expect(resent).toBeGreaterThanOrEqual(1);
    // A checkpoint of another run is refused with a way out.
    const other = start(['serve', s.shared, '--agents', '4', '--token-file', s.tokens, '--port', '0', '--checkpoint', ck, '--eta', '0.3']);
    expect((await other.exited).code).toBe(1);
    expect(other.err()).toMatch(/checkpoint .* refused: it belongs to another run.*--fresh/);
  });

  it('an agent process that exits mid-run is restarted from its --state file and continues bit for bit', async () => {
    const s = await splitDone('agent-restart');
    const srv = await serve(s, [...SAMPLED_FLAGS, '--port', '0', '--no-checkpoint']);
    const state = join(s.dir, 'agent2.state');
    const agents = [0, 1, 2, 3].map((i) => agent(s.dir, srv.url, i, ['--state', join(s.dir, `agent${i}.state`)], i === 2 ? { FEDPG_NET_FAULT: 'exit,round=3' } : {}));
    expect((await agents[2]!.exited).code).toBe(3);
    expect(existsSync(state)).toBe(true);
    const again = agent(s.dir, srv.url, 2, ['--state', state]);
    const r = await result(srv.proc);
    const want = await inProcess(SAMPLED);
    expectBitwise(r.J, want.J);
    expectBitwise(r.theta.flat(), want.theta);
    expect(again.err()).toMatch(/resuming from its state file at round 2 \(gradient phase\)/);
    expect((await again.exited).code).toBe(0);
  });

  it('over TLS (--tls-cert/--tls-key, agents --ca): an agent that cannot verify the certificate stops; the run is bit-identical', async () => {
    const s = await splitDone('tls');
    const cert = join(s.dir, 'cert.pem');
    const key = join(s.dir, 'key.pem');
    // A throwaway self-signed certificate for 127.0.0.1 (openssl is part of the machine image).
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const proc = start(['serve', s.shared, '--agents', '4', '--token-file', s.tokens, '--json', '--port', '0', '--no-checkpoint', '--tls-cert', cert, '--tls-key', key, ...SAMPLED_FLAGS]);
    const url = (await proc.waitErr(/listening on (https:\/\/127\.0\.0\.1:\d+)/))[1]!;
    const untrusting = agent(s.dir, url, 0);
    expect((await untrusting.exited).code).toBe(1);
    expect(untrusting.err()).toMatch(/cannot verify the aggregator's TLS certificate \(.*self-signed.*\); pass its certificate or CA with --ca FILE/);
    const protocols = [['--protocol', 'connect'], ['--protocol', 'grpc'], ['--protocol', 'grpc-web', '--http2'], ['--protocol', 'connect']];
    const agents = [0, 1, 2, 3].map((i) => agent(s.dir, url, i, ['--ca', cert, ...protocols[i]!]));
    const r = await result(proc);
    const want = await inProcess(SAMPLED);
    expectBitwise(r.J, want.J);
    expectBitwise(r.theta.flat(), want.theta);
    for (const a of agents) expect((await a.exited).code).toBe(0);
  });

  it('usage and value errors: exit 2 for flags, 1 for values, one line each', async () => {
    const s = await splitDone('usage');
    const cases: [string[], number, RegExp][] = [
      [['serve', s.shared, '--token-file', s.tokens], 2, /required option '--agents <N>' not specified/],
      [['serve', s.shared, '--agents', '4', '--token-file', s.tokens, '--quorum', '3'], 1, /--quorum below --agents needs --deadline/],
      [['serve', s.shared, '--agents', '5', '--token-file', s.tokens], 1, /no token for agent 4/],
      [['serve', s.shared, '--agents', '4', '--token-file', s.tokens, '--algorithm', 'local'], 1, /trains no shared policy/],
      [['serve', s.shared, '--agents', '4', '--token-file', s.tokens, '--backend', 'js'], 1, /serve computes no gradient/],
      [['serve', fixturePath(`${FIXTURE}.json`), '--agents', '4', '--token-file', s.tokens], 1, /format must be "fedpg-shared\/1"/],
      [['agent', '--server', 'ftp://x', '--agent', '0', '--rewards', 'r', '--token-file', 't'], 1, /--server must be an http/],
      [['agent', '--server', 'http://127.0.0.1:1', '--agent', '1', '--rewards', join(s.dir, 'rewards-1.json'), '--token-file', join(s.dir, 'token-0.json')], 1, /agent 0's token, not agent 1's/],
      [['split', fixturePath(`${FIXTURE}.json`)], 2, /required option '--out <dir>'/],
    ];
    for (const [args, code, msg] of cases) {
      const p = start(args);
      const e = await p.exited;
      expect(e.code, `${args.join(' ')}: ${p.err()}`).toBe(code);
      expect(p.err()).toMatch(msg);
      expect(p.err()).not.toMatch(/\n\s+at /);
    }
  });
});
