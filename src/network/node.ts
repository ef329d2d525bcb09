import { setMaxListeners } from 'node:events';
import { Code, ConnectError, type Interceptor, type Transport } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from '@connectrpc/connect-node';
import { existsSync, readFileSync } from 'node:fs';
import { InputError } from '../errors.js';
import { algorithmOf } from '../federation/algorithms/registry.js';
import type { TrainSettings } from '../federation/settings.js';
import { parseJsonText, readTextFile } from '../mdp/format.js';
import { FileWriteError, LineLog, writeFileAtomic } from '../util/atomic.js';
import { FileLock } from '../util/lock.js';
import type { AgentSavedState, AgentStore, PendingPush } from './agent.js';
import { Aggregator, type AggregatorCrash, type NetRecord } from './aggregator.js';
import { readAggregatorCheckpoint, runIdOf, writeAggregatorCheckpoint } from './checkpoint.js';
import type { SharedMdp } from './formats.js';
import { CONNECTION_DEFAULTS, type ConnectionLimits } from './limits.js';
import { agentHttp2Options, http2Sizes, requestTimeoutMs } from './message-limits.js';
import { Phase } from './protocol.js';
import { RefusalLog, type BackoffPolicy } from './refusals.js';
import { listen } from './server.js';
import { federationRoutes, TokenAuth } from './service.js';
import { encodeSharedMdp } from './shared-file.js';
import { GuardedSessionManager } from './session-manager.js';

/** The Node side of the network: transports, the agent's state file, the aggregator process. */

export type WireProtocol = 'connect' | 'grpc' | 'grpc-web';
export const WIRE_PROTOCOLS: readonly WireProtocol[] = ['connect', 'grpc', 'grpc-web'];

/**
 * A client transport to the aggregator at `url`. gRPC needs HTTP/2; Connect and gRPC-Web use
 * HTTP/1.1 unless `http2`.
 */
export function nodeTransport(url: string, protocol: WireProtocol, interceptors: Interceptor[], http2 = protocol === 'grpc', ca?: string | Buffer): Transport {
  const common = { baseUrl: url, interceptors, useBinaryFormat: true };
  // HTTP/2 sessions sized for large tables (message-limits.ts); HTTP/1.1 has no such settings.
  const h2Options = { sessionManager: new GuardedSessionManager(url, {}, { ...(ca ? { ca } : {}), ...agentHttp2Options() }) };
  if (protocol === 'grpc') return createGrpcTransport({ ...common, ...h2Options });
  const version = http2 ? ({ httpVersion: '2', ...h2Options } as const) : ({ httpVersion: '1.1', ...(ca ? { nodeOptions: { ca } } : {}) } as const);
  return protocol === 'grpc-web' ? createGrpcWebTransport({ ...common, ...version }) : createConnectTransport({ ...common, ...version });
}

const b64 = (u: Uint8Array): string => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('base64');
const unb64 = (s: unknown, what: string): Uint8Array => {
  if (typeof s !== 'string') throw new Error(`${what} is missing`);
  return new Uint8Array(Buffer.from(s, 'base64'));
};

/** The agent's state file (fedpg agent --state): written atomically after every phase. */
export class FileAgentStore implements AgentStore {
  constructor(readonly path: string) {}

