import { basename } from 'node:path';
import { meanSe } from '../experiments/stats.js';
import type { RunLog } from './runlog.js';

/**
 * Round logs as plotted series: logs whose settings differ only in their seeds (seed, serverSeed)
 * form one series, drawn as the mean with a band of one standard error over the seeds; every
 * other log is a series of its own. A series is labelled by its algorithm and the settings that
 * differ between the series (so two runs with other step sizes read "fast-fedpg eta=0.1" and
 * "fast-fedpg eta=1").
 */

/** Settings that tell seeds of one configuration apart (not part of a series' identity). */
const SEED_KEYS = new Set(['seed', 'serverSeed']);

export interface SeriesPoint {
  round: number;
  /**
   * Trajectories and bytes so far (the same for every seed of a series); null before round 1,
   * whose costs the log does not hold (Fast-FedPG samples before round 1).
   */
  trajectories: number | null;
  bytes: number | null;
  /** Mean over the seeds, and the standard error of that mean (null for one seed). */
  J: number | null;
  Jse: number | null;
  gap: number | null;
  gapSe: number | null;
}

export interface Series {
  label: string;
  algorithm: string;
  logs: string[];
  /** The seeds of the logs (null where a log has no seed setting). */
  seeds: (number | null)[];
  /** Rounds the settings asked for, and rounds every log of the series holds. */
  plannedRounds: number;
  rounds: number;
  partial: boolean;
  points: SeriesPoint[];
}

function identity(log: RunLog): string {
  const s = Object.fromEntries(Object.entries(log.header.settings).filter(([k]) => !SEED_KEYS.has(k)).sort(([a], [b]) => a.localeCompare(b)));
  return JSON.stringify({ algorithm: log.header.algorithm, Jstar: log.header.Jstar, s });
}

function seedOf(log: RunLog): number | null {
  const v = log.header.settings.seed;
  return typeof v === 'number' ? v : null;
}

function seriesOf(logs: RunLog[]): Omit<Series, 'label'> {
  const rounds = Math.min(...logs.map((l) => l.records.length));
  const points: SeriesPoint[] = [];
  for (let t = 0; t <= rounds; t++) {
    const J = meanSe(logs.map((l) => (t === 0 ? l.header.J0 : l.records[t - 1]!.J)));
    const gap = meanSe(
      logs.map((l) => {
        if (t > 0) return l.records[t - 1]!.gap;
        return l.header.Jstar === null || l.header.J0 === null ? null : l.header.Jstar - l.header.J0;
      }),
    );
    const first = t === 0 ? null : logs[0]!.records[t - 1]!;
    points.push({ round: t, trajectories: first?.trajectories ?? null, bytes: first?.bytes ?? null, J: J.mean, Jse: J.se, gap: gap.mean, gapSe: gap.se });
  }
  const h = logs[0]!.header;
  return {
    algorithm: h.algorithm,
    logs: logs.map((l) => l.path),
    seeds: logs.map(seedOf),
    plannedRounds: h.settings.rounds,
    rounds,
    partial: logs.some((l) => l.partial) || logs.some((l) => l.records.length > rounds),
    points,
  };
}

function show(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** Groups the logs into series (first-seen order) and labels them. */
export function buildSeries(logs: RunLog[]): Series[] {
  const groups = new Map<string, RunLog[]>();
  for (const l of logs) {
    const k = identity(l);
    groups.set(k, [...(groups.get(k) ?? []), l]);
  }
  // Logs of one configuration are seeds of one series only when their seeds differ; repeats of
  // one seed (the same run twice, say on two backends) stay separate series.
  const sets: RunLog[][] = [];
  for (const g of groups.values()) {
    const seeds = g.map(seedOf);
    if (g.length > 1 && new Set(seeds).size === g.length && !seeds.includes(null)) sets.push(g);
    else for (const l of g) sets.push([l]);
  }
  const keys = [...new Set(sets.flatMap((g) => Object.keys(g[0]!.header.settings)))].filter((k) => k !== 'algorithm' && !SEED_KEYS.has(k));
  const differing = keys.filter((k) => new Set(sets.map((g) => show(g[0]!.header.settings[k]))).size > 1);
  // A single log per series, all alike but the seed: say the seed.
  const bySeed = sets.every((g) => g.length === 1) && new Set(sets.map((g) => seedOf(g[0]!))).size > 1;
  const labels = sets.map((g) => {
    const s = g[0]!.header.settings;
    const parts = differing.map((k) => `${k}=${show(s[k])}`);
    if (bySeed) parts.push(`seed=${seedOf(g[0]!)}`);
    if (g.length > 1) parts.push(`${g.length} seeds`);
    return [g[0]!.header.algorithm, ...parts].join(' ');
  });
  // Still equal (the same run twice): the file names tell them apart.
  const out = sets.map((g, i) => {
    const dup = labels.filter((l) => l === labels[i]).length > 1;
    return { label: dup ? `${labels[i]} (${basename(g[0]!.path)})` : labels[i]!, ...seriesOf(g) };
  });
  return out;
}
