import type { Command } from 'commander';
import { DEFAULT_MEMORY_BUDGET, formatBytes, MEMORY_BUDGET_ENV, parseBytes, setMemoryBudget } from '../limits.js';
import { loadMdp } from '../mdp/format.js';
import type { Mdp } from '../mdp/model.js';
import { describeRewardMap, rescaleRewards, type RewardMap } from '../mdp/rescale.js';

/**
 * The flags of the commands that read or generate MDPs: --memory-budget (src/limits.ts) and
 * --rescale-rewards (src/mdp/rescale.ts), so each command adds them with one line.
 */

/** Adds --memory-budget; a preAction hook sets the project's budget before the command runs. */
export function addMemoryBudgetFlag(cmd: Command): Command {
  return cmd
    .option('--memory-budget <bytes>', `most memory an MDP's tables may take when read or generated, e.g. 8GiB (default $${MEMORY_BUDGET_ENV}, else ${formatBytes(DEFAULT_MEMORY_BUDGET)})`)
    .hook('preAction', (_parent, action) => {
      const v = action.opts<{ memoryBudget?: string }>().memoryBudget;
      setMemoryBudget(v === undefined ? undefined : parseBytes(v, '--memory-budget'));
    });
}

export function addRescaleFlag(cmd: Command): Command {
  return cmd.option('--rescale-rewards', 'accept rewards outside [0, 1] and map all agents\' rewards into it with one affine map from the global min and max (the output states the map)');
}

export interface LoadedMdp {
  mdp: Mdp;
  /** Set when --rescale-rewards was given. */
  rewardMap: RewardMap | null;
}

/** Applies --rescale-rewards to an MDP (null map without the flag). */
export function rescaleIfAsked(mdp: Mdp, o: { rescaleRewards?: boolean }): LoadedMdp {
  return o.rescaleRewards ? rescaleRewards(mdp) : { mdp, rewardMap: null };
}

/** Loads an MDP file (JSON or .npz) honouring --rescale-rewards. */
export function loadMdpWithFlags(path: string, o: { rescaleRewards?: boolean }): LoadedMdp {
  return rescaleIfAsked(loadMdp(path, { anyFiniteRewards: !!o.rescaleRewards }), o);
}

/** The --json result with the reward map added when rewards were rescaled. */
export function withRewardMap<T extends object>(result: T, loaded: LoadedMdp): T | (T & { rewardMap: RewardMap }) {
  return loaded.rewardMap ? { ...result, rewardMap: loaded.rewardMap } : result;
}

/** The text line stating the map, or none. */
export function rewardMapLines(loaded: LoadedMdp): string[] {
  return loaded.rewardMap ? [describeRewardMap(loaded.rewardMap)] : [];
}
