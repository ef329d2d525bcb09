import type { EnvironmentSpec, TransitionTable } from '../backends/types.js';

/**
 * A validated multi-agent tabular MDP: shared S, A, gamma and rho; either one transition kernel
 * shared by every agent (the paper's main setting) or one per agent (its Theorem 3 setting); one
 * reward table per agent. Tables are row-major Float64Arrays (see src/backends/types.ts).
 */
export interface Mdp {
  name?: string;
  states: number;
  actions: number;
  gamma: number;
  initial: Float64Array;
  /** Length 1 when the kernel is shared, N when every agent has its own. */
  kernels: TransitionTable[];
  /** The file gave one kernel per agent ([N][S][A][S]): no average MDP, no J*. */
  perAgentKernels: boolean;
  /** N reward tables of S*A values in [0, 1]. */
  rewards: Float64Array[];
}

export function agentCount(mdp: Mdp): number {
  return mdp.rewards.length;
}

/** True when every agent has its own transition kernel: no average MDP, no J*. */
export function hasPerAgentKernels(mdp: Mdp): boolean {
  return mdp.perAgentKernels;
}

/** The environment agent i samples from. */
export function environmentSpec(mdp: Mdp, agent = 0): EnvironmentSpec {
  const k = mdp.kernels.length === 1 ? mdp.kernels[0]! : mdp.kernels[agent]!;
  return { states: mdp.states, actions: mdp.actions, gamma: mdp.gamma, initial: mdp.initial, transitions: k };
}

/** R_bar = (1/N) sum_i R_i, summed in agent order. */
export function averageReward(mdp: Mdp): Float64Array {
  const SA = mdp.states * mdp.actions;
  const out = new Float64Array(SA);
  for (const r of mdp.rewards) for (let j = 0; j < SA; j++) out[j] = out[j]! + r[j]!;
  const n = mdp.rewards.length;
  for (let j = 0; j < SA; j++) out[j] = out[j]! / n;
  return out;
}

/** All reward tables in one [N*S*A] array, the layout Environment.evaluate takes. */
export function stackedRewards(mdp: Mdp, agents: number[] = mdp.rewards.map((_, i) => i)): Float64Array {
  const SA = mdp.states * mdp.actions;
  const out = new Float64Array(agents.length * SA);
  agents.forEach((i, k) => out.set(mdp.rewards[i]!, k * SA));
  return out;
}
