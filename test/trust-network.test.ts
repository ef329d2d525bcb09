import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveSettings } from '../src/federation/settings.js';
import { loadMdp } from '../src/mdp/format.js';
import { authInterceptor } from '../src/network/agent.js';
import { Aggregator } from '../src/network/aggregator.js';
import { parseShared, sharedToJson } from '../src/network/formats.js';
import { routerTransport } from '../src/network/inprocess.js';
import { nodeTransport, startAggregator, type AggregatorRunOptions, type RunningAggregator } from '../src/network/node.js';
import { FederationService, Phase, Status } from '../src/network/protocol.js';
import { addressKey, AuthBackoff } from '../src/network/refusals.js';
import { federationRoutes, TokenAuth } from '../src/network/service.js';
import { packF64 } from '../src/network/wire.js';
import { fixturePath } from './helpers/fixtures.js';

/**
 * Issue 16, items 3, 4 and 7: hostile connections and callers on loopback. Attacking sockets
 * come from 127.0.0.2 (Linux routes all of 127/8 to loopback), so the per-address cap they hit
 * is not the legitimate agents' (127.0.0.1). Every wait is bounded; the timeouts are short here
 * and the assertions leave generous slack on both sides.
 */

const mdp = loadMdp(fixturePath('random-s6-a3-n4.json'));
const shared = parseShared(sharedToJson(mdp), 'shared');
const TOKENS = ['a', 'b', 'c', 'd'].map((c) => c.repeat(32));
const ATTACKER = '127.0.0.2';
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli', 'main.js');

let running: RunningAggregator | null = null;
afterEach(async () => {
  await running?.close();
  running = null;
});

