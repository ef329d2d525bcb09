import type { GradientMode } from '../backends/types.js';
import type { TrainSettings } from '../federation/settings.js';
import { DEFAULT_PARAMS, fmt, groupRuns, loadSources, runSettings, seedsOf } from './common.js';
import { agentsOrSkip } from './mdps.js';
import { leaderboard, metricOf, raceChart, standingRows, totalCost, valueWithin, type CostAxis, type Standing } from './races.js';
import { NPG_ETA, SVRPG_SAMPLED } from './rivals.js';
import { single } from './speedup.js';
import type { RunResult } from './task.js';
import type { Experiment, PlannedTask, Row } from './types.js';

/** Methods without a sampled form here run with exact Q and carry this label (not ranked against sampled ones). */
export const EXACT_LABEL = ' (exact Q)';

/** The races and the budget each is run at. */
const BUDGETS: { axis: CostAxis; name: string }[] = [
  { axis: 'trajectories', name: 'equal samples' },
  { axis: 'bytes', name: 'equal bytes' },
];

/** A method's gradient mode in the comparison: sampled, unless it has no sampled form (here). */
function gradientOf(algorithm: string): GradientMode {
  if (algorithm === 'fednpg') return 'exact';
  if (algorithm === 'fedsvrpg-m' && !SVRPG_SAMPLED) return 'exact';
  return 'sampled';
}

/** Each method's own settings in the comparison. */
function ownSettings(algorithm: string, tau: number): Partial<TrainSettings> {
  if (algorithm === 'regfedpg') return { entropy: tau };
  if (algorithm === 'fednpg') return { eta: NPG_ETA, topology: 'complete' };
  return {};
}

/** Per source and budget: every run's value when its budget ran out, and the leaderboard. */
export function compareStandings(runs: RunResult[]): { budget: string; axis: CostAxis; source: string; limit: number; standings: Standing[] }[] {
  const out: { budget: string; axis: CostAxis; source: string; limit: number; standings: Standing[] }[] = [];
  for (const { axis, name } of BUDGETS) {
    for (const source of new Set(runs.map((r) => r.cell.source as string))) {
      // Exact-Q methods have no samples: they race on bytes only.
      const here = runs.filter((r) => r.cell.source === source && (axis !== 'trajectories' || r.cell.gradient === 'sampled'));
      if (!here.length) continue;
      const limit = Math.min(...here.map((r) => totalCost(r, axis)));
      const values = [...groupRuns(here, (r) => r.cell.method as string)].map(([method, group]) => ({
        source,
        method,
        metric: metricOf(group[0]!),
        values: group.map((r) => valueWithin(r, axis, limit)).filter((v): v is number => v !== null),
      }));
      out.push({ budget: name, axis, source, limit, standings: leaderboard(values, (m) => !m.endsWith(EXACT_LABEL)) });
    }
  }
  return out;
}

