import { CHART_CONFIG, DEFAULT_PARAMS, fmt, inOrder, loadSources, methodColours, runSettings, SCHEMA, seedsOf } from './common.js';
import { agentsOrSkip } from './mdps.js';
import { single } from './speedup.js';
import { sweepChart, sweepRows, SWEEP_COLUMNS } from './sweep.js';
import type { RunResult } from './task.js';
import type { Experiment, PlannedTask, Row } from './types.js';

/** Clip norms C (every vector an agent sends is clipped to this Euclidean norm). */
export const DP_CLIPS = [0.3, 1];
/** Noise multipliers SIGMA (noise N(0, (SIGMA C)^2) per entry); 0 is the clip alone. */
export const DP_NOISES = [0.25, 0.5, 1, 2, 4, 8, 16];

/** The run's final epsilon (largest over agents; null: clipping without noise, infinite). */
function epsilonOf(r: RunResult): number | null {
  return r.curve.extra?.dpEpsilon?.at(-1) ?? null;
}

function privacyLabel(r: RunResult): string {
  return r.cell.kind === 'none' ? 'no DP' : `clip C = ${r.cell.C}${r.cell.kind === 'clip' ? ' (SIGMA = 0)' : ''}`;
}

export const privacy: Experiment = {
  name: 'privacy',
  title: 'Differential privacy: final gap against epsilon (clipped and noised messages)',
  claim:
    "Every vector an agent sends is clipped to norm C and gets N(0, (SIGMA C)^2) noise per entry; epsilon follows from SIGMA, the number of messages and delta (Renyi accounting). Fast-FedPG sends two vectors a round (Delta_i and its memory sample), FedAvg one, so at the same SIGMA Fast-FedPG spends more epsilon. The clip alone (SIGMA = 0, no privacy) already moves the result: shown apart.",
  params: ['mdp', 'algorithms', 'agents', 'rounds', 'localSteps', 'eta', 'alphaG', 'horizon', 'batch', 'seeds', 'backend'],
  defaults: {
    ...DEFAULT_PARAMS,
    mdp: ['mirrored:states=5,actions=3,agents=32,gamma=0.8,heterogeneity=1,seed=1'],
    algorithms: ['fast-fedpg', 'fedavg'],
    agents: [32],
    rounds: 200,
    localSteps: [5],
    eta: 0.1,
    horizon: [20],
    batch: 5,
    seeds: 8,
  },
  // --quick: under a minute on two cores, the claim's direction (README: the field's experiments).
  quick: { agents: [8], rounds: 100, seeds: 2 },
  fixed: {
    gradient: 'sampled',
    'dp-clip C': DP_CLIPS.join(', '),
    'dp-noise SIGMA': `${DP_NOISES.join(', ')}; and 0 (the clip alone) and no DP at all`,
    'dp-delta': '1e-5 (the default)',
    epsilon: "the run's final dpEpsilon: the largest over agents after T rounds",
    theta0: 'zeros',
  },
  columns: ['method', 'privacy', 'SIGMA', 'epsilon', ...SWEEP_COLUMNS],

  plan(p) {
    const N = single(p, 'agents', 'privacy');
    const H = single(p, 'localSteps', 'privacy');
    const K = single(p, 'horizon', 'privacy');
    const tasks: PlannedTask[] = [];
    const notes: string[] = [];
    for (const src of loadSources(p.mdp)) {
      const mdp = agentsOrSkip(src, N, notes);
      if (!mdp) continue;
      for (const algorithm of p.algorithms) {
        const add = (cell: Record<string, string | number>, dp: Record<string, number>) => {
          for (const seed of seedsOf('sampled', p.seeds))
            tasks.push({ cell: { source: src.label, method: algorithm, algorithm, N, ...cell }, mdp, settings: { ...runSettings(p, { algorithm, gradient: 'sampled', localSteps: H, horizon: K, seed }), ...dp }, pointsPerDecade: 3, record: ['dpEpsilon'] });
        };
        add({ kind: 'none', C: 0, SIGMA: 0 }, {});
        for (const C of DP_CLIPS) {
          add({ kind: 'clip', C, SIGMA: 0 }, { dpClip: C });
          for (const SIGMA of DP_NOISES) add({ kind: 'noise', C, SIGMA }, { dpClip: C, dpNoise: SIGMA });
        }
      }
    }
    return { tasks, notes };
  },

  summarise(log) {
    const rows: Row[] = sweepRows(log.runs, (r) => ({ method: r.cell.method!, privacy: privacyLabel(r), SIGMA: r.cell.SIGMA!, epsilon: epsilonOf(r) ?? 'infinite' }), () => 0, (r) => r.final.gap, 'x').map(({ x: _x, ...r }) => r);
    const findings: string[] = [];
    for (const method of new Set(rows.map((r) => r.method))) {
      const none = rows.find((r) => r.method === method && r.privacy === 'no DP');
      const clips = rows.filter((r) => r.method === method && r.SIGMA === 0 && r.privacy !== 'no DP');
      findings.push(`${method}: no DP ${fmt(none?.mean as number)} ± ${fmt(none?.se as number, 2)}; the clip alone (SIGMA = 0): ${clips.map((r) => `${String(r.privacy).replace(' (SIGMA = 0)', '')} ${fmt(r.mean as number)} ± ${fmt(r.se as number, 2)}`).join(', ')}.`);
      for (const C of DP_CLIPS) {
        const rs = rows.filter((r) => r.method === method && r.privacy === `clip C = ${C}` && (r.SIGMA as number) > 0);
        findings.push(`${method}, C = ${C}: final gap ${rs.map((r) => `${fmt(r.mean as number)} at epsilon ${fmt(r.epsilon as number)} (SIGMA ${r.SIGMA})`).join('; ')}.`);
      }
    }
    return { rows, fits: [], findings, tables: [] };
  },

  chart(summary, log) {
    const p = summary.params;
    const noised = summary.rows.filter((r) => (r.SIGMA as number) > 0);
    const main = sweepChart(noised, {
      title: '',
      subtitle: [],
      x: 'epsilon',
      xTitle: 'epsilon (delta = 1e-5) after T rounds',
      xLog: true,
      yTitle: 'final gap J* - J',
      yLog: true,
      dash: 'privacy',
      seedPoints: log.runs.filter((r) => r.cell.kind === 'noise').map((r) => ({ run: r, fields: { method: r.cell.method, privacy: privacyLabel(r), epsilon: epsilonOf(r) }, value: r.final.gap })),
    });
    const { $schema: _s, title: _t, config: _c, ...mainPanel } = main;
    const clipData = summary.rows.filter((r) => r.SIGMA === 0).map((r) => ({ method: r.method, privacy: String(r.privacy).replace(' (SIGMA = 0)', ''), mean: r.mean, lo: (r.mean as number) - ((r.se as number) ?? 0), hi: (r.mean as number) + ((r.se as number) ?? 0) }));
    const colours = methodColours(summary.rows.map((r) => r.method as string));
    const clipPanel = {
      width: 170,
      height: 220,
      data: { values: clipData },
      layer: [
        { mark: { type: 'rule' }, encoding: { x: { field: 'privacy', type: 'ordinal', sort: inOrder(clipData.map((d) => d.privacy)), title: 'the clip alone (SIGMA = 0)' }, y: { field: 'lo', type: 'quantitative', scale: { type: 'log' }, title: 'final gap J* - J' }, y2: { field: 'hi' }, color: { field: 'method', type: 'nominal', scale: colours }, xOffset: { field: 'method' } } },
        { mark: { type: 'point', filled: true, size: 50 }, encoding: { x: { field: 'privacy', type: 'ordinal', sort: inOrder(clipData.map((d) => d.privacy)) }, y: { field: 'mean', type: 'quantitative', scale: { type: 'log' } }, color: { field: 'method', type: 'nominal', scale: colours }, xOffset: { field: 'method' } } },
      ],
    };
    return {
      $schema: SCHEMA,
      title: {
        text: 'Differential privacy: final gap against epsilon (left) and the clip\'s own effect (right)',
        subtitle: [`${p.mdp.join(', ')}, N = ${p.agents[0]}; sampled, T = ${p.rounds}, H = ${p.localSteps[0]}, eta = ${p.eta}, K = ${p.horizon[0]}, M = ${p.batch}, ${p.seeds} seeds; SIGMA = ${DP_NOISES.join(', ')} (left to right: epsilon falls as SIGMA grows).`],
      },
      hconcat: [mainPanel, clipPanel],
      resolve: { scale: { y: 'shared' } },
      config: CHART_CONFIG,
    };
  },
};
