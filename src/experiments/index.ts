import { algorithmOf } from '../federation/algorithms/registry.js';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { loadBackend } from '../backends/select.js';
import type { BackendName } from '../backends/types.js';
import { InputError } from '../errors.js';
import { resolveSettings } from '../federation/settings.js';
import { environmentSpec } from '../mdp/model.js';
import { LineLog, writeFileAtomic } from '../util/atomic.js';
import { bias } from './bias.js';
import { byzantine } from './byzantine.js';
import { compare } from './compare.js';
import { floor } from './floor.js';
import { heterogeneity } from './heterogeneity.js';
import { horizon } from './horizon.js';
import { memory } from './memory.js';
import { nonidentical } from './nonidentical.js';
import { participation } from './participation.js';
import { peers } from './peers.js';
import { personalization } from './personalization.js';
import { privacy } from './privacy.js';
import { finishChart } from './finish.js';
import { htmlPage, renderSvg, toCsv } from './render.js';
import { experimentLogText, runLine } from './log.js';
import { runTasks } from './runner.js';
import { rivals } from './rivals.js';
import { sliceTasks, type Shard } from './shard.js';
import { speedup } from './speedup.js';
import type { RunResult, RunTask } from './task.js';
import type { Experiment, ExperimentHeader, ExperimentLog, ExperimentParams, ExperimentSummary } from './types.js';

export type { Experiment, ExperimentHeader, ExperimentLog, ExperimentParams, ExperimentSummary, Fit, Row } from './types.js';
export type { RunCurve, RunResult, RunTask } from './task.js';
export { runTask, checkpointRounds, softOptimalValue } from './task.js';
export { runTasks, workerScript } from './runner.js';
export { BUILTIN_MDPS, firstAgents, mirroredMdp, perAgentKernelMdp, resolveMdpSource, scaleHeterogeneity } from './mdps.js';
export { renderSvg, htmlPage, toCsv } from './render.js';
export { finishChart } from './finish.js';
export { experimentLogText } from './log.js';
export { parseShard, shardLogName, sliceTasks, type Shard, type ShardHeader } from './shard.js';

/** Every experiment, by name, in the order of SPEC.md's claims and the issue. */
export const EXPERIMENTS: Readonly<Record<string, Experiment>> = Object.freeze({ bias, speedup, horizon, heterogeneity, nonidentical, memory, peers, rivals, compare, byzantine, participation, personalization, floor, privacy });
export const EXPERIMENT_NAMES: readonly string[] = Object.keys(EXPERIMENTS);

export const LOG_FORMAT = 'fedpg-experiment/1';

const version = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;

export function getExperiment(name: string): Experiment {
  const e = EXPERIMENTS[name];
  if (!e) throw new InputError(`unknown experiment '${name}' (choose ${EXPERIMENT_NAMES.join(', ')})`);
  return e;
}

/**
 * The parameters of a run of `e`: its defaults with the overrides applied. An override of a
 * parameter the experiment fixes is refused (InputError naming the ones it reads).
 */
export function experimentParams(e: Experiment, overrides: Partial<ExperimentParams> = {}): ExperimentParams {
  const p: ExperimentParams = { ...e.defaults };
  for (const [k, v] of Object.entries(overrides) as [keyof ExperimentParams, unknown][]) {
    if (v === undefined) continue;
    if (!e.params.includes(k)) throw new InputError(`the ${e.name} experiment does not take ${k} (it reads ${e.params.join(', ')})`);
    (p as unknown as Record<string, unknown>)[k] = v;
  }
  const lists: (keyof ExperimentParams)[] = ['mdp', 'algorithms', 'gradient', 'localSteps', 'horizon', 'agents', 'heterogeneity', 'correction'];
  for (const k of lists) if (e.params.includes(k) && (p[k] as unknown[]).length === 0) throw new InputError(`${k} needs at least one value`);
  if (!Number.isSafeInteger(p.seeds) || p.seeds < 1) throw new InputError(`seeds must be an integer >= 1, got ${p.seeds}`);
  for (const h of p.heterogeneity) if (!(h >= 0 && h <= 1)) throw new InputError(`heterogeneity values must be in [0, 1], got ${h}`);
  for (const t of p.entropy) if (!(t > 0) || !Number.isFinite(t)) throw new InputError(`entropy values must be finite and > 0, got ${t}`);
  return p;
}

/** A rough relative cost of a run (to start long runs first and weigh the progress bar). */
export function taskCost(t: RunTask): number {
  const s = resolveSettings(t.settings);
  const N = t.mdp.rewards.length, S = t.mdp.states, A = t.mdp.actions;
  const alg = algorithmOf(s.algorithm);
  const steps = alg.estimatesPerRound(s) + (alg.reports === 'every-round' ? 1 : 0);
  const perEstimate = s.gradient === 'sampled' ? s.horizon * s.batch * (A + 4) : S * S * A;
  return s.rounds * (N * steps * perEstimate + S * S * S);
}

