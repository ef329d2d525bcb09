import { ConnectError } from '@connectrpc/connect';
import type { Command } from 'commander';
import { loadBackend } from '../../backends/select.js';
import { mkdirSync } from 'node:fs';
import { InputError, UsageError } from '../../errors.js';
import { readTextFile } from '../../mdp/format.js';
import { AgentError, authInterceptor, runAgent } from '../../network/agent.js';
import { blockFiles, parseAgentRange, runAgentHost } from '../../network/agent-host.js';
import { NET_FAULT_ENV, parseNetFaults } from '../../network/faults.js';
import { parseAgentToken } from '../../network/formats.js';
import { loadRewardsFile } from '../../network/rewards-file.js';
import { decodeSharedNpz } from '../../network/shared-file.js';
import { FileAgentStore, nodeTransport, readJsonFile, WIRE_PROTOCOLS, type WireProtocol } from '../../network/node.js';
import { backendChoice, int, oneOf, printJson } from '../flags.js';
import { addMemoryBudgetFlag } from '../mdp-flags.js';

interface AgentFlags {
  server: string;
  agent?: string;
  agents?: string;
  dir?: string;
  stateDir?: string;
  workers?: string;
  rewards?: string;
  tokenFile?: string;
  backend?: string;
  protocol?: string;
  http2?: boolean;
  state?: string;
  reconnect?: string;
  ca?: string;
  json?: boolean;
}

export function agentCommand(program: Command): void {
  addMemoryBudgetFlag(program
    .command('agent')
    .description(
      'one agent of a federation across machines: joins the aggregator (fedpg serve), receives the shared MDP and the settings, and trains on its own reward table, which never leaves it (only Delta_i, g_i and the scalar J_i do)',
    )
    .requiredOption('--server <url>', 'the aggregator, e.g. http://10.0.0.5:7440')
    .option('--agent <I>', 'this agent\'s index (or --agents I-J)')
    .option('--rewards <file>', 'this agent\'s fedpg-rewards/2 file, JSON or .npz (with --agent)')
    .option('--token-file <file>', 'this agent\'s secret: {"agent": I, "token": "..."} (with --agent)')
    .option('--agents <I-J>', 'host agents I..J in this process, each with its own key, token and state (files from --dir), sharing an HTTP/2 connection per 64 agents')
    .option('--dir <dir>', 'with --agents: the directory holding rewards-I.json (or rewards-I.npz) and token-I.json (fedpg split --out)')
    .option('--state-dir <dir>', 'with --agents: keep agent I\'s state in DIR/state-I.json (as --state does for one agent)')
    .option('--workers <W>', 'with --agents: run the agents on W worker threads (contiguous blocks; default 1)')
    .option('--backend <name>', 'auto | native | wasm | js (default: $FEDPG_BACKEND, then auto)')
    .option('--protocol <p>', `${WIRE_PROTOCOLS.join(' | ')} (default connect; grpc uses HTTP/2)`)
    .option('--http2', 'Connect and gRPC-Web over HTTP/2 instead of HTTP/1.1 (always with an https:// server)')
    .option('--state <file>', 'keep the agent\'s state (random stream, memory, cursor) here after every phase, so a restarted agent continues bit for bit')
    .option('--ca <file>', 'trust this certificate (PEM) for an https:// aggregator with a self-signed or private-CA certificate')
    .option('--reconnect <ms>', 'keep retrying an unreachable aggregator this long (default 120000)')
    .option('--json', 'print a JSON summary at the end'))
    .action(async (o: AgentFlags) => {
      if (o.agents !== undefined) return hostAgents(o);
      if (o.agent === undefined) throw new UsageError('give --agent I (one agent) or --agents I-J (a block of agents)');
      for (const [flag, v] of [['--dir', o.dir], ['--state-dir', o.stateDir], ['--workers', o.workers]] as const)
        if (v !== undefined) throw new UsageError(`${flag} goes with --agents I-J, not --agent`);
      if (o.rewards === undefined || o.tokenFile === undefined) throw new UsageError('--agent needs --rewards FILE and --token-file FILE');
      const agent = int('agent', o.agent, 0)!;
      const url = serverUrl(o.server);
      const protocol: WireProtocol = oneOf('protocol', o.protocol, WIRE_PROTOCOLS) ?? 'connect';
      const reconnect = int('reconnect', o.reconnect, 0);
      const tok = parseAgentToken(readJsonFile(o.tokenFile), o.tokenFile);
      if (tok.agent !== agent) throw new InputError(`${o.tokenFile} is agent ${tok.agent}'s token, not agent ${agent}'s`);
      const rewards = loadRewardsFile(o.rewards);
      const ca = o.ca ? readTextFile(o.ca) : undefined;
      if (ca && url.protocol !== 'https:') throw new InputError('--ca needs an https:// --server');
      const backend = await loadBackend(backendChoice(o.backend));
      const faults = parseNetFaults(process.env[NET_FAULT_ENV]).agent.filter((f) => f.agent === undefined || f.agent === agent);
      const controller = new AbortController();
      const onSigint = (): void => controller.abort(new Error('interrupted (Ctrl-C)'));
      process.once('SIGINT', onSigint);
      const base = url.href.replace(/\/+$/, '');
      try {
        const summary = await runAgent({
          transport: nodeTransport(base, protocol, [authInterceptor(tok.token)], protocol === 'grpc' || !!o.http2 || url.protocol === 'https:', ca),
          agent,
          rewards,
          rewardsWhere: o.rewards,
          decodeSharedNpz,
          backend,
          client: `fedpg agent (node ${process.version}, ${protocol})`,
          faults,
          ...(o.state ? { store: new FileAgentStore(o.state) } : {}),
          ...(reconnect !== undefined ? { reconnectMs: reconnect } : {}),
          onInfo: (m) => process.stderr.write(`fedpg ${m}\n`),
          signal: controller.signal,
          exit: () => process.exit(3),
        });
        if (o.json) return printJson(summary);
        process.stdout.write(
          `agent ${agent} done (backend ${summary.backend}): ${summary.deltas} deltas and ${summary.gradients} reports accepted, ${summary.refused} refused, last J_i ${summary.lastJ ?? 'n/a'}\n`,
        );
      } catch (e) {
        if (controller.signal.aborted) throw new Error('interrupted (Ctrl-C)');
        if (e instanceof AgentError) throw new InputError(e.message);
        if (e instanceof ConnectError) throw new InputError(`the aggregator refused agent ${agent} (${e.code === undefined ? '' : codeName(e)}): ${e.rawMessage}`);
        throw e;
      } finally {
        process.removeListener('SIGINT', onSigint);
      }
    });
}

