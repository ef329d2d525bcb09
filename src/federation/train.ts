import type { Backend, BackendChoice, Environment } from '../backends/types.js';
import { loadBackend } from '../backends/select.js';
import { InputError } from '../errors.js';
import type { Mdp } from '../mdp/model.js';
import { environmentSpec } from '../mdp/model.js';
import { agentStream } from '../rng.js';
import { yieldToEventLoop } from '../util/yield.js';
import { initialAgentState, keptNames, LocalAgent, type AgentState } from './agent.js';
import { meanInto } from './aggregate.js';
import { mixParameters, mixTrackers, npgAlpha } from './algorithms/fednpg.js';
import { algorithmOf, checkAgainstAgents } from './algorithms/registry.js';
import { mixingMatrix, parseTopology } from './topology.js';
import type { AlgorithmPlugin } from './algorithms/types.js';
// Checkpoints and worker threads are Node-only: loaded on demand, so the browser entry (which
// imports this module) pulls in neither fs, crypto nor worker_threads.
import type { CheckpointState, RunIdentity } from './checkpoint.js';
import { combineScores, Evaluator, scoreFromGradSum, type PolicyScore } from './evaluator.js';
import { resolveFaults, type FaultSpec } from './faults.js';
import { evalCadence, evaluatedRound } from './cadence.js';
import { drawParticipants } from './participation.js';
import { InProcessPool, type AgentPool, type RoundRunner } from './pool.js';
import { ServerCore, type Costs } from './server.js';
import { refuseUnknownKeys, resolveSettings, type TrainSettings } from './settings.js';
import type { WorkersChoice } from './workers/plan.js';

type CheckpointIO = typeof import('./checkpoint.js');

/** One line of the round log. Rounds count from 1; J and gap are after the round, gradNormSq at its start. */
export interface RoundRecord {
  round: number;
  /** J(theta_bar) (for `local`: the mean over agents of J(theta_i)); null on rounds the evaluation cadence skips. */
  J: number | null;
  /** J* - J; null when there is no J* (per-agent kernels). */
  gap: number | null;
  /** |grad J(theta_bar)|^2 at the round's start; null for `local`. */
  gradNormSq: number | null;
  trajectories: number;
  steps: number;
  bytes: number;
  /** J_i(theta_bar) per agent after the round (for `local`: J_i(theta_i)); null when not evaluated. */
  agentJ: number[] | null;
  /** Wall-clock seconds since the run (or its resumption) started. */
  seconds: number;
  /** Sampled runs: environment steps per wall-clock second so far in this process; null with exact gradients. */
  stepsPerSecond: number | null;
  /** The agents that took part in the round (ascending); present when --participation < 1. */
  participants?: number[];
  /** Ditto: (1/N) sum_i J_i(v_i) after the round (null when not evaluated). */
  personalJ?: number | null;
  /** Ditto: (1/N) sum_i (J_i* - J_i(v_i)); null with per-agent kernels. */
  personalGap?: number | null;
  /** Decentralised algorithms: (1/N) sum_n |theta_n - theta_bar|^2 after the round (null when not evaluated). */
  consensus?: number | null;
  /** Differential privacy: the largest epsilon over agents so far (null: infinite, clipping without noise). */
  dpEpsilon?: number | null;
}

/** What is known before round 1 (the log's header line). */
export interface TrainHeader {
  algorithm: TrainSettings['algorithm'];
  backend: Backend['name'];
  gradient: TrainSettings['gradient'];
  settings: TrainSettings & { agents: number; states: number; actions: number; perAgentKernels: boolean };
  Jstar: number | null;
  /** J before round 1. */
  J0: number;
  /** The evaluation cadence: J and the rest are computed every this many rounds and after the last. */
  evalEvery: number;
}

export interface TrainResult extends Omit<TrainHeader, 'J0'> {
  /** J before round 1, then after every round: T + 1 values (null on rounds the evaluation cadence skips). */
  J: (number | null)[];
  /** |grad J(theta_bar)|^2 at the start of every round: T values (null for `local` and after skipped evaluations). */
  gradNormSq: (number | null)[];
  /** The final theta_bar as S rows of A; null for `local`. */
  theta: number[][] | null;
  /** `local` only: every agent's final theta. */
  thetas?: number[][][];
  /** Ditto: (1/N) sum_i J_i(v_i) before round 1 and after every round (T + 1 values). */
  personalJ?: (number | null)[];
  /** Ditto: every agent's final personal policy v_i. */
  personalThetas?: number[][][];
  /** Decentralised algorithms: (1/N) sum_n |theta_n - theta_bar|^2 before round 1 and after every round (T + 1 values). */
  consensus?: (number | null)[];
  /** Differential privacy: each agent's epsilon at the end (null: infinite). */
  dpEpsilonPerAgent?: (number | null)[];
  records: RoundRecord[];
}

export interface ResumeInfo {
  path: string;
  round: number;
  records: RoundRecord[];
}

