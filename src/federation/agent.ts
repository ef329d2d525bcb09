import type { Environment } from '../backends/types.js';
import { deltaInto } from './aggregate.js';
import type { AlgorithmPlugin, AgentSide } from './algorithms/types.js';
import { applyAttack, parseAttack, type Attack } from './attacks.js';
import { parsePersonalize } from './personalize.js';
import { privatize } from './privacy.js';
import type { TrainSettings } from './settings.js';

/**
 * One agent's private state: its random stream and the vectors it keeps between rounds (named by
 * keptNames: the algorithm's own, e.g. Fast-FedPG's memory g_i, then Ditto's personal policy),
 * all [S*A]. Runtimes move it as is (checkpoints, worker shared memory, agent state files).
 */
export interface AgentState {
  /** The agent's random stream (xoshiro128** words), advanced by every sampled estimate. */
  rng: Uint32Array;
  /** The kept vectors, in keptNames order. */
  kept: Float64Array[];
}

/** The vectors an agent keeps under these settings: the algorithm's, then `personal` with Ditto. */
export function keptNames(alg: AlgorithmPlugin, s: TrainSettings): string[] {
  const names = [...alg.agentState(s)];
  if (parsePersonalize(s.personalize).kind === 'ditto') names.push('personal');
  return names;
}

/** A fresh state: the stream, and the kept vectors (Ditto's v_i and local's theta start at theta0). */
export function initialAgentState(alg: AlgorithmPlugin, s: TrainSettings, rng: Uint32Array, theta0: Float64Array): AgentState {
  return {
    rng,
    kept: keptNames(alg, s).map((n) => (n === 'personal' || (alg.topology !== 'server' && n === 'theta') ? Float64Array.from(theta0) : new Float64Array(theta0.length))),
  };
}

export function copyAgentState(a: AgentState): AgentState {
  return { rng: a.rng.slice(), kept: a.kept.map((k) => k.slice()) };
}

/**
 * An agent in this thread: the algorithm's agent side plus the field's options around it. It
 * receives theta_bar and the server's down vectors, runs its local round without communication,
 * and sends only Delta_i and its reports; its reward table, stream and kept vectors stay here.
 * The in-process pool, the worker threads and the network agent all run this class, so every
 * runtime computes the same bits.
 *
 * Stream order within a round (SPEC.md): the local steps, DP noise on Delta_i, attack noise on
 * Delta_i, Ditto's personal steps; then, in the report phase, the report, its DP noise, its attack
 * noise.
 */
export class LocalAgent implements AgentSide {
  readonly settings: TrainSettings;
  private readonly names: string[];
  private readonly scratches = new Map<string, Float64Array>();
  private readonly attack: Attack;
  private readonly dittoLambda: number | null;
  /** The local phase's parameters, allocated at the first local phase (run mode's shared report phase keeps an agent per agent of the run on every worker, most of which only report there). */
  private workVector: Float64Array | null = null;

  constructor(
    readonly id: number,
    readonly env: Environment,
    readonly reward: Float64Array,
    public state: AgentState,
    readonly algorithm: AlgorithmPlugin,
    settings: TrainSettings,
  ) {
    this.settings = settings;
    this.names = keptNames(algorithm, settings);
    if (state.kept.length !== this.names.length) throw new Error(`agent ${id}: its state has ${state.kept.length} kept vectors, ${algorithm.name} needs ${this.names.length} (${this.names.join(', ')})`);
    this.attack = id < settings.byzantine ? parseAttack(settings.attack) : { kind: 'none' };
    const p = parsePersonalize(settings.personalize);
    this.dittoLambda = p.kind === 'ditto' ? p.lambda : null;
  }

  private get work(): Float64Array {
    return (this.workVector ??= new Float64Array(this.reward.length));
  }

  get rng(): Uint32Array {
    return this.state.rng;
  }

  /** Whether this agent is one of the simulated hostile ones. */
  get hostile(): boolean {
    return this.attack.kind !== 'none';
  }

  kept(name: string): Float64Array {
    const k = this.names.indexOf(name);
    if (k < 0) throw new Error(`${this.algorithm.name} keeps no vector named ${name} (it keeps ${this.names.join(', ') || 'none'})`);
    return this.state.kept[k]!;
  }

  scratch(name: string): Float64Array {
    let v = this.scratches.get(name);
    if (!v) {
      v = new Float64Array(this.reward.length);
      this.scratches.set(name, v);
    }
    return v;
  }

