import { aggregateInto, stepWithRule } from '../aggregate.js';
import type { ServerSide } from './types.js';

/**
 * Eq. 7 with the run's aggregation rule: theta_bar + (alpha_g / n) sum_i Delta_i for `mean`
 * (today's expression, bit for bit), theta_bar + alpha_g agg(Delta_i) otherwise.
 */
export function averageStep(sv: ServerSide, deltas: readonly Float64Array[], alpha: number): void {
  stepWithRule(sv.thetaBar, deltas, alpha, sv.rule, sv.scratch('aggregate'));
}

/** agg(xs) into the server vector `name` (the mean of the agents' memories, for Fast-FedPG). */
export function aggregateVector(sv: ServerSide, name: string, xs: readonly Float64Array[]): void {
  aggregateInto(sv.vector(name), xs, sv.rule);
}