export interface CheckpointOptions {
  /** The checkpoint file: resumed from when it exists (unless `fresh`), rewritten as the run goes. */
  path: string;
  /** Write every this many rounds (default 10), and after the last round, and when the run stops early. */
  every?: number;
  /** Ignore an existing checkpoint and start over (it is overwritten at the first write). */
  fresh?: boolean;
}

export interface TrainOptions extends Partial<TrainSettings> {
  /** The initial theta [S*A]; zeros by default. */
  theta0?: Float64Array;
  /** A loaded backend, or a choice (default: FEDPG_BACKEND, then auto). */
  backend?: Backend | BackendChoice;
  /**
   * Stops the run: before the next round, or during one (the unfinished round is dropped, every
   * finished one was reported); train() then rejects with the signal's reason.
   */
  signal?: AbortSignal;
  /** Called with every record as its round finishes. */
  onRecord?: (record: RoundRecord) => void;
  /**
   * Called once before round 1, or for a resumed run before its first new round, with the
   * checkpoint's path, round and the records of its finished rounds.
   */
  onStart?: (header: TrainHeader, resumed: ResumeInfo | null) => void;
  /** Called once the agents' runtime is chosen: threads running them (1: in-process) and why. */
  onRuntime?: (runtime: { workers: number; why: string }) => void;
  /** Notices of the runtime (resuming, a rerun after a failure), one line each. */
  onInfo?: (message: string) => void;
  /**
   * Worker threads: a count (1 = in-process; capped at the number of agents) or 'auto' (the
   * available cores, in-process when the run is too small to gain). Default 1. Results are
   * bit-identical for any value.
   */
  workers?: WorkersChoice;
  /** Reruns of a failed agent round (on a fresh worker thread, from the agent's saved state). Default 0. */
  retry?: number;
  /**
   * With worker threads, where each round's exact evaluation (J, gap, |grad J|^2) runs: on the
   * main thread overlapping the next round's local steps, or on the workers beside their agents.
   * Default 'auto' (main when it fits inside the local steps). Results are identical either way.
   */
  evaluation?: 'auto' | 'main' | 'workers';
  /** With worker threads: the longest one phase of a round may take, in ms (default 0: no limit). */
  roundTimeout?: number;
  checkpoint?: CheckpointOptions;
  /** Fault injection for tests (see faults.ts); default: the FEDPG_FAULT environment variable. */
  faults?: FaultSpec[] | string;
  /**
   * The evaluation cadence: theta_bar is evaluated exactly (J, gap, |grad J|^2, ...) after rounds
   * t with t % R === 0 and after the last; other rounds' values are null. 'auto' (the default):
   * every round for exact gradients and for S <= 2048, else a cadence from the sizes (never a
   * timing) that keeps the evaluation near 10% of the run (workers/plan.ts, evalCadence).
   */
  evalEvery?: number | 'auto';
  /** Builds the agent pool (custom runtimes plug in here); otherwise in-process or worker threads per `workers`. */
  pool?: (agents: LocalAgent[], settings: TrainSettings) => AgentPool;
}

/** The keys of TrainOptions besides the settings' own (anything else is refused as a typo). */
export const TRAIN_OPTION_KEYS: readonly string[] = [
  'theta0', 'backend', 'signal', 'evalEvery', 'onRecord', 'onStart', 'onRuntime', 'onInfo', 'workers', 'retry', 'evaluation', 'roundTimeout', 'checkpoint', 'faults', 'pool',
];

function rowsOf(t: Float64Array, A: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < t.length; i += A) out.push(Array.from(t.subarray(i, i + A)));
  return out;
}

function nonNegInt(name: string, v: number | undefined, min = 0): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isSafeInteger(v) || v < min) throw new InputError(`${name} must be an integer >= ${min}, got ${v}`);
  return v;
}

/** The state at the end of the last finished round, minus the append-only histories. */
type Snapshot = Omit<CheckpointState, 'J' | 'gradNormSq' | 'personalJ' | 'agentJ' | 'consensus'>;

interface Extra {
  restored: CheckpointState | null;
  checkpoint: (CheckpointOptions & { identity: RunIdentity; every: number; io: CheckpointIO }) | null;
  faults: FaultSpec[];
  workers: number;
  signal: AbortSignal | undefined;
  onInfo: ((m: string) => void) | undefined;
  evalEvery: number;
}

/**
 * A training run, round by round. The loop is the server's view of a round: it owns a ServerCore
 * (theta_bar, the algorithm's server vectors, every agent's last report, the server's stream)
 * and talks to the agents only through the pool, driving the algorithm only through its plug-in
 * (algorithms/types.ts). The evaluation of each round (exact J, gap, |grad J|^2) is for the log
 * only and never feeds back into training.
 */
