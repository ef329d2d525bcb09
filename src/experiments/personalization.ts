import { DEFAULT_PARAMS, fmt, loadSources, runSettings, seedsOf } from './common.js';
import { mean } from './stats.js';
import { single } from './speedup.js';
import { sweepChart, sweepRows, SWEEP_COLUMNS } from './sweep.js';
import type { RunResult } from './task.js';
import type { Experiment, PlannedTask, Row } from './types.js';

/** Ditto's LAMBDA values (eta * LAMBDA < 1 at the default eta). */
export const LAMBDAS = [0.001, 0.01, 0.1, 1, 5];

/** (1/N) sum_i J_i*: every Ditto record carries personalGap + personalJ = that mean. */
function meanOwnOptimum(runs: RunResult[], source: string): number | null {
  const r = runs.find((x) => x.cell.source === source && x.curve.extra?.personalGap);
  if (!r) return null;
  const g = r.curve.extra!.personalGap!.at(-1), j = r.curve.extra!.personalJ!.at(-1);
  return g === null || g === undefined || j === null || j === undefined ? null : g + j;
}

/**
 * The personal gap (1/N) sum_i (J_i* - J_i(policy_i)) of a run: Ditto's personal policies v_i;
 * for `local` each agent's own theta_i (J is then the mean of J_i(theta_i)); for a global-only run
 * theta_bar for everyone (J = mean_i J_i(theta_bar)).
 */
function personalGapOf(run: RunResult, ownOptimum: number | null): number | null {
  if (run.cell.kind === 'ditto') return run.curve.extra?.personalGap?.at(-1) ?? null;
  const own = run.final.agentJ;
  return ownOptimum === null || !own ? null : ownOptimum - own.reduce((a, b) => a + b, 0) / own.length;
}

