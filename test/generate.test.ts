import { describe, expect, it } from 'vitest';
import { mdpToJson, parseMdp } from '../src/mdp/format.js';
import { chainMdp, gridworldMdp, randomMdp } from '../src/mdp/generate.js';
import { evaluatePolicy } from '../src/evaluate.js';

describe('generators', () => {
  it('are deterministic in their seed and valid fedpg-mdp/1', () => {
    const a = mdpToJson(randomMdp({ states: 7, actions: 3, agents: 4, seed: 3 }));
    expect(mdpToJson(randomMdp({ states: 7, actions: 3, agents: 4, seed: 3 }))).toEqual(a);
    expect(mdpToJson(randomMdp({ states: 7, actions: 3, agents: 4, seed: 4 }))).not.toEqual(a);
    for (const m of [
      randomMdp({ states: 7, actions: 3, agents: 4, seed: 3 }),
      randomMdp({ states: 30, actions: 2, agents: 2, branching: 3 }),
      gridworldMdp({ width: 4, height: 3, agents: 5, seed: 1 }),
      chainMdp({ states: 6, agents: 2, heterogeneity: 0.5 }),
    ]) {
      expect(() => parseMdp(JSON.parse(JSON.stringify(mdpToJson(m))))).not.toThrow();
    }
  });

  it('heterogeneity 0 gives identical rewards, 1 independent ones', () => {
    const same = randomMdp({ states: 5, actions: 2, agents: 3, heterogeneity: 0 });
    expect(Array.from(same.rewards[1]!)).toEqual(Array.from(same.rewards[0]!));
    const diff = randomMdp({ states: 5, actions: 2, agents: 3, heterogeneity: 1 });
    expect(Array.from(diff.rewards[1]!)).not.toEqual(Array.from(diff.rewards[0]!));
    // The spread between agents grows with the knob.
    const spread = (h: number): number => {
      const m = randomMdp({ states: 20, actions: 3, agents: 2, heterogeneity: h, seed: 9 });
      return m.rewards[0]!.reduce((s, v, j) => s + Math.abs(v - m.rewards[1]![j]!), 0);
    };
    expect(spread(0.2)).toBeLessThan(spread(0.6));
    expect(spread(0.6)).toBeLessThan(spread(1));
  });

  it('branching below S writes sparse rows with that many next states', () => {
    const m = randomMdp({ states: 12, actions: 2, agents: 1, branching: 3 });
    const k = m.kernels[0]!;
    expect(k.kind).toBe('sparse');
    if (k.kind === 'sparse') for (let r = 0; r < 24; r++) expect(k.rowStart[r + 1]! - k.rowStart[r]!).toBe(3);
  });

  it('gridworld: distinct goals, each agent rewarded only at its own goal, J* grows with the discount', async () => {
    const g = gridworldMdp({ width: 5, height: 4, agents: 6, seed: 2 });
    expect(new Set(g.goals).size).toBe(6);
    expect(g.goals.slice(0, 4).sort()).toEqual([0, 4, 15, 19].sort());
    g.rewards.forEach((r, i) => {
      for (let s = 0; s < 20; s++) for (let a = 0; a < 4; a++) expect(r[s * 4 + a]).toBe(s === g.goals[i] ? 1 : 0);
    });
    const lo = await evaluatePolicy(gridworldMdp({ width: 3, height: 3, agents: 1, gamma: 0.5 }), new Float64Array(36), { backend: 'js' });
    const hi = await evaluatePolicy(gridworldMdp({ width: 3, height: 3, agents: 1, gamma: 0.9 }), new Float64Array(36), { backend: 'js' });
    expect(hi.Jstar!).toBeGreaterThan(lo.Jstar!);
  });

  it('refuse out-of-range options with the option and the value', () => {
    expect(() => randomMdp({ states: 0, actions: 2, agents: 1 })).toThrow('states must be an integer in [1, 1048576], got 0');
    expect(() => randomMdp({ states: 3, actions: 2, agents: 1, heterogeneity: 2 })).toThrow('heterogeneity must be in [0, 1], got 2');
    expect(() => gridworldMdp({ width: 2, height: 2, agents: 5 })).toThrow('agents must be an integer in [1, 4], got 5');
    expect(() => chainMdp({ states: 5, agents: 1, gamma: 1 })).toThrow('gamma must be in [0, 1), got 1');
  });
});
