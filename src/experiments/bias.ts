import { CHART_CONFIG, decadeTicks, DEFAULT_PARAMS, fmt, inOrder, loadSources, methodColours, methodName, num, SCHEMA } from './common.js';
import { curveFit, valueAt } from './curves.js';
import { scaleHeterogeneity } from './mdps.js';
import type { Experiment, Fit, PlannedTask, Row } from './types.js';

/**
 * Claim 1 (exact gradients, theta = 0): Fast-FedPG converges to J* without bias; FedAvg-PG with
 * H > 1 stalls at a gap that grows with H and with reward heterogeneity.
 */
export const bias: Experiment = {
  name: 'bias',
  title: "FedAvg's heterogeneity bias against Fast-FedPG (exact gradients)",
  claim:
    'Claim 1: with exact gradients from theta = 0, Fast-FedPG converges to J* with no bias (for tabular softmax at rate O(1/T), not linearly: no uniform gradient-domination constant), while FedAvg-PG with H > 1 stalls at a gap that grows with H and with reward heterogeneity.',
  params: ['mdp', 'algorithms', 'rounds', 'localSteps', 'eta', 'alphaG', 'heterogeneity', 'backend'],
  defaults: {
    ...DEFAULT_PARAMS,
    mdp: ['plateau-s6-a3-n4'],
    algorithms: ['fast-fedpg', 'fedavg'],
    gradient: ['exact'],
    rounds: 2000,
    localSteps: [1, 5, 10, 20],
    eta: 0.5,
    heterogeneity: [0, 0.5, 1],
    seeds: 1,
  },
  // --quick: under a minute on two cores, the claim's direction (README: the paper's claims, checked).
  quick: { localSteps: [1, 10], heterogeneity: [0, 1], rounds: 1000 },
  fixed: { gradient: 'exact', theta0: 'zeros', 'heterogeneity knob': 'R_i(h) = (1-h) R_bar + h R_i (J* does not depend on h)' },
  columns: ['source', 'H', 'heterogeneity', 'method', 'rounds', 'gap0', 'gap100', 'gap500', 'finalGap', 'decadeRatio', 'slope', 'gapTimesT'],

  plan(p) {
    const tasks: PlannedTask[] = [];
    for (const src of loadSources(p.mdp)) {
      for (const H of p.localSteps)
        for (const h of p.heterogeneity) {
          const mdp = scaleHeterogeneity(src.mdp, h);
          for (const algorithm of p.algorithms) {
            tasks.push({
              cell: { source: src.label, H, heterogeneity: h, method: methodName(algorithm), algorithm },
              mdp,
              settings: { algorithm, gradient: 'exact', rounds: p.rounds, localSteps: H, eta: p.eta, alphaG: p.alphaG, seed: 0 },
              pointsPerDecade: 30,
            });
          }
        }
    }
    return { tasks, notes: [] };
  },

  summarise(log) {
    const rows: Row[] = [];
    const fits: Fit[] = [];
    for (const run of log.runs) {
      const T = run.final.round;
      const fit = curveFit(run.curve, 'gap', Math.max(1, Math.floor(T / 10)), T);
      const gT10 = valueAt(run, 'gap', Math.max(1, Math.floor(T / 10)));
      const c = run.cell;
      rows.push({
        source: c.source!,
        H: c.H!,
        heterogeneity: c.heterogeneity!,
        method: c.method!,
        rounds: T,
        gap0: num(run.curve.gap[0]),
        gap100: num(valueAt(run, 'gap', 100)),
        gap500: num(valueAt(run, 'gap', 500)),
        finalGap: num(run.final.gap),
        decadeRatio: gT10 !== null && run.final.gap !== null ? num(run.final.gap / gT10) : null,
        slope: num(fit.slope),
        gapTimesT: run.final.gap !== null ? num(run.final.gap * T) : null,
      });
      fits.push({
        label: `${c.method} on ${c.source}, H=${c.H}, h=${c.heterogeneity}: gap ~ round^slope over the last decade`,
        group: { source: c.source!, H: c.H!, heterogeneity: c.heterogeneity!, method: c.method! },
        slope: fit.slope,
        intercept: fit.intercept,
        slopeSe: fit.slopeSe,
        ci: null,
        r2: fit.r2,
        n: fit.n,
        from: Math.max(1, Math.floor(T / 10)),
        to: T,
      });
    }
    const findings: string[] = [];
    const key = (r: Row): string => `${r.source}|${r.H}|${r.heterogeneity}`;
    const byCell = new Map<string, Row[]>();
    for (const r of rows) byCell.set(key(r), [...(byCell.get(key(r)) ?? []), r]);
    for (const group of byCell.values()) {
      const fast = group.find((r) => r.method === 'fast-fedpg');
      const avg = group.find((r) => r.method === 'fedavg');
      const head = `${group[0]!.source}, H=${group[0]!.H}, h=${group[0]!.heterogeneity}:`;
      const parts: string[] = [];
      if (fast)
        parts.push(
          `Fast-FedPG gap ${fmt(fast.gap100 as number)} / ${fmt(fast.gap500 as number)} / ${fmt(fast.finalGap as number)} after 100 / 500 / ${fast.rounds} rounds (last-decade slope ${fmt(fast.slope as number)}, gap*T = ${fmt(fast.gapTimesT as number)})`,
        );
      if (avg) parts.push(`FedAvg ${fmt(avg.finalGap as number)} (gap(T)/gap(T/10) = ${fmt(avg.decadeRatio as number)})`);
      findings.push(`${head} ${parts.join('; ')}`);
    }
    // The plateau table: FedAvg's final gap, H by heterogeneity (per source).
    const tables = [...new Set(rows.map((r) => r.source as string))].map((source) => {
      const hs = [...new Set(rows.map((r) => r.heterogeneity as number))];
      const tableRows: Row[] = [...new Set(rows.map((r) => r.H as number))].map((H) => {
        const row: Row = { H };
        for (const h of hs) {
          const f = rows.find((r) => r.source === source && r.H === H && r.heterogeneity === h && r.method === 'fedavg');
          row[`h=${h}`] = f ? f.finalGap : null;
        }
        return row;
      });
      return { title: `FedAvg's plateau on ${source}: gap after the last round, H (rows) by heterogeneity h (columns)`, columns: ['H', ...hs.map((h) => `h=${h}`)], rows: tableRows };
    });
    return { rows, fits, findings, tables };
  },

  chart(summary, log) {
    const many = new Set(log.runs.map((r) => r.cell.source)).size > 1;
    const values: Record<string, unknown>[] = [];
    for (const run of log.runs) {
      const c = run.cell;
      run.curve.round.forEach((round, i) => {
        const gap = run.curve.gap[i];
        if (round >= 1 && gap !== null && gap !== undefined && gap > 0)
          values.push({ row: `${many ? `${c.source} ` : ''}H = ${c.H}`, col: `heterogeneity h = ${c.heterogeneity}`, method: c.method, round, gap });
      });
    }
    const colours = methodColours(log.runs.map((r) => r.cell.method as string));
    const p = summary.params;
    return {
      $schema: SCHEMA,
      title: {
        text: 'Optimality gap J* - J(theta_bar) against rounds, exact gradients',
        subtitle: [`${[...new Set(log.runs.map((r) => r.cell.source))].join(', ')}; eta = ${p.eta}, alpha_g = ${p.alphaG}, theta0 = 0. Log-log axes: a slope of -1 is O(1/T); a flat line is a plateau.`],
      },
      data: { values },
      facet: {
        row: { field: 'row', type: 'ordinal', title: null, sort: inOrder(values.map((v) => v.row)) },
        column: { field: 'col', type: 'ordinal', title: null, sort: inOrder(values.map((v) => v.col)) },
      },
      spec: {
        width: 200,
        height: 140,
        mark: { type: 'line', strokeWidth: 1.8 },
        encoding: {
          x: { field: 'round', type: 'quantitative', scale: { type: 'log' }, title: 'round' },
          y: { field: 'gap', type: 'quantitative', scale: { type: 'log' }, title: 'gap', axis: { format: '.0e', values: decadeTicks(values.map((v) => v.gap as number)) } },
          color: { field: 'method', type: 'nominal', scale: colours, title: 'method' },
        },
      },
      config: CHART_CONFIG,
    };
  },
};
