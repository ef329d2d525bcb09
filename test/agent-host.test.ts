import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { jsBackend } from '../src/backends/js/index.js';
import { train } from '../src/federation/train.js';
import { loadMdp } from '../src/mdp/format.js';
import { randomMdp } from '../src/mdp/generate.js';
import { parseAgentRange } from '../src/network/agent-host.js';
import { runInProcessFederation } from '../src/network/inprocess.js';
import { fixturePath } from './helpers/fixtures.js';

/**
 * Many agents per process (issue 15): `fedpg agent --agents I-J` hosts a block of agents, each
 * with its own key, token and state file, on worker threads with --workers. A federation whose
 * agents are split over two host processes (one of them on 2 threads, over HTTP/2) must equal
 * `fedpg train` bit for bit: the split and the threads change nothing the agents compute.
 */

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli', 'main.js');
const tmp = mkdtempSync(join(tmpdir(), 'fedpg-host-'));
const FIXTURE = 'random-s6-a3-n4';
const SETTINGS = { rounds: 4, localSteps: 3, batch: 2, horizon: 10, seed: 5 };
const FLAGS = ['--rounds', '4', '--local-steps', '3', '--batch', '2', '--horizon', '10'];
const LIMIT_MS = 60_000;
const children: ChildProcess[] = [];

interface Run {
  code: number | null;
  out: string;
  err: string;
}

/** Starts the CLI; `ready` resolves with the first match of re on stderr (or null at exit). */
function cli(args: string[], re?: RegExp): { done: Promise<Run>; ready: Promise<RegExpMatchArray | null> } {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, FEDPG_BACKEND: '', FEDPG_NET_FAULT: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '', err = '';
  let hit: ((m: RegExpMatchArray | null) => void) | null = null;
  const ready = new Promise<RegExpMatchArray | null>((r) => (hit = r));
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => {
    err += d;
    const m = re ? err.match(re) : null;
    if (m) hit?.(m);
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), LIMIT_MS);
  const done = new Promise<Run>((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      hit?.(null);
      resolve({ code, out, err });
    }),
  );
  return { done, ready };
}

afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function bitwise(got: readonly (number | null)[], want: readonly (number | null)[]): number {
  if (got.length !== want.length) return -2;
  return want.findIndex((w, k) => !Object.is(got[k], w));
}

describe('fedpg agent --agents I-J', () => {
  it('parses agent ranges and refuses bad ones with the flag named', () => {
    expect(parseAgentRange('0-249')).toEqual({ lo: 0, hi: 249 });
    expect(parseAgentRange('7')).toEqual({ lo: 7, hi: 7 });
    expect(() => parseAgentRange('5-2')).toThrow(/--agents: the range 5-2 ends before it starts/);
    expect(() => parseAgentRange('a-b')).toThrow(/--agents must be a range I-J/);
  });

  it('agents split over two host processes (one on 2 threads over HTTP/2) equal fedpg train bit for bit', async () => {
    const dir = join(tmp, 'split');
    expect((await cli(['split', fixturePath(`${FIXTURE}.json`), '--out', dir, '--seed', String(SETTINGS.seed)]).done).code).toBe(0);
    const srv = cli(['serve', join(dir, 'shared.json'), '--agents', '4', '--token-file', join(dir, 'tokens.json'), '--json', '--port', '0', '--checkpoint', join(dir, 'aggregator.ckpt'), ...FLAGS], /listening on (http:\/\/127\.0\.0\.1:\d+)/);
    const url = (await srv.ready)![1]!;
    const states = join(dir, 'states');
    const common = ['--server', url, '--dir', dir, '--backend', 'js', '--json'];
    const a = cli(['agent', '--agents', '0-1', '--workers', '2', '--protocol', 'grpc', '--state-dir', states, ...common]);
    const b = cli(['agent', '--agents', '2-3', '--http2', ...common]);
    const [rs, ra, rb] = await Promise.all([srv.done, a.done, b.done]);
    expect(rs.code, rs.err).toBe(0);
    expect(ra.code, ra.err).toBe(0);
    expect(rb.code, rb.err).toBe(0);
    const net = JSON.parse(rs.out);
    const want = await train(loadMdp(fixturePath(`${FIXTURE}.json`)), { backend: jsBackend, ...SETTINGS });
    expect(bitwise(net.J, want.J)).toBe(-1);
    expect(bitwise(net.theta.flat(), want.theta!.flat())).toBe(-1);
    const hosted = [...JSON.parse(ra.out).agents, ...JSON.parse(rb.out).agents];
    expect(hosted.map((s: { agent: number }) => s.agent)).toEqual([0, 1, 2, 3]);
    for (const s of hosted) expect(s).toMatchObject({ deltas: 4, gradients: 5, refused: 0 });
    expect(readdirSync(states).sort()).toEqual(['state-0.json', 'state-1.json']);
  });

  it('an aggregator with more long-polling agents than a signal keeps listeners by default (16) runs without process warnings', async () => {
    const dir = join(tmp, 'many');
    const mdpFile = join(tmp, 'many.json');
    expect((await cli(['generate', 'random', '--states', '4', '--actions', '2', '--agents', '16', '--out', mdpFile]).done).code).toBe(0);
    expect((await cli(['split', mdpFile, '--out', dir, '--seed', '1']).done).code).toBe(0);
    const srv = cli(['serve', join(dir, 'shared.json'), '--agents', '16', '--token-file', join(dir, 'tokens.json'), '--port', '0', '--no-checkpoint', '--rounds', '3', '--local-steps', '2', '--batch', '1', '--horizon', '5'], /listening on (http:\/\/127\.0\.0\.1:\d+)/);
    const url = (await srv.ready)![1]!;
    const host = cli(['agent', '--agents', '0-15', '--dir', dir, '--server', url, '--backend', 'js']);
    const [rs, rh] = await Promise.all([srv.done, host.done]);
    expect(rs.code, rs.err).toBe(0);
    expect(rh.code, rh.err).toBe(0);
    // Every call in flight holds a listener on the aggregator's shutdown signal (connect-node).
    expect(rs.err).not.toMatch(/Warning/);
    expect(rh.err).not.toMatch(/Warning/);
  });

  it('usage mistakes exit 2 with one line naming the flag', async () => {
    const r = await cli(['agent', '--server', 'http://127.0.0.1:1', '--agents', '0-1']).done;
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--agents I-J needs --dir DIR/);
    const r2 = await cli(['agent', '--server', 'http://127.0.0.1:1', '--agents', '0-1', '--dir', tmp, '--rewards', 'x']).done;
    expect(r2.code).toBe(2);
    expect(r2.err).toMatch(/--rewards goes with --agent I/);
  });
});

