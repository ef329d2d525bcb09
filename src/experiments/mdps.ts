import { existsSync } from 'node:fs';
import seedrandom from 'seedrandom';
import type { TransitionTable } from '../backends/types.js';
import { InputError } from '../errors.js';
import { loadMdp, parseMdp } from '../mdp/format.js';
import { gridworldMdp, randomMdp } from '../mdp/generate.js';
import { averageReward, type Mdp } from '../mdp/model.js';
import { BUILTIN_MDP_JSON } from './builtin.js';

/**
 * Where an experiment's MDP comes from. A source is named by one string (the `--mdp` flag):
 * - a fedpg-mdp/1 file that exists;
 * - an embedded fixture: plateau-s6-a3-n4, speedup-s5-a3-n8, labbi-challenging;
 * - a seeded generator, `KIND:key=value,...`:
 *     mirrored:states=5,actions=3,agents=32,gamma=0.8,heterogeneity=1,seed=1
 *     random:states=6,actions=3,agents=4,gamma=0.9,heterogeneity=0.5,seed=0
 *     kernels:states=6,actions=3,agents=8,gamma=0.9,heterogeneity=0.5,seed=0
 *     gridworld:width=5,height=5,agents=4,slip=0.1,gamma=0.9,seed=0  (the multi-task gridworld of `fedpg run`)
 *   (missing keys take these values). `mirrored` builds agents in mirrored reward pairs around one
 *   mean table (agents 2k and 2k+1), as the speedup fixture is built, so the first N agents share
 *   one average MDP for every even N. `kernels` gives every agent its own transition kernel
 *   (the paper's Theorem 3 setting).
 */

export const BUILTIN_MDPS: readonly string[] = Object.keys(BUILTIN_MDP_JSON);

export interface MdpSource {
  /** The string it was resolved from. */
  spec: string;
  kind: 'file' | 'builtin' | 'generated';
  mdp: Mdp;
}

const GENERATOR_DEFAULTS: Record<string, Record<string, number>> = {
  mirrored: { states: 5, actions: 3, agents: 32, gamma: 0.8, heterogeneity: 1, seed: 1 },
  random: { states: 6, actions: 3, agents: 4, gamma: 0.9, heterogeneity: 0.5, seed: 0 },
  kernels: { states: 6, actions: 3, agents: 8, gamma: 0.9, heterogeneity: 0.5, seed: 0 },
  gridworld: { width: 5, height: 5, agents: 4, slip: 0.1, gamma: 0.9, seed: 0 },
};

function parseGenerator(spec: string): { kind: string; o: Record<string, number> } | null {
  const m = /^([a-z]+):(.*)$/.exec(spec);
  if (!m || !(m[1]! in GENERATOR_DEFAULTS)) return null;
  const kind = m[1]!;
  const o = { ...GENERATOR_DEFAULTS[kind]! };
  for (const part of m[2]!.split(',').filter((p) => p.trim() !== '')) {
    const kv = /^\s*([a-z]+)\s*=\s*(\S+)\s*$/.exec(part);
    if (!kv) throw new InputError(`--mdp ${spec}: '${part}' is not key=value`);
    const key = kv[1]!;
    if (!(key in o)) throw new InputError(`--mdp ${spec}: unknown key '${key}' (keys: ${Object.keys(o).join(', ')})`);
    const v = Number(kv[2]);
    if (!Number.isFinite(v)) throw new InputError(`--mdp ${spec}: ${key} must be a number, got '${kv[2]}'`);
    o[key] = v;
  }
  return { kind, o };
}

/** Resolves a source string (see the module comment); throws InputError naming the choices. */
export function resolveMdpSource(spec: string): MdpSource {
  if (existsSync(spec)) return { spec, kind: 'file', mdp: loadMdp(spec) };
  const builtin = BUILTIN_MDP_JSON[spec];
  if (builtin !== undefined) return { spec, kind: 'builtin', mdp: parseMdp(builtin, spec) };
  const gen = parseGenerator(spec);
  if (gen) {
    const { kind, o } = gen;
    if (kind === 'gridworld') {
      const { goals: _g, width: _w, height: _h, ...mdp } = gridworldMdp({ width: o.width!, height: o.height!, agents: o.agents!, slip: o.slip!, gamma: o.gamma!, seed: o.seed! });
      return { spec, kind: 'generated', mdp };
    }
    const base = { states: o.states!, actions: o.actions!, agents: o.agents!, gamma: o.gamma!, heterogeneity: o.heterogeneity!, seed: o.seed! };
    const mdp = kind === 'mirrored' ? mirroredMdp(base) : kind === 'kernels' ? perAgentKernelMdp(base) : randomMdp(base);
    return { spec, kind: 'generated', mdp };
  }
  throw new InputError(
    `--mdp '${spec}' is not a file, an embedded MDP (${BUILTIN_MDPS.join(', ')}) or a generator (${Object.keys(GENERATOR_DEFAULTS)
      .map((k) => `${k}:key=value,...`)
      .join(', ')})`,
  );
}

export interface GeneratedOptions {
  states: number;
  actions: number;
  agents: number;
  gamma: number;
  heterogeneity: number;
  seed: number;
}

function checkHeterogeneity(h: number): void {
  if (!Number.isFinite(h) || h < 0 || h > 1) throw new InputError(`heterogeneity must be in [0, 1], got ${h}`);
}

