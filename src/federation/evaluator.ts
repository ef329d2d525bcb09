import type { Environment, Evaluation } from '../backends/types.js';
import type { Mdp } from '../mdp/model.js';
import { averageReward, stackedRewards } from '../mdp/model.js';

/** What the log records about a policy: exact J (mean of the agents' J_i) and |grad J|^2. */
export interface PolicyScore {
  J: number;
  gradNormSq: number;
  /** J_i per agent. */
  perAgent: Float64Array;
}

/**
 * Exact evaluation of theta for every agent at once: one factorisation per kernel (one when the
 * kernel is shared), all reward tables solved against it.
 */
export class Evaluator {
  private readonly groups: { env: Environment; agents: number[]; rewards: Float64Array; out: Evaluation }[];
  private readonly N: number;
  private readonly SA: number;
  private readonly gradSum: Float64Array;
  /** J* of the average MDP, or null with per-agent kernels. */
  readonly Jstar: number | null;

  constructor(mdp: Mdp, envs: Environment[]) {
    this.N = mdp.rewards.length;
    const S = mdp.states;
    this.SA = S * mdp.actions;
    const groups = envs.length === 1 ? [mdp.rewards.map((_, i) => i)] : envs.map((_, i) => [i]);
    this.groups = groups.map((agents, k) => ({
      env: envs[k]!,
      agents,
      rewards: stackedRewards(mdp, agents),
      out: {
        J: new Float64Array(agents.length),
        V: new Float64Array(agents.length * S),
        Q: new Float64Array(agents.length * this.SA),
        grad: new Float64Array(agents.length * this.SA),
        occupancy: new Float64Array(S),
      },
    }));
    this.gradSum = new Float64Array(this.SA);
    this.Jstar = mdp.perAgentKernels ? null : envs[0]!.optimal(averageReward(mdp), new Float64Array(S));
  }

  score(theta: Float64Array): PolicyScore {
    const perAgent = new Float64Array(this.N);
    const gsum = this.gradSum;
    gsum.fill(0);
    const SA = this.SA;
    for (const g of this.groups) {
      g.env.evaluate(theta, g.rewards, g.out);
      g.agents.forEach((i, k) => {
        perAgent[i] = g.out.J[k]!;
      });
    }
    // Sums run in agent order whatever the grouping, so the result does not depend on it.
    let J = 0;
    for (let i = 0; i < this.N; i++) J += perAgent[i]!;
    J /= this.N;
    for (let i = 0; i < this.N; i++) {
      const g = this.groups.length === 1 ? this.groups[0]! : this.groups[i]!;
      const k = this.groups.length === 1 ? i : 0;
      for (let j = 0; j < SA; j++) gsum[j] = gsum[j]! + g.out.grad[k * SA + j]!;
    }
    let gradNormSq = 0;
    for (let j = 0; j < SA; j++) {
      const v = gsum[j]! / this.N;
      gradNormSq += v * v;
    }
    return { J, gradNormSq, perAgent };
  }
}
