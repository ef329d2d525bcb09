import { CHART_CONFIG, methodColours, SCHEMA } from '../experiments/common.js';
import type { Row } from '../experiments/types.js';
import type { Series } from './series.js';

/**
 * The vega-lite chart of round-log series: J (linear) and the gap (log scale, when there is a
 * J*) in rows, against rounds, trajectories sampled and bytes sent in columns (a column is left
 * out when it is zero throughout, e.g. trajectories with exact gradients). Every series has its
 * own dash pattern besides its colour, so identical curves stay visible; series of several seeds
 * carry a band of one standard error.
 */

/** Dash patterns, one per series in order: solid first, then ever sparser. */
const DASHES: number[][] = [[1, 0], [7, 3], [2, 2], [10, 3, 2, 3], [4, 4], [12, 2], [1, 3], [6, 2, 2, 2, 2, 2]];
/** Categorical colours for series the method palette would give the same colour. */
const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

export const X_AXES = [
  { field: 'round', title: 'round' },
  { field: 'trajectories', title: 'trajectories sampled (all agents)' },
  { field: 'bytes', title: 'bytes sent (both directions)' },
] as const;

/** The plotted rows: one per series and round (also the CSV). */
export function seriesRows(series: Series[]): Row[] {
  return series.flatMap((s) =>
    s.points.map((p) => ({
      series: s.label,
      seeds: s.logs.length,
      round: p.round,
      trajectories: p.trajectories,
      bytes: p.bytes,
      J: p.J,
      Jse: p.Jse,
      gap: p.gap,
      gapSe: p.gapSe,
    })),
  );
}

export const SERIES_COLUMNS = ['series', 'seeds', 'round', 'trajectories', 'bytes', 'J', 'Jse', 'gap', 'gapSe'];

export function caption(series: Series[]): string[] {
  const lines = ['Each series has its own dash pattern, so curves that coincide stay visible.'];
  if (series.some((s) => s.logs.length > 1)) lines.push('Several seeds: the line is their mean, the band one standard error of it.');
  const partial = series.filter((s) => s.partial);
  if (partial.length) lines.push(`PARTIAL: ${partial.map((s) => `${s.label} has ${s.rounds} of ${s.plannedRounds} rounds`).join('; ')}.`);
  return lines;
}

export function runChart(series: Series[], title: string): Record<string, unknown> {
  const rows = seriesRows(series);
  const labels = series.map((s) => s.label);
  let colours = methodColours(labels);
  if (new Set(colours.range).size < colours.range.length) colours = { domain: labels, range: labels.map((_, i) => PALETTE[i % PALETTE.length]!) };
  // One legend (colour and dash merged), drawn as line samples so it shows the dash patterns.
  const legend = { symbolType: 'stroke', symbolStrokeWidth: 2, symbolSize: 400 };
  const color = { field: 'series', type: 'nominal', scale: colours, title: 'series', sort: labels, legend };
  const strokeDash = { field: 'series', type: 'nominal', scale: { domain: labels, range: labels.map((_, i) => DASHES[i % DASHES.length]) }, title: 'series', sort: labels, legend };
  const xs = X_AXES.filter((x) => rows.some((r) => (r[x.field] as number) > 0));
  const hasGap = rows.some((r) => r.gap !== null && (r.gap as number) > 0);
  const banded = series.some((s) => s.logs.length > 1);
  // The gap on a log axis: non-positive values (J at J* to rounding) are left out, and a band
  // reaching below zero is cut at the smallest gap drawn.
  const positive = rows.map((r) => r.gap as number | null).filter((g): g is number => g !== null && g > 0);
  const floor = positive.length ? Math.min(...positive) : 1;
  const values: Row[] = rows.map((r) => {
    const J = r.J as number | null, Jse = r.Jse as number | null, gap = r.gap as number | null, gapSe = r.gapSe as number | null;
    return {
      ...r,
      JLo: J !== null && Jse !== null ? J - Jse : null,
      JHi: J !== null && Jse !== null ? J + Jse : null,
      gapLo: gap !== null && gapSe !== null ? Math.max(gap - gapSe, floor) : null,
      gapHi: gap !== null && gapSe !== null ? gap + gapSe : null,
    };
  });
  const cell = (metric: 'J' | 'gap', x: (typeof X_AXES)[number]): Record<string, unknown> => {
    const max = Math.max(...values.map((v) => (v[x.field] as number | null) ?? 0));
    const xEnc = { field: x.field, type: 'quantitative', title: x.title, scale: { domain: [0, max], nice: false, zero: true }, axis: x.field === 'round' ? { format: 'd' } : { labelExpr: "format(datum.value, '~s')" } };
    const yScale = metric === 'gap' ? { type: 'log', nice: false } : { zero: false };
    const yTitle = metric === 'gap' ? 'gap J* - J (log scale)' : 'J (average return)';
    const filter = `isValid(datum.${x.field}) && ` + (metric === 'gap' ? 'isValid(datum.gap) && datum.gap > 0' : 'isValid(datum.J)');
    const layer: Record<string, unknown>[] = [];
    if (banded) {
      layer.push({
        transform: [{ filter: `${filter} && isValid(datum.${metric}Lo)` }],
        mark: { type: 'area', opacity: 0.18 },
        encoding: { x: xEnc, y: { field: `${metric}Lo`, type: 'quantitative', scale: yScale, title: yTitle }, y2: { field: `${metric}Hi` }, color },
      });
    }
    layer.push({
      transform: [{ filter }],
      mark: { type: 'line', strokeWidth: 1.6, clip: true },
      encoding: { x: xEnc, y: { field: metric, type: 'quantitative', scale: yScale, title: yTitle }, color, strokeDash, order: { field: 'round' } },
    });
    return { width: 250, height: 170, layer };
  };
  const metrics: ('J' | 'gap')[] = hasGap ? ['J', 'gap'] : ['J'];
  const partial = series.some((s) => s.partial);
  return {
    $schema: SCHEMA,
    title: { text: partial ? `${title} (PARTIAL LOG)` : title, subtitle: caption(series), ...(partial ? { color: '#b00' } : {}) },
    data: { values },
    vconcat: metrics.map((m) => ({ hconcat: xs.map((x) => cell(m, x)) })),
    resolve: { scale: { x: 'independent', y: 'independent' } },
    config: CHART_CONFIG,
  };
}
