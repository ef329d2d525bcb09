import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from '@connectrpc/connect';
import type { Backend, Environment, Evaluation } from '../backends/types.js';
import { InputError } from '../errors.js';
import { parseJsonStrict } from '../mdp/json.js';
import { initialAgentState, LocalAgent } from '../federation/agent.js';
import { algorithmOf } from '../federation/algorithms/registry.js';
import type { TrainSettings } from '../federation/settings.js';
import type { PullRoundResponse } from './gen/fedpg/v1/federation_pb.js';
import { parseRewards, parseShared, sharedEnvironmentSpec, type SharedMdp } from './formats.js';
import { SHARED_NPZ_ENTRIES } from './message-limits.js';
import { AUTH_HEADER, evaluatedRound, bearer, FederationService, networkRefusal, Phase, phaseKey, phaseName, settingsFromProto, Status } from './protocol.js';
import { packF64, unpackF64 } from './wire.js';

/**
 * One agent of a federation across machines, over any Connect transport: Node (gRPC, Connect,
 * gRPC-Web over HTTP/1.1 or HTTP/2), a browser (connect-web over fetch), or in-process
 * (createRouterTransport). Browser-safe: no Node API.
 *
 * The agent computes exactly what LocalAgent computes in-process with the same settings and
 * stream (agentStream(seed, i)): local rounds from the theta_bar and g it pulls, memory samples
 * and J_i(theta_bar) on its own reward table. Its reward table, states, actions and rewards never
 * leave it: it sends only Delta_i, g_i (Fast-FedPG) and the scalar J_i.
 */

/** Adds the agent's bearer token to every call. */
export function authInterceptor(token: string): Interceptor {
  return (next) => async (req) => {
    req.header.set(AUTH_HEADER, bearer(token));
    return next(req);
  };
}

/** A fault injected into an agent (tests): `stall` withholds round r's delta until that round closed. */
export interface AgentFault {
  kind: 'stall' | 'exit';
  round: number;
}

/** What an agent persists between phases (fedpg agent --state), so a restarted process continues its stream. */
export interface AgentSavedState {
  runId: string;
  cursor: { round: number; phase: Phase; pushed: boolean };
  rng: number[];
  /** The agent's kept vectors (keptNames order: Fast-FedPG's memory, Ditto's v_i, ...). */
  kept: Float64Array[];
  /** Whether it holds a report the aggregator accepted (Fast-FedPG's memory), and of which round. */
  hasMemory: boolean;
  memoryRound: number;
  pending: PendingPush | null;
}

export interface AgentStore {
  load(): AgentSavedState | null;
  save(s: AgentSavedState): void;
}

/** The last update an agent pushed, kept to push the same bytes again after an aggregator restart. */
export interface PendingPush {
  round: number;
  phase: Phase;
  delta?: Uint8Array;
  gradient?: Uint8Array;
  objective?: number;
  personalObjective?: number;
  /** A round the evaluation cadence skips: no J_i is sent. */
  noObjective?: boolean;
}

/**
 * What the agents of one process share (`fedpg agent --agents`, the in-process federation): the
 * shared MDP decoded once per run and, on a shared kernel, one environment, where each agent used
 * to decode its own copy and build its own (four hosted agents took 9 GB at 10^6 states). Agents
 * of one thread call their kernels one at a time (synchronous calls), as the in-process runtime's
 * agents share one environment; an environment is disposed when its last agent is done.
 */
export class HostedRunCache {
  private run: { id: string; shared: SharedMdp } | null = null;
  private readonly envs = new Map<string, { env: Environment; users: number }>();

  /** The run's shared MDP, decoded by the first agent of the run to ask. */
  sharedMdp(runId: string, decode: () => SharedMdp): SharedMdp {
    if (this.run?.id !== runId) this.run = { id: runId, shared: decode() };
    return this.run.shared;
  }

  /** The environment of `key` (a run and a kernel), built by the first agent to ask. */
  acquire(key: string, create: () => Environment): Environment {
    let e = this.envs.get(key);
    if (!e) {
      e = { env: create(), users: 0 };
      this.envs.set(key, e);
    }
    e.users++;
    return e.env;
  }

