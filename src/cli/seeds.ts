import { setMaxListeners } from 'node:events';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import cliProgress from 'cli-progress';
import { Piscina } from 'piscina';
import { loadBackend } from '../backends/select.js';
import type { BackendChoice, BackendName } from '../backends/types.js';
import { InputError } from '../errors.js';
import type { TrainSettings } from '../federation/settings.js';
import type { TrainResult } from '../federation/train.js';
import type { WorkersChoice } from '../federation/workers/plan.js';
import type { Mdp } from '../mdp/model.js';
import { trainWithLog, type SessionOptions } from './session.js';

/**
 * `--seeds N` of train and run: the same configuration with seeds S, S+1, ..., S+N-1 (and, when
 * a server seed Z is set, server seeds Z, Z+1, ...), one in-process training run per seed, run in
 * parallel on a piscina pool of worker threads (or one after another in this thread). Every run
 * depends on its settings alone, so the results do not depend on the number of threads. Each run
 * writes its own round log (LOG with `.seedS` before the extension); the summary is the mean and
 * the standard error of the mean over the seeds.
 */

/** One seed's run: plain, structured-cloneable data (it crosses to a pool thread). */
export interface SeedTask {
  index: number;
  mdp: Mdp;
  settings: Partial<TrainSettings>;
  backend: BackendName;
  theta0?: Float64Array;
  out?: string;
  checkpoint?: string;
  checkpointEvery?: number;
  fresh?: boolean;
}

export interface SeedTaskResult {
  index: number;
  result: TrainResult;
}

/** LOG with the seed before the extension: run.jsonl -> run.seed3.jsonl, ck -> ck.seed3. */
export function pathForSeed(path: string, seed: number): string {
  const ext = extname(path);
  return ext ? `${path.slice(0, -ext.length)}.seed${seed}${ext}` : `${path}.seed${seed}`;
}

/** The settings of the k-th seed: seed S + k, and server seed Z + k when Z is set. */
export function seedSettings<T extends Partial<TrainSettings>>(settings: T, k: number): T {
  const s = { ...settings, seed: (settings.seed ?? 0) + k } as T & { serverSeed?: number };
  const z = (settings as { serverSeed?: number }).serverSeed;
  if (z !== undefined) s.serverSeed = z + k;
  return s;
}

/** One seed's run (in a pool thread or this one): its agents in-process, its log written as it goes. */
export async function trainSeedTask(t: SeedTask): Promise<SeedTaskResult> {
  const o: SessionOptions = { progress: false, label: `seed ${t.settings.seed ?? 0}`, backend: t.backend, workers: 1 };
  if (t.theta0) o.theta0 = t.theta0;
  if (t.out) o.out = t.out;
  if (t.checkpoint) {
    o.checkpoint = t.checkpoint;
    if (t.checkpointEvery !== undefined) o.checkpointEvery = t.checkpointEvery;
    if (t.fresh) o.fresh = true;
  }
  const { result } = await trainWithLog(t.mdp, t.settings, o);
  return { index: t.index, result };
}

function workerScript(): URL {
  const here = import.meta.url;
  const url = here.endsWith('.ts') ? new URL('../../dist/cli/seeds-worker.js', here) : new URL('./seeds-worker.js', here);
  if (!existsSync(fileURLToPath(url))) throw new Error(`the seeds worker ${fileURLToPath(url)} is missing: build the package (npm run build), or use --workers 1`);
  return url;
}

export interface SeedRunOptions {
  /** Threads running seeds: a count (1: this thread) or 'auto' (the cores, at most one per run). */
  workers: WorkersChoice;
  backend?: BackendChoice;
  progress: boolean;
  label: string;
}

/** The threads for `runs` runs: auto = the available cores, never more threads than runs. */
export function seedThreads(workers: WorkersChoice, runs: number): number {
  const want = workers === 'auto' ? availableParallelism() : workers;
  return Math.max(1, Math.min(want, runs));
}

/** Resolves a backend choice once (so every thread uses the same one) and checks --seeds. */
export async function seedBackend(choice: BackendChoice | undefined): Promise<BackendName> {
  return (await loadBackend(choice)).name;
}

export function parseSeedCount(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isSafeInteger(n) || n < 1) throw new InputError(`--seeds must be an integer >= 1, got '${v}'`);
  return n;
}

/** Runs the tasks (results in task order) on `threads` threads, with a bar over runs on a terminal. */
export async function runSeedTasks(tasks: SeedTask[], o: SeedRunOptions): Promise<TrainResult[]> {
  const threads = seedThreads(o.workers, tasks.length);
  const results: TrainResult[] = new Array<TrainResult>(tasks.length);
  const bar = o.progress && process.stderr.isTTY ? new cliProgress.SingleBar({ stream: process.stderr, format: `${o.label} {bar} run {value}/{total} | ETA {eta_formatted}`, hideCursor: true, clearOnComplete: true }, cliProgress.Presets.shades_classic) : null;
  bar?.start(tasks.length, 0);
  let done = 0;
  const finish = (r: SeedTaskResult): void => {
    results[r.index] = r.result;
    bar?.update(++done);
  };
  try {
    if (threads === 1) {
      for (const t of tasks) finish(await trainSeedTask(t));
      return results;
    }
    const pool = new Piscina({ filename: workerScript().href, minThreads: threads, maxThreads: threads, idleTimeout: 1000 });
    const stop = new AbortController();
    setMaxListeners(0, stop.signal);
    const onSigint = (): void => stop.abort(new Error('interrupted (Ctrl-C); every seed\'s log holds its finished rounds'));
    process.once('SIGINT', onSigint);
    let failure: unknown = null;
    try {
      await Promise.all(
        tasks.map((t) =>
          (pool.run(t, { signal: stop.signal }) as Promise<SeedTaskResult>).then(finish, (e: unknown) => {
            if (failure === null) failure = stop.signal.aborted ? stop.signal.reason : e;
            if (!stop.signal.aborted) stop.abort(e);
          }),
        ),
      );
    } finally {
      process.removeListener('SIGINT', onSigint);
      await pool.destroy();
    }
    if (failure !== null) throw failure;
    return results;
  } finally {
    bar?.stop();
  }
}
