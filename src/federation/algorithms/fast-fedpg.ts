import { aggregateVector, averageStep } from './server-step.js';
import type { AlgorithmPlugin } from './types.js';

/**
 * Fast-FedPG (Zhu, Heath, Mitra, CDC 2024, Algorithm 1): FedAvg's local steps plus the
 * correction g - g_i, where g_i is the very sample the agent sent at theta_bar(t) (its memory)
 * and g the server's mean of those samples. Because the agent subtracts the same sample the
 * server averaged, the corrections sum to zero over the agents and the drift of FedAvg cancels.
 * `--correction fresh` (an ablation) subtracts a new sample instead, which breaks that.
 */
export const fastFedpg: AlgorithmPlugin = {
  name: 'fast-fedpg',
  rule: 'theta_i += eta (g_hat_i(theta_i) - g_i(theta_bar) + g(theta_bar)) with g_i the remembered sample; Eq. 7; g = agg of the memories',
  paper: 'Zhu, Heath, Mitra, CDC 2024',
  flags: ['--correction memory|fresh', '--entropy TAU'],
  module: import.meta.url,
  topology: 'server',
  gradients: ['sampled', 'exact'],
  entropy: 'optional',
  ownSettings: ['correction'],
  localSteps: (s) => s.localSteps,
  serverStepSize: (s) => s.alphaG,
  agentState: () => ['memory'],
  serverState: ['g'],
  down: ['g'],
  reports: 'every-round',
  keepsReport: 'memory',
  estimatesPerRound: (s) => s.localSteps + (s.correction === 'fresh' ? 1 : 0),
  localRound(a, theta, start, [g]) {
    let mine = a.kept('memory');
    if (a.settings.correction === 'fresh') {
      mine = a.scratch('fresh');
      a.gradient(start, mine);
    }
    const c = a.scratch('correction');
    for (let j = 0; j < c.length; j++) c[j] = g![j]! - mine[j]!;
    a.ascend(theta, a.settings.localSteps, c);
  },
  report(a, theta, out) {
    a.gradient(theta, out);
  },
  serverStep(sv, deltas) {
    averageStep(sv, deltas, sv.settings.alphaG);
  },
  serverReports(sv, reports) {
    aggregateVector(sv, 'g', reports);
  },
};
