import { InputError } from '../errors.js';

/**
 * The server's arithmetic, in one place for every runtime: the in-process loop (train.ts), the
 * worker runtime (which leaves the server step to the main thread) and the networked aggregator
 * (src/network). Pure functions over Float64Arrays; every sum runs in the order of the arrays
 * given (agent order), element by element, so any runtime gives bit-identical results whatever
 * computed the agents' vectors.
 *
 * The aggregation rules (SPEC.md, "The field's methods") live here too: `mean` (Eq. 7), and the
 * robust rules `median`, `trimmed:B`, `krum:F` and `geomed`, applied to a round's deltas and, for
 * Fast-FedPG, to the memories that form g.
 */

export type AggregationRule =
  | { kind: 'mean' }
  | { kind: 'median' }
  | { kind: 'trimmed'; beta: number }
  | { kind: 'krum'; f: number }
  | { kind: 'geomed' };

/** Parses `mean | median | trimmed:B | krum:F | geomed`; InputError naming the value otherwise. */
export function parseAggregation(text: string): AggregationRule {
  if (text === 'mean' || text === 'median' || text === 'geomed') return { kind: text };
  const m = /^(trimmed|krum):(.+)$/.exec(String(text));
  if (m) {
    const x = Number(m[2]);
    if (m[1] === 'trimmed') {
      if (m[2]!.trim() === '' || !Number.isFinite(x) || x < 0 || x >= 0.5) throw new InputError(`aggregation trimmed:B needs B in [0, 0.5), got '${text}'`);
      return { kind: 'trimmed', beta: x };
    }
    if (!Number.isSafeInteger(x) || x < 0) throw new InputError(`aggregation krum:F needs an integer F >= 0, got '${text}'`);
    return { kind: 'krum', f: x };
  }
  throw new InputError(`aggregation must be mean, median, trimmed:B, krum:F or geomed, got '${String(text)}'`);
}

/** trimmed:B drops this many values at each end of every coordinate. */
function trimCount(beta: number, n: number): number {
  return Math.floor(beta * n + 1e-9);
}

/** The fewest vectors a rule can aggregate. */
export function minimumVectors(rule: AggregationRule): number {
  switch (rule.kind) {
    case 'krum':
      return rule.f + 3;
    default:
      return 1;
  }
}

/** Why `rule` cannot aggregate `n` vectors, or null when it can. */
export function ruleProblem(rule: AggregationRule, n: number): string | null {
  if (n < 1) return 'there are no vectors to aggregate';
  if (rule.kind === 'krum' && n - rule.f - 2 < 1) return `krum:${rule.f} needs at least ${rule.f + 3} vectors (n - F - 2 >= 1), but a round has ${n}`;
  if (rule.kind === 'trimmed' && n - 2 * trimCount(rule.beta, n) < 1) return `trimmed:${rule.beta} would drop all ${n} values of a coordinate`;
  return null;
}

/** Delta_i = theta_i - start, as an agent sends it. */
export function deltaInto(out: Float64Array, theta: Float64Array, start: Float64Array): Float64Array {
  for (let j = 0; j < out.length; j++) out[j] = theta[j]! - start[j]!;
  return out;
}

/**
 * out = sum_i xs[i], element by element in the order given: ((0 + x0) + x1) + x2 ... Four vectors
 * per pass over out (the same additions in the same order as one at a time, so the same bits, in
 * a quarter of the loads and stores of out: the server's sums run on the worker runtime's
 * critical path every round).
 */
export function sumInto(out: Float64Array, xs: readonly Float64Array[]): Float64Array {
  out.fill(0);
  const m = out.length;
  let i = 0;
  for (; i + 4 <= xs.length; i += 4) {
    const a = xs[i]!, b = xs[i + 1]!, c = xs[i + 2]!, d = xs[i + 3]!;
    for (let j = 0; j < m; j++) out[j] = out[j]! + a[j]! + b[j]! + c[j]! + d[j]!;
  }
  for (; i < xs.length; i++) {
    const a = xs[i]!;
    for (let j = 0; j < m; j++) out[j] = out[j]! + a[j]!;
  }
  return out;
}

/**
 * Eq. 7 from the agents' deltas: thetaBar += (alphaG / n) * sum_i deltas[i], with n =
 * deltas.length and the sum accumulated in the order given. `acc` is scratch of thetaBar's length.
 */
export function applyDeltas(thetaBar: Float64Array, deltas: readonly Float64Array[], alphaG: number, acc: Float64Array = new Float64Array(thetaBar.length)): void {
  if (deltas.length === 0) throw new RangeError('applyDeltas needs at least one delta');
  sumInto(acc, deltas);
  const scale = alphaG / deltas.length;
  for (let j = 0; j < thetaBar.length; j++) thetaBar[j] = thetaBar[j]! + scale * acc[j]!;
}

/** The mean of vectors in the order given (the global memory g = (1/N) sum_i g_i). */
export function meanInto(out: Float64Array, vectors: readonly Float64Array[]): Float64Array {
  if (vectors.length === 0) throw new RangeError('meanInto needs at least one vector');
  sumInto(out, vectors);
  for (let j = 0; j < out.length; j++) out[j] = out[j]! / vectors.length;
  return out;
}

