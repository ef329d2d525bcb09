import { describe, expect, it } from 'vitest';
import { evaluatePolicy, greedyActions } from '../src/evaluate.js';
import { loadMdp } from '../src/mdp/format.js';
import type { Mdp } from '../src/mdp/model.js';
import { parseMdp } from '../src/mdp/parse.js';
import { testedBackends } from './helpers/backends.js';
import { fixturePath, readExpect } from './helpers/fixtures.js';

/**
 * evaluate's policyStar (issue 19): a greedy optimal action per state of the average MDP, the
 * lowest index among actions within 1e-12 of the best Q*; per agent with per-agent kernels.
 */

/**
 * Two states, two actions, gamma 0.9, starting in state 0. In state 0 action 0 stays and action 1
 * moves to state 1, which is absorbing under both actions; `rewards` is [[r(0,0), r(0,1)],
 * [r(1,0), r(1,1)]].
 */
function twoStateMdp(rewards: number[][]): ReturnType<typeof parseMdp> {
  return parseMdp({
    format: 'fedpg-mdp/1',
    states: 2,
    actions: 2,
    gamma: 0.9,
    initial: [1, 0],
    transitions: [
      [[1, 0], [0, 1]],
      [[0, 1], [0, 1]],
    ],
    rewards: [rewards],
  });
}

/**
 * State 1 pays `r1` for action 0 and 1 for action 1; in state 0 staying pays 0.5, moving 0.
 * With r1 = 1 both actions of state 1 are optimal (V*(1) = 10): the tie goes to action 0. In
 * state 0 moving is best: Q*(0,1) = 0.9 * 10 = 9 > Q*(0,0) = 0.5 + 0.9 * 9 = 8.6.
 */
const twoStates = (r1: number): ReturnType<typeof parseMdp> => twoStateMdp([[0.5, 0], [r1, 1]]);

/**
 * Where the discount decides: in state 0 staying pays nothing, moving pays 0.95 once, and state 1
 * pays nothing forever. V*(0) = 0.95, so Q*(0,0) = 0.9 * 0.95 = 0.855 < Q*(0,1) = 0.95
 * (undiscounted they would tie); state 1's actions tie at 0.
 */
const discountDecides = (): ReturnType<typeof parseMdp> => twoStateMdp([[0, 0.95], [0, 0]]);

/** The kernel as P[s][a][s'] (dense rows, whatever the storage). */
function denseRows(k: Mdp['kernels'][number], S: number, A: number): number[][][] {
  return Array.from({ length: S }, (_, s) =>
    Array.from({ length: A }, (_, a) => {
      const row = new Array<number>(S).fill(0);
      if (k.kind === 'dense') for (let t = 0; t < S; t++) row[t] = k.p[(s * A + a) * S + t]!;
      else for (let q = k.rowStart[s * A + a]!; q < k.rowStart[s * A + a + 1]!; q++) row[k.next[q]!] = k.prob[q]!;
      return row;
    }),
  );
}

/** V of a deterministic policy by Gaussian elimination on (I - gamma P_pi) V = r_pi (S small). */
function policyValue(P: number[][][], r: number[][], gamma: number, pi: number[]): number[] {
  const S = P.length;
  const M = Array.from({ length: S }, (_, s) => [...Array.from({ length: S }, (_, t) => (s === t ? 1 : 0) - gamma * P[s]![pi[s]!]![t]!), r[s]![pi[s]!]!]);
  for (let c = 0; c < S; c++) {
    let p = c;
    for (let k = c + 1; k < S; k++) if (Math.abs(M[k]![c]!) > Math.abs(M[p]![c]!)) p = k;
    [M[c], M[p]] = [M[p]!, M[c]!];
    for (let k = 0; k < S; k++) {
      if (k === c) continue;
      const f = M[k]![c]! / M[c]![c]!;
      for (let j = c; j <= S; j++) M[k]![j] = M[k]![j]! - f * M[c]![j]!;
    }
  }
  return M.map((row, s) => row[S]! / row[s]!);
}

