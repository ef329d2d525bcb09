import { create } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { InputError } from '../errors.js';
import { euclidean, meanOf, parseAggregation, ruleProblem } from '../federation/aggregate.js';
import type { AlgorithmPlugin } from '../federation/algorithms/types.js';
import { updateBounds } from '../federation/bounds.js';
import { ServerCore, type ServerState } from '../federation/server.js';
import type { TrainSettings } from '../federation/settings.js';
import {
  PullRoundResponseSchema,
  RegisterResponseSchema,
  type PullRoundRequest,
  type PullRoundResponse,
  type PushDeltaRequest,
  type PushGradientRequest,
  type RegisterResponse,
} from './gen/fedpg/v1/federation_pb.js';
import { evaluatedRound, Phase, Status, phaseKey, phaseName, settingsToProto } from './protocol.js';
import { maxRequestBytes } from './message-limits.js';
import { packF64, unpackF64, WireError } from './wire.js';

/**
 * The aggregator's state machine: the algorithm's server, phase by phase, behind the four RPCs.
 * It holds a ServerCore (theta_bar, the algorithm's server vectors, every agent's last accepted
 * report, the server's own stream for participation draws), the same object the in-process loop
 * uses, and drives the algorithm only through its plug-in; it never sees a reward table, and
 * learns J(theta_bar) only as the mean of the agents' J_i.
 *
 * Closing a phase. A phase closes as soon as every eligible agent's update arrived, or once
 * `quorum` updates arrived and the phase's deadline passed (a phase without a deadline waits for
 * everyone). Closing a LOCAL phase applies Eq. 7 over the n deltas it holds, in agent order:
 * theta_bar += (alpha_g / n) sum_i Delta_i. Closing a GRADIENT phase stores each arrived g_i
 * as that agent's memory and recomputes g as the mean, in agent order, of every memory sample
 * held (one per agent that ever reported one). With everyone present this is exactly train.ts.
 *
 * Fast-FedPG's memory with missing agents. The correction g - g_i telescopes over the agents
 * only if g is the mean of the very samples g_i the agents subtract. So the aggregator keeps, per
 * agent, the last sample it accepted, and g is always the mean of exactly those; an agent that
 * missed a GRADIENT phase keeps (and, if it lost it, is sent back) its older sample, taken at an
 * older theta_bar (a SAGA-like stale control variate), and takes part in the next LOCAL phase
 * with it. An agent whose sample was never accepted sits that LOCAL phase out. A late sample is
 * refused, so the agent keeps its previous one: agent and aggregator never disagree on g_i.
 *
 * Durability. Every phase change is saved (`save`, atomic) before any agent hears of it, so an
 * agent is never ahead of what the aggregator can restart from. Updates of an open phase live in
 * memory only; after a restart the aggregator answers STATUS_RESEND and agents push the same
 * bytes again (their random streams do not move), so a restarted run is bit-identical.
 */

export type PhaseKind = 'local' | 'gradient' | 'done';

/** One line of the aggregator's round log: train.ts's record with participation counts. */
export interface NetRecord {
  round: number;
  /** J(theta_bar) after the round: the mean of the J_i in agent order; null unless every agent reported. */
  J: number | null;
  /** Always null: the aggregator has no J* (it never sees a reward table). */
  gap: null;
  /** Always null: the aggregator never sees grad J. */
  gradNormSq: null;
  trajectories: number;
  steps: number;
  bytes: number;
  /** Deltas aggregated in the round's LOCAL phase (N when nobody was missing). */
  deltas: number;
  /** J_i (and g_i) reports received in the round's GRADIENT phase. */
  gradients: number;
  /** The agents drawn for the round, when --participation < 1. */
  participants?: number[];
  /** Ditto: (1/N) sum_i J_i(v_i) from the agents' reports; null unless every agent reported. */
  personalJ?: number | null;
  /** Differential privacy: the largest epsilon over agents so far (null: infinite). */
  dpEpsilon?: number | null;
}

