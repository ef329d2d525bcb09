import { CHART_CONFIG, DEFAULT_PARAMS, inOrder, fmt, groupRuns, loadSources, methodColours, methodName, num, SCHEMA, seedsOf, spread } from './common.js';
import { meanCurve } from './curves.js';
import { agentsOrSkip } from './mdps.js';
import { single } from './speedup.js';
import { bootstrapSlope, logLogFit } from './stats.js';
import type { Experiment, Fit, PlannedTask, Row } from './types.js';

/** The budgets T of the sweep, as fractions of the `rounds` parameter. */
export const BUDGET_FRACTIONS = [1 / 30, 1 / 10, 1 / 3, 1];

/** eta = c sqrt(N / (H T)): the step that balances the two terms of the non-convex bound. */
export function theoremEta(c: number, N: number, H: number, T: number): number {
  return c * Math.sqrt(N / (H * T));
}

/**
 * Claim 3: without gradient domination, or with per-agent transition kernels, the average squared
 * gradient norm (1/T) sum_t |grad J(theta_bar(t))|^2 shrinks as O~(1/sqrt(N H T)).
 */
export const nonidentical: Experiment = {
  name: 'nonidentical',
  title: 'Per-agent transition kernels: average squared gradient norm against rounds',
  claim:
    "Claim 3: with per-agent transition kernels (no average MDP, no J*), the average squared gradient norm (1/T) sum_{t<T} |grad J(theta_bar(t))|^2 shrinks as O~(1/sqrt(N H T)) when the step is eta = c sqrt(N/(H T)): a log-log slope of -1/2 against T, and a factor sqrt(N) across N.",
  params: ['mdp', 'algorithms', 'agents', 'rounds', 'localSteps', 'eta', 'alphaG', 'horizon', 'batch', 'seeds', 'backend'],
  defaults: {
    ...DEFAULT_PARAMS,
    mdp: ['labbi-challenging', 'kernels:states=6,actions=3,agents=8,gamma=0.9,heterogeneity=0.5,seed=0'],
    algorithms: ['fast-fedpg', 'fedavg'],
    agents: [2, 8],
    rounds: 3000,
    localSteps: [5],
    eta: 1,
    horizon: [50],
    batch: 1,
    seeds: 8,
  },
  // --quick: under a minute on two cores, the claim's direction (README: the paper's claims, checked).
  quick: { mdp: ['labbi-challenging'], agents: [2], rounds: 600, seeds: 4 },
  fixed: {
    gradient: 'sampled',
    theta0: 'zeros',
    'rounds T': `the sweep T = rounds x (${BUDGET_FRACTIONS.map((f) => (f === 1 ? '1' : `1/${Math.round(1 / f)}`)).join(', ')})`,
    'step size': 'eta = c sqrt(N / (H T)) with c = the eta parameter',
  },
  columns: ['source', 'method', 'N', 'T', 'eta', 'seeds', 'meanAvgGradNormSq', 'seAvgGradNormSq', 'medianAvgGradNormSq'],

  plan(p) {
    const H = single(p, 'localSteps', 'nonidentical');
    const K = single(p, 'horizon', 'nonidentical');
    const budgets = [...new Set(BUDGET_FRACTIONS.map((f) => Math.max(1, Math.round(p.rounds * f))))];
    const tasks: PlannedTask[] = [];
    const notes: string[] = [];
    for (const src of loadSources(p.mdp)) {
      for (const N of p.agents) {
        const mdp = agentsOrSkip(src, N, notes);
        if (!mdp) continue;
        for (const T of budgets)
          for (const algorithm of p.algorithms)
            for (const seed of seedsOf('sampled', p.seeds)) {
              const eta = theoremEta(p.eta, N, H, T);
              tasks.push({
                cell: { source: src.label, method: methodName(algorithm), algorithm, N, T, eta },
                mdp,
                settings: { algorithm, gradient: 'sampled', rounds: T, localSteps: H, eta, alphaG: p.alphaG, horizon: K, batch: p.batch, seed },
                pointsPerDecade: 10,
              });
            }
      }
    }
    return { tasks, notes };
  },

  summarise(log) {
    const rows: Row[] = [];
    const fits: Fit[] = [];
    const findings: string[] = [];
    for (const [, series] of groupRuns(log.runs, (r) => `${r.cell.source}|${r.cell.method}|${r.cell.N}`)) {
      const first = series[0]!;
      const Ts: number[] = [], groups: number[][] = [], means: number[] = [];
      for (const [, group] of groupRuns(series, (r) => String(r.cell.T))) {
        const vals = group.map((r) => r.final.avgGradNormSq).filter((v): v is number => v !== null);
        const s = spread(vals);
        const T = group[0]!.cell.T as number;
        rows.push({
          source: first.cell.source!,
          method: first.cell.method!,
          N: first.cell.N!,
          T,
          eta: group[0]!.cell.eta!,
          seeds: s.n,
          meanAvgGradNormSq: num(s.mean),
          seAvgGradNormSq: num(s.se),
          medianAvgGradNormSq: num(s.median),
        });
        Ts.push(T);
        groups.push(vals);
        means.push(s.mean);
      }
      const f = logLogFit(Ts, means);
      const ci = Ts.length >= 2 && groups.every((g) => g.length >= 2) ? bootstrapSlope(Ts, groups) : null;
      const label = `${first.cell.method} on ${first.cell.source}, N = ${first.cell.N}`;
      fits.push({
        label: `${label}: mean of (1/T) sum |grad J|^2 ~ T^slope`,
        group: { source: first.cell.source!, method: first.cell.method!, N: first.cell.N! },
        slope: f.slope,
        intercept: f.intercept,
        slopeSe: f.slopeSe,
        ci,
        r2: f.r2,
        n: f.n,
        from: Math.min(...Ts),
        to: Math.max(...Ts),
      });
      findings.push(
        `${label}: average squared gradient norm ${means.map((m) => fmt(m)).join(' / ')} for T = ${Ts.join(' / ')}; slope ${fmt(f.slope)}${ci ? ` (95% bootstrap ${fmt(ci[0])} to ${fmt(ci[1])})` : ''} against T (claim 3: -0.5).`,
      );
    }
    // Across N at the largest T: the claim predicts a factor sqrt(N2/N1).
    for (const [, series] of groupRuns(log.runs, (r) => `${r.cell.source}|${r.cell.method}`)) {
      const Tmax = Math.max(...series.map((r) => r.cell.T as number));
      const at = rows.filter((r) => r.source === series[0]!.cell.source && r.method === series[0]!.cell.method && r.T === Tmax).sort((a, b) => (a.N as number) - (b.N as number));
      if (at.length >= 2) {
        const lo = at[0]!, hi = at[at.length - 1]!;
        findings.push(
          `${lo.method} on ${lo.source}, T = ${Tmax}: N = ${lo.N} -> ${hi.N} divides the average squared gradient norm by ${fmt((lo.meanAvgGradNormSq as number) / (hi.meanAvgGradNormSq as number))} (claim 3: sqrt(${hi.N}/${lo.N}) = ${fmt(Math.sqrt((hi.N as number) / (lo.N as number)))}).`,
        );
      }
    }
    return { rows, fits, findings, tables: [] };
  },

  chart(summary, log) {
    const data: Record<string, unknown>[] = [];
    for (const r of summary.rows) {
      const m = r.meanAvgGradNormSq as number | null, se = (r.seAvgGradNormSq as number | null) ?? 0;
      if (m !== null && m > 0) data.push({ kind: 'final', source: r.source, series: `${r.method}, N = ${r.N}`, method: r.method, N: `N = ${r.N}`, T: r.T, value: m, lo: Math.max(m - se, m / 20), hi: m + se });
    }
    // slope -1/2 guide through each source's first series at the smallest T.
    for (const source of new Set(summary.rows.map((r) => r.source))) {
      const rs = summary.rows.filter((r) => r.source === source);
      const T0 = Math.min(...rs.map((r) => r.T as number)), T1 = Math.max(...rs.map((r) => r.T as number));
      const base = rs.find((r) => r.T === T0);
      if (base && (base.meanAvgGradNormSq as number) > 0)
        for (const T of [T0, T1]) data.push({ kind: 'guide', source, T, value: (base.meanAvgGradNormSq as number) * Math.sqrt(T0 / T) });
    }
    // Running averages of the longest runs (mean over seeds).
    for (const [, group] of groupRuns(log.runs, (r) => `${r.cell.source}|${r.cell.method}|${r.cell.N}|${r.cell.T}`)) {
      const c = group[0]!.cell;
      const Tmax = Math.max(...log.runs.filter((r) => r.cell.source === c.source).map((r) => r.cell.T as number));
      if (c.T !== Tmax) continue;
      const mc = meanCurve(group, 'avgGradNormSq');
      mc.round.forEach((round, i) => {
        const v = mc.value[i];
        if (round >= 1 && v !== null && v !== undefined && v > 0) data.push({ kind: 'running', source: c.source, series: `${c.method}, N = ${c.N}`, method: c.method, N: `N = ${c.N}`, round, value: v });
      });
    }
    const colours = methodColours(summary.rows.map((r) => r.method as string));
    const color = { field: 'method', type: 'nominal', scale: colours, title: 'method' };
    const dash = { field: 'N', type: 'nominal', title: 'agents', scale: { range: [[1, 0], [6, 3], [2, 2], [8, 2, 2, 2]] } };
    const xT = { field: 'T', type: 'quantitative', scale: { type: 'log' }, title: 'rounds T', axis: { values: [...new Set(summary.rows.map((r) => r.T as number))] } };
    const sources = inOrder(summary.rows.map((r) => r.source));
    const y = { field: 'value', type: 'quantitative', scale: { type: 'log' }, title: 'mean |grad J|^2 over t < T', axis: { format: '.0e' } };
    const p = summary.params;
    const budgets = [...new Set(summary.rows.map((r) => r.T as number))].sort((a, b) => a - b);
    return {
      $schema: SCHEMA,
      title: {
        text: 'Average squared gradient norm with per-agent transition kernels (sampled gradients)',
        subtitle: [
          `H = ${p.localSteps[0]}, K = ${p.horizon[0]}, M = ${p.batch}, eta = ${p.eta} sqrt(N/(H T)), mean over ${p.seeds} seeds. Top: at the end of runs of T = ${budgets.join(', ')} rounds (grey: slope -1/2). Bottom: the running average during the longest runs.`,
        ],
      },
      data: { values: data },
      vconcat: [
        {
          facet: { column: { field: 'source', type: 'nominal', title: null, sort: sources } },
          spec: {
            width: 300,
            height: 210,
            layer: [
              { transform: [{ filter: "datum.kind === 'guide'" }], mark: { type: 'line', color: '#999', strokeDash: [2, 2] }, encoding: { x: xT, y } },
              { transform: [{ filter: "datum.kind === 'final'" }], mark: { type: 'rule' }, encoding: { x: xT, y: { ...y, field: 'lo' }, y2: { field: 'hi' }, color } },
              {
                transform: [{ filter: "datum.kind === 'final'" }],
                mark: { type: 'line', point: { filled: true, size: 36 } },
                encoding: { x: xT, y, color, strokeDash: dash, shape: { field: 'N', type: 'nominal', title: 'agents' }, detail: { field: 'series' } },
              },
            ],
          },
          resolve: { scale: { y: 'independent' } },
        },
        {
          facet: { column: { field: 'source', type: 'nominal', title: null, sort: sources } },
          spec: {
            width: 300,
            height: 210,
            transform: [{ filter: "datum.kind === 'running'" }],
            mark: { type: 'line' },
            encoding: { x: { field: 'round', type: 'quantitative', scale: { type: 'log' }, title: 'round t' }, y: { ...y, title: 'mean |grad J|^2 over s < t' }, color, strokeDash: dash, detail: { field: 'series' } },
          },
          resolve: { scale: { y: 'independent' } },
        },
      ],
      config: CHART_CONFIG,
    };
  },
};
