import type { Command } from 'commander';
import { plotLog } from '../../experiments/index.js';
import { printJson } from '../flags.js';
import { summaryText } from './experiment.js';

/** fedpg plot LOG: redraws an experiment log (complete or interrupted) into CSV, SVG and HTML. */
export function plotCommand(program: Command): void {
  program
    .command('plot')
    .description('redraw an experiment log (fedpg-experiment/1, complete or partial): its summary, CSV, SVG plot and HTML page')
    .argument('<log>', 'a NAME.jsonl written by fedpg experiment')
    .option('--out <dir>', 'write NAME.csv, NAME.svg and NAME.html here (default: beside the log)')
    .option('--json', 'print the summary as one JSON object')
    .action(async (log: string, o: { out?: string; json?: boolean }) => {
      const { summary, files } = await plotLog(log, o.out);
      const all = { log, ...files };
      if (o.json) return printJson({ ...summary, files: all });
      process.stdout.write(summaryText(summary, all));
    });
}
