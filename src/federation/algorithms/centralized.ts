import { averageStep } from './server-step.js';
import type { AlgorithmPlugin } from './types.js';

/**
 * Centralised minibatch PG: one learner that sees every agent's fresh estimate at every step,
 * theta += eta (1/N) sum_i g_hat_i(theta): FedAvg with one local step and alpha_g = 1.
 */
export const centralized: AlgorithmPlugin = {
  name: 'centralized',
  rule: 'theta += eta (1/N) sum_i g_hat_i(theta): one step per round, alpha_g = 1',
  paper: 'baseline (SPEC.md)',
  flags: [],
  module: import.meta.url,
  topology: 'server',
  gradients: ['sampled', 'exact'],
  entropy: 'none',
  ownSettings: [],
  localSteps: () => 1,
  serverStepSize: () => 1,
  agentState: () => [],
  serverState: [],
  down: [],
  reports: 'none',
  estimatesPerRound: () => 1,
  localRound(a, theta) {
    a.ascend(theta, 1, null);
  },
  serverStep(sv, deltas) {
    averageStep(sv, deltas, 1);
  },
};
