import { basename, dirname, join } from 'node:path';
import type { Algorithm, TrainSettings } from '../federation/settings.js';
import type { TrainResult } from '../federation/train.js';
import type { Mdp } from '../mdp/model.js';
import { plotRunLogs, withPartialPlot } from '../plot/index.js';
import { printJson } from './flags.js';
import { pathForSeed, runSeedTasks, seedBackend, seedSettings, seedThreads, type SeedTask } from './seeds.js';
import { pm, roundStats, summariseSeeds } from './seeds-summary.js';
import type { RuntimeFlags } from './session.js';
import type { BackendChoice } from '../backends/types.js';

/**
 * The outputs of `train --seeds N` and `run --seeds N`: a table of mean ± standard error, and
 * with --json every seed's result and the summary. Without --seeds these commands keep their
 * single-run outputs (this module is not involved).
 */

export interface SeedsCommandOptions {
  seeds: number;
  runtime: RuntimeFlags;
  backend?: BackendChoice;
  theta0?: Float64Array;
  json: boolean;
}

function tasksFor(mdp: Mdp, settings: Partial<TrainSettings>, o: SeedsCommandOptions, backend: TrainResult['backend'], out: ((seed: number) => string) | null, checkpoint: ((seed: number) => string) | null, first: number): SeedTask[] {
  return Array.from({ length: o.seeds }, (_, k) => {
    const s = seedSettings(settings, k);
    const seed = s.seed ?? 0;
    const t: SeedTask = { index: first + k, mdp, settings: s, backend };
    if (o.theta0) t.theta0 = o.theta0;
    if (out) t.out = out(seed);
    if (checkpoint) {
      t.checkpoint = checkpoint(seed);
      if (o.runtime.checkpointEvery !== undefined) t.checkpointEvery = o.runtime.checkpointEvery;
      if (o.runtime.fresh) t.fresh = true;
    }
    return t;
  });
}

/** Columns padded to their widest cell: numbers right-aligned, a first column of names left-aligned. */
function table(head: string[], rows: string[][], namesFirst = false): string[] {
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 && namesFirst ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(head), ...rows.map(line)];
}

/** fedpg train MDP --seeds N. */
export async function trainSeeds(file: string, mdp: Mdp, settings: TrainSettings, o: SeedsCommandOptions & { out?: string }): Promise<void> {
  const backend = await seedBackend(o.backend);
  const tasks = tasksFor(mdp, settings, o, backend, o.out ? (s) => pathForSeed(o.out!, s) : null, o.runtime.checkpoint ? (s) => pathForSeed(o.runtime.checkpoint!, s) : null, 0);
  const results = await runSeedTasks(tasks, { workers: o.runtime.workers ?? 'auto', progress: !o.json, label: settings.algorithm });
  const summary = summariseSeeds(results);
  const logs = tasks.map((t) => t.out).filter((p): p is string => !!p);
  if (o.json) return printJson({ seeds: summary.seeds, results, summary, ...(logs.length ? { logs } : {}) });
  const seeds = summary.seeds;
  const lines = [
    `${settings.algorithm} on ${file}, ${seeds.length} seeds (${seeds[0]}..${seeds[seeds.length - 1]}): ${results[0]!.settings.agents} agents, backend ${backend}, ${settings.gradient} gradients; mean ± standard error over the seeds`,
    ...table(['algorithm', 'seeds', 'J before', `J after ${summary.rounds} rounds`, 'gap'], [[summary.algorithm, String(seeds.length), pm(summary.J0), pm(summary.J), pm(summary.gap)]], true),
    `trajectories ${summary.trajectories}, bytes ${summary.bytes} (per seed)`,
    `runtime: ${seedThreads(o.runtime.workers ?? 'auto', tasks.length)} thread(s), one seed per thread, agents in-process`,
  ];
  if (logs.length) lines.push(`round logs: ${logs.join(', ')}`, `plot them: fedpg plot ${logs.join(' ')}`);
  process.stdout.write(lines.join('\n') + '\n');
}

/** The rounds of run's table: 0, T and 1, 2, 5 x 10^k. */
export function tableRounds(T: number): number[] {
  const picks = new Set<number>([0, T]);
  for (let k = 1; k <= T; k *= 10) for (const m of [1, 2, 5]) if (m * k <= T) picks.add(m * k);
  return [...picks].sort((a, b) => a - b);
}

/** fedpg run --seeds N: both algorithms, every seed, one pool; the table of mean ± s.e. and the plot with bands. */
export async function runSeeds(
  mdp: Mdp,
  settings: Partial<TrainSettings>,
  algorithms: Algorithm[],
  outDir: string,
  o: SeedsCommandOptions & { checkpointOf?: (algorithm: Algorithm) => string },
): Promise<void> {
  const backend = await seedBackend(o.backend);
  const tasks = algorithms.flatMap((algorithm, a) =>
    tasksFor(mdp, { ...settings, algorithm }, o, backend, (s) => join(outDir, `${algorithm}.seed${s}.jsonl`), o.checkpointOf ? (s) => pathForSeed(o.checkpointOf!(algorithm), s) : null, a * o.seeds),
  );
  const logs = tasks.map((t) => t.out!);
  const plotOptions = { dir: outDir, name: 'run', title: `fedpg run: ${algorithms.join(' vs ')}, ${o.seeds} seeds` };
  const since = Date.now();
  // Ctrl-C: the logs so far are plotted too (marked partial).
  const all = await runSeedTasks(tasks, { workers: o.runtime.workers ?? 'auto', progress: !o.json, label: 'run' }).catch(async (e: unknown) => {
    throw await withPartialPlot(e, logs, since, plotOptions);
  });
  const byAlg = algorithms.map((_, a) => all.slice(a * o.seeds, (a + 1) * o.seeds));
  const plot = await plotRunLogs(logs, plotOptions);
  const summary = byAlg.map(summariseSeeds);
  if (o.json) {
    return printJson({ mdp: mdp.name ?? null, seeds: summary[0]!.seeds, logs, plot: plot.files, results: Object.fromEntries(algorithms.map((a, i) => [a, byAlg[i]])), summary });
  }
  const first = all[0]!;
  const T = first.records.length;
  const head = ['round', ...algorithms.flatMap((a) => [`J ${a}`, `gap ${a}`])];
  const rows = tableRounds(T).map((t) => [String(t), ...byAlg.flatMap((rs) => {
    const st = roundStats(rs, t);
    return [pm(st.J), pm(st.gap)];
  })]);
  const out = [
    `${mdp.name ?? 'mdp'}: ${first.settings.agents} agents, ${mdp.states} states, ${mdp.actions} actions; ${first.gradient} gradients, H = ${first.settings.localSteps}, eta = ${first.settings.eta}, backend ${first.backend}`,
    `${o.seeds} seeds (${summary[0]!.seeds[0]}..${summary[0]!.seeds[o.seeds - 1]}): mean ± standard error over the seeds`,
    first.Jstar === null ? 'no J* (per-agent kernels)' : `J* = ${first.Jstar}`,
    '',
    ...table(head, rows),
    '',
    `runtime: ${seedThreads(o.runtime.workers ?? 'auto', tasks.length)} thread(s), one seed per thread, agents in-process`,
    `round logs: ${join(outDir, `{${algorithms.join(',')}}.seed{${summary[0]!.seeds[0]}..${summary[0]!.seeds[o.seeds - 1]}}.jsonl`)}`,
    `plot: ${plot.files.svg} (and ${basename(plot.files.html)} in ${dirname(plot.files.html)})`,
  ];
  process.stdout.write(out.join('\n') + '\n');
}
