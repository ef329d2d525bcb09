import { mkdirSync } from 'node:fs';
import { extname, join } from 'node:path';
import type { Command } from 'commander';
import type { Algorithm } from '../../federation/settings.js';
import type { TrainResult } from '../../federation/train.js';
import { loadTheta } from '../../mdp/format.js';
import { displayName } from '../../mdp/display.js';
import { addMemoryBudgetFlag, addRescaleFlag, loadMdpWithFlags, rescaleIfAsked, rewardMapLines, withRewardMap, type LoadedMdp } from '../mdp-flags.js';
import { gridworldMdp } from '../../mdp/generate.js';
import type { Mdp } from '../../mdp/model.js';
import { backendChoice, int, num, printJson } from '../flags.js';
import { trainWithLog, type SessionOptions } from '../session.js';
import { plotRunLogs, withPartialPlot } from '../../plot/index.js';
import { parseSeedCount } from '../seeds.js';
import { runSeeds, tableRounds } from '../seeds-commands.js';
import { addRunFlags, runtimeFromFlags, runtimeLine, settingsFromFlags, type RunFlags } from './train.js';

/** One checkpoint per algorithm: ck.json -> ck.fast-fedpg.json, ck -> ck.fast-fedpg. */
export function checkpointFor(path: string, algorithm: Algorithm): string {
  const ext = extname(path);
  return ext ? `${path.slice(0, -ext.length)}.${algorithm}${ext}` : `${path}.${algorithm}`;
}

/**
 * The main job: the multi-task gridworld (agents rewarded at different corners), Fast-FedPG
 * against FedAvg from the same start, a table of J and the gap, and one round log per algorithm.
 */
export const RUN_DEFAULTS = {
  width: 5,
  height: 5,
  agents: 4,
  slip: 0.1,
  gamma: 0.9,
  gradient: 'exact' as const,
  rounds: 300,
  localSteps: 10,
  eta: 1,
  out: 'fedpg-run',
};

const RUN_ALGORITHMS: Algorithm[] = ['fast-fedpg', 'fedavg'];

function fmt(v: number | null | undefined, digits = 6): string {
  if (v === null || v === undefined) return 'n/a';
  return Math.abs(v) !== 0 && Math.abs(v) < 1e-3 ? v.toExponential(2) : v.toFixed(digits);
}

