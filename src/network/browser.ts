/**
 * A federation agent in a web page or a Web Worker: the same agent as `fedpg agent` (runAgent),
 * reaching the aggregator over Connect or gRPC-Web with the browser's fetch (connect-web). The
 * aggregator must allow the page's origin (fedpg serve --allow-origin ORIGIN).
 *
 *   import { loadWasmBackend } from 'fast-fedpg/browser';
 *   import { runBrowserAgent } from 'fast-fedpg/network/browser';  // or this file in a bundle
 *   const summary = await runBrowserAgent({ server: 'https://aggregator.example:7440', agent: 2,
 *     token, rewards, backend: await loadWasmBackend() });
 *
 * The reward table (a fedpg-rewards/1 document) stays in the page; only Delta_i, g_i and J_i go
 * to the aggregator.
 */
import type { Transport } from '@connectrpc/connect';
import { createConnectTransport, createGrpcWebTransport } from '@connectrpc/connect-web';
import type { Backend } from '../backends/types.js';
import { authInterceptor, runAgent, type AgentFault, type AgentSummary } from './agent.js';

export { runAgent, authInterceptor, AgentError, type AgentSummary, type RunAgentOptions } from './agent.js';

export type BrowserProtocol = 'connect' | 'grpc-web';

/** A fetch-based transport to the aggregator at `server`, carrying the agent's token. */
export function browserTransport(server: string, token: string, protocol: BrowserProtocol = 'connect'): Transport {
  const o = { baseUrl: server.replace(/\/+$/, ''), interceptors: [authInterceptor(token)], useBinaryFormat: true };
  return protocol === 'grpc-web' ? createGrpcWebTransport(o) : createConnectTransport(o);
}

export interface BrowserAgentOptions {
  /** The aggregator's URL, e.g. http://127.0.0.1:7440. */
  server: string;
  agent: number;
  token: string;
  /** The agent's fedpg-rewards/1 document (parsed JSON). */
  rewards: unknown;
  backend: Backend;
  protocol?: BrowserProtocol;
  onInfo?: (message: string) => void;
  signal?: AbortSignal;
  reconnectMs?: number;
  faults?: AgentFault[];
}

export function runBrowserAgent(o: BrowserAgentOptions): Promise<AgentSummary> {
  const ua = (globalThis as { navigator?: { userAgent?: string } }).navigator?.userAgent ?? 'unknown browser';
  return runAgent({
    transport: browserTransport(o.server, o.token, o.protocol),
    agent: o.agent,
    rewards: o.rewards,
    rewardsWhere: 'the page\'s rewards',
    backend: o.backend,
    client: `browser (${ua.slice(0, 120)}, ${o.protocol ?? 'connect'})`,
    ...(o.onInfo ? { onInfo: o.onInfo } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
    ...(o.reconnectMs !== undefined ? { reconnectMs: o.reconnectMs } : {}),
    ...(o.faults ? { faults: o.faults } : {}),
  });
}
