import type { Transport } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from '@connectrpc/connect-node';
import { GuardedSessionManager } from './session-manager.js';
import { setMaxListeners } from 'node:events';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadBackendByName } from '../backends/select.js';
import type { Backend, BackendName } from '../backends/types.js';
import { InputError } from '../errors.js';
import { authInterceptor, HostedRunCache, runAgent, type AgentFault, type AgentSummary } from './agent.js';
import type { AgentThreadInit, AgentThreadResult } from './agent-host-worker.js';
import { parseAgentToken } from './formats.js';
import { FileAgentStore, readJsonFile, type WireProtocol } from './node.js';
import { agentHttp2Options } from './message-limits.js';
import { loadRewardsFile } from './rewards-file.js';
import { decodeSharedNpz } from './shared-file.js';

/**
 * A block of agents in one thread (`fedpg agent --agents I-J`): each agent is the same runAgent
 * as a lone `fedpg agent` (its own rewards file with its private stream key, its own token and
 * its own state file), so a federation computes the same bits however its agents are spread over
 * processes and threads. The agents of a thread share a few connections to the aggregator: over
 * HTTP/2 one session carries up to AGENTS_PER_SESSION agents' calls as separate streams, each
 * call still authenticated by its own agent's bearer token.
 */

/** Where one hosted agent's files are. */
export interface HostedAgentFiles {
  agent: number;
  rewards: string;
  tokenFile: string;
  /** Its state file (fedpg-agent-state/2), or none. */
  state?: string;
}

/** What a block of agents needs, plain data (it crosses to worker threads). */
export interface AgentBlockOptions {
  server: string;
  protocol: WireProtocol;
  http2: boolean;
  ca?: string;
  agents: HostedAgentFiles[];
  reconnectMs?: number;
  /** Faults per agent (tests). */
  faults?: Record<number, AgentFault[]>;
}

/**
 * The files of agents lo..hi in a `fedpg split` directory (rewards-I.npz when split wrote npz,
 * else rewards-I.json); state files in stateDir when given.
 */
export function blockFiles(dir: string, lo: number, hi: number, stateDir?: string): HostedAgentFiles[] {
  const out: HostedAgentFiles[] = [];
  for (let i = lo; i <= hi; i++) {
    const npz = join(dir, `rewards-${i}.npz`);
    const rewards = existsSync(npz) ? npz : join(dir, `rewards-${i}.json`);
    out.push({ agent: i, rewards, tokenFile: join(dir, `token-${i}.json`), ...(stateDir ? { state: join(stateDir, `state-${i}.json`) } : {}) });
  }
  return out;
}

/** Parses `--agents I-J` (or a single I) into the inclusive range. */
export function parseAgentRange(text: string): { lo: number; hi: number } {
  const m = /^(\d{1,9})(?:-(\d{1,9}))?$/.exec(text.trim());
  if (!m) throw new InputError(`--agents must be a range I-J of agent indices (e.g. 0-249), got '${text}'`);
  const lo = Number(m[1]), hi = Number(m[2] ?? m[1]);
  if (hi < lo) throw new InputError(`--agents: the range ${text} ends before it starts`);
  return { lo, hi };
}

/**
 * Agents per HTTP/2 session. Each agent has at most one call open at a time (its long poll, or a
 * push), and the aggregator allows 100 open streams per connection (src/network/server.ts): past
 * that, the client queues new streams until a long poll ends, which stalls a round for the poll's
 * hold time. 64 leaves room, and 1000 agents still need only 16 connections.
 */
export const AGENTS_PER_SESSION = 64;

/**
 * Transports to the aggregator that share HTTP/2 sessions (one per AGENTS_PER_SESSION agents; over
 * HTTP/1.1, Node's keep-alive agent): one per agent, each adding that agent's token.
 */
export function sharedTransports(o: { server: string; protocol: WireProtocol; http2: boolean; ca?: string }): { transport(token: string, k: number): Transport; close(): void } {
  const nodeOptions = o.ca ? { ca: o.ca } : {};
  const h2 = o.protocol === 'grpc' || o.http2 || o.server.startsWith('https:');
  const sessions: GuardedSessionManager[] = [];
  const sessionOf = (k: number): GuardedSessionManager => {
    const j = Math.floor(k / AGENTS_PER_SESSION);
    return (sessions[j] ??= new GuardedSessionManager(o.server, {}, { ...nodeOptions, ...agentHttp2Options() }));
  };
  const transport = (token: string, k: number): Transport => {
    const common = { baseUrl: o.server, interceptors: [authInterceptor(token)], useBinaryFormat: true, nodeOptions };
    if (o.protocol === 'grpc') return createGrpcTransport({ ...common, sessionManager: sessionOf(k) });
    const version = h2 ? ({ httpVersion: '2', sessionManager: sessionOf(k) } as const) : ({ httpVersion: '1.1' } as const);
    return o.protocol === 'grpc-web' ? createGrpcWebTransport({ ...common, ...version }) : createConnectTransport({ ...common, ...version });
  };
  return { transport, close: () => sessions.forEach((m) => m?.abort()) };
}

