import { CHART_CONFIG, DEFAULT_PARAMS, fmt, groupRuns, loadSources, methodColours, methodName, num, runSettings, SCHEMA, seedsOf, spread } from './common.js';
import { agentsOrSkip, scaleHeterogeneity } from './mdps.js';
import { single } from './speedup.js';
import { logLogFit } from './stats.js';
import type { Experiment, Fit, PlannedTask, Row } from './types.js';

/** The final gap against the heterogeneity knob, both algorithms, exact and sampled gradients. */
export const heterogeneity: Experiment = {
  name: 'heterogeneity',
  title: 'Final gap against reward heterogeneity',
  claim:
    "Claims 1 and 2: FedAvg-PG's gap grows with reward heterogeneity (client drift over H local steps), while Fast-FedPG's correction removes the heterogeneity-induced floor. The knob scales every agent's deviation from the average reward, R_i(h) = (1 - h) R_bar + h R_i, so J* and the average MDP are the same for every h.",
  params: ['mdp', 'algorithms', 'gradient', 'agents', 'heterogeneity', 'rounds', 'localSteps', 'eta', 'alphaG', 'horizon', 'batch', 'seeds', 'backend'],
  defaults: {
    ...DEFAULT_PARAMS,
    mdp: ['plateau-s6-a3-n4'],
    algorithms: ['fast-fedpg', 'fedavg'],
    gradient: ['exact', 'sampled'],
    agents: [4],
    heterogeneity: [0, 0.25, 0.5, 0.75, 1],
    rounds: 1000,
    localSteps: [20],
    eta: 0.1,
    horizon: [30],
    batch: 20,
    seeds: 10,
  },
  // --quick: under a minute on two cores, the claim's direction (README: the paper's claims, checked).
  quick: { gradient: ['exact'], heterogeneity: [0, 0.5, 1], rounds: 300 },
  fixed: { theta0: 'zeros', 'heterogeneity knob': 'R_i(h) = (1-h) R_bar + h R_i' },
  columns: ['source', 'gradient', 'method', 'N', 'heterogeneity', 'seeds', 'meanGap', 'seGap', 'medianGap', 'q25Gap', 'q75Gap'],

  plan(p) {
    const N = single(p, 'agents', 'heterogeneity');
    const H = single(p, 'localSteps', 'heterogeneity');
    const K = single(p, 'horizon', 'heterogeneity');
    const tasks: PlannedTask[] = [];
    const notes: string[] = [];
    for (const src of loadSources(p.mdp)) {
      const base = agentsOrSkip(src, N, notes);
      if (!base) continue;
      for (const gradient of p.gradient)
        for (const h of p.heterogeneity) {
          const mdp = scaleHeterogeneity(base, h);
          for (const algorithm of p.algorithms)
            for (const seed of seedsOf(gradient, p.seeds))
              tasks.push({
                cell: { source: src.label, gradient, method: methodName(algorithm), algorithm, N, heterogeneity: h },
                mdp,
                settings: runSettings(p, { algorithm, gradient, localSteps: H, horizon: K, seed }),
                pointsPerDecade: 3,
              });
        }
    }
    return { tasks, notes };
  },

  summarise(log) {
    const rows: Row[] = [];
    const fits: Fit[] = [];
    const findings: string[] = [];
    for (const [, series] of groupRuns(log.runs, (r) => `${r.cell.source}|${r.cell.gradient}|${r.cell.method}`)) {
      const first = series[0]!;
      const hs: number[] = [], means: number[] = [];
      for (const [, group] of groupRuns(series, (r) => String(r.cell.heterogeneity))) {
        const s = spread(group.map((r) => r.final.gap).filter((g): g is number => g !== null));
        const h = group[0]!.cell.heterogeneity as number;
        rows.push({
          source: first.cell.source!,
          gradient: first.cell.gradient!,
          method: first.cell.method!,
          N: first.cell.N!,
          heterogeneity: h,
          seeds: s.n,
          meanGap: num(s.mean),
          seGap: num(s.se),
          medianGap: num(s.median),
          q25Gap: num(s.q25),
          q75Gap: num(s.q75),
        });
        hs.push(h);
        means.push(s.mean);
      }
      const f = logLogFit(hs, means);
      fits.push({
        label: `${first.cell.method}, ${first.cell.gradient} gradients, on ${first.cell.source}: mean final gap ~ h^slope (h > 0)`,
        group: { source: first.cell.source!, gradient: first.cell.gradient!, method: first.cell.method! },
        slope: f.slope,
        intercept: f.intercept,
        slopeSe: f.slopeSe,
        ci: null,
        r2: f.r2,
        n: f.n,
        from: Math.min(...hs.filter((h) => h > 0)),
        to: Math.max(...hs),
      });
      findings.push(
        `${first.cell.method}, ${first.cell.gradient} gradients (${first.cell.source}, N = ${first.cell.N}): mean final gap ${means.map((m) => fmt(m)).join(' / ')} for h = ${hs.join(' / ')} (log-log slope against h ${fmt(f.slope)}).`,
      );
    }
    for (const gradient of new Set(rows.map((r) => r.gradient))) {
      const hmax = Math.max(...rows.filter((r) => r.gradient === gradient).map((r) => r.heterogeneity as number));
      const a = rows.find((r) => r.gradient === gradient && r.method === 'fedavg' && r.heterogeneity === hmax);
      const b = rows.find((r) => r.gradient === gradient && r.method === 'fast-fedpg' && r.heterogeneity === hmax);
      if (a && b && (b.meanGap as number) > 0) findings.push(`${gradient} gradients, h = ${hmax}: FedAvg's final gap is ${fmt((a.meanGap as number) / (b.meanGap as number))} times Fast-FedPG's.`);
    }
    return { rows, fits, findings, tables: [] };
  },

  chart(summary) {
    const data: Record<string, unknown>[] = [];
    for (const r of summary.rows) {
      const m = r.meanGap as number | null, se = (r.seGap as number | null) ?? 0;
      if (m !== null && m > 0) data.push({ gradient: `${r.gradient} gradients`, method: r.method, h: r.heterogeneity, gap: m, lo: Math.max(m - se, m / 20), hi: m + se });
    }
    const colours = methodColours(summary.rows.map((r) => r.method as string));
    const x = { field: 'h', type: 'quantitative', title: 'heterogeneity h' };
    const y = { field: 'gap', type: 'quantitative', scale: { type: 'log' }, title: 'final gap J* - J(theta_bar(T))', axis: { format: '.0e' } };
    const color = { field: 'method', type: 'nominal', scale: colours, title: 'method' };
    const p = summary.params;
    return {
      $schema: SCHEMA,
      title: {
        text: 'Final gap against reward heterogeneity',
        subtitle: [
          `${p.mdp.join(', ')}; N = ${p.agents[0]}, T = ${p.rounds}, H = ${p.localSteps[0]}, eta = ${p.eta}; sampled: K = ${p.horizon[0]}, M = ${p.batch}, mean +- s.e. over ${p.seeds} seeds.`,
        ],
      },
      data: { values: data },
      facet: { column: { field: 'gradient', type: 'nominal', title: null } },
      spec: {
        width: 300,
        height: 240,
        layer: [
          { mark: { type: 'rule' }, encoding: { x, y: { ...y, field: 'lo' }, y2: { field: 'hi' }, color } },
          { mark: { type: 'line', point: { filled: true, size: 40 } }, encoding: { x, y, color } },
        ],
      },
      resolve: { scale: { y: 'independent' } },
      config: CHART_CONFIG,
    };
  },
};
