import { CHART_CONFIG, fmt, groupRuns, inOrder, methodColours, num, SCHEMA, spread } from './common.js';
import type { RunResult } from './task.js';
import type { Row } from './types.js';

/**
 * "A final number against a swept setting" (gap against F, P, LAMBDA, epsilon, ...): the rows
 * (mean +- s.e. over seeds per series and x) and the plot (every seed faint, mean +- s.e., a line
 * through the means). Shared by the byzantine, participation, personalization and privacy
 * experiments.
 */

export const SWEEP_COLUMNS = ['seeds', 'mean', 'se', 'median', 'q25', 'q75', 'min', 'max'];

/**
 * One row per (series, x): `series` names the grouping fields of a run (copied into the row),
 * `x` its swept value, `value` the number measured (runs where it is null are left out).
 */
export function sweepRows(
  runs: RunResult[],
  series: (r: RunResult) => Record<string, string | number>,
  x: (r: RunResult) => number | string,
  value: (r: RunResult) => number | null | undefined,
  xName = 'x',
): Row[] {
  const rows: Row[] = [];
  for (const [, group] of groupRuns(runs, (r) => JSON.stringify([series(r), x(r)]))) {
    const vals = group.map(value).filter((v): v is number => v !== null && v !== undefined && Number.isFinite(v));
    const s = spread(vals);
    rows.push({ ...series(group[0]!), [xName]: x(group[0]!), seeds: s.n, mean: num(s.mean), se: num(s.se), median: num(s.median), q25: num(s.q25), q75: num(s.q75), min: num(s.min), max: num(s.max) });
  }
  return rows;
}

/** "label: a (s.e. b) at x1 / ... " for a finding. */
export function sweepLine(rows: Row[], xName: string, label: string): string {
  return `${label}: ${rows.map((r) => `${fmt(r.mean as number)}${r.se !== null && r.seeds !== 1 ? ` ± ${fmt(r.se as number, 2)}` : ''} at ${xName} = ${r[xName]}`).join('; ')}`;
}

export interface SweepChartOptions {
  title: string;
  subtitle: string[];
  /** The row field plotted along x, and its title. */
  x: string;
  xTitle: string;
  xLog?: boolean;
  /** Points at x = 0 on a log axis are drawn at this value instead. */
  xZeroAt?: number;
  yTitle: string;
  yLog?: boolean;
  /** Colour field (default method). */
  colour?: string;
  /** Stroke-dash field (a second series dimension). */
  dash?: string;
  facetColumn?: string;
  facetRow?: string;
  /** Per-seed values: (run) -> { fields of the row it belongs to, value }. */
  seedPoints?: { run: RunResult; fields: Record<string, unknown>; value: number | null | undefined }[];
  /** Horizontal reference lines (e.g. the local-only and global-only levels), drawn in grey with a label. */
  references?: { fields: Record<string, unknown>; label: string; value: number }[];
}

/** The vega-lite plot of sweep rows (mean +- s.e. with lines, seeds faint). */
export function sweepChart(rows: Row[], o: SweepChartOptions): Record<string, unknown> {
  const colour = o.colour ?? 'method';
  const xOf = (v: unknown): number | unknown => (o.xLog && v === 0 && o.xZeroAt !== undefined ? o.xZeroAt : v);
  const keep = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v) && (!o.yLog || v > 0);
  const data: Record<string, unknown>[] = [];
  for (const r of rows) {
    if (!keep(r.mean)) continue;
    const m = r.mean as number, se = (r.se as number | null) ?? 0;
    data.push({ ...r, kind: 'mean', px: xOf(r[o.x]), y: m, lo: o.yLog ? Math.max(m - se, m / 20) : m - se, hi: m + se });
  }
  for (const p of o.seedPoints ?? []) if (keep(p.value)) data.push({ ...p.fields, kind: 'seed', px: xOf(p.fields[o.x]), y: p.value });
  for (const ref of o.references ?? []) if (keep(ref.value)) data.push({ ...ref.fields, kind: 'reference', reference: ref.label, y: ref.value });
  const colours = methodColours(rows.map((r) => String(r[colour])));
  const x = { field: 'px', type: 'quantitative', title: o.xTitle, scale: o.xLog ? { type: 'log' } : { zero: false } };
  const y = { field: 'y', type: 'quantitative', title: o.yTitle, scale: o.yLog ? { type: 'log' } : { zero: false } };
  const color = { field: colour, type: 'nominal', scale: colours, title: colour };
  const dash = o.dash ? { strokeDash: { field: o.dash, type: 'nominal', title: o.dash, sort: inOrder(rows.map((r) => r[o.dash!])) } } : {};
  const layer: Record<string, unknown>[] = [
    { transform: [{ filter: "datum.kind === 'seed'" }], mark: { type: 'point', filled: true, size: 12, opacity: 0.2 }, encoding: { x, y, color } },
    { transform: [{ filter: "datum.kind === 'mean'" }], mark: { type: 'rule', strokeWidth: 1.4 }, encoding: { x, y: { ...y, field: 'lo' }, y2: { field: 'hi' }, color } },
    { transform: [{ filter: "datum.kind === 'mean'" }], mark: { type: 'line', strokeWidth: 1.6, point: { filled: true, size: 30 } }, encoding: { x, y, color, ...dash, detail: { field: colour } } },
  ];
  if (o.references?.length)
    layer.push(
      { transform: [{ filter: "datum.kind === 'reference'" }], mark: { type: 'rule', color: '#888', strokeDash: [3, 3] }, encoding: { y } },
      { transform: [{ filter: "datum.kind === 'reference'" }], mark: { type: 'text', align: 'left', dx: 3, dy: -5, fontSize: 9, color: '#555' }, encoding: { y, x: { value: 0 }, text: { field: 'reference' } } },
    );
  const spec: Record<string, unknown> = { width: 300, height: 220, layer };
  const facet: Record<string, unknown> = {};
  if (o.facetColumn) facet.column = { field: o.facetColumn, type: 'nominal', title: null, sort: inOrder(rows.map((r) => r[o.facetColumn!])) };
  if (o.facetRow) facet.row = { field: o.facetRow, type: 'nominal', title: null, sort: inOrder(rows.map((r) => r[o.facetRow!])) };
  const base = { $schema: SCHEMA, title: { text: o.title, subtitle: o.subtitle }, data: { values: data }, config: CHART_CONFIG };
  if (!o.facetColumn && !o.facetRow) return { ...base, ...spec };
  return { ...base, facet, spec, resolve: { scale: { y: 'independent' } } };
}
