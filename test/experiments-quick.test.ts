import { describe, expect, it } from 'vitest';
import { EXPERIMENT_NAMES, EXPERIMENTS, runExperiment, type Row } from '../src/experiments/index.js';

/**
 * `fedpg experiment NAME --quick` (issue 19): every experiment's smaller configuration runs (all
 * seven take about 15 s on two threads with wasm) and still shows its claim's direction. Each
 * check compares numbers the claim orders, with margins far outside the seeds' spread at these
 * settings (every run is deterministic in its seed, so these numbers do not vary between runs).
 */

type Check = (rows: Row[]) => void;

const pick = (rows: Row[], where: Record<string, string | number>): Row => {
  const r = rows.find((x) => Object.entries(where).every(([k, v]) => x[k] === v));
  if (!r) throw new Error(`no row ${JSON.stringify(where)}`);
  return r;
};
const n = (r: Row, k: string): number => r[k] as number;

const DIRECTION: Record<string, Check> = {
  // Heterogeneous rewards and H > 1: FedAvg plateaus far above Fast-FedPG; with h = 0 they agree.
  bias: (rows) => {
    const fast = n(pick(rows, { H: 10, heterogeneity: 1, method: 'fast-fedpg' }), 'finalGap');
    const avg = n(pick(rows, { H: 10, heterogeneity: 1, method: 'fedavg' }), 'finalGap');
    expect(avg).toBeGreaterThan(20 * fast);
    expect(n(pick(rows, { H: 10, heterogeneity: 0, method: 'fedavg' }), 'finalGap')).toBeCloseTo(n(pick(rows, { H: 10, heterogeneity: 0, method: 'fast-fedpg' }), 'finalGap'), 9);
  },
  // More agents, smaller final gap (sampled gradients).
  speedup: (rows) => {
    const g = (N: number): number => n(pick(rows, { method: 'fast-fedpg', gradient: 'sampled', N }), 'meanGap');
    expect(g(8)).toBeLessThan(g(1) / 3);
  },
  // Very short horizons pay the truncation bias: K = 1 ends worse than K = 4; the bias falls with K.
  horizon: (rows) => {
    const r = (K: number): Row => pick(rows, { K });
    expect(n(r(1), 'meanGap')).toBeGreaterThan(2 * n(r(4), 'meanGap'));
    expect(n(r(16), 'biasAtStart')).toBeLessThan(n(r(4), 'biasAtStart'));
    expect(n(r(4), 'biasAtStart')).toBeLessThan(n(r(1), 'biasAtStart'));
  },
  // Fast-FedPG's gap does not depend on h; FedAvg's grows with it.
  heterogeneity: (rows) => {
    const g = (method: string, h: number): number => n(pick(rows, { gradient: 'exact', method, heterogeneity: h }), 'meanGap');
    expect(Math.abs(g('fast-fedpg', 1) / g('fast-fedpg', 0) - 1)).toBeLessThan(0.01);
    expect(g('fedavg', 1)).toBeGreaterThan(5 * g('fedavg', 0));
  },
  // Per-agent kernels: the average squared gradient norm falls as T grows.
  nonidentical: (rows) => {
    const g = (T: number): number => n(pick(rows, { method: 'fast-fedpg', T }), 'meanAvgGradNormSq');
    expect(g(600)).toBeLessThan(g(20) / 2);
  },
  // The remembered sample beats a fresh one at N = 8.
  memory: (rows) => {
    expect(n(pick(rows, { method: 'fast-fedpg (fresh)', N: 8 }), 'meanGap')).toBeGreaterThan(4 * n(pick(rows, { method: 'fast-fedpg', N: 8 }), 'meanGap'));
  },
  // Exact gradients: Fast-FedPG ends closest to J*, FedAvg on its plateau.
  peers: (rows) => {
    const g = (method: string): number => n(pick(rows, { gradient: 'exact', method }), 'meanGap');
    expect(g('fedavg')).toBeGreaterThan(20 * g('fast-fedpg'));
    expect(g('centralized')).toBeGreaterThan(g('fast-fedpg'));
  },
};

