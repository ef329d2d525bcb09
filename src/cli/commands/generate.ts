import type { Command } from 'commander';
import { InputError } from '../../errors.js';
import { mdpToJson } from '../../mdp/format.js';
import { chainMdp, gridworldMdp, randomMdp } from '../../mdp/generate.js';
import type { Mdp } from '../../mdp/model.js';
import { writeFileAtomic } from '../../util/atomic.js';
import { int, num } from '../flags.js';

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
  seed?: string;
  out?: string;
}

export function generateCommand(program: Command): void {
  program
    .command('generate')
    .description('write a seeded fedpg-mdp/1 MDP: random, gridworld or chain')
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
    .option('--seed <n>', 'seed (default 0)')
    .option('--out <file>', 'write here (atomically) instead of stdout')
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
        const g = num('gamma', o.gamma), sl = num('slip', o.slip);
        if (g !== undefined) opts.gamma = g;
        if (sl !== undefined) opts.slip = sl;
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
      const text = JSON.stringify(mdpToJson(mdp)) + '\n';
      if (o.out) writeFileAtomic(o.out, text);
      else process.stdout.write(text);
    });
}