export interface PlannedExperiment {
  experiment: Experiment;
  params: ExperimentParams;
  /** The --quick configuration was applied. */
  quick: boolean;
  tasks: RunTask[];
  notes: string[];
  backend: BackendName;
}

/** Resolves the parameters, builds every run and checks it before anything runs (bad values: InputError). */
export async function planExperiment(name: string, overrides: Partial<ExperimentParams> = {}, o: { quick?: boolean } = {}): Promise<PlannedExperiment> {
  const experiment = getExperiment(name);
  const quick = !!o.quick;
  const given = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  const params = experimentParams(experiment, quick ? { ...experiment.quick, ...given } : overrides);
  const backend = await loadBackend(params.backend);
  const { tasks: planned, notes } = experiment.plan(params);
  if (!planned.length) throw new InputError(`the ${name} experiment has no runs with these settings${notes.length ? ` (${notes.join(' ')})` : ''}`);
  const tasks: RunTask[] = planned.map((t, index) => ({ ...t, index, backend: backend.name }));
  for (const t of tasks) resolveSettings(t.settings);
  return { experiment, params, quick, tasks, notes, backend: backend.name };
}

export interface RunExperimentOptions {
  /** Worker threads (1: this thread). */
  threads: number;
  /** The JSONL log to write (header, one line per finished run, end); none when omitted. */
  logPath?: string;
  signal?: AbortSignal;
  /** The command line, recorded in the log's header. */
  command?: string;
  /** Every finished run with the count so far and the cost units done (for a progress bar). */
  onProgress?: (done: { runs: number; cost: number }, run: RunResult) => void;
}

/** The tasks of shard `shard` of a plan (every machine computes the same slices). */
export function shardOf(plan: PlannedExperiment, shard: Shard): RunTask[] {
  const slices = sliceTasks(plan.tasks.map((t) => ({ index: t.index, cost: taskCost(t) })), shard.count);
  const mine = new Set(slices[shard.index]);
  return plan.tasks.filter((t) => mine.has(t.index));
}

/** Runs a planned experiment and returns its log (every run, ordered by index) and summary. */
export async function runPlanned(plan: PlannedExperiment, o: RunExperimentOptions): Promise<{ log: ExperimentLog; summary: ExperimentSummary }> {
  const log = await runLogged(plan, plan.tasks, null, o);
  return { log, summary: summarise(log) };
}

/**
 * Runs shard `shard` of a planned experiment and returns its log (a slice: no summary of its
 * own; `fedpg experiment merge` joins the shards' logs and summarises the whole).
 */
export function runShard(plan: PlannedExperiment, shard: Shard, o: RunExperimentOptions): Promise<ExperimentLog> {
  return runLogged(plan, shardOf(plan, shard), shard, o);
}

/**
 * Runs `tasks` of a plan, writing the log (o.logPath) as each run finishes and, once all are in,
 * rewriting it in its canonical order (log.ts).
 */
async function runLogged(plan: PlannedExperiment, tasks: RunTask[], shard: Shard | null, o: RunExperimentOptions): Promise<ExperimentLog> {
  const started = Date.now();
  const header: ExperimentHeader = {
    type: 'header',
    format: LOG_FORMAT,
    experiment: plan.experiment.name,
    params: plan.params,
    backend: plan.backend,
    threads: o.threads,
    runs: plan.tasks.length,
    version,
    started: new Date(started).toISOString(),
    notes: plan.notes,
  };
  if (o.command !== undefined) header.command = o.command;
  if (plan.quick) header.quick = true;
  if (shard) header.shard = { ...shard, tasks: tasks.map((t) => t.index) };
  // The log lists only the settings the experiment reads (readExperimentLog fills in the rest
  // from its defaults, so the summary is the same).
  const written: ExperimentHeader = { ...header, params: usedParams(plan.experiment, plan.params) };
  const out = o.logPath ? new LineLog(o.logPath) : null;
  const costs = new Map(tasks.map((t) => [t.index, taskCost(t)]));
  let doneRuns = 0, doneCost = 0;
  let log: ExperimentLog;
  try {
    out?.write(written);
    const runOpts: Parameters<typeof runTasks>[1] = {
      threads: o.threads,
      cost: (t) => costs.get(t.index)!,
      onResult: (r) => {
        out?.write(runLine(r));
        doneRuns++;
        doneCost += costs.get(r.index)!;
        o.onProgress?.({ runs: doneRuns, cost: doneCost }, r);
      },
    };
    if (o.signal) runOpts.signal = o.signal;
    const runs = await runTasks(tasks, runOpts);
    const end = { type: 'end' as const, completed: runs.length, seconds: (Date.now() - started) / 1000 };
    out?.write(end);
    log = { header, runs, end };
  } finally {
    out?.close();
  }
  if (o.logPath) writeFileAtomic(o.logPath, experimentLogText(written, log.runs, log.end));
  return log;
}

