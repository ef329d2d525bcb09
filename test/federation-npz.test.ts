import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, statSync } from 'node:fs';
import * as http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { jsBackend } from '../src/backends/js/index.js';
import { resolveSettings } from '../src/federation/settings.js';
import { train } from '../src/federation/train.js';
import { loadMdp } from '../src/mdp/format.js';
import { InputError } from '../src/errors.js';
import { gridworldMdp } from '../src/mdp/generate.js';
import { npzArrayParts, type NpzMember } from '../src/mdp/npz.js';
import { parseJsonText } from '../src/mdp/parse.js';
import { Aggregator } from '../src/network/aggregator.js';
import { blockFiles } from '../src/network/agent-host.js';
import { parseRewards, parseShared, type SharedMdp } from '../src/network/formats.js';
import { routerTransport, runInProcessFederation } from '../src/network/inprocess.js';
import { http2Sizes, maxPullAnswerBytes, maxRequestBytes, requestTimeoutMs, SHARED_NPZ_ENTRIES, vectorBytes } from '../src/network/message-limits.js';
import { listen } from '../src/network/server.js';
import { FederationService } from '../src/network/protocol.js';
import { loadRewardsFile } from '../src/network/rewards-file.js';
import { federationRoutes, TokenAuth } from '../src/network/service.js';
import { decodeSharedNpz, encodeSharedMdp, loadShared } from '../src/network/shared-file.js';
import { packF64 } from '../src/network/wire.js';
import { agentStream, streamKey } from '../src/rng.js';
import { writeFileAtomic } from '../src/util/atomic.js';
import { CLI } from './helpers/cli.js';
import { fixturePath } from './helpers/fixtures.js';

/**
 * Issue 14, item 5's federation at scale: `fedpg split` writes .npz (shared.npz, rewards-I.npz)
 * and everything that reads them gives the bits the JSON files give; the shared MDP goes to the
 * agents as .npz above SHARED_NPZ_ENTRIES table entries; message limits follow S*A and an
 * oversized message is refused naming the limit.
 */

const tmp = mkdtempSync(join(tmpdir(), 'fedpg-fed-npz-'));

function fedpg(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, FEDPG_BACKEND: '' } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Same numbers bit for bit (Object.is per element). */
function sameBits(got: ArrayLike<number>, want: ArrayLike<number>): void {
  expect(got.length).toBe(want.length);
  let diff = -1;
  for (let k = 0; k < want.length && diff < 0; k++) if (!Object.is(got[k], want[k])) diff = k;
  expect(diff, `first difference at ${diff}`).toBe(-1);
}

function sameShared(got: SharedMdp, want: SharedMdp): void {
  expect([got.states, got.actions, got.gamma, got.perAgentKernels]).toEqual([want.states, want.actions, want.gamma, want.perAgentKernels]);
  sameBits(got.initial, want.initial);
  expect(got.kernels.length).toBe(want.kernels.length);
  got.kernels.forEach((k, i) => {
    const w = want.kernels[i]!;
    expect(k.kind).toBe(w.kind);
    if (k.kind === 'dense' && w.kind === 'dense') sameBits(k.p, w.p);
    if (k.kind === 'sparse' && w.kind === 'sparse') {
      sameBits(k.rowStart, w.rowStart);
      const nnz = w.rowStart[w.rowStart.length - 1]!;
      sameBits(k.next.subarray(0, nnz), w.next.subarray(0, nnz));
      sameBits(k.prob.subarray(0, nnz), w.prob.subarray(0, nnz));
    }
  });
}