export function runCommand(program: Command): void {
  const cmd = program
    .command('run')
    .description(
      `the main job: Fast-FedPG against FedAvg on the multi-task gridworld (${RUN_DEFAULTS.width}x${RUN_DEFAULTS.height}, ${RUN_DEFAULTS.agents} agents with goals in different corners), printing a table and writing round logs`,
    )
    .option('--mdp <file>', 'use this fedpg-mdp/1 file instead of the embedded gridworld')
    .option('--width <W>', `gridworld width (default ${RUN_DEFAULTS.width})`)
    .option('--height <H>', `gridworld height (default ${RUN_DEFAULTS.height})`)
    .option('--agents <N>', `gridworld agents (default ${RUN_DEFAULTS.agents})`);
  addMemoryBudgetFlag(addRescaleFlag(cmd));
  addRunFlags(cmd, false, { gradient: RUN_DEFAULTS.gradient, rounds: RUN_DEFAULTS.rounds, localSteps: RUN_DEFAULTS.localSteps, eta: RUN_DEFAULTS.eta })
    .option('--out <dir>', `directory for the round logs (default ${RUN_DEFAULTS.out})`)
    .option('--json', 'print one JSON object with both results (no progress bar, no table)')
    .option('--seeds <N>', 'run seeds S..S+N-1 of each algorithm in parallel (one thread per seed, --workers threads): the table shows mean ± standard error, the plot a band')
    .action(async (o: RunFlags & { rescaleRewards?: boolean; mdp?: string; width?: string; height?: string; agents?: string; seeds?: string }) => {
      let loaded: LoadedMdp;
      if (o.mdp) loaded = loadMdpWithFlags(o.mdp, o);
      else {
        const { goals: _g, width: _w, height: _h, ...plain } = gridworldMdp({
          width: int('width', o.width, 1) ?? RUN_DEFAULTS.width,
          height: int('height', o.height, 1) ?? RUN_DEFAULTS.height,
          agents: int('agents', o.agents, 1) ?? RUN_DEFAULTS.agents,
          slip: RUN_DEFAULTS.slip,
          gamma: RUN_DEFAULTS.gamma,
        });
        loaded = rescaleIfAsked(plain, o);
      }
      const mdp: Mdp = loaded.mdp;
      const flags = settingsFromFlags(o);
      const settings = {
        gradient: RUN_DEFAULTS.gradient,
        rounds: RUN_DEFAULTS.rounds,
        localSteps: RUN_DEFAULTS.localSteps,
        eta: num('eta', o.eta) ?? RUN_DEFAULTS.eta,
        ...flags,
      };
      const theta0 = o.theta0 ? loadTheta(o.theta0, mdp.states, mdp.actions) : undefined;
      const outDir = o.out ?? RUN_DEFAULTS.out;
      mkdirSync(outDir, { recursive: true });
      const runtime = runtimeFromFlags(o);
      const seeds = parseSeedCount(o.seeds);
      if (seeds !== undefined) {
        const backend = backendChoice(o.backend);
        return runSeeds(mdp, settings, RUN_ALGORITHMS, outDir, {
          seeds, runtime, json: !!o.json, ...(backend ? { backend } : {}), ...(theta0 ? { theta0 } : {}),
          ...(runtime.checkpoint ? { checkpointOf: (a: Algorithm) => checkpointFor(runtime.checkpoint!, a) } : {}),
        });
      }
      const results: TrainResult[] = [];
      const runtimes: string[] = [];
      const logs = RUN_ALGORITHMS.map((a) => join(outDir, `${a}.jsonl`));
      const plotOptions = { dir: outDir, name: 'run', title: `fedpg run: ${RUN_ALGORITHMS.join(' vs ')}` };
      const since = Date.now();
      for (const algorithm of RUN_ALGORITHMS) {
        const runOpts: SessionOptions = { progress: !o.json, label: algorithm, out: join(outDir, `${algorithm}.jsonl`), ...runtime };
        if (runtime.checkpoint) runOpts.checkpoint = checkpointFor(runtime.checkpoint, algorithm);
        const backend = backendChoice(o.backend);
        if (backend) runOpts.backend = backend;
        if (theta0) runOpts.theta0 = theta0;
        // Ctrl-C: the logs so far are plotted too (marked partial).
        const r = await trainWithLog(mdp, { ...settings, algorithm }, runOpts).catch(async (e: unknown) => {
          throw await withPartialPlot(e, logs, since, plotOptions);
        });
        results.push(r.result);
        runtimes.push(`${algorithm} ${runtimeLine(r.workersWhy, r.resumedAt, runOpts.checkpoint)}`);
      }
      // The plot beside the logs (fedpg plot redraws it from them).
      const plot = await plotRunLogs(logs, plotOptions);
      if (o.json) return printJson(withRewardMap({ mdp: mdp.name ?? o.mdp ?? null, logs, plot: plot.files, results }, loaded));
      const first = results[0]!;
      const T = first.records.length;
      const head = ['round', ...RUN_ALGORITHMS.flatMap((a) => [`J ${a}`, `gap ${a}`])];
      const rows = tableRounds(T).map((t) => [String(t), ...results.flatMap((r) => [fmt(r.J[t]), fmt(r.Jstar === null ? null : r.Jstar - r.J[t]!)])]);
      const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
      const line = (cells: string[]): string => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
      const out = [
        `${displayName(mdp.name ?? o.mdp ?? '')}: ${first.settings.agents} agents, ${mdp.states} states, ${mdp.actions} actions; ${first.gradient} gradients, H = ${first.settings.localSteps}, eta = ${first.settings.eta}, backend ${first.backend}`,
        first.Jstar === null ? 'no J* (per-agent kernels)' : `J* = ${first.Jstar}`,
        '',
        line(head),
        ...rows.map(line),
        '',
        ...rewardMapLines(loaded),
        ...runtimes,
        `round logs: ${logs.join(', ')}`,
        `plot: ${plot.files.svg}, ${plot.files.html}`,
      ];
      process.stdout.write(out.join('\n') + '\n');
    });
}
