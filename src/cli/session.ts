import type { BackendChoice } from '../backends/types.js';
import { InputError } from '../errors.js';
import { AgentFailure } from '../federation/faults.js';
import type { TrainSettings } from '../federation/settings.js';
import { train, type RoundRecord, type TrainHeader, type TrainOptions, type TrainResult } from '../federation/train.js';
import type { WorkersChoice } from '../federation/workers/plan.js';
import type { Mdp } from '../mdp/model.js';
import { LineLog, writeFileAtomic } from '../util/atomic.js';
import { FileLock } from '../util/lock.js';
import { Progress } from './progress.js';

/**
 * One training run as the CLI performs it: the round log (a header line, then one record per
 * finished round, so a partial log is valid), the progress bar, checkpoints, and Ctrl-C, which
 * stops the run (every worker thread included), keeps every finished round in the log and saves
 * a checkpoint of the last one when checkpointing.
 */

export interface RuntimeFlags {
  workers?: WorkersChoice;
  retry?: number;
  roundTimeout?: number;
  checkpoint?: string;
  checkpointEvery?: number;
  fresh?: boolean;
  /** The evaluation cadence (--eval-every R|auto). */
  evalEvery?: number | 'auto';
}

export interface SessionOptions extends RuntimeFlags {
  backend?: BackendChoice;
  theta0?: Float64Array;
  out?: string;
  progress: boolean;
  label: string;
}

export interface SessionResult {
  result: TrainResult;
  /** Threads that ran the agents (1: in-process) and why. */
  workers: number;
  workersWhy: string;
  /** The round a checkpoint resumed from, or null. */
  resumedAt: number | null;
}

/**
 * The round log: claimed (FILE.lock) when the run is set up, so a second run given the same file
 * is refused instead of replacing it under this one; rewritten whole (atomically) when the run
 * starts or resumes, so it holds exactly the header and the finished rounds; then appended one
 * fsynced line per round (a line a full disk cuts short is taken back: see LineLog).
 */
class RoundLog {
  private lines: LineLog | null = null;
  private readonly lock: FileLock;
  constructor(readonly path: string) {
    this.lock = FileLock.acquire(path, '--out');
  }

  start(header: TrainHeader, records: RoundRecord[]): void {
    const lines = [JSON.stringify({ type: 'header', format: 'fedpg-log/1', ...header }), ...records.map((r) => JSON.stringify(r))];
    writeFileAtomic(this.path, lines.join('\n') + '\n');
    this.lines = new LineLog(this.path, { append: true });
  }

  write(r: RoundRecord): void {
    this.lines?.write(r);
  }

  close(): void {
    this.lines?.close();
    this.lines = null;
    this.lock.release();
  }
}

const info = (m: string): void => {
  process.stderr.write(`fedpg: ${m}\n`);
};

export async function trainWithLog(mdp: Mdp, settings: Partial<TrainSettings>, o: SessionOptions): Promise<SessionResult> {
  const log = o.out ? new RoundLog(o.out) : null;
  const controller = new AbortController();
  const onSigint = (): void => controller.abort(new Error('interrupted (Ctrl-C); the log holds every finished round'));
  process.once('SIGINT', onSigint);
  let progress: Progress | null = null;
  let resumedAt: number | null = null;
  let workers = 1;
  let workersWhy = 'in-process';
  try {
    const opts: TrainOptions = {
      ...settings,
      signal: controller.signal,
      onInfo: info,
      onRuntime: (r) => {
        workers = r.workers;
        workersWhy = r.why;
      },
      onStart: (h, resumed) => {
        resumedAt = resumed ? resumed.round : null;
        log?.start(h, resumed ? resumed.records : []);
        progress = new Progress(o.label, settings.rounds ?? 0, o.progress, resumedAt ?? 0);
      },
      onRecord: (r) => {
        log?.write(r);
        progress?.update(r);
      },
    };
    if (o.backend !== undefined) opts.backend = o.backend;
    if (o.theta0 !== undefined) opts.theta0 = o.theta0;
    if (o.workers !== undefined) opts.workers = o.workers;
    if (o.retry !== undefined) opts.retry = o.retry;
    if (o.roundTimeout !== undefined) opts.roundTimeout = o.roundTimeout;
    if (o.evalEvery !== undefined) opts.evalEvery = o.evalEvery;
    if (o.checkpoint) opts.checkpoint = { path: o.checkpoint, every: o.checkpointEvery ?? 10, fresh: o.fresh ?? false };
    const result = await train(mdp, opts);
    return { result, workers, workersWhy, resumedAt };
  } catch (e) {
    // A failed agent is not a bug of fedpg: one line and exit 1, like bad input.
    if (e instanceof AgentFailure) throw new InputError(e.message);
    throw e;
  } finally {
    (progress as Progress | null)?.stop();
    process.removeListener('SIGINT', onSigint);
    log?.close();
  }
}
