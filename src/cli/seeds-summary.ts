import { meanSe, type MeanSe } from '../experiments/stats.js';
import type { TrainResult } from '../federation/train.js';

/** The numbers of --seeds: mean and standard error of the mean over the seeds, per algorithm and per round. */

export type { MeanSe } from '../experiments/stats.js';

/** What --json's `summary` holds per algorithm: final J and gap, mean and standard error over the seeds. */
export interface SeedSummary {
  algorithm: string;
  seeds: number[];
  rounds: number;
  J: MeanSe;
  gap: MeanSe;
  /** J before round 1 (the same for every seed unless theta0 differs). */
  J0: MeanSe;
  trajectories: number;
  bytes: number;
}

export function summariseSeeds(results: TrainResult[]): SeedSummary {
  const first = results[0]!;
  const last = (r: TrainResult): TrainResult['records'][number] | undefined => r.records[r.records.length - 1];
  return {
    algorithm: first.algorithm,
    seeds: results.map((r) => r.settings.seed),
    rounds: first.records.length,
    J: meanSe(results.map((r) => r.J[r.J.length - 1]!)),
    gap: meanSe(results.map((r) => (r.Jstar === null ? null : r.Jstar - r.J[r.J.length - 1]!))),
    J0: meanSe(results.map((r) => r.J[0]!)),
    trajectories: last(first)?.trajectories ?? 0,
    bytes: last(first)?.bytes ?? 0,
  };
}

/** Per round t (0..T): mean and standard error of J and of the gap over the seeds. */
export function roundStats(results: TrainResult[], t: number): { J: MeanSe; gap: MeanSe } {
  return {
    J: meanSe(results.map((r) => r.J[t] ?? null)),
    gap: meanSe(results.map((r) => (r.Jstar === null || r.J[t] === undefined ? null : r.Jstar - r.J[t]!))),
  };
}

/** "x ± se" with the digits of the table. */
export function pm(v: MeanSe, digits = 6): string {
  const f = (x: number): string => (Math.abs(x) !== 0 && Math.abs(x) < 1e-3 ? x.toExponential(2) : x.toFixed(digits));
  if (v.mean === null) return 'n/a';
  return v.se === null ? f(v.mean) : `${f(v.mean)} ± ${f(v.se)}`;
}
