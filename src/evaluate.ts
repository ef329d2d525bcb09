import type { Backend, BackendChoice } from './backends/types.js';
import { loadBackend } from './backends/select.js';
import { InputError } from './errors.js';
import type { Mdp } from './mdp/model.js';
import { averageReward, environmentSpec, stackedRewards } from './mdp/model.js';

/**
 * The exact report of one policy, with the field names of the fixtures' expect files. V, Q,
 * Jstar and Vstar belong to the average MDP and are absent (not null) with per-agent kernels.
 */
export interface PolicyReport {
  backend: Backend['name'];
  /** J_i per agent. */
  J: number[];
  /** The mean of the J_i. */
  Javg: number;
  V?: number[];
  Q?: number[][];
  /** grad J_i per agent, [N][S][A]. */
  grad: number[][][];
  /** The mean of the agents' gradients: grad J (Proposition 1: also the average MDP's gradient). */
  gradAvg: number[][];
  Jstar?: number;
  Vstar?: number[];
  K?: number;
  JK?: number[];
  gradK?: number[][][];
}

function rows(t: Float64Array, A: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < t.length; i += A) out.push(Array.from(t.subarray(i, i + A)));
  return out;
}

export async function evaluatePolicy(
  mdp: Mdp,
  theta: Float64Array,
  options: { horizon?: number; backend?: Backend | BackendChoice } = {},
): Promise<PolicyReport> {
  const S = mdp.states, A = mdp.actions, SA = S * A, N = mdp.rewards.length;
  if (theta.length !== SA) throw new InputError(`theta has ${theta.length} values, expected states*actions = ${SA}`);
  const K = options.horizon;
  if (K !== undefined && (!Number.isSafeInteger(K) || K < 1)) throw new InputError(`horizon must be an integer >= 1, got ${K}`);
  const backend = typeof options.backend === 'object' ? options.backend : await loadBackend(options.backend);
  const envs = mdp.kernels.map((_, k) => backend.createEnvironment(environmentSpec(mdp, k)));
  try {
    const J = new Float64Array(N);
    const grad = new Float64Array(N * SA);
    const JK = new Float64Array(N);
    const gradK = new Float64Array(N * SA);
    const groups = envs.length === 1 ? [mdp.rewards.map((_, i) => i)] : envs.map((_, i) => [i]);
    // With one shared kernel the average MDP's reward rides along as one more table of the same
    // call (one factorisation, one occupancy solve; every table's solve is independent, so its
    // numbers are those of a call of its own).
    const withAverage = !mdp.perAgentKernels && envs.length === 1;
    const rbar = mdp.perAgentKernels ? null : averageReward(mdp);
    const avg = { J: new Float64Array(1), V: new Float64Array(S), Q: new Float64Array(SA), grad: new Float64Array(SA), occupancy: new Float64Array(S) };
    groups.forEach((agents, k) => {
      const env = envs[k]!;
      const n = agents.length;
      const m = n + (withAverage ? 1 : 0);
      const out = { J: new Float64Array(m), V: new Float64Array(m * S), Q: new Float64Array(m * SA), grad: new Float64Array(m * SA), occupancy: new Float64Array(S) };
      const rewards = stackedRewards(mdp, agents);
      let tables = rewards;
      if (withAverage) {
        tables = new Float64Array(m * SA);
        tables.set(rewards);
        tables.set(rbar!, n * SA);
      }
      env.evaluate(theta, tables, out);
      if (withAverage) {
        avg.V.set(out.V.subarray(n * S, m * S));
        avg.Q.set(out.Q.subarray(n * SA, m * SA));
      }
      const tr = { JK: new Float64Array(n), gradK: new Float64Array(n * SA) };
      if (K !== undefined) env.truncated(theta, rewards, K, tr);
      agents.forEach((i, q) => {
        J[i] = out.J[q]!;
        grad.set(out.grad.subarray(q * SA, (q + 1) * SA), i * SA);
        JK[i] = tr.JK[q]!;
        gradK.set(tr.gradK.subarray(q * SA, (q + 1) * SA), i * SA);
      });
    });
    let Javg = 0;
    for (let i = 0; i < N; i++) Javg += J[i]!;
    Javg /= N;
    const gradAvg = new Float64Array(SA);
    for (let i = 0; i < N; i++) for (let j = 0; j < SA; j++) gradAvg[j] = gradAvg[j]! + grad[i * SA + j]!;
    for (let j = 0; j < SA; j++) gradAvg[j] = gradAvg[j]! / N;
    const report: PolicyReport = {
      backend: backend.name,
      J: Array.from(J),
      Javg,
      grad: Array.from({ length: N }, (_, i) => rows(grad.subarray(i * SA, (i + 1) * SA), A)),
      gradAvg: rows(gradAvg, A),
    };
    if (rbar) {
      if (!withAverage) envs[0]!.evaluate(theta, rbar, avg);
      const vstar = new Float64Array(S);
      report.V = Array.from(avg.V);
      report.Q = rows(avg.Q, A);
      report.Jstar = envs[0]!.optimal(rbar, vstar);
      report.Vstar = Array.from(vstar);
    }
    if (K !== undefined) {
      report.K = K;
      report.JK = Array.from(JK);
      report.gradK = Array.from({ length: N }, (_, i) => rows(gradK.subarray(i * SA, (i + 1) * SA), A));
    }
    return report;
  } finally {
    envs.forEach((e) => e.dispose());
  }
}