export class Training {
  readonly header: TrainHeader;
  readonly records: RoundRecord[] = [];
  /** Threads running the agents (1: in-process). */
  readonly workers: number;
  /** Where the run resumed from, or null for a fresh run. */
  readonly resumed: { path: string; round: number } | null;
  readonly algorithm: AlgorithmPlugin;
  private readonly server: ServerCore;
  private readonly J: (number | null)[];
  private readonly gradNormSq: (number | null)[];
  private readonly personalJ: (number | null)[] | null;
  private readonly consensus: (number | null)[] | null;
  private readonly agentJ: (number[] | null)[];
  /** Evaluate every this many rounds (and after the last). */
  private readonly evalEvery: number;
  /** Decentralised algorithms: the mixing matrix W [N*N] and alpha. */
  private readonly mixing: { W: Float64Array; alpha: number; degrees: number } | null;
  private lastGradNormSq: number | null;
  private round: number;
  private readonly all: number[];
  private readonly outs: Float64Array[];
  private readonly reports: Float64Array[];
  private readonly evalJ: Float64Array;
  private readonly evalGrad: Float64Array;
  private readonly gsum: Float64Array;
  private pending: { promise: Promise<void>; ids: number[] } | null = null;
  private nextIds: number[] | null = null;
  /** The server's stream before the next round's participants were drawn ahead (see drawAhead). */
  private rngBeforeAhead: Uint32Array | null = null;
  private snapshot: Snapshot | null = null;
  private savedRound: number;
  private closed = false;
  private lastYield = performance.now();
  private readonly started = performance.now();
  private readonly startSteps: number;
  private readonly ditto: boolean;
  /** Ditto's personal J of the last evaluated round (taken before the next local phase may start). */
  private lastPersonalJ: number | null = null;
  /**
   * Run mode (pool.runner): the run's first round, the rounds posted and not read yet (their
   * participants, the server's stream after drawing them, whether states were asked), and the
   * stream the draws ahead come from (the server's own stays where a round-by-round run has it).
   */
  private run: { first: number; ahead: Uint32Array; next: number; posted: Map<number, { ids: number[]; rng: Uint32Array; states: boolean }> } | null = null;

  private constructor(
    private readonly mdp: Mdp,
    readonly settings: TrainSettings,
    private readonly envs: Environment[],
    private readonly pool: AgentPool,
    private readonly evaluator: Evaluator,
    theta0: Float64Array,
    backend: Backend,
    private readonly x: Extra,
  ) {
    const N = mdp.rewards.length;
    const SA = mdp.states * mdp.actions;
    this.algorithm = algorithmOf(settings.algorithm);
    this.workers = x.workers;
    this.evalEvery = x.evalEvery;
    this.all = Array.from({ length: N }, (_, i) => i);
    this.outs = Array.from({ length: N }, () => new Float64Array(SA));
    this.reports = Array.from({ length: N }, () => new Float64Array(SA));
    this.evalJ = new Float64Array(N);
    this.evalGrad = new Float64Array(pool.evaluates && pool.evaluateAndStart ? N * SA : 0);
    this.gsum = new Float64Array(SA);
    this.ditto = keptNames(this.algorithm, settings).includes('personal');
    if (this.algorithm.topology === 'peers') {
      const W = mixingMatrix(parseTopology(settings.topology), N, settings.serverSeed);
      let degrees = 0;
      for (let n = 0; n < N; n++) for (let m = 0; m < N; m++) if (m !== n && W[n * N + m] !== 0) degrees++;
      this.mixing = { W, alpha: npgAlpha(settings.eta, settings.entropy, mdp.gamma), degrees };
    } else this.mixing = null;
    const r = x.restored;
    this.server = new ServerCore(settings, N, theta0, r?.server);
    if (r) {
      this.J = r.J.slice();
      this.gradNormSq = r.gradNormSq.slice();
      this.personalJ = r.personalJ ? r.personalJ.slice() : null;
      this.consensus = r.consensus ? r.consensus.slice() : null;
      this.agentJ = r.agentJ.map((a) => (a ? a.slice() : null));
      this.lastGradNormSq = r.lastGradNormSq;
      this.round = r.round;
      for (let t = 1; t <= r.round; t++) this.records.push(this.makeRecord(t));
      this.resumed = { path: x.checkpoint!.path, round: r.round };
    } else {
      const local = this.algorithm.topology === 'local';
      const start = local ? this.scoreLocal(pool.states()) : evaluator.score(this.server.thetaBar);
      this.consensus = this.mixing ? [0] : null;
      this.J = [start.J];
      this.agentJ = [Array.from(start.perAgent)];
      this.gradNormSq = [];
      this.lastGradNormSq = local ? null : start.gradNormSq;
      this.personalJ = this.ditto ? [this.scorePersonal(pool.states()).J] : null;
      this.round = 0;
      this.resumed = null;
    }
    this.startSteps = this.server.costs().steps;
    this.savedRound = this.round;
    this.header = {
      algorithm: settings.algorithm,
      backend: backend.name,
      gradient: settings.gradient,
      settings: { ...settings, agents: N, states: mdp.states, actions: mdp.actions, perAgentKernels: mdp.perAgentKernels },
      Jstar: evaluator.Jstar,
      J0: this.J[0]!,
      evalEvery: x.evalEvery,
    };
  }

