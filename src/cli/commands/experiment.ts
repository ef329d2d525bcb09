import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { mkdirSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import type { GradientMode } from '../../backends/types.js';
import { InputError } from '../../errors.js';
import { drawExperiment, EXPERIMENT_NAMES, EXPERIMENTS, parseShard, planExperiment, plotLog, runPlanned, runShard, shardLogName, shardOf, taskCost, type ExperimentLog, type ExperimentParams, type ExperimentSummary, type RunExperimentOptions } from '../../experiments/index.js';
import { mergeShardLogs } from '../../experiments/merge.js';
import { writeFileAtomic } from '../../util/atomic.js';
import { ALGORITHMS, type Algorithm, type Correction } from '../../federation/settings.js';
import { backendChoice, int, num, oneOf, printJson } from '../flags.js';

/**
 * fedpg experiment NAME: one of the paper's claims as a run of many trainings (seeds in parallel
 * on worker threads), writing NAME.jsonl (the log: a header, one line per finished run, an end
 * line), NAME.csv (the summary's rows), NAME.svg (the plot) and NAME.html (plot, findings and
 * settings on one self-contained page) into --out. With --shard I/N it runs one slice of the
 * runs and writes only NAME.shard-I-of-N.jsonl; `fedpg experiment merge` joins the slices.
 */

interface ExperimentFlags {
  mdp?: string[];
  algorithms?: string;
  gradient?: string;
  rounds?: string;
  localSteps?: string;
  eta?: string;
  alphaG?: string;
  horizon?: string;
  batch?: string;
  agents?: string;
  heterogeneity?: string;
  correction?: string;
  entropy?: string;
  seeds?: string;
  centralized?: string;
  backend?: string;
  threads?: string;
  out?: string;
  json?: boolean;
  dryRun?: boolean;
  quick?: boolean;
  shard?: string;
}

function list<T>(flag: string, v: string | undefined, parse: (x: string) => T): T[] | undefined {
  if (v === undefined) return undefined;
  const parts = v.split(',').map((s) => s.trim());
  if (parts.some((s) => s === '')) throw new InputError(`--${flag} must be a comma-separated list, got '${v}'`);
  return parts.map(parse);
}

/** The flags as parameter overrides (only the flags given). */
export function overridesFromFlags(o: ExperimentFlags): Partial<ExperimentParams> {
  const p: Partial<ExperimentParams> = {};
  const set = <K extends keyof ExperimentParams>(k: K, v: ExperimentParams[K] | undefined): void => {
    if (v !== undefined) p[k] = v;
  };
  set('mdp', o.mdp);
  set('algorithms', list('algorithms', o.algorithms, (x) => oneOf('algorithms', x, ALGORITHMS) as Algorithm));
  set('gradient', list('gradient', o.gradient, (x) => oneOf('gradient', x, ['exact', 'sampled'] as const) as GradientMode));
  set('rounds', int('rounds', o.rounds, 1));
  set('localSteps', list('local-steps', o.localSteps, (x) => int('local-steps', x, 1)!));
  set('eta', num('eta', o.eta));
  set('alphaG', num('alpha-g', o.alphaG));
  set('horizon', list('horizon', o.horizon, (x) => int('horizon', x, 1)!));
  set('batch', int('batch', o.batch, 1));
  set('agents', list('agents', o.agents, (x) => int('agents', x, 1)!));
  set('heterogeneity', list('heterogeneity', o.heterogeneity, (x) => num('heterogeneity', x)!));
  set('correction', list('correction', o.correction, (x) => oneOf('correction', x, ['memory', 'fresh'] as const) as Correction));
  set('entropy', list('entropy', o.entropy, (x) => num('entropy', x)!));
  set('seeds', int('seeds', o.seeds, 1));
  set('centralized', oneOf('centralized', o.centralized, ['matched', 'rounds'] as const));
  set('backend', backendChoice(o.backend));
  return p;
}

function describeExperiments(): string {
  return EXPERIMENT_NAMES.map((n) => `  ${n.padEnd(14)} ${EXPERIMENTS[n]!.title}`).join('\n');
}

/** A progress bar over runs on stderr (a terminal only), with the ETA weighted by the runs' cost. */
class RunsProgress {
  private bar: cliProgress.SingleBar | null = null;
  constructor(label: string, runs: number, totalCost: number, enabled: boolean) {
    if (!enabled || !process.stderr.isTTY || runs === 0) return;
    this.bar = new cliProgress.SingleBar(
      { stream: process.stderr, format: `${label} {bar} {percentage}% | run {runs}/${runs} | ETA {eta_formatted}`, hideCursor: true, clearOnComplete: true },
      cliProgress.Presets.shades_classic,
    );
    this.bar.start(totalCost, 0, { runs: 0 });
  }
  update(cost: number, runs: number): void {
    this.bar?.update(cost, { runs });
  }
  stop(): void {
    this.bar?.stop();
    this.bar = null;
  }
}

/** The readable report of a summary. */
export function summaryText(summary: ExperimentSummary, files: Record<string, string>): string {
  const lines = [`${summary.experiment}: ${summary.title} (${summary.runs.completed} runs, backend ${summary.backend})`, ...summary.findings.map((f) => `- ${f}`)];
  for (const t of summary.tables) {
    lines.push(t.title);
    lines.push('  ' + t.columns.join('\t'));
    for (const r of t.rows) lines.push('  ' + t.columns.map((c) => (typeof r[c] === 'number' && !Number.isInteger(r[c]) ? (r[c] as number).toPrecision(3) : String(r[c] ?? ''))).join('\t'));
  }
  lines.push(...Object.entries(files).map(([k, v]) => `${k}: ${v}`));
  return lines.join('\n') + '\n';
}

export function experimentCommand(program: Command): void {
  const experiment = program
    .command('experiment')
    // `experiment merge DIR... --out X`: the options after `merge` are merge's, not experiment's.
    .enablePositionalOptions()
    .helpCommand(false)
    .description(`run one of the paper's claims as an experiment (seeds in parallel) and write its log, CSV, SVG plot and HTML page (--dry-run shows an experiment's settings)\n${describeExperiments()}`)
    .argument('<name>', EXPERIMENT_NAMES.join(' | '))
    .option('--mdp <source>', "MDP source, repeatable: a fedpg-mdp/1 file, an embedded fixture (plateau-s6-a3-n4, speedup-s5-a3-n8, labbi-challenging) or a generator such as 'mirrored:states=5,actions=3,agents=32,gamma=0.8,heterogeneity=1,seed=1' (also random:..., kernels:...)", (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
    .option('--algorithms <list>', `comma-separated: ${ALGORITHMS.join(', ')}`)
    .option('--gradient <list>', 'exact, sampled (comma-separated)')
    .option('--rounds <T>', 'communication rounds T')
    .option('--local-steps <list>', 'H values (comma-separated)')
    .option('--eta <x>', 'local step size (nonidentical: the constant c in eta = c sqrt(N/(H T)))')
    .option('--alpha-g <x>', 'server step size in (0,1]')
    .option('--horizon <list>', 'K values (comma-separated)')
    .option('--batch <M>', 'trajectories per estimate')
    .option('--agents <list>', 'N values (comma-separated): the first N agents of each source; N = 1 is the average reward table')
    .option('--heterogeneity <list>', 'values of h in [0,1]: R_i(h) = (1-h) R_bar + h R_i')
    .option('--correction <list>', 'memory, fresh (comma-separated)')
    .option('--entropy <list>', 'entropy weights tau > 0 (comma-separated)')
    .option('--seeds <n>', 'seeds per sampled cell (seeds 0..n-1)')
    .option('--centralized <rule>', 'matched (H*T rounds: as many steps and samples as FedAvg) | rounds (T rounds)')
    .option('--backend <name>', 'auto | native | wasm | js (default auto; peers defaults to js, the reference for the entropy kernels)')
    .option('--threads <n>', `worker threads (default: available cores, ${availableParallelism()} here; 1 runs in this thread)`)
    .option('--out <dir>', 'output directory (default ./fedpg-experiments)')
    .option('--json', 'print the summary as one JSON object (no progress bar)')
    .option('--quick', 'the smaller documented configuration: under a minute, the claim\'s direction (flags given still win)')
    .option('--dry-run', 'print the settings, the flags this experiment reads and the number of runs, and stop')
    .option('--shard <I/N>', 'run only shard I of N (I = 0..N-1; same slices on every machine) and write OUT/NAME.shard-I-of-N.jsonl; join the shards with fedpg experiment merge (docs/SWEEPS.md)')
    .addHelpText('after', '\nA flag an experiment does not read is refused (exit 1); its log line "header" lists every setting used.\nCtrl-C stops the runs; the log keeps every finished run and `fedpg plot LOG` draws it.\nfedpg experiment merge DIR... joins the logs of --shard runs (fedpg experiment merge --help).')
    .action(async (name: string, o: ExperimentFlags) => {
      const shard = o.shard === undefined ? undefined : parseShard(o.shard);
      const plan = await planExperiment(name, overridesFromFlags(o), { quick: !!o.quick });
      if (o.dryRun) {
        const e = plan.experiment;
        const info: Record<string, unknown> = { experiment: e.name, title: e.title, claim: e.claim, quick: plan.quick, params: plan.params, reads: e.params, fixed: e.fixed, backend: plan.backend, runs: plan.tasks.length, notes: plan.notes };
        const mine = shard ? shardOf(plan, shard) : null;
        const cost = (ts: typeof plan.tasks): number => ts.reduce((s, t) => s + taskCost(t), 0);
        const share = mine ? cost(mine) / cost(plan.tasks) : 1;
        if (shard) info.shard = { ...shard, tasks: mine!.map((t) => t.index), costShare: share };
        if (o.json) return printJson(info);
        const lines = [
          `${e.name}: ${e.title}`,
          `runs: ${plan.tasks.length} (backend ${plan.backend})${plan.quick ? ', --quick configuration' : ''}`,
          ...(shard ? [`shard ${shard.index}/${shard.count}: ${mine!.length} runs, ${(100 * share).toFixed(1)}% of the estimated cost`] : []),
          'settings (flags it reads):',
          ...Object.entries(plan.params)
            .filter(([k]) => e.params.includes(k as keyof ExperimentParams))
            .map(([k, v]) => `  ${k.padEnd(14)} ${Array.isArray(v) ? v.join(',') : String(v)}`),
          'fixed:',
          ...Object.entries(e.fixed).map(([k, v]) => `  ${k}: ${v}`),
          ...plan.notes.map((n) => `note: ${n}`),
        ];
        process.stdout.write(lines.join('\n') + '\n');
        return;
      }
      const threads = int('threads', o.threads, 1) ?? availableParallelism();
      const dir = o.out ?? 'fedpg-experiments';
      mkdirSync(dir, { recursive: true });
      const logPath = join(dir, shard ? shardLogName(name, shard) : `${name}.jsonl`);
      const controller = new AbortController();
      let completed = 0;
      const onSigint = (): void => controller.abort(new Error('interrupted'));
      process.once('SIGINT', onSigint);
      const tasks = shard ? shardOf(plan, shard) : plan.tasks;
      const total = tasks.reduce((s, t) => s + taskCost(t), 0);
      const progress = new RunsProgress(shard ? `${name} ${shard.index}/${shard.count}` : name, tasks.length, total, !o.json);
      const runOpts: RunExperimentOptions = {
        threads,
        logPath,
        signal: controller.signal,
        command: ['fedpg', ...process.argv.slice(2)].join(' '),
        onProgress: (d) => {
          completed = d.runs;
          progress.update(d.cost, d.runs);
        },
      };
      let log: ExperimentLog;
      let summary: ExperimentSummary | null = null;
      try {
        if (shard) log = await runShard(plan, shard, runOpts);
        else ({ log, summary } = await runPlanned(plan, runOpts));
      } catch (e) {
        if (controller.signal.aborted) {
          throw new Error(`interrupted (Ctrl-C); ${logPath} holds ${completed} of ${tasks.length} runs: ${shard ? 'rerun the shard' : `draw them with fedpg plot ${logPath}`}`);
        }
        throw e;
      } finally {
        progress.stop();
        process.removeListener('SIGINT', onSigint);
      }
      if (!summary) {
        // A slice has no plot of its own: merge draws the whole experiment.
        const info = { experiment: name, shard: log.header.shard!, runs: { shard: log.runs.length, planned: plan.tasks.length }, log: logPath };
        if (o.json) return printJson(info);
        process.stdout.write(`${name}: shard ${shard!.index}/${shard!.count} ran ${log.runs.length} of ${plan.tasks.length} runs (backend ${plan.backend})\nlog: ${logPath}\njoin the shards with: fedpg experiment merge DIR...\n`);
        return;
      }
      const files = await drawExperiment(log, summary, dir, name);
      const all = { log: logPath, ...files };
      if (o.json) return printJson({ ...summary, files: all });
      process.stdout.write(summaryText(summary, all));
    });

  mergeCommand(experiment);
}

/** fedpg experiment merge DIR...: the shard logs joined into NAME.jsonl, then drawn like fedpg plot. */
function mergeCommand(experiment: Command): void {
  experiment
    .command('merge')
    .description('join the logs of fedpg experiment NAME --shard I/N runs (directories of NAME.shard-I-of-N.jsonl, or the files) into NAME.jsonl, the log one unsharded run writes, and draw its CSV, SVG and HTML')
    .argument('<dirs...>', 'directories holding shard logs, or shard log files')
    .option('--out <dir>', 'write NAME.jsonl, .csv, .svg and .html here (default: the first directory given)')
    .option('--json', 'print the summary as one JSON object')
    .addHelpText('after', '\nRefused (exit 1, one line): shards of different experiments, settings, backends or versions; a shard given twice; a missing or unfinished shard.')
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)')
    .action(async (inputs: string[], o: { out?: string; json?: boolean }) => {
      const { log, text, shards } = mergeShardLogs(inputs, { command: ['fedpg', ...process.argv.slice(2)].join(' ') });
      const first = inputs[0]!;
      const dir = o.out ?? (isDirectory(first) ? first : dirname(first));
      mkdirSync(dir, { recursive: true });
      const logPath = join(dir, `${log.header.experiment}.jsonl`);
      writeFileAtomic(logPath, text);
      const { summary, files } = await plotLog(logPath, dir);
      const all = { log: logPath, ...files };
      if (o.json) return printJson({ ...summary, files: all, shards });
      process.stdout.write(`merged ${shards.length} shards (${log.runs.length} runs)\n` + summaryText(summary, all));
    });
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}
