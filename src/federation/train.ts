import type { Backend, BackendChoice, Environment } from '../backends/types.js';
import { loadBackend } from '../backends/select.js';
import { InputError } from '../errors.js';
import type { Mdp } from '../mdp/model.js';
import { environmentSpec } from '../mdp/model.js';
import { agentStream } from '../rng.js';
import { yieldToEventLoop } from '../util/yield.js';
import { LocalAgent, type AgentState } from './agent.js';
// Checkpoints and worker threads are Node-only: loaded on demand, so the browser entry (which
// imports this module) pulls in neither fs, crypto nor worker_threads.
import type { CheckpointState, RunIdentity } from './checkpoint.js';
import { combineScores, Evaluator } from './evaluator.js';
import { resolveFaults, type FaultSpec } from './faults.js';
import { InProcessPool, type AgentPool } from './pool.js';
import { applyThetas, meanInto } from './aggregate.js';
import { costsAfter, resolveSettings, type TrainSettings } from './settings.js';
import type { WorkersChoice } from './workers/plan.js';
import type { WorkerPool } from './workers/pool.js';

type CheckpointIO = typeof import('./checkpoint.js');

/** A worker pool that runs whole rounds itself (the server step included). */
function runsRounds(pool: AgentPool): pool is WorkerPool {
  return (pool as Partial<WorkerPool>).runs === true;
}

/** One line of the round log. Rounds count from 1; J and gap are after the round, gradNormSq at its start. */
export interface RoundRecord {
  round: number;
  /** J(theta_bar) (for `local`: the mean over agents of J(theta_i)). */
  J: number;
  /** J* - J; null when there is no J* (per-agent kernels). */
  gap: number | null;
  /** |grad J(theta_bar)|^2 at the round's start; null for `local`. */
  gradNormSq: number | null;
  trajectories: number;
  steps: number;
  bytes: number;
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
}

export interface TrainResult extends Omit<TrainHeader, 'J0'> {
  /** J before round 1, then after every round: T + 1 values. */
  J: number[];
  /** |grad J(theta_bar)|^2 at the start of every round: T values (null for `local`). */
  gradNormSq: (number | null)[];
  /** The final theta_bar as S rows of A; null for `local`. */
  theta: number[][] | null;
  /** `local` only: every agent's final theta. */
  thetas?: number[][][];
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
  /** Builds the agent pool (custom runtimes plug in here); otherwise in-process or worker threads per `workers`. */
  pool?: (agents: LocalAgent[], settings: TrainSettings) => AgentPool;
}

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
type Snapshot = Omit<CheckpointState, 'J' | 'gradNormSq'>;

interface Extra {
  restored: CheckpointState | null;
  checkpoint: (CheckpointOptions & { identity: RunIdentity; every: number; io: CheckpointIO }) | null;
  faults: FaultSpec[];
  workers: number;
  signal: AbortSignal | undefined;
  onInfo: ((m: string) => void) | undefined;
}

/**
 * A training run, round by round. The loop is the aggregator's view of Algorithm 1: it owns
 * theta_bar and the global memory g, and talks to the agents only through the pool.
 *
 * With worker threads the round's exact evaluation (J, gap, |grad J|^2 of the new theta_bar) is
 * done by the agents' threads, each for its own agents, in the same command that starts the next
 * round's local steps, so it neither serialises the round nor waits for the caller.
 */
export class Training {
  readonly header: TrainHeader;
  readonly records: RoundRecord[] = [];
  /** Threads running the agents (1: in-process). */
  readonly workers: number;
  /** Where the run resumed from, or null for a fresh run. */
  readonly resumed: { path: string; round: number } | null;
  private readonly J: number[];
  private readonly gradNormSq: (number | null)[];
  private lastGradNormSq: number | null;
  private round: number;
  private readonly outs: Float64Array[];
  private readonly globalMemory: Float64Array | null;
  private readonly thetas: Float64Array[] | null;
  private readonly evalJ: Float64Array;
  private readonly evalGrad: Float64Array;
  private readonly gsum: Float64Array;
  private readonly acc: Float64Array;
  private pending: Promise<void> | null = null;
  private runStarted = false;
  private snapshot: Snapshot | null = null;
  private savedRound: number;
  private closed = false;
  private lastYield = performance.now();