  static async create(mdp: Mdp, options: TrainOptions = {}): Promise<Training> {
    refuseUnknownKeys(options, TRAIN_OPTION_KEYS);
    const settings = resolveSettings(options);
    const N = mdp.rewards.length;
    checkAgainstAgents(settings, N);
    const alg = algorithmOf(settings.algorithm);
    if (alg.topology === 'peers') npgAlpha(settings.eta, settings.entropy, mdp.gamma);
    const SA = mdp.states * mdp.actions;
    const theta0 = options.theta0 ?? new Float64Array(SA);
    if (theta0.length !== SA) throw new InputError(`theta0 has ${theta0.length} values, expected states*actions = ${SA}`);
    const retry = nonNegInt('retry', options.retry) ?? 0;
    const roundTimeout = nonNegInt('roundTimeout', options.roundTimeout) ?? 0;
    const ck = options.checkpoint;
    if (ck) {
      if (typeof ck.path !== 'string' || ck.path === '') throw new InputError('checkpoint.path must be a file name');
      nonNegInt('checkpoint.every', ck.every, 1);
    }
    const faults = resolveFaults(options.faults);
    if (options.evaluation !== undefined && !['auto', 'main', 'workers'].includes(options.evaluation))
      throw new InputError(`evaluation must be auto, main or workers, got ${String(options.evaluation)}`);
    const backend = typeof options.backend === 'object' ? options.backend : await loadBackend(options.backend);
    const envs = mdp.kernels.map((_, k) => backend.createEnvironment(environmentSpec(mdp, k)));
    let pool: AgentPool | null = null;
    try {
      const ditto = keptNames(alg, settings).includes('personal');
      const evaluator = new Evaluator(mdp, envs, { perAgentOptimum: ditto });
      const io = ck ? await import('./checkpoint.js') : null;
      const identity = io ? io.runIdentity(mdp, theta0, backend.name, settings) : null;
      const restored = io && ck && !ck.fresh && io.checkpointExists(ck.path) ? io.readCheckpoint(ck.path, identity!, settings.rounds, keptNames(alg, settings).length, alg.serverState.length) : null;
      const states: AgentState[] = restored ? restored.agents : mdp.rewards.map((_, i) => initialAgentState(alg, settings, agentStream(settings.seed, i), theta0));
      const planner = options.pool || options.workers === undefined || options.workers === 1 ? null : await import('./workers/plan.js');
      const plan = options.pool
        ? { workers: 1, why: 'a custom agent pool' }
        : planner
          ? planner.planWorkers(options.workers, mdp, settings, backend.name)
          : { workers: 1, why: options.workers === 1 ? 'in-process' : 'in-process (the library default; pass workers to use threads)' };
      if (plan.workers === 1 && !options.pool) {
        const f = faults.find((g) => g.kind === 'hang' || g.kind === 'exit');
        if (f) throw new InputError(`the injected fault '${f.kind}' needs worker threads (workers >= 2)`);
      }
      const agents = (): LocalAgent[] => mdp.rewards.map((r, i) => new LocalAgent(i, envs.length === 1 ? envs[0]! : envs[i]!, r, states[i]!, alg, settings));
      if (options.pool) pool = options.pool(agents(), settings);
      else if (plan.workers > 1)
        pool = await (await import('./workers/pool.js')).WorkerPool.create({
          mdp,
          backend: backend.name,
          settings,
          workers: plan.workers,
          states,
          ...(restored ? { reports: restored.server.reports } : {}),
          evaluate:
            alg.topology !== 'local' &&
            (options.evaluation === 'workers' || (options.evaluation !== 'main' && planner!.evaluationOnWorkers(mdp, settings, backend.name, plan.workers))),
          retry,
          roundTimeout,
          faults,
          ...(options.signal ? { signal: options.signal } : {}),
          ...(options.onInfo ? { onInfo: options.onInfo } : {}),
        });
      else pool = new InProcessPool(agents(), { faults, retry, ...(options.onInfo ? { onInfo: options.onInfo } : {}) });
      const t = new Training(mdp, settings, envs, pool, evaluator, theta0, backend, {
        restored,
        checkpoint: ck ? { ...ck, identity: identity!, every: ck.every ?? 10, io: io! } : null,
        faults,
        workers: plan.workers,
        signal: options.signal,
        onInfo: options.onInfo,
        evalEvery: evalCadence(options.evalEvery, mdp, settings, backend.name),
      });
      options.onRuntime?.({ workers: plan.workers, why: plan.why });
      if (restored) options.onInfo?.(`resuming from checkpoint ${ck!.path} at round ${restored.round} of ${settings.rounds}`);
      if (!restored && alg.reports !== 'none') await t.reportRound(t.all, 0, true);
      if (!restored && alg.topology === 'peers') await t.peersStart();
      if (ck) t.snapshot = t.takeSnapshot();
      return t;
    } catch (e) {
      try {
        await pool?.close();
      } finally {
        envs.forEach((e) => e.dispose());
      }
      throw e;
    }
  }