/** What a checkpoint holds: everything the aggregator needs to continue bit for bit. */
export interface AggregatorSnapshot {
  runId: string;
  /** The open phase (or 'done' after round `round`). */
  round: number;
  phase: PhaseKind;
  /** theta_bar, the server vectors, every agent's last accepted report, the server's stream, the costs. */
  server: ServerState;
  /** The round of each agent's last accepted report (Fast-FedPG: its memory sample). */
  memoryRound: number[];
  /** The open round's participants (ascending). */
  participants: number[];
  /** J before round 1 (null if some agent did not report), then after every finished round. */
  J: (number | null)[];
  records: NetRecord[];
  /** The agents whose update the last closed phase included (for idempotent re-pushes). */
  lastClosed: { key: number; agents: number[] } | null;
  /** Deltas the open round's LOCAL phase aggregated (for its record). */
  roundDeltas: number;
}

/** A fault injected into the aggregator (tests): it is killed after accepting an update. */
export interface AggregatorCrash {
  round: number;
  phase: 'local' | 'gradient';
  /** Crash after accepting this many updates of the phase (default 1). */
  after: number;
}

export interface AggregatorOptions {
  runId: string;
  agents: number;
  states: number;
  actions: number;
  settings: TrainSettings;
  /** The fedpg-shared/1 document sent to every agent. */
  sharedMdp: Uint8Array;
  theta0: Float64Array;
  /** Updates needed to close a phase once its deadline passed (default: every agent). */
  quorum?: number;
  /** Per-phase deadline in milliseconds; null: phases wait for every agent. */
  deadlineMs?: number | null;
  /** How long a PullRound waits for news before answering STATUS_WAIT (default 15 s). */
  holdMs?: number;
  /** After the last phase, how long to wait for every agent to hear DONE (default 10 s). */
  lingerMs?: number;
  /** The discount of the shared MDP (J_i lies in [0, 1 / (1 - gamma)]). */
  gamma: number;
  /**
   * The largest norm accepted for a delta and for a report (default: updateBounds, derived from
   * the problem's scales; null: no norm check). Finite scalars and vectors are always required.
   */
  maxUpdateNorm?: { delta: number; report: number } | null;
  /** The evaluation cadence R (default 1): agents report J_i only on rounds t % R == 0, the last and round 0. */
  evalEvery?: number;
  /** Resume from this snapshot (a checkpoint of the same run). */
  resume?: AggregatorSnapshot;
  /** Called with every new state before agents hear of it; must be durable when it returns. */
  save?: (s: AggregatorSnapshot) => void;
  onHeader?: (J0: number | null) => void;
  onRecord?: (r: NetRecord) => void;
  onInfo?: (message: string) => void;
  crash?: { at: AggregatorCrash; kill: () => void };
}

interface DeltaUpdate {
  bytes: Uint8Array;
  delta: Float64Array;
}

interface GradientUpdate {
  bytes: Uint8Array;
  gradient: Float64Array | null;
  J: number;
  personalJ: number | null;
}

