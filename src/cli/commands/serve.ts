import type { Command } from 'commander';
import { InputError } from '../../errors.js';
import { algorithmNames, algorithmOf } from '../../federation/algorithms/registry.js';
import { resolveSettings } from '../../federation/settings.js';
import { loadTheta, readTextFile } from '../../mdp/format.js';
import { NET_FAULT_ENV, parseNetFaults } from '../../network/faults.js';
import { CONNECTION_DEFAULTS, type ConnectionLimits } from '../../network/limits.js';
import { parseAggregatorTokens, sharedAgentCount } from '../../network/formats.js';
import { loadShared } from '../../network/shared-file.js';
import { addMemoryBudgetFlag } from '../mdp-flags.js';
import { readJsonFile, startAggregator } from '../../network/node.js';
import { networkRefusal } from '../../network/protocol.js';
import { int, num, printJson } from '../flags.js';
import { addSettingsFlags, settingsFromFlags, type RunFlags } from './train.js';

/** Defaults of `fedpg serve` (documented in --help and docs/NETWORK.md). */
export const SERVE_DEFAULTS = {
  host: '127.0.0.1',
  port: 7440,
  checkpoint: 'fedpg-aggregator.ckpt',
};

interface ServeFlags extends Omit<RunFlags, 'checkpoint'> {
  agents?: string;
  port?: string;
  host?: string;
  tokenFile?: string;
  quorum?: string;
  deadline?: string;
  checkpoint?: string | false;
  fresh?: boolean;
  allowOrigin?: string[];
  hold?: string;
  tlsCert?: string;
  tlsKey?: string;
  headersTimeout?: string;
  idleTimeout?: string;
  requestTimeout?: string;
  maxConnectionsPerAddress?: string;
  maxUpdateNorm?: string;
  evalEvery?: string;
}

/** setTimeout's longest delay; a longer one would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A positive number of milliseconds for a timer flag. */
function timeoutMs(flag: string, v: string | undefined): number | undefined {
  const x = int(flag, v, 1);
  if (x !== undefined && x > MAX_TIMER_MS) throw new InputError(`--${flag} must be at most ${MAX_TIMER_MS} ms, got '${v}'`);
  return x;
}

/** --max-update-norm: auto (the derived bounds), 0 (none) or one bound for deltas and reports. */
function maxNorm(v: string | undefined): { maxUpdateNorm?: { delta: number; report: number } | null } {
  if (v === undefined || v === 'auto') return {};
  const x = num('max-update-norm', v)!;
  if (x < 0) throw new InputError(`--max-update-norm must be auto, 0 or a number > 0, got '${v}'`);
  return { maxUpdateNorm: x === 0 ? null : { delta: x, report: x } };
}

/** What Ctrl-C leaves behind: with --no-checkpoint, nothing (a restart starts over). */
export function interruptedMessage(checkpoint: string | null): string {
  return checkpoint === null
    ? 'interrupted; no checkpoint was kept (--no-checkpoint): a restart starts the run over'
    : `interrupted; ${checkpoint} keeps every finished phase: the same command resumes from it`;
}

function say(msg: string): void {
  process.stderr.write(`fedpg serve: ${msg}\n`);
}