  /** A report phase: the agents' reports at theta_bar, then the server's rule over every report held. */
  private async reportRound(ids: number[], round: number, initial: boolean): Promise<void> {
    await this.pool.reportPhase(ids, this.server.thetaBar, this.reports, { round });
    this.server.applyReports(ids, ids.map((i) => this.reports[i]!), initial);
  }

  get finished(): boolean {
    return this.round >= this.settings.rounds;
  }

  /** Rounds finished so far. */
  get roundsDone(): number {
    return this.round;
  }

  private makeRecord(t: number, participants?: number[]): RoundRecord {
    // A resumed run's finished rounds come from the checkpoint's history.
    const Jstar = this.evaluator.Jstar;
    const J = this.J[t]!;
    const personal = this.personalJ ? this.personalJ[t]! : null;
    const past = this.x.restored && t <= this.x.restored.round ? this.x.restored.costs[t - 1]! : null;
    const costs: Costs = past ? { trajectories: past.trajectories, steps: past.steps, bytes: past.bytes } : this.server.costs();
    if (past?.participants) participants = past.participants;
    const dp = past ? past.dpEpsilon : this.server.dpEpsilon();
    const seconds = (performance.now() - this.started) / 1000;
    const rec: RoundRecord = {
      round: t,
      J,
      gap: Jstar === null || J === null ? null : Jstar - J,
      gradNormSq: this.gradNormSq[t - 1]!,
      ...costs,
      agentJ: this.agentJ[t]!,
      seconds,
      stepsPerSecond: this.settings.gradient === 'sampled' && seconds > 0 ? (costs.steps - this.startSteps) / seconds : null,
    };
    if (participants && participants.length < this.all.length) rec.participants = participants;
    if (this.personalJ) {
      rec.personalJ = personal;
      rec.personalGap = personal === null ? null : this.evaluator.personalGap(personal);
    }
    if (this.consensus) rec.consensus = this.consensus[t]!;
    if (dp !== undefined) rec.dpEpsilon = dp;
    return rec;
  }

  /** Decentralised start: every agent's tracker and last Q are its Q_tau at theta0. */
  private async peersStart(): Promise<void> {
    const names = keptNames(this.algorithm, this.settings);
    await this.pool.reportPhase(this.all, this.server.thetaBar, this.reports, { round: 0 });
    for (const i of this.all) {
      this.pool.writeKept!(i, names.indexOf('tracker'), this.reports[i]!);
      this.pool.writeKept!(i, names.indexOf('q'), this.reports[i]!);
    }
  }

  /**
   * One decentralised round (FedNPG): the mixing of parameters over the graph, every agent's Q at
   * its new parameters, the mixing of the trackers; theta_bar is the agents' mean.
   */
  private async peersRound(r: number): Promise<number[]> {
    const names = keptNames(this.algorithm, this.settings);
    const [kTheta, kTracker, kQ] = [names.indexOf('theta'), names.indexOf('tracker'), names.indexOf('q')];
    const m = this.mixing!;
    const before = this.pool.states();
    const thetas = before.map((st) => st.kept[kTheta]!);
    const trackers = before.map((st) => st.kept[kTracker]!);
    const qOld = before.map((st) => st.kept[kQ]!);
    const mixed = this.outs;
    mixParameters(m.W, m.alpha, this.settings.eta / (1 - this.mdp.gamma), thetas, trackers, mixed);
    for (const i of this.all) this.pool.writeKept!(i, kTheta, mixed[i]!);
    await this.pool.reportPhase(this.all, this.server.thetaBar, this.reports, { round: r });
    const newTrackers = trackers.map((t) => new Float64Array(t.length));
    mixTrackers(m.W, trackers, this.reports, qOld, newTrackers);
    for (const i of this.all) {
      this.pool.writeKept!(i, kTracker, newTrackers[i]!);
      this.pool.writeKept!(i, kQ, this.reports[i]!);
    }
    // theta_bar = (1/N) sum_n theta_n, in agent order; consensus = (1/N) sum_n |theta_n - theta_bar|^2.
    meanInto(this.server.thetaBar, mixed);
    let consensus = 0;
    for (const th of mixed)
      for (let j = 0; j < th.length; j++) {
        const e = th[j]! - this.server.thetaBar[j]!;
        consensus += e * e;
      }
    this.consensus!.push(consensus / this.all.length);
    // Each agent sends theta_n and T_n to each neighbour.
    this.server.countVectors(2 * m.degrees);
    return this.all;
  }

  /**
   * Lets the event loop run at least every 20 ms: an in-process round resolves through
   * microtasks only, so without this a signal handler (Ctrl-C) or a timer would wait for the end.
   */
  private async breathe(): Promise<void> {
    if (performance.now() - this.lastYield < 20) return;
    await yieldToEventLoop();
    this.lastYield = performance.now();
  }

  private scoreLocal(states: AgentState[]): PolicyScore {
    const k = keptNames(this.algorithm, this.settings).indexOf('theta');
    const N = states.length;
    let J = 0;
    const perAgent = new Float64Array(N);
    states.forEach((st, i) => {
      const sc = this.evaluator.score(st.kept[k]!);
      J += sc.J;
      perAgent[i] = sc.perAgent[i]!;
    });
    return { J: J / N, gradNormSq: 0, perAgent };
  }

