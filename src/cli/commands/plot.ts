import type { Command } from 'commander';
import { InputError, UsageError } from '../../errors.js';
import { LOG_FORMAT, plotLog } from '../../experiments/index.js';
import { logFormat, plotRunLogs, RUN_LOG_FORMAT, type SeriesSummary } from '../../plot/index.js';
import { printJson } from '../flags.js';
import { summaryText } from './experiment.js';

/**
 * fedpg plot LOG [MORE ...]: an experiment log (fedpg-experiment/1) is redrawn into its summary,
 * CSV, SVG and HTML; round logs (fedpg-log/1, from train, run and serve) are overlaid, one
 * series per configuration (seeds of one configuration: mean and a standard-error band).
 */

function fmt(v: number | null): string {
  return v === null ? 'n/a' : Math.abs(v) !== 0 && Math.abs(v) < 1e-3 ? v.toExponential(3) : v.toFixed(6);
}

export function seriesText(series: SeriesSummary[], files: Record<string, string>): string {
  const lines = series.map((s) => {
    const f = s.final;
    const pm = (m: number | null, se: number | null): string => (se === null ? fmt(m) : `${fmt(m)} ± ${fmt(se)}`);
    return `${s.label}: round ${s.rounds}${s.partial ? ` of ${s.plannedRounds} (partial log)` : ''}, J ${pm(f.J, f.Jse)}, gap ${pm(f.gap, f.gapSe)}`;
  });
  lines.push(...Object.entries(files).map(([k, v]) => `${k}: ${v}`));
  return lines.join('\n') + '\n';
}

export function plotCommand(program: Command): void {
  program
    .command('plot')
    .description(
      'draw logs: round logs of train, run and serve (fedpg-log/1, one or several overlaid: J and the gap against rounds, trajectories and bytes; seeds of one configuration as mean and standard-error band), or redraw an experiment log (fedpg-experiment/1, complete or partial); writes CSV, SVG and HTML',
    )
    .argument('<logs...>', 'round logs (train --out, run, serve --out) or one NAME.jsonl of fedpg experiment')
    .option('--out <dir>', 'write the CSV, SVG and HTML here (default: beside the first log)')
    .option('--name <stem>', 'file names of round-log plots: STEM.csv, STEM.svg, STEM.html (default: the log\'s name, or "plot" for several logs)')
    .option('--title <text>', 'title of a round-log plot (default: the series)')
    .option('--json', 'print the summary as one JSON object')
    .action(async (logs: string[], o: { out?: string; name?: string; title?: string; json?: boolean }) => {
      for (const l of logs) {
        const f = logFormat(l);
        if (f !== LOG_FORMAT && f !== RUN_LOG_FORMAT) throw new InputError(`${l} is neither a ${RUN_LOG_FORMAT} round log nor a ${LOG_FORMAT} experiment log (its first line must be the header of one${f ? `, not ${f}` : ''})`);
      }
      if (logFormat(logs[0]!) === LOG_FORMAT) {
        if (logs.length > 1) throw new UsageError('plot takes one experiment log at a time (several round logs may be overlaid)');
        if (o.name !== undefined || o.title !== undefined) throw new UsageError('--name and --title apply to round logs; an experiment log is drawn as NAME.*');
        const { summary, files } = await plotLog(logs[0]!, o.out);
        const all = { log: logs[0]!, ...files };
        if (o.json) return printJson({ ...summary, files: all });
        process.stdout.write(summaryText(summary, all));
        return;
      }
      const opts: Parameters<typeof plotRunLogs>[1] = {};
      if (o.out !== undefined) opts.dir = o.out;
      if (o.name !== undefined) opts.name = o.name;
      if (o.title !== undefined) opts.title = o.title;
      const { series, files } = await plotRunLogs(logs, opts);
      if (o.json) return printJson({ format: 'fedpg-plot-summary/1', logs, series, files });
      process.stdout.write(seriesText(series, files));
    });
}
