import type { Mdp } from './model.js';

/**
 * --rescale-rewards: every agent's rewards mapped into [0, 1] by ONE affine map r' = scale * r +
 * offset taken from the global minimum and maximum over all agents. One map for everybody scales
 * the objective J = (1/N) sum_i J_i by `scale` and shifts it by offset / (1 - gamma), so its
 * maximiser (and every algorithm's path up to the step size) is the same problem as before.
 */

export interface RewardMap {
  scale: number;
  offset: number;
}

/** The smallest and largest reward over every agent's table. */
export function rewardRange(rewards: readonly Float64Array[]): { min: number; max: number } {
  let min = Infinity, max = -Infinity;
  for (const r of rewards)
    for (let j = 0; j < r.length; j++) {
      const v = r[j]!;
      if (v < min) min = v;
      if (v > max) max = v;
    }
  return { min, max };
}

/**
 * The rescaled MDP (new reward tables; the rest shared) and the map. Values are computed as
 * (r - min) / (max - min), so the extremes land exactly on 0 and 1; scale and offset report the
 * same map. When every reward is equal the map is r - min (all rewards become 0).
 */
export function rescaleRewards(mdp: Mdp): { mdp: Mdp; rewardMap: RewardMap } {
  const { min, max } = rewardRange(mdp.rewards);
  const width = max - min;
  const rewards = mdp.rewards.map((r) => Float64Array.from(r, (v) => (width > 0 ? (v - min) / width : v - min)));
  const rewardMap = width > 0 ? { scale: 1 / width, offset: -min / width } : { scale: 1, offset: -min };
  return { mdp: { ...mdp, rewards }, rewardMap };
}

/** The one-line statement of the map for text output. */
export function describeRewardMap(m: RewardMap): string {
  return `rewards rescaled into [0, 1] with one affine map for every agent: r' = ${m.scale} * r + ${m.offset} (J' = ${m.scale} * J + offset / (1 - gamma))`;
}
