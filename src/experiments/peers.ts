import type { Algorithm } from '../federation/settings.js';
import { CHART_CONFIG, DEFAULT_PARAMS, inOrder, fmt, groupRuns, loadSources, methodColours, methodName, num, runSettings, SCHEMA, seedsOf, spread } from './common.js';
import { curveFit, meanCurve } from './curves.js';
import { agentsOrSkip } from './mdps.js';
import { single } from './speedup.js';
import { semiLogFit } from './stats.js';
import type { RunResult } from './task.js';
import type { Experiment, Fit, PlannedTask, Row } from './types.js';

/** The linear-rate fit starts at this fraction of the last round where the gap is above round-off ... */
const RATE_FROM = 0.5;
/** ... the level taken for round-off (J_tau* comes from soft value iteration to 1e-15 relative). */
const RATE_FLOOR = 1e-11;

/**
 * Fast-FedPG against entropy-regularised federated softmax PG (regfedpg, after Labbi et al.) and
 * the baselines; and Fast-FedPG's correction combined with the entropy bonus.
 */
export const peers: Experiment = {
  name: 'peers',
  title: 'Fast-FedPG against entropy-regularised federated PG (Labbi et al.) and the baselines',
  claim:
    "regfedpg is FedAvg-PG on the entropy-regularised objective J_tau: a linear exact-gradient rate (Mei et al., 2020) towards a point biased by O(tau/(1-gamma)) and, with heterogeneous rewards and H > 1, by FedAvg's drift. Fast-FedPG has no drift but only an O(1/T) rate on tabular softmax. fast-fedpg+entropy (Fast-FedPG's correction on J_tau, new here) should keep the linear rate without the drift: its regularised gap J_tau* - J_tau(theta_bar) should go to zero geometrically, regfedpg's should stall.",
  params: ['mdp', 'algorithms', 'gradient', 'agents', 'entropy', 'rounds', 'localSteps', 'eta', 'alphaG', 'horizon', 'batch', 'seeds', 'centralized', 'backend'],
  defaults: {
    ...DEFAULT_PARAMS,
    mdp: ['plateau-s6-a3-n4'],
    algorithms: ['fast-fedpg', 'fedavg', 'centralized', 'regfedpg'],
    gradient: ['exact', 'sampled'],
    agents: [4],
    entropy: [0.02, 0.2],
    rounds: 1000,
    localSteps: [10],
    eta: 0.5,
    horizon: [30],
    batch: 10,
    seeds: 8,
    centralized: 'rounds',
    backend: 'js',
  },
  // --quick: under a minute on two cores, the claim's direction (README: the paper's claims, checked).
  quick: { entropy: [0.2], rounds: 300, seeds: 4 },
  fixed: { theta0: 'zeros', 'fast-fedpg': 'runs once without entropy and once per tau (fast-fedpg+entropy)', 'regularised gap': 'J_tau* - J_tau(theta_bar) of the average MDP; J_tau* by soft value iteration' },
  columns: ['source', 'gradient', 'method', 'tau', 'seeds', 'rounds', 'meanGap', 'seGap', 'medianGap', 'gapSlope', 'meanGapTau', 'rateTau', 'trajectoriesPerAgent', 'bytes'],

  plan(p) {
    const N = single(p, 'agents', 'peers');
    const H = single(p, 'localSteps', 'peers');
    const K = single(p, 'horizon', 'peers');
    const tasks: PlannedTask[] = [];
    const notes: string[] = [];
    for (const src of loadSources(p.mdp)) {
      if (src.mdp.perAgentKernels) {
        notes.push(`${src.label} has per-agent kernels (no J*, no J_tau*): skipped.`);
        continue;
      }
      const mdp = agentsOrSkip(src, N, notes);
      if (!mdp) continue;
      const variants: { algorithm: Algorithm; tau: number }[] = [];
      for (const algorithm of p.algorithms) {
        if (algorithm === 'regfedpg') for (const tau of p.entropy) variants.push({ algorithm, tau });
        else if (algorithm === 'fast-fedpg') variants.push({ algorithm, tau: 0 }, ...p.entropy.map((tau) => ({ algorithm, tau })));
        else variants.push({ algorithm, tau: 0 });
      }
      if (p.algorithms.includes('regfedpg') && !p.entropy.length) notes.push('regfedpg needs --entropy: skipped.');
      for (const gradient of p.gradient)
        for (const { algorithm, tau } of variants)
          for (const seed of seedsOf(gradient, p.seeds))
            tasks.push({
              cell: { source: src.label, gradient, method: methodName(algorithm, { entropy: tau }), algorithm, tau, N },
              mdp,
              settings: runSettings(p, { algorithm, gradient, localSteps: H, horizon: K, seed, entropy: tau }),
              pointsPerDecade: 10,
              linearPoints: 100,
              ...(tau > 0 ? { regularizedTau: tau } : {}),
            });
    }
    return { tasks, notes };
  },

  summarise(log) {
    const rows: Row[] = [];
    const fits: Fit[] = [];
    const findings: string[] = [];
    for (const [, group] of groupRuns(log.runs, (r) => `${r.cell.source}|${r.cell.gradient}|${r.cell.method}`)) {
      const c = group[0]!.cell;
      const T = group[0]!.final.round;
      const s = spread(group.map((r) => r.final.gap).filter((g): g is number => g !== null));
      const mc = meanCurve(group, 'gap');
      const slope = curveFit({ round: mc.round, J: [], gap: mc.value, gradNormSq: [], avgGradNormSq: [] }, 'gap', Math.max(1, Math.floor(T / 10)), T).slope;
      let meanGapTau: number | null = null, rateTau: number | null = null;
      if ((c.tau as number) > 0) {
        const gt = meanCurve(group, 'gapTau');
        meanGapTau = gt.value[gt.value.length - 1] ?? null;
        const fit = rateFit(gt.round, gt.value, T);
        rateTau = Number.isFinite(fit.slope) ? Math.exp(fit.slope) : null;
        fits.push({
          label: `${c.method}, ${c.gradient} gradients: mean regularised gap ~ exp(slope * round), rounds ${fit.from}..${fit.to} (the second half of the rounds above round-off)`,
          group: { source: c.source!, gradient: c.gradient!, method: c.method! },
          slope: fit.slope,
          intercept: fit.intercept,
          slopeSe: fit.slopeSe,
          ci: null,
          r2: fit.r2,
          n: fit.n,
          from: fit.from,
          to: fit.to,
        });
      }
      rows.push({
        source: c.source!,
        gradient: c.gradient!,
        method: c.method!,
        tau: c.tau!,
        seeds: s.n,
        rounds: T,
        meanGap: num(s.mean),
        seGap: num(s.se),
        medianGap: num(s.median),
        gapSlope: num(slope),
        meanGapTau: num(meanGapTau),
        rateTau: num(rateTau),
        trajectoriesPerAgent: num(group[0]!.cost.trajectories / (c.N as number)),
        bytes: group[0]!.cost.bytes,
      });
    }
    for (const gradient of new Set(rows.map((r) => r.gradient))) {
      const rs = rows.filter((r) => r.gradient === gradient);
      findings.push(
        `${gradient} gradients, final gap J* - J after ${rs[0]!.rounds} rounds: ${rs.map((r) => `${r.method} ${fmt(r.meanGap as number)}${gradient === 'sampled' ? ` (s.e. ${fmt(r.seGap as number)})` : ''}`).join('; ')}.`,
      );
      const reg = rs.filter((r) => r.meanGapTau !== null);
      if (reg.length)
        findings.push(
          `${gradient} gradients, regularised gap J_tau* - J_tau at the end: ${reg.map((r) => `${r.method} ${fmt(r.meanGapTau as number)}${r.rateTau !== null ? ` (fitted rate ${fmt(r.rateTau as number, 4)} per round)` : ''}`).join('; ')}.`,
        );
    }
    return { rows, fits, findings, tables: [] };
  },

  chart(summary, log) {
    const data: Record<string, unknown>[] = [];
    const add = (group: RunResult[], field: 'gap' | 'gapTau', metric: string): void => {
      const c = group[0]!.cell;
      const mc = meanCurve(group, field);
      mc.round.forEach((round, i) => {
        const v = mc.value[i];
        if (v !== null && v !== undefined && v > 0)
          data.push({ gradient: `${c.gradient} gradients`, metric, method: c.method, tau: (c.tau as number) > 0 ? `tau = ${c.tau}` : 'no entropy', round, value: v });
      });
    };
    for (const [, group] of groupRuns(log.runs, (r) => `${r.cell.source}|${r.cell.gradient}|${r.cell.method}`)) {
      add(group, 'gap', 'gap J* - J (unregularised)');
      if ((group[0]!.cell.tau as number) > 0) add(group, 'gapTau', 'regularised gap J_tau* - J_tau');
    }
    const colours = methodColours(summary.rows.map((r) => r.method as string));
    const p = summary.params;
    return {
      $schema: SCHEMA,
      title: {
        text: 'Fast-FedPG, entropy-regularised federated PG (regfedpg) and the baselines',
        subtitle: [
          `${p.mdp.join(', ')}, N = ${p.agents[0]}; T = ${p.rounds}, H = ${p.localSteps[0]}, eta = ${p.eta}, tau = ${p.entropy.join(', ')}; sampled: K = ${p.horizon[0]}, M = ${p.batch}, mean over ${p.seeds} seeds; centralized: ${p.centralized === 'matched' ? 'H*T rounds' : 'T rounds (one step each)'}; backend ${summary.backend}.`,
          'Log y, linear rounds: a geometric (linear) rate is a straight line.',
        ],
      },
      data: { values: data },
      facet: { row: { field: 'metric', type: 'nominal', title: null, sort: 'ascending' }, column: { field: 'gradient', type: 'nominal', title: null } },
      spec: {
        width: 330,
        height: 220,
        mark: { type: 'line', strokeWidth: 1.6 },
        encoding: {
          x: { field: 'round', type: 'quantitative', title: 'round' },
          y: { field: 'value', type: 'quantitative', scale: { type: 'log' }, title: null, axis: { format: '.0e' } },
          color: { field: 'method', type: 'nominal', scale: colours, title: 'method' },
          strokeDash: { field: 'tau', type: 'nominal', title: 'entropy', sort: inOrder(data.map((d) => d.tau)) },
        },
      },
      resolve: { scale: { y: 'independent', x: 'independent' } },
      config: CHART_CONFIG,
    };
  },
};

/**
 * The geometric rate of a mean regularised-gap curve: a semi-log fit over the second half of the
 * rounds where the gap is above round-off (RATE_FLOOR), so a run that reaches round-off early is
 * fitted where it was still converging.
 */
function rateFit(round: number[], value: (number | null)[], T: number): ReturnType<typeof semiLogFit> & { from: number; to: number } {
  let end = 0;
  round.forEach((r, i) => {
    const v = value[i];
    if (r <= T && v !== null && v !== undefined && v > RATE_FLOOR) end = r;
  });
  const x: number[] = [], y: number[] = [];
  round.forEach((r, i) => {
    const v = value[i];
    if (r >= RATE_FROM * end && r <= end && v !== null && v !== undefined && v > RATE_FLOOR) {
      x.push(r);
      y.push(v);
    }
  });
  return { ...semiLogFit(x, y), from: x.length ? x[0]! : NaN, to: x.length ? x[x.length - 1]! : NaN };
}
