import cliProgress from 'cli-progress';
import type { RoundRecord } from '../federation/train.js';

/** A progress bar on stderr when it is a terminal (round, J, gap, rounds/s, ETA; cli-progress); silent otherwise (and with --json). */
export class Progress {
  private bar: cliProgress.SingleBar | null = null;
  private readonly started = Date.now();

  /** `start`: rounds already done (a resumed run), so rounds/s counts this session's rounds only. */
  constructor(
    label: string,
    total: number,
    enabled: boolean,
    private readonly start = 0,
  ) {
    if (!enabled || !process.stderr.isTTY || total === 0 || start >= total) return;
    this.bar = new cliProgress.SingleBar(
      {
        stream: process.stderr,
        format: `${label} {bar} round {value}/{total} | J {J} | gap {gap} | {rate} rounds/s | ETA {eta_formatted}`,
        hideCursor: true,
        clearOnComplete: true,
      },
      cliProgress.Presets.shades_classic,
    );
    this.bar.start(total, start, { J: '-', gap: '-', rate: '-' });
  }

  update(r: RoundRecord): void {
    if (!this.bar) return;
    const secs = (Date.now() - this.started) / 1000;
    this.bar.update(r.round, {
      J: r.J === null ? 'n/a' : r.J.toFixed(5),
      gap: r.gap === null ? 'n/a' : r.gap.toExponential(2),
      rate: secs > 0 ? ((r.round - this.start) / secs).toFixed(1) : '-',
    });
  }

  stop(): void {
    this.bar?.stop();
    this.bar = null;
  }
}
