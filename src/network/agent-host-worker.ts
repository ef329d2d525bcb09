import { ConnectError } from '@connectrpc/connect';
import { loadBackendByName } from '../backends/select.js';
import type { BackendName } from '../backends/types.js';
import { InputError } from '../errors.js';
import { AgentError, type AgentSummary } from './agent.js';
import { runAgentBlock, type AgentBlockOptions } from './agent-host.js';

/**
 * One worker thread of `fedpg agent --agents I-J --workers W`: a piscina task that runs its block
 * of agents (runAgentBlock, its own HTTP/2 session) to the end of the run. Failures come back as
 * data, so the host process can tell a user's mistake (exit 1) from a fault.
 */

export interface AgentThreadInit {
  block: AgentBlockOptions;
  backend: BackendName;
  client: string;
}

export type AgentThreadResult = { ok: AgentSummary[] } | { error: string; input: boolean };

export default async function agentThread(init: AgentThreadInit): Promise<AgentThreadResult> {
  try {
    const backend = await loadBackendByName(init.backend);
    const ok = await runAgentBlock(init.block, backend, {
      client: init.client,
      onInfo: (m) => process.stderr.write(`fedpg ${m}\n`),
      exit: () => process.exit(3),
    });
    return { ok };
  } catch (e) {
    if (e instanceof InputError || e instanceof AgentError) return { error: e.message, input: true };
    if (e instanceof ConnectError) return { error: `the aggregator refused an agent (${e.code}): ${e.rawMessage}`, input: true };
    return { error: e instanceof Error ? e.message : String(e), input: false };
  }
}