function serverUrl(server: string): URL {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new InputError(`--server must be a URL such as http://127.0.0.1:7440, got '${server}'`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InputError(`--server must be an http:// or https:// URL, got '${server}'`);
  return url;
}

/** `--agents I-J`: a block of agents in this process (on --workers threads), one shared connection each thread. */
async function hostAgents(o: AgentFlags): Promise<void> {
  for (const [flag, v] of [['--agent', o.agent], ['--rewards', o.rewards], ['--token-file', o.tokenFile], ['--state', o.state]] as const)
    if (v !== undefined) throw new UsageError(`${flag} goes with --agent I; with --agents I-J the files come from --dir (and --state-dir)`);
  if (o.dir === undefined) throw new UsageError('--agents I-J needs --dir DIR (the directory fedpg split wrote)');
  const { lo, hi } = parseAgentRange(o.agents!);
  const url = serverUrl(o.server);
  const protocol: WireProtocol = oneOf('protocol', o.protocol, WIRE_PROTOCOLS) ?? 'connect';
  const workers = int('workers', o.workers, 1) ?? 1;
  const reconnect = int('reconnect', o.reconnect, 0);
  const ca = o.ca ? readTextFile(o.ca) : undefined;
  if (ca && url.protocol !== 'https:') throw new InputError('--ca needs an https:// --server');
  if (o.stateDir) mkdirSync(o.stateDir, { recursive: true });
  const backend = await loadBackend(backendChoice(o.backend));
  const netFaults = parseNetFaults(process.env[NET_FAULT_ENV]).agent;
  const faults: Record<number, { kind: 'stall' | 'exit'; round: number }[]> = {};
  for (let i = lo; i <= hi; i++) faults[i] = netFaults.filter((f) => f.agent === undefined || f.agent === i);
  const controller = new AbortController();
  const onSigint = (): void => controller.abort(new Error('interrupted (Ctrl-C)'));
  process.once('SIGINT', onSigint);
  try {
    const summaries = await runAgentHost(
      {
        server: url.href.replace(/\/+$/, ''),
        protocol,
        // HTTP/2 sessions (one per 64 agents) carry the hosted agents' calls: over HTTP/1.1 each
        // agent's long poll would hold a connection of its own (and meet serve's per-address limit).
        http2: true,
        ...(ca ? { ca } : {}),
        agents: blockFiles(o.dir, lo, hi, o.stateDir),
        ...(reconnect !== undefined ? { reconnectMs: reconnect } : {}),
        faults,
      },
      backend.name,
      workers,
      {
        client: `fedpg agent --agents (node ${process.version}, ${protocol})`,
        onInfo: (m) => process.stderr.write(`fedpg ${m}\n`),
        signal: controller.signal,
        exit: () => process.exit(3),
      },
    );
    if (o.json) return printJson({ agents: summaries });
    const sum = (f: (s: (typeof summaries)[number]) => number): number => summaries.reduce((a, s) => a + f(s), 0);
    process.stdout.write(
      `agents ${lo}-${hi} done (backend ${backend.name}, ${workers} thread${workers > 1 ? 's' : ''}): ${sum((s) => s.deltas)} deltas and ${sum((s) => s.gradients)} reports accepted, ${sum((s) => s.refused)} refused\n`,
    );
  } catch (e) {
    if (controller.signal.aborted) throw new Error('interrupted (Ctrl-C)');
    if (e instanceof AgentError) throw new InputError(e.message);
    if (e instanceof ConnectError) throw new InputError(`the aggregator refused an agent (${e.code === undefined ? '' : codeName(e)}): ${e.rawMessage}`);
    throw e;
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}

function codeName(e: ConnectError): string {
  return ['ok', 'canceled', 'unknown', 'invalid_argument', 'deadline_exceeded', 'not_found', 'already_exists', 'permission_denied', 'resource_exhausted', 'failed_precondition', 'aborted', 'out_of_range', 'unimplemented', 'internal', 'unavailable', 'data_loss', 'unauthenticated'][e.code] ?? String(e.code);
}
