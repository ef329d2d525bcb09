import seedrandom from 'seedrandom';
import type { TransitionTable } from '../backends/types.js';
import { InputError } from '../errors.js';
import type { Mdp } from './model.js';

/**
 * Seeded generators of multi-agent MDPs. The same options always give the same MDP (seedrandom's
 * ARC4 stream, keyed by the generator's name and seed), on every platform.
 */

function rng(kind: string, seed: number): () => number {
  return seedrandom(`fedpg-${kind}-${seed}`);
}

function checkInt(name: string, v: number, min: number, max: number): void {
  if (!Number.isSafeInteger(v) || v < min || v > max) throw new InputError(`${name} must be an integer in [${min}, ${max}], got ${v}`);
}

function checkRange(name: string, v: number, lo: number, hi: number, hiOpen = false): void {
  if (!Number.isFinite(v) || v < lo || (hiOpen ? v >= hi : v > hi)) throw new InputError(`${name} must be in [${lo}, ${hi}${hiOpen ? ')' : ']'}, got ${v}`);
}

export interface RandomMdpOptions {
  states: number;
  actions: number;
  agents: number;
  gamma?: number;
  /** 0: every agent has the same rewards; 1: independent rewards. R_i = (1-h) R_common + h R_own. */
  heterogeneity?: number;
  /** Non-zero next states per (s, a); the full S by default. Below S the kernel is stored sparse. */
  branching?: number;
  seed?: number;
}

/** A random MDP: random transition rows, and rewards mixing a common table with each agent's own. */
export function randomMdp(o: RandomMdpOptions): Mdp {
  const S = o.states, A = o.actions, N = o.agents;
  const gamma = o.gamma ?? 0.9, h = o.heterogeneity ?? 0.5, seed = o.seed ?? 0;
  const b = o.branching ?? S;
  checkInt('states', S, 1, 1 << 20);
  checkInt('actions', A, 1, 1 << 16);
  checkInt('agents', N, 1, 1 << 16);
  checkRange('gamma', gamma, 0, 1, true);
  checkRange('heterogeneity', h, 0, 1);
  checkInt('branching', b, 1, S);
  checkInt('seed', seed, 0, Number.MAX_SAFE_INTEGER);
  const rand = rng('random', seed);
  const initial = new Float64Array(S);
  let z = 0;
  for (let s = 0; s < S; s++) z += initial[s] = rand() + 1e-3;
  for (let s = 0; s < S; s++) initial[s] = initial[s]! / z;
  let kernel: TransitionTable;
  if (b === S && S * A * S <= 1 << 26) {
    const p = new Float64Array(S * A * S);
    for (let r = 0; r < S * A; r++) {
      let sum = 0;
      for (let j = 0; j < S; j++) sum += p[r * S + j] = rand() + 1e-3;
      for (let j = 0; j < S; j++) p[r * S + j] = p[r * S + j]! / sum;
    }
    kernel = { kind: 'dense', p };
  } else {
    const rowStart = new Int32Array(S * A + 1);
    const next = new Int32Array(S * A * b);
    const prob = new Float64Array(S * A * b);
    const pick = new Int32Array(S);
    for (let j = 0; j < S; j++) pick[j] = j;
    for (let r = 0; r < S * A; r++) {
      // b distinct next states by a partial Fisher-Yates shuffle, then sorted.
      for (let k = 0; k < b; k++) {
        const m = k + Math.floor(rand() * (S - k));
        const t = pick[k]!;
        pick[k] = pick[m]!;
        pick[m] = t;
      }
      const chosen = Array.from(pick.subarray(0, b)).sort((x, y) => x - y);
      let sum = 0;
      for (let k = 0; k < b; k++) {
        next[r * b + k] = chosen[k]!;
        sum += prob[r * b + k] = rand() + 1e-3;
      }
      for (let k = 0; k < b; k++) prob[r * b + k] = prob[r * b + k]! / sum;
      rowStart[r + 1] = (r + 1) * b;
    }
    kernel = { kind: 'sparse', rowStart, next, prob };
  }
  const common = Float64Array.from({ length: S * A }, () => rand());
  const rewards = Array.from({ length: N }, () => {
    const own = Float64Array.from({ length: S * A }, () => rand());
    return Float64Array.from(common, (c, j) => Math.min(1, Math.max(0, (1 - h) * c + h * own[j]!)));
  });
  return { name: `random-s${S}-a${A}-n${N}-h${h}-seed${seed}`, states: S, actions: A, gamma, initial, kernels: [kernel], perAgentKernels: false, rewards };
}

export interface GridworldOptions {
  width: number;
  height: number;
  agents: number;
  /** Probability that a move goes in a uniformly random direction instead. */
  slip?: number;
  gamma?: number;
  seed?: number;
}

/** Moves of the gridworld's four actions, in action order: up, right, down, left. */
export const GRID_MOVES: readonly (readonly [number, number])[] = [
  [0, -1],
  [1, 0],
  [0, 1],
  [-1, 0],
];

/**
 * The multi-task gridworld: W x H cells (state = y*W + x), four slippery moves shared by every
 * agent (a move into the wall stays put), start anywhere uniformly; agent i earns 1 for every
 * step it spends at its own goal cell. Goals are distinct cells drawn by the seed (the first
 * agents get the corners, which makes the tasks pull in opposite directions).
 */