/** Plans and runs an experiment by name. */
export async function runExperiment(
  name: string,
  overrides: Partial<ExperimentParams>,
  o: RunExperimentOptions & { quick?: boolean },
): Promise<{ log: ExperimentLog; summary: ExperimentSummary }> {
  return runPlanned(await planExperiment(name, overrides, { quick: !!o.quick }), o);
}

/** The parameters an experiment reads (its flags), without the defaults it never uses. */
export function usedParams(e: Experiment, p: ExperimentParams): ExperimentParams {
  return Object.fromEntries(e.params.map((k) => [k, p[k]])) as unknown as ExperimentParams;
}

/**
 * Reads a fedpg-experiment/1 log. A log cut short (Ctrl-C, a crash) is valid: it has no `end`
 * line, and a last line without its newline is ignored (a write torn by the crash).
 */
export function readExperimentLog(path: string): ExperimentLog {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new InputError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const lines = text.split('\n');
  if (!text.endsWith('\n')) lines.pop();
  const parsed = lines.filter((l) => l.trim() !== '').map((l, i) => {
    try {
      return JSON.parse(l) as Record<string, unknown>;
    } catch {
      throw new InputError(`${path}: line ${i + 1} is not JSON`);
    }
  });
  const header = parsed[0] as unknown as ExperimentHeader | undefined;
  if (!header || header.type !== 'header' || header.format !== LOG_FORMAT) throw new InputError(`${path} is not a ${LOG_FORMAT} log (its first line must be the header)`);
  // A header lists the settings the experiment reads; the others are its (unused) defaults.
  header.params = { ...getExperiment(header.experiment).defaults, ...header.params };
  const runs: RunResult[] = [];
  let end: ExperimentLog['end'] = null;
  for (const [i, l] of parsed.slice(1).entries()) {
    if (l.type === 'run') {
      const { type: _t, ...r } = l;
      runs.push(r as unknown as RunResult);
    } else if (l.type === 'end') end = l as unknown as ExperimentLog['end'];
    else throw new InputError(`${path}: line ${i + 2} has an unknown type ${JSON.stringify(l.type)}`);
  }
  runs.sort((a, b) => a.index - b.index);
  return { header, runs, end };
}

/** The summary of a log (a pure function of it: `fedpg plot` gives the same as the run did). */
export function summarise(log: ExperimentLog): ExperimentSummary {
  const e = getExperiment(log.header.experiment);
  const part = e.summarise(log);
  return {
    format: 'fedpg-experiment-summary/1',
    experiment: e.name,
    title: e.title,
    claim: e.claim,
    params: log.header.params,
    backend: log.header.backend,
    runs: { planned: log.header.runs, completed: log.runs.length },
    partial: log.runs.length < log.header.runs,
    columns: e.columns,
    rows: part.rows,
    fits: part.fits.map((f) => ({ ...f, slope: nn(f.slope), intercept: nn(f.intercept), slopeSe: nn(f.slopeSe), r2: nn(f.r2) })),
    findings: part.findings,
    tables: part.tables,
    fixed: e.fixed,
  };
}

function nn(x: number): number {
  return Number.isFinite(x) ? x : (null as unknown as number);
}

export interface DrawnFiles {
  csv: string;
  svg: string;
  html: string;
}

/** Writes NAME.csv, NAME.svg and NAME.html (atomically) into dir, where NAME is `base`. */
export async function drawExperiment(log: ExperimentLog, summary: ExperimentSummary, dir: string, base: string): Promise<DrawnFiles> {
  mkdirSync(dir, { recursive: true });
  const spec = finishChart(getExperiment(summary.experiment).chart(summary, log), { partial: summary.partial, ...summary.runs });
  const svg = await renderSvg(spec);
  const files: DrawnFiles = { csv: join(dir, `${base}.csv`), svg: join(dir, `${base}.svg`), html: join(dir, `${base}.html`) };
  writeFileAtomic(files.csv, toCsv(summary.columns, summary.rows));
  writeFileAtomic(files.svg, svg);
  writeFileAtomic(files.html, htmlPage(summary, log, svg, getExperiment(summary.experiment).params));
  return files;
}

/** Redraws a log: its summary and files beside it (or in `dir`), named after the log. */
export async function plotLog(path: string, dir?: string): Promise<{ summary: ExperimentSummary; files: DrawnFiles }> {
  const log = readExperimentLog(path);
  const summary = summarise(log);
  const base = basename(path).replace(/\.jsonl?$/, '');
  const files = await drawExperiment(log, summary, dir ?? dirname(path), base);
  return { summary, files };
}
