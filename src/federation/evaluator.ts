import type { Environment, Evaluation } from '../backends/types.js';
import { sumInto } from './aggregate.js';
import type { Mdp } from '../mdp/model.js';
import { averageReward, stackedRewards } from '../mdp/model.js';

/** What the log records about a policy: exact J (mean of the agents' J_i) and |grad J|^2. */
export interface PolicyScore {
  J: number;
  gradNormSq: number;
  /** J_i per agent. */
  perAgent: Float64Array;
}

/** One batch of agents evaluated with one call: the agents sharing a kernel, or one agent with its own. */
export interface ScoreGroup {
  env: Environment;
  /** Global agent indices, in order. */
  agents: number[];
  /** Their reward tables stacked, [agents.length * S*A]. */
  rewards: Float64Array;
}

/**
 * J_i(theta) and grad J_i(theta) exactly, for some agents: the whole federation in the main
 * thread, or a worker's own agents (worker pools evaluate theta_bar beside the agents, so the
 * round's evaluation runs in parallel). Every backend evaluates each reward table of a batch on
 * its own (the factorisation is shared, the arithmetic per table is not), so J_i does not depend
 * on which agents share the call: the federation's score is the same for any number of workers.
 */
export class AgentScorer {
  private readonly groups: (ScoreGroup & { out: Evaluation })[];

  constructor(
    groups: ScoreGroup[],
    S: number,
    private readonly SA: number,
  ) {
    this.groups = groups.map((g) => ({
      ...g,
      out: {
        J: new Float64Array(g.agents.length),
        V: new Float64Array(g.agents.length * S),
        Q: new Float64Array(g.agents.length * SA),
        grad: new Float64Array(g.agents.length * SA),
        occupancy: new Float64Array(S),
      },
    }));
  }

  /** Writes J_i into J[i] and grad J_i into grad[i*SA ..] for this scorer's agents (global indices). */
  scoreInto(theta: Float64Array, J: Float64Array, grad: Float64Array): void {
    const SA = this.SA;
    for (const g of this.groups) {
      g.env.evaluate(theta, g.rewards, g.out);
      g.agents.forEach((i, k) => {
        J[i] = g.out.J[k]!;
        grad.set(g.out.grad.subarray(k * SA, (k + 1) * SA), i * SA);
      });
    }
  }
}

/**
 * The federation's score from the agents' J_i and gradients, summed in agent order whatever
 * computed them (so the result is the same in-process and with any number of workers).
 */
export function combineScores(perAgent: Float64Array, grad: Float64Array, SA: number, gsum: Float64Array): { J: number; gradNormSq: number } {
  const N = perAgent.length;
  sumInto(gsum, Array.from({ length: N }, (_, i) => grad.subarray(i * SA, (i + 1) * SA)));
  return scoreFromGradSum(perAgent, gsum);
}

/** combineScores' second half, from gsum = sum_i grad J_i (summed in agent order, here or by the workers). */
export function scoreFromGradSum(perAgent: Float64Array, gsum: Float64Array): { J: number; gradNormSq: number } {
  const N = perAgent.length;
  let J = 0;
  for (let i = 0; i < N; i++) J += perAgent[i]!;
  J /= N;
  let gradNormSq = 0;
  for (let j = 0; j < gsum.length; j++) {
    const v = gsum[j]! / N;
    gradNormSq += v * v;
  }
  return { J, gradNormSq };
}

/** The score groups of some agents of an MDP: one batch per kernel (one when the kernel is shared). */
export function scoreGroups(mdp: Mdp, envs: Environment[], agents: number[] = mdp.rewards.map((_, i) => i)): ScoreGroup[] {
  if (envs.length === 1) return agents.length ? [{ env: envs[0]!, agents, rewards: stackedRewards(mdp, agents) }] : [];
  return agents.map((i) => ({ env: envs[i]!, agents: [i], rewards: stackedRewards(mdp, [i]) }));
}

/**
 * Exact evaluation of theta for every agent at once: one factorisation per kernel (one when the
 * kernel is shared), all reward tables solved against it.
 */
export class Evaluator {
  private readonly scorer: AgentScorer;
  private readonly N: number;
  private readonly SA: number;
  private readonly gradSum: Float64Array;
  private readonly grad: Float64Array;
  /** J* of the average MDP, or null with per-agent kernels. */
  readonly Jstar: number | null;

  private readonly envs: Environment[];
  private readonly rewards: Float64Array[];
  private readonly one: Evaluation;
  /** J_i* per agent (each agent's own optimum on its own kernel), when asked for. */
  readonly JstarPerAgent: number[] | null;

  constructor(mdp: Mdp, envs: Environment[], o: { perAgentOptimum?: boolean } = {}) {
    this.N = mdp.rewards.length;
    this.envs = envs;
    this.rewards = mdp.rewards;
    const S = mdp.states;
    this.SA = S * mdp.actions;
    this.scorer = new AgentScorer(scoreGroups(mdp, envs), S, this.SA);
    this.gradSum = new Float64Array(this.SA);
    this.grad = new Float64Array(this.N * this.SA);
    this.Jstar = mdp.perAgentKernels ? null : envs[0]!.optimal(averageReward(mdp), new Float64Array(S));
    this.one = { J: new Float64Array(1), V: new Float64Array(S), Q: new Float64Array(this.SA), grad: new Float64Array(this.SA), occupancy: new Float64Array(S) };
    this.JstarPerAgent = o.perAgentOptimum ? mdp.rewards.map((r, i) => this.envOf(i).optimal(r, new Float64Array(S))) : null;
  }

  private envOf(i: number): Environment {
    return this.envs.length === 1 ? this.envs[0]! : this.envs[i]!;
  }

  /** (1/N) sum_i J_i(v_i): every agent's own objective at its own policy (Ditto's personal J), in agent order. */
  personalJ(policies: readonly Float64Array[]): number {
    let J = 0;
    policies.forEach((v, i) => {
      this.envOf(i).evaluate(v, this.rewards[i]!, this.one);
      J += this.one.J[0]!;
    });
    return J / policies.length;
  }

  /** (1/N) sum_i (J_i* - J_i(v_i)) from the personal J: the mean of J_i* minus it. */
  personalGap(personalJ: number): number | null {
    if (!this.JstarPerAgent) return null;
    let s = 0;
    for (const j of this.JstarPerAgent) s += j;
    return s / this.JstarPerAgent.length - personalJ;
  }

  score(theta: Float64Array): PolicyScore {
    const perAgent = new Float64Array(this.N);
    this.scorer.scoreInto(theta, perAgent, this.grad);
    return { ...combineScores(perAgent, this.grad, this.SA, this.gradSum), perAgent };
  }
}