describe('fedpg split --format npz', () => {
  for (const fixture of ['random-s6-a3-n4', 'random-s20-a4-n8-sparse']) {
    it(`${fixture}: shared.npz and rewards-I.npz read back to the JSON files' bits`, () => {
      const json = join(tmp, `${fixture}-json`), npz = join(tmp, `${fixture}-npz`);
      expect(fedpg('split', fixturePath(`${fixture}.json`), '--out', json, '--seed', '3').code).toBe(0);
      const r = fedpg('split', fixturePath(`${fixture}.json`), '--out', npz, '--seed', '3', '--format', 'npz', '--json');
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout);
      expect(out.shared).toBe(join(npz, 'shared.npz'));
      const sharedJson = loadShared(join(json, 'shared.json'));
      const sharedNpz = loadShared(out.shared);
      sameShared(sharedNpz, sharedJson);
      const N = out.agents.length;
      for (let i = 0; i < N; i++) {
        expect(out.agents[i].rewards).toBe(join(npz, `rewards-${i}.npz`));
        expect(statSync(out.agents[i].rewards).mode & 0o777).toBe(0o600); // a secret: the stream key
        const a = parseRewards(loadRewardsFile(join(json, `rewards-${i}.json`)), sharedJson.states, sharedJson.actions);
        const b = parseRewards(loadRewardsFile(out.agents[i].rewards), sharedNpz.states, sharedNpz.actions);
        expect(b.agent).toBe(i);
        sameBits(b.reward, a.reward);
        sameBits(b.stream, a.stream);
      }
      // fedpg agent --agents I-J --dir finds the .npz files.
      expect(blockFiles(npz, 0, 1).map((f) => f.rewards)).toEqual([join(npz, 'rewards-0.npz'), join(npz, 'rewards-1.npz')]);
    });
  }

  it('an .npz MDP splits into .npz by default; a later JSON split removes them; rewards of the wrong shape are refused by name', () => {
    const mdpFile = join(tmp, 'grid.npz');
    expect(fedpg('generate', 'gridworld', '--width', '4', '--height', '3', '--out', mdpFile).code).toBe(0);
    const dir = join(tmp, 'grid-split');
    expect(fedpg('split', mdpFile, '--out', dir, '--seed', '1').code).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(['rewards-0.npz', 'rewards-1.npz', 'rewards-2.npz', 'rewards-3.npz', 'shared.npz', 'token-0.json', 'token-1.json', 'token-2.json', 'token-3.json', 'tokens.json']);
    const read = loadRewardsFile(join(dir, 'rewards-2.npz'));
    expect(() => parseRewards(read, 12, 5, 'rewards-2.npz')).toThrow(/^rewards-2\.npz: rewards has shape \(12, 4\), expected \(12, 5\)/);
    expect(fedpg('split', mdpFile, '--out', dir, '--seed', '1', '--format', 'json').code).toBe(0);
    expect(readdirSync(dir).filter((f) => f.endsWith('.npz'))).toEqual([]);
    expect(existsSync(join(dir, 'shared.json'))).toBe(true);
    const bad = fedpg('split', mdpFile, '--out', dir, '--format', 'csv');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--format must be one of json, npz, got 'csv'/);
  });

  it('a hand-made rewards .npz with a stray member, a wrong dtype or another format is refused in one line naming it', () => {
    const write = (name: string, members: NpzMember[]): string => {
      const path = join(tmp, name);
      writeFileAtomic(path, npzArrayParts(members));
      return path;
    };
    const key = streamKey(agentStream(3, 0));
    const good: NpzMember[] = [
      { name: 'format', data: 'fedpg-rewards/2', shape: [] },
      { name: 'agent', data: Int32Array.of(0), shape: [] },
      { name: 'key', data: key, shape: [] },
      { name: 'rewards', data: new Float64Array(6), shape: [3, 2] },
    ];
    expect(parseRewards(loadRewardsFile(write('good.npz', good)), 3, 2).reward).toEqual(new Float64Array(6));
    const stray = write('stray.npz', [...good, { name: 'transitions', data: new Float64Array(1), shape: [1] }]);
    expect(() => loadRewardsFile(stray)).toThrow(/stray\.npz: holds 'transitions\.npy', which is no array of an agent's rewards file \(expected format\.npy, agent\.npy, key\.npy, rewards\.npy\)/);
    const ints = write('ints.npz', [...good.slice(0, 3), { name: 'rewards', data: new Int32Array(6), shape: [3, 2] }]);
    expect(() => loadRewardsFile(ints)).toThrow(/ints\.npz: rewards holds dtype <i4; it must be little-endian float64/);
    const v1 = write('v1.npz', [{ name: 'format', data: 'fedpg-rewards/1', shape: [] }, ...good.slice(1)]);
    expect(() => parseRewards(loadRewardsFile(v1), 3, 2, 'v1.npz')).toThrow(/^v1\.npz: it is a fedpg-rewards\/1 file/);
    const bad = new Float64Array(6);
    bad[5] = 1.5;
    const over = write('over.npz', [...good.slice(0, 3), { name: 'rewards', data: bad, shape: [3, 2] }]);
    expect(() => parseRewards(loadRewardsFile(over), 3, 2, 'over.npz')).toThrow(/^over\.npz: rewards\[2\]\[1\] is 1\.5, outside \[0, 1\]$/);
  });

  it('a bad reward value is refused with the same line from JSON rows and from an .npz table, naming the field, the index and the value', () => {
    const doc = (rewards: unknown): unknown => ({ format: 'fedpg-rewards/2', agent: 0, key: streamKey(agentStream(3, 0)), rewards });
    const refusal = (rewards: unknown): InputError => {
      const e = ((): unknown => {
        try {
          parseRewards(doc(rewards), 3, 2, 'r');
        } catch (err) {
          return err;
        }
        return null;
      })();
      expect(e).toBeInstanceOf(InputError); // exit 1 in the CLI
      return e as InputError;
    };
    for (const [bad, line] of [
      [1.5, 'r: rewards[2][1] is 1.5, outside [0, 1]'],
      [-0.25, 'r: rewards[2][1] is -0.25, outside [0, 1]'],
      [Number.NaN, 'r: rewards[2][1] is NaN, not a finite number'],
      [Number.NEGATIVE_INFINITY, 'r: rewards[2][1] is -Infinity, not a finite number'],
    ] as const) {
      const values = Float64Array.of(0, 0.5, 1, 0, 0.25, bad);
      // The rows as a JSON document gives them (a NaN only through the API: JSON has none), and
      // the flat table readNpzRewards gives.
      const rows = [0, 1, 2].map((s) => Array.from(values.subarray(2 * s, 2 * s + 2)));
      expect(refusal(rows).message).toBe(line);
      expect(refusal({ shape: [3, 2], values }).message).toBe(line);
    }
    // Only JSON rows can hold what is not a number.
    expect(refusal([[0, 0], [0, '0.5'], [0, 0]]).message).toBe('r: rewards[1][1] is "0.5", not a finite number');
    expect(refusal([[0, 0], [0, 0], [null, 0]]).message).toBe('r: rewards[2][0] is null, not a finite number');
    expect(parseRewards(doc([[0, 1], [0.5, 0], [-0, 1]]), 3, 2).reward).toEqual(Float64Array.of(0, 1, 0.5, 0, -0, 1));
  });

  it('a federation of processes over the .npz files gives train --seed\'s bits', async () => {
    const dir = join(tmp, 'fed-npz');
    expect(fedpg('split', fixturePath('random-s6-a3-n4.json'), '--out', dir, '--seed', '3', '--format', 'npz').code).toBe(0);
    const flags = ['--rounds', '3', '--local-steps', '2', '--batch', '2', '--horizon', '10'];
    const { spawn } = await import('node:child_process');
    const serve = spawn(process.execPath, [CLI, 'serve', join(dir, 'shared.npz'), '--agents', '4', '--token-file', join(dir, 'tokens.json'), '--port', '0', '--no-checkpoint', '--json', ...flags], { stdio: ['ignore', 'pipe', 'pipe'] });
    const killer = setTimeout(() => serve.kill('SIGKILL'), 60_000);
    let out = '', err = '';
    serve.stdout.on('data', (d) => (out += d));
    const url = await new Promise<string>((resolve, reject) => {
      serve.stderr.on('data', (d) => {
        err += d;
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(err);
        if (m) resolve(m[1]!);
      });
      serve.on('close', () => reject(new Error(`serve exited: ${err}`)));
    });
    const agents = spawnSync(process.execPath, [CLI, 'agent', '--server', url, '--agents', '0-3', '--dir', dir, '--backend', 'js'], { encoding: 'utf8', timeout: 60_000 });
    expect(agents.status, agents.stderr).toBe(0);
    await new Promise((resolve) => serve.on('close', resolve));
    clearTimeout(killer);
    const got = JSON.parse(out);
    const want = await train(loadMdp(fixturePath('random-s6-a3-n4.json')), { backend: jsBackend, rounds: 3, localSteps: 2, batch: 2, horizon: 10, seed: 3 });
    sameBits(got.theta.flat(), want.theta!.flat());
    sameBits(got.J, want.J);
  }, 90_000);
});