  release(key: string): void {
    const e = this.envs.get(key);
    if (!e || --e.users > 0) return;
    this.envs.delete(key);
    e.env.dispose();
  }
}

export interface RunAgentOptions {
  transport: Transport;
  agent: number;
  /** Shared with the other agents of this process (HostedRunCache); without it the agent keeps its own. */
  cache?: HostedRunCache;
  /**
   * The agent's fedpg-rewards/2 document (parsed JSON, or the value rewards-file.ts reads from an
   * .npz); checked against the shared MDP.
   */
  rewards: unknown;
  /**
   * Reads the shared MDP the aggregator sends as .npz (above SHARED_NPZ_ENTRIES table entries;
   * JSON below). Node passes shared-file.ts decodeSharedNpz; without it such a run is refused
   * with one line (browser agents read JSON only).
   */
  decodeSharedNpz?: (bytes: Uint8Array, where: string) => SharedMdp;
  /** Where the rewards came from, for messages. */
  rewardsWhere?: string;
  backend: Backend;
  /** Sent to the aggregator's log. */
  client?: string;
  faults?: readonly AgentFault[];
  store?: AgentStore;
  /** How long to keep retrying an unreachable aggregator (default 120 s). */
  reconnectMs?: number;
  /** The long poll's client-side timeout (default 60 s; the aggregator answers within its hold time). */
  pollTimeoutMs?: number;
  onInfo?: (message: string) => void;
  /** Called with each J_i this agent reports (round, J_i). */
  onReport?: (round: number, J: number) => void;
  signal?: AbortSignal;
  /** Called by an `exit` fault: ends the process (Node) without saving. */
  exit?: () => never;
}

/** True when bytes start with a zip signature (an .npz archive; mdp/npz.ts isNpz is Node-side, this file stays browser-safe). */
function isZip(b: Uint8Array): boolean {
  return b.length >= 4 && b[0] === 0x50 && b[1] === 0x4b && b[2] === 3 && b[3] === 4;
}

