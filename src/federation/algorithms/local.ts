import type { AlgorithmPlugin } from './types.js';

/** Local PG: each agent ascends its own J_i alone and never communicates. */
export const local: AlgorithmPlugin = {
  name: 'local',
  rule: 'theta_i += eta g_hat_i(theta_i) for ever; no communication',
  paper: 'baseline (SPEC.md)',
  flags: [],
  module: import.meta.url,
  topology: 'local',
  gradients: ['sampled', 'exact'],
  entropy: 'none',
  ownSettings: [],
  localSteps: (s) => s.localSteps,
  serverStepSize: () => 0,
  agentState: () => ['theta'],
  serverState: [],
  down: [],
  reports: 'none',
  estimatesPerRound: (s) => s.localSteps,
  localRound(a, theta) {
    a.ascend(theta, a.settings.localSteps, null);
  },
};
