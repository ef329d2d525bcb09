import type { Command } from 'commander';
import { InputError } from '../../errors.js';
import { formatBytes } from '../../limits.js';
import { mdpToJson } from '../../mdp/format.js';
import { chainMdp, DEFAULT_GOAL_SPACING, GOAL_LAYOUTS, gridworldMdp, randomMdp } from '../../mdp/generate.js';
import { maxJsonBytes } from '../../mdp/input-file.js';
import type { Mdp } from '../../mdp/model.js';
import { writeNpz } from '../../mdp/npz.js';
import { writeFileAtomic } from '../../util/atomic.js';
import { int, num, oneOf } from '../flags.js';
import { addMemoryBudgetFlag } from '../mdp-flags.js';

/**
 * About how many bytes the JSON of an MDP takes (every number printed as up to 24 characters),
 * so a JSON file that could not be read back (or not held as one string) is refused before it
 * is built, with a pointer to .npz.
 */
export function estimatedJsonBytes(mdp: Mdp): number {
  const S = mdp.states, A = mdp.actions;
  const kernel = mdp.kernels.reduce((n, k) => n + (k.kind === 'dense' ? k.p.length * 20 : k.rowStart[S * A]! * 48), 0);
  return S * 24 + kernel + mdp.rewards.length * S * A * 20;
}

interface GenerateFlags {
  states?: string;
  actions?: string;
  agents?: string;
  gamma?: string;
  heterogeneity?: string;
  branching?: string;
  width?: string;
  height?: string;
  slip?: string;
  goals?: string;
  goalSpacing?: string;
  seed?: string;
  out?: string;
  compress?: boolean;
}

export function generateCommand(program: Command): void {
  const cmd = program
    .command('generate')
    .description('write a seeded fedpg-mdp/1 MDP: random, gridworld or chain (JSON, or .npz when --out ends in .npz)')
    .argument('<kind>', 'random | gridworld | chain')
    .option('--states <S>', 'random, chain: number of states (default 10)')
    .option('--actions <A>', 'random: number of actions (default 4)')
    .option('--agents <N>', 'number of agents (default 4)')
    .option('--gamma <g>', 'discount in [0,1) (default 0.9; chain 0.95)')
    .option('--heterogeneity <h>', 'random, chain: reward heterogeneity in [0,1]: 0 identical, 1 independent (default 0.5; chain 0)')
    .option('--branching <b>', 'random: non-zero next states per (s,a); below S the kernel is written sparse')
    .option('--width <W>', 'gridworld: width (default 5)')
    .option('--height <H>', 'gridworld: height (default 5)')
    .option('--slip <p>', 'gridworld, chain: probability that a move slips (default 0.1)')
    .option('--goals <layout>', `gridworld: ${GOAL_LAYOUTS.join(' | ')}: one goal per agent (the first four in the corners), or a goal every --goal-spacing cells per agent so short episodes reach one at any size (default corners)`)
    .option('--goal-spacing <D>', `gridworld --goals spread: distance between an agent's goals (default ${DEFAULT_GOAL_SPACING}); episodes of K >= 2D steps reach one from anywhere`)
    .option('--seed <n>', 'seed (default 0)')
    .option('--out <file>', 'write here (atomically) instead of stdout; a name ending in .npz writes numpy\'s .npz (for large MDPs)')
    .option('--compress', '.npz: deflate the arrays (as np.savez_compressed); default stored (as np.savez)');
  addMemoryBudgetFlag(cmd)
    .action((kind: string, o: GenerateFlags) => {
      let mdp: Mdp;
      const agents = int('agents', o.agents, 1) ?? 4;
      const seed = int('seed', o.seed, 0) ?? 0;
      if (kind === 'random') {
        const opts: Parameters<typeof randomMdp>[0] = {
          states: int('states', o.states, 1) ?? 10,
          actions: int('actions', o.actions, 1) ?? 4,
          agents,
          seed,
        };
        const g = num('gamma', o.gamma), h = num('heterogeneity', o.heterogeneity), b = int('branching', o.branching, 1);
        if (g !== undefined) opts.gamma = g;
        if (h !== undefined) opts.heterogeneity = h;
        if (b !== undefined) opts.branching = b;
        mdp = randomMdp(opts);
      } else if (kind === 'gridworld') {
        const opts: Parameters<typeof gridworldMdp>[0] = { width: int('width', o.width, 1) ?? 5, height: int('height', o.height, 1) ?? 5, agents, seed };
        const g = num('gamma', o.gamma), sl = num('slip', o.slip), layout = oneOf('goals', o.goals, GOAL_LAYOUTS), d = int('goal-spacing', o.goalSpacing, 1);
        if (g !== undefined) opts.gamma = g;
        if (sl !== undefined) opts.slip = sl;
        if (layout !== undefined) opts.goals = layout;
        if (d !== undefined && layout !== 'spread') throw new InputError('--goal-spacing needs --goals spread');
        if (d !== undefined) opts.goalSpacing = d;
        const { goals: _g, width: _w, height: _h, ...plain } = gridworldMdp(opts);
        mdp = plain;
      } else if (kind === 'chain') {
        const opts: Parameters<typeof chainMdp>[0] = { states: int('states', o.states, 2) ?? 10, agents, seed };
        const g = num('gamma', o.gamma), sl = num('slip', o.slip), h = num('heterogeneity', o.heterogeneity);
        if (g !== undefined) opts.gamma = g;
        if (sl !== undefined) opts.slip = sl;
        if (h !== undefined) opts.heterogeneity = h;
        mdp = chainMdp(opts);
      } else {
        throw new InputError(`unknown MDP kind '${kind}' (choose random, gridworld or chain)`);
      }
      if (o.out?.toLowerCase().endsWith('.npz')) return writeNpz(o.out, mdp, { compress: !!o.compress });
      if (o.compress) throw new InputError('--compress applies to .npz output (--out FILE.npz)');
      const size = estimatedJsonBytes(mdp), max = maxJsonBytes();
      if (size > max) throw new InputError(`as JSON this MDP would take about ${formatBytes(size)}, more than the ${formatBytes(max)} a JSON MDP file may have; write .npz instead (--out FILE.npz)`);
      const text = JSON.stringify(mdpToJson(mdp)) + '\n';
      if (o.out) writeFileAtomic(o.out, text);
      else process.stdout.write(text);
    });
}
