import { aggregateInto } from '../aggregate.js';
import type { AlgorithmPlugin } from './types.js';

/**
 * FedAvgM, server momentum (Hsu et al., 2019): FedAvg's local steps; the server keeps
 * v <- BETA v + agg(Delta_i) (v = 0 before round 1) and steps theta_bar += alpha_g v.
 */
export const fedavgm: AlgorithmPlugin = {
  name: 'fedavgm',
  rule: 'FedAvg local steps; v = BETA v + agg(Delta_i); theta_bar += alpha_g v',
  paper: 'Hsu, Qi, Brown, arXiv 1909.06335 (2019)',
  flags: ['--server-momentum BETA'],
  module: import.meta.url,
  topology: 'server',
  gradients: ['sampled', 'exact'],
  entropy: 'none',
  ownSettings: ['serverMomentum'],
  localSteps: (s) => s.localSteps,
  serverStepSize: (s) => s.alphaG,
  agentState: () => [],
  serverState: ['v'],
  down: [],
  reports: 'none',
  estimatesPerRound: (s) => s.localSteps,
  localRound(a, theta) {
    a.ascend(theta, a.settings.localSteps, null);
  },
  serverStep(sv, deltas) {
    const v = sv.vector('v');
    const d = aggregateInto(sv.scratch('aggregate'), deltas, sv.rule);
    const beta = sv.settings.serverMomentum;
    const alpha = sv.settings.alphaG;
    const t = sv.thetaBar;
    for (let j = 0; j < v.length; j++) {
      v[j] = beta * v[j]! + d[j]!;
      t[j] = t[j]! + alpha * v[j]!;
    }
  },
};
