import type { Environment } from '../backends/types.js';
import type { TrainSettings } from './settings.js';

/**
 * One agent as the aggregator sees it: it receives theta_bar and the global gradient memory g,
 * runs its local steps without communication, and keeps its own data (reward table, random
 * stream, its memory sample g_i) private. In-process, worker and networked agents all implement
 * this, so the training loop (train.ts) is the same for every runtime.
 */
export interface AgentState {
  /** The agent's random stream (xoshiro128** words), advanced by every sampled gradient. */
  rng: Uint32Array;
  /** g_i(theta_bar) as last sent to the server (Fast-FedPG's memory), or null before the first. */
  memory: Float64Array | null;
}

/** An agent in this thread, computing with the given backend environment. */
export class LocalAgent {
  private readonly correction: Float64Array;
  private readonly scratch: Float64Array;

  constructor(
    readonly id: number,
    private readonly env: Environment,
    private readonly reward: Float64Array,
    readonly state: AgentState,
  ) {

    this.correction = new Float64Array(reward.length);
    this.scratch = new Float64Array(reward.length);
  }

  /**
   * H local steps from `start` into `out` (Eq. 6). With `globalMemory` (Fast-FedPG) every step
   * adds g - g_i, where g_i is this agent's remembered sample, not a fresh one: only then does
   * the correction telescope.
   */
  localRound(start: Float64Array, globalMemory: Float64Array | null, steps: number, s: TrainSettings, out: Float64Array): void {
    out.set(start);
    let correction: Float64Array | null = null;
    if (globalMemory) {
      let mine = this.state.memory;
      if (!mine) throw new Error(`agent ${this.id} has no gradient memory yet`);
      if (s.correction === 'fresh') {
        // The ablation: a new sample at theta_bar, which the server's g never saw.
        mine = this.scratch;
        this.gradientAt(start, s, mine);
      }
      correction = this.correction;
      for (let j = 0; j < correction.length; j++) correction[j] = globalMemory[j]! - mine[j]!;
    }
    this.env.localRound({
      theta: out,
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

  /** g_i(theta): a sample (or the exact gradient) of this agent's objective, J_tau when entropy > 0. */
  private gradientAt(theta: Float64Array, s: TrainSettings, out: Float64Array): void {
    const tau = s.entropy;
    if (s.gradient === 'sampled') {
      if (tau > 0) this.env.estimateRegularized!(theta, this.reward, tau, s.horizon, s.batch, this.state.rng, out);
      else this.env.estimateGradient(theta, this.reward, s.horizon, s.batch, this.state.rng, out);
    } else if (tau > 0) {
      const S = this.env.states;
      this.env.evaluateRegularized!(theta, this.reward, tau, { J: new Float64Array(1), V: new Float64Array(S), Q: new Float64Array(this.reward.length), grad: out, occupancy: new Float64Array(S) });
    } else {
      exactGradient(this.env, theta, this.reward, out);
    }
  }

  /** Samples g_i(theta), keeps it as the memory and returns it (the second message of a round). */
  sampleMemory(theta: Float64Array, s: TrainSettings): Float64Array {
    const g = this.state.memory ?? new Float64Array(this.reward.length);
    this.gradientAt(theta, s, g);
    this.state.memory = g;
    return g;
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
