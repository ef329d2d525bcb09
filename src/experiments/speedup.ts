import { InputError } from '../errors.js';
import { CHART_CONFIG, DEFAULT_PARAMS, inOrder, fmt, groupRuns, loadSources, methodColours, methodName, num, runSettings, SCHEMA, seedsOf, spread } from './common.js';
import { agentsOrSkip } from './mdps.js';
import { bootstrapSlope, logLogFit } from './stats.js';
import type { RunResult } from './task.js';
import type { Experiment, ExperimentParams, Fit, PlannedTask, Row } from './types.js';

/** The `fracAbove0.1` column: the fraction of seeds whose final gap exceeds this (stalled or slow seeds). */
export const STALL_THRESHOLD = 0.1;

/** The single value of a list parameter an experiment does not sweep. */
export function single<K extends keyof ExperimentParams>(p: ExperimentParams, k: K, experiment: string): ExperimentParams[K] extends (infer T)[] ? T : never {
  const v = p[k] as unknown[];
  if (v.length !== 1) throw new InputError(`the ${experiment} experiment takes one ${k} value, got ${v.length} (${v.join(', ')})`);
  return v[0] as never;
}

/** Runs over seeds for each (source, method, N): final gaps, their spread, and the fitted slope against N. */
export function gapAgainstN(runs: RunResult[], seriesKey: (r: RunResult) => string, label: (r: RunResult) => string) {
  const rows: Row[] = [];
  const fits: Fit[] = [];
  const findings: string[] = [];
  for (const [, series] of groupRuns(runs, seriesKey)) {
    const byN = groupRuns(series, (r) => String(r.cell.N));
    const Ns: number[] = [];
    const gapsByN: number[][] = [];
    const means: number[] = [];
    const ses: number[] = [];
    for (const [, group] of byN) {
      const gaps = group.map((r) => r.final.gap).filter((g): g is number => g !== null);
      const s = spread(gaps);
      const first = group[0]!;
      rows.push({
        source: first.cell.source!,
        method: first.cell.method!,
        gradient: first.cell.gradient ?? 'sampled',
        N: first.cell.N!,
        seeds: s.n,
        rounds: first.final.round,
        meanGap: num(s.mean),
        seGap: num(s.se),
        medianGap: num(s.median),
        q25Gap: num(s.q25),
        q75Gap: num(s.q75),
        minGap: num(s.min),
        maxGap: num(s.max),
        'fracAbove0.1': num(gaps.filter((g) => g > STALL_THRESHOLD).length / gaps.length),
        trajectoriesPerAgent: num(first.cost.trajectories / (first.cell.N as number)),
      });
      Ns.push(first.cell.N as number);
      gapsByN.push(gaps);
      means.push(s.mean);
      ses.push(s.se);
    }
    const first = series[0]!;
    if (first.cell.gradient === 'exact') {
      findings.push(`${label(first)}: gap ${means.map((m) => fmt(m)).join(' / ')} for N = ${Ns.join(' / ')} after ${first.final.round} rounds, the floor that no number of agents removes at this T.`);
      continue;
    }
    const f = logLogFit(Ns, means);
    const ci = Ns.length >= 2 && gapsByN.every((g) => g.length >= 2) ? bootstrapSlope(Ns, gapsByN) : null;
    fits.push({
      label: `${label(first)}: mean final gap ~ N^slope`,
      group: { source: first.cell.source!, method: first.cell.method! },
      slope: f.slope,
      intercept: f.intercept,
      slopeSe: f.slopeSe,
      ci,
      r2: f.r2,
      n: f.n,
      from: Math.min(...Ns),
      to: Math.max(...Ns),
    });
    const med = logLogFit(Ns, gapsByN.map((g) => spread(g).median));
    findings.push(
      `${label(first)}: mean final gap ${means.map((m) => fmt(m)).join(' / ')} (s.e. ${ses.map((s) => fmt(s)).join(' / ')}) for N = ${Ns.join(' / ')}; log-log slope ${fmt(f.slope)}${ci ? ` (95% bootstrap ${fmt(ci[0])} to ${fmt(ci[1])})` : ''}, slope of the median ${fmt(med.slope)}; linear speedup is -1.`,
    );
  }
  // The noise-driven part of the gap: the sampled mean minus the exact-gradient run's gap at the same N.
  for (const f of [...fits]) {
    const exactRows = rows.filter((r) => r.source === f.group.source && r.gradient === 'exact');
    const own = rows.filter((r) => r.source === f.group.source && r.method === f.group.method && r.gradient !== 'exact');
    if (!exactRows.length || !own.length) continue;
    const xs: number[] = [], ys: number[] = [];
    for (const r of own) {
      const e = exactRows.find((x) => x.N === r.N);
      if (e && (r.meanGap as number) - (e.meanGap as number) > 0) {
        xs.push(r.N as number);
        ys.push((r.meanGap as number) - (e.meanGap as number));
      }
    }
    const g = logLogFit(xs, ys);
    fits.push({
      label: `${f.group.method} on ${f.group.source}: (mean final gap - exact-gradient Fast-FedPG's gap) ~ N^slope`,
      group: { ...f.group, quantity: 'excess over exact' },
      slope: g.slope,
      intercept: g.intercept,
      slopeSe: g.slopeSe,
      ci: null,
      r2: g.r2,
      n: g.n,
      from: xs.length ? Math.min(...xs) : NaN,
      to: xs.length ? Math.max(...xs) : NaN,
    });
    findings.push(`${f.group.method} on ${f.group.source}: above the exact-gradient gap (the N -> infinity limit), the excess falls with slope ${fmt(g.slope)} over N = ${xs.join(' / ')}.`);
  }
  return { rows, fits, findings };
}

