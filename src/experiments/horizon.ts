import { CHART_CONFIG, DEFAULT_PARAMS, inOrder, fmt, groupRuns, loadSources, methodColours, methodName, num, runSettings, SCHEMA, seedsOf, spread } from './common.js';
import { agentsOrSkip } from './mdps.js';
import { single } from './speedup.js';
import { logLogFit, mean, semiLogFit, type LineFit } from './stats.js';
import type { Experiment, Fit, PlannedTask, Row } from './types.js';

/**
 * The truncation horizon K: the estimator's expectation is grad_K J, which differs from grad J by
 * O(gamma^K); the final gap against K shows where that bias stops mattering.
 */
export const horizon: Experiment = {
  name: 'horizon',
  title: 'Truncation horizon K: final gap and truncation bias against K',
  claim:
    'The truncated REINFORCE estimator (Eq. 5) has expectation grad_K J with |grad_K J - grad J| = O(gamma^K), so the final gap should fall like gamma^K as K grows until the sampling noise floor; the paper takes K >= log(NHT) / (2 log(1/gamma)).',
  params: ['mdp', 'algorithms', 'agents', 'horizon', 'rounds', 'localSteps', 'eta', 'alphaG', 'batch', 'seeds', 'centralized', 'backend'],
  defaults: {
    ...DEFAULT_PARAMS,
    mdp: ['speedup-s5-a3-n8', 'random:states=5,actions=3,agents=8,gamma=0.95,heterogeneity=0.5,seed=0'],
    algorithms: ['fast-fedpg'],
    agents: [8],
    horizon: [1, 2, 3, 4, 6, 8, 12, 16, 24, 32],
    rounds: 3000,
    localSteps: [5],
    eta: 0.05,
    batch: 1,
    seeds: 16,
  },
  // --quick: under a minute on two cores, the claim's direction (README: the paper's claims, checked).
  quick: { mdp: ['speedup-s5-a3-n8'], horizon: [1, 4, 16], rounds: 1000, seeds: 6 },
  fixed: { gradient: 'sampled', theta0: 'zeros', 'truncation bias': '|grad_K J - grad J| of the average MDP (exact), at theta0 and at each run\'s final theta_bar' },
  columns: ['source', 'method', 'N', 'K', 'gammaK', 'seeds', 'meanGap', 'seGap', 'medianGap', 'biasAtStart', 'meanBiasAtEnd'],

  plan(p) {
    const N = single(p, 'agents', 'horizon');
    const H = single(p, 'localSteps', 'horizon');
    const tasks: PlannedTask[] = [];
    const notes: string[] = [];
    for (const src of loadSources(p.mdp)) {
      const mdp = agentsOrSkip(src, N, notes);
      if (!mdp) continue;
      if (src.mdp.perAgentKernels) {
        notes.push(`${src.label} has per-agent kernels (no J*): skipped.`);
        continue;
      }
      for (const K of p.horizon)
        for (const algorithm of p.algorithms)
          for (const seed of seedsOf('sampled', p.seeds))
            tasks.push({
              cell: { source: src.label, method: methodName(algorithm), algorithm, N, K, gamma: mdp.gamma },
              mdp,
              settings: runSettings(p, { algorithm, gradient: 'sampled', localSteps: H, horizon: K, seed }),
              pointsPerDecade: 3,
              truncationBias: true,
            });
    }
    return { tasks, notes };
  },

  summarise(log) {
    const rows: Row[] = [];
    const fits: Fit[] = [];
    const findings: string[] = [];
    for (const [, series] of groupRuns(log.runs, (r) => `${r.cell.source}|${r.cell.method}`)) {
      const first = series[0]!;
      const gamma = first.cell.gamma as number;
      const Ks: number[] = [], means: number[] = [], bias0: number[] = [];
      for (const [, group] of groupRuns(series, (r) => String(r.cell.K))) {
        const K = group[0]!.cell.K as number;
        const s = spread(group.map((r) => r.final.gap).filter((g): g is number => g !== null));
        const b0 = group[0]!.final.truncationBias0 ?? null;
        const bEnd = mean(group.map((r) => r.final.truncationBias).filter((b): b is number => b !== undefined));
        rows.push({
          source: first.cell.source!,
          method: first.cell.method!,
          N: first.cell.N!,
          K,
          gammaK: gamma ** K,
          seeds: s.n,
          meanGap: num(s.mean),
          seGap: num(s.se),
          medianGap: num(s.median),
          biasAtStart: num(b0),
          meanBiasAtEnd: num(bEnd),
        });
        Ks.push(K);
        means.push(s.mean);
        bias0.push(b0 ?? NaN);
      }
      // The gap is U-shaped in K: truncation bias below the best K, estimator variance above it.
      const best = means.reduce((bi, m, i) => (m < means[bi]! ? i : bi), 0);
      const down = semiLogFit(Ks.slice(0, best + 1), means.slice(0, best + 1));
      const up = logLogFit(Ks.slice(best), means.slice(best));
      const biasFit = semiLogFit(Ks, bias0);
      const label = `${first.cell.method} on ${first.cell.source} (N = ${first.cell.N}, gamma = ${gamma})`;
      const fit = (what: string, quantity: string, f: LineFit, from: number, to: number): Fit => ({
        label: `${label}: ${what}`,
        group: { source: first.cell.source!, method: first.cell.method!, quantity },
        slope: f.slope,
        intercept: f.intercept,
        slopeSe: f.slopeSe,
        ci: null,
        r2: f.r2,
        n: f.n,
        from,
        to,
      });
      fits.push(
        fit('mean final gap ~ exp(slope * K) for K up to the best K (truncation bias)', 'gap below best K', down, Ks[0]!, Ks[best]!),
        fit('mean final gap ~ K^slope for K from the best K (estimator variance)', 'gap above best K', up, Ks[best]!, Ks[Ks.length - 1]!),
        fit('truncation bias |grad_K J - grad J| at theta0 ~ exp(slope * K)', 'bias', biasFit, Ks[0]!, Ks[Ks.length - 1]!),
      );
      findings.push(
        `${label}: mean final gap ${means.map((m) => fmt(m)).join(' / ')} for K = ${Ks.join(' / ')}: smallest at K = ${Ks[best]}.` +
          (down.n >= 2 ? ` Below it the gap falls by a factor ${fmt(Math.exp(down.slope))} per unit of K (gamma = ${gamma}).` : '') +
          (up.n >= 2 ? ` Above it the gap grows like K^${fmt(up.slope)} (the variance of the Eq. 5 estimator grows with K).` : '') +
          ` The truncation bias |grad_K J - grad J| at theta0 falls by ${fmt(Math.exp(biasFit.slope))} per unit of K. The paper's rule K >= log(NHT)/(2 log(1/gamma)) asks for K >= ${fmt(Math.log((first.cell.N as number) * (first.settings.localSteps as number) * first.final.round) / (2 * Math.log(1 / gamma)))}.`,
      );
    }
    return { rows, fits, findings, tables: [] };
  },

  chart(summary, log) {
    const data: Record<string, unknown>[] = [];
    for (const r of log.runs) if (r.final.gap !== null && r.final.gap > 0) data.push({ kind: 'seed', source: r.cell.source, method: r.cell.method, K: r.cell.K, value: r.final.gap });
    for (const r of summary.rows) {
      const m = r.meanGap as number | null, se = (r.seGap as number | null) ?? 0;
      if (m !== null && m > 0) data.push({ kind: 'mean', source: r.source, method: r.method, K: r.K, value: m, lo: Math.max(m - se, m / 20), hi: m + se });
      if ((r.biasAtStart as number) > 0) data.push({ kind: 'bias', series: 'at theta0 = 0', source: r.source, K: r.K, value: r.biasAtStart });
      if ((r.meanBiasAtEnd as number) > 0) data.push({ kind: 'bias', series: "at the final theta_bar", source: r.source, K: r.K, value: r.meanBiasAtEnd });
    }
    // 3 gamma^K through three times the first bias point: a slope guide beside the measured bias.
    for (const source of new Set(summary.rows.map((r) => r.source))) {
      const rs = summary.rows.filter((r) => r.source === source);
      const r0 = rs[0];
      if (!r0 || !((r0.biasAtStart as number) > 0)) continue;
      for (const r of rs) data.push({ kind: 'guide', source, K: r.K, value: (3 * (r0.biasAtStart as number) * (r.gammaK as number)) / (r0.gammaK as number) });
    }
    const colours = methodColours(summary.rows.map((r) => r.method as string));
    const x = { field: 'K', type: 'quantitative', title: 'horizon K' };
    const yGap = { field: 'value', type: 'quantitative', scale: { type: 'log' }, title: 'final gap J* - J(theta_bar(T))' };
    const color = { field: 'method', type: 'nominal', scale: colours, title: 'method' };
    const p = summary.params;
    const sources = inOrder(summary.rows.map((r) => r.source)) as string[];
    const of = (source: string, kind: string) => ({ filter: { and: [{ field: 'source', equal: source }, { field: 'kind', equal: kind }] } });
    return {
      $schema: SCHEMA,
      title: {
        text: 'Truncation horizon K (sampled gradients; log y, linear K)',
        subtitle: [
          `N = ${p.agents[0]}, T = ${p.rounds}, H = ${p.localSteps[0]}, eta = ${p.eta}, M = ${p.batch}, ${p.seeds} seeds. Left: final gap (dots: seeds; diamonds: mean +- s.e.). Right: |grad_K J - grad J| of the average MDP (exact).`,
        ],
      },
      data: { values: data },
      vconcat: sources.map((source) => ({
        resolve: { scale: { color: 'independent' } },
        hconcat: [
          {
            title: { text: `${source}: final gap`, fontSize: 12 },
            width: 330,
            height: 220,
            layer: [
              { transform: [of(source, 'seed')], mark: { type: 'point', filled: true, size: 14, opacity: 0.3 }, encoding: { x, y: yGap, color } },
              { transform: [of(source, 'mean')], mark: { type: 'rule' }, encoding: { x, y: { ...yGap, field: 'lo' }, y2: { field: 'hi' }, color } },
              { transform: [of(source, 'mean')], mark: { type: 'line', point: { shape: 'diamond', size: 50, filled: true } }, encoding: { x, y: yGap, color } },
            ],
          },
          {
            title: { text: `${source}: truncation bias (dotted: 3 gamma^K, a slope guide)`, fontSize: 12 },
            width: 330,
            height: 220,
            layer: [
              {
                transform: [of(source, 'bias')],
                mark: { type: 'line', point: true },
                encoding: {
                  x,
                  y: { field: 'value', type: 'quantitative', scale: { type: 'log' }, title: '|grad_K J - grad J|', axis: { format: '.0e' } },
                  color: { field: 'series', type: 'nominal', title: 'bias', scale: { range: ['#1f77b4', '#ff7f0e'] } },
                },
              },
              { transform: [of(source, 'guide')], mark: { type: 'line', color: '#777', strokeDash: [2, 2] }, encoding: { x, y: { field: 'value', type: 'quantitative' } } },
            ],
          },
        ],
      })),
      resolve: { scale: { color: 'independent' } },
      config: CHART_CONFIG,
    };
  },
};