/** The shared MDP from Register: JSON, or .npz for large tables (message-limits.ts). */
function decodeShared(bytes: Uint8Array, npz: RunAgentOptions['decodeSharedNpz']): SharedMdp {
  const where = 'the shared MDP from the aggregator';
  if (isZip(bytes)) {
    if (!npz) throw new AgentError(`the aggregator sent ${where} as .npz (a table of more than ${SHARED_NPZ_ENTRIES} entries), which this agent cannot read: run it with fedpg agent (Node)`);
    return npz(bytes, where);
  }
  let json: unknown;
  try {
    // The strict reader: duplicate keys, out-of-range numbers and deep nesting are refused here too.
    json = parseJsonStrict(new TextDecoder().decode(bytes), where);
  } catch (e) {
    throw new AgentError(`the aggregator sent a shared MDP that is not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  return parseShared(json, where);
}

export interface AgentSummary {
  agent: number;
  runId: string;
  backend: string;
  rounds: number;
  settings: TrainSettings;
  /** Updates the aggregator accepted. */
  deltas: number;
  gradients: number;
  /** Updates refused as late (or for a phase that had moved on). */
  refused: number;
  /** LOCAL phases sat out (no accepted memory sample yet). */
  satOut: number;
  /** Updates pushed again after the aggregator restarted. */
  resent: number;
  /** The last J_i reported. */
  lastJ: number | null;
}

/** A failure the agent cannot recover from (the CLI prints it and exits 1). */
export class AgentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgentError';
  }
}

// ResourceExhausted too: an address blocked after failed authentications (an attacker behind the
// same address) is unblocked within a minute, so an honest agent waits it out within --reconnect.
const TRANSIENT = new Set([Code.Unavailable, Code.Unknown, Code.Internal, Code.Aborted, Code.DeadlineExceeded, Code.Canceled, Code.ResourceExhausted]);

/** A TLS verification failure (not worth retrying), or null. */
function tlsProblem(e: ConnectError): string | null {
  for (let c: unknown = e.cause, depth = 0; c && depth < 4; c = (c as { cause?: unknown }).cause, depth++) {
    const code = (c as { code?: unknown }).code;
    if (typeof code === 'string' && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ERR_SSL/.test(code)) return `${code}: ${(c as Error).message ?? ''}`.trim();
  }
  return /self[- ]signed certificate|unable to verify the first certificate|certificate has expired|altnames/i.test(e.rawMessage) ? e.rawMessage : null;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done);
  });
}

export async function runAgent(o: RunAgentOptions): Promise<AgentSummary> {
  const client: Client<typeof FederationService> = createClient(FederationService, o.transport);
  const info = (m: string): void => o.onInfo?.(`agent ${o.agent}: ${m}`);
  const reconnectMs = o.reconnectMs ?? 120_000;
  const pollTimeoutMs = o.pollTimeoutMs ?? 60_000;
  const signal = o.signal;

  /** A call, retried while the aggregator is unreachable (restarting) for up to reconnectMs. */
  async function call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    let since: number | null = null;
    let wait = 100;
    for (;;) {
      signal?.throwIfAborted();
      try {
        const r = await fn();
        if (since !== null) info(`the aggregator is back (${what})`);
        return r;
      } catch (e) {
        const ce = ConnectError.from(e);
        if (signal?.aborted) throw signal.reason;
        const tls = tlsProblem(ce);
        if (tls) throw new AgentError(`${what}: cannot verify the aggregator's TLS certificate (${tls}); pass its certificate or CA with --ca FILE`);
        if (!TRANSIENT.has(ce.code)) throw ce;
        if (since === null) {
          since = Date.now();
          info(`${what}: the aggregator is unreachable (${ce.rawMessage}); retrying for up to ${Math.round(reconnectMs / 1000)} s`);
        } else if (Date.now() - since > reconnectMs) {
          throw new AgentError(`the aggregator has been unreachable for ${Math.round((Date.now() - since) / 1000)} s (${what}: ${ce.rawMessage})`);
        }
        await sleep(wait, signal);
        wait = Math.min(2 * wait, 2000);
      }
    }
  }

  const reg = await call('Register', () => client.register({ agent: o.agent, backend: o.backend.name, client: o.client ?? '' }));
  const runId = reg.runId;
  // An agent alone keeps a cache of its own (released, so disposed, at its end).
  const cache = o.cache ?? new HostedRunCache();
  const shared = cache.sharedMdp(runId, () => decodeShared(reg.sharedMdp, o.decodeSharedNpz));
  // The encoded MDP (216 MB at 10^6 states) is not needed past here; `reg` lives as long as the run.
  reg.sharedMdp = new Uint8Array(0);
  if (!reg.settings) throw new AgentError('the aggregator sent no run settings');
  let settings: TrainSettings;
  try {
    settings = settingsFromProto(reg.settings);
  } catch (e) {
    throw new AgentError(`the aggregator's run settings are not ones this agent can run: ${e instanceof Error ? e.message : String(e)}`);
  }
  const refusal = networkRefusal(settings);
  if (refusal) throw new AgentError(`the aggregator runs settings a federation cannot run: ${refusal}`);
  const algorithm = algorithmOf(settings.algorithm);
  const S = shared.states;
  const A = shared.actions;
  const SA = S * A;
  const { agent: rewardsAgent, reward, stream } = parseRewards(o.rewards, S, A, o.rewardsWhere ?? 'rewards');
  if (rewardsAgent !== o.agent) throw new InputError(`${o.rewardsWhere ?? 'rewards'}: it is agent ${rewardsAgent}'s reward table, not agent ${o.agent}'s`);
  const spec = sharedEnvironmentSpec(shared, o.agent);
  const envKey = `${runId}/${shared.kernels.length === 1 ? 'shared' : o.agent}`;
  const env: Environment = cache.acquire(envKey, () => o.backend.createEnvironment(spec));
  try {
    const memoryMode = algorithm.keepsReport !== undefined;
    const stored = o.store?.load() ?? null;
    if (stored && stored.runId !== runId) throw new InputError(`the agent's state file belongs to another run (${stored.runId}, the aggregator runs ${runId}); delete it to join this run`);
    // The stream comes from the agent's private key, which the aggregator never sees.
    const fresh = initialAgentState(algorithm, settings, stream, unpackF64(reg.theta0.length ? reg.theta0 : new Uint8Array(8 * SA), SA, 'theta0 from the aggregator'));
    const state = stored ? { rng: Uint32Array.from(stored.rng), kept: stored.kept } : fresh;
    if (state.kept.length !== fresh.kept.length) throw new InputError(`the agent's state file keeps ${state.kept.length} vectors, ${algorithm.name} needs ${fresh.kept.length}; delete it to join this run`);
    const la = new LocalAgent(o.agent, env, reward, state, algorithm, settings);
    let hasMemory = stored ? stored.hasMemory : reg.hasMemory;
    if (!stored && reg.hasMemory && memoryMode) la.kept(algorithm.keepsReport!).set(unpackF64(reg.memory, SA, 'the memory sample from the aggregator'));
    let memoryRound = stored ? stored.memoryRound : reg.memoryRound;
    let cursor = stored ? { ...stored.cursor } : { round: 0, phase: Phase.UNSPECIFIED, pushed: false };
    let pending: PendingPush | null = stored?.pending ?? null;
    if (stored) info(`resuming from its state file at ${phaseName(cursor.round, cursor.phase)}`);
    const ev: Evaluation = { J: new Float64Array(1), V: new Float64Array(S), Q: new Float64Array(SA), grad: new Float64Array(SA), occupancy: new Float64Array(S) };
    const out = new Float64Array(SA);
    const summary: AgentSummary = { agent: o.agent, runId, backend: o.backend.name, rounds: 0, settings, deltas: 0, gradients: 0, refused: 0, satOut: 0, resent: 0, lastJ: null };
    const personal = settings.personalize !== 'none';

    const save = (): void => {
      o.store?.save({ runId, cursor: { ...cursor }, rng: Array.from(la.state.rng), kept: la.state.kept.map((k) => k.slice()), hasMemory, memoryRound, pending });
    };

    const pull = (): Promise<PullRoundResponse> =>
      call('PullRound', () =>
        client.pullRound(
          { agent: o.agent, afterRound: cursor.round, afterPhase: cursor.phase, pushed: cursor.pushed, hasMemory, memoryRound },
          { timeoutMs: pollTimeoutMs, ...(signal ? { signal } : {}) },
        ),
      );

    /** Pushes `pending`; false when the aggregator refused it because its phase had moved on. */
    const push = async (p: PendingPush): Promise<boolean> => {
      try {
        if (p.phase === Phase.LOCAL) await call('PushDelta', () => client.pushDelta({ agent: o.agent, round: p.round, delta: p.delta! }));
        else
          await call('PushGradient', () =>
            client.pushGradient({
              agent: o.agent,
              round: p.round,
              gradient: p.gradient!,
              ...(p.noObjective ? { noObjective: true } : { objective: p.objective! }),
              ...(p.personalObjective !== undefined ? { hasPersonal: true, personalObjective: p.personalObjective } : {}),
            }),
          );
        return true;
      } catch (e) {
        if (e instanceof ConnectError && e.code === Code.FailedPrecondition) {
          info(`the aggregator refused its update for ${phaseName(p.round, p.phase)}: ${e.rawMessage}`);
          summary.refused++;
          return false;
        }
        throw e;
      }
    };

    let next: PullRoundResponse | null = null;
    for (;;) {
      const r: PullRoundResponse = next ?? (await pull());
      next = null;
      if (r.runId !== runId) throw new AgentError(`the aggregator now runs another run (${r.runId}, this agent joined ${runId}); stopping`);
      switch (r.status) {
        case Status.WAIT:
          continue;
        case Status.DONE:
          info('the run is over');
          return summary;
        case Status.RESEND: {
          if (!pending || phaseKey(pending.round, pending.phase) !== phaseKey(r.round, r.phase)) {
            throw new AgentError(`the aggregator asks again for the update of ${phaseName(r.round, r.phase)}, which this agent no longer holds`);
          }
          info(`pushing its update for ${phaseName(r.round, r.phase)} again (the aggregator restarted)`);
          summary.resent++;
          cursor.pushed = await push(pending);
          save();
          continue;
        }
        case Status.SIT_OUT:
          info(`sits out ${phaseName(r.round, r.phase)} (not drawn, or the aggregator holds no memory sample of it yet)`);
          summary.satOut++;
          cursor = { round: r.round, phase: r.phase, pushed: false };
          save();
          continue;
        case Status.OPEN:
          break;
        default:
          throw new AgentError(`the aggregator answered with an unknown status ${String(r.status)}`);
      }
      const theta = unpackF64(r.thetaBar, SA, 'theta_bar from the aggregator', A);
      if (r.phase === Phase.LOCAL) {
        if (r.down.length !== algorithm.down.length) throw new AgentError(`the aggregator sent ${r.down.length} vectors with theta_bar, ${algorithm.name} needs ${algorithm.down.length}`);
        const down = r.down.map((d, k) => unpackF64(d, SA, `down vector ${k} (${algorithm.down[k]}) from the aggregator`, A));
        if (memoryMode) {
          if (r.memory.length > 0) {
            la.kept(algorithm.keepsReport!).set(unpackF64(r.memory, SA, 'the memory sample from the aggregator', A));
            hasMemory = true;
            memoryRound = r.memoryRound;
            info(`took back its memory sample of round ${memoryRound} from the aggregator`);
          } else if (!hasMemory || memoryRound !== r.memoryRound) {
            throw new AgentError(`its memory sample (round ${memoryRound}) differs from the aggregator's (round ${r.memoryRound})`);
          }
        }
        const fault = o.faults?.find((f) => f.round === r.round);
        if (fault?.kind === 'exit') {
          info(`injected fault: exits at round ${r.round}`);
          (o.exit ?? (() => { throw new AgentError('injected exit'); }))();
        }
        la.localPhase(theta, down, out);
        pending = { round: r.round, phase: Phase.LOCAL, delta: packF64(out) };
        if (fault?.kind === 'stall') {
          info(`injected fault: stalls, withholding its delta for round ${r.round} until that round closed`);
          cursor = { round: r.round, phase: Phase.LOCAL, pushed: false };
          let later: PullRoundResponse;
          do later = await pull();
          while (later.status === Status.WAIT);
          next = later;
        }
        const ok = await push(pending);
        if (ok) summary.deltas++;
        cursor = { round: r.round, phase: Phase.LOCAL, pushed: ok };
      } else if (r.phase === Phase.GRADIENT) {
        const evaluate = evaluatedRound(r.round, settings.rounds, reg.evalEvery);
        let J = Number.NaN;
        if (evaluate) {
          env.evaluate(theta, reward, ev);
          J = ev.J[0]!;
        }
        let personalObjective: number | undefined;
        if (personal && evaluate) {
          env.evaluate(la.kept('personal'), reward, ev);
          personalObjective = ev.J[0]!;
        }
        let gradient: Uint8Array = new Uint8Array(0);
        const saved = la.state.kept.map((k) => k.slice());
        const rngSaved = la.state.rng.slice();
        const due = r.round === 0 ? algorithm.reports !== 'none' : algorithm.reports === 'every-round';
        if (due) {
          la.reportPhase(theta, out);
          gradient = packF64(out);
        }
        pending = { round: r.round, phase: Phase.GRADIENT, gradient, objective: J, ...(personalObjective !== undefined ? { personalObjective } : {}) };
        if (!evaluate) pending.noObjective = true;
        const ok = await push(pending);
        if (ok) {
          summary.gradients++;
          if (evaluate) summary.lastJ = J;
          summary.rounds = r.round;
          if (due && memoryMode) {
            hasMemory = true;
            memoryRound = r.round;
          }
          if (evaluate) o.onReport?.(r.round, J);
        } else if (due) {
          // Refused: the aggregator keeps the previous report, so the agent keeps its previous memory.
          saved.forEach((k, j) => la.state.kept[j]!.set(k));
          void rngSaved;
        }
        cursor = { round: r.round, phase: Phase.GRADIENT, pushed: ok };
      } else {
        throw new AgentError(`the aggregator opened an unknown phase ${String(r.phase)}`);
      }
      save();
    }
  } finally {
    cache.release(envKey);
  }
}
