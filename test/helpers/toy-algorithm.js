/**
 * A toy algorithm plug-in in its own module, as a user would write one (plain JavaScript, no
 * imports from fast-fedpg): worker threads load it by this module's URL. It exercises every part
 * of the plug-in contract: a server vector sent down each round, a server vector kept, an
 * agent-side kept vector, and its own server step.
 *
 * Rule: FedAvg local steps with a drag -0.05 * s (s: the server's running sum of the mean
 * deltas, sent down); each agent keeps the trace of its own deltas; the server steps
 * theta_bar += 0.5 * mean(Delta_i) and s += mean(Delta_i).
 */
export const toyAlgorithm = {
  name: 'toy-drag',
  rule: 'theta_i += eta (g_hat_i - 0.05 s); theta_bar += 0.5 mean(Delta_i); s += mean(Delta_i)',
  paper: 'a test plug-in',
  flags: [],
  module: import.meta.url,
  topology: 'server',
  gradients: ['sampled', 'exact'],
  entropy: 'none',
  ownSettings: [],
  localSteps: (s) => s.localSteps,
  serverStepSize: () => 0.5,
  agentState: () => ['trace'],
  serverState: ['sum', 'mean'],
  down: ['sum'],
  reports: 'none',
  estimatesPerRound: (s) => s.localSteps,
  localRound(a, theta, start, [sum]) {
    const c = a.scratch('drag');
    for (let j = 0; j < c.length; j++) c[j] = -0.05 * sum[j];
    a.ascend(theta, a.settings.localSteps, c);
    const trace = a.kept('trace');
    for (let j = 0; j < trace.length; j++) trace[j] += theta[j] - start[j];
  },
  serverStep(sv, deltas) {
    const mean = sv.vector('mean');
    mean.fill(0);
    for (const d of deltas) for (let j = 0; j < mean.length; j++) mean[j] += d[j];
    const sum = sv.vector('sum');
    for (let j = 0; j < mean.length; j++) {
      mean[j] /= deltas.length;
      sum[j] += mean[j];
      sv.thetaBar[j] += 0.5 * mean[j];
    }
  },
};
