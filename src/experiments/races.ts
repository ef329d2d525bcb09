import { CHART_CONFIG, fmt, groupRuns, inOrder, methodColours, num, SCHEMA, spread } from './common.js';
import { meanCurve } from './curves.js';
import type { RunResult } from './task.js';
import type { Row } from './types.js';

/**
 * Methods racing on a budget (rounds, samples or bytes): the mean curve of each method against a
 * cost axis, the value each run reaches within a budget, and the leaderboard. Shared by the
 * rivals and compare experiments.
 *
 * The metric is the gap J* - J (lower is better) where the MDP has a J*; with per-agent kernels
 * (no average MDP, no J*) it is J itself, the mean of the agents' J_i (higher is better).
 */

export type CostAxis = 'round' | 'trajectories' | 'bytes';

export const AXIS_TITLES: Record<CostAxis, string> = { round: 'rounds', trajectories: 'samples (trajectories, all agents)', bytes: 'bytes sent (all messages)' };

/** Whether the runs' metric is the gap (lower is better) or J (per-agent kernels: higher is better). */
export function metricOf(run: RunResult): 'gap' | 'J' {
  return run.Jstar === null ? 'J' : 'gap';
}

/** The cost of a run at its i-th checkpoint on an axis (null where not recorded). */
function costAt(run: RunResult, axis: CostAxis, i: number): number | null {
  if (axis === 'round') return run.curve.round[i]!;
  return run.curve.extra?.[axis]?.[i] ?? null;
}

/**
 * The metric at the last checkpoint whose cost is within the budget (null when even the first
 * recorded checkpoint is over it). Checkpoints are dense (linear) in the races, so this is the
 * value the run had when its budget ran out, to the checkpoint spacing.
 */
export function valueWithin(run: RunResult, axis: CostAxis, budget: number): number | null {
  const m = metricOf(run);
  let v: number | null = null;
  for (let i = 0; i < run.curve.round.length; i++) {
    const c = costAt(run, axis, i);
    if (c === null || c > budget * (1 + 1e-12)) continue;
    v = m === 'gap' ? run.curve.gap[i]! : run.curve.J[i]!;
  }
  return v;
}

/** A run's total cost on an axis. */
export function totalCost(run: RunResult, axis: CostAxis): number {
  return axis === 'round' ? run.final.round : axis === 'trajectories' ? run.cost.trajectories : run.cost.bytes;
}

/**
 * The mean curve of a method's runs against a cost axis: x is the mean cost over the runs at each
 * checkpoint (the same for every seed unless participation varies), y the mean metric.
 */
export function costCurve(group: RunResult[], axis: CostAxis): { x: number; y: number }[] {
  const m = metricOf(group[0]!);
  const mc = meanCurve(group, m);
  const out: { x: number; y: number }[] = [];
  mc.round.forEach((round, i) => {
    const y = mc.value[i];
    const costs = group.map((r) => costAt(r, axis, r.curve.round.indexOf(round)));
    if (y === null || y === undefined || costs.some((c) => c === null)) return;
    const x = (costs as number[]).reduce((a, b) => a + b, 0) / costs.length;
    if (x > 0 && (m === 'J' || y > 0)) out.push({ x, y });
  });
  return out;
}

export interface Standing {
  source: string;
  method: string;
  seeds: number;
  mean: number | null;
  se: number | null;
  rank: number | null;
  /** Rank-1 only: (runner-up's mean - winner's mean) / sqrt(se1^2 + se2^2), oriented so larger is a clearer win. */
  marginSe: number | null;
}

/**
 * Ranks methods per source by their mean (lower first for gaps, higher first for J); `ranked`
 * says which methods take part (others get rank null: e.g. exact-Q methods beside sampled ones).
 */
export function leaderboard(values: { source: string; method: string; metric: 'gap' | 'J'; values: number[] }[], ranked: (method: string) => boolean): Standing[] {
  const out: Standing[] = [];
  for (const source of inOrder(values.map((v) => v.source)) as string[]) {
    const here = values.filter((v) => v.source === source);
    const lowerIsBetter = here[0]!.metric === 'gap';
    const st = here.map((v) => {
      const s = spread(v.values);
      return { source, method: v.method, seeds: s.n, mean: num(s.mean), se: num(s.se), rank: null as number | null, marginSe: null as number | null };
    });
    const order = st.filter((s) => ranked(s.method) && s.mean !== null).sort((a, b) => (lowerIsBetter ? a.mean! - b.mean! : b.mean! - a.mean!));
    order.forEach((s, k) => (s.rank = k + 1));
    if (order.length >= 2) {
      const [w, r] = [order[0]!, order[1]!];
      const se = Math.hypot(w.se ?? 0, r.se ?? 0);
      order[0]!.marginSe = se > 0 ? num(Math.abs(r.mean! - w.mean!) / se) : null;
    }
    out.push(...st);
  }
  return out;
}

