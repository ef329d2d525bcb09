import { averageStep } from './server-step.js';
import type { AlgorithmPlugin } from './types.js';

/** FedAvg-PG: H plain local ascent steps from theta_bar, then Eq. 7. */
export const fedavg: AlgorithmPlugin = {
  name: 'fedavg',
  rule: 'theta_i += eta g_hat_i(theta_i), H steps from theta_bar; Eq. 7',
  paper: 'McMahan et al., AISTATS 2017 (FedAvg), with policy gradients',
  flags: [],
  module: import.meta.url,
  topology: 'server',
  gradients: ['sampled', 'exact'],
  entropy: 'none',
  ownSettings: [],
  localSteps: (s) => s.localSteps,
  serverStepSize: (s) => s.alphaG,
  agentState: () => [],
  serverState: [],
  down: [],
  reports: 'none',
  estimatesPerRound: (s) => s.localSteps,
  localRound(a, theta) {
    a.ascend(theta, a.settings.localSteps, null);
  },
  serverStep(sv, deltas) {
    averageStep(sv, deltas, sv.settings.alphaG);
  },
};
