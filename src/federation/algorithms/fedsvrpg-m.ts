import { aggregateInto, sumInto } from '../aggregate.js';
import { aggregateVector } from './server-step.js';
import type { AlgorithmPlugin } from './types.js';

/**
 * FedSVRPG-M (Wang, He, Zhang, Miao, Anderson, "Momentum for the win", ICML 2024), as SPEC.md
 * restates it ("The two closest rivals"; the paper's algorithm box was not available): the server
 * keeps theta_bar, the previous model theta_prev and a global direction u, and sends all three
 * down. Each local step draws ONE batch under theta_{i,l} and uses it twice:
 *   d = BETA g(tau|theta_{i,l}) + (1 - BETA) (u + g(tau|theta_{i,l}) - w g(tau|theta_prev))
 * with GPOMDP estimates and per-trajectory importance weights w clipped to [1/C, C]. The server
 * sets u = S / (n eta H) from the deltas' sum S, theta_prev = theta_bar and theta_bar += (alpha_g/n) S
 * (Eq. 7's expression, so BETA = 1 is FedAvg bit for bit with exact gradients).
 * Exact gradients: g = grad J_i and w g(theta_prev) = grad J_i(theta_prev), which is constant
 * within the round, so the local round is H steps with the constant correction
 * (1 - BETA)(u - grad J_i(theta_prev)).
 */
export const fedsvrpgM: AlgorithmPlugin = {
  name: 'fedsvrpg-m',
  rule: 'd = BETA g(theta_i) + (1-BETA)(u + g(theta_i) - w g(theta_prev)) on one batch; u = sum Delta / (n eta H); Eq. 7',
  paper: 'Wang, He, Zhang, Miao, Anderson, ICML 2024',
  flags: ['--momentum-beta BETA', '--is-clip C'],
  module: import.meta.url,
  topology: 'server',
  gradients: ['sampled', 'exact'],
  entropy: 'none',
  ownSettings: ['momentumBeta', 'isClip'],
  localSteps: (s) => s.localSteps,
  serverStepSize: (s) => s.alphaG,
  agentState: () => [],
  serverState: ['thetaPrev', 'u'],
  down: ['thetaPrev', 'u'],
  reports: 'initial',
  estimatesPerRound: (s) => s.localSteps,
  initServer(sv) {
    sv.vector('thetaPrev').set(sv.thetaBar);
  },
  localRound(a, theta, _start, [thetaPrev, u]) {
    const s = a.settings;
    const beta = s.momentumBeta;
    if (s.gradient === 'exact') {
      const gPrev = a.scratch('grad-prev');
      a.gradient(thetaPrev!, gPrev);
      const c = a.scratch('correction');
      for (let j = 0; j < c.length; j++) c[j] = (1 - beta) * (u![j]! - gPrev[j]!);
      a.ascend(theta, s.localSteps, c);
      return;
    }
    a.env.localRound({
      theta,
      reward: a.reward,
      correction: null,
      eta: s.eta,
      steps: s.localSteps,
      gradient: 'sampled',
      horizon: s.horizon,
      batch: s.batch,
      rng: a.rng,
      svrpg: { thetaPrev: thetaPrev!, u: u!, beta, clip: s.isClip },
    });
  },
  report(a, theta, out) {
    // The initial direction: one GPOMDP batch (w = 1), or the exact gradient.
    const s = a.settings;
    if (s.gradient === 'exact') a.gradient(theta, out);
    else a.env.estimateRegularized(theta, a.reward, 0, s.horizon, s.batch, a.rng, out);
  },
  serverStep(sv, deltas) {
    const s = sv.settings;
    const n = deltas.length;
    const u = sv.vector('u');
    const prev = sv.vector('thetaPrev');
    const t = sv.thetaBar;
    const acc = sv.scratch('aggregate');
    if (sv.rule.kind === 'mean') {
      sumInto(acc, deltas);
      const scale = s.alphaG / n;
      for (let j = 0; j < t.length; j++) {
        u[j] = acc[j]! / (n * s.eta * s.localSteps);
        prev[j] = t[j]!;
        t[j] = t[j]! + scale * acc[j]!;
      }
      return;
    }
    aggregateInto(acc, deltas, sv.rule);
    for (let j = 0; j < t.length; j++) {
      u[j] = acc[j]! / (s.eta * s.localSteps);
      prev[j] = t[j]!;
      t[j] = t[j]! + s.alphaG * acc[j]!;
    }
  },
  serverReports(sv, reports, initial) {
    if (initial) aggregateVector(sv, 'u', reports);
  },
};
