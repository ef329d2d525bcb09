import { euclidean } from './aggregate.js';
import { addGaussian } from './noise.js';

/**
 * Differential privacy for what agents send (the Gaussian mechanism with Renyi-DP accounting).
 *
 * The mechanism (SPEC.md stream order): right after an agent forms a message (Delta_i, or its
 * report g_i, which it then keeps as its memory so the corrections still cancel), it clips the
 * message to Euclidean norm C and adds N(0, (SIGMA C)^2) noise per entry, drawn from its own
 * private stream (Box-Muller, noise.ts), before any simulated attack.
 *
 * Accounting. Neighbouring runs differ in one agent's message replaced by zero, so the L2
 * sensitivity of a clipped message is C and one message is the Gaussian mechanism with noise
 * multiplier SIGMA: Renyi-DP of order alpha epsilon_alpha = alpha / (2 SIGMA^2) (Mironov, "Renyi
 * differential privacy", CSF 2017, Prop. 7). Composition adds it over the messages an agent sent;
 * the (epsilon, delta) guarantee is epsilon = min over alpha of [sum + ln(1/delta) / (alpha - 1)]
 * (Mironov, Prop. 3), over the orders below.
 */
export const RDP_ORDERS: readonly number[] = [1.25, 1.5, 1.75, 2, 2.5, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64, 128, 256];

/** Clips x in place to Euclidean norm at most C (scaled by C / |x| when longer). */
export function clipInPlace(x: Float64Array, C: number): void {
  const n = euclidean(x);
  if (n > C) {
    const f = C / n;
    for (let j = 0; j < x.length; j++) x[j] = x[j]! * f;
  }
}

/** The Gaussian mechanism on a message: clip to C, add SIGMA C noise per entry from the agent's stream. */
export function privatize(x: Float64Array, clip: number, noise: number, rng: Uint32Array): void {
  clipInPlace(x, clip);
  if (noise > 0) addGaussian(x, noise * clip, rng);
}

/**
 * epsilon of `messages` Gaussian mechanisms with noise multiplier `sigma` at `delta`; Infinity
 * without noise (sigma = 0: clipping alone bounds nothing); 0 for no messages.
 */
export function dpEpsilon(messages: number, sigma: number, delta: number): number {
  if (messages === 0) return 0;
  if (!(sigma > 0)) return Infinity;
  let best = Infinity;
  for (const a of RDP_ORDERS) best = Math.min(best, (messages * a) / (2 * sigma * sigma) + Math.log(1 / delta) / (a - 1));
  return best;
}
