import type { Backend, BackendChoice, TransitionTable } from './backends/types.js';
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
  /**
   * A greedy optimal policy: per state the lowest action index whose Q* = R + gamma P V* is within
   * POLICY_STAR_TIE of the best. Of the average MDP (one array of S actions); with per-agent
   * kernels, of every agent's own MDP (P_i, R_i): one array per agent.
   */
  policyStar: number[] | number[][];
  /** J_i*: each agent's own optimum (its own rewards, its own kernel): Ditto's personal gap is against these. */
  JstarPerAgent: number[];
  K?: number;
  JK?: number[];
  gradK?: number[][][];
}

/** Actions whose Q* is within this of the best count as optimal (ties go to the lowest index). */
export const POLICY_STAR_TIE = 1e-12;

/** Q*(s, a) = r(s, a) + gamma sum_s' P(s' | s, a) V*(s'), for a dense or CSR kernel. */
export function optimalQ(P: TransitionTable, S: number, A: number, gamma: number, r: Float64Array, vstar: Float64Array): Float64Array {
  const q = new Float64Array(S * A);
  for (let row = 0; row < S * A; row++) {
    let ev = 0;
    if (P.kind === 'dense') for (let t = 0; t < S; t++) ev += P.p[row * S + t]! * vstar[t]!;
    else for (let k = P.rowStart[row]!; k < P.rowStart[row + 1]!; k++) ev += P.prob[k]! * vstar[P.next[k]!]!;
    q[row] = r[row]! + gamma * ev;
  }
  return q;
}

/** Per state, the lowest action within POLICY_STAR_TIE of the best Q*. */
export function greedyActions(q: Float64Array, S: number, A: number): number[] {
  const out: number[] = [];
  for (let s = 0; s < S; s++) {
    let best = -Infinity;
    for (let a = 0; a < A; a++) best = Math.max(best, q[s * A + a]!);
    let pick = 0;
    while (q[s * A + pick]! < best - POLICY_STAR_TIE) pick++;
    out.push(pick);
  }
  return out;
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
      policyStar: [],
      JstarPerAgent: mdp.rewards.map((r, i) => envs[envs.length === 1 ? 0 : i]!.optimal(r, new Float64Array(S))),
    };
    if (rbar) {
      if (!withAverage) envs[0]!.evaluate(theta, rbar, avg);
      const vstar = new Float64Array(S);
      report.V = Array.from(avg.V);
      report.Q = rows(avg.Q, A);
      report.Jstar = envs[0]!.optimal(rbar, vstar);
      report.Vstar = Array.from(vstar);
      report.policyStar = greedyActions(optimalQ(mdp.kernels[0]!, S, A, mdp.gamma, rbar, vstar), S, A);
    } else {
      report.policyStar = mdp.rewards.map((r, i) => {
        const v = new Float64Array(S);
        envs[i]!.optimal(r, v);
        return greedyActions(optimalQ(mdp.kernels[i]!, S, A, mdp.gamma, r, v), S, A);
      });
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