describe('policyStar', () => {
  it('the hand-checked two-state MDP, on every backend: moves from state 0, ties go to the lowest action', async () => {
    const backends = await testedBackends();
    expect(backends.length).toBeGreaterThan(0);
    for (const backend of backends) {
      const tie = await evaluatePolicy(twoStates(1), new Float64Array(4), { backend });
      expect(Math.abs(tie.Jstar! - 9), backend.name).toBeLessThanOrEqual(1e-9);
      expect(tie.policyStar, backend.name).toEqual([1, 0]);
      // Action 0 of state 1 worse by 1e-3: action 1 alone is optimal there.
      const strict = await evaluatePolicy(twoStates(0.999), new Float64Array(4), { backend });
      expect(strict.policyStar, backend.name).toEqual([1, 1]);
      const d = await evaluatePolicy(discountDecides(), new Float64Array(4), { backend });
      expect(Math.abs(d.Jstar! - 0.95), backend.name).toBeLessThanOrEqual(1e-9);
      expect(d.policyStar, backend.name).toEqual([1, 0]);
    }
  });

  it('greedyActions: the lowest index within 1e-12 of the best, not within more', () => {
    expect(greedyActions(Float64Array.of(1, 1 + 5e-13, 0.5), 1, 3)).toEqual([0]);
    expect(greedyActions(Float64Array.of(1, 1 + 5e-12, 0.5), 1, 3)).toEqual([1]);
    expect(greedyActions(Float64Array.of(-3, -2, -2), 1, 3)).toEqual([1]);
  });

  it.each(['random-s6-a3-n4', 'plateau-s6-a3-n4', 'random-s20-a4-n8'])('%s: following policyStar earns the fixture\'s V* (to 1e-9)', async (name) => {
    const mdp = loadMdp(fixturePath(`${name}.json`));
    const exp = readExpect(name).expect;
    const report = await evaluatePolicy(mdp, new Float64Array(mdp.states * mdp.actions), { backend: 'js' });
    const pi = report.policyStar as number[];
    expect(pi).toHaveLength(mdp.states);
    // The fixture's dense kernel and the average reward, read back from the parsed MDP.
    const S = mdp.states, A = mdp.actions, N = mdp.rewards.length;
    const P = denseRows(mdp.kernels[0]!, S, A);
    const rbar = Array.from({ length: S }, (_, s) => Array.from({ length: A }, (_, a) => mdp.rewards.reduce((t, r) => t + r[s * A + a]!, 0) / N));
    const v = policyValue(P, rbar, mdp.gamma, pi);
    for (let s = 0; s < S; s++) expect(Math.abs(v[s]! - exp.Vstar[s]), `V at state ${s}`).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(exp.Vstar[s])));
  });

  it('per-agent kernels (labbi-challenging): one greedy policy per agent, optimal for its own MDP', async () => {
    const mdp = loadMdp(fixturePath('labbi-challenging.json'));
    const report = await evaluatePolicy(mdp, new Float64Array(mdp.states * mdp.actions), { backend: 'js' });
    const per = report.policyStar as number[][];
    expect(per).toHaveLength(mdp.rewards.length);
    const S = mdp.states, A = mdp.actions;
    per.forEach((pi, i) => {
      expect(pi).toHaveLength(S);
      const P = denseRows(mdp.kernels[i]!, S, A);
      const r = Array.from({ length: S }, (_, s) => Array.from({ length: A }, (_, a) => mdp.rewards[i]![s * A + a]!));
      const v = policyValue(P, r, mdp.gamma, pi);
      // No single-state deviation improves on it: the Bellman optimality condition, to 1e-9.
      for (let s = 0; s < S; s++) for (let a = 0; a < A; a++) {
        const q = r[s]![a]! + mdp.gamma * P[s]![a]!.reduce((t, p, u) => t + p * v[u]!, 0);
        expect(q, `agent ${i} state ${s} action ${a}`).toBeLessThanOrEqual(v[s]! + 1e-9);
      }
    });
  });
});
