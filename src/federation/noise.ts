import { detCos, detLog } from '../math/index.js';
import { nextDouble } from '../rng.js';

/**
 * Standard normal draws from an agent's own stream, as SPEC.md fixes them so every runtime draws
 * the same numbers: Box-Muller with u1, u2 = nextDouble, nextDouble and
 * z = sqrt(-2 ln(1 - u1)) cos(2 pi u2), one z per pair (1 - u1 is in (0, 1], so the log is finite).
 * ln and cos are the project's own (src/math), so the draws are the same bits on every engine.
 */
export function standardNormal(rng: Uint32Array): number {
  const u1 = nextDouble(rng);
  const u2 = nextDouble(rng);
  return Math.sqrt(-2 * detLog(1 - u1)) * detCos(2 * Math.PI * u2);
}

/** x += sigma * z per entry, in row-major order. */
export function addGaussian(x: Float64Array, sigma: number, rng: Uint32Array): void {
  for (let j = 0; j < x.length; j++) x[j] = x[j]! + sigma * standardNormal(rng);
}
