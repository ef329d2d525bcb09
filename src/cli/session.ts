import type { BackendChoice } from '../backends/types.js';
import type { TrainSettings } from '../federation/settings.js';
import { train, type TrainOptions, type TrainResult } from '../federation/train.js';
import type { Mdp } from '../mdp/model.js';
import { LineLog } from '../util/atomic.js';
import { Progress } from './progress.js';

/**
 * One training run as the CLI performs it: the round log (a header line, then one record per
 * finished round, so a partial log is valid), the progress bar, and Ctrl-C, which stops after
 * the current round and keeps every finished one in the log.
 */
export async function trainWithLog(
  mdp: Mdp,
  settings: Partial<TrainSettings>,
  o: { backend?: BackendChoice; theta0?: Float64Array; out?: string; progress: boolean; label: string },
): Promise<TrainResult> {
  const log = o.out ? new LineLog(o.out) : null;
  const controller = new AbortController();
  const onSigint = (): void => controller.abort(new Error('interrupted (Ctrl-C); the log holds every finished round'));
  process.once('SIGINT', onSigint);
  const progress = new Progress(o.label, settings.rounds ?? 0, o.progress);
  try {
    const opts: TrainOptions = {
      ...settings,
      signal: controller.signal,
      onStart: (h) => log?.write({ type: 'header', format: 'fedpg-log/1', ...h }),
      onRecord: (r) => {
        log?.write(r);
        progress.update(r);
      },
    };
    if (o.backend !== undefined) opts.backend = o.backend;
    if (o.theta0 !== undefined) opts.theta0 = o.theta0;
    return await train(mdp, opts);
  } finally {
    progress.stop();
    process.removeListener('SIGINT', onSigint);
    log?.close();
  }
}