  private scorePersonal(states: AgentState[]): { J: number } {
    const k = keptNames(this.algorithm, this.settings).indexOf('personal');
    return { J: this.evaluator.personalJ(states.map((s) => s.kept[k]!)) };
  }

  /** Starts the local phase of round r (a concurrent pool runs it while this thread evaluates). */
  private startLocal(r: number, ids: number[]): Promise<void> {
    const p = this.pool.localPhase(ids, this.server.thetaBar, this.server.down(), this.outs, { round: r });
    p.catch(() => {});
    return p;
  }

  /** Runs one round and returns its record. */
  async step(): Promise<RoundRecord> {
    if (this.finished) throw new Error(`the run is finished (${this.settings.rounds} rounds)`);
    if (this.closed) throw new Error('the run is closed');
    await this.breathe();
    this.x.signal?.throwIfAborted();
    const s = this.settings;
    const r = this.round + 1;
    const more = r < s.rounds && !this.x.signal?.aborted;
    const alg = this.algorithm;
    // The evaluation cadence: exact evaluation of theta_bar(r) only every evalEvery rounds and
    // after the last one; the other rounds' J, gap, per-agent J, personal J and consensus are null.
    const evalNow = evaluatedRound(r, s.rounds, this.evalEvery);
    let score: PolicyScore | null = null;
    let ids: number[];
    let agentStates: AgentState[] | null = null;
    if (alg.topology === 'peers') {
      ids = await this.peersRound(r);
      if (evalNow) score = this.evaluator.score(this.server.thetaBar);
    } else if (alg.topology === 'local') {
      ids = this.all;
      await this.pool.localPhase(ids, this.server.thetaBar, [], this.outs, { round: r });
      this.server.countSilent(ids.length);
      if (evalNow) score = this.scoreLocal(this.pool.states());
    } else if (this.runner) {
      ({ ids, score, agentStates } = await this.runStep(this.runner, r, evalNow));
    } else {
      // The participants were drawn when this round's local phase started early (concurrent pools).
      ids = this.nextIds ?? this.server.participants();
      this.nextIds = null;
      this.rngBeforeAhead = null;
      const pending = this.pending;
      this.pending = null;
      await (pending ? pending.promise : this.pool.localPhase(ids, this.server.thetaBar, this.server.down(), this.outs, { round: r }));
      this.server.applyLocal(ids, ids.map((i) => this.outs[i]!));
      const evalOnWorkers = evalNow && !!this.pool.evaluates;
      if (more && alg.reports === 'every-round' && this.pool.reportAndStart) {
        // One pool command: this round's reports, the report step (computed by the pool through
        // the plug-in, identically), the optional evaluation and the next round's local phase.
        // The next participants are drawn first: the server's stream serves only those draws.
        const next = this.drawAhead();
        const h = this.pool.reportAndStart({
          round: r,
          reporting: ids,
          theta: this.server.thetaBar,
          reports: this.reports,
          serverVectors: this.server.state.vectors,
          next: { agents: next, out: this.outs },
          evaluation: evalOnWorkers ? { J: this.evalJ, grad: this.evalGrad } : null,
        });
        this.pending = { promise: h.local, ids: next };
        this.nextIds = next;
        await h.reported;
        this.server.applyReports(ids, ids.map((i) => this.reports[i]!), false);
        // The agents' states after this round, read before anything lets the next local phase commit.
        if (this.x.checkpoint || this.ditto) agentStates = this.pool.states();
        if (this.ditto && evalNow) this.lastPersonalJ = this.scorePersonal(agentStates!).J;
        if (h.evaluated) {
          await h.evaluated;
          score = this.poolScore(this.evalJ, this.evalGrad);
        } else if (evalNow) score = this.evaluator.score(this.server.thetaBar);
      } else {
        if (alg.reports === 'every-round') await this.reportRound(ids, r, false);
        if (this.x.checkpoint || this.ditto) agentStates = this.pool.states();
        if (this.ditto && evalNow) this.lastPersonalJ = this.scorePersonal(agentStates!).J;
        if (evalOnWorkers && this.pool.evaluateAndStart) {
          const next = more ? this.drawAhead() : null;
          const h = this.pool.evaluateAndStart(
            this.server.thetaBar,
            this.evalJ,
            this.evalGrad,
            next ? { agents: next, down: this.server.down(), out: this.outs } : null,
            { round: r },
          );
          if (h.local && next) {
            this.pending = { promise: h.local, ids: next };
            this.nextIds = next;
          }
          await h.evaluated;
          score = this.poolScore(this.evalJ, this.evalGrad);
        } else {
          if (this.pool.concurrent && more) {
            const next = this.drawAhead();
            this.nextIds = next;
            this.pending = { promise: this.startLocal(r + 1, next), ids: next };
          }
          if (evalNow) score = this.evaluator.score(this.server.thetaBar);
        }
      }
    }
    // gradNormSq of a record is at its round's start: the score of the round before, if taken.
    this.gradNormSq.push(alg.topology === 'local' ? null : this.lastGradNormSq);
    this.lastGradNormSq = alg.topology === 'local' || !score ? null : score.gradNormSq;
    this.round = r;
    this.J.push(score ? score.J : null);
    this.agentJ.push(score ? Array.from(score.perAgent) : null);
    if (this.personalJ) this.personalJ.push(evalNow ? this.lastPersonalJ : null);
    if (this.consensus && !evalNow) this.consensus[this.consensus.length - 1] = null;
    const record = this.makeRecord(r, ids);
    this.records.push(record);
    if (this.x.checkpoint) this.snapshot = this.takeSnapshot(agentStates ?? undefined);
    return record;
  }

