import type { GradientMode } from '../backends/types.js';
import type { Algorithm, TrainSettings } from '../federation/settings.js';
import type { Mdp } from '../mdp/model.js';
import { resolveMdpSource } from './mdps.js';
import { mean, quantile, stderr } from './stats.js';
import type { RunResult } from './task.js';
import type { ExperimentParams } from './types.js';

/** Helpers shared by the experiment definitions. */

export const DEFAULT_PARAMS: ExperimentParams = {
  mdp: [],
  algorithms: ['fast-fedpg', 'fedavg'],
  gradient: ['sampled'],
  rounds: 3000,
  localSteps: [5],
  eta: 0.05,
  alphaG: 1,
  horizon: [20],
  batch: 1,
  agents: [8],
  heterogeneity: [1],
  correction: ['memory'],
  entropy: [],
  seeds: 20,
  centralized: 'matched',
  backend: 'auto',
};

/** Resolved sources, labelled by their MDP's name (or the spec). */
export function loadSources(specs: string[]): { label: string; mdp: Mdp }[] {
  return specs.map((spec) => {
    const s = resolveMdpSource(spec);
    return { label: s.mdp.name ?? spec, mdp: s.mdp };
  });
}

/** Seeds of a cell: exact gradients are deterministic (one run, seed 0). */
export function seedsOf(gradient: GradientMode, seeds: number): number[] {
  return gradient === 'exact' ? [0] : Array.from({ length: seeds }, (_, k) => k);
}

/** The method's display name: the algorithm, with entropy and correction when they are not the defaults. */
export function methodName(algorithm: Algorithm, o: { entropy?: number; correction?: string } = {}): string {
  let m: string = algorithm;
  if (algorithm === 'fast-fedpg' && o.entropy && o.entropy > 0) m = `fast-fedpg+entropy`;
  if (o.entropy && o.entropy > 0) m += ` tau=${o.entropy}`;
  if (algorithm === 'fast-fedpg' && o.correction === 'fresh') m += ' (fresh)';
  return m;
}

/** Train settings of one run; centralized may run H*T rounds (see ExperimentParams.centralized). */
export function runSettings(p: ExperimentParams, s: Partial<TrainSettings> & { algorithm: Algorithm; localSteps: number }): Partial<TrainSettings> {
  const out: Partial<TrainSettings> = { rounds: p.rounds, eta: p.eta, alphaG: p.alphaG, batch: p.batch, ...s };
  if (s.algorithm === 'centralized' && p.centralized === 'matched') out.rounds = (s.rounds ?? p.rounds) * s.localSteps;
  return out;
}

export interface Spread {
  n: number;
  mean: number;
  se: number;
  median: number;
  q25: number;
  q75: number;
  min: number;
  max: number;
}

export function spread(xs: number[]): Spread {
  return {
    n: xs.length,
    mean: mean(xs),
    se: xs.length > 1 ? stderr(xs) : NaN,
    median: quantile(xs, 0.5),
    q25: quantile(xs, 0.25),
    q75: quantile(xs, 0.75),
    min: xs.length ? Math.min(...xs) : NaN,
    max: xs.length ? Math.max(...xs) : NaN,
  };
}

/** Groups runs by a key, keeping first-seen order of the keys (runs are in task order). */
export function groupRuns(runs: RunResult[], key: (r: RunResult) => string): Map<string, RunResult[]> {
  const m = new Map<string, RunResult[]>();
  for (const r of runs) {
    const k = key(r);
    const g = m.get(k);
    if (g) g.push(r);
    else m.set(k, [r]);
  }
  return m;
}

/** A number for findings: 3 significant digits, exponent form when small. */
export function fmt(x: number | null | undefined, digits = 3): string {
  if (x === null || x === undefined || Number.isNaN(x)) return 'n/a';
  if (x === 0) return '0';
  const a = Math.abs(x);
  return a < 1e-2 || a >= 1e5 ? x.toExponential(digits - 1) : x.toPrecision(digits);
}

/** NaN and infinities become null (JSON and CSV have no NaN). */
export function num(x: number | null | undefined): number | null {
  return x === null || x === undefined || !Number.isFinite(x) ? null : x;
}

/** Colours per method family, the same in every plot. */
const FAMILY_COLOURS: [string, string][] = [
  ['fast-fedpg+entropy', '#8e44ad'],
  ['fast-fedpg (fresh)', '#17becf'],
  ['fast-fedpg', '#1f77b4'],
  ['fedavg', '#ff7f0e'],
  ['centralized', '#2ca02c'],
  ['regfedpg', '#d62728'],
  ['local', '#7f7f7f'],
];

/** A vega-lite colour scale for these method names. */
export function methodColours(methods: string[]): { domain: string[]; range: string[] } {
  const domain = [...new Set(methods)];
  const extra = ['#bcbd22', '#e377c2', '#8c564b', '#9467bd', '#17becf', '#393b79', '#637939', '#8c6d31', '#843c39', '#7b4173', '#3182bd', '#e6550d'];
  let k = 0;
  const range = domain.map((m) => FAMILY_COLOURS.find(([f]) => m === f || m.startsWith(f + ' ') || (f.includes('(') && m.includes(f)))?.[1] ?? extra[k++ % extra.length]!);
  return { domain, range };
}

/** Shared look of every plot. */
export const CHART_CONFIG = {
  font: 'Helvetica, Arial, sans-serif',
  view: { stroke: '#ccc' },
  axis: { labelFontSize: 10, titleFontSize: 11, grid: true, gridColor: '#eee' },
  legend: { labelFontSize: 10, titleFontSize: 11, labelLimit: 260, symbolOpacity: 1 },
  title: { fontSize: 14, subtitleFontSize: 11, anchor: 'start' },
  header: { labelFontSize: 11, titleFontSize: 11 },
};

export const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';

/** Powers of ten spanning the positive values (tick marks for a log axis: one per decade). */
export function decadeTicks(values: readonly number[]): number[] {
  const pos = values.filter((v) => v > 0 && Number.isFinite(v));
  if (!pos.length) return [];
  const lo = Math.floor(Math.log10(Math.min(...pos))), hi = Math.ceil(Math.log10(Math.max(...pos)));
  const step = Math.max(1, Math.ceil((hi - lo) / 8));
  const out: number[] = [];
  for (let k = lo; k <= hi; k += step) out.push(Number(`1e${k}`));
  return out;
}

/** The distinct values of a field, in first-seen order (an explicit sort for facets and legends). */
export function inOrder(values: readonly unknown[]): unknown[] {
  return [...new Set(values)];
}
