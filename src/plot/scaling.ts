import { CHART_CONFIG, decadeTicks, SCHEMA } from '../experiments/common.js';
import type { Row } from '../experiments/types.js';

/**
 * Cost against problem size on log-log axes (bench/scaling.bench.js): one line per cost, x the
 * number of states S, y seconds, both on log scales, and each line labelled with its fitted
 * slope, so "cost grows like S^b" is read off the legend. A slope is the least-squares fit of
 * log(seconds) on log(S) over the points at or above `fitFrom` states (the sparse regime: below
 * the dense limit the exact solvers are dense LU, whose S^3 would mix two laws into one number).
 */

/** One measured cost at one size. */
export interface ScalingPoint {
  /** The cost's name, e.g. "J*". */
  cost: string;
  states: number;
  /** Median seconds; must be finite and > 0 (a log axis has no place for 0). */
  seconds: number;
}

/**
 * The least-squares slope b of log y = a + b log x (base-independent). Needs at least two
 * distinct x; every x and y must be finite and > 0.
 */
export function logLogSlope(points: readonly { x: number; y: number }[]): number {
  if (points.length < 2) throw new Error(`a slope needs at least two points, got ${points.length}`);
  for (const [k, p] of points.entries())
    if (!(p.x > 0 && p.y > 0 && Number.isFinite(p.x) && Number.isFinite(p.y))) throw new Error(`point ${k} is (${p.x}, ${p.y}): a log-log fit needs finite positive values`);
  const lx = points.map((p) => Math.log(p.x)), ly = points.map((p) => Math.log(p.y));
  const mx = lx.reduce((a, v) => a + v, 0) / lx.length, my = ly.reduce((a, v) => a + v, 0) / ly.length;
  let sxy = 0, sxx = 0;
  for (let k = 0; k < lx.length; k++) {
    sxy += (lx[k]! - mx) * (ly[k]! - my);
    sxx += (lx[k]! - mx) ** 2;
  }
  if (sxx === 0) throw new Error('a slope needs at least two distinct sizes');
  return sxy / sxx;
}

/** Each cost's slope over the points with states >= fitFrom (null with fewer than two such sizes). */
export function scalingSlopes(points: readonly ScalingPoint[], fitFrom: number): Map<string, number | null> {
  const out = new Map<string, number | null>();
  for (const cost of [...new Set(points.map((p) => p.cost))]) {
    const fit = points.filter((p) => p.cost === cost && p.states >= fitFrom).map((p) => ({ x: p.states, y: p.seconds }));
    out.set(cost, new Set(fit.map((p) => p.x)).size >= 2 ? logLogSlope(fit) : null);
  }
  return out;
}

/** The label of a cost in the chart: its name and fitted slope. */
export function slopeLabel(cost: string, slope: number | null): string {
  return slope === null ? cost : `${cost} (slope ${slope.toFixed(2)})`;
}

/** The vega-lite spec of the log-log chart (render with experiments/render.ts renderSvg). */
export function scalingChart(points: readonly ScalingPoint[], o: { title: string; subtitle?: string[]; fitFrom: number; marker?: { states: number; text: string } }): Record<string, unknown> {
  for (const [k, p] of points.entries())
    if (!(p.seconds > 0 && Number.isFinite(p.seconds)) || !(p.states > 0)) throw new Error(`point ${k} (${p.cost}, S = ${p.states}) has ${p.seconds} s: a log axis needs finite positive values`);
  const slopes = scalingSlopes(points, o.fitFrom);
  const costs = [...slopes.keys()];
  const labels = costs.map((c) => slopeLabel(c, slopes.get(c)!));
  const values: Row[] = points.map((p) => ({ cost: p.cost, series: slopeLabel(p.cost, slopes.get(p.cost)!), states: p.states, seconds: p.seconds }));
  const xs = points.map((p) => p.states), ys = points.map((p) => p.seconds);
  const x = {
    field: 'states',
    type: 'quantitative',
    title: 'states S (log scale)',
    scale: { type: 'log', domain: [Math.min(...xs), Math.max(...xs)], nice: false },
    axis: { values: decadeTicks(xs), labelExpr: "'10^' + format(log(datum.value) / LN10, '.0f')", grid: true },
  };
  const yDecades = decadeTicks(ys);
  const y = {
    field: 'seconds',
    type: 'quantitative',
    title: 'seconds, median (log scale)',
    scale: { type: 'log', domain: [10 ** Math.floor(Math.log10(Math.min(...ys))), 10 ** Math.ceil(Math.log10(Math.max(...ys)))], nice: false },
    axis: { values: yDecades, labelExpr: "format(datum.value, '~g')", grid: true },
  };
  const color = { field: 'series', type: 'nominal', title: `cost (slope fitted for S >= ${o.fitFrom.toExponential().replace('e+', 'e')})`, sort: labels, legend: { symbolType: 'stroke', labelLimit: 400 } };
  return {
    $schema: SCHEMA,
    title: { text: o.title, ...(o.subtitle ? { subtitle: o.subtitle } : {}) },
    data: { values },
    width: 420,
    height: 300,
    layer: [
      { mark: { type: 'line', strokeWidth: 1.6 }, encoding: { x, y, color, order: { field: 'states' } } },
      { mark: { type: 'point', filled: true, size: 40 }, encoding: { x, y, color, shape: { field: 'series', type: 'nominal', sort: labels, legend: null } } },
      // A vertical rule where the method changes (e.g. the dense limit), labelled at the top.
      ...(o.marker
        ? [
            { data: { values: [{ states: o.marker.states }] }, mark: { type: 'rule', strokeDash: [4, 3], color: '#888' }, encoding: { x: { ...x, field: 'states' } } },
            {
              data: { values: [{ states: o.marker.states, text: o.marker.text }] },
              mark: { type: 'text', align: 'left', baseline: 'top', dx: 4, dy: 4, fontSize: 10, color: '#555' },
              encoding: { x: { ...x, field: 'states' }, y: { value: 0 }, text: { field: 'text' } },
            },
          ]
        : []),
    ],
    config: CHART_CONFIG,
  };
}