  load(): AgentSavedState | null {
    if (!existsSync(this.path)) return null;
    let j: Record<string, any>;
    try {
      j = JSON.parse(readFileSync(this.path, 'utf8')) as Record<string, any>;
      if (j.format !== 'fedpg-agent-state/2') throw new Error(`format is ${JSON.stringify(j.format)}, not fedpg-agent-state/2`);
      const p = j.pending as Record<string, unknown> | null;
      const pending: PendingPush | null = p
        ? {
            round: p.round as number,
            phase: p.phase as Phase,
            ...(p.delta !== undefined ? { delta: unb64(p.delta, 'pending delta') } : {}),
            ...(p.gradient !== undefined ? { gradient: unb64(p.gradient, 'pending gradient') } : {}),
            ...(p.objective !== undefined ? { objective: new Float64Array(unb64(p.objective, 'pending objective').slice().buffer)[0]! } : {}),
            ...(p.personalObjective !== undefined ? { personalObjective: new Float64Array(unb64(p.personalObjective, 'pending personal objective').slice().buffer)[0]! } : {}),
          }
        : null;
      if (!Array.isArray(j.kept)) throw new Error('kept is missing');
      const kept = (j.kept as unknown[]).map((k, i) => new Float64Array(unb64(k, `kept vector ${i}`).slice().buffer));
      const rng = j.rng as unknown;
      if (!Array.isArray(rng) || rng.length !== 4 || !rng.every((x) => Number.isInteger(x) && x >= 0 && x <= 0xffffffff)) throw new Error('rng is malformed');
      return { runId: String(j.runId), cursor: j.cursor, rng: rng as number[], kept, hasMemory: j.hasMemory === true, memoryRound: j.memoryRound as number, pending };
    } catch (e) {
      throw new InputError(`agent state file ${this.path} is unreadable (${e instanceof Error ? e.message : String(e)}); delete it to start the agent afresh`);
    }
  }

  save(s: AgentSavedState): void {
    const p = s.pending;
    writeFileAtomic(
      this.path,
      JSON.stringify({
        format: 'fedpg-agent-state/2',
        runId: s.runId,
        cursor: s.cursor,
        rng: s.rng,
        kept: s.kept.map((k) => b64(new Uint8Array(k.buffer, k.byteOffset, k.byteLength))),
        hasMemory: s.hasMemory,
        memoryRound: s.memoryRound,
        pending: p
          ? {
              round: p.round,
              phase: p.phase,
              ...(p.delta ? { delta: b64(p.delta) } : {}),
              ...(p.gradient ? { gradient: b64(p.gradient) } : {}),
              ...(p.objective !== undefined ? { objective: b64(new Uint8Array(new Float64Array([p.objective]).buffer)) } : {}),
              ...(p.personalObjective !== undefined ? { personalObjective: b64(new Uint8Array(new Float64Array([p.personalObjective]).buffer)) } : {}),
            }
          : null,
      }) + '\n',
    );
  }
}

/** Reads a JSON file with one-line errors naming it. */
export function readJsonFile(path: string): unknown {
  return parseJsonText(readTextFile(path), path);
}

export interface AggregatorRunOptions {
  shared: SharedMdp;
  agents: number;
  settings: TrainSettings;
  theta0: Float64Array;
  tokens: string[];
  host?: string;
  port: number;
  quorum?: number;
  deadlineMs?: number | null;
  /** Checkpoint file (null: none). */
  checkpoint: string | null;
  /** Ignore an existing checkpoint and start over. */
  fresh?: boolean;
  allowOrigins?: string[];
  /** HTTPS with this certificate chain and key (PEM). */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Round log (JSONL): a header line, then one record per finished round. */
  out?: string;
  /** Connection timeouts and the per-address cap (defaults: CONNECTION_DEFAULTS in limits.ts). */
  limits?: Partial<ConnectionLimits>;
  /** Backoff after failed authentications (defaults: BACKOFF_DEFAULTS in refusals.ts). */
  authBackoff?: Partial<BackoffPolicy>;
  /** How often refusals are logged in full (default 10 s; the rest are summarised). */
  refusalLogIntervalMs?: number;
  holdMs?: number;
  lingerMs?: number;
  crash?: AggregatorCrash;
  /** The largest norm of a delta and of a report (default: derived from the problem, see federation/bounds.ts; null: none). */
  maxUpdateNorm?: { delta: number; report: number } | null;
  /** The evaluation cadence: agents report J_i every this many rounds (and after the last). */
  evalEvery?: number;
  onInfo?: (message: string) => void;
  onRecord?: (r: NetRecord) => void;
}

