import { logLogFit, type LineFit } from './stats.js';
import type { RunCurve, RunResult } from './task.js';

/** Reading runs' curves. */

type CurveField = 'J' | 'gap' | 'gradNormSq' | 'avgGradNormSq' | 'gapTau';

/** The curve's value at exactly this round (null when the round was not recorded or the value is null). */
export function valueAt(run: RunResult, field: CurveField, round: number): number | null {
  const i = run.curve.round.indexOf(round);
  if (i < 0) return null;
  const v = run.curve[field]?.[i];
  return v === undefined || v === null ? null : v;
}

/** The log-log slope of a curve over rounds in [from, to] (points with a positive value). */
export function curveFit(curve: RunCurve, field: CurveField, from: number, to: number): LineFit {
  const x: number[] = [], y: number[] = [];
  const vals = curve[field];
  if (!vals) return logLogFit([], []);
  curve.round.forEach((r, i) => {
    const v = vals[i];
    if (r >= from && r <= to && v !== null && v !== undefined) {
      x.push(r);
      y.push(v);
    }
  });
  return logLogFit(x, y);
}

/** The mean curve over runs that share their checkpoints (same T): per round, the mean of the field. */
export function meanCurve(runs: RunResult[], field: CurveField): { round: number[]; value: (number | null)[] } {
  if (!runs.length) return { round: [], value: [] };
  const round = runs[0]!.curve.round;
  const value = round.map((r) => {
    let s = 0, n = 0;
    for (const run of runs) {
      const v = valueAt(run, field, r);
      if (v === null) return null;
      s += v;
      n++;
    }
    return n ? s / n : null;
  });
  return { round, value };
}