/** The exact-gradient reference series of the speedup plot. */
export const EXACT_METHOD = 'fast-fedpg (exact gradients)';

export const GAP_ROW_COLUMNS = ['source', 'method', 'gradient', 'N', 'seeds', 'rounds', 'meanGap', 'seGap', 'medianGap', 'q25Gap', 'q75Gap', 'minGap', 'maxGap', 'fracAbove0.1', 'trajectoriesPerAgent'];

/**
 * The final-gap-against-N panel: every seed (faint), mean +- standard error, the fitted power
 * law (dashed) and a slope -1 reference (grey, through the first method's mean at the smallest N).
 */
export function gapAgainstNLayers(rows: Row[], fits: Fit[], runs: RunResult[], colourField = 'method'): { data: Record<string, unknown>[]; layer: Record<string, unknown>[] } {
  const methods = [...new Set(rows.filter((r) => r.gradient !== 'exact').map((r) => r.method as string))];
  const dodge = (m: string): number => Math.pow(1.06, methods.indexOf(m) - (methods.length - 1) / 2);
  const data: Record<string, unknown>[] = [];
  for (const r of runs) {
    const g = r.final.gap;
    if (r.cell.gradient === 'exact') continue;
    if (g !== null && g > 0) data.push({ kind: 'seed', source: r.cell.source, method: r.cell.method, N: r.cell.N, x: (r.cell.N as number) * dodge(r.cell.method as string), gap: g });
  }
  for (const r of rows) {
    const m = r.meanGap as number | null, se = (r.seGap as number | null) ?? 0;
    if (m === null || !(m > 0)) continue;
    if (r.gradient === 'exact') {
      data.push({ kind: 'exact', source: r.source, method: r.method, N: r.N, x: r.N, gap: m });
      continue;
    }
    const x = (r.N as number) * dodge(r.method as string);
    data.push({ kind: 'mean', source: r.source, method: r.method, N: r.N, x, gap: m, lo: Math.max(m - se, m / 20), hi: m + se });
  }
  for (const f of fits) {
    if (!Number.isFinite(f.slope) || f.group.quantity !== undefined) continue;
    const Ns = [...new Set(rows.filter((r) => r.source === f.group.source && r.method === f.group.method).map((r) => r.N as number))].sort((a, b) => a - b);
    for (const N of Ns) data.push({ kind: 'fit', source: f.group.source, method: f.group.method, N, x: N, gap: Math.exp(f.intercept + f.slope * Math.log(N)) });
  }
  for (const source of new Set(rows.map((r) => r.source))) {
    const base = rows.find((r) => r.source === source && r.method === methods[0]);
    const Ns = [...new Set(rows.filter((r) => r.source === source).map((r) => r.N as number))].sort((a, b) => a - b);
    if (!base || !(Number(base.meanGap) > 0) || Ns.length < 2) continue;
    const N0 = Ns[0]!, g0 = rows.find((r) => r.source === source && r.method === methods[0] && r.N === N0)?.meanGap as number;
    if (!(g0 > 0)) continue;
    for (const N of [Ns[0]!, Ns[Ns.length - 1]!]) data.push({ kind: 'reference', source, method: 'slope -1', N, x: N, gap: (g0 * N0) / N });
  }
  const colours = methodColours(methods);
  const x = { field: 'x', type: 'quantitative', scale: { type: 'log' }, title: 'N (agents)', axis: { values: [...new Set(rows.map((r) => r.N as number))] } };
  const y = { field: 'gap', type: 'quantitative', scale: { type: 'log' }, title: 'final gap J* - J(theta_bar(T))' };
  const color = { field: colourField, type: 'nominal', scale: colours, title: 'method' };
  const layer = [
    { transform: [{ filter: "datum.kind === 'seed'" }], mark: { type: 'point', filled: true, size: 14, opacity: 0.25 }, encoding: { x, y, color } },
    { transform: [{ filter: "datum.kind === 'mean'" }], mark: { type: 'rule', strokeWidth: 1.5 }, encoding: { x, y: { ...y, field: 'lo' }, y2: { field: 'hi' }, color } },
    { transform: [{ filter: "datum.kind === 'mean'" }], mark: { type: 'point', filled: true, size: 60 }, encoding: { x, y, color, shape: { value: 'diamond' } } },
    {
      transform: [{ filter: "datum.kind === 'exact'" }],
      mark: { type: 'line', color: '#555', strokeDash: [6, 2], point: { color: '#555', shape: 'square', size: 20 } },
      encoding: { x, y, detail: { field: 'source' } },
    },
    { transform: [{ filter: "datum.kind === 'fit'" }], mark: { type: 'line', strokeDash: [5, 3], strokeWidth: 1.5 }, encoding: { x, y, color, detail: { field: 'method' } } },
    {
      transform: [{ filter: "datum.kind === 'reference'" }],
      mark: { type: 'line', color: '#999', strokeDash: [2, 2] },
      encoding: { x, y, detail: { field: 'source' } },
    },
  ];
  return { data, layer };
}