/**
 * Mirrored reward pairs around one mean table (the construction of the speedup fixture): a
 * random kernel and rho (randomMdp's, same seed), a mean m(s,a) ~ U(0,1), and for every pair k a
 * deviation d_k(s,a) = heterogeneity * u * min(m, 1 - m) with u ~ U(-1, 1): agent 2k gets m + d_k,
 * agent 2k+1 gets m - d_k. Rewards stay in [0, 1] and the first N agents' average is m for
 * every even N.
 */
export function mirroredMdp(o: GeneratedOptions): Mdp {
  checkHeterogeneity(o.heterogeneity);
  if (!Number.isSafeInteger(o.agents) || o.agents < 2 || o.agents % 2 !== 0) throw new InputError(`mirrored: agents must be an even integer >= 2, got ${o.agents}`);
  const base = randomMdp({ states: o.states, actions: o.actions, agents: 1, gamma: o.gamma, heterogeneity: 0, seed: o.seed });
  const rand = seedrandom(`fedpg-mirrored-${o.seed}`);
  const SA = o.states * o.actions;
  const mean = Float64Array.from({ length: SA }, () => rand());
  const rewards: Float64Array[] = [];
  for (let k = 0; k < o.agents / 2; k++) {
    const d = Float64Array.from(mean, (m) => o.heterogeneity * (2 * rand() - 1) * Math.min(m, 1 - m));
    rewards.push(Float64Array.from(mean, (m, j) => m + d[j]!), Float64Array.from(mean, (m, j) => m - d[j]!));
  }
  const name = `mirrored-s${o.states}-a${o.actions}-n${o.agents}-h${o.heterogeneity}-seed${o.seed}`;
  return { ...base, name, rewards };
}

/**
 * One transition kernel per agent: P_i = (1 - h) P_common + h P_own,i, every row a random
 * distribution (randomMdp's construction), and rewards from randomMdp with the same
 * heterogeneity. There is no average MDP and no J* (SPEC.md, Theorem 3 setting).
 */
export function perAgentKernelMdp(o: GeneratedOptions): Mdp {
  checkHeterogeneity(o.heterogeneity);
  const base = randomMdp({ states: o.states, actions: o.actions, agents: o.agents, gamma: o.gamma, heterogeneity: o.heterogeneity, seed: o.seed });
  const common = (base.kernels[0] as Extract<TransitionTable, { kind: 'dense' }>).p;
  const rand = seedrandom(`fedpg-kernels-${o.seed}`);
  const S = o.states;
  const kernels: TransitionTable[] = [];
  for (let i = 0; i < o.agents; i++) {
    const p = new Float64Array(common.length);
    for (let r = 0; r < common.length / S; r++) {
      let sum = 0;
      const own = new Float64Array(S);
      for (let j = 0; j < S; j++) sum += own[j] = rand() + 1e-3;
      let total = 0;
      for (let j = 0; j < S; j++) total += p[r * S + j] = (1 - o.heterogeneity) * common[r * S + j]! + (o.heterogeneity * own[j]!) / sum;
      for (let j = 0; j < S; j++) p[r * S + j] = p[r * S + j]! / total;
    }
    kernels.push({ kind: 'dense', p });
  }
  const name = `kernels-s${o.states}-a${o.actions}-n${o.agents}-h${o.heterogeneity}-seed${o.seed}`;
  return { ...base, name, kernels, perAgentKernels: true };
}

/**
 * The first N agents of a source. N = 1 on a multi-agent MDP with a shared kernel means the
 * average reward table of all its agents (for a mirrored source: the common average MDP); with
 * per-agent kernels there is no average, and N = 1 is agent 0.
 */
export function firstAgents(mdp: Mdp, N: number): Mdp {
  const total = mdp.rewards.length;
  if (!Number.isSafeInteger(N) || N < 1 || N > total) throw new InputError(`${mdp.name ?? 'the MDP'} has ${total} agents; cannot take ${N}`);
  if (N === total) return mdp;
  if (N === 1 && !mdp.perAgentKernels) return { ...mdp, rewards: [averageReward(mdp)] };
  return { ...mdp, rewards: mdp.rewards.slice(0, N), kernels: mdp.perAgentKernels ? mdp.kernels.slice(0, N) : mdp.kernels };
}

/** The source's first N agents (see firstAgents), or null, with a note, when it has fewer. */
export function agentsOrSkip(src: { label: string; mdp: Mdp }, N: number, notes: string[]): Mdp | null {
  const total = src.mdp.rewards.length;
  if (N > total) {
    notes.push(`${src.label} has ${total} agents: N = ${N} skipped.`);
    return null;
  }
  return firstAgents(src.mdp, N);
}

/**
 * The heterogeneity knob on any MDP: every agent's deviation from the average reward scaled by
 * h, R_i(h) = (1 - h) R_bar + h R_i. h = 1 is the MDP itself, h = 0 makes all agents equal; the
 * average reward table (so J* and the average MDP) is the same for every h.
 */
export function scaleHeterogeneity(mdp: Mdp, h: number): Mdp {
  checkHeterogeneity(h);
  if (h === 1) return mdp;
  const bar = averageReward(mdp);
  const rewards = mdp.rewards.map((r) => Float64Array.from(r, (v, j) => Math.min(1, Math.max(0, (1 - h) * bar[j]! + h * v))));
  return { ...mdp, rewards };
}
