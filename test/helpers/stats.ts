/**
 * The largest |mean - target| / standard error over the coordinates of n samples given by their
 * per-coordinate sums and sums of squares: the z-score the randomised tests bound (a correct
 * estimator exceeds 5 in one of 18 coordinates with probability below 1e-5).
 */
export function worstZ(sum: Float64Array, sumSq: Float64Array, n: number, target: ArrayLike<number>): number {
  let worst = 0;
  for (let j = 0; j < sum.length; j++) {
    const mean = sum[j]! / n;
    const variance = (sumSq[j]! - n * mean * mean) / (n - 1);
    worst = Math.max(worst, Math.abs(mean - target[j]!) / Math.sqrt(variance / n));
  }
  return worst;
}
