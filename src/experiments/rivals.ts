import type { GradientMode } from '../backends/types.js';
import type { TrainSettings } from '../federation/settings.js';
import { DEFAULT_PARAMS, fmt, groupRuns, loadSources, num, runSettings, seedsOf, spread } from './common.js';
import { agentsOrSkip } from './mdps.js';
import { metricOf, raceChart, totalCost, valueWithin, type CostAxis } from './races.js';
import { single } from './speedup.js';
import type { RunResult } from './task.js';
import type { Experiment, PlannedTask, Row } from './types.js';

/**
 * FedSVRPG-M's sampled form runs on the backends' two-parameter GPOMDP kernel (issue 12). Before
 * that kernel landed the backends ignored the `svrpg` request (plain local steps, BETA without
 * effect), and the experiments ran FedSVRPG-M exact only; false brings that back.
 */
export const SVRPG_SAMPLED = true;

/** FedNPG's own step size: eta / (1 - gamma) = 1 at gamma = 0.9 (one soft policy-iteration-like step per round). */
export const NPG_ETA = 0.1;

/** The graphs FedNPG runs on. */
const TOPOLOGIES = ['complete', 'ring'] as const;
/** FedSVRPG-M's momentum values. */
const BETAS = [0.2, 0.6] as const;

/** One rival configuration: its display name and settings beyond the shared ones. */
export interface Variant {
  method: string;
  algorithm: string;
  gradients: GradientMode[];
  settings: Partial<TrainSettings>;
}

/** The issue's rivals: Fast-FedPG, FedAvg, FedNPG (complete, ring; without and with entropy), FedSVRPG-M (BETA 0.2, 0.6). */
export function rivalVariants(entropy: number[], gradients: GradientMode[]): Variant[] {
  const both = gradients;
  const exactOnly = gradients.includes('exact') ? (['exact'] as GradientMode[]) : [];
  const v: Variant[] = [
    { method: 'fast-fedpg', algorithm: 'fast-fedpg', gradients: both, settings: {} },
    { method: 'fedavg', algorithm: 'fedavg', gradients: both, settings: {} },
  ];
  for (const topology of TOPOLOGIES)
    for (const tau of [0, ...entropy]) v.push({ method: `fednpg ${topology}${tau > 0 ? ` tau=${tau}` : ''}`, algorithm: 'fednpg', gradients: exactOnly, settings: { topology, entropy: tau, eta: NPG_ETA } });
  for (const beta of BETAS) v.push({ method: `fedsvrpg-m beta=${beta}`, algorithm: 'fedsvrpg-m', gradients: SVRPG_SAMPLED ? both : exactOnly, settings: { momentumBeta: beta } });
  return v;
}

/** The rivals' rows: per source, gradient and method, the final value and the value at equal bytes. */
function rivalRows(runs: RunResult[]): { rows: Row[]; findings: string[] } {
  const rows: Row[] = [];
  const findings: string[] = [];
  for (const source of new Set(runs.map((r) => r.cell.source as string))) {
    const here = runs.filter((r) => r.cell.source === source);
    const metric = metricOf(here[0]!);
    // Equal bytes: the fewest bytes any method sent in its T rounds.
    const byteBudget = Math.min(...here.map((r) => totalCost(r, 'bytes')));
    for (const [, group] of groupRuns(here, (r) => `${r.cell.gradient}|${r.cell.method}`)) {
      const c = group[0]!.cell;
      const final = spread(group.map((r) => (metric === 'gap' ? r.final.gap : r.final.J)).filter((g): g is number => g !== null));
      const atBytes = spread(group.map((r) => valueWithin(r, 'bytes', byteBudget)).filter((g): g is number => g !== null));
      rows.push({
        source,
        gradient: c.gradient!,
        method: c.method!,
        metric,
        seeds: final.n,
        rounds: group[0]!.final.round,
        meanFinal: num(final.mean),
        seFinal: num(final.se),
        bytesPerRound: num(totalCost(group[0]!, 'bytes') / group[0]!.final.round),
        byteBudget,
        meanAtByteBudget: num(atBytes.mean),
        roundsTo1e2: num(roundsTo(group, 1e-2)),
        finalConsensus: num(group[0]!.curve.extra?.consensus?.at(-1) ?? null),
      });
    }
    for (const gradient of new Set(rows.filter((r) => r.source === source).map((r) => r.gradient))) {
      const rs = rows.filter((r) => r.source === source && r.gradient === gradient);
      const best = [...rs].sort((a, b) => (metric === 'gap' ? 1 : -1) * ((a.meanFinal as number) - (b.meanFinal as number)));
      const bestBytes = [...rs].sort((a, b) => (metric === 'gap' ? 1 : -1) * ((a.meanAtByteBudget as number) - (b.meanAtByteBudget as number)));
      findings.push(
        `${source}, ${gradient} gradients, ${metric === 'gap' ? 'gap' : 'J'} after ${rs[0]!.rounds} rounds: ${best.map((r) => `${r.method} ${fmt(r.meanFinal as number)}${gradient === 'sampled' ? ` ± ${fmt(r.seFinal as number, 2)}` : ''}`).join('; ')}.`,
        `${source}, ${gradient} gradients, at equal bytes (${fmt(byteBudget)} bytes, the least any method sent): ${bestBytes.map((r) => `${r.method} ${fmt(r.meanAtByteBudget as number)}`).join('; ')}; rounds to a mean gap of 1e-2: ${rs.map((r) => `${r.method} ${r.roundsTo1e2 ?? 'never'}`).join(', ')}.`,
      );
    }
  }
  return { rows, findings };
}

