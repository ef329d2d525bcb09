import { InputError } from '../../errors.js';
import type { AlgorithmPlugin } from './types.js';

/**
 * FedNPG (Yang, Cen, Wei, Chen, Chi, "Federated natural policy gradient and actor critic methods
 * for multi-task RL", NeurIPS 2024), as SPEC.md restates it ("The two closest rivals"; the paper's
 * algorithm box was not available): decentralised, no server. Agent n keeps its log-policy theta_n
 * and a tracker T_n of the average Q; each round it mixes with its neighbours through W:
 *   theta_n' = sum_m W[n,m] (alpha theta_m + (eta / (1 - gamma)) T_m),  alpha = 1 - eta tau / (1 - gamma)
 *   T_n'     = sum_m W[n,m] (T_m + Q_tau,m(theta_m') - Q_tau,m(theta_m))
 * Each agent's own work is its exact entropy-regularised Q at its own parameters (its report);
 * the mixing is what its neighbours would compute from what it sends them (theta_n and T_n), so
 * in simulation the runtime applies `mix` over every agent's vectors. Exact gradients only.
 */
export const fednpg: AlgorithmPlugin = {
  name: 'fednpg',
  rule: 'theta_n = sum_m W (alpha theta_m + eta/(1-gamma) T_m); T_n tracks mean_m Q_tau,m (gradient tracking)',
  paper: 'Yang, Cen, Wei, Chen, Chi, NeurIPS 2024',
  flags: ['--topology complete|ring|er:P', '--entropy TAU'],
  module: import.meta.url,
  topology: 'peers',
  gradients: ['exact'],
  defaultGradient: 'exact',
  entropy: 'optional',
  ownSettings: ['topology'],
  localSteps: () => 1,
  serverStepSize: () => 0,
  agentState: () => ['theta', 'tracker', 'q'],
  serverState: [],
  down: [],
  reports: 'none',
  estimatesPerRound: () => 0,
  localRound() {
    throw new Error('fednpg has no local round: its agents only report Q at their own parameters');
  },
  /** The agent's exact Q_tau at theta (its own parameters) into out. */
  report(a, theta, out) {
    const tau = a.settings.entropy;
    const S = a.env.states;
    const ev = { J: new Float64Array(1), V: new Float64Array(S), Q: out, grad: a.scratch('grad'), occupancy: new Float64Array(S) };
    if (tau > 0) a.env.evaluateRegularized(theta, a.reward, tau, ev);
    else a.env.evaluate(theta, a.reward, ev);
  },
};

/** alpha = 1 - eta tau / (1 - gamma), refused when <= 0. */
export function npgAlpha(eta: number, tau: number, gamma: number): number {
  const alpha = 1 - (eta * tau) / (1 - gamma);
  if (!(alpha > 0)) throw new InputError(`fednpg needs alpha = 1 - eta * tau / (1 - gamma) > 0, got ${alpha} (eta ${eta}, entropy ${tau}, gamma ${gamma}): lower --eta or --entropy`);
  return alpha;
}

/** theta_n' = sum_m W[n,m] (alpha theta_m + c T_m) for every n, summed in agent order. */
export function mixParameters(W: Float64Array, alpha: number, c: number, thetas: readonly Float64Array[], trackers: readonly Float64Array[], out: Float64Array[]): void {
  const N = thetas.length;
  for (let n = 0; n < N; n++) {
    const o = out[n]!;
    o.fill(0);
    for (let m = 0; m < N; m++) {
      const w = W[n * N + m]!;
      if (w === 0) continue;
      const th = thetas[m]!, tr = trackers[m]!;
      for (let j = 0; j < o.length; j++) o[j] = o[j]! + w * (alpha * th[j]! + c * tr[j]!);
    }
  }
}

/** T_n' = sum_m W[n,m] (T_m + Qnew_m - Qold_m) for every n, summed in agent order. */
export function mixTrackers(W: Float64Array, trackers: readonly Float64Array[], qNew: readonly Float64Array[], qOld: readonly Float64Array[], out: Float64Array[]): void {
  const N = trackers.length;
  for (let n = 0; n < N; n++) {
    const o = out[n]!;
    o.fill(0);
    for (let m = 0; m < N; m++) {
      const w = W[n * N + m]!;
      if (w === 0) continue;
      const t = trackers[m]!, qn = qNew[m]!, qo = qOld[m]!;
      for (let j = 0; j < o.length; j++) o[j] = o[j]! + w * (t[j]! + qn[j]! - qo[j]!);
    }
  }
}
