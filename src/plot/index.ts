import { existsSync, mkdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { cell, esc, renderSvg, table, toCsv } from '../experiments/render.js';
import type { Row } from '../experiments/types.js';
import { writeFileAtomic } from '../util/atomic.js';
import { caption, runChart, SERIES_COLUMNS, seriesRows } from './runchart.js';
import { readRunLog, type RunLog } from './runlog.js';
import { buildSeries, type Series } from './series.js';

/**
 * `fedpg plot` of round logs (fedpg-log/1 from train, run and serve): the series, a CSV of the
 * plotted points, the SVG and a self-contained HTML page (the SVG inline, no script).
 */

export { logFormat, readRunLog, RUN_LOG_FORMAT, type RunLog } from './runlog.js';
export { buildSeries, type Series } from './series.js';

export interface RunPlotFiles extends Record<string, string> {
  csv: string;
  svg: string;
  html: string;
}

/** One line per series for --json and the text report. */
export interface SeriesSummary {
  label: string;
  algorithm: string;
  logs: string[];
  seeds: (number | null)[];
  rounds: number;
  plannedRounds: number;
  partial: boolean;
  final: { J: number | null; Jse: number | null; gap: number | null; gapSe: number | null; trajectories: number | null; bytes: number | null };
}

export function summariseSeries(s: Series): SeriesSummary {
  const p = s.points[s.points.length - 1]!;
  return {
    label: s.label,
    algorithm: s.algorithm,
    logs: s.logs,
    seeds: s.seeds,
    rounds: s.rounds,
    plannedRounds: s.plannedRounds,
    partial: s.partial,
    final: { J: p.J, Jse: p.Jse, gap: p.gap, gapSe: p.gapSe, trajectories: p.trajectories, bytes: p.bytes },
  };
}

function htmlPage(title: string, series: Series[], logs: RunLog[], svg: string): string {
  const summary: Row[] = series.map((s) => {
    const f = summariseSeries(s).final;
    const pm = (m: number | null, se: number | null): string => (m === null ? 'n/a' : se === null ? cell(m) : `${cell(m)} ± ${cell(se)}`);
    return {
      series: s.label,
      logs: s.logs.map((l) => basename(l)).join(', '),
      rounds: `${s.rounds} of ${s.plannedRounds}${s.partial ? ' (partial)' : ''}`,
      'final J': pm(f.J, f.Jse),
      'final gap': pm(f.gap, f.gapSe),
      trajectories: f.trajectories,
      bytes: f.bytes,
    };
  });
  const settings: Row[] = logs.map((l) => ({
    log: l.path,
    algorithm: l.header.algorithm,
    backend: l.header.backend ?? 'n/a (network)',
    'J*': l.header.Jstar,
    settings: Object.entries(l.header.settings)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(', '),
  }));
  const partial = series.some((s) => s.partial);
  return [
    '<!DOCTYPE html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<title>${esc(title)}</title>`,
    '<style>body{font-family:Helvetica,Arial,sans-serif;margin:2em;max-width:1400px;color:#222}table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f4f4f4}.plot{overflow-x:auto}.partial{color:#b00;font-weight:bold}</style>',
    '</head><body>',
    `<h1>${esc(title)}</h1>`,
    partial ? `<p class="partial">Partial log: ${series.filter((s) => s.partial).map((s) => `${esc(s.label)} has ${s.rounds} of ${s.plannedRounds} rounds`).join('; ')}.</p>` : '',
    `<p>${caption(series).filter((l) => !l.startsWith('PARTIAL')).map(esc).join(' ')}</p>`,
    `<div class="plot">${svg}</div>`,
    '<h2>Series</h2>',
    table(['series', 'logs', 'rounds', 'final J', 'final gap', 'trajectories', 'bytes'], summary),
    '<h2>Settings of each log</h2>',
    table(['log', 'algorithm', 'backend', 'J*', 'settings'], settings),
    '</body></html>',
  ]
    .filter((p) => p !== '')
    .join('\n') + '\n';
}

export interface PlotRunOptions {
  /** Output directory (default: the first log's). */
  dir?: string;
  /** File name stem (default: the log's name for one log, else "plot"). */
  name?: string;
  title?: string;
}

/** Reads the logs, groups them into series and writes NAME.csv, NAME.svg and NAME.html. */
export async function plotRunLogs(paths: string[], o: PlotRunOptions = {}): Promise<{ series: SeriesSummary[]; files: RunPlotFiles }> {
  const logs = paths.map(readRunLog);
  const series = buildSeries(logs);
  const dir = o.dir ?? dirname(paths[0]!);
  const name = o.name ?? (paths.length === 1 ? basename(paths[0]!).replace(/\.jsonl?$/, '') : 'plot');
  const title = o.title ?? `fedpg: ${series.map((s) => s.label).join(' vs ')}`;
  const svg = await renderSvg(runChart(series, title));
  mkdirSync(dir, { recursive: true });
  const files: RunPlotFiles = { csv: join(dir, `${name}.csv`), svg: join(dir, `${name}.svg`), html: join(dir, `${name}.html`) };
  writeFileAtomic(files.csv, toCsv(SERIES_COLUMNS, seriesRows(series)));
  writeFileAtomic(files.svg, svg);
  writeFileAtomic(files.html, htmlPage(title, series, logs, svg));
  return { series: series.map(summariseSeries), files };
}

/**
 * After Ctrl-C (an error whose message starts with "interrupted"): plots the logs this session
 * wrote (modified since `since`; the interrupted one is marked partial) and returns the error
 * with the plot's path added. Any other error, or nothing to plot, is returned as it is.
 */
export async function withPartialPlot(e: unknown, logs: string[], since: number, o: PlotRunOptions): Promise<unknown> {
  if (!(e instanceof Error) || !e.message.startsWith('interrupted')) return e;
  const ours = logs.filter((l) => existsSync(l) && statSync(l).mtimeMs >= since);
  if (!ours.length) return e;
  try {
    const { files } = await plotRunLogs(ours, o);
    return new Error(`${e.message}; their plot (marked partial): ${files.svg}`);
  } catch {
    return e;
  }
}
