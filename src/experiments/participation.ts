import { jsBackend } from '../backends/js/index.js';
import { averageReward, environmentSpec, type Mdp } from '../mdp/model.js';
import { CHART_CONFIG, DEFAULT_PARAMS, fmt, groupRuns, inOrder, loadSources, methodColours, num, runSettings, SCHEMA } from './common.js';
import { single } from './speedup.js';
import { sweepRows, SWEEP_COLUMNS } from './sweep.js';
import type { RunResult } from './task.js';
import type { Experiment, PlannedTask, Row } from './types.js';

/** The participation fractions swept. */
export const PARTICIPATION = [0.25, 0.5, 0.75, 1];
/** Starts on the way to the optimal policy: theta0 = c on a*(s), 0 elsewhere, for these c. */
export const BASIN_LOGITS = [1, 2, 3, 4, 6];
/** A final gap below this counts as "reached the optimum" in the findings. */
const NEAR = 1e-2;

/**
 * The optimal policy's greedy action per state of the average MDP: a*(s) = argmax_a r_bar(s,a) +
 * gamma sum_s' P(s'|s,a) V*(s') with V* from the js backend's value iteration.
 */
export function optimalGreedy(mdp: Mdp): number[] {
  const S = mdp.states, A = mdp.actions;
  const env = jsBackend.createEnvironment(environmentSpec(mdp));
  const V = new Float64Array(S);
  const r = averageReward(mdp);
  try {
    env.optimal(r, V);
  } finally {
    env.dispose();
  }
  const k = mdp.kernels[0]!;
  return Array.from({ length: S }, (_, s) => {
    let best = 0, bestQ = -Infinity;
    for (let a = 0; a < A; a++) {
      const row = s * A + a;
      let ev = 0;
      if (k.kind === 'dense') for (let j = 0; j < S; j++) ev += k.p[row * S + j]! * V[j]!;
      else for (let q = k.rowStart[row]!; q < k.rowStart[row + 1]!; q++) ev += k.prob[q]! * V[k.next[q]!]!;
      const Q = r[row]! + mdp.gamma * ev;
      if (Q > bestQ + 1e-12) [best, bestQ] = [a, Q];
    }
    return best;
  });
}

/** Every subset of 0..N-1 with 1 to N-1 members, by size then lexicographically. */
function subsets(N: number): number[][] {
  const out: number[][] = [];
  for (let m = 1; m < 1 << N; m++) if (m !== (1 << N) - 1) out.push([...Array(N).keys()].filter((i) => m & (1 << i)));
  return out.sort((a, b) => a.length - b.length || a.join().localeCompare(b.join()));
}

/**
 * Where a run ended: at the optimum (its greedy policy is the optimal one and its gap is below
 * NEAR), at the greedy policy full-participation FedAvg ends at from theta = 0, or elsewhere.
 */
function basinOf(run: RunResult, optimal: string, fedavgCorner: string | null): string {
  const g = run.final.greedy?.join('') ?? '';
  if (g === optimal && (run.final.gap ?? Infinity) < NEAR) return 'optimal policy';
  if (g === fedavgCorner) return "FedAvg (P = 1)'s policy";
  return 'another policy';
}

