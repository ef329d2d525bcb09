import { fedavg } from './fedavg.js';
import type { AlgorithmPlugin } from './types.js';

/**
 * Entropy-regularised federated softmax PG (after Labbi et al., arXiv 2505.23459): FedAvg's
 * rounds on J_tau (the agent's estimator switches to the GPOMDP form with the entropy bonus).
 */
export const regfedpg: AlgorithmPlugin = {
  ...fedavg,
  name: 'regfedpg',
  rule: 'FedAvg on J_tau = J + tau H(pi): GPOMDP estimates with the entropy bonus; Eq. 7',
  paper: 'Labbi et al., arXiv 2505.23459',
  flags: ['--entropy TAU (required)'],
  module: import.meta.url,
  entropy: 'required',
};
