/**
 * The server's arithmetic, in one place for every runtime: the in-process loop (train.ts) runs
 * it on the main thread, and in run mode every worker thread runs it on the same inputs (so all
 * of them hold theta_bar(t+1) and g without a trip through the main thread). The sums run in
 * agent order, element by element, so every caller gets the same bits.
 */

/** Eq. 7: thetaBar += (alpha / N) * sum_i (thetas[i] - thetaBar), summed in agent order; `acc` is scratch. */
export function serverStep(thetaBar: Float64Array, thetas: readonly Float64Array[], alpha: number, acc: Float64Array): void {
  acc.fill(0);
  for (const o of thetas) for (let j = 0; j < acc.length; j++) acc[j] = acc[j]! + (o[j]! - thetaBar[j]!);
  const scale = alpha / thetas.length;
  for (let j = 0; j < thetaBar.length; j++) thetaBar[j] = thetaBar[j]! + scale * acc[j]!;
}

/** Mean of vectors in index order: the global memory g = (1/N) sum_i g_i. */
export function meanInto(out: Float64Array, vs: readonly Float64Array[]): void {
  out.fill(0);
  for (const v of vs) for (let j = 0; j < out.length; j++) out[j] = out[j]! + v[j]!;
  for (let j = 0; j < out.length; j++) out[j] = out[j]! / vs.length;
}