/** The aggregator's result: train's result, with what an aggregator cannot know left null. */
export interface AggregatorResult {
  algorithm: TrainSettings['algorithm'];
  /** The aggregator computes nothing itself; agentBackends says what each agent used. */
  backend: null;
  agentBackends: (string | null)[];
  gradient: TrainSettings['gradient'];
  settings: TrainSettings & { agents: number; states: number; actions: number; perAgentKernels: boolean };
  Jstar: null;
  J: (number | null)[];
  gradNormSq: null[];
  theta: number[][];
  records: NetRecord[];
  network: { url: string; quorum: number; deadlineMs: number | null; resumedAt: number | null };
}

export interface RunningAggregator {
  /** True when the checkpoint holds this run already finished: nothing listens, `result` is ready. */
  over: boolean;
  /** '' and 0 when `over`. */
  url: string;
  port: number;
  aggregator: Aggregator;
  /** Resolves with the result once the run is over and the listener closed. */
  result: Promise<AggregatorResult>;
  /** Stops at once (the checkpoint keeps every finished phase). */
  close(): Promise<void>;
}

export async function startAggregator(o: AggregatorRunOptions): Promise<RunningAggregator> {
  const S = o.shared.states;
  const A = o.shared.actions;
  const SA = S * A;
  const sharedMdp = encodeSharedMdp(o.shared);
  const runId = runIdOf(sharedMdp, o.settings, o.theta0, o.agents);
  const info = o.onInfo ?? (() => {});
  const resume = o.checkpoint && !o.fresh && existsSync(o.checkpoint) ? readAggregatorCheckpoint(o.checkpoint, runId, o.agents, SA, algorithmOf(o.settings.algorithm).serverState.length) : undefined;
  if (resume) info(`resuming from checkpoint ${o.checkpoint} (${resume.phase === 'done' ? `finished after round ${resume.round}` : `round ${resume.round}, ${resume.phase} phase`})`);
  // The round log is claimed (FILE.lock) so a second run given the same --out is refused.
  const lock = o.out ? FileLock.acquire(o.out, '--out') : null;
  let log: LineLog | null;
  try {
    log = o.out ? new LineLog(o.out) : null;
  } catch (e) {
    lock?.release();
    throw e;
  }
  const closeLog = (): void => {
    log?.close();
    lock?.release();
  };
  /**
   * A file the aggregator cannot write (a full disk) ends the run: the old checkpoint is kept,
   * the log ends with its last complete line, and `result` rejects with the one-line error.
   * The agents' push that closed the phase gets Unavailable, so they retry against a restart.
   */
  let failWith: (e: Error) => void = () => {};
  const failed = new Promise<never>((_, reject) => (failWith = reject));
  failed.catch(() => {});
  let writeFailure: Error | null = null;
  const guardWrite = (write: () => void): void => {
    if (writeFailure) throw new ConnectError('the aggregator is stopping: it cannot write its files', Code.Unavailable);
    try {
      write();
    } catch (e) {
      if (!(e instanceof FileWriteError)) throw e;
      writeFailure = e; // the CLI prints it once, as the run's error
      queueMicrotask(() => void close().finally(() => failWith(e)));
      throw new ConnectError(`the aggregator stops: ${e.message}`, Code.Unavailable);
    }
  };
  const settingsOut = { ...o.settings, agents: o.agents, states: S, actions: A, perAgentKernels: o.shared.perAgentKernels };
  const header = (J0: number | null) => ({ type: 'header', format: 'fedpg-log/1', algorithm: o.settings.algorithm, backend: null, gradient: o.settings.gradient, settings: settingsOut, Jstar: null, J0 });
  if (resume && resume.J.length > 0) {
    try {
      log?.write(header(resume.J[0]!));
      for (const r of resume.records) log?.write(r);
    } catch (e) {
      closeLog();
      throw e;
    }
  }
  // A finished run (a rerun with its checkpoint present) has nothing to serve: no listener, no
  // linger for agents that already heard it is over, the result at once.
  const over = !!resume && resume.phase === 'done' && resume.round >= o.settings.rounds;
  const shutdown = new AbortController();
  // connect-node links every call in flight to the shutdown signal (one listener each, removed
  // when the call ends): a thousand agents' long polls are a thousand listeners, not a leak.
  setMaxListeners(0, shutdown.signal);
  const aggregator = new Aggregator({
    runId,
    agents: o.agents,
    states: S,
    actions: A,
    settings: o.settings,
    gamma: o.shared.gamma,
    sharedMdp,
    theta0: o.theta0,
    ...(o.maxUpdateNorm !== undefined ? { maxUpdateNorm: o.maxUpdateNorm } : {}),
    ...(o.evalEvery !== undefined ? { evalEvery: o.evalEvery } : {}),
    ...(o.quorum !== undefined ? { quorum: o.quorum } : {}),
    deadlineMs: o.deadlineMs ?? null,
    ...(o.holdMs !== undefined ? { holdMs: o.holdMs } : {}),
    ...(over ? { lingerMs: 0 } : o.lingerMs !== undefined ? { lingerMs: o.lingerMs } : {}),
    ...(resume ? { resume } : {}),
    ...(o.checkpoint ? { save: (s) => guardWrite(() => writeAggregatorCheckpoint(o.checkpoint!, s)) } : {}),
    onHeader: (J0) => guardWrite(() => log?.write(header(J0))),
    onRecord: (r) => {
      guardWrite(() => log?.write(r));
      o.onRecord?.(r);
    },
    onInfo: info,
    ...(o.crash ? { crash: { at: o.crash, kill: () => process.kill(process.pid, 'SIGKILL') } } : {}),
  });
  // Refusals (bad tokens, blocked addresses, refused or timed-out connections) reach the log
  // rate-limited: an attacker decides how many there are.
  const refusals = new RefusalLog(info, o.refusalLogIntervalMs);
  const auth = new TokenAuth(o.tokens, refusals, o.authBackoff);
  let listening: Awaited<ReturnType<typeof listen>> | { url: string; port: number; close: () => Promise<void> };
  try {
    listening = over
      ? { url: '', port: 0, close: async () => {} }
      : await listen({
      routes: federationRoutes(aggregator, auth),
      host: o.host ?? '127.0.0.1',
      port: o.port,
      allowOrigins: o.allowOrigins ?? [],
      shutdownSignal: shutdown.signal,
      ...(o.tls ? { tls: o.tls } : {}),
      // The body timeout grows with the request size (a 32 MB vector at S*A = 4 x 10^6), and
      // HTTP/2 windows and session memory with the messages (message-limits.ts).
      limits: { ...o.limits, requestTimeoutMs: requestTimeoutMs(o.limits?.requestTimeoutMs ?? CONNECTION_DEFAULTS.requestTimeoutMs, SA) },
      http2: http2Sizes(SA),
      onRefuse: (address, message) => refusals.note(address, message),
    });
  } catch (e) {
    aggregator.stop();
    closeLog();
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new InputError(`port ${o.port} on ${o.host ?? '127.0.0.1'} is in use (choose another --port, or 0 for a free one)`);
    if (code === 'EADDRNOTAVAIL' || code === 'EACCES') throw new InputError(`cannot listen on ${o.host ?? '127.0.0.1'}:${o.port} (${code})`);
    throw e;
  }
  const l = listening;
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    aggregator.stop();
    await l.close();
    shutdown.abort();
    refusals.flush();
    closeLog();
  };
  const finished = aggregator.finished.then(async (): Promise<AggregatorResult> => {
    await close();
    const theta = aggregator.theta();
    const rows: number[][] = [];
    for (let s = 0; s < S; s++) rows.push(Array.from(theta.subarray(s * A, (s + 1) * A)));
    const records = aggregator.allRecords();
    return {
      algorithm: o.settings.algorithm,
      backend: null,
      agentBackends: aggregator.agentBackends(),
      gradient: o.settings.gradient,
      settings: settingsOut,
      Jstar: null,
      J: aggregator.history(),
      gradNormSq: records.map(() => null),
      theta: rows,
      records,
      network: { url: l.url, quorum: aggregator.quorum, deadlineMs: aggregator.deadlineMs, resumedAt: resume ? resume.round : null },
    };
  });
  const result = Promise.race([finished, failed]);
  return { over, url: l.url, port: l.port, aggregator, result, close };
}
