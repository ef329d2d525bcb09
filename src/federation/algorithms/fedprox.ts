import { averageStep } from './server-step.js';
import type { AlgorithmPlugin } from './types.js';

/**
 * FedProx (Li et al., MLSys 2020): local steps on J_i(theta) - (MU/2) |theta - theta_bar(t)|^2,
 * theta += eta (g_hat_i(theta) - MU (theta - theta_bar(t))); the server as FedAvg. The pull
 * changes with theta, so the round runs as H one-step calls with the pull as the correction.
 */
export const fedprox: AlgorithmPlugin = {
  name: 'fedprox',
  rule: 'theta_i += eta (g_hat_i(theta_i) - MU (theta_i - theta_bar)); Eq. 7',
  paper: 'Li et al., MLSys 2020',
  flags: ['--prox-mu MU'],
  module: import.meta.url,
  topology: 'server',
  gradients: ['sampled', 'exact'],
  entropy: 'none',
  ownSettings: ['proxMu'],
  localSteps: (s) => s.localSteps,
  serverStepSize: (s) => s.alphaG,
  agentState: () => [],
  serverState: [],
  down: [],
  reports: 'none',
  estimatesPerRound: (s) => s.localSteps,
  localRound(a, theta, start) {
    const mu = a.settings.proxMu;
    const pull = a.scratch('pull');
    for (let l = 0; l < a.settings.localSteps; l++) {
      for (let j = 0; j < pull.length; j++) pull[j] = -(mu * (theta[j]! - start[j]!));
      a.ascend(theta, 1, pull);
    }
  },
  serverStep(sv, deltas) {
    averageStep(sv, deltas, sv.settings.alphaG);
  },
};