export const participation: Experiment = {
  name: 'participation',
  title: "Partial participation: does drawing a subset of agents each round shrink FedAvg's heterogeneity bias?",
  claim:
    "An independent check saw FedAvg on the plateau fixture (exact gradients, H = 10, eta = 0.5, 4 agents) stall at a gap of 0.15 with P = 1 but reach 7.7e-4 with P = 0.5 for one server seed (2.4e-2 for another), and sit near 0.10-0.11 with P = 0.75. Over many server seeds: does partial participation shrink the bias, and why? With exact gradients only the server's draw of participants varies a run, so the seeds are server seeds.",
  params: ['mdp', 'algorithms', 'rounds', 'localSteps', 'eta', 'alphaG', 'seeds', 'backend'],
  defaults: {
    ...DEFAULT_PARAMS,
    mdp: ['plateau-s6-a3-n4'],
    algorithms: ['fedavg', 'fast-fedpg'],
    gradient: ['exact'],
    rounds: 1000,
    localSteps: [10],
    eta: 0.5,
    seeds: 200,
  },
  // --quick: under a minute on two cores, the claim's direction (README: the field's experiments).
  quick: { seeds: 10 },
  fixed: {
    gradient: 'exact (only the server seed, which draws the participants, varies a run)',
    P: PARTICIPATION.join(', ') + ' (m = ceil(P N) agents a round)',
    'subset fixed points': 'FedAvg with P = 1 on every proper subset of the agents (T rounds), its final theta scored on the full average MDP',
    'starts towards the optimum': `FedAvg with P = 1 from theta0 = c on the optimal policy's greedy action a*(s), 0 elsewhere, c = ${BASIN_LOGITS.join(', ')}`,
    'where runs end': `the optimal policy (greedy policy optimal and gap < ${NEAR}), the greedy policy full-participation FedAvg ends at from theta = 0, or another`,
  },
  columns: ['method', 'P', ...SWEEP_COLUMNS, 'fracBelow1e-2', 'fracOptimalPolicy', 'fracFedAvgPolicy', 'meanGapSecondHalf'],

  plan(p) {
    const H = single(p, 'localSteps', 'participation');
    const tasks: PlannedTask[] = [];
    const notes: string[] = [];
    const seeds = Array.from({ length: p.seeds }, (_, k) => k);
    for (const src of loadSources(p.mdp)) {
      if (src.mdp.perAgentKernels) {
        notes.push(`${src.label} has per-agent kernels (no J*): skipped.`);
        continue;
      }
      const mdp = src.mdp, N = mdp.rewards.length;
      const base = (algorithm: string) => runSettings(p, { algorithm, gradient: 'exact', localSteps: H, seed: 0 });
      for (const algorithm of p.algorithms)
        for (const P of PARTICIPATION)
          for (const serverSeed of P === 1 ? [0] : seeds)
            tasks.push({ cell: { source: src.label, kind: 'sweep', method: algorithm, P, serverSeed }, mdp, settings: { ...base(algorithm), participation: P, serverSeed }, pointsPerDecade: 5, linearPoints: 50, greedy: true });
      if (!p.algorithms.includes('fedavg')) continue;
      const rbar = averageReward(mdp);
      for (const sub of subsets(N))
        tasks.push({ cell: { source: src.label, kind: 'subset', method: 'fedavg', subset: sub.join('') }, mdp: { ...mdp, rewards: sub.map((i) => mdp.rewards[i]!) }, settings: base('fedavg'), pointsPerDecade: 3, greedy: true, scoreOn: rbar });
      const astar = optimalGreedy(mdp);
      for (const c of BASIN_LOGITS) {
        const theta0 = new Float64Array(mdp.states * mdp.actions);
        astar.forEach((a, s) => (theta0[s * mdp.actions + a] = c));
        tasks.push({ cell: { source: src.label, kind: 'basin', method: 'fedavg', P: 1, logit: c }, mdp, settings: base('fedavg'), pointsPerDecade: 5, greedy: true, theta0 });
      }
      tasks.push({ cell: { source: src.label, kind: 'optimum', method: 'optimal policy', astar: astar.join('') }, mdp: { ...mdp, rewards: [rbar] }, settings: { ...runSettings(p, { algorithm: 'centralized', gradient: 'exact', localSteps: 1, seed: 0 }), rounds: 1 }, pointsPerDecade: 1 });
    }
    return { tasks, notes };
  },

  summarise(log) {
    const sweep = log.runs.filter((r) => r.cell.kind === 'sweep');
    const optimal = String(log.runs.find((r) => r.cell.kind === 'optimum')?.cell.astar ?? '');
    const full = sweep.find((r) => r.cell.method === 'fedavg' && r.cell.P === 1);
    const corner = full?.final.greedy?.join('') ?? null;
    const rows = sweepRows(sweep, (r) => ({ method: r.cell.method! }), (r) => r.cell.P as number, (r) => r.final.gap, 'P');
    for (const row of rows) {
      const group = sweep.filter((r) => r.cell.method === row.method && r.cell.P === row.P);
      const frac = (f: (r: RunResult) => boolean): number => group.filter(f).length / group.length;
      row['fracBelow1e-2'] = frac((r) => (r.final.gap ?? Infinity) < NEAR);
      row.fracOptimalPolicy = frac((r) => basinOf(r, optimal, corner) === 'optimal policy');
      row.fracFedAvgPolicy = frac((r) => basinOf(r, optimal, corner) === "FedAvg (P = 1)'s policy");
      const T = group[0]!.final.round;
      const tail = group.map((r) => {
        const g = r.curve.round.map((t, i) => (t >= T / 2 ? r.curve.gap[i] : null)).filter((x): x is number => x !== null && x !== undefined);
        return g.reduce((a, b) => a + b, 0) / g.length;
      });
      row.meanGapSecondHalf = num(tail.reduce((a, b) => a + b, 0) / tail.length);
    }
    const findings: string[] = [];
    for (const method of new Set(rows.map((r) => r.method))) {
      const rs = rows.filter((r) => r.method === method);
      findings.push(
        `${method}: final gap after ${sweep[0]?.final.round} rounds, mean ± s.e. (median) over ${rs.find((r) => r.P !== 1)?.seeds ?? 1} server seeds: ${rs.map((r) => `P = ${r.P}: ${fmt(r.mean as number)}${r.seeds !== 1 ? ` ± ${fmt(r.se as number, 2)} (${fmt(r.median as number)})` : ''}`).join('; ')}; fraction of seeds below ${NEAR}: ${rs.map((r) => `${fmt(r['fracBelow1e-2'] as number)}`).join(' / ')}; ending at the optimal greedy policy: ${rs.map((r) => fmt(r.fracOptimalPolicy as number)).join(' / ')}; mean gap over the second half of the rounds: ${rs.map((r) => fmt(r.meanGapSecondHalf as number)).join(' / ')}.`,
      );
    }
    const subsetRows: Row[] = log.runs
      .filter((r) => r.cell.kind === 'subset')
      .map((r) => ({ subset: r.cell.subset!, gapOnFullMdp: num(r.final.scoredGap), gapOnOwnMdp: num(r.final.gap), greedy: r.final.greedy?.join('') ?? null, optimalGreedy: r.final.greedy?.join('') === optimal ? 'yes' : 'no' }));
    if (subsetRows.length) {
      const best = [...subsetRows].sort((a, b) => (a.gapOnFullMdp as number) - (b.gapOnFullMdp as number))[0]!;
      findings.push(
        `No subset's FedAvg fixed point is near the optimum of the full problem: scored on the full average MDP their gaps run from ${fmt(best.gapOnFullMdp as number)} (agents ${best.subset}) to ${fmt(Math.max(...subsetRows.map((r) => r.gapOnFullMdp as number)))}; pairs ${subsetRows.filter((r) => String(r.subset).length === 2).map((r) => `${r.subset} ${fmt(r.gapOnFullMdp as number)}`).join(', ')}.`,
      );
    }
    const starts = log.runs.filter((r) => r.cell.kind === 'basin');
    if (starts.length && full)
      findings.push(
        `Full-participation FedAvg (P = 1) started at theta0 = c on the optimal greedy action ${optimal} ends, after ${starts[0]!.final.round} rounds, at a gap of ${starts.map((r) => `${fmt(r.final.gap)} (c = ${r.cell.logit})`).join(', ')}, against ${fmt(full.final.gap)} from theta = 0 (greedy policy ${corner}): its map has several stable end points, and the optimum is one of them once the start is deep enough.`,
      );
    const startRows: Row[] = starts.map((r) => ({ logit: r.cell.logit!, gap0: num(r.curve.gap[0]), finalGap: num(r.final.gap), greedy: r.final.greedy?.join('') ?? null }));
    // Where FedAvg's runs end: their final greedy policies per P, with counts and mean gaps.
    const endRows: Row[] = [];
    for (const [, group] of groupRuns(
      sweep.filter((r) => r.cell.method === 'fedavg'),
      (r) => `${r.cell.P}|${r.final.greedy?.join('')}`,
    )) {
      const g = group.map((r) => r.final.gap ?? NaN);
      endRows.push({ P: group[0]!.cell.P!, greedy: group[0]!.final.greedy?.join('') ?? null, runs: group.length, meanGap: num(g.reduce((x, y) => x + y, 0) / g.length), optimal: group[0]!.final.greedy?.join('') === optimal ? 'yes' : 'no' });
    }
    endRows.sort((x, y) => (x.P as number) - (y.P as number) || (y.runs as number) - (x.runs as number));
    const tables = [
      { title: "FedAvg's final greedy policies (one digit per state) per P: runs and mean final gap", columns: ['P', 'greedy', 'runs', 'meanGap', 'optimal'], rows: endRows },
      { title: 'FedAvg with P = 1 on each proper subset of agents: its final policy scored on the full average MDP', columns: ['subset', 'gapOnFullMdp', 'gapOnOwnMdp', 'greedy', 'optimalGreedy'], rows: subsetRows },
      { title: `FedAvg with P = 1 from theta0 = c on the optimal greedy action (${optimal})`, columns: ['logit', 'gap0', 'finalGap', 'greedy'], rows: startRows },
    ];
    return { rows, fits: [], findings, tables };
  },

  chart(summary, log) {
    const p = summary.params;
    const sweep = log.runs.filter((r) => r.cell.kind === 'sweep');
    const optimal = String(log.runs.find((r) => r.cell.kind === 'optimum')?.cell.astar ?? '');
    const corner = sweep.find((r) => r.cell.method === 'fedavg' && r.cell.P === 1)?.final.greedy?.join('') ?? null;
    const colours = methodColours(summary.rows.map((r) => r.method as string));
    const dodge = (m: string): number => (inOrder(summary.rows.map((r) => r.method)).indexOf(m) - 0.5) * 0.025;
    const points: Record<string, unknown>[] = [];
    for (const r of sweep) if ((r.final.gap ?? 0) > 0) points.push({ kind: 'seed', method: r.cell.method, x: (r.cell.P as number) + dodge(r.cell.method as string), y: r.final.gap });
    for (const r of summary.rows) {
      const m = r.mean as number, se = (r.se as number | null) ?? 0;
      points.push({ kind: 'mean', method: r.method, x: (r.P as number) + dodge(r.method as string), y: m, lo: Math.max(m - se, m / 20), hi: m + se, median: r.median });
    }
    const x = { field: 'x', type: 'quantitative', title: 'participation P (agents drawn per round / N)', scale: { domain: [0.2, 1.05] } };
    const y = { field: 'y', type: 'quantitative', scale: { type: 'log' }, title: `final gap J* - J after ${p.rounds} rounds` };
    const color = { field: 'method', type: 'nominal', scale: colours, title: 'method' };
    const gapPanel = {
      width: 280,
      height: 260,
      data: { values: points },
      layer: [
        { transform: [{ filter: "datum.kind === 'seed'" }], mark: { type: 'point', filled: true, size: 10, opacity: 0.25 }, encoding: { x, y, color } },
        { transform: [{ filter: "datum.kind === 'mean'" }], mark: { type: 'rule', strokeWidth: 1.5 }, encoding: { x, y: { ...y, field: 'lo' }, y2: { field: 'hi' }, color } },
        { transform: [{ filter: "datum.kind === 'mean'" }], mark: { type: 'line', point: { filled: true, size: 40 } }, encoding: { x, y, color } },
        { transform: [{ filter: "datum.kind === 'mean'" }], mark: { type: 'line', strokeDash: [2, 2], point: { shape: 'triangle', size: 25 } }, encoding: { x, y: { ...y, field: 'median' }, color } },
      ],
    };
    const basins: Record<string, unknown>[] = [];
    for (const [, group] of groupRuns(sweep.filter((r) => r.cell.method === 'fedavg'), (r) => String(r.cell.P))) {
      const counts = new Map<string, number>();
      for (const r of group) counts.set(basinOf(r, optimal, corner), (counts.get(basinOf(r, optimal, corner)) ?? 0) + 1);
      for (const [basin, n] of counts) basins.push({ P: String(group[0]!.cell.P), basin, fraction: n / group.length });
    }
    const basinPanel = {
      width: 200,
      height: 260,
      data: { values: basins },
      mark: { type: 'bar' },
      encoding: {
        x: { field: 'P', type: 'ordinal', title: 'P (FedAvg)' },
        y: { field: 'fraction', type: 'quantitative', title: 'fraction of server seeds', scale: { domain: [0, 1] } },
        color: { field: 'basin', type: 'nominal', title: 'final greedy policy', scale: { domain: ['optimal policy', "FedAvg (P = 1)'s policy", 'another policy'], range: ['#2ca02c', '#ff7f0e', '#999'] } },
      },
    };
    const subsetData = (summary.tables.find((t) => t.title.startsWith('FedAvg with P = 1 on each'))?.rows ?? []).map((r) => ({ subset: `{${String(r.subset).split('').join(',')}}`, gap: r.gapOnFullMdp }));
    const subsetPanel = {
      width: 240,
      height: 260,
      data: { values: subsetData },
      mark: { type: 'point', filled: true, size: 60, color: '#ff7f0e' },
      encoding: {
        x: { field: 'subset', type: 'ordinal', sort: null, title: 'FedAvg (P = 1) on agents ...' },
        y: { field: 'gap', type: 'quantitative', scale: { type: 'log' }, title: 'its final gap on the full MDP' },
      },
    };
    return {
      $schema: SCHEMA,
      title: {
        text: 'Partial participation on the plateau fixture (exact gradients): final gap against P, where the runs end, and the subsets\' fixed points',
        subtitle: [
          `${p.mdp.join(', ')}; T = ${p.rounds}, H = ${p.localSteps[0]}, eta = ${p.eta}; ${p.seeds} server seeds per P < 1. Left: seeds (dots), mean ± s.e. (solid), median (dotted).`,
          'Middle: the final greedy policy of FedAvg\'s runs. Right: FedAvg with P = 1 on each proper subset, scored on the full average MDP.',
        ],
      },
      hconcat: [gapPanel, basinPanel, subsetPanel],
      resolve: { scale: { color: 'independent' } },
      config: CHART_CONFIG,
    };
  },
};