  private constructor(
    private readonly mdp: Mdp,
    readonly settings: TrainSettings,
    private readonly envs: Environment[],
    private readonly pool: AgentPool,
    private readonly evaluator: Evaluator,
    private readonly thetaBar: Float64Array,
    backend: Backend,
    private readonly x: Extra,
  ) {
    const N = mdp.rewards.length;
    const SA = mdp.states * mdp.actions;
    this.workers = x.workers;
    this.outs = Array.from({ length: N }, () => new Float64Array(SA));
    this.globalMemory = settings.algorithm === 'fast-fedpg' ? new Float64Array(SA) : null;
    this.thetas = settings.algorithm === 'local' ? Array.from({ length: N }, () => Float64Array.from(thetaBar)) : null;
    this.evalJ = new Float64Array(N);
    this.evalGrad = new Float64Array(pool.evaluates && pool.evaluateAndStart ? N * SA : 0);
    this.gsum = new Float64Array(SA);
    this.acc = new Float64Array(SA);
    const r = x.restored;
    if (r) {
      thetaBar.set(r.thetaBar);
      if (this.thetas) r.thetas!.forEach((t, i) => this.thetas![i]!.set(t));
      if (this.globalMemory) this.globalMemory.set(r.globalMemory!);
      this.J = r.J.slice();
      this.gradNormSq = r.gradNormSq.slice();
      this.lastGradNormSq = r.lastGradNormSq;
      this.round = r.round;
      for (let t = 1; t <= r.round; t++) this.records.push(this.makeRecord(t));
      this.resumed = { path: x.checkpoint!.path, round: r.round };
    } else {
      const start = evaluator.score(thetaBar);
      this.J = [start.J];
      this.gradNormSq = [];
      this.lastGradNormSq = settings.algorithm === 'local' ? null : start.gradNormSq;
      this.round = 0;
      this.resumed = null;
    }
    this.savedRound = this.round;
    this.header = {
      algorithm: settings.algorithm,
      backend: backend.name,
      gradient: settings.gradient,
      settings: { ...settings, agents: N, states: mdp.states, actions: mdp.actions, perAgentKernels: mdp.perAgentKernels },
      Jstar: evaluator.Jstar,
      J0: this.J[0]!,
    };
  }

