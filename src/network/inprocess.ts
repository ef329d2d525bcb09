import { createRouterTransport, type Transport } from '@connectrpc/connect';
import { randomBytes } from 'node:crypto';
import { agentStream } from '../rng.js';
import type { Backend } from '../backends/types.js';
import type { TrainSettings } from '../federation/settings.js';
import { resolveSettings } from '../federation/settings.js';
import type { Mdp } from '../mdp/model.js';
import { authInterceptor, HostedRunCache, runAgent, type AgentFault, type AgentSummary } from './agent.js';
import { Aggregator, type NetRecord } from './aggregator.js';
import { rewardsToJson } from './formats.js';
import { federationRoutes, TokenAuth } from './service.js';
import { decodeSharedNpz, encodeSharedMdp } from './shared-file.js';

/**
 * The whole federation in one process, every agent behind the same transport interface as a
 * remote one (Connect's router transport: the RPCs, their messages and the authentication run as
 * over a network, without sockets). For tests and for embedding; Node only (node:crypto).
 */

export interface InProcessFederationOptions extends Partial<TrainSettings> {
  backend: Backend;
  theta0?: Float64Array;
  quorum?: number;
  deadlineMs?: number | null;
  /** The evaluation cadence (agents report J_i every this many rounds and after the last). */
  evalEvery?: number;
  /** Each agent's private stream (default agentStream(seed, i), as `fedpg split --seed` writes). */
  streams?: Uint32Array[];
  /** Faults per agent index. */
  faults?: Record<number, AgentFault[]>;
  onInfo?: (message: string) => void;
}

export interface InProcessFederationResult {
  /** Every agent's last report as the aggregator received it (what the aggregator could analyse). */
  reports: (Float64Array | null)[];
  J: (number | null)[];
  theta: Float64Array;
  records: NetRecord[];
  agents: AgentSummary[];
}

/** An in-process transport to an aggregator's routes, authenticated with `token`. */
export function routerTransport(routes: ReturnType<typeof federationRoutes>, token: string): Transport {
  return createRouterTransport(routes, { transport: { interceptors: [authInterceptor(token)] } });
}

export async function runInProcessFederation(mdp: Mdp, o: InProcessFederationOptions): Promise<InProcessFederationResult> {
  const settings = resolveSettings(o);
  const N = mdp.rewards.length;
  const SA = mdp.states * mdp.actions;
  const tokens = mdp.rewards.map(() => randomBytes(24).toString('base64url'));
  const agg = new Aggregator({
    runId: randomBytes(8).toString('hex'),
    agents: N,
    states: mdp.states,
    actions: mdp.actions,
    settings,
    gamma: mdp.gamma,
    ...(o.evalEvery !== undefined ? { evalEvery: o.evalEvery } : {}),
    sharedMdp: encodeSharedMdp(mdp),
    theta0: o.theta0 ?? new Float64Array(SA),
    ...(o.quorum !== undefined ? { quorum: o.quorum } : {}),
    deadlineMs: o.deadlineMs ?? null,
    lingerMs: 1000,
    ...(o.onInfo ? { onInfo: o.onInfo } : {}),
  });
  const routes = federationRoutes(agg, new TokenAuth(tokens));
  // One decoded MDP and (on a shared kernel) one environment for all the agents, as a host process shares them.
  const cache = new HostedRunCache();
  try {
    const agents = await Promise.all(
      mdp.rewards.map((r, i) =>
        runAgent({
          transport: routerTransport(routes, tokens[i]!),
          agent: i,
          cache,
          // agentStream(seed, i), as `fedpg split --seed` writes it, so the run equals `train --seed`.
          rewards: rewardsToJson(i, r, mdp.states, mdp.actions, o.streams?.[i] ?? agentStream(settings.seed, i)),
          decodeSharedNpz,
          backend: o.backend,
          client: 'in-process',
          ...(o.faults?.[i] ? { faults: o.faults[i] } : {}),
          ...(o.onInfo ? { onInfo: o.onInfo } : {}),
        }),
      ),
    );
    await agg.finished;
    return { reports: agg.snapshot().server.reports, J: agg.history(), theta: agg.theta(), records: agg.allRecords(), agents };
  } finally {
    agg.stop();
  }
}
