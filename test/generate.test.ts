import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError } from '../src/errors.js';
import { setMemoryBudget } from '../src/limits.js';
import { loadMdp, mdpToJson, parseMdp } from '../src/mdp/format.js';
import { chainMdp, gridworldMdp, randomMdp } from '../src/mdp/generate.js';
import { evaluatePolicy } from '../src/evaluate.js';
import { fedpgLimited, refusalLine } from './helpers/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'fedpg-generate-'));

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

describe('generators at scale and the memory budget', () => {
  it('a dense request over the budget is refused with its size and the --branching hint, before allocating', () => {
    const t = Date.now();
    expect(() => randomMdp({ states: 20000, actions: 4, agents: 4 })).toThrow(
      'the dense transition kernel of 20000 states x 4 actions (every state a possible next state) would take 17.9 GiB, over the memory budget of 4.00 GiB (raise it with --memory-budget or FEDPG_MEMORY_BUDGET); pass --branching B (e.g. --branching 4) for a sparse kernel with B next states per (state, action)',
    );
    expect(() => randomMdp({ states: 1 << 20, actions: 4, agents: 4 })).toThrow(/would have 4398046511104 entries, more than the 2147483647 one table may hold; pass --branching B/);
    expect(() => chainMdp({ states: 1 << 20, agents: 1 })).toThrow(/the dense chain of 1048576 states would take 16\.0 TiB/);
    expect(Date.now() - t).toBeLessThan(1000);
  });

  it('the budget is the one the flag sets', () => {
    try {
      setMemoryBudget(1 << 20);
      expect(() => gridworldMdp({ width: 100, height: 100, agents: 4 })).toThrow(/the transition kernel of a 100 x 100 gridworld would take .* over the memory budget of 1\.00 MiB .*; use a smaller --width, --height or --agents/);
      expect(() => randomMdp({ states: 5000, actions: 4, agents: 2, branching: 4 })).toThrow(InputError);
    } finally {
      setMemoryBudget(undefined);
    }
    expect(() => randomMdp({ states: 5000, actions: 4, agents: 2, branching: 4 })).not.toThrow();
  });

  it('random with --branching: sorted distinct next states per row at 2^16 states', () => {
    const m = randomMdp({ states: 1 << 16, actions: 4, agents: 2, branching: 4, seed: 5 });
    const k = m.kernels[0]!;
    expect(k.kind).toBe('sparse');
    if (k.kind !== 'sparse') return;
    const bad: number[] = [];
    for (let r = 0; r < (1 << 16) * 4; r++) {
      const lo = k.rowStart[r]!;
      let ok = k.rowStart[r + 1]! - lo === 4;
      for (let q = lo + 1; q < lo + 4; q++) ok &&= k.next[q]! > k.next[q - 1]!;
      ok &&= Math.abs(k.prob[lo]! + k.prob[lo + 1]! + k.prob[lo + 2]! + k.prob[lo + 3]! - 1) < 1e-12;
      if (!ok) bad.push(r);
    }
    expect(bad).toEqual([]);
  });

  it('gridworld --goals spread: from every cell each agent has a goal within 2(D - 1) moves', () => {
    const W = 37, H = 29, D = 6;
    const g = gridworldMdp({ width: W, height: H, agents: 5, goals: 'spread', goalSpacing: D, seed: 3 });
    expect(g.name).toBe('gridworld-37x29-n5-spread6');
    const goalSets = g.rewards.map((r) => {
      const cells: number[] = [];
      for (let s = 0; s < W * H; s++) if (r[s * 4] === 1) cells.push(s);
      return cells;
    });
    goalSets.forEach((cells) => expect(cells.length).toBeGreaterThanOrEqual(Math.floor(W / D) * Math.floor(H / D)));
    // Distinct tasks: no two agents share a goal cell.
    expect(new Set(goalSets.flat()).size).toBe(goalSets.flat().length);
    for (const cells of goalSets) {
      let worst = 0;
      for (let s = 0; s < W * H; s++) {
        const x = s % W, y = (s - x) / W;
        const d = Math.min(...cells.map((c) => Math.abs((c % W) - x) + Math.abs(Math.floor(c / W) - y)));
        worst = Math.max(worst, d);
      }
      expect(worst).toBeLessThanOrEqual(2 * (D - 1));
    }
    expect(() => gridworldMdp({ width: 5, height: 20, agents: 2, goals: 'spread' })).toThrow('goals spread needs width and height of at least the goal spacing 8, got 5 x 20 (lower --goal-spacing)');
    expect(() => gridworldMdp({ width: 20, height: 20, agents: 5, goals: 'spread', goalSpacing: 2 })).toThrow('agents must be an integer in [1, 4], got 5');
  });

  it('spread goals keep large grids learnable: the uniform policy already earns, corners almost nothing', async () => {
    const opts = { width: 60, height: 60, agents: 4 } as const;
    const J = async (goals: 'spread' | 'corners'): Promise<number> => (await evaluatePolicy(gridworldMdp({ ...opts, goals }), new Float64Array(3600 * 4), { backend: 'js' })).Javg;
    const spread = await J('spread'), corners = await J('corners');
    // 1/64 of the cells are an agent's goal: J(uniform) about 1/(64 (1 - gamma)); a corner is 1/3600 of the cells.
    expect(spread).toBeGreaterThan(0.1);
    expect(corners).toBeLessThan(0.01);
  });
});

describe('fedpg generate', () => {
  it('writes .npz when the name ends in .npz, and every reader takes it', () => {
    const out = join(tmp, 'g.npz');
    const r = fedpgLimited(['generate', 'gridworld', '--width', '50', '--height', '50', '--goals', 'spread', '--out', out]);
    expect(r.stderr).toBe('');
    expect(readFileSync(out).subarray(0, 2).toString()).toBe('PK');
    const { goals: _g, width: _w, height: _h, ...want } = gridworldMdp({ width: 50, height: 50, agents: 4, goals: 'spread' });
    expect(mdpToJson(loadMdp(out))).toEqual(mdpToJson(want));
    const c = join(tmp, 'gc.npz');
    expect(fedpgLimited(['generate', 'random', '--states', '300', '--branching', '5', '--compress', '--out', c]).code).toBe(0);
    expect(mdpToJson(loadMdp(c))).toEqual(mdpToJson(randomMdp({ states: 300, actions: 4, agents: 4, branching: 5 })));
  });

  it('refuses JSON too large to read back, with the .npz hint, and a dense request over the budget', () => {
    expect(refusalLine(fedpgLimited(['generate', 'gridworld', '--width', '60', '--height', '60', '--out', join(tmp, 'g.json'), '--memory-budget', '2M']))).toMatch(
      /^fedpg: error: as JSON this MDP would take about [0-9.]+ [KM]iB, more than the 512 KiB a JSON MDP file may have; write \.npz instead \(--out FILE\.npz\)$/,
    );
    expect(refusalLine(fedpgLimited(['generate', 'random', '--states', '1048576']))).toMatch(/^fedpg: error: the dense transition kernel of 1048576 states .* pass --branching B \(e\.g\. --branching 4\)/);
    expect(refusalLine(fedpgLimited(['generate', 'random', '--states', '20000']))).toMatch(/would take 17\.9 GiB, over the memory budget of 4\.00 GiB/);
    expect(refusalLine(fedpgLimited(['generate', 'gridworld', '--goal-spacing', '4']))).toBe('fedpg: error: --goal-spacing needs --goals spread');
  });
});
