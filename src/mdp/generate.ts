import seedrandom from 'seedrandom';
import type { TransitionTable } from '../backends/types.js';
import { InputError } from '../errors.js';
import { MemoryLedger } from '../limits.js';
import type { Mdp } from './model.js';

/**
 * Seeded generators of multi-agent MDPs. The same options always give the same MDP (seedrandom's
 * ARC4 stream, keyed by the generator's name and seed), on every platform. Every table's size is
 * checked against the memory budget (src/limits.ts) before it is allocated, with a hint at the
 * option that makes it smaller.
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
  const denseKernel = b === S && S * A * S <= 1 << 26;
  const ledger = new MemoryLedger(
    '',
    undefined,
    b === S ? 'pass --branching B (e.g. --branching 4) for a sparse kernel with B next states per (state, action)' : 'use a smaller --branching, --states or --agents',
  );
  const kernelWhat = b === S ? `the dense transition kernel of ${S} states x ${A} actions (every state a possible next state)` : `the transition kernel of ${S} states x ${A} actions with ${b} next state${b === 1 ? '' : 's'} per row`;
  ledger.entries(S * A * b, kernelWhat);
  ledger.reserve(S * 8 + (denseKernel ? S * A * S * 8 : (S * A + 1) * 4 + S * A * b * 12 + S * 4), kernelWhat);
  ledger.reserve((N + 2) * S * A * 8, `the rewards of ${N} agents (${N} x ${S} x ${A} float64)`);
  const rand = rng('random', seed);
  const initial = new Float64Array(S);
  let z = 0;
  for (let s = 0; s < S; s++) z += initial[s] = rand() + 1e-3;
  for (let s = 0; s < S; s++) initial[s] = initial[s]! / z;
  let kernel: TransitionTable;
  if (denseKernel) {
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
      // Sorted by insertion straight into the row (no per-row array: 4M rows at S = 2^20).
      const row = r * b;
      for (let k = 0; k < b; k++) {
        const v = pick[k]!;
        let q = row + k;
        while (q > row && next[q - 1]! > v) {
          next[q] = next[q - 1]!;
          q--;
        }
        next[q] = v;
      }
      let sum = 0;
      for (let k = 0; k < b; k++) sum += prob[r * b + k] = rand() + 1e-3;
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
  /**
   * 'corners' (default): one goal cell per agent, the first four in the corners. 'spread': a goal
   * every `goalSpacing` cells in both directions, each agent at its own offset, so short episodes
   * from anywhere reach one at every grid size.
   */
  goals?: GoalLayout;
  /** 'spread' only: the distance D between an agent's goals (default 8). */
  goalSpacing?: number;
}

export const GOAL_LAYOUTS = ['corners', 'spread'] as const;
export type GoalLayout = (typeof GOAL_LAYOUTS)[number];
export const DEFAULT_GOAL_SPACING = 8;

/** Moves of the gridworld's four actions, in action order: up, right, down, left. */
export const GRID_MOVES: readonly (readonly [number, number])[] = [
  [0, -1],
  [1, 0],
  [0, 1],
  [-1, 0],
];

/**
 * Each agent's offset (x, y) within the D x D block of the spread layout: the first four as far
 * apart as the block allows, so their tasks pull in different directions; more at distinct
 * offsets drawn by the seed.
 */
function spreadOffsets(N: number, D: number, rand: () => number): [number, number][] {
  const h = Math.floor(D / 2);
  const out: [number, number][] = [];
  const taken = new Set<number>();
  for (const [x, y] of [[0, 0], [h, h], [h, 0], [0, h]] as const) {
    if (out.length < N && !taken.has(y * D + x)) {
      taken.add(y * D + x);
      out.push([x, y]);
    }
  }
  while (out.length < N) {
    const c = Math.floor(rand() * D * D);
    if (!taken.has(c)) {
      taken.add(c);
      out.push([c % D, Math.floor(c / D)]);
    }
  }
  return out;
}

/**
 * The multi-task gridworld: W x H cells (state = y*W + x), four slippery moves shared by every
 * agent (a move into the wall stays put), start anywhere uniformly; agent i earns 1 for every
 * step it spends at one of its goal cells. With goals 'corners' each agent has one goal, distinct
 * cells drawn by the seed (the first agents get the corners, which makes the tasks pull in
 * opposite directions). With goals 'spread' agent i has a goal at every cell (x, y) with
 * x = ox_i and y = oy_i modulo D, so from any cell one of its goals is at most 2(D - 1) moves
 * away: episodes of K >= 2D steps find rewards at any size, and large grids still learn. The
 * kernel is dense up to 2048 states, CSR above (at most 4 next states per row).
 */