export function gridworldMdp(o: GridworldOptions): Mdp & { goals: number[]; width: number; height: number } {
  const W = o.width, H = o.height, N = o.agents;
  const slip = o.slip ?? 0.1, gamma = o.gamma ?? 0.9, seed = o.seed ?? 0;
  checkInt('width', W, 1, 4096);
  checkInt('height', H, 1, 4096);
  const S = W * H;
  checkInt('agents', N, 1, S);
  checkRange('slip', slip, 0, 1);
  checkRange('gamma', gamma, 0, 1, true);
  checkInt('seed', seed, 0, Number.MAX_SAFE_INTEGER);
  const rand = rng('gridworld', seed);
  const A = 4;
  const target = (s: number, a: number): number => {
    const x = s % W, y = (s - x) / W;
    const nx = x + GRID_MOVES[a]![0], ny = y + GRID_MOVES[a]![1];
    return nx < 0 || nx >= W || ny < 0 || ny >= H ? s : ny * W + nx;
  };
  const rowStart = new Int32Array(S * A + 1);
  const next: number[] = [];
  const prob: number[] = [];
  for (let s = 0; s < S; s++) {
    for (let a = 0; a < A; a++) {
      const acc = new Map<number, number>();
      for (let b = 0; b < A; b++) {
        const p = (b === a ? 1 - slip : 0) + slip / A;
        if (p > 0) acc.set(target(s, b), (acc.get(target(s, b)) ?? 0) + p);
      }
      for (const j of [...acc.keys()].sort((x, y) => x - y)) {
        next.push(j);
        prob.push(acc.get(j)!);
      }
      rowStart[s * A + a + 1] = next.length;
    }
  }
  const corners = [...new Set([S - 1, W - 1, (H - 1) * W, 0])];
  const goals: number[] = [];
  for (const c of corners) if (goals.length < N) goals.push(c);
  while (goals.length < N) {
    const g = Math.floor(rand() * S);
    if (!goals.includes(g)) goals.push(g);
  }
  const rewards = goals.map((g) => {
    const r = new Float64Array(S * A);
    for (let a = 0; a < A; a++) r[g * A + a] = 1;
    return r;
  });
  const initial = new Float64Array(S).fill(1 / S);
  const kernel: TransitionTable =
    S <= 2048 ? densify(S, A, rowStart, next, prob) : { kind: 'sparse', rowStart, next: Int32Array.from(next), prob: Float64Array.from(prob) };
  return {
    name: `gridworld-${W}x${H}-n${N}`,
    states: S,
    actions: A,
    gamma,
    initial,
    kernels: [kernel],
    perAgentKernels: false,
    rewards,
    goals,
    width: W,
    height: H,
  };
}

function densify(S: number, A: number, rowStart: Int32Array, next: number[], prob: number[]): TransitionTable {
  const p = new Float64Array(S * A * S);
  for (let r = 0; r < S * A; r++) for (let k = rowStart[r]!; k < rowStart[r + 1]!; k++) p[r * S + next[k]!] = prob[k]!;
  return { kind: 'dense', p };
}

export interface ChainOptions {
  states: number;
  agents: number;
  /** Probability that a move goes the other way. */
  slip?: number;
  gamma?: number;
  /** Spread of the agents' far-end rewards: agent i's reward at the far end is 1 - h * u_i. */
  heterogeneity?: number;
  seed?: number;
}

/**
 * The chain: states 0..S-1, actions left (0) and right (1). Left at state 0 pays a small 0.1 at
 * once; right at the far end pays up to 1 but needs a long walk: the classic trap for greedy,
 * myopic learners.
 */
export function chainMdp(o: ChainOptions): Mdp {
  const S = o.states, N = o.agents;
  const slip = o.slip ?? 0.1, gamma = o.gamma ?? 0.95, h = o.heterogeneity ?? 0, seed = o.seed ?? 0;
  checkInt('states', S, 2, 1 << 20);
  checkInt('agents', N, 1, 1 << 16);
  checkRange('slip', slip, 0, 1);
  checkRange('gamma', gamma, 0, 1, true);
  checkRange('heterogeneity', h, 0, 1);
  const rand = rng('chain', seed);
  const A = 2;
  const p = new Float64Array(S * A * S);
  for (let s = 0; s < S; s++) {
    const left = Math.max(0, s - 1), right = Math.min(S - 1, s + 1);
    for (let a = 0; a < A; a++) {
      const go = a === 0 ? left : right, back = a === 0 ? right : left;
      p[(s * A + a) * S + go] = p[(s * A + a) * S + go]! + (1 - slip);
      p[(s * A + a) * S + back] = p[(s * A + a) * S + back]! + slip;
    }
  }
  const rewards = Array.from({ length: N }, () => {
    const r = new Float64Array(S * A);
    r[0] = 0.1;
    r[(S - 1) * A + 1] = 1 - h * rand();
    return r;
  });
  const initial = new Float64Array(S);
  initial[0] = 1;
  return { name: `chain-s${S}-n${N}`, states: S, actions: A, gamma, initial, kernels: [{ kind: 'dense', p }], perAgentKernels: false, rewards };
}