export const speedup: Experiment = {
  name: 'speedup',
  title: 'Linear speedup in the number of agents (sampled gradients)',
  claim:
    'Claim 2: with noisy truncated gradients, E[J* - J(theta_bar(T))] = O~(1/(N H T)): the final gap shrinks in proportion to 1/N (a log-log slope of -1 against N) with no heterogeneity-induced floor. The first N agents of each source share one average MDP (mirrored reward pairs; N = 1 is that average reward table), so J* is the same for every N.',
  params: ['mdp', 'algorithms', 'agents', 'rounds', 'localSteps', 'eta', 'alphaG', 'horizon', 'batch', 'seeds', 'centralized', 'backend'],
  defaults: {
    ...DEFAULT_PARAMS,
    mdp: ['speedup-s5-a3-n8', 'mirrored:states=5,actions=3,agents=32,gamma=0.8,heterogeneity=1,seed=1'],
    algorithms: ['fast-fedpg', 'fedavg', 'centralized'],
    agents: [1, 2, 4, 8, 16, 32],
    rounds: 3000,
    localSteps: [5],
    eta: 0.05,
    horizon: [20],
    batch: 1,
    seeds: 24,
    centralized: 'matched',
  },
  // --quick: under a minute on two cores, the claim's direction (README: the paper's claims, checked).
  quick: { mdp: ['speedup-s5-a3-n8'], algorithms: ['fast-fedpg', 'fedavg'], agents: [1, 2, 8], rounds: 1000, seeds: 12 },
  fixed: { gradient: 'sampled (plus one exact-gradient Fast-FedPG run per N: the floor at this T)', theta0: 'zeros', 'N = 1': 'the average reward table of all the source\'s agents', 'fracAbove0.1': `fraction of seeds with final gap > ${STALL_THRESHOLD} (seeds stalled near a deterministic, suboptimal policy, or still far)` },
  columns: GAP_ROW_COLUMNS,

  plan(p) {
    const H = single(p, 'localSteps', 'speedup');
    const K = single(p, 'horizon', 'speedup');
    const tasks: PlannedTask[] = [];
    const notes: string[] = [];
    for (const src of loadSources(p.mdp)) {
      for (const N of p.agents) {
        const mdp = agentsOrSkip(src, N, notes);
        if (!mdp) continue;
        for (const algorithm of p.algorithms)
          for (const seed of seedsOf('sampled', p.seeds))
            tasks.push({
              cell: { source: src.label, method: methodName(algorithm), algorithm, gradient: 'sampled', N },
              mdp,
              settings: runSettings(p, { algorithm, gradient: 'sampled', localSteps: H, horizon: K, seed }),
              pointsPerDecade: 3,
            });
        // The same Fast-FedPG with exact gradients: the gap no number of agents can remove at this T.
        if (p.algorithms.includes('fast-fedpg'))
          tasks.push({
            cell: { source: src.label, method: EXACT_METHOD, algorithm: 'fast-fedpg', gradient: 'exact', N },
            mdp,
            settings: runSettings(p, { algorithm: 'fast-fedpg', gradient: 'exact', localSteps: H, horizon: K, seed: 0 }),
            pointsPerDecade: 5,
          });
      }
    }
    return { tasks, notes };
  },

  summarise(log) {
    const r = gapAgainstN(log.runs, (run) => `${run.cell.source}|${run.cell.method}`, (run) => `${run.cell.method} on ${run.cell.source}`);
    return { ...r, tables: [] };
  },

  chart(summary, log) {
    const { data, layer } = gapAgainstNLayers(summary.rows, summary.fits, log.runs);
    const p = summary.params;
    const slopes = [...new Set(summary.fits.map((f) => f.group.source))].map(
      (source) =>
        `${source}: ` +
        summary.fits
          .filter((f) => f.group.source === source && f.group.quantity === undefined)
          .map((f) => `${f.group.method} ${fmt(f.slope)}${f.ci ? ` [${fmt(f.ci[0])}, ${fmt(f.ci[1])}]` : ''}`)
          .join(', '),
    );
    return {
      $schema: SCHEMA,
      title: {
        text: 'Final gap against the number of agents N (sampled gradients; log-log)',
        subtitle: [
          `T = ${p.rounds}, H = ${p.localSteps[0]}, eta = ${p.eta}, K = ${p.horizon[0]}, M = ${p.batch}, ${p.seeds} seeds; centralized: ${p.centralized === 'matched' ? 'H*T rounds (same steps and samples as FedAvg)' : 'T rounds'}.`,
          'Dots: seeds; diamonds: mean +- s.e.; dashed: fit; grey: slope -1; dark squares: Fast-FedPG with exact gradients (the N -> infinity limit at this T).',
          ...slopes.map((line) => `Slope of the mean final gap against N [95% bootstrap] on ${line}`),
        ],
      },
      data: { values: data },
      facet: { column: { field: 'source', type: 'nominal', title: null, sort: inOrder(log.runs.map((r) => r.cell.source)) } },
      spec: { width: 330, height: 260, layer },
      resolve: { scale: { x: 'independent' } },
      config: CHART_CONFIG,
    };
  },
};
