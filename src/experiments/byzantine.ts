import { DEFAULT_PARAMS, fmt, loadSources, runSettings, seedsOf } from './common.js';
import { agentsOrSkip } from './mdps.js';
import { single } from './speedup.js';
import { sweepChart, sweepRows, SWEEP_COLUMNS } from './sweep.js';
import type { RunResult } from './task.js';
import type { Experiment, PlannedTask, Row } from './types.js';

/** Hostile agents 0..F-1 for these F (F = 0: every agent honest, the robust rules' own bias). */
export const BYZANTINE_F = [0, 1, 2, 3];
/** The server's rules (krum assumes up to 3 hostile agents: n - F - 2 >= 1 needs n >= 6). */
export const RULES = ['mean', 'median', 'trimmed:0.25', 'krum:3', 'geomed'];
/** What hostile agents send. */
export const ATTACKS = ['signflip', 'zero', 'gaussian:1'];

/** The runs with F = 0 (attack none) copied into every attack's panel, so each panel starts at F = 0. */
function withHonestInEveryPanel(runs: RunResult[]): RunResult[] {
  const out: RunResult[] = [];
  for (const attack of ATTACKS) for (const r of runs) if (r.cell.F === 0 || r.cell.attack === attack) out.push({ ...r, cell: { ...r.cell, attack } });
  return out;
}

export const byzantine: Experiment = {
  name: 'byzantine',
  title: 'Hostile agents: final gap against the number F of attackers, per aggregation rule and attack',
  claim:
    'Robust aggregation rules (median, trimmed mean, Krum, geometric median) bound what F hostile agents can do, but on heterogeneous tasks they are biased even with F = 0: an honest agent whose task differs looks like an outlier (SPEC.md: Krum near 0.33 where the mean reaches 0.009 on a 9-agent random MDP). With any rule but the mean, Fast-FedPG\'s corrections no longer cancel.',
  params: ['mdp', 'algorithms', 'gradient', 'rounds', 'localSteps', 'eta', 'alphaG', 'horizon', 'batch', 'seeds', 'backend'],
  defaults: {
    ...DEFAULT_PARAMS,
    mdp: ['random:states=6,actions=3,agents=9,gamma=0.9,heterogeneity=1,seed=0'],
    algorithms: ['fast-fedpg', 'fedavg'],
    gradient: ['exact'],
    rounds: 1000,
    localSteps: [10],
    eta: 0.1,
    horizon: [30],
    batch: 10,
    seeds: 5,
  },
  // --quick: under a minute on two cores, the claim's direction (README: the field's experiments).
  quick: { rounds: 300, seeds: 2 },
  fixed: {
    F: BYZANTINE_F.join(', ') + ' (agents 0..F-1 hostile)',
    aggregation: RULES.join(', '),
    attack: ATTACKS.join(', ') + ' (every vector a hostile agent sends: Delta_i and, for Fast-FedPG, its memory sample)',
    seeds: 'exact gradients are deterministic except the gaussian attack, which draws from the agent\'s stream: it runs --seeds seeds',
    theta0: 'zeros',
  },
  columns: ['source', 'gradient', 'algorithm', 'attack', 'aggregation', 'F', ...SWEEP_COLUMNS],

  plan(p) {
    const H = single(p, 'localSteps', 'byzantine');
    const K = single(p, 'horizon', 'byzantine');
    const tasks: PlannedTask[] = [];
    const notes: string[] = [];
    for (const src of loadSources(p.mdp)) {
      const mdp = agentsOrSkip(src, src.mdp.rewards.length, notes)!;
      for (const gradient of p.gradient)
        for (const algorithm of p.algorithms)
          for (const aggregation of RULES)
            for (const F of BYZANTINE_F)
              for (const attack of F === 0 ? ['none'] : ATTACKS) {
                const random = gradient === 'sampled' || attack.startsWith('gaussian');
                for (const seed of seedsOf(random ? 'sampled' : 'exact', p.seeds))
                  tasks.push({
                    cell: { source: src.label, gradient, method: algorithm, algorithm, aggregation, attack, F },
                    mdp,
                    settings: { ...runSettings(p, { algorithm, gradient, localSteps: H, horizon: K, seed }), aggregation, byzantine: F, ...(F > 0 ? { attack } : {}) },
                    pointsPerDecade: 5,
                  });
              }
    }
    return { tasks, notes };
  },

  summarise(log) {
    const runs = withHonestInEveryPanel(log.runs);
    const rows = sweepRows(runs, (r) => ({ source: r.cell.source!, gradient: r.cell.gradient!, algorithm: r.cell.algorithm!, attack: r.cell.attack!, aggregation: r.cell.aggregation! }), (r) => r.cell.F as number, (r) => r.final.gap, 'F');
    const findings: string[] = [];
    const gap0 = log.runs[0]?.curve.gap[0];
    findings.push(`The gap at theta = 0 (uniform policy) is ${fmt(gap0)}: a run ending there did not move.`);
    for (const algorithm of new Set(rows.map((r) => r.algorithm as string))) {
      const honest = rows.filter((r) => r.algorithm === algorithm && r.F === 0 && r.attack === ATTACKS[0]);
      findings.push(`${algorithm}, F = 0 (no attacker): final gap ${honest.map((r) => `${r.aggregation} ${fmt(r.mean as number)}`).join(', ')}: the robust rules' own bias on heterogeneous tasks.`);
      for (const attack of ATTACKS) {
        const Fmax = Math.max(...BYZANTINE_F);
        const worst = rows.filter((r) => r.algorithm === algorithm && r.attack === attack && r.F === Fmax);
        findings.push(`${algorithm}, ${attack}, F = ${Fmax}: ${worst.map((r) => `${r.aggregation} ${fmt(r.mean as number)}`).join(', ')}.`);
      }
    }
    return { rows: rows as Row[], fits: [], findings, tables: [] };
  },

  chart(summary, log) {
    const p = summary.params;
    const runs = withHonestInEveryPanel(log.runs);
    return sweepChart(summary.rows, {
      title: 'Final gap against the number of hostile agents F, per aggregation rule (columns: attack; rows: algorithm)',
      subtitle: [
        `${p.mdp.join(', ')}; ${p.gradient.join(', ')} gradients, T = ${p.rounds}, H = ${p.localSteps[0]}, eta = ${p.eta}; gaussian attack: mean over ${p.seeds} seeds (dots: seeds).`,
        'F = 0 is the same honest run in every column: robust rules are already biased there on heterogeneous tasks.',
      ],
      x: 'F',
      xTitle: 'hostile agents F',
      yTitle: 'final gap J* - J',
      yLog: true,
      colour: 'aggregation',
      facetColumn: 'attack',
      facetRow: 'algorithm',
      seedPoints: runs.filter((r) => String(r.cell.attack).startsWith('gaussian') && (r.cell.F as number) > 0).map((r) => ({ run: r, fields: { algorithm: r.cell.algorithm, attack: r.cell.attack, aggregation: r.cell.aggregation, F: r.cell.F }, value: r.final.gap })),
    });
  },
};