describe('the shared MDP in Register', () => {
  it('is the JSON as before up to SHARED_NPZ_ENTRIES table entries, .npz above, and decodes to the same bits', () => {
    const small = gridworldMdp({ width: 5, height: 5, agents: 2 });
    const sb = encodeSharedMdp(small);
    expect(new TextDecoder().decode(sb.subarray(0, 1))).toBe('{');
    sameShared(parseShared(parseJsonText(new TextDecoder().decode(sb), 'x')), small);
    // 160 x 160 x 4 actions = 102400 entries, just above the threshold.
    const big = gridworldMdp({ width: 160, height: 160, agents: 2 });
    expect(big.states * big.actions).toBeGreaterThan(SHARED_NPZ_ENTRIES);
    const bb = encodeSharedMdp(big);
    expect([...bb.subarray(0, 4)]).toEqual([0x50, 0x4b, 3, 4]);
    sameShared(decodeSharedNpz(bb, 'the shared MDP'), big);
    expect(() => decodeSharedNpz(sb, 'the shared MDP')).toThrow(/the shared MDP: is not a readable \.npz/);
  });

  it('a federation above the threshold (the agents read the .npz from Register) gives train\'s bits', async () => {
    const mdp = gridworldMdp({ width: 160, height: 160, agents: 2, goals: 'spread' });
    const settings = { rounds: 2, localSteps: 2, batch: 2, horizon: 20, eta: 5, seed: 4 };
    // Evaluated at rounds 0 and 2 only (the cadence): the js solves of 25600 states are the slow part.
    const net = await runInProcessFederation(mdp, { backend: jsBackend, ...settings, evalEvery: 2 });
    const want = await train(mdp, { backend: jsBackend, ...settings, evalEvery: 2 });
    sameBits(net.theta, want.theta!.flat());
    expect(net.J[2]).toBe(want.J[2]);
  }, 120_000);
});

