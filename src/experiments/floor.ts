import type { Mdp } from '../mdp/model.js';
import { CHART_CONFIG, DEFAULT_PARAMS, fmt, inOrder, loadSources, runSettings, SCHEMA, seedsOf } from './common.js';
import { GAP_ROW_COLUMNS, gapAgainstN, gapAgainstNLayers, single } from './speedup.js';
import type { RunResult } from './task.js';
import type { Experiment, PlannedTask } from './types.js';

/**
 * N agents made of copies of a source's n agents (agent i has agent i mod n's reward table): the
 * average MDP, so J*, is the same for every N that is a multiple of n, and so is FedAvg's
 * heterogeneity drift with exact gradients; only the sampling noise shrinks with N.
 */
export function tiledMdp(mdp: Mdp, N: number): Mdp {
  const n = mdp.rewards.length;
  return { ...mdp, name: `${mdp.name ?? 'mdp'}-tiled${N}`, rewards: Array.from({ length: N }, (_, i) => mdp.rewards[i % n]!) };
}

/** The two races: unregularised (Fast-FedPG, FedAvg) and entropy-regularised (Fast-FedPG + entropy, regfedpg). */
const PAIRS = [
  { objective: 'J', methods: [{ algorithm: 'fast-fedpg', method: 'fast-fedpg' }, { algorithm: 'fedavg', method: 'fedavg' }] },
  { objective: 'J_tau', methods: [{ algorithm: 'fast-fedpg', method: 'fast-fedpg+entropy' }, { algorithm: 'regfedpg', method: 'regfedpg (FedAvg on J_tau)' }] },
] as const;

/** Runs with the gap replaced by the regularised gap where the objective is J_tau (what gapAgainstN reads). */
function onObjective(runs: RunResult[]): RunResult[] {
  return runs.map((r) => (r.cell.objective === 'J_tau' ? { ...r, final: { ...r.final, gap: r.final.gapTau ?? null } } : r));
}

