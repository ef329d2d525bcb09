import type { Backend, BackendChoice, Environment } from '../backends/types.js';
import { loadBackend } from '../backends/select.js';
import { InputError } from '../errors.js';
import type { Mdp } from '../mdp/model.js';
import { environmentSpec } from '../mdp/model.js';
import { agentStream } from '../rng.js';
import { LocalAgent } from './agent.js';
import { Evaluator } from './evaluator.js';
import { InProcessPool, type AgentPool } from './pool.js';
import { costsAfter, resolveSettings, type TrainSettings } from './settings.js';

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

export interface TrainOptions extends Partial<TrainSettings> {
  /** The initial theta [S*A]; zeros by default. */
  theta0?: Float64Array;
  /** A loaded backend, or a choice (default: FEDPG_BACKEND, then auto). */
  backend?: Backend | BackendChoice;
  /** Stops the run before the next round starts; train() then rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Called with every record as its round finishes. */
  onRecord?: (record: RoundRecord) => void;
  /** Called once before round 1. */
  onStart?: (header: TrainHeader) => void;
  /** Builds the agent pool (the worker runtime plugs in here); in-process by default. */
  pool?: (agents: LocalAgent[], settings: TrainSettings) => AgentPool;
}

function rowsOf(t: Float64Array, A: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < t.length; i += A) out.push(Array.from(t.subarray(i, i + A)));
  return out;
}

/** Mean of vectors in index order: the server's aggregation. */
function meanInto(out: Float64Array, vs: Float64Array[]): void {
  out.fill(0);
  for (const v of vs) for (let j = 0; j < out.length; j++) out[j] = out[j]! + v[j]!;
  for (let j = 0; j < out.length; j++) out[j] = out[j]! / vs.length;
}

/**
 * A training run, round by round. The loop is the aggregator's view of Algorithm 1: it owns
 * theta_bar and the global memory g, and talks to the agents only through the pool.
 */
export class Training {
  readonly header: TrainHeader;
  readonly records: RoundRecord[] = [];
  private readonly J: number[];
  private readonly gradNormSq: (number | null)[] = [];
  private lastGradNormSq: number | null;
  private round = 0;
  private readonly outs: Float64Array[];
  private readonly globalMemory: Float64Array | null;
  private readonly thetas: Float64Array[] | null;

  private constructor(
    private readonly mdp: Mdp,
    readonly settings: TrainSettings,
    private readonly envs: Environment[],
    private readonly pool: AgentPool,
    private readonly evaluator: Evaluator,
    private readonly thetaBar: Float64Array,
    backend: Backend,
  ) {
    const N = mdp.rewards.length;
    const SA = mdp.states * mdp.actions;
    this.outs = Array.from({ length: N }, () => new Float64Array(SA));
    this.globalMemory = settings.algorithm === 'fast-fedpg' ? new Float64Array(SA) : null;
    this.thetas = settings.algorithm === 'local' ? Array.from({ length: N }, () => Float64Array.from(thetaBar)) : null;
    const start = evaluator.score(thetaBar);
    this.J = [start.J];
    this.lastGradNormSq = settings.algorithm === 'local' ? null : start.gradNormSq;
    this.header = {
      algorithm: settings.algorithm,
      backend: backend.name,
      gradient: settings.gradient,
      settings: { ...settings, agents: N, states: mdp.states, actions: mdp.actions, perAgentKernels: mdp.perAgentKernels },
      Jstar: evaluator.Jstar,
      J0: start.J,
    };
  }

  static async create(mdp: Mdp, options: TrainOptions = {}): Promise<Training> {
    const settings = resolveSettings(options);
    const SA = mdp.states * mdp.actions;
    const theta0 = options.theta0 ?? new Float64Array(SA);
    if (theta0.length !== SA) throw new InputError(`theta0 has ${theta0.length} values, expected states*actions = ${SA}`);
    const backend = typeof options.backend === 'object' ? options.backend : await loadBackend(options.backend);
    const envs = mdp.kernels.map((_, k) => backend.createEnvironment(environmentSpec(mdp, k)));
    try {
      if (settings.entropy > 0 && envs.some((e) => typeof e.estimateRegularized !== 'function' || typeof e.evaluateRegularized !== 'function')) {
        throw new InputError(`the ${backend.name} backend has no entropy-regularised kernels yet; use --backend js for --entropy`);
      }
      const agents = mdp.rewards.map(
        (r, i) => new LocalAgent(i, envs.length === 1 ? envs[0]! : envs[i]!, r, { rng: agentStream(settings.seed, i), memory: null }),
      );
      const pool = options.pool ? options.pool(agents, settings) : new InProcessPool(agents, settings);
      const t = new Training(mdp, settings, envs, pool, new Evaluator(mdp, envs), Float64Array.from(theta0), backend);
      if (t.globalMemory) await t.refreshMemory();
      return t;
    } catch (e) {
      envs.forEach((e2) => e2.dispose());
      throw e;
    }
  }

  /** Fast-FedPG's second message: every agent's g_i(theta_bar), and their mean g. */
  private async refreshMemory(): Promise<void> {
    await this.pool.memorySamples(this.thetaBar, this.outs);
    meanInto(this.globalMemory!, this.outs);
  }

  get finished(): boolean {
    return this.round >= this.settings.rounds;
  }

  /** Runs one round and returns its record. */
  async step(): Promise<RoundRecord> {
    const s = this.settings;
    const N = this.outs.length;
    const theta = this.thetaBar;
    let J: number;
    if (this.thetas) {
      await this.pool.localRounds(this.thetas, null, s.localSteps, this.outs);
      this.outs.forEach((o, i) => this.thetas![i]!.set(o));
      J = 0;
      for (const th of this.thetas) J += this.evaluator.score(th).J;
      J /= N;
    } else {
      const steps = s.algorithm === 'centralized' ? 1 : s.localSteps;
      const alpha = s.algorithm === 'centralized' ? 1 : s.alphaG;
      await this.pool.localRounds(theta, this.globalMemory, steps, this.outs);
      // Eq. 7: theta_bar += (alpha_g / N) sum_i Delta_i, summed in agent order.
      const acc = new Float64Array(theta.length);
      for (const o of this.outs) for (let j = 0; j < acc.length; j++) acc[j] = acc[j]! + (o[j]! - theta[j]!);
      const scale = alpha / N;
      for (let j = 0; j < theta.length; j++) theta[j] = theta[j]! + scale * acc[j]!;
      if (this.globalMemory) await this.refreshMemory();
      const score = this.evaluator.score(theta);
      J = score.J;
      this.gradNormSq.push(this.lastGradNormSq);
      this.lastGradNormSq = score.gradNormSq;
    }
    if (this.thetas) this.gradNormSq.push(null);
    this.round++;
    this.J.push(J);
    const Jstar = this.evaluator.Jstar;
    const record: RoundRecord = {
      round: this.round,
      J,
      gap: Jstar === null ? null : Jstar - J,
      gradNormSq: this.gradNormSq[this.gradNormSq.length - 1]!,
      ...costsAfter(s, N, theta.length, this.round),
    };
    this.records.push(record);
    return record;
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

  async close(): Promise<void> {
    try {
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
    options.onStart?.(t.header);
    while (!t.finished) {
      options.signal?.throwIfAborted();
      const r = await t.step();
      options.onRecord?.(r);
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
    options.onStart?.(t.header);
    while (!t.finished) {
      options.signal?.throwIfAborted();
      yield await t.step();
    }
    return t.result();
  } finally {
    await t.close();
  }
}
