import { describe, expect, it } from 'vitest';
import { renderSvg } from '../src/experiments/render.js';
import { logLogSlope, scalingChart, scalingSlopes, type ScalingPoint } from '../src/plot/scaling.js';

/** The log-log plot of bench/scaling.bench.js: slopes, log axes, and what a log axis cannot show. */

const SIZES = [1e2, 1e3, 1e4, 1e5, 1e6];

describe('log-log scaling plot', () => {
  it('fits the exponent of a power law exactly, and of noisy data by least squares', () => {
    expect(logLogSlope(SIZES.map((x) => ({ x, y: 3e-7 * x ** 1.5 })))).toBeCloseTo(1.5, 12);
    expect(logLogSlope(SIZES.map((x) => ({ x, y: 42 })))).toBeCloseTo(0, 12);
    // log y = 0, 1, 3 at log x = 0, 1, 2 (base 10): slope (sum dx dy) / (sum dx^2) = 3 / 2.
    expect(logLogSlope([{ x: 1, y: 1 }, { x: 10, y: 10 }, { x: 100, y: 1000 }])).toBeCloseTo(1.5, 12);
    expect(() => logLogSlope([{ x: 10, y: 1 }])).toThrow(/at least two points/);
    expect(() => logLogSlope([{ x: 10, y: 1 }, { x: 10, y: 2 }])).toThrow(/two distinct sizes/);
    expect(() => logLogSlope([{ x: 10, y: 1 }, { x: 100, y: 0 }])).toThrow(/point 1 is \(100, 0\)/);
  });

  it('fits each cost over the sizes from fitFrom up only (the sparse regime)', () => {
    // Cubic below 10^4 (a dense LU), linear from 10^4 up: the slope must see only the linear part.
    const pts: ScalingPoint[] = SIZES.map((S) => ({ cost: 'solve', states: S, seconds: S < 1e4 ? 1e-9 * S ** 3 : 1e-6 * S }));
    pts.push(...SIZES.map((S) => ({ cost: 'step', states: S, seconds: 1e-5 })));
    const slopes = scalingSlopes(pts, 1e4);
    expect(slopes.get('solve')).toBeCloseTo(1, 12);
    expect(slopes.get('step')).toBeCloseTo(0, 12);
    expect(scalingSlopes(pts, 1e6).get('solve')).toBeNull(); // one size: no slope
  });

  it('draws both axes on log scales with decade ticks and labels each line with its slope', async () => {
    const pts: ScalingPoint[] = SIZES.map((S) => ({ cost: 'J*', states: S, seconds: 1e-6 * S ** 1.2 }));
    const spec = scalingChart(pts, { title: 'cost', fitFrom: 1e4, marker: { states: 2048, text: 'dense | sparse' } });
    const line = (spec.layer as any[])[0].encoding;
    expect(line.x.scale.type).toBe('log');
    expect(line.y.scale.type).toBe('log');
    expect(line.x.axis.values).toEqual([1e2, 1e3, 1e4, 1e5, 1e6]);
    const values = (spec.data as any).values as any[];
    expect(values.every((v) => v.series === 'J* (slope 1.20)')).toBe(true);
    const svg = await renderSvg(spec);
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('J* (slope 1.20)');
    expect(svg).toContain('10^6');
    expect(svg).toContain('dense | sparse');
  });

  it('refuses a point a log axis cannot place, naming it', () => {
    expect(() => scalingChart([{ cost: 'step', states: 100, seconds: 0 }], { title: 't', fitFrom: 1e4 })).toThrow(/point 0 \(step, S = 100\) has 0 s/);
    expect(() => scalingChart([{ cost: 'step', states: 100, seconds: Number.NaN }], { title: 't', fitFrom: 1e4 })).toThrow(/has NaN s/);
  });
});