export const floor: Experiment = {
  name: 'floor',
  title: "Claim 2 against FedAvg: linear speedup without a heterogeneity floor (large eta*H, strongly heterogeneous tasks)",
  claim:
    "Claim 2 says Fast-FedPG's gap falls like 1/N with no heterogeneity floor; FedAvg's drift leaves a floor that no number of agents removes. At the speedup experiment's small eta*H both show the same slope. Here eta*H = 6 on a random MDP at heterogeneity 1 whose N agents are copies of its 4 (so the average MDP and FedAvg's exact-gradient drift are the same for every N). With tabular softmax and no entropy the optimum sits at infinity, where every agent's gradient (and so the drift) vanishes, and sampling noise can carry FedAvg past its exact-gradient end point; with an entropy bonus the optimum of J_tau is a finite point and FedAvg's (regfedpg's) fixed point is shifted from it: there the floor should show.",
  params: ['mdp', 'agents', 'entropy', 'rounds', 'localSteps', 'eta', 'alphaG', 'horizon', 'batch', 'seeds', 'backend'],
  defaults: {
    ...DEFAULT_PARAMS,
    mdp: ['random:states=6,actions=3,agents=4,gamma=0.7,heterogeneity=1,seed=0'],
    algorithms: ['fast-fedpg', 'fedavg', 'regfedpg'],
    agents: [4, 8, 16, 32],
    entropy: [0.05],
    rounds: 200,
    localSteps: [20],
    eta: 0.3,
    horizon: [20],
    // M = 16, not 4: with H = 20 noisy local steps each agent's own noise leaves a bias that more
    // agents do not remove (README: N = 32, M = 16 beats N = 128, M = 4 at the same samples).
    batch: 16,
    seeds: 8,
  },
  // --quick: under a minute on two cores, the claim's direction (README: the field's experiments).
  quick: { agents: [4, 16], rounds: 150, seeds: 4, batch: 4 },
  fixed: {
    gradient: 'sampled (plus one exact-gradient run per method and N: the N -> infinity limit at this T)',
    agents: 'copies of the source\'s agents (agent i has agent i mod n\'s rewards): N must be a multiple of n',
    objectives: 'J (fast-fedpg, fedavg: gap J* - J) and J_tau (fast-fedpg+entropy, regfedpg: regularised gap J_tau* - J_tau)',
    theta0: 'zeros',
  },
  columns: GAP_ROW_COLUMNS,

  plan(p) {
    const H = single(p, 'localSteps', 'floor');
    const K = single(p, 'horizon', 'floor');
    const tau = single(p, 'entropy', 'floor');
    const tasks: PlannedTask[] = [];
    const notes: string[] = [];
    for (const src of loadSources(p.mdp)) {
      const n = src.mdp.rewards.length;
      if (src.mdp.perAgentKernels) {
        notes.push(`${src.label} has per-agent kernels (no J*): skipped.`);
        continue;
      }
      for (const N of p.agents) {
        if (N % n !== 0) {
          notes.push(`${src.label} has ${n} agents: N = ${N} is not a multiple, skipped.`);
          continue;
        }
        const mdp = tiledMdp(src.mdp, N);
        for (const pair of PAIRS) {
          const source = pair.objective === 'J' ? `${src.label}: J` : `${src.label}: J_tau (tau = ${tau})`;
          const entropy = pair.objective === 'J' ? 0 : tau;
          const extra = entropy > 0 ? { regularizedTau: entropy } : {};
          for (const m of pair.methods)
            for (const seed of seedsOf('sampled', p.seeds))
              tasks.push({ cell: { source, objective: pair.objective, method: m.method, algorithm: m.algorithm, gradient: 'sampled', N }, mdp, settings: runSettings(p, { algorithm: m.algorithm, gradient: 'sampled', localSteps: H, horizon: K, seed, entropy }), pointsPerDecade: 3, ...extra });
          for (const m of pair.methods)
            tasks.push({ cell: { source, objective: pair.objective, method: `${m.method} (exact gradients)`, algorithm: m.algorithm, gradient: 'exact', N }, mdp, settings: runSettings(p, { algorithm: m.algorithm, gradient: 'exact', localSteps: H, horizon: K, seed: 0, entropy }), pointsPerDecade: 3, ...extra });
        }
      }
    }
    return { tasks, notes };
  },

  summarise(log) {
    const r = gapAgainstN(onObjective(log.runs), (run) => `${run.cell.source}|${run.cell.method}`, (run) => `${run.cell.method} on ${run.cell.source}`);
    // The sampled means against the exact-gradient floor of the FedAvg-type method at the largest N.
    for (const source of new Set(r.rows.map((x) => x.source as string))) {
      const Ns = r.rows.filter((x) => x.source === source).map((x) => x.N as number);
      const Nmax = Math.max(...Ns);
      const at = (method: string): number | null => (r.rows.find((x) => x.source === source && x.method === method && x.N === Nmax)?.meanGap as number | null) ?? null;
      const methods = inOrder(r.rows.filter((x) => x.source === source && x.gradient !== 'exact').map((x) => x.method)) as string[];
      const exact = inOrder(r.rows.filter((x) => x.source === source && x.gradient === 'exact').map((x) => x.method)) as string[];
      r.findings.push(`${source}, N = ${Nmax}: sampled mean final gap ${methods.map((m) => `${m} ${fmt(at(m))}`).join(', ')}; exact-gradient gap ${exact.map((m) => `${m.replace(' (exact gradients)', '')} ${fmt(at(m))}`).join(', ')}.`);
    }
    return { ...r, tables: [] };
  },

  chart(summary, log) {
    const { data, layer } = gapAgainstNLayers(summary.rows, summary.fits, onObjective(log.runs));
    // The exact-gradient reference of every method, not only Fast-FedPG's (dark: fast-fedpg, light: the FedAvg type).
    for (const d of data) if (d.kind === 'exact') d.exactOf = String(d.method).replace(' (exact gradients)', '');
    const exactLayer = layer.find((l) => JSON.stringify(l).includes("datum.kind === 'exact'")) as Record<string, unknown>;
    exactLayer.encoding = { ...(exactLayer.encoding as object), detail: { field: 'method' }, strokeDash: { field: 'exactOf', type: 'nominal', title: 'exact gradients (N -> infinity)' } };
    const p = summary.params;
    const slopes = summary.fits.filter((f) => f.group.quantity === undefined).map((f) => `${f.group.method} ${fmt(f.slope)}${f.ci ? ` [${fmt(f.ci[0])}, ${fmt(f.ci[1])}]` : ''}`);
    return {
      $schema: SCHEMA,
      title: {
        text: 'Final gap against N at large eta*H on strongly heterogeneous tasks (sampled gradients; log-log)',
        subtitle: [
          `${p.mdp.join(', ')} tiled to N agents; T = ${p.rounds}, H = ${p.localSteps[0]}, eta = ${p.eta}, K = ${p.horizon[0]}, M = ${p.batch}, tau = ${p.entropy[0]}, ${p.seeds} seeds. Dots: seeds; diamonds: mean ± s.e.; dashed: fit; grey: slope -1; dark lines: exact gradients.`,
          `Slopes of the mean final gap against N [95% bootstrap]: ${slopes.join('; ')}.`,
        ],
      },
      data: { values: data },
      facet: { column: { field: 'source', type: 'nominal', title: null, sort: inOrder(log.runs.map((r) => r.cell.source)) } },
      spec: { width: 330, height: 260, layer },
      resolve: { scale: { x: 'independent', y: 'independent' } },
      config: CHART_CONFIG,
    };
  },
};
