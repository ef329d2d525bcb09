/**
 * The server's arithmetic, in one place for every runtime: the in-process loop (train.ts), every
 * worker thread in run mode (workers/host.ts, so all of them hold theta_bar(t+1) and g without a
 * trip through the main thread), and the networked aggregator (src/network). Pure functions over Float64Arrays; every sum runs in agent order (the order of
 * the arrays given), element by element, with the same expressions as train.ts, so the two give
 * bit-identical results whatever computed the agents' vectors.
 */

/** Delta_i = theta_i - start, as an agent sends it (the same subtraction the server would do). */
export function deltaInto(out: Float64Array, theta: Float64Array, start: Float64Array): Float64Array {
  for (let j = 0; j < out.length; j++) out[j] = theta[j]! - start[j]!;
  return out;
}

/**
 * Eq. 7 from the agents' deltas: thetaBar += (alphaG / n) * sum_i deltas[i], with n =
 * deltas.length and the sum accumulated in the order given. `acc` is scratch of thetaBar's length.
 */
export function applyDeltas(thetaBar: Float64Array, deltas: readonly Float64Array[], alphaG: number, acc: Float64Array = new Float64Array(thetaBar.length)): void {
  if (deltas.length === 0) throw new RangeError('applyDeltas needs at least one delta');
  acc.fill(0);
  for (const d of deltas) for (let j = 0; j < acc.length; j++) acc[j] = acc[j]! + d[j]!;
  const scale = alphaG / deltas.length;
  for (let j = 0; j < thetaBar.length; j++) thetaBar[j] = thetaBar[j]! + scale * acc[j]!;
}

/**
 * Eq. 7 from the agents' final thetas (train.ts's form): the same result as applyDeltas on
 * deltaInto(theta_i, thetaBar), bit for bit.
 */
export function applyThetas(thetaBar: Float64Array, thetas: readonly Float64Array[], alphaG: number, acc: Float64Array = new Float64Array(thetaBar.length)): void {
  if (thetas.length === 0) throw new RangeError('applyThetas needs at least one theta');
  acc.fill(0);
  for (const o of thetas) for (let j = 0; j < acc.length; j++) acc[j] = acc[j]! + (o[j]! - thetaBar[j]!);
  const scale = alphaG / thetas.length;
  for (let j = 0; j < thetaBar.length; j++) thetaBar[j] = thetaBar[j]! + scale * acc[j]!;
}

/** The mean of vectors in the order given (the global memory g = (1/N) sum_i g_i). */
export function meanInto(out: Float64Array, vectors: readonly Float64Array[]): Float64Array {
  if (vectors.length === 0) throw new RangeError('meanInto needs at least one vector');
  out.fill(0);
  for (const v of vectors) for (let j = 0; j < out.length; j++) out[j] = out[j]! + v[j]!;
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