  /**
   * Waits until the agents' runtime has no work in flight: the rounds a worker pool's run mode
   * runs ahead (up to its `ahead`) or a local phase started early. Results are unchanged; benches time
   * it so that a block of rounds is charged for exactly its own rounds' work.
   */
  async drain(): Promise<void> {
    if (this.run && this.runner) {
      // The last round posted (rounds are posted in order).
      const last = this.run.next - 1;
      if (last > this.round) await this.runner.roundDone(last - this.run.first).catch(() => {});
    } else await this.pending?.promise.catch(() => {});
  }

  /** The pool's run mode, when it offers one for a server algorithm. */
  private get runner(): RoundRunner | null {
    return this.algorithm.topology === 'server' ? (this.pool.runner ?? null) : null;
  }

  /**
   * The score of theta_bar from the J_i and grad J_i a pool's threads computed, or from the sum of
   * the gradients when the threads summed them (perAgent copied out of the pool's buffer).
   */
  private poolScore(J: Float64Array, grad: Float64Array, gradSum: Float64Array | null = null): PolicyScore {
    const score = gradSum ? scoreFromGradSum(J, gradSum) : combineScores(J, grad, this.server.thetaBar.length, this.gsum);
    return { ...score, perAgent: J.slice() };
  }

  /**
   * Posts the rounds after `read` (the last round read) that the pool has room for, in order:
   * each with its participants (drawn ahead, in order), evaluation and states. A round that
   * publishes states waits until it is at most two rounds past the last one read.
   */
  private postRounds(runner: RoundRunner, read: number): void {
    const run = this.run!;
    const s = this.settings;
    for (; run.next <= s.rounds && run.next <= read + runner.ahead && !this.x.signal?.aborted; run.next++) {
      const t = run.next;
      const evalNow = evaluatedRound(t, s.rounds, this.evalEvery);
      // States: for every round's checkpoint snapshot, Ditto's personal J, and the run's result.
      const states = !!this.x.checkpoint || (this.ditto && evalNow) || t === s.rounds;
      if (states && t > read + 2) break;
      const ids = drawParticipants(run.ahead, s.participation, this.all.length);
      run.posted.set(t, { ids, rng: run.ahead.slice(), states });
      runner.postRound(t - run.first, ids, evalNow && !!this.pool.evaluates, states);
    }
  }

  /**
   * Round r in run mode: the workers ran it (server steps included) while this thread read the
   * rounds before; this thread takes the server's state after it, the evaluation and the states
   * it asked for, and posts the rounds the pool has room for (up to r + runner.ahead).
   */
  private async runStep(runner: RoundRunner, r: number, evalNow: boolean): Promise<{ ids: number[]; score: PolicyScore | null; agentStates: AgentState[] | null }> {
    if (!this.run) {
      this.run = { first: r, ahead: this.server.state.rng.slice(), next: r, posted: new Map() };
      runner.startRun(r, this.server.thetaBar, this.server.state.vectors);
      this.postRounds(runner, r - 1);
    }
    const run = this.run;
    const k = r - run.first;
    const posted = run.posted.get(r)!;
    run.posted.delete(r);
    const ids = posted.ids;
    await runner.roundDone(k);
    // The server's stream as a round-by-round run leaves it: after drawing this round's participants.
    this.server.state.rng.set(posted.rng);
    // The workers' replicas computed this round's server steps (the plug-in's code over the same
    // inputs: the same bits); this server counts the round, keeps its reports and takes the result.
    const reports = this.algorithm.reports === 'every-round' ? runner.roundReports(k) : null;
    const after = runner.roundServer(k);
    this.server.adoptRound(ids, reports && ids.map((i) => reports[i]!), after.thetaBar, after.vectors);
    const agentStates = posted.states ? runner.roundStates(k) : null;
    if (this.ditto && evalNow) this.lastPersonalJ = this.scorePersonal(agentStates!).J;
    let score: PolicyScore | null = null;
    if (evalNow && this.pool.evaluates) {
      const e = runner.roundEvaluation(k);
      score = this.poolScore(e.J, e.grad, e.gradSum);
    } else if (evalNow) score = this.evaluator.score(this.server.thetaBar);
    this.postRounds(runner, r);
    return { ids, score, agentStates };
  }

