import { averageStep } from './server-step.js';
import type { AlgorithmPlugin } from './types.js';

/**
 * FedProx (Li et al., MLSys 2020): local steps on J_i(theta) - (MU/2) |theta - theta_bar(t)|^2,
 * theta += eta (g_hat_i(theta) - MU (theta - theta_bar(t))); the server as FedAvg. Sampled rounds
 * run in one call with the pull (LocalRoundArgs.pull); exact ones, whose pull changes with theta, as
 * H one-step calls with the pull as the correction.
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
    const s = a.settings;
    const mu = s.proxMu;
    if (s.gradient === 'sampled' && !(s.entropy > 0)) {
      // All H steps in one call: the kernel applies the pull as a per-row decay (LocalRoundArgs.pull).
      a.env.localRound({
        theta, reward: a.reward, correction: null, eta: s.eta, steps: s.localSteps, gradient: 'sampled',
        horizon: s.horizon, batch: s.batch, rng: a.rng, pull: { weight: mu, center: start },
      });
      return;
    }
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
