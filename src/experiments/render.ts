import type { TopLevelSpec } from 'vega-lite';
import type { ExperimentLog, ExperimentSummary, Row } from './types.js';

/**
 * The outputs drawn from a summary: the plot (vega-lite compiled to vega, rendered to SVG
 * headless), a self-contained HTML page (the SVG inline, the settings and the tables, no script
 * and no network) and the CSV of the summary's rows.
 */

/**
 * Helvetica's advance widths (per 1000 em) by character class. Without a canvas vega estimates
 * every character at 0.8 em, which made the layout (and the SVG) of a plot with a long subtitle
 * almost twice as wide as what it draws; these widths are within a few percent of the real font.
 */
function charWidth(c: string): number {
  if (c >= '0' && c <= '9') return 556;
  if ('ijl|'.includes(c)) return 222;
  if (" .,:;!'ft/[]\I".includes(c)) return 278;
  if ('()-r`"'.includes(c)) return 333;
  if ('mMW'.includes(c)) return c === 'W' ? 944 : 833;
  if (c === 'w') return 722;
  if (c >= 'A' && c <= 'Z') return 690;
  if (c >= 'a' && c <= 'z') return 530;
  return 584;
}

/** The width in pixels of `text` (the widest line) at `fontSize`, in Helvetica. */
export function textWidth(text: unknown, fontSize: number): number {
  const lines = Array.isArray(text) ? text.map(String) : [String(text ?? '')];
  let widest = 0;
  for (const line of lines) {
    let w = 0;
    for (const c of line) w += charWidth(c);
    // 15% to spare: fonts that stand in for Helvetica (Arial, DejaVu Sans) run a little wider.
    widest = Math.max(widest, (1.15 * w * fontSize) / 1000);
  }
  return Math.ceil(widest);
}

/** Renders a vega-lite specification to an SVG string in Node (no canvas: the 'none' renderer). */
export async function renderSvg(spec: Record<string, unknown>): Promise<string> {
  // Loaded on first use: the CLI's other commands should not pay for the plotting libraries.
  const [vega, { compile }] = await Promise.all([import('vega'), import('vega-lite')]);
  // vega calls a user-defined width with (item, text) and uses it for layout (bounds, legends, titles).
  ((vega as unknown as { textMetrics: unknown }).textMetrics as { width: (item: { fontSize?: number; text?: unknown }, text?: unknown) => number }).width = (item, text) =>
    textWidth(text ?? item.text, item.fontSize ?? 11);
  // Warnings (e.g. layout optimisation notes) are not the user's concern: only errors would matter, and they throw.
  const quiet = vega.logger(vega.None);
  const compiled = compile(spec as unknown as TopLevelSpec, { logger: quiet }).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none', logger: quiet });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

function csvField(v: string | number | null | undefined): string {
  if (v === null || v === undefined) return '';
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** The summary's rows as CSV (header = summary.columns; empty field = no value). */
export function toCsv(columns: string[], rows: Row[]): string {
  const lines = [columns.map(csvField).join(',')];
  for (const r of rows) lines.push(columns.map((c) => csvField(r[c])).join(','));
  return lines.join('\n') + '\n';
}

export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function cell(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5 ? v.toExponential(3) : v.toPrecision(4);
  if (Array.isArray(v)) return v.map((x) => cell(x)).join(', ');
  return String(v);
}

export function table(columns: string[], rows: Row[]): string {
  const head = `<tr>${columns.map((c) => `<th>${esc(c)}</th>`).join('')}</tr>`;
  const body = rows.map((r) => `<tr>${columns.map((c) => `<td>${esc(cell(r[c]))}</td>`).join('')}</tr>`).join('\n');
  return `<table>\n<thead>${head}</thead>\n<tbody>\n${body}\n</tbody>\n</table>`;
}

/** The HTML page: title, claim, plot, findings, settings, fits and tables. Self-contained. */
export function htmlPage(summary: ExperimentSummary, log: ExperimentLog, svg: string, reads: readonly string[]): string {
  const h = log.header;
  const settings: Row[] = [
    { setting: 'experiment', value: summary.experiment },
    // The settings the experiment reads (the others are unused defaults).
    ...Object.entries(summary.params)
      .filter(([k]) => reads.includes(k))
      .map(([k, v]) => ({ setting: k, value: Array.isArray(v) ? v.join(', ') : String(v) })),
    ...(h.quick ? [{ setting: 'configuration', value: '--quick (the smaller configuration: direction, not final numbers)' }] : []),
    ...Object.entries(summary.fixed).map(([k, v]) => ({ setting: `${k} (fixed)`, value: String(v) })),
    { setting: 'backend', value: summary.backend },
    { setting: 'threads', value: h.threads },
    { setting: 'runs', value: `${summary.runs.completed} of ${summary.runs.planned}${summary.partial ? ' (partial log: interrupted)' : ''}` },
    { setting: 'fedpg version', value: h.version },
    { setting: 'started', value: h.started },
    ...(log.end ? [{ setting: 'wall time (s)', value: log.end.seconds }] : []),
    ...(h.command ? [{ setting: 'command', value: h.command }] : []),
  ];
  const fits: Row[] = summary.fits.map((f) => ({
    fit: f.label,
    slope: f.slope,
    'slope s.e.': f.slopeSe,
    '95% bootstrap': f.ci ? `[${cell(f.ci[0])}, ${cell(f.ci[1])}]` : '',
    'R^2': f.r2,
    points: f.n,
  }));
  const parts = [
    '<!DOCTYPE html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<title>fedpg experiment ${esc(summary.experiment)}</title>`,
    '<style>body{font-family:Helvetica,Arial,sans-serif;margin:2em;max-width:1400px;color:#222}table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f4f4f4}.plot{overflow-x:auto}.partial{color:#b00;font-weight:bold}li{margin:.3em 0}</style>',
    '</head><body>',
    `<h1>${esc(summary.title)}</h1>`,
    `<p>${esc(summary.claim)}</p>`,
    summary.partial ? `<p class="partial">Partial log: ${summary.runs.completed} of ${summary.runs.planned} runs finished.</p>` : '',
    `<div class="plot">${svg}</div>`,
    '<h2>Findings</h2>',
    `<ul>${summary.findings.map((f) => `<li>${esc(f)}</li>`).join('\n')}</ul>`,
    ...summary.tables.map((t) => `<h2>${esc(t.title)}</h2>\n${table(t.columns, t.rows)}`),
    '<h2>Settings</h2>',
    table(['setting', 'value'], settings),
    h.notes.length ? `<p>Notes: ${h.notes.map(esc).join(' ')}</p>` : '',
    fits.length ? `<h2>Fits</h2>\n${table(['fit', 'slope', 'slope s.e.', '95% bootstrap', 'R^2', 'points'], fits)}` : '',
    '<h2>Summary rows (the CSV)</h2>',
    table(summary.columns, summary.rows),
    '</body></html>',
  ];
  return parts.filter((p) => p !== '').join('\n') + '\n';
}