  gradient(theta: Float64Array, out: Float64Array): void {
    const s = this.settings;
    const tau = s.entropy;
    if (s.gradient === 'sampled') {
      if (tau > 0) this.env.estimateRegularized(theta, this.reward, tau, s.horizon, s.batch, this.state.rng, out);
      else this.env.estimateGradient(theta, this.reward, s.horizon, s.batch, this.state.rng, out);
    } else if (tau > 0) {
      const S = this.env.states;
      this.env.evaluateRegularized(theta, this.reward, tau, { J: new Float64Array(1), V: new Float64Array(S), Q: new Float64Array(this.reward.length), grad: out, occupancy: new Float64Array(S) });
    } else {
      exactGradient(this.env, theta, this.reward, out);
    }
  }

  ascend(theta: Float64Array, steps: number, correction: Float64Array | null): void {
    const s = this.settings;
    this.env.localRound({
      theta,
      reward: this.reward,
      correction,
      eta: s.eta,
      steps,
      gradient: s.gradient,
      horizon: s.horizon,
      batch: s.batch,
      rng: this.state.rng,
      ...(s.entropy > 0 ? { entropy: s.entropy } : {}),
    });
  }

  /**
   * The local phase of a round from `start` (theta_bar(t); ignored by 'local', which starts from
   * its own theta): the algorithm's local round, then the message into `message` (Delta_i, or
   * for 'local' the agent's new theta, which it sends to nobody), then Ditto's personal steps.
   */
  localPhase(start: Float64Array, down: readonly Float64Array[], message: Float64Array): void {
    const alg = this.algorithm;
    if (alg.topology === 'local') {
      const own = this.kept('theta');
      this.work.set(own);
      alg.localRound(this, own, this.work, down);
      message.set(own);
      return;
    }
    const theta = this.work;
    theta.set(start);
    alg.localRound(this, theta, start, down);
    deltaInto(message, theta, start);
    this.privatize(message);
    if (this.hostile) applyAttack(this.attack, message, this.state.rng);
    if (this.dittoLambda !== null) this.personalSteps(start);
  }

  /** The report phase at theta: the algorithm's report, kept as sent (pre-attack), then attacked. */
  reportPhase(theta: Float64Array, message: Float64Array): void {
    const alg = this.algorithm;
    if (!alg.report) throw new Error(`${alg.name} has no report phase`);
    // A decentralised agent reports at its own parameters.
    alg.report(this, alg.topology === 'peers' ? this.kept('theta') : theta, message);
    // An agent keeps its DP-noised, pre-attack report: the server's g averages exactly those.
    if (alg.topology === 'server') this.privatize(message);
    if (alg.keepsReport) this.kept(alg.keepsReport).set(message);
    if (this.hostile) applyAttack(this.attack, message, this.state.rng);
  }

  /** Differential privacy on a message it is about to send (privacy.ts): clip, then Gaussian noise. */
  private privatize(message: Float64Array): void {
    const s = this.settings;
    if (s.dpClip > 0) privatize(message, s.dpClip, s.dpNoise, this.state.rng);
  }

  /**
   * Ditto (Li et al., ICML 2021): H steps v_i += eta (g_hat_i(v_i) - LAMBDA (v_i - theta_bar(t)))
   * with fresh samples and no correction: sampled, in one call with the pull (LocalRoundArgs.pull);
   * exact (or with entropy), one step per call, the pull as the correction.
   */
  private personalSteps(start: Float64Array): void {
    const v = this.kept('personal');
    const lambda = this.dittoLambda!;
    const s = this.settings;
    if (s.gradient === 'sampled' && !(s.entropy > 0)) {
      // All H steps in one call: the kernel applies the pull as a per-row decay (LocalRoundArgs.pull).
      this.env.localRound({
        theta: v, reward: this.reward, correction: null, eta: s.eta, steps: s.localSteps, gradient: 'sampled',
        horizon: s.horizon, batch: s.batch, rng: this.state.rng, pull: { weight: lambda, center: start },
      });
      return;
    }
    const pull = this.scratch('personal-pull');
    for (let l = 0; l < this.settings.localSteps; l++) {
      for (let j = 0; j < pull.length; j++) pull[j] = -(lambda * (v[j]! - start[j]!));
      this.ascend(v, 1, pull);
    }
  }
}

/** grad J_i(theta) exactly, into out. */
export function exactGradient(env: Environment, theta: Float64Array, reward: Float64Array, out: Float64Array, qScratch?: Float64Array): void {
  const S = env.states;
  env.evaluate(theta, reward, {
    J: new Float64Array(1),
    V: new Float64Array(S),
    Q: qScratch ?? new Float64Array(reward.length),
    grad: out,
    occupancy: new Float64Array(S),
  });
}