/** Reads every agent's files first, so a bad file stops the block before any agent joins. */
function loadFiles(files: HostedAgentFiles[]): { agent: number; rewards: unknown; rewardsWhere: string; token: string; state?: string }[] {
  return files.map((f) => {
    const tok = parseAgentToken(readJsonFile(f.tokenFile), f.tokenFile);
    if (tok.agent !== f.agent) throw new InputError(`${f.tokenFile} is agent ${tok.agent}'s token, not agent ${f.agent}'s`);
    return { agent: f.agent, rewards: loadRewardsFile(f.rewards), rewardsWhere: f.rewards, token: tok.token, ...(f.state ? { state: f.state } : {}) };
  });
}

/**
 * Runs every agent of the block in this thread until the run is over; the first failure stops
 * the others (their state files keep where they were) and is thrown.
 */
export async function runAgentBlock(
  o: AgentBlockOptions,
  backend: Backend,
  hooks: { onInfo?: (m: string) => void; signal?: AbortSignal; exit?: () => never; client?: string } = {},
): Promise<AgentSummary[]> {
  const loaded = loadFiles(o.agents);
  const link = sharedTransports(o);
  const cache = new HostedRunCache();
  const stop = new AbortController();
  // Every agent's calls listen on this one signal.
  setMaxListeners(0, stop.signal);
  const onOuter = (): void => stop.abort(hooks.signal!.reason);
  hooks.signal?.addEventListener('abort', onOuter);
  try {
    return await Promise.all(
      loaded.map((a, k) =>
        runAgent({
          transport: link.transport(a.token, k),
          agent: a.agent,
          cache,
          rewards: a.rewards,
          decodeSharedNpz,
          rewardsWhere: a.rewardsWhere,
          backend,
          client: hooks.client ?? `fedpg agent --agents (node ${process.version}, ${o.protocol})`,
          faults: o.faults?.[a.agent] ?? [],
          ...(a.state ? { store: new FileAgentStore(a.state) } : {}),
          ...(o.reconnectMs !== undefined ? { reconnectMs: o.reconnectMs } : {}),
          ...(hooks.onInfo ? { onInfo: hooks.onInfo } : {}),
          ...(hooks.exit ? { exit: hooks.exit } : {}),
          signal: stop.signal,
        }).catch((e: unknown) => {
          // One agent's failure ends the block: the others stop at their next call.
          if (!stop.signal.aborted) stop.abort(e);
          throw e;
        }),
      ),
    );
  } finally {
    hooks.signal?.removeEventListener('abort', onOuter);
    link.close();
  }
}

/**
 * The block on `workers` threads (piscina), each hosting a contiguous part of it with its own
 * backend and its own session; with one thread, in this one. Summaries in agent order.
 */
export async function runAgentHost(
  o: AgentBlockOptions,
  backendName: BackendName,
  workers: number,
  hooks: { onInfo?: (m: string) => void; signal?: AbortSignal; exit?: () => never; client: string },
): Promise<AgentSummary[]> {
  const n = o.agents.length;
  if (!Number.isSafeInteger(workers) || workers < 1 || workers > n) throw new InputError(`--workers must be in [1, ${n}] (the agents hosted), got ${workers}`);
  if (workers === 1) return runAgentBlock(o, await loadBackendByName(backendName), hooks);
  loadFiles(o.agents); // a bad file stops the host before any thread starts
  const { Piscina } = await import('piscina');
  const { compiledScript } = await import('../federation/workers/script.js');
  const pool = new Piscina({ filename: compiledScript(import.meta.url, 'agent-host-worker.js'), minThreads: workers, maxThreads: workers, idleTimeout: 1000 });
  try {
    const parts = Array.from({ length: workers }, (_, w) => o.agents.slice(Math.floor((w * n) / workers), Math.floor(((w + 1) * n) / workers)));
    const results = await Promise.all(
      parts.map((agents) => {
        const init: AgentThreadInit = { block: { ...o, agents }, backend: backendName, client: hooks.client };
        return pool.run(init, hooks.signal ? { signal: hooks.signal } : {}) as Promise<AgentThreadResult>;
      }),
    );
    const out: AgentSummary[] = [];
    for (const r of results) {
      if ('error' in r) throw r.input ? new InputError(r.error) : new Error(r.error);
      out.push(...r.ok);
    }
    return out;
  } finally {
    await pool.destroy();
  }
}