// The field's experiments (issues 12, 13, 18).
Object.assign(DIRECTION, {
  // Exact gradients: Fast-FedPG far below FedAvg on the plateau; FedNPG (scale-free steps) beats Fast-FedPG in rounds on the gridworld.
  rivals: (rows) => {
    const g = (source: string, method: string): number => n(pick(rows, { source, gradient: 'exact', method }), 'meanFinal');
    expect(g('plateau-s6-a3-n4', 'fedavg')).toBeGreaterThan(10 * g('plateau-s6-a3-n4', 'fast-fedpg'));
    expect(g('gridworld-5x5-n4', 'fednpg complete')).toBeLessThan(g('gridworld-5x5-n4', 'fast-fedpg') / 10);
  },
  // Every race has exactly one winner, with its margin; exact-Q methods are not ranked.
  compare: (rows) => {
    for (const key of new Set(rows.map((r) => `${r.budget}|${r.source}`))) {
      const race = rows.filter((r) => `${r.budget}|${r.source}` === key);
      expect(race.filter((r) => r.rank === 1), key).toHaveLength(1);
      expect(race.find((r) => r.rank === 1)!.marginSe, key).not.toBeNull();
      // The winner has the best mean: the lowest gap, or the highest J where there is no J*.
      const ranked = race.filter((r) => r.rank !== null).sort((a, b) => (a.rank as number) - (b.rank as number));
      const higherIsBetter = String(key).includes('labbi');
      for (let k = 1; k < ranked.length; k++) expect(higherIsBetter ? n(ranked[k - 1]!, 'mean') >= n(ranked[k]!, 'mean') : n(ranked[k - 1]!, 'mean') <= n(ranked[k]!, 'mean'), key).toBe(true);
      for (const r of race.filter((x) => String(x.method).endsWith('(exact Q)'))) expect(r.rank).toBeNull();
    }
  },
  // With no attacker the robust rules are already biased on heterogeneous tasks: Krum ends far above the mean.
  byzantine: (rows) => {
    const g = (aggregation: string, F: number, attack: string): number => n(pick(rows, { algorithm: 'fast-fedpg', aggregation, F, attack }), 'mean');
    expect(g('krum:3', 0, 'signflip')).toBeGreaterThan(3 * g('mean', 0, 'signflip'));
    expect(g('mean', 3, 'signflip')).toBeGreaterThan(5 * g('mean', 0, 'signflip'));
  },
  // FedAvg's mean final gap shrinks with P = 0.5 against P = 1; Fast-FedPG ends far below FedAvg at P = 1.
  participation: (rows) => {
    const g = (method: string, P: number): number => n(pick(rows, { method, P }), 'mean');
    expect(g('fedavg', 0.5)).toBeLessThan(g('fedavg', 1) / 3);
    expect(g('fast-fedpg', 1)).toBeLessThan(g('fedavg', 1) / 10);
  },
  // A personal policy barely pulled to the global model beats one held to it (heterogeneous tasks).
  personalization: (rows) => {
    for (const method of ['fast-fedpg', 'fedavg']) expect(n(pick(rows, { method, LAMBDA: 0.001 }), 'mean')).toBeLessThan(n(pick(rows, { method, LAMBDA: 5 }), 'mean'));
  },
  // On J_tau FedAvg's (regfedpg's) exact-gradient floor sits far above Fast-FedPG's; more agents, smaller sampled gap.
  floor: (rows) => {
    const src = (rows.find((r) => String(r.source).includes('J_tau'))!.source) as string;
    const g = (method: string, N: number): number => n(pick(rows, { source: src, method, N }), 'meanGap');
    expect(g('regfedpg (FedAvg on J_tau) (exact gradients)', 16)).toBeGreaterThan(5 * g('fast-fedpg+entropy (exact gradients)', 16));
    expect(g('fast-fedpg+entropy', 16)).toBeLessThan(g('fast-fedpg+entropy', 4) / 2);
  },
  // Strong noise (small epsilon) costs far more than the clip alone.
  privacy: (rows) => {
    for (const method of ['fast-fedpg', 'fedavg']) {
      const clip = n(pick(rows, { method, privacy: 'clip C = 1 (SIGMA = 0)' }), 'mean');
      expect(n(pick(rows, { method, privacy: 'clip C = 1', SIGMA: 16 }), 'mean')).toBeGreaterThan(5 * clip);
    }
  },
} satisfies Record<string, Check>);

describe('experiment --quick', () => {
  it('every experiment has a quick configuration and a direction check here', () => {
    expect(Object.keys(DIRECTION).sort()).toEqual([...EXPERIMENT_NAMES].sort());
    for (const name of EXPERIMENT_NAMES) {
      const q = EXPERIMENTS[name]!.quick;
      expect(Object.keys(q).length, name).toBeGreaterThan(0);
      for (const k of Object.keys(q)) expect(EXPERIMENTS[name]!.params, `${name}.quick.${k}`).toContain(k);
    }
  });

  it.each([...EXPERIMENT_NAMES])('%s --quick runs in seconds and shows the claim\'s direction', async (name) => {
    const t0 = Date.now();
    const { log, summary } = await runExperiment(name, {}, { threads: 2, quick: true });
    const seconds = (Date.now() - t0) / 1000;
    expect(log.header.quick).toBe(true);
    expect(summary.partial).toBe(false);
    DIRECTION[name]!(summary.rows);
    // Under a minute on this machine with room to spare (measured: 1 to 5 s each).
    expect(seconds).toBeLessThan(60);
  }, 120_000);
});