export const compare: Experiment = {
  name: 'compare',
  title: 'Every method side by side on a suite of MDPs (sampled gradients, equal samples and equal bytes)',
  claim:
    "Which method wins where? Every algorithm on four MDPs (the plateau fixture, the multi-task gridworld, a random MDP at heterogeneity 1, labbi-challenging with per-agent kernels), sampled gradients over several seeds, compared at an equal budget of samples and, separately, of bytes: the value each run had when it had used as much as the thriftiest method used in all its rounds. FedNPG has no sampled form: it runs with exact Q, against rounds and bytes only, and is not ranked.",
  params: ['mdp', 'algorithms', 'entropy', 'rounds', 'localSteps', 'eta', 'alphaG', 'horizon', 'batch', 'seeds', 'centralized', 'backend'],
  defaults: {
    ...DEFAULT_PARAMS,
    mdp: ['plateau-s6-a3-n4', 'gridworld:width=5,height=5,agents=4', 'random:states=6,actions=3,agents=4,gamma=0.9,heterogeneity=1,seed=0', 'labbi-challenging'],
    algorithms: ['fast-fedpg', 'fedavg', 'fedprox', 'fedavgm', 'centralized', 'regfedpg', 'fedsvrpg-m', 'fednpg'],
    entropy: [0.01],
    rounds: 600,
    localSteps: [5],
    eta: 0.1,
    horizon: [30],
    batch: 10,
    seeds: 10,
    centralized: 'matched',
  },
  // --quick: under a minute on two cores, the claim's direction (README: the field's experiments).
  quick: { rounds: 100, seeds: 3 },
  fixed: {
    gradient: `sampled; fednpg${SVRPG_SAMPLED ? '' : ' and fedsvrpg-m'} with exact Q (no sampled form here), labelled "${EXACT_LABEL.trim()}" and not ranked`,
    'own settings': `fedprox MU 0.01, fedavgm BETA 0.9, fedsvrpg-m BETA 0.2 and C 20, regfedpg tau = --entropy, fednpg complete graph with eta ${NPG_ETA}`,
    metric: 'final gap J* - J (lower is better); labbi-challenging has per-agent kernels and no J*: J, the mean of the agents\' J_i (higher is better)',
    budgets: 'equal samples: the fewest trajectories any sampled method drew in its run; equal bytes: the fewest bytes any method sent; each run is read at its last checkpoint within the budget (100 evenly spaced checkpoints)',
    theta0: 'zeros',
  },
  columns: ['budget', 'source', 'method', 'seeds', 'mean', 'se', 'rank', 'marginSe'],

  plan(p) {
    const H = single(p, 'localSteps', 'compare');
    const K = single(p, 'horizon', 'compare');
    const tau = p.entropy[0] ?? 0;
    const tasks: PlannedTask[] = [];
    const notes: string[] = [];
    if (p.algorithms.includes('regfedpg') && !(tau > 0)) notes.push('regfedpg needs --entropy: skipped.');
    for (const src of loadSources(p.mdp)) {
      const mdp = agentsOrSkip(src, src.mdp.rewards.length, notes)!;
      for (const algorithm of p.algorithms) {
        if (algorithm === 'regfedpg' && !(tau > 0)) continue;
        const gradient = gradientOf(algorithm);
        const method = algorithm + (gradient === 'exact' ? EXACT_LABEL : '');
        for (const seed of seedsOf(gradient, p.seeds))
          tasks.push({
            cell: { source: src.label, method, algorithm, gradient, N: mdp.rewards.length },
            mdp,
            settings: { ...runSettings(p, { algorithm, gradient, localSteps: H, horizon: K, seed }), ...ownSettings(algorithm, tau) },
            pointsPerDecade: 10,
            linearPoints: 100,
            record: ['bytes', 'trajectories'],
          });
      }
    }
    return { tasks, notes };
  },

  summarise(log) {
    const rows: Row[] = [];
    const findings: string[] = [];
    const tables: { title: string; columns: string[]; rows: Row[] }[] = [];
    for (const s of compareStandings(log.runs)) {
      rows.push(...standingRows(s.standings, s.budget));
      const metric = metricOf(log.runs.find((r) => r.cell.source === s.source)!);
      const ranked = s.standings.filter((x) => x.rank !== null).sort((a, b) => a.rank! - b.rank!);
      const w = ranked[0];
      if (!w) continue;
      const unranked = s.standings.filter((x) => x.rank === null);
      findings.push(
        `${s.source}, ${s.budget} (${fmt(s.limit)} ${s.axis === 'bytes' ? 'bytes' : 'trajectories'}), ${metric === 'gap' ? 'gap (lower is better)' : 'J (higher is better; no J*)'}: winner ${w.method} ${fmt(w.mean)} ± ${fmt(w.se, 2)}${ranked[1] ? `, ahead of ${ranked[1].method} (${fmt(ranked[1].mean)} ± ${fmt(ranked[1].se, 2)}) by ${fmt(w.marginSe)} standard errors` : ''}; then ${ranked
          .slice(2)
          .map((x) => `${x.method} ${fmt(x.mean)}`)
          .join(', ')}${unranked.length ? `; not ranked: ${unranked.map((x) => `${x.method} ${fmt(x.mean)}`).join(', ')}` : ''}.`,
      );
    }
    const ranks = new Map<string, number[]>();
    for (const r of rows) if (r.rank !== null) ranks.set(r.method as string, [...(ranks.get(r.method as string) ?? []), r.rank as number]);
    tables.push({
      title: 'Mean rank over MDPs and budgets (ranked methods)',
      columns: ['method', 'meanRank', 'races'],
      rows: [...ranks].map(([method, rs]) => ({ method, meanRank: rs.reduce((a, b) => a + b, 0) / rs.length, races: rs.length })).sort((a, b) => a.meanRank - b.meanRank),
    });
    return { rows, fits: [], findings, tables };
  },

  chart(summary, log) {
    const p = summary.params;
    const budgets = new Map<string, Partial<Record<CostAxis, number>>>();
    for (const s of compareStandings(log.runs)) budgets.set(s.source, { ...budgets.get(s.source), [s.axis]: s.limit });
    return raceChart(
      log.runs,
      ['round', 'trajectories', 'bytes'],
      (r) => r.cell.method as string,
      'Every method on four MDPs: mean gap (or J) against rounds, samples and bytes',
      [
        `Sampled gradients: T = ${p.rounds} (centralized: ${p.centralized === 'matched' ? 'H*T one-step rounds' : 'T rounds'}), H = ${p.localSteps[0]}, eta = ${p.eta}, K = ${p.horizon[0]}, M = ${p.batch}, mean over ${p.seeds} seeds; regfedpg tau = ${p.entropy[0]}; backend ${summary.backend}.`,
        `Grey dashed: the equal budget (the least any method used). fednpg${SVRPG_SAMPLED ? '' : ' and fedsvrpg-m'}: exact Q (no samples), rounds and bytes only.`,
      ],
      { budgets },
    );
  },
};