/** The first checkpoint round where the mean gap over the group is at most `level` (null: never). */
function roundsTo(group: RunResult[], level: number): number | null {
  if (metricOf(group[0]!) !== 'gap') return null;
  const first = group[0]!;
  for (let i = 0; i < first.curve.round.length; i++) {
    const g = group.map((r) => r.curve.gap[i]);
    if (g.every((x) => x !== null && x !== undefined) && (g as number[]).reduce((a, b) => a + b, 0) / g.length <= level) return first.curve.round[i]!;
  }
  return null;
}

export const rivals: Experiment = {
  name: 'rivals',
  title: 'The two closest rivals: FedNPG (decentralised, exact Q) and FedSVRPG-M (momentum) against Fast-FedPG and FedAvg',
  claim:
    "FedNPG's natural-gradient step is scale-free (a soft policy-iteration step per round), so it may beat every first-order method in rounds; it talks to neighbours (two tables per neighbour per round), Fast-FedPG to one server. FedSVRPG-M anchors its correction at the previous round's model, so the heterogeneity drift of FedAvg remains (SPEC.md: 0.128 against FedAvg's 0.150 on the plateau fixture). Gap against rounds and against bytes.",
  params: ['mdp', 'gradient', 'entropy', 'rounds', 'localSteps', 'eta', 'horizon', 'batch', 'seeds', 'backend'],
  defaults: {
    ...DEFAULT_PARAMS,
    mdp: ['gridworld:width=5,height=5,agents=4', 'plateau-s6-a3-n4'],
    algorithms: ['fast-fedpg', 'fedavg', 'fednpg', 'fedsvrpg-m'],
    gradient: ['exact', 'sampled'],
    entropy: [0.01],
    rounds: 500,
    localSteps: [10],
    eta: 0.5,
    horizon: [30],
    batch: 10,
    agents: [4],
    seeds: 8,
  },
  // --quick: under a minute on two cores, the claim's direction (README: the field's experiments).
  quick: { rounds: 100, seeds: 2 },
  fixed: {
    'fednpg eta': `${NPG_ETA} (its own step: eta/(1-gamma) = 1 at gamma = 0.9); exact Q only (it has no sampled form)`,
    'fedsvrpg-m': SVRPG_SAMPLED ? 'BETA 0.2 and 0.6, exact and sampled, --is-clip 20' : 'BETA 0.2 and 0.6, exact gradients only (the sampled kernel is not on this branch yet)',
    topologies: 'complete, ring',
    'equal bytes': 'the value each method had when it had sent as many bytes as the thriftiest method sent in all T rounds',
    theta0: 'zeros',
  },
  columns: ['source', 'gradient', 'method', 'metric', 'seeds', 'rounds', 'meanFinal', 'seFinal', 'bytesPerRound', 'byteBudget', 'meanAtByteBudget', 'roundsTo1e2', 'finalConsensus'],

  plan(p) {
    const H = single(p, 'localSteps', 'rivals');
    const K = single(p, 'horizon', 'rivals');
    const tasks: PlannedTask[] = [];
    const notes: string[] = [];
    if (!SVRPG_SAMPLED && p.gradient.includes('sampled')) notes.push('FedSVRPG-M runs with exact gradients only: its sampled kernel is not in the backends yet.');
    for (const src of loadSources(p.mdp)) {
      const mdp = agentsOrSkip(src, src.mdp.rewards.length, notes)!;
      for (const gradient of p.gradient)
        for (const v of rivalVariants(p.entropy, p.gradient)) {
          if (!v.gradients.includes(gradient)) continue;
          for (const seed of seedsOf(gradient, p.seeds))
            tasks.push({
              cell: { source: src.label, method: v.method, algorithm: v.algorithm, gradient, N: mdp.rewards.length },
              mdp,
              settings: { ...runSettings(p, { algorithm: v.algorithm, gradient, localSteps: H, horizon: K, seed }), ...v.settings },
              pointsPerDecade: 12,
              linearPoints: 100,
              record: ['bytes', 'trajectories', ...(v.algorithm === 'fednpg' ? (['consensus'] as const) : [])],
            });
        }
    }
    return { tasks, notes };
  },

  summarise(log) {
    const { rows, findings } = rivalRows(log.runs);
    return { rows, fits: [], findings, tables: [] };
  },

  chart(summary, log) {
    const p = summary.params;
    const axes: CostAxis[] = ['round', 'bytes'];
    return raceChart(log.runs, axes, (r) => r.cell.method as string, 'FedNPG and FedSVRPG-M against Fast-FedPG and FedAvg: mean gap against rounds and bytes', [
      `T = ${p.rounds}, H = ${p.localSteps[0]}, eta = ${p.eta} (fednpg: ${NPG_ETA}), entropy tau = ${p.entropy.join(', ') || 'none'}; sampled: K = ${p.horizon[0]}, M = ${p.batch}, mean over ${p.seeds} seeds; backend ${summary.backend}.`,
      'fednpg is exact Q only (decentralised: bytes are tables sent to neighbours); fedsvrpg-m ' + (SVRPG_SAMPLED ? 'exact and sampled.' : 'exact only (no sampled kernel yet).'),
    ], { dash: (r) => `${r.cell.gradient} gradients`, dashTitle: 'gradients' });
  },
};