describe('agents of one process share the decoded MDP and the environment', () => {
  /** jsBackend, counting the environments it builds and disposes. */
  const counting = () => {
    const n = { built: 0, disposed: 0 };
    const backend = {
      ...jsBackend,
      createEnvironment: (spec: Parameters<typeof jsBackend.createEnvironment>[0]) => {
        n.built++;
        const env = jsBackend.createEnvironment(spec);
        const dispose = env.dispose.bind(env);
        env.dispose = () => {
          n.disposed++;
          dispose();
        };
        return env;
      },
    };
    return { n, backend };
  };
  const settings = { rounds: 3, localSteps: 2, batch: 1, horizon: 5, seed: 4 };

  it('a shared kernel: one environment for all 6 agents, disposed once at the end, and the run equals train bit for bit', async () => {
    const mdp = randomMdp({ states: 6, actions: 3, agents: 6, seed: 3 });
    const { n, backend } = counting();
    const net = await runInProcessFederation(mdp, { backend, ...settings });
    expect(n).toEqual({ built: 1, disposed: 1 });
    const want = await train(mdp, { backend: jsBackend, ...settings });
    expect(bitwise(Array.from(net.theta), want.theta!.flat())).toBe(-1);
  });

  it('per-agent kernels: one environment per agent, each disposed', async () => {
    const base = randomMdp({ states: 5, actions: 2, agents: 3, seed: 3 });
    const mdp = { ...base, kernels: [0, 1, 2].map((k) => randomMdp({ states: 5, actions: 2, agents: 1, seed: 40 + k }).kernels[0]!), perAgentKernels: true };
    const { n, backend } = counting();
    const net = await runInProcessFederation(mdp, { backend, ...settings });
    expect(n).toEqual({ built: 3, disposed: 3 });
    const want = await train(mdp, { backend: jsBackend, ...settings });
    expect(bitwise(Array.from(net.theta), want.theta!.flat())).toBe(-1);
  });
});

describe('the aggregator with many agents', () => {
  it('200 agents with participation 0.25 (eligible agents counted per phase, drawn agents looked up): equals train bit for bit', async () => {
    const mdp = randomMdp({ states: 6, actions: 3, agents: 200, seed: 2 });
    const settings = { rounds: 3, localSteps: 2, batch: 1, horizon: 5, seed: 4, participation: 0.25 };
    const net = await runInProcessFederation(mdp, { backend: jsBackend, ...settings });
    const want = await train(mdp, { backend: jsBackend, ...settings });
    expect(bitwise(Array.from(net.theta), want.theta!.flat())).toBe(-1);
    expect(net.records.map((r) => r.participants)).toEqual(want.records.map((r) => r.participants));
    expect(net.records.map((r) => r.deltas)).toEqual([50, 50, 50]);
  }, 30_000);
});
