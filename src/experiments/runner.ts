import { setMaxListeners } from 'node:events';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { runTask, type RunResult, type RunTask } from './task.js';

/**
 * Runs an experiment's tasks: in this thread (threads = 1) or on a piscina pool of worker threads,
 * one task per run. Every run is deterministic in its task, so the results (ordered by task
 * index) are the same for any number of threads; only the order of onResult calls and the wall
 * times differ.
 */

export interface RunnerOptions {
  /** 1: in this thread; more: a pool of that many worker threads. */
  threads: number;
  /** Aborting stops new runs and terminates the running ones; the promise then rejects. */
  signal?: AbortSignal;
  /** Every finished run, in completion order (write it to the log here). */
  onResult?: (result: RunResult) => void;
  /** Relative cost of a task, to start the longest runs first (any order gives the same results). */
  cost?: (task: RunTask) => number;
}

/** The compiled worker entry beside this module (dist/experiments/worker.js; from src/ the built copy). */
export function workerScript(): URL {
  const here = import.meta.url;
  const url = here.endsWith('.ts') ? new URL('../../dist/experiments/worker.js', here) : new URL('./worker.js', here);
  if (!existsSync(fileURLToPath(url))) {
    throw new Error(`the experiment worker ${fileURLToPath(url)} is missing: build the package (npm run build), or use one thread`);
  }
  return url;
}

export async function runTasks(tasks: RunTask[], o: RunnerOptions): Promise<RunResult[]> {
  if (!Number.isSafeInteger(o.threads) || o.threads < 1) throw new Error(`threads must be an integer >= 1, got ${o.threads}`);
  const order = o.cost ? [...tasks].sort((a, b) => o.cost!(b) - o.cost!(a) || a.index - b.index) : tasks;
  const results: RunResult[] = [];
  const done = (r: RunResult): void => {
    results.push(r);
    o.onResult?.(r);
  };
  if (o.threads === 1 || tasks.length <= 1) {
    for (const t of order) {
      await new Promise((r) => setImmediate(r)); // lets a Ctrl-C handler run between runs
      o.signal?.throwIfAborted();
      done(await runTask(t, o.signal));
    }
  } else {
    const threads = Math.min(o.threads, tasks.length);
    const pool = new Piscina({ filename: workerScript().href, minThreads: threads, maxThreads: threads, idleTimeout: 1000 });
    // One controller for every queued task: the caller's abort, or the first failure, stops them all.
    const stop = new AbortController();
    setMaxListeners(0, stop.signal);
    const onAbort = (): void => stop.abort(o.signal!.reason);
    o.signal?.addEventListener('abort', onAbort, { once: true });
    let failure: unknown = null;
    try {
      await Promise.all(
        order.map((t) =>
          (pool.run(t, { signal: stop.signal }) as Promise<RunResult>).then(done, (e: unknown) => {
            if (failure === null) failure = stop.signal.aborted && o.signal?.aborted ? o.signal.reason : e;
            if (!stop.signal.aborted) stop.abort(e);
          }),
        ),
      );
    } finally {
      o.signal?.removeEventListener('abort', onAbort);
      await pool.destroy();
    }
    if (failure !== null) throw failure;
  }
  return results.sort((a, b) => a.index - b.index);
}