  /**
   * The next round's participants, drawn before this round is recorded (a concurrent pool starts
   * the next local phase early): the server's stream before the draw is kept for the snapshot,
   * which must hold the stream as a round-by-round run leaves it, or a resumed run would draw again.
   */
  private drawAhead(): number[] {
    this.rngBeforeAhead = this.server.state.rng.slice();
    return this.server.participants();
  }

  /** `agents`: the agents' states at the end of the round, when read before the next round's local phase could commit. */
  private takeSnapshot(agents?: AgentState[]): Snapshot {
    const server = this.server.snapshot();
    if (this.rngBeforeAhead) server.rng.set(this.rngBeforeAhead);
    return {
      round: this.round,
      server,
      lastGradNormSq: this.lastGradNormSq,
      agents: agents ?? this.pool.states(),
      costs: this.records.map((r) => ({
        trajectories: r.trajectories,
        steps: r.steps,
        bytes: r.bytes,
        ...(r.participants ? { participants: r.participants } : {}),
        ...(r.dpEpsilon !== undefined ? { dpEpsilon: r.dpEpsilon } : {}),
      })),
    };
  }

  /** Writes the checkpoint of the last finished round if it is not on disk yet (`due`: only on the schedule). */
  saveCheckpoint(due = false): boolean {
    const ck = this.x.checkpoint;
    const snap = this.snapshot;
    if (!ck || !snap || snap.round <= this.savedRound) return false;
    if (due && snap.round % ck.every !== 0 && snap.round < this.settings.rounds) return false;
    ck.io.writeCheckpoint(
      ck.path,
      ck.identity,
      {
        ...snap,
        J: this.J.slice(0, snap.round + 1),
        gradNormSq: this.gradNormSq.slice(0, snap.round),
        personalJ: this.personalJ ? this.personalJ.slice(0, snap.round + 1) : null,
        consensus: this.consensus ? this.consensus.slice(0, snap.round + 1) : null,
        agentJ: this.agentJ.slice(0, snap.round + 1),
      },
      this.x.faults,
    );
    this.savedRound = snap.round;
    return true;
  }

  result(): TrainResult {
    const { J0: _j0, ...head } = this.header;
    const A = this.mdp.actions;
    const local = this.algorithm.topology === 'local';
    const out: TrainResult = {
      ...head,
      J: [...this.J],
      gradNormSq: [...this.gradNormSq],
      theta: local ? null : rowsOf(this.server.thetaBar, A),
      records: [...this.records],
    };
    const names = keptNames(this.algorithm, this.settings);
    const states = local || this.ditto ? this.pool.states() : [];
    if (local) out.thetas = states.map((st) => rowsOf(st.kept[names.indexOf('theta')]!, A));
    if (this.consensus) out.consensus = [...this.consensus];
    if (this.settings.dpClip > 0) out.dpEpsilonPerAgent = this.server.dpEpsilons().map((e) => (Number.isFinite(e) ? e : null));
    if (this.personalJ) {
      out.personalJ = [...this.personalJ];
      out.personalThetas = states.map((st) => rowsOf(st.kept[names.indexOf('personal')]!, A));
    }
    return out;
  }

  /** Saves what a stopped run has not saved yet (when checkpointing), then ends every thread. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      if (!this.finished) {
        try {
          if (this.saveCheckpoint()) this.x.onInfo?.(`checkpoint ${this.x.checkpoint!.path} saved at round ${this.savedRound}`);
        } catch (e) {
          // A write that just failed (a full disk) already said so and kept the old file: say it once.
          // (By name: util/atomic.ts is Node-only and this module is in the browser entry.)
          if (!(e instanceof Error && e.name === 'FileWriteError')) this.x.onInfo?.(`could not save the checkpoint: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
      await this.pending?.promise.catch(() => {});
      await this.pool.close();
    } finally {
      this.envs.forEach((e) => e.dispose());
    }
  }
}

/** Trains to the end and returns the whole result; records stream through options.onRecord. */
export async function train(mdp: Mdp, options: TrainOptions = {}): Promise<TrainResult> {
  const t = await Training.create(mdp, options);
  try {
    options.onStart?.(t.header, t.resumed ? { ...t.resumed, records: [...t.records] } : null);
    while (!t.finished) {
      options.signal?.throwIfAborted();
      const r = await t.step();
      options.onRecord?.(r);
      t.saveCheckpoint(true);
    }
    return t.result();
  } finally {
    await t.close();
  }
}

/** The same run as an async iterator of records; `return` (or break) closes it. */
export async function* trainRounds(mdp: Mdp, options: TrainOptions = {}): AsyncGenerator<RoundRecord, TrainResult, undefined> {
  const t = await Training.create(mdp, options);
  try {
    options.onStart?.(t.header, t.resumed ? { ...t.resumed, records: [...t.records] } : null);
    while (!t.finished) {
      options.signal?.throwIfAborted();
      const r = await t.step();
      t.saveCheckpoint(true);
      yield r;
    }
    return t.result();
  } finally {
    await t.close();
  }
}