export function gridworldMdp(o: GridworldOptions): Mdp & { goals: number[]; width: number; height: number } {
  const W = o.width, H = o.height, N = o.agents;
  const slip = o.slip ?? 0.1, gamma = o.gamma ?? 0.9, seed = o.seed ?? 0;
  const layout = o.goals ?? 'corners', D = o.goalSpacing ?? DEFAULT_GOAL_SPACING;
  checkInt('width', W, 1, 4096);
  checkInt('height', H, 1, 4096);
  const S = W * H;
  if (!(GOAL_LAYOUTS as readonly string[]).includes(layout)) throw new InputError(`goals must be one of ${GOAL_LAYOUTS.join(', ')}, got ${String(layout)}`);
  if (layout === 'spread') {
    checkInt('goal-spacing', D, 1, 4096);
    if (W < D || H < D) throw new InputError(`goals spread needs width and height of at least the goal spacing ${D}, got ${W} x ${H} (lower --goal-spacing)`);
    checkInt('agents', N, 1, Math.min(S, D * D));
  } else checkInt('agents', N, 1, S);
  checkRange('slip', slip, 0, 1);
  checkRange('gamma', gamma, 0, 1, true);
  checkInt('seed', seed, 0, Number.MAX_SAFE_INTEGER);
  const A = 4;
  const ledger = new MemoryLedger('', undefined, 'use a smaller --width, --height or --agents');
  ledger.reserve(S * 8 + (S <= 2048 ? S * A * S * 8 : 0) + (S * A + 1) * 4 + S * A * 4 * 12, `the transition kernel of a ${W} x ${H} gridworld`);
  ledger.reserve(N * S * A * 8, `the rewards of ${N} agents (${N} x ${S} x ${A} float64)`);
  const rand = rng('gridworld', seed);
  const target = (s: number, a: number): number => {
    const x = s % W, y = (s - x) / W;
    const nx = x + GRID_MOVES[a]![0], ny = y + GRID_MOVES[a]![1];
    return nx < 0 || nx >= W || ny < 0 || ny >= H ? s : ny * W + nx;
  };
  // At most 4 next states per row. Probabilities are accumulated in move order and the row
  // sorted by next state, as a Map-based accumulation would give them.
  const rowStart = new Int32Array(S * A + 1);
  const next = new Int32Array(S * A * 4);
  const prob = new Float64Array(S * A * 4);
  let nnz = 0;
  for (let s = 0; s < S; s++) {
    for (let a = 0; a < A; a++) {
      const row = nnz;
      for (let b = 0; b < A; b++) {
        const p = (b === a ? 1 - slip : 0) + slip / A;
        if (!(p > 0)) continue;
        const t = target(s, b);
        let q = row;
        while (q < nnz && next[q] !== t) q++;
        if (q < nnz) prob[q] = prob[q]! + p;
        else {
          next[nnz] = t;
          prob[nnz++] = p;
        }
      }
      for (let q = row + 1; q < nnz; q++) {
        const t = next[q]!, p = prob[q]!;
        let k = q;
        while (k > row && next[k - 1]! > t) {
          next[k] = next[k - 1]!;
          prob[k] = prob[k - 1]!;
          k--;
        }
        next[k] = t;
        prob[k] = p;
      }
      rowStart[s * A + a + 1] = nnz;
    }
  }
  const goals: number[] = [];
  const rewards: Float64Array[] = [];
  if (layout === 'corners') {
    const corners = [...new Set([S - 1, W - 1, (H - 1) * W, 0])];
    for (const c of corners) if (goals.length < N) goals.push(c);
    while (goals.length < N) {
      const g = Math.floor(rand() * S);
      if (!goals.includes(g)) goals.push(g);
    }
    for (const g of goals) {
      const r = new Float64Array(S * A);
      for (let a = 0; a < A; a++) r[g * A + a] = 1;
      rewards.push(r);
    }
  } else {
    for (const [ox, oy] of spreadOffsets(N, D, rand)) {
      const r = new Float64Array(S * A);
      for (let y = oy; y < H; y += D) for (let x = ox; x < W; x += D) for (let a = 0; a < A; a++) r[(y * W + x) * A + a] = 1;
      goals.push(Math.min(oy, H - 1) * W + Math.min(ox, W - 1));
      rewards.push(r);
    }
  }
  const initial = new Float64Array(S).fill(1 / S);
  const kernel: TransitionTable =
    S <= 2048 ? densify(S, A, rowStart, next, prob) : { kind: 'sparse', rowStart, next: next.slice(0, nnz), prob: prob.slice(0, nnz) };
  return {
    name: layout === 'spread' ? `gridworld-${W}x${H}-n${N}-spread${D}` : `gridworld-${W}x${H}-n${N}`,
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

function densify(S: number, A: number, rowStart: Int32Array, next: Int32Array, prob: Float64Array): TransitionTable {
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
  const A = 2;
  new MemoryLedger('', undefined, 'use fewer --states').reserve(S * A * S * 8 + (N + 1) * S * A * 8, `the dense chain of ${S} states`);
  const rand = rng('chain', seed);
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