  static async create(mdp: Mdp, options: TrainOptions = {}): Promise<Training> {
    const settings = resolveSettings(options);
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
      if (settings.entropy > 0 && envs.some((e) => typeof e.estimateRegularized !== 'function' || typeof e.evaluateRegularized !== 'function')) {
        throw new InputError(`the ${backend.name} backend has no entropy-regularised kernels yet; use --backend js for --entropy`);
      }
      const evaluator = new Evaluator(mdp, envs);
      const io = ck ? await import('./checkpoint.js') : null;
      const identity = io ? io.runIdentity(mdp, theta0, backend.name, settings) : null;
      const restored = io && ck && !ck.fresh && io.checkpointExists(ck.path) ? io.readCheckpoint(ck.path, identity!, settings.rounds) : null;
      if (restored) {
        const fast = settings.algorithm === 'fast-fedpg';
        if (fast && (!restored.globalMemory || restored.agents.some((a) => !a.memory)))
          throw new InputError(`checkpoint ${ck!.path} refused: it is corrupt (Fast-FedPG's memory is missing); pass --fresh to start over`);
      }
      const states: AgentState[] = restored ? restored.agents : mdp.rewards.map((_, i) => ({ rng: agentStream(settings.seed, i), memory: null }));
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
      const agents = (): LocalAgent[] => mdp.rewards.map((r, i) => new LocalAgent(i, envs.length === 1 ? envs[0]! : envs[i]!, r, states[i]!));
      if (options.pool) pool = options.pool(agents(), settings);
      else if (plan.workers > 1)
        pool = await (await import('./workers/pool.js')).WorkerPool.create({
          mdp,
          backend: backend.name,
          settings,
          workers: plan.workers,
          states,
          evaluate:
            settings.algorithm !== 'local' &&
            (options.evaluation === 'workers' || (options.evaluation !== 'main' && planner!.evaluationOnWorkers(mdp, settings, backend.name, plan.workers))),
          perAgentStarts: settings.algorithm === 'local',
          retry,
          roundTimeout,
          faults,
          ...(options.signal ? { signal: options.signal } : {}),
          ...(options.onInfo ? { onInfo: options.onInfo } : {}),
        });
      else pool = new InProcessPool(agents(), settings, { faults, retry, ...(options.onInfo ? { onInfo: options.onInfo } : {}) });
      if (ck && !pool.states) throw new InputError('checkpoints need an agent pool that reports its agents\' states');
      const t = new Training(mdp, settings, envs, pool, evaluator, Float64Array.from(theta0), backend, {
        restored,
        checkpoint: ck ? { ...ck, identity: identity!, every: ck.every ?? 10, io: io! } : null,
        faults,
        workers: plan.workers,
        signal: options.signal,
        onInfo: options.onInfo,
      });
      options.onRuntime?.({ workers: plan.workers, why: plan.why });
      if (restored) options.onInfo?.(`resuming from checkpoint ${ck!.path} at round ${restored.round} of ${settings.rounds}`);
      if (!restored && t.globalMemory) await t.refreshMemory(0);
      if (ck) t.snapshot = t.takeSnapshot();
      return t;
    } catch (e) {
      try {
        await pool?.close();
      } finally {
        envs.forEach((e2) => e2.dispose());
      }
      throw e;
    }
  }

  /** Fast-FedPG's second message: every agent's g_i(theta_bar), and their mean g. */
  private async refreshMemory(round: number): Promise<void> {
    await this.pool.memorySamples(this.thetaBar, this.outs, { round });
    meanInto(this.globalMemory!, this.outs);
  }

  get finished(): boolean {
    return this.round >= this.settings.rounds;
  }

  /** Rounds finished so far. */
  get roundsDone(): number {
    return this.round;
  }

  private makeRecord(t: number): RoundRecord {
    const Jstar = this.evaluator.Jstar;
    const J = this.J[t]!;
    return {
      round: t,
      J,
      gap: Jstar === null ? null : Jstar - J,
      gradNormSq: this.gradNormSq[t - 1]!,
      ...costsAfter(this.settings, this.mdp.rewards.length, this.thetaBar.length, t),
    };
  }

  private setPending(p: Promise<void>): void {
    p.catch(() => {});
    this.pending = p;
  }

  private takePending(): Promise<void> | null {
    const p = this.pending;
    this.pending = null;
    return p;
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

  /** Runs one round and returns its record. */
  async step(): Promise<RoundRecord> {
    if (this.finished) throw new Error(`the run is finished (${this.settings.rounds} rounds)`);
    if (this.closed) throw new Error('the run is closed');
    await this.breathe();
    this.x.signal?.throwIfAborted();
    const s = this.settings;
    const N = this.outs.length;
    const theta = this.thetaBar;
    const r = this.round + 1;
    const more = r < s.rounds && !this.x.signal?.aborted;
    let J: number;
    if (this.thetas) {
      await (this.takePending() ?? this.pool.localRounds(this.thetas, null, s.localSteps, this.outs, { round: r }));
      this.outs.forEach((o, i) => this.thetas![i]!.set(o));
      // A concurrent pool starts the next round now (it copies the starts) while this thread evaluates.
      if (this.pool.concurrent && more) this.setPending(this.pool.localRounds(this.thetas, null, s.localSteps, this.outs, { round: r + 1 }));
      J = 0;
      for (const th of this.thetas) J += this.evaluator.score(th).J;
      J /= N;
      this.gradNormSq.push(null);
    } else if (runsRounds(this.pool)) {
      // Run mode: the workers run whole rounds (server step included) and may be one round
      // ahead; this thread collects theta_bar(r), evaluates it (or collects the workers'
      // evaluation) and reports, while round r + 1 runs.
      const pool = this.pool;
      if (!this.runStarted) {
        pool.startRun(r, theta, this.globalMemory, s.algorithm === 'centralized' ? 1 : s.alphaG, s.algorithm === 'centralized' ? 1 : s.localSteps);
        this.runStarted = true;
        pool.permit(r);
      }
      if (more) pool.permit(r + 1);
      await pool.roundDone(r, theta, this.globalMemory);
      let score: { J: number; gradNormSq: number };
      if (pool.evaluates) {
        await pool.roundEvaluation(r, this.evalJ, this.evalGrad);
        score = combineScores(this.evalJ, this.evalGrad, theta.length, this.gsum);
      } else score = this.evaluator.score(theta);
      J = score.J;
      this.gradNormSq.push(this.lastGradNormSq);
      this.lastGradNormSq = score.gradNormSq;
    } else {
      const steps = s.algorithm === 'centralized' ? 1 : s.localSteps;
      const alpha = s.algorithm === 'centralized' ? 1 : s.alphaG;
      await (this.takePending() ?? this.pool.localRounds(theta, this.globalMemory, steps, this.outs, { round: r }));
      // Eq. 7: theta_bar += (alpha_g / N) sum_i Delta_i, summed in agent order.
      applyThetas(theta, this.outs, alpha, this.acc);
      if (this.globalMemory) await this.refreshMemory(r);
      let score: { J: number; gradNormSq: number };
      if (this.pool.evaluates && this.pool.evaluateAndStart) {
        const h = this.pool.evaluateAndStart(theta, this.evalJ, this.evalGrad, more ? { globalMemory: this.globalMemory, steps, out: this.outs } : null, { round: r });
        if (h.local) this.setPending(h.local);
        await h.evaluated;
        score = combineScores(this.evalJ, this.evalGrad, theta.length, this.gsum);
      } else {
        if (this.pool.concurrent && more) this.setPending(this.pool.localRounds(theta, this.globalMemory, steps, this.outs, { round: r + 1 }));
        score = this.evaluator.score(theta);
      }
      J = score.J;
      this.gradNormSq.push(this.lastGradNormSq);
      this.lastGradNormSq = score.gradNormSq;
    }
    this.round = r;
    this.J.push(J);
    const record = this.makeRecord(r);
    this.records.push(record);
    if (this.x.checkpoint) this.snapshot = this.takeSnapshot();
    return record;
  }

  private takeSnapshot(): Snapshot {
    return {
      round: this.round,
      thetaBar: this.thetaBar.slice(),
      thetas: this.thetas ? this.thetas.map((t) => t.slice()) : null,
      globalMemory: this.globalMemory ? this.globalMemory.slice() : null,
      lastGradNormSq: this.lastGradNormSq,
      agents: this.pool.states!(),
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
      { ...snap, J: this.J.slice(0, snap.round + 1), gradNormSq: this.gradNormSq.slice(0, snap.round) },
      this.x.faults,
    );
    this.savedRound = snap.round;
    return true;
  }

  result(): TrainResult {
    const { J0: _j0, ...head } = this.header;
    const A = this.mdp.actions;
    const out: TrainResult = {
      ...head,
      J: [...this.J],
      gradNormSq: [...this.gradNormSq],
      theta: this.thetas ? null : rowsOf(this.thetaBar, A),
      records: [...this.records],
    };
    if (this.thetas) out.thetas = this.thetas.map((t) => rowsOf(t, A));
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
          this.x.onInfo?.(`could not save the checkpoint: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
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