async function aggregator(extra: Partial<AggregatorRunOptions>, info: string[] = []): Promise<RunningAggregator> {
  running = await startAggregator({
    shared,
    agents: 4,
    settings: resolveSettings({ rounds: 2, gradient: 'exact' }),
    theta0: new Float64Array(18),
    tokens: TOKENS,
    port: 0,
    checkpoint: null,
    onInfo: (m) => info.push(m),
    ...extra,
  });
  return running;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A raw TCP connection from `from`; `closedAt` is set (ms since `t0`) when the server closes it. */
interface Raw {
  sock: net.Socket;
  closedAt: number | null;
  connected: Promise<void>;
}

function raw(port: number, t0: number, from = ATTACKER): Raw {
  const sock = net.connect({ host: '127.0.0.1', port, localAddress: from });
  const r: Raw = { sock, closedAt: null, connected: new Promise((res) => sock.once('connect', () => res())) };
  sock.on('error', () => {});
  sock.resume(); // read what the server sends, or its FIN waits behind the unread bytes
  sock.on('close', () => (r.closedAt = Date.now() - t0));
  return r;
}

/** Writes one byte of `text` every `everyMs` until the socket closes (a slowloris). */
function trickle(r: Raw, text: string, everyMs: number): void {
  let i = 0;
  const timer = setInterval(() => {
    if (r.closedAt !== null || r.sock.destroyed) return clearInterval(timer);
    r.sock.write(text[i % text.length]!);
    i++;
  }, everyMs);
  r.sock.once('close', () => clearInterval(timer));
}

async function untilClosed(rs: Raw[], boundMs: number): Promise<void> {
  const end = Date.now() + boundMs;
  while (rs.some((r) => r.closedAt === null) && Date.now() < end) await sleep(50);
}

const register = (url: string, protocol: 'connect' | 'grpc', agent = 0, token = TOKENS[agent]!) =>
  createClient(FederationService, nodeTransport(url, protocol, [authInterceptor(token)])).register({ agent, backend: 'js' });

describe('connections are bounded (issue 16 item 3)', () => {
  it('idle sockets, trickled HTTP/1.1 headers and bare HTTP/2 prefaces are closed at the headers timeout; past the per-address cap at once; a Register succeeds meanwhile', async () => {
    const HEADERS_MS = 3000;
    const info: string[] = [];
    const srv = await aggregator({ limits: { headersTimeoutMs: HEADERS_MS, idleTimeoutMs: HEADERS_MS, requestTimeoutMs: HEADERS_MS, maxConnectionsPerAddress: 12 } }, info);
    const t0 = Date.now();
    const held: Raw[] = [];
    for (let i = 0; i < 4; i++) held.push(raw(srv.port, t0)); // send nothing
    for (let i = 0; i < 4; i++) {
      const r = raw(srv.port, t0);
      held.push(r);
      void r.connected.then(() => trickle(r, 'POST /fedpg.v1.FederationService/Register HTTP/1.1\r\nX-Pad: ' + 'a'.repeat(1000), 50));
    }
    for (let i = 0; i < 4; i++) {
      const r = raw(srv.port, t0);
      held.push(r);
      void r.connected.then(() => r.sock.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')); // the preface, then nothing
    }
    await Promise.all(held.map((r) => r.connected));
    await sleep(100); // the server has accepted all twelve
    const over: Raw[] = [];
    for (let i = 0; i < 8; i++) over.push(raw(srv.port, t0));
    await untilClosed(over, 1000);
    // Past the cap of 12 from one address: closed at once, long before any timeout.
    expect(over.map((r) => r.closedAt !== null && r.closedAt < HEADERS_MS)).toEqual(new Array(8).fill(true));
    // Meanwhile a legitimate agent (another address) registers, over HTTP/1.1 and over HTTP/2.
    await expect(register(srv.url, 'connect', 0)).resolves.toMatchObject({ agents: 4 });
    await expect(register(srv.url, 'grpc', 1)).resolves.toMatchObject({ agents: 4 });
    const openDuringRegister = held.filter((r) => r.closedAt === null).length;
    expect(openDuringRegister).toBe(12);
    // Every held socket is closed at the headers timeout, however many bytes it trickled.
    await untilClosed(held, HEADERS_MS + 4000);
    for (const r of held) {
      expect(r.closedAt).not.toBeNull();
      expect(r.closedAt!).toBeGreaterThanOrEqual(HEADERS_MS - 200);
      expect(r.closedAt!).toBeLessThan(HEADERS_MS + 3000);
    }
    // Logged, but not one line per socket.
    const refusals = info.filter((m) => /refused/.test(m));
    expect(refusals.length).toBeGreaterThan(0);
    expect(refusals.length).toBeLessThanOrEqual(2);
  }, 20_000);

  it('a request body trickled after its headers is cut at the request timeout; an idle keep-alive connection at the idle timeout; an idle HTTP/2 client reconnects', async () => {
    const srv = await aggregator({ limits: { headersTimeoutMs: 5000, idleTimeoutMs: 1000, requestTimeoutMs: 1000 } });
    const t0 = Date.now();
    const body = raw(srv.port, t0);
    await body.connected;
    body.sock.write('POST /fedpg.v1.FederationService/Register HTTP/1.1\r\nHost: x\r\nContent-Type: application/proto\r\nContent-Length: 1000\r\n\r\n');
    trickle(body, 'x', 50);
    // A complete request, then nothing: the connection is idle (keep-alive) after the answer.
    const idle = raw(srv.port, t0);
    await idle.connected;
    let answered = false;
    idle.sock.on('data', () => (answered = true));
    idle.sock.write('OPTIONS /fedpg.v1.FederationService/Register HTTP/1.1\r\nHost: x\r\n\r\n');
    // An HTTP/2 client left idle: its session is closed (GOAWAY) and its next call reconnects.
    const grpc = createClient(FederationService, nodeTransport(srv.url, 'grpc', [authInterceptor(TOKENS[0]!)]));
    await expect(grpc.register({ agent: 0, backend: 'js' })).resolves.toMatchObject({ agents: 4 });
    await untilClosed([body, idle], 6000);
    await sleep(300);
    await expect(grpc.register({ agent: 0, backend: 'js' })).resolves.toMatchObject({ agents: 4 });
    expect(body.closedAt).not.toBeNull();
    expect(body.closedAt!).toBeGreaterThanOrEqual(800);
    expect(body.closedAt!).toBeLessThan(4000);
    expect(answered).toBe(true);
    expect(idle.closedAt).not.toBeNull();
    expect(idle.closedAt!).toBeGreaterThanOrEqual(800);
    expect(idle.closedAt!).toBeLessThan(4000);
  }, 20_000);

  it('a long poll (PullRound, --hold) outlives the idle and request timeouts, over HTTP/1.1 and HTTP/2', async () => {
    const HOLD = 2500;
    const srv = await aggregator({ holdMs: HOLD, limits: { headersTimeoutMs: 800, idleTimeoutMs: 800, requestTimeoutMs: 800 } });
    const poll = async (protocol: 'connect' | 'grpc', agent: number): Promise<number> => {
      const c = createClient(FederationService, nodeTransport(srv.url, protocol, [authInterceptor(TOKENS[agent]!)]));
      await c.register({ agent, backend: 'js' });
      const t = Date.now();
      // Cursor at the open phase, nothing pushed: the aggregator holds the answer for HOLD ms.
      const r = await c.pullRound({ agent, afterRound: 0, afterPhase: Phase.GRADIENT, pushed: false });
      expect(r.status).toBe(Status.WAIT);
      return Date.now() - t;
    };
    const [h1, h2] = await Promise.all([poll('connect', 0), poll('grpc', 1)]);
    expect(h1).toBeGreaterThanOrEqual(HOLD - 100);
    expect(h2).toBeGreaterThanOrEqual(HOLD - 100);
  }, 20_000);

  it('over TLS: an idle socket, a stalled handshake and one past the cap are closed; a Register over HTTP/2 and HTTP/1.1 succeeds meanwhile', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedpg-trust-tls-'));
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const HEADERS_MS = 3000;
    const ca = readFileSync(cert);
    const srv = await aggregator({ tls: { cert: ca, key: readFileSync(key) }, limits: { headersTimeoutMs: HEADERS_MS, idleTimeoutMs: HEADERS_MS, maxConnectionsPerAddress: 2 } });
    const t0 = Date.now();
    const idle = raw(srv.port, t0);
    const hello = raw(srv.port, t0);
    await Promise.all([idle.connected, hello.connected]);
    hello.sock.write(Buffer.from([0x16, 0x03, 0x01, 0x00])); // the start of a ClientHello, then nothing
    await sleep(100);
    const over = raw(srv.port, t0);
    await untilClosed([over], 1000);
    expect(over.closedAt).not.toBeNull();
    expect(over.closedAt!).toBeLessThan(HEADERS_MS);
    const tlsRegister = (protocol: 'connect' | 'grpc', agent: number) =>
      createClient(FederationService, nodeTransport(srv.url, protocol, [authInterceptor(TOKENS[agent]!)], protocol === 'grpc', ca)).register({ agent, backend: 'js' });
    await expect(tlsRegister('grpc', 0)).resolves.toMatchObject({ agents: 4 });
    await expect(tlsRegister('connect', 1)).resolves.toMatchObject({ agents: 4 });
    expect([idle.closedAt, hello.closedAt]).toEqual([null, null]);
    await untilClosed([idle, hello], HEADERS_MS + 4000);
    for (const r of [idle, hello]) {
      expect(r.closedAt).not.toBeNull();
      expect(r.closedAt!).toBeGreaterThanOrEqual(HEADERS_MS - 200);
    }
  }, 20_000);

  it('fedpg serve documents and checks the limit flags (exit 1 for a bad value)', async () => {
    const help = await cli(['serve', '--help']);
    for (const f of ['--headers-timeout <ms>', '--idle-timeout <ms>', '--request-timeout <ms>', '--max-connections-per-address <N>']) expect(help.out).toContain(f);
    expect(help.out).toMatch(/--idle-timeout <ms>[\s\S]*default 30000/);
    const dir = mkdtempSync(join(tmpdir(), 'fedpg-trust-'));
    writeFileSync(join(dir, 'shared.json'), JSON.stringify(sharedToJson(mdp)));
    writeFileSync(join(dir, 'tokens.json'), JSON.stringify({ tokens: Object.fromEntries(TOKENS.map((t, i) => [String(i), t])) }));
    const bad = await cli(['serve', join(dir, 'shared.json'), '--agents', '4', '--token-file', join(dir, 'tokens.json'), '--port', '0', '--idle-timeout', '0']);
    expect(bad.code).toBe(1);
    expect(bad.err).toBe("fedpg: error: --idle-timeout must be an integer >= 1, got '0'\n");
  }, 20_000);
});

interface Done {
  code: number | null;
  out: string;
  err: string;
}

function cli(args: string[], onStderr?: (err: string, kill: () => void) => void): Promise<Done> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, FEDPG_BACKEND: '', FEDPG_NET_FAULT: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => {
      err += d;
      onStderr?.(err, () => child.kill('SIGINT'));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

describe('token guessing is slowed and quietly logged (issue 16 item 4)', () => {
  it('counts an IPv4 address as itself (IPv4-mapped too) and an IPv6 address by its /64', () => {
    expect(addressKey('127.0.0.1')).toBe('127.0.0.1');
    expect(addressKey('::ffff:10.0.0.1')).toBe('10.0.0.1');
    expect(addressKey('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8:1:2::9')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8:1:3::9')).not.toBe(addressKey('2001:db8:1:2::9'));
  });

  it('AuthBackoff: free failures, then blocks doubling up to the cap; forgotten after a quiet spell', () => {
    const b = new AuthBackoff({ freeFailures: 2, baseMs: 1000, maxMs: 4000, forgetMs: 60_000 });
    const t = 1_000_000;
    expect([b.failure('a', t), b.failure('a', t)]).toEqual([0, 0]);
    expect(b.failure('a', t)).toBe(1000);
    expect(b.blockedFor('a', t + 400)).toBe(600);
    expect(b.blockedFor('b', t)).toBe(0);
    expect([b.failure('a', t + 1000), b.failure('a', t + 3000), b.failure('a', t + 7000)]).toEqual([2000, 4000, 4000]);
    expect(b.failure('a', t + 7000 + 4000 + 60_001)).toBe(0); // a fresh start
  });

  it('a burst of wrong tokens is refused (ResourceExhausted) after a few tries, in a few log lines; the right token works after the backoff', async () => {
    const BLOCK = 1500;
    const info: string[] = [];
    const srv = await aggregator({ authBackoff: { freeFailures: 3, baseMs: BLOCK, maxMs: BLOCK } }, info);
    const wrong = (): Promise<Code | null> => register(srv.url, 'connect', 0, 'z'.repeat(32)).then(() => null, (e: unknown) => (e instanceof ConnectError ? e.code : null));
    const codes = new Map<Code, number>();
    const t0 = Date.now();
    for (let batch = 0; batch < 10; batch++) {
      for (const c of await Promise.all(Array.from({ length: 20 }, wrong))) if (c !== null) codes.set(c, (codes.get(c) ?? 0) + 1);
    }
    const burstMs = Date.now() - t0;
    expect((codes.get(Code.Unauthenticated) ?? 0) + (codes.get(Code.ResourceExhausted) ?? 0)).toBe(200);
    // Checked guesses: 3 free, then one each time a block ends (one check re-blocks at once).
    expect(codes.get(Code.Unauthenticated)!).toBeLessThanOrEqual(3 + Math.ceil(burstMs / BLOCK) + 1);
    expect(codes.get(Code.ResourceExhausted)!).toBeGreaterThanOrEqual(150);
    // Wait for a block to end: the next wrong token is checked again and starts a new block ...
    const end = Date.now() + 3 * BLOCK;
    while ((await wrong()) !== Code.Unauthenticated && Date.now() < end) await sleep(50);
    // ... in which even the right token is refused (over HTTP/2 too: one address) ...
    await expect(register(srv.url, 'connect', 1)).rejects.toMatchObject({ code: Code.ResourceExhausted });
    await expect(register(srv.url, 'grpc', 1)).rejects.toMatchObject({ code: Code.ResourceExhausted });
    // ... and which it outlasts.
    await sleep(BLOCK + 200);
    await expect(register(srv.url, 'connect', 1)).resolves.toMatchObject({ agents: 4 });
    const refusals = info.filter((m) => /refused/.test(m));
    expect(refusals.length).toBeLessThanOrEqual(2);
    expect(refusals[0]).toMatch(/^refused: Register for agent 0 with an invalid token \(from 127\.0\.0\.1\)$/);
  }, 30_000);

  it('fedpg serve: 300 wrong tokens leave a few lines on stderr (one summary), not one per guess', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedpg-trust-'));
    writeFileSync(join(dir, 'shared.json'), JSON.stringify(sharedToJson(mdp)));
    writeFileSync(join(dir, 'tokens.json'), JSON.stringify({ tokens: Object.fromEntries(TOKENS.map((t, i) => [String(i), t])) }));
    let url = '';
    let fired = false;
    const codes: Code[] = [];
    const done = await cli(['serve', join(dir, 'shared.json'), '--agents', '4', '--token-file', join(dir, 'tokens.json'), '--port', '0', '--no-checkpoint'], (err, kill) => {
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(err);
      if (!m || fired) return;
      fired = true;
      url = m[1]!;
      void (async () => {
        for (let batch = 0; batch < 15; batch++) {
          const calls = Array.from({ length: 20 }, () => register(url, 'connect', 2, 'y'.repeat(32)).then(() => Code.Unknown, (e: unknown) => (e instanceof ConnectError ? e.code : Code.Unknown)));
          codes.push(...(await Promise.all(calls)));
        }
        kill();
      })();
    });
    expect(codes).toHaveLength(300);
    expect(codes.filter((c) => c === Code.Unauthenticated).length).toBeLessThanOrEqual(25);
    expect(codes.filter((c) => c === Code.ResourceExhausted).length).toBeGreaterThanOrEqual(275);
    const lines = done.err.split('\n').filter((l) => /refused/.test(l));
    expect(lines.length).toBeLessThanOrEqual(3);
    expect(done.err.length).toBeLessThan(2000);
    expect(done.err).toMatch(/refused \d+ more calls or connections in the last \d+ s \(from 127\.0\.0\.1; not logged one by one\)/);
  }, 40_000);
});

describe('a push with different bytes for a phase that just closed (issue 16 item 7)', () => {
  it('is refused with AlreadyExists (as during the phase); the same bytes again are answered OK', async () => {
    const settings = resolveSettings({ rounds: 2, gradient: 'exact', algorithm: 'fedavg' });
    const agg = new Aggregator({ runId: 'r', agents: 2, states: 6, actions: 3, gamma: mdp.gamma, settings, sharedMdp: new TextEncoder().encode(JSON.stringify(sharedToJson(mdp))), theta0: new Float64Array(18) });
    const routes = federationRoutes(agg, new TokenAuth(TOKENS.slice(0, 2)));
    const c0 = createClient(FederationService, routerTransport(routes, TOKENS[0]!));
    const c1 = createClient(FederationService, routerTransport(routes, TOKENS[1]!));
    const empty = new Uint8Array(0);
    // The gradient phase before round 1 (fedavg: J_i only): both push, the phase closes.
    await c0.pushGradient({ agent: 0, round: 0, gradient: empty, objective: 1 });
    await c1.pushGradient({ agent: 1, round: 0, gradient: empty, objective: 2 });
    expect(agg.where()).toBe('round 1 (local steps)');
    // Round 1's local phase: agent 0 pushes; a different delta while the phase is open is refused.
    const d = new Float64Array(18).fill(0.01); // within the norm bound an honest agent keeps
    await c0.pushDelta({ agent: 0, round: 1, delta: packF64(d) });
    await expect(c0.pushDelta({ agent: 0, round: 1, delta: packF64(new Float64Array(18)) })).rejects.toMatchObject({ code: Code.AlreadyExists });
    await c1.pushDelta({ agent: 1, round: 1, delta: packF64(d) });
    expect(agg.where()).toBe('round 1 (gradient phase)');
    // The phase just closed: the same bytes are a lost answer re-sent (OK); different ones are refused.
    await expect(c0.pushDelta({ agent: 0, round: 1, delta: packF64(d) })).resolves.toMatchObject({ received: 2 });
    await expect(c0.pushDelta({ agent: 0, round: 1, delta: packF64(new Float64Array(18)) })).rejects.toSatisfy(
      (e: unknown) => e instanceof ConnectError && e.code === Code.AlreadyExists && /different delta for round 1/.test(e.rawMessage),
    );
    // The same for a gradient push (J_i is part of the bytes).
    await c0.pushGradient({ agent: 0, round: 1, gradient: empty, objective: 1 });
    await c1.pushGradient({ agent: 1, round: 1, gradient: empty, objective: 2 });
    expect(agg.where()).toBe('round 2 (local steps)');
    await expect(c1.pushGradient({ agent: 1, round: 1, gradient: empty, objective: 2 })).resolves.toMatchObject({ received: 2 });
    await expect(c1.pushGradient({ agent: 1, round: 1, gradient: empty, objective: 3 })).rejects.toMatchObject({ code: Code.AlreadyExists });
    agg.stop();
  });
});