function kindOf(p: PhaseKind): Phase {
  return p === 'local' ? Phase.LOCAL : p === 'gradient' ? Phase.GRADIENT : Phase.DONE;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class Aggregator {
  readonly N: number;
  readonly SA: number;
  readonly quorum: number;
  readonly deadlineMs: number | null;
  private readonly s: TrainSettings;
  private readonly alg: AlgorithmPlugin;
  private readonly core: ServerCore;
  private readonly ditto: boolean;
  private readonly holdMs: number;
  private readonly bounds: { delta: number; report: number } | null;
  private readonly maxObjective: number;
  private readonly lingerMs: number;

  private round: number;
  private phase: PhaseKind;
  private readonly memoryRound: number[];
  private participants: number[] = [];
  /** drawn[i] = 1 when agent i is among `participants` (a lookup per message, not a scan). */
  private readonly drawn: Uint8Array;
  /** The open phase's number of eligible agents (fixed while it is open); null: not counted yet. */
  private eligibleCount: number | null = null;
  private readonly J: (number | null)[];
  private readonly records: NetRecord[];
  private lastClosed: { key: number; agents: number[] } | null;
  /** lastClosed's agents as a set (a re-push is checked on every push). */
  private lastClosedSet = new Set<number>();
  private roundDeltas: number;

  /** The open phase's updates, by agent. */
  private received = new Map<number, DeltaUpdate | GradientUpdate>();
  private deadlineTimer: ReturnType<typeof setTimeout> | null = null;
  private deadlinePassed = false;
  private deadlineAt = 0;
  /** A phase opened at (re)start arms its deadline only once `quorum` agents were heard from. */
  private armed: boolean;
  private readonly registered = new Set<number>();
  /** Agents heard from since this aggregator started (any authenticated call). */
  private readonly seen = new Set<number>();
  private readonly backends: (string | null)[];
  private readonly sawDone = new Set<number>();
  private waiters = new Set<() => void>();
  private packedTheta: Uint8Array | null = null;
  private packedDown: Uint8Array[] | null = null;
  private lingerTimer: ReturnType<typeof setTimeout> | null = null;
  private finishedResolve!: () => void;
  /** Resolves when the run is over and every agent heard so (or the linger time ran out). */
  readonly finished: Promise<void>;
  private stopped = false;

  constructor(private readonly o: AggregatorOptions) {
    this.N = o.agents;
    this.SA = o.states * o.actions;
    this.s = o.settings;
    this.quorum = o.quorum ?? o.agents;
    this.deadlineMs = o.deadlineMs ?? null;
    this.holdMs = o.holdMs ?? 15_000;
    this.lingerMs = o.lingerMs ?? 10_000;
    if (!Number.isSafeInteger(this.quorum) || this.quorum < 1 || this.quorum > this.N) throw new RangeError(`quorum must be an integer in [1, ${this.N}], got ${this.quorum}`);
    if (this.quorum < this.N && this.deadlineMs === null) throw new RangeError('a quorum below the number of agents needs a deadline');
    const problem = ruleProblem(parseAggregation(o.settings.aggregation), this.quorum);
    if (problem) throw new InputError(`--aggregation ${o.settings.aggregation} cannot apply with a quorum of ${this.quorum}: ${problem}`);
    this.backends = new Array<string | null>(this.N).fill(null);
    this.drawn = new Uint8Array(this.N);
    this.finished = new Promise((r) => (this.finishedResolve = r));
    const r = o.resume;
    this.core = new ServerCore(o.settings, this.N, o.theta0, r?.server);
    this.alg = this.core.algorithm;
    this.ditto = o.settings.personalize !== 'none';
    const derived = updateBounds(o.settings, o.gamma, o.states, o.actions);
    this.bounds = o.maxUpdateNorm === undefined ? { delta: derived.delta, report: derived.report } : o.maxUpdateNorm;
    // J_i lies in [0, 1/(1-gamma)]; a relative slack for the agents' round-off.
    this.maxObjective = derived.objective * (1 + 1e-9);
    if (r) {
      if (r.runId !== o.runId) throw new RangeError('the snapshot belongs to another run');
      this.round = r.round;
      this.phase = r.phase;
      this.memoryRound = [...r.memoryRound];
      this.setParticipants([...r.participants]);
      this.J = [...r.J];
      this.records = r.records.map((x) => ({ ...x }));
      this.lastClosed = r.lastClosed;
      this.lastClosedSet = new Set(r.lastClosed?.agents ?? []);
      this.roundDeltas = r.roundDeltas;
      if (this.round > this.s.rounds) throw new RangeError(`the snapshot is at round ${this.round}, beyond this run's ${this.s.rounds} rounds`);
      // A finished run given more rounds goes on.
      if (this.phase === 'done' && this.round < this.s.rounds) this.openLocal(this.round + 1);
    } else {
      this.round = 0;
      this.phase = 'gradient';
      this.memoryRound = new Array<number>(this.N).fill(0);
      this.setParticipants(Array.from({ length: this.N }, (_, i) => i));
      this.J = [];
      this.records = [];
      this.lastClosed = null;
      this.roundDeltas = 0;
    }
    this.armed = false;
    if (this.phase === 'done') this.enterDone();
  }

  /** Opens round t's LOCAL phase: the server draws its participants. */
  private openLocal(t: number): void {
    this.round = t;
    this.phase = 'local';
    this.setParticipants(this.core.participants());
  }

  private setParticipants(ids: number[]): void {
    this.participants = ids;
    this.drawn.fill(0);
    for (const i of ids) this.drawn[i] = 1;
    this.eligibleCount = null;
  }

  /** Whether the GRADIENT phase of `round` carries a report vector. */
  private reportDue(round: number): boolean {
    return round === 0 ? this.alg.reports !== 'none' : this.alg.reports === 'every-round';
  }

  /** Whether agent i takes part in the open phase. */
  private takesPart(i: number): boolean {
    if (this.phase === 'gradient' && this.round === 0) return true;
    if (this.drawn[i] !== 1) return false;
    return this.phase !== 'local' || !this.alg.keepsReport || this.core.state.reports[i] !== null;
  }

  /** The current state (what a checkpoint stores). */
  snapshot(): AggregatorSnapshot {
    return {
      runId: this.o.runId,
      round: this.round,
      phase: this.phase,
      server: this.core.snapshot(),
      memoryRound: [...this.memoryRound],
      participants: [...this.participants],
      J: [...this.J],
      records: this.records.map((x) => ({ ...x })),
      lastClosed: this.lastClosed ? { key: this.lastClosed.key, agents: [...this.lastClosed.agents] } : null,
      roundDeltas: this.roundDeltas,
    };
  }

  get done(): boolean {
    return this.phase === 'done';
  }

  /** J before round 1, then after every finished round. */
  history(): (number | null)[] {
    return [...this.J];
  }

  allRecords(): NetRecord[] {
    return this.records.map((x) => ({ ...x }));
  }

  theta(): Float64Array {
    return this.core.thetaBar.slice();
  }

  agentBackends(): (string | null)[] {
    return [...this.backends];
  }

  /** Where the run is, for messages. */
  where(): string {
    return phaseName(this.round, kindOf(this.phase));
  }

  private info(msg: string): void {
    this.o.onInfo?.(msg);
  }

  // ---- RPCs (the caller has authenticated `agent`) ----

  register(agent: number, backend: string, client: string): RegisterResponse {
    const again = this.registered.has(agent);
    this.registered.add(agent);
    if (backend) this.backends[agent] = backend;
    this.info(`agent ${agent} ${again ? 're-registered' : 'registered'}${backend ? ` (backend ${backend}${client ? `, ${client}` : ''})` : ''} at ${this.where()}`);
    this.heard(agent);
    const m = this.alg.keepsReport ? this.core.state.reports[agent] : null;
    return create(RegisterResponseSchema, {
      runId: this.o.runId,
      agents: this.N,
      settings: settingsToProto(this.s),
      sharedMdp: this.o.sharedMdp,
      hasMemory: m !== null && m !== undefined,
      memoryRound: this.memoryRound[agent] ?? 0,
      memory: m ? packF64(m) : new Uint8Array(0),
      maxRequestBytes: this.maxRequestBytes(),
      theta0: packF64(this.o.theta0),
      evalEvery: this.o.evalEvery ?? 1,
    });
  }

  /** The largest request the aggregator needs to accept: a packed vector and a few fields (message-limits.ts). */
  maxRequestBytes(): number {
    return maxRequestBytes(this.SA);
  }

  async pull(agent: number, req: PullRoundRequest, signal?: AbortSignal): Promise<PullRoundResponse> {
    this.heard(agent);
    const until = Date.now() + this.holdMs;
    for (;;) {
      const r = this.answer(agent, req);
      if (r) return r;
      const left = until - Date.now();
      if (left <= 0 || !(await this.waitForChange(left, signal))) {
        return create(PullRoundResponseSchema, { status: Status.WAIT, runId: this.o.runId, round: this.round, phase: kindOf(this.phase) });
      }
    }
  }

  pushDelta(agent: number, req: PushDeltaRequest): number {
    this.heard(agent);
    let delta: Float64Array;
    try {
      delta = unpackF64(req.delta, this.SA, `agent ${agent}'s delta for round ${req.round}`, this.o.actions);
    } catch (e) {
      throw this.refuse(Code.InvalidArgument, e instanceof WireError ? e.message : String(e));
    }
    if (this.bounds) this.checkNorm(agent, req.round, 'delta', delta, this.bounds.delta);
    const included = this.alreadyIncluded(agent, req.round, Phase.LOCAL);
    if (included !== null) return included;
    this.checkOpen(agent, req.round, 'local', 'delta');
    if (!this.takesPart(agent)) {
      throw this.refuse(
        Code.FailedPrecondition,
        this.drawn[agent] === 1 ? `agent ${agent} has no accepted memory sample yet, so it sits out ${this.where()}` : `agent ${agent} was not drawn for ${this.where()}`,
      );
    }
    const prev = this.received.get(agent);
    if (prev) {
      if (sameBytes(prev.bytes, req.delta)) return this.received.size;
      throw this.refuse(Code.AlreadyExists, `agent ${agent} already pushed a different delta for round ${req.round}`);
    }
    this.received.set(agent, { bytes: req.delta.slice(), delta });
    return this.accepted();
  }

  pushGradient(agent: number, req: PushGradientRequest): number {
    this.heard(agent);
    let gradient: Float64Array | null = null;
    try {
      if (this.reportDue(req.round)) gradient = unpackF64(req.gradient, this.SA, `agent ${agent}'s gradient for round ${req.round}`, this.o.actions);
      else if (req.gradient.length !== 0) throw new WireError(`agent ${agent}'s gradient for round ${req.round} must be empty: ${this.s.algorithm} sends no report then`);
      const due = evaluatedRound(req.round, this.s.rounds, this.o.evalEvery ?? 1);
      if (req.noObjective && due) throw new WireError(`agent ${agent}'s report for round ${req.round} lacks J_i, which the evaluation cadence asks for`);
      if (!req.noObjective) {
        this.checkObjective(agent, req.round, 'J_i', req.objective);
        if (req.hasPersonal) this.checkObjective(agent, req.round, 'J_i(v_i)', req.personalObjective);
      }
      if (gradient && this.bounds) this.checkNorm(agent, req.round, 'gradient', gradient, this.bounds.report);
      if (this.ditto && !req.noObjective && (!req.hasPersonal || !Number.isFinite(req.personalObjective)))
        throw new WireError(`agent ${agent}'s report for round ${req.round} lacks a finite J_i(v_i) (the run has personal policies)`);
    } catch (e) {
      throw this.refuse(Code.InvalidArgument, e instanceof WireError ? e.message : String(e));
    }
    const included = this.alreadyIncluded(agent, req.round, Phase.GRADIENT);
    if (included !== null) return included;
    this.checkOpen(agent, req.round, 'gradient', 'gradient');
    if (!this.takesPart(agent)) throw this.refuse(Code.FailedPrecondition, `agent ${agent} was not drawn for ${this.where()}`);
    const bytes = new Uint8Array(req.gradient.length + 16);
    bytes.set(req.gradient);
    new DataView(bytes.buffer).setFloat64(req.gradient.length, req.objective, true);
    new DataView(bytes.buffer).setFloat64(req.gradient.length + 8, req.hasPersonal ? req.personalObjective : Number.NaN, true);
    const prev = this.received.get(agent);
    if (prev) {
      if (sameBytes(prev.bytes, bytes)) return this.received.size;
      throw this.refuse(Code.AlreadyExists, `agent ${agent} already pushed a different gradient for round ${req.round}`);
    }
    this.received.set(agent, { bytes, gradient, J: req.noObjective ? Number.NaN : req.objective, personalJ: req.hasPersonal && !req.noObjective ? req.personalObjective : null });
    return this.accepted();
  }

  /** Stops timers and releases every waiting poll (server shutdown). */
  stop(): void {
    this.stopped = true;
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    if (this.lingerTimer) clearTimeout(this.lingerTimer);
    this.notify();
  }

  // ---- internals ----

  private checkObjective(agent: number, round: number, what: string, v: number): void {
    if (!Number.isFinite(v) || v < 0 || v > this.maxObjective)
      throw new WireError(`agent ${agent}'s ${what} for round ${round} is ${v}, outside [0, ${this.maxObjective / (1 + 1e-9)}] (rewards in [0, 1], gamma ${this.o.gamma})`);
  }

  private checkNorm(agent: number, round: number, what: string, x: Float64Array, bound: number): void {
    const n = euclidean(x);
    if (!(n <= bound))
      throw this.refuse(Code.InvalidArgument, `agent ${agent}'s ${what} for round ${round} has norm ${n}, above the bound ${bound} an honest agent stays within (--max-update-norm)`);
  }

  private refuse(code: Code, message: string): ConnectError {
    this.info(`refused: ${message}`);
    return new ConnectError(message, code);
  }

  /** A re-push of an update the last closed phase already included (its response was lost). */
  private alreadyIncluded(agent: number, round: number, phase: Phase): number | null {
    const lc = this.lastClosed;
    if (lc && lc.key === phaseKey(round, phase) && this.lastClosedSet.has(agent)) return lc.agents.length;
    return null;
  }

  private checkOpen(agent: number, round: number, want: 'local' | 'gradient', what: string): void {
    const open = this.phase === want && this.round === round;
    if (open) return;
    const wantKey = phaseKey(round, want === 'local' ? Phase.LOCAL : Phase.GRADIENT);
    const curKey = phaseKey(this.round, kindOf(this.phase));
    if (wantKey < curKey) {
      throw this.refuse(Code.FailedPrecondition, `late ${what} from agent ${agent}: ${phaseName(round, want === 'local' ? Phase.LOCAL : Phase.GRADIENT)} is closed (the aggregator is at ${this.where()})`);
    }
    throw this.refuse(Code.FailedPrecondition, `${what} from agent ${agent} for ${phaseName(round, want === 'local' ? Phase.LOCAL : Phase.GRADIENT)}, which is not open (the aggregator is at ${this.where()})`);
  }

  /**
   * Agents taking part in the open phase. Counted once per phase: what it depends on (the phase,
   * the participants, which agents have a report) changes only when a phase closes or opens.
   */
  private eligible(): number {
    if (this.eligibleCount === null) {
      let n = 0;
      for (let i = 0; i < this.N; i++) if (this.takesPart(i)) n++;
      this.eligibleCount = n;
    }
    return this.eligibleCount;
  }

  private accepted(): number {
    const n = this.received.size;
    const c = this.o.crash;
    if (c && c.at.phase === this.phase && c.at.round === this.round && n === c.at.after) {
      this.info(`injected fault: the aggregator crashes after accepting ${n} update(s) of ${this.where()}`);
      c.kill();
    }
    this.maybeClose();
    return n;
  }

  /** An authenticated call from `agent` (agents do not register again after an aggregator restart). */
  private heard(agent: number): void {
    if (this.seen.has(agent)) return;
    this.seen.add(agent);
    this.arm();
  }

  private arm(): void {
    if (this.armed || this.phase === 'done' || this.deadlineMs === null) return;
    if (this.seen.size < this.quorum) return;
    this.armed = true;
    this.startDeadline();
  }

  private startDeadline(): void {
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.deadlinePassed = false;
    if (this.deadlineMs === null) return;
    this.deadlineAt = Date.now() + this.deadlineMs;
    this.deadlineTimer = setTimeout(() => {
      this.deadlineTimer = null;
      this.deadlinePassed = true;
      const n = this.received.size;
      if (n < this.quorum) this.info(`${this.where()}: deadline passed with ${n} of ${this.eligible()} updates; waiting for a quorum of ${this.quorum}`);
      this.maybeClose();
    }, this.deadlineMs);
  }

  private maybeClose(): void {
    if (this.phase === 'done' || this.stopped) return;
    const n = this.received.size;
    const all = n >= this.eligible();
    if (!all && !(this.deadlinePassed && n >= this.quorum)) return;
    if (!all) {
      const missing: number[] = [];
      for (let i = 0; i < this.N; i++) if (!this.received.has(i) && this.takesPart(i)) missing.push(i);
      this.info(`${this.where()} closes at its deadline with ${n} of ${this.eligible()} updates (missing: agent${missing.length > 1 ? 's' : ''} ${missing.join(', ')})`);
    }
    if (this.phase === 'local') this.closeLocal();
    else this.closeGradient();
  }

  private agentsInOrder(): number[] {
    return [...this.received.keys()].sort((a, b) => a - b);
  }

  private closeLocal(): void {
    const ids = this.agentsInOrder();
    const deltas = ids.map((i) => (this.received.get(i) as DeltaUpdate).delta);
    const before = this.core.snapshot();
    this.core.applyLocal(ids, deltas);
    // Never commit (nor checkpoint) a non-finite theta_bar: the bounds make it unreachable, this makes it certain.
    if (!this.core.thetaBar.every(Number.isFinite)) {
      this.core.restore(before);
      this.info(`${this.where()}: the deltas of agents ${ids.join(', ')} would make theta_bar non-finite; the phase stays open`);
      this.received = new Map();
      return;
    }
    this.roundDeltas = ids.length;
    this.advance(ids, 'gradient', this.round);
  }

  private closeGradient(): void {
    const ids = this.agentsInOrder();
    const got = ids.map((i) => this.received.get(i) as GradientUpdate);
    if (this.reportDue(this.round)) {
      this.core.applyReports(ids, got.map((u) => u.gradient!), this.round === 0);
      for (const i of ids) this.memoryRound[i] = this.round;
    }
    const reported = ids.length === this.N && got.every((u) => Number.isFinite(u.J));
    const J = reported ? meanOf(got.map((u) => u.J)) : null;
    const personalJ = this.ditto ? (reported ? meanOf(got.map((u) => u.personalJ!)) : null) : undefined;
    this.J.push(J);
    if (this.round > 0) {
      const c = this.core.costs();
      const rec: NetRecord = {
        round: this.round,
        J,
        gap: null,
        gradNormSq: null,
        ...c,
        deltas: this.roundDeltas,
        gradients: ids.length,
      };
      if (this.participants.length < this.N) rec.participants = [...this.participants];
      if (personalJ !== undefined) rec.personalJ = personalJ;
      const dp = this.core.dpEpsilon();
      if (dp !== undefined) rec.dpEpsilon = dp;
      this.records.push(rec);
    }
    if (this.round >= this.s.rounds) this.advance(ids, 'done', this.round);
    else this.advance(ids, 'local', this.round + 1);
  }

  /** Moves to the next phase: save, report, then tell the waiting agents. */
  private advance(included: number[], next: PhaseKind, round: number): void {
    const closedKey = phaseKey(this.round, kindOf(this.phase));
    const closedWasGradient = this.phase === 'gradient';
    const closedRound = this.round;
    this.lastClosed = { key: closedKey, agents: included };
    this.lastClosedSet = new Set(included);
    this.eligibleCount = null;
    this.received = new Map();
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = null;
    this.deadlinePassed = false;
    if (next === 'local') this.openLocal(round);
    else {
      this.round = round;
      this.phase = next;
    }
    this.packedTheta = null;
    this.packedDown = null;
    this.o.save?.(this.snapshot());
    if (closedWasGradient) {
      if (closedRound === 0) this.o.onHeader?.(this.J[0] ?? null);
      else this.o.onRecord?.(this.records[this.records.length - 1]!);
    }
    if (next === 'done') this.enterDone();
    else {
      this.armed = true;
      this.startDeadline();
    }
    this.notify();
  }

  private enterDone(): void {
    this.info(`the run is over after round ${this.round}`);
    if (this.lingerTimer) return;
    this.lingerTimer = setTimeout(() => this.finishedResolve(), this.lingerMs);
    this.checkFinished();
  }

  private checkFinished(): void {
    if (this.phase === 'done' && this.sawDone.size >= this.N) {
      if (this.lingerTimer) clearTimeout(this.lingerTimer);
      this.finishedResolve();
    }
  }

  private notify(): void {
    const w = this.waiters;
    this.waiters = new Set();
    for (const f of w) f();
  }

  private waitForChange(ms: number, signal?: AbortSignal): Promise<boolean> {
    if (this.stopped) return Promise.resolve(false);
    return new Promise((resolve) => {
      let timer: ReturnType<typeof setTimeout> | null = null;
      const done = (changed: boolean): void => {
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.waiters.delete(wake);
        resolve(changed && !this.stopped);
      };
      const wake = (): void => done(true);
      const onAbort = (): void => done(false);
      timer = setTimeout(() => done(false), ms);
      signal?.addEventListener('abort', onAbort);
      this.waiters.add(wake);
    });
  }

  /** The answer to a poll now, or null to wait for a change. */
  private answer(agent: number, req: PullRoundRequest): PullRoundResponse | null {
    const base = { runId: this.o.runId, round: this.round, phase: kindOf(this.phase) };
    if (this.phase === 'done') {
      this.sawDone.add(agent);
      this.checkFinished();
      return create(PullRoundResponseSchema, { ...base, status: Status.DONE });
    }
    if (this.stopped) return create(PullRoundResponseSchema, { ...base, status: Status.WAIT });
    const cur = phaseKey(this.round, kindOf(this.phase));
    const cursor = phaseKey(req.afterRound, req.afterPhase);
    if (cursor > cur) {
      throw new ConnectError(
        `agent ${agent} is at ${phaseName(req.afterRound, req.afterPhase)}, ahead of the aggregator (${this.where()}): the aggregator lost its state (started without its checkpoint?)`,
        Code.FailedPrecondition,
      );
    }
    if (cursor === cur) {
      if (req.pushed && !this.received.has(agent)) return create(PullRoundResponseSchema, { ...base, status: Status.RESEND });
      return null;
    }
    if (!this.takesPart(agent)) return create(PullRoundResponseSchema, { ...base, status: Status.SIT_OUT });
    this.packedTheta ??= packF64(this.core.thetaBar);
    const r = create(PullRoundResponseSchema, {
      ...base,
      status: Status.OPEN,
      thetaBar: this.packedTheta,
      deadlineMs: this.deadlineTimer ? Math.max(1, this.deadlineAt - Date.now()) : 0,
    });
    if (this.phase === 'local') {
      r.steps = this.alg.localSteps(this.s);
      this.packedDown ??= this.core.down().map(packF64);
      r.down = this.packedDown;
      if (this.alg.keepsReport) {
        const m = this.core.state.reports[agent]!;
        r.hasMemory = true;
        r.memoryRound = this.memoryRound[agent]!;
        if (!req.hasMemory || req.memoryRound !== this.memoryRound[agent]) r.memory = packF64(m);
      }
    }
    return r;
  }
}