/** The mean of scalars in the order given (J = (1/N) sum_i J_i, as the evaluator computes it). */
export function meanOf(values: ArrayLike<number>): number {
  if (values.length === 0) throw new RangeError('meanOf needs at least one value');
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i]!;
  return s / values.length;
}

/** Coordinate-wise median (even count: the mean of the two middle values). */
function medianInto(out: Float64Array, xs: readonly Float64Array[]): void {
  const n = xs.length;
  const col = new Float64Array(n);
  for (let j = 0; j < out.length; j++) {
    for (let i = 0; i < n; i++) col[i] = xs[i]![j]!;
    col.sort();
    out[j] = n % 2 === 1 ? col[(n - 1) / 2]! : (col[n / 2 - 1]! + col[n / 2]!) / 2;
  }
}

/** Coordinate-wise trimmed mean: drop the floor(B n + 1e-9) smallest and largest, mean the rest (in ascending order). */
function trimmedInto(out: Float64Array, xs: readonly Float64Array[], beta: number): void {
  const n = xs.length;
  const k = trimCount(beta, n);
  const col = new Float64Array(n);
  for (let j = 0; j < out.length; j++) {
    for (let i = 0; i < n; i++) col[i] = xs[i]![j]!;
    col.sort();
    let s = 0;
    for (let i = k; i < n - k; i++) s += col[i]!;
    out[j] = s / (n - 2 * k);
  }
}

function squaredDistance(a: Float64Array, b: Float64Array): number {
  let d = 0;
  for (let j = 0; j < a.length; j++) {
    const e = a[j]! - b[j]!;
    d += e * e;
  }
  return d;
}

/** Krum (Blanchard et al., NeurIPS 2017): the vector whose n - F - 2 nearest others are closest. */
function krumIndex(xs: readonly Float64Array[], f: number): number {
  const n = xs.length;
  const d = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = i + 1; j < n; j++) {
      const v = squaredDistance(xs[i]!, xs[j]!);
      d[i * n + j] = v;
      d[j * n + i] = v;
    }
  const keep = n - f - 2;
  let best = -1;
  let bestScore = Infinity;
  const row: number[] = [];
  for (let i = 0; i < n; i++) {
    row.length = 0;
    for (let j = 0; j < n; j++) if (j !== i) row.push(d[i * n + j]!);
    row.sort((a, b) => a - b);
    let score = 0;
    for (let k = 0; k < keep; k++) score += row[k]!;
    if (score < bestScore) {
      bestScore = score;
      best = i;
    }
  }
  return best;
}

/** The Euclidean norm over all entries (Infinity or NaN for a non-finite vector). */
export function euclidean(x: Float64Array): number {
  let s = 0;
  for (let j = 0; j < x.length; j++) s += x[j]! * x[j]!;
  return Math.sqrt(s);
}

/** The geometric median by Weiszfeld's iteration (Pillutla et al., 2022), from the mean. */
function geomedInto(out: Float64Array, xs: readonly Float64Array[]): void {
  const z = meanInto(new Float64Array(out.length), xs);
  const next = new Float64Array(out.length);
  const diff = new Float64Array(out.length);
  for (let it = 0; it < 1000; it++) {
    next.fill(0);
    let wsum = 0;
    for (const x of xs) {
      const w = 1 / Math.max(1e-12, euclidean(deltaInto(diff, x, z)));
      wsum += w;
      for (let j = 0; j < next.length; j++) next[j] = next[j]! + w * x[j]!;
    }
    for (let j = 0; j < next.length; j++) next[j] = next[j]! / wsum;
    const moved = euclidean(deltaInto(diff, next, z));
    z.set(next);
    if (moved <= 1e-12 * (1 + euclidean(next))) break;
  }
  out.set(z);
}

/** agg(xs) into out by `rule`; `mean` is meanInto's expression. */
export function aggregateInto(out: Float64Array, xs: readonly Float64Array[], rule: AggregationRule): Float64Array {
  const problem = ruleProblem(rule, xs.length);
  if (problem) throw new InputError(`aggregation ${describeRule(rule)} cannot apply: ${problem}`);
  switch (rule.kind) {
    case 'mean':
      return meanInto(out, xs);
    case 'median':
      medianInto(out, xs);
      return out;
    case 'trimmed':
      trimmedInto(out, xs, rule.beta);
      return out;
    case 'krum':
      out.set(xs[krumIndex(xs, rule.f)]!);
      return out;
    case 'geomed':
      geomedInto(out, xs);
      return out;
  }
}

/**
 * The server step on theta_bar: Eq. 7's expression for `mean` (theta_bar + (alpha_g / n) * sum,
 * so existing results keep their bits), theta_bar + alpha_g * agg(deltas) for any other rule.
 */
export function stepWithRule(thetaBar: Float64Array, deltas: readonly Float64Array[], alphaG: number, rule: AggregationRule, scratch: Float64Array): void {
  if (rule.kind === 'mean') return applyDeltas(thetaBar, deltas, alphaG, scratch);
  aggregateInto(scratch, deltas, rule);
  for (let j = 0; j < thetaBar.length; j++) thetaBar[j] = thetaBar[j]! + alphaG * scratch[j]!;
}

export function describeRule(rule: AggregationRule): string {
  switch (rule.kind) {
    case 'trimmed':
      return `trimmed:${rule.beta}`;
    case 'krum':
      return `krum:${rule.f}`;
    default:
      return rule.kind;
  }
}