export function serveCommand(program: Command): void {
  const cmd = program
    .command('serve')
    .description(
      'the aggregator of a federation across machines: serves the round protocol (ConnectRPC: gRPC, Connect, gRPC-Web) to N agents (fedpg agent), never sees a reward table, and learns J only from the agents',
    )
    .argument('<shared>', 'a fedpg-shared/1 file, JSON or .npz (fedpg split writes one)')
    .requiredOption('--agents <N>', 'number of agents')
    .requiredOption('--token-file <file>', 'the agents\' secret tokens: {"tokens": {"0": "...", ...}} (fedpg split writes one)')
    .option('--port <P>', `TCP port; 0 picks a free one (the bound port is printed) (default ${SERVE_DEFAULTS.port})`)
    .option('--host <addr>', `address to listen on; 0.0.0.0 or :: to accept other machines (default ${SERVE_DEFAULTS.host}: this machine only)`)
    .option('--quorum <Q>', 'close a phase with the updates it has once Q arrived and the deadline passed (default: every agent; needs --deadline)')
    .option('--deadline <ms>', 'per-phase deadline in milliseconds (default: none, phases wait for every agent)')
    .option('--checkpoint <file>', `checkpoint written at every phase change; an existing one of the same run is resumed (default ${SERVE_DEFAULTS.checkpoint})`)
    .option('--no-checkpoint', 'do not checkpoint (a restart then starts over)')
    .option('--fresh', 'ignore an existing checkpoint and start the run over')
    .option('--allow-origin <origin...>', 'page origins allowed to call from a browser (CORS), e.g. http://localhost:5173, or * for any')
    .option('--tls-cert <file>', 'serve HTTPS with this certificate chain (PEM); agents then use an https:// URL')
    .option('--tls-key <file>', 'the private key (PEM) of --tls-cert')
    .option('--eval-every <R>', 'agents report J_i every R rounds and after the last (other rounds log J null; default 1)')
    .option('--max-update-norm <x>', "refuse a delta (and a report) whose Euclidean norm exceeds x; default auto: twice the largest an honest agent can send (docs/NETWORK.md), 0: no limit")
    .option('--hold <ms>', 'how long a poll waits for the next phase before the agent polls again (default 15000)')
    .option('--headers-timeout <ms>', `close a new connection that has not sent a complete request (TLS handshake included) within this (default ${CONNECTION_DEFAULTS.headersTimeoutMs})`)
    .option('--idle-timeout <ms>', `close a connection with no request in flight after this; a long poll is a request in flight (default ${CONNECTION_DEFAULTS.idleTimeoutMs})`)
    .option('--request-timeout <ms>', `close a request whose body has not arrived within this after its headers, plus 1 s per MiB of the largest request (8 S*A + 1024 bytes); answers may take longer (default ${CONNECTION_DEFAULTS.requestTimeoutMs})`)
    .option('--max-connections-per-address <N>', `connections one remote address (an IPv6 /64) may hold open at once (default ${CONNECTION_DEFAULTS.maxConnectionsPerAddress})`);
  addMemoryBudgetFlag(cmd);
  // train's settings flags (its runtime flags, --workers and its checkpoints, do not apply here).
  addSettingsFlags(
    cmd,
    algorithmNames().filter((a) => algorithmOf(a).topology === 'server'),
  )
    .option('--backend <name>', 'not for serve: the agents compute (fedpg agent --backend)')
    .option('--out <file>', 'round log (JSONL): a header line, then one record per finished round')
    .option('--json', 'print one JSON object (the result)')
    .action(async (sharedFile: string, o: ServeFlags) => {
      if (o.backend !== undefined) throw new InputError('fedpg serve computes no gradient: choose the backend on each agent (fedpg agent --backend)');
      const shared = loadShared(sharedFile);
      const agents = int('agents', o.agents, 1)!;
      const fixed = sharedAgentCount(shared);
      if (fixed !== null && fixed !== agents) throw new InputError(`${sharedFile} has ${fixed} per-agent transition kernels, but --agents is ${agents}`);
      if ((o as RunFlags).seed !== undefined)
        throw new InputError("fedpg serve takes no --seed: the agents' streams come from their own keys (fedpg split; split --seed S reproduces train --seed S); use --server-seed Z for the aggregator's own draws");
      const settings = resolveSettings(settingsFromFlags(o as RunFlags));
      const refusal = networkRefusal(settings);
      if (refusal) throw new InputError(refusal);
      const tokens = parseAggregatorTokens(readJsonFile(o.tokenFile!), agents, o.tokenFile);
      const quorum = int('quorum', o.quorum, 1);
      const deadline = int('deadline', o.deadline, 1);
      if (quorum !== undefined && quorum > agents) throw new InputError(`--quorum must be at most --agents (${agents}), got ${quorum}`);
      if (quorum !== undefined && quorum < agents && deadline === undefined) throw new InputError('--quorum below --agents needs --deadline: a phase closes with a quorum only once its deadline passed');
      const port = int('port', o.port, 0) ?? SERVE_DEFAULTS.port;
      if (port > 65535) throw new InputError(`--port must be at most 65535, got ${port}`);
      const hold = int('hold', o.hold, 1);
      const limits: Partial<ConnectionLimits> = {};
      const headersTimeout = timeoutMs('headers-timeout', o.headersTimeout);
      if (headersTimeout !== undefined) limits.headersTimeoutMs = headersTimeout;
      const idleTimeout = timeoutMs('idle-timeout', o.idleTimeout);
      if (idleTimeout !== undefined) limits.idleTimeoutMs = idleTimeout;
      const requestTimeout = timeoutMs('request-timeout', o.requestTimeout);
      if (requestTimeout !== undefined) limits.requestTimeoutMs = requestTimeout;
      const perAddress = int('max-connections-per-address', o.maxConnectionsPerAddress, 1);
      if (perAddress !== undefined) limits.maxConnectionsPerAddress = perAddress;
      const theta0 = o.theta0 ? loadTheta(o.theta0, shared.states, shared.actions) : new Float64Array(shared.states * shared.actions);
      if (!!o.tlsCert !== !!o.tlsKey) throw new InputError('--tls-cert and --tls-key go together');
      const tls = o.tlsCert && o.tlsKey ? { cert: readTextFile(o.tlsCert), key: readTextFile(o.tlsKey) } : undefined;
      const faults = parseNetFaults(process.env[NET_FAULT_ENV]);
      const checkpoint = o.checkpoint === false ? null : (o.checkpoint ?? SERVE_DEFAULTS.checkpoint);
      const running = await startAggregator({
        shared,
        agents,
        settings,
        theta0,
        tokens,
        host: o.host ?? SERVE_DEFAULTS.host,
        port,
        ...(quorum !== undefined ? { quorum } : {}),
        deadlineMs: deadline ?? null,
        checkpoint,
        fresh: !!o.fresh,
        allowOrigins: o.allowOrigin ?? [],
        ...(tls ? { tls } : {}),
        ...(o.out ? { out: o.out } : {}),
        ...(hold !== undefined ? { holdMs: hold } : {}),
        limits,
        ...(faults.crash ? { crash: faults.crash } : {}),
        ...maxNorm(o.maxUpdateNorm),
        ...(o.evalEvery !== undefined ? { evalEvery: int('eval-every', o.evalEvery, 1)! } : {}),
        onInfo: say,
        onRecord: (r) => {
          if (!o.json) say(`round ${r.round}/${settings.rounds}: J ${r.J === null ? 'n/a (not every agent reported)' : r.J} (${r.deltas} deltas, ${r.gradients} reports)`);
        },
      });
      const onSigint = (): void => {
        say(interruptedMessage(checkpoint));
        void running.close().then(() => process.exit(130));
      };
      // Before the announcement: a Ctrl-C right after "listening" must find the handler.
      process.once('SIGINT', onSigint);
      process.once('SIGTERM', onSigint);
      if (running.over) say(`nothing to serve: ${checkpoint} holds this run finished; its result follows (--fresh starts it over)`);
      else say(`listening on ${running.url} (port ${running.port}) for ${agents} agents: ${settings.algorithm}, ${settings.rounds} rounds`);
      try {
        const result = await running.result;
        if (o.json) return printJson(result);
        const J = result.J;
        const lines = [
          `${result.algorithm} over the network (${agents} agents, backends ${result.agentBackends.map((b) => b ?? '?').join(', ')}, ${result.gradient} gradients)`,
          `J before: ${J[0] ?? 'n/a'}`,
          `J after ${result.records.length} rounds: ${J[J.length - 1] ?? 'n/a'}`,
        ];
        const last = result.records[result.records.length - 1];
        if (last) lines.push(`trajectories ${last.trajectories}, steps ${last.steps}, bytes ${last.bytes}`);
        if (o.out) lines.push(`round log: ${o.out}`);
        process.stdout.write(lines.join('\n') + '\n');
      } finally {
        process.removeListener('SIGINT', onSigint);
        process.removeListener('SIGTERM', onSigint);
      }
    });
}
