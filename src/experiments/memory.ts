import { CHART_CONFIG, DEFAULT_PARAMS, inOrder, fmt, groupRuns, loadSources, methodColours, methodName, runSettings, SCHEMA, seedsOf } from './common.js';
import { meanCurve } from './curves.js';
import { agentsOrSkip } from './mdps.js';
import { GAP_ROW_COLUMNS, gapAgainstN, gapAgainstNLayers, single } from './speedup.js';
import type { Experiment, PlannedTask } from './types.js';

/**
 * The ablation of Fast-FedPG's memory: the correction g - g_i built from the samples the agents
 * sent to the server (Algorithm 1) against a fresh sample of g_i(theta_bar) at each round's start.
 */
export const memory: Experiment = {
  name: 'memory',
  title: "Ablation of Fast-FedPG's memory (sampled gradients)",
  claim:
    "Fast-FedPG's correction uses the remembered sample g_i(theta_bar) each agent sent to the server, so that (1/N) sum_i g_i = g exactly and the corrections cancel across agents; the paper's proof needs it. `fresh` draws a new g_i(theta_bar) at each round's start instead: the corrections no longer cancel and their noise enters every local step. How much does it matter in practice?",
  params: ['mdp', 'algorithms', 'agents', 'correction', 'rounds', 'localSteps', 'eta', 'alphaG', 'horizon', 'batch', 'seeds', 'backend'],
  defaults: {
    ...DEFAULT_PARAMS,
    mdp: ['speedup-s5-a3-n8'],
    algorithms: ['fast-fedpg', 'fedavg'],
    agents: [1, 2, 4, 8],
    correction: ['memory', 'fresh'],
    rounds: 3000,
    localSteps: [5],
    eta: 0.05,
    horizon: [20],
    batch: 1,
    seeds: 24,
  },
  // --quick: under a minute on two cores, the claim's direction (README: the paper's claims, checked).
  quick: { agents: [1, 8], rounds: 1000, seeds: 8 },
  fixed: { gradient: 'sampled', theta0: 'zeros', 'N = 1': "the average reward table of all the source's agents" },
  columns: GAP_ROW_COLUMNS,

  plan(p) {
    const H = single(p, 'localSteps', 'memory');
    const K = single(p, 'horizon', 'memory');
    const tasks: PlannedTask[] = [];
    const notes: string[] = [];
    for (const src of loadSources(p.mdp)) {
      for (const N of p.agents) {
        const mdp = agentsOrSkip(src, N, notes);
        if (!mdp) continue;
        for (const algorithm of p.algorithms)
          for (const correction of algorithm === 'fast-fedpg' ? p.correction : (['memory'] as const))
            for (const seed of seedsOf('sampled', p.seeds))
              tasks.push({
                cell: { source: src.label, method: methodName(algorithm, { correction }), algorithm, correction, N },
                mdp,
                settings: runSettings(p, { algorithm, gradient: 'sampled', localSteps: H, horizon: K, seed, correction }),
                pointsPerDecade: 10,
              });
      }
    }
    return { tasks, notes };
  },

  summarise(log) {
    const r = gapAgainstN(log.runs, (run) => `${run.cell.source}|${run.cell.method}`, (run) => `${run.cell.method} on ${run.cell.source}`);
    for (const source of new Set(r.rows.map((x) => x.source))) {
      const Ns = [...new Set(r.rows.filter((x) => x.source === source).map((x) => x.N as number))].sort((a, b) => a - b);
      for (const N of Ns) {
        const mem = r.rows.find((x) => x.source === source && x.N === N && x.method === 'fast-fedpg');
        const fresh = r.rows.find((x) => x.source === source && x.N === N && x.method === 'fast-fedpg (fresh)');
        if (mem && fresh && (mem.meanGap as number) > 0)
          r.findings.push(`${source}, N = ${N}: fresh correction's mean final gap ${fmt(fresh.meanGap as number)} against memory's ${fmt(mem.meanGap as number)} (ratio ${fmt((fresh.meanGap as number) / (mem.meanGap as number))}).`);
      }
    }
    return { ...r, tables: [] };
  },

  chart(summary, log) {
    const { data, layer } = gapAgainstNLayers(summary.rows, summary.fits, log.runs);
    const curves: Record<string, unknown>[] = [];
    const Ns = [...new Set(log.runs.map((r) => r.cell.N as number))].sort((a, b) => a - b);
    const shown = Ns.length > 2 ? [Ns[0]!, Ns[Ns.length - 1]!] : Ns;
    for (const [, group] of groupRuns(log.runs, (r) => `${r.cell.source}|${r.cell.method}|${r.cell.N}`)) {
      const c = group[0]!.cell;
      if (!shown.includes(c.N as number)) continue;
      const mc = meanCurve(group, 'gap');
      mc.round.forEach((round, i) => {
        const v = mc.value[i];
        if (round >= 1 && v !== null && v !== undefined && v > 0) curves.push({ source: c.source, method: c.method, N: `N = ${c.N}`, round, gap: v });
      });
    }
    const colours = methodColours(summary.rows.map((r) => r.method as string));
    const p = summary.params;
    const slopes = summary.fits.map((f) => `${f.group.method}: slope ${fmt(f.slope)}${f.ci ? ` [${fmt(f.ci[0])}, ${fmt(f.ci[1])}]` : ''}`);
    return {
      $schema: SCHEMA,
      title: {
        text: "Fast-FedPG's memory against a fresh correction sample (sampled gradients)",
        subtitle: [`${p.mdp.join(', ')}; T = ${p.rounds}, H = ${p.localSteps[0]}, eta = ${p.eta}, K = ${p.horizon[0]}, M = ${p.batch}, ${p.seeds} seeds. Left: final gap against N (log-log; grey: slope -1). Right: mean gap over seeds against rounds.`, slopes.join('; ')],
      },
      hconcat: [
        { data: { values: data }, width: 330, height: 260, layer },
        {
          data: { values: curves },
          width: 330,
          height: 260,
          mark: { type: 'line' },
          encoding: {
            x: { field: 'round', type: 'quantitative', scale: { type: 'log' }, title: 'round' },
            y: { field: 'gap', type: 'quantitative', scale: { type: 'log' }, title: 'mean gap J* - J(theta_bar)' },
            color: { field: 'method', type: 'nominal', scale: colours, title: 'method' },
            strokeDash: { field: 'N', type: 'nominal', title: 'agents', sort: inOrder(curves.map((c) => c.N)) },
          },
        },
      ],
      config: CHART_CONFIG,
    };
  },
};
