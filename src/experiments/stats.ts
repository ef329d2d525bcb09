import seedrandom from 'seedrandom';

/** Small, exact statistics for the summaries (no sampling except the seeded bootstrap). */

export function mean(xs: readonly number[]): number {
  if (!xs.length) return NaN;
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

/** Sample standard deviation (n - 1); NaN below two values. */
export function stdev(xs: readonly number[]): number {
  if (xs.length < 2) return NaN;
  const m = mean(xs);
  let s = 0;
  for (const x of xs) s += (x - m) ** 2;
  return Math.sqrt(s / (xs.length - 1));
}

/** Standard error of the mean. */
export function stderr(xs: readonly number[]): number {
  return stdev(xs) / Math.sqrt(xs.length);
}

/** A mean with the standard error of it, over seeds. */
export interface MeanSe {
  mean: number | null;
  /** null below two values; 0 when they are all equal (the formula would leave rounding noise). */
  se: number | null;
}

/** Mean and standard error; both null when any value is missing (null) or there is none. */
export function meanSe(xs: readonly (number | null)[]): MeanSe {
  if (!xs.length || xs.some((x) => x === null)) return { mean: null, se: null };
  const v = xs as number[];
  return { mean: mean(v), se: v.length > 1 ? (v.every((x) => x === v[0]) ? 0 : stderr(v)) : null };
}

/** The q-quantile by linear interpolation between order statistics (q in [0, 1]). */
export function quantile(xs: readonly number[], q: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

export interface LineFit {
  /** y = intercept + slope * x over the points used. */
  slope: number;
  intercept: number;
  /** Standard error of the slope (NaN with fewer than three points). */
  slopeSe: number;
  r2: number;
  n: number;
}

/** Ordinary least squares of y on x. */
export function linearFit(x: readonly number[], y: readonly number[]): LineFit {
  const n = Math.min(x.length, y.length);
  if (n < 2) return { slope: NaN, intercept: NaN, slopeSe: NaN, r2: NaN, n };
  const mx = mean(x.slice(0, n)), my = mean(y.slice(0, n));
  let sxx = 0, sxy = 0, syy = 0;
  for (let i = 0; i < n; i++) {
    sxx += (x[i]! - mx) ** 2;
    sxy += (x[i]! - mx) * (y[i]! - my);
    syy += (y[i]! - my) ** 2;
  }
  const slope = sxy / sxx;
  const intercept = my - slope * mx;
  let sse = 0;
  for (let i = 0; i < n; i++) sse += (y[i]! - intercept - slope * x[i]!) ** 2;
  const slopeSe = n > 2 ? Math.sqrt(sse / (n - 2) / sxx) : NaN;
  return { slope, intercept, slopeSe, r2: syy > 0 ? 1 - sse / syy : 1, n };
}

/** Fit of log y against log x (natural logs), over the points with x > 0 and y > 0: y ~ e^intercept x^slope. */
export function logLogFit(x: readonly number[], y: readonly number[]): LineFit {
  const lx: number[] = [], ly: number[] = [];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i]! > 0 && y[i]! > 0 && Number.isFinite(y[i]!)) {
      lx.push(Math.log(x[i]!));
      ly.push(Math.log(y[i]!));
    }
  }
  return linearFit(lx, ly);
}

/** Fit of log y against x (y > 0): y ~ e^intercept e^(slope x), a geometric rate e^slope per unit of x. */
export function semiLogFit(x: readonly number[], y: readonly number[]): LineFit {
  const xs: number[] = [], ly: number[] = [];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (y[i]! > 0 && Number.isFinite(y[i]!)) {
      xs.push(x[i]!);
      ly.push(Math.log(y[i]!));
    }
  }
  return linearFit(xs, ly);
}

/**
 * A 95% percentile-bootstrap interval of the log-log slope of the group means against x: each
 * replicate resamples every group's values with replacement (seeded: the same data always give
 * the same interval).
 */
export function bootstrapSlope(x: readonly number[], groups: readonly (readonly number[])[], replicates = 2000, seed = 'fedpg-bootstrap'): [number, number] {
  const rand = seedrandom(seed);
  const slopes: number[] = [];
  for (let b = 0; b < replicates; b++) {
    const means = groups.map((g) => {
      let s = 0;
      for (let k = 0; k < g.length; k++) s += g[Math.floor(rand() * g.length)]!;
      return s / g.length;
    });
    const f = logLogFit(x, means);
    if (Number.isFinite(f.slope)) slopes.push(f.slope);
  }
  return [quantile(slopes, 0.025), quantile(slopes, 0.975)];
}
