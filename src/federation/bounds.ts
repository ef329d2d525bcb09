import { algorithmOf } from './algorithms/registry.js';
import { parsePersonalize } from './personalize.js';
import type { TrainSettings } from './settings.js';

/**
 * How large an honest agent's messages can be, from the problem's scales, so a server can refuse
 * an update no honest agent could send (a huge but finite delta would otherwise drive theta_bar
 * to infinity). The bounds are generous (a factor 2 over the worst case) and documented in
 * docs/NETWORK.md:
 * - one gradient estimate: Eq. 5 and GPOMDP are at most (sum_{t<K} gamma^t) (1 + tau L) K sqrt(2)
 *   in Euclidean norm (returns of rewards in [0, 1], K score vectors e_a - pi of norm <= sqrt(2);
 *   with the entropy bonus, |log pi| at a sampled action is taken to be at most L = 50); an exact
 *   gradient at most (1 + tau (log A + 1)) / (1 - gamma)^2 (its L1 norm);
 * - a local step moves theta by eta times at most `stepFactor` estimates (Fast-FedPG adds g - g_i:
 *   3; FedSVRPG-M adds u and an importance-weighted estimate: 3 + C; FedProx's and Ditto's pulls
 *   grow with the drift: (1 + eta MU H));
 * - Delta_i is H such steps; a report is one estimate;
 * - differential privacy adds Gaussian noise of norm about SIGMA C sqrt(S A): the bound adds
 *   SIGMA C (sqrt(S A) + 10), more than 10 standard deviations above it.
 */
export interface UpdateBounds {
  delta: number;
  report: number;
  /** The largest J_i can be: rewards in [0, 1] give J_i in [0, 1 / (1 - gamma)]. */
  objective: number;
}

const LOG_PI_BOUND = 50;

export function gradientBound(s: TrainSettings, gamma: number, actions: number): number {
  const tau = s.entropy;
  if (s.gradient === 'exact') return (1 + tau * (Math.log(actions) + 1)) / ((1 - gamma) * (1 - gamma));
  const discounted = (1 - gamma ** s.horizon) / (1 - gamma);
  return discounted * (1 + tau * LOG_PI_BOUND) * s.horizon * Math.SQRT2;
}

export function updateBounds(s: TrainSettings, gamma: number, states: number, actions: number, dp?: { clip: number; noise: number }): UpdateBounds {
  const alg = algorithmOf(s.algorithm);
  const G = gradientBound(s, gamma, actions);
  let stepFactor = 1;
  if (alg.name === 'fast-fedpg') stepFactor = 3;
  if (alg.name === 'fedsvrpg-m') stepFactor = 3 + (s.isClip > 0 ? s.isClip : 1e6);
  const H = alg.localSteps(s);
  if (alg.name === 'fedprox') stepFactor *= 1 + s.eta * s.proxMu * H;
  const ditto = parsePersonalize(s.personalize);
  if (ditto.kind === 'ditto') stepFactor *= 1 + s.eta * ditto.lambda * H;
  const clip = s.dpClip > 0 ? s.dpClip : (dp?.clip ?? 0);
  const sigma = s.dpClip > 0 ? s.dpNoise : (dp?.noise ?? 0);
  const noise = sigma * clip * (Math.sqrt(states * actions) + 10);
  // Clipped messages are at most C long before their noise.
  const cap = (x: number): number => (clip > 0 ? Math.min(x, clip) : x);
  return {
    delta: cap(2 * s.eta * H * stepFactor * G) + noise,
    report: cap(2 * stepFactor * G) + noise,
    objective: 1 / (1 - gamma),
  };
}