export const personalization: Experiment = {
  name: 'personalization',
  title: 'Personal policies (Ditto): the personal gap against LAMBDA, against local-only and global-only',
  claim:
    "Ditto keeps a personal policy v_i pulled towards the global model with weight LAMBDA. Small LAMBDA is local-only training (each agent its own task, its own samples), large LAMBDA is the global model (one policy for all tasks, whose personal gap is the heterogeneity's price). In between, the personal policies should beat both when tasks differ and samples are few.",
  params: ['mdp', 'algorithms', 'rounds', 'localSteps', 'eta', 'alphaG', 'horizon', 'batch', 'seeds', 'backend'],
  defaults: {
    ...DEFAULT_PARAMS,
    mdp: ['gridworld:width=5,height=5,agents=4', 'random:states=6,actions=3,agents=4,gamma=0.9,heterogeneity=0.5,seed=0'],
    algorithms: ['fast-fedpg', 'fedavg'],
    rounds: 200,
    localSteps: [5],
    eta: 0.1,
    horizon: [30],
    batch: 5,
    seeds: 8,
  },
  // --quick: under a minute on two cores, the claim's direction (README: the field's experiments).
  quick: { mdp: ['random:states=6,actions=3,agents=4,gamma=0.9,heterogeneity=0.5,seed=0'], rounds: 100, seeds: 3 },
  fixed: {
    gradient: 'sampled',
    LAMBDA: LAMBDAS.join(', ') + ' (--personalize ditto:LAMBDA)',
    'local-only': '`local`: every agent trains its own policy on its own task (same H, eta, samples per step)',
    'global-only': 'the same algorithm without Ditto: theta_bar for every agent',
    'personal gap': '(1/N) sum_i (J_i* - J_i(policy_i)), J_i* each agent\'s own optimum',
    theta0: 'zeros',
  },
  columns: ['source', 'method', 'LAMBDA', ...SWEEP_COLUMNS],

  plan(p) {
    const H = single(p, 'localSteps', 'personalization');
    const K = single(p, 'horizon', 'personalization');
    const tasks: PlannedTask[] = [];
    const notes: string[] = [];
    for (const src of loadSources(p.mdp)) {
      if (src.mdp.perAgentKernels) {
        notes.push(`${src.label} has per-agent kernels: skipped.`);
        continue;
      }
      const mdp = src.mdp;
      const add = (cell: Record<string, string | number>, algorithm: string, extra: Record<string, unknown> = {}, record = false) => {
        for (const seed of seedsOf('sampled', p.seeds))
          tasks.push({ cell: { source: src.label, ...cell }, mdp, settings: { ...runSettings(p, { algorithm, gradient: 'sampled', localSteps: H, horizon: K, seed }), ...extra }, pointsPerDecade: 3, ...(record ? { record: ['personalGap', 'personalJ'] } : { finalAgentJ: true }) } as PlannedTask);
      };
      for (const algorithm of p.algorithms) {
        for (const LAMBDA of LAMBDAS) add({ kind: 'ditto', method: algorithm, algorithm, LAMBDA }, algorithm, { personalize: `ditto:${LAMBDA}` }, true);
        add({ kind: 'global', method: algorithm, algorithm }, algorithm);
      }
      add({ kind: 'local', method: 'local', algorithm: 'local' }, 'local');
    }
    return { tasks, notes };
  },

  summarise(log) {
    const own = new Map<string, number | null>();
    for (const s of new Set(log.runs.map((r) => r.cell.source as string))) own.set(s, meanOwnOptimum(log.runs, s));
    const gapOf = (r: RunResult): number | null => personalGapOf(r, own.get(r.cell.source as string) ?? null);
    const ditto = log.runs.filter((r) => r.cell.kind === 'ditto');
    const rows: Row[] = sweepRows(ditto, (r) => ({ source: r.cell.source!, method: r.cell.method! }), (r) => r.cell.LAMBDA as number, gapOf, 'LAMBDA');
    const findings: string[] = [];
    const tables: { title: string; columns: string[]; rows: Row[] }[] = [];
    const baseRows: Row[] = [];
    for (const source of own.keys()) {
      const base = (kind: string, method: string): number[] => log.runs.filter((r) => r.cell.source === source && r.cell.kind === kind && r.cell.method === method).map(gapOf).filter((g): g is number => g !== null);
      const local = base('local', 'local');
      baseRows.push({ source, baseline: 'local-only', method: 'local', meanPersonalGap: mean(local) });
      for (const method of new Set(ditto.filter((r) => r.cell.source === source).map((r) => r.cell.method as string))) {
        const global = base('global', method);
        baseRows.push({ source, baseline: 'global-only', method, meanPersonalGap: mean(global) });
        const rs = rows.filter((r) => r.source === source && r.method === method);
        const best = [...rs].sort((a, b) => (a.mean as number) - (b.mean as number))[0];
        findings.push(
          `${source}, ${method} + Ditto: personal gap ${rs.map((r) => `${fmt(r.mean as number)} ± ${fmt(r.se as number, 2)} (LAMBDA = ${r.LAMBDA})`).join(', ')}; local-only ${fmt(mean(local))}, global-only ${fmt(mean(global))}${best ? `; best LAMBDA = ${best.LAMBDA}, ${fmt(best.mean as number)}: ${(best.mean as number) < Math.min(mean(local), mean(global)) ? 'below both' : 'not below both'}` : ''}.`,
        );
      }
    }
    tables.push({ title: 'Baselines: the personal gap of local-only and global-only policies', columns: ['source', 'baseline', 'method', 'meanPersonalGap'], rows: baseRows });
    return { rows, fits: [], findings, tables };
  },

  chart(summary, log) {
    const p = summary.params;
    const own = new Map<string, number | null>();
    for (const s of new Set(log.runs.map((r) => r.cell.source as string))) own.set(s, meanOwnOptimum(log.runs, s));
    const references = (summary.tables[0]?.rows ?? []).map((r) => ({ fields: { source: r.source }, label: `${r.baseline}${r.baseline === 'global-only' ? ` (${r.method})` : ''}`, value: r.meanPersonalGap as number }));
    return sweepChart(summary.rows, {
      title: 'Ditto: the personal gap against LAMBDA (sampled gradients)',
      subtitle: [
        `T = ${p.rounds}, H = ${p.localSteps[0]}, eta = ${p.eta}, K = ${p.horizon[0]}, M = ${p.batch}, ${p.seeds} seeds. Dots: seeds; mean ± s.e.; grey: local-only and global-only (mean personal gap).`,
      ],
      x: 'LAMBDA',
      xTitle: 'LAMBDA (Ditto: pull of the personal policy towards the global model)',
      xLog: true,
      yTitle: 'personal gap (1/N) sum_i (J_i* - J_i(v_i))',
      yLog: true,
      facetColumn: 'source',
      references,
      seedPoints: log.runs.filter((r) => r.cell.kind === 'ditto').map((r) => ({ run: r, fields: { source: r.cell.source, method: r.cell.method, LAMBDA: r.cell.LAMBDA }, value: personalGapOf(r, own.get(r.cell.source as string) ?? null) })),
    });
  },
};