describe('message size limits', () => {
  it('follow S*A: a request is one vector (8 S*A bytes) and 1024 more; an answer at most 5 vectors and 4096', () => {
    expect(vectorBytes(4e6)).toBe(32_000_000);
    expect(maxRequestBytes(4e6)).toBe(32_001_024);
    expect(maxPullAnswerBytes(4e6)).toBe(160_004_096);
    expect(maxRequestBytes(18)).toBe(8 * 18 + 1024);
    // HTTP/2: a stream may carry a whole request, the connection 4, the session memory that and 2 answers.
    expect(http2Sizes(4e6)).toEqual({ streamWindow: 32_001_024, connectionWindow: 128_004_096, sessionMemoryMb: Math.ceil((128_004_096 + 2 * 160_004_096) / 2 ** 20) });
    expect(http2Sizes(18)).toEqual({ streamWindow: 65_535, connectionWindow: 65_535, sessionMemoryMb: 10 }); // Node's defaults
    // The body timeout: 1 s more per MiB of the largest request.
    expect(requestTimeoutMs(30_000, 4e6)).toBe(30_000 + Math.ceil((1000 * 32_001_024) / 2 ** 20));
    expect(requestTimeoutMs(30_000, 18)).toBe(30_002);
  });

  it('the listener announces the sized HTTP/2 stream window and opens the connection window', async () => {
    const sizes = http2Sizes(1e6);
    const srv = await listen({ routes: () => {}, port: 0, http2: sizes });
    const session = http2.connect(srv.url);
    try {
      await new Promise<void>((resolve, reject) => {
        session.once('remoteSettings', () => resolve());
        session.once('error', reject);
      });
      expect(session.remoteSettings.initialWindowSize).toBe(sizes.streamWindow);
      // The server's WINDOW_UPDATE on stream 0 arrives after its SETTINGS: wait for it.
      for (let k = 0; k < 50 && session.state.remoteWindowSize! < sizes.connectionWindow; k++) await new Promise((r) => setTimeout(r, 20));
      expect(session.state.remoteWindowSize).toBe(sizes.connectionWindow);
    } finally {
      session.destroy();
      await srv.close(0);
    }
  });

  it('the aggregator refuses a request above its limit (ResourceExhausted, naming the limit) and takes one at it', async () => {
    const mdp = loadMdp(fixturePath('random-s6-a3-n4.json'));
    const SA = mdp.states * mdp.actions;
    const tokens = mdp.rewards.map((_, i) => `token-of-agent-${i}-0123456789`);
    const agg = new Aggregator({
      runId: 'limits',
      agents: 4,
      states: mdp.states,
      actions: mdp.actions,
      settings: resolveSettings({ rounds: 1 }),
      gamma: mdp.gamma,
      sharedMdp: encodeSharedMdp(mdp),
      theta0: new Float64Array(SA),
      deadlineMs: null,
    });
    expect(agg.maxRequestBytes()).toBe(maxRequestBytes(SA));
    const client = createClient(FederationService, routerTransport(federationRoutes(agg, new TokenAuth(tokens)), tokens[0]!));
    const reg = await client.register({ agent: 0, backend: 'js' });
    expect(reg.maxRequestBytes).toBe(8 * SA + 1024);
    // One byte over the limit, as raw bytes: refused before it is parsed, with the limit named.
    const over = new Uint8Array(maxRequestBytes(SA) + 1);
    const e = await client.pushGradient({ agent: 0, round: 0, gradient: over, objective: 1 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ConnectError);
    expect((e as ConnectError).code).toBe(Code.ResourceExhausted);
    expect((e as ConnectError).rawMessage).toMatch(new RegExp(`larger than configured readMaxBytes ${maxRequestBytes(SA)}`));
    // An honest vector is far inside it: accepted.
    const ok = await client.pushGradient({ agent: 0, round: 0, gradient: packF64(new Float64Array(SA)), objective: 1 });
    expect(ok.received).toBe(1);
    agg.stop();
  });
});