/** A Markdown table of a leaderboard (per source: method, mean ± s.e., rank; the winner's margin). */
export function leaderboardMarkdown(st: Standing[], metricName: (source: string) => string): string {
  const lines = ['| MDP | method | mean final ' + 'value ± s.e. | rank |', '|---|---|---|---|'];
  for (const s of st) {
    const rank = s.rank === null ? 'not ranked' : s.rank === 1 ? `**1** (by ${s.marginSe === null ? 'n/a' : fmt(s.marginSe)} s.e.)` : String(s.rank);
    lines.push(`| ${s.source} (${metricName(s.source)}) | ${s.method} | ${fmt(s.mean)}${s.se !== null ? ` ± ${fmt(s.se, 2)}` : ''} | ${rank} |`);
  }
  return lines.join('\n');
}

/** Rows of leaderboard standings for a summary table. */
export function standingRows(st: Standing[], budget: string): Row[] {
  return st.map((s) => ({ budget, source: s.source, method: s.method, seeds: s.seeds, mean: s.mean, se: s.se, rank: s.rank, marginSe: s.marginSe }));
}

/**
 * One plot row per source (its own y scale: log for gaps, linear for J), one column per axis:
 * every method's mean curve. `series` groups runs into methods (same checkpoints within a group).
 */
export function raceChart(
  runs: RunResult[],
  axes: CostAxis[],
  series: (r: RunResult) => string,
  title: string,
  subtitle: string[],
  o: { budgets?: Map<string, Partial<Record<CostAxis, number>>>; dash?: (r: RunResult) => string; dashTitle?: string } = {},
): Record<string, unknown> {
  const sources = inOrder(runs.map((r) => r.cell.source)) as string[];
  const methods = inOrder(runs.map(series)) as string[];
  const colours = methodColours(methods);
  const rows = sources.map((source) => {
    const here = runs.filter((r) => r.cell.source === source);
    const m = metricOf(here[0]!);
    const panels = axes.map((axis) => {
      const data: Record<string, unknown>[] = [];
      for (const [, group] of groupRuns(here, (r) => `${series(r)}|${o.dash?.(r) ?? ''}`)) {
        // A method with no cost on this axis (exact gradients have no samples) has no curve here.
        const method = series(group[0]!), dash = o.dash?.(group[0]!) ?? '';
        for (const p of costCurve(group, axis)) data.push({ method, dash, line: `${method}|${dash}`, x: p.x, y: p.y });
      }
      const budget = o.budgets?.get(source)?.[axis];
      const layer: Record<string, unknown>[] = [
        {
          mark: { type: 'line', strokeWidth: 1.5, clip: true },
          encoding: {
            x: { field: 'x', type: 'quantitative', scale: { type: 'log' }, title: AXIS_TITLES[axis] },
            y: { field: 'y', type: 'quantitative', scale: m === 'gap' ? { type: 'log' } : { zero: false }, title: m === 'gap' ? `${source}: mean gap J* - J` : `${source}: mean J (no J*)` },
            color: { field: 'method', type: 'nominal', scale: colours, title: 'method' },
            detail: { field: 'line' },
            ...(o.dash ? { strokeDash: { field: 'dash', type: 'nominal', title: o.dashTitle ?? null, sort: inOrder(runs.map(o.dash)) } } : {}),
          },
        },
      ];
      if (budget !== undefined) layer.push({ data: { values: [{ b: budget }] }, mark: { type: 'rule', color: '#999', strokeDash: [4, 3] }, encoding: { x: { field: 'b', type: 'quantitative' } } });
      return { width: 250, height: 190, data: { values: data }, layer };
    });
    return { hconcat: panels };
  });
  return { $schema: SCHEMA, title: { text: title, subtitle }, vconcat: rows, resolve: { scale: { color: 'shared' } }, config: CHART_CONFIG };
}
