import { availableParallelism } from 'node:os';
import type { Backend, BackendChoice, Environment, TransitionTable } from './backends/types.js';
import { loadBackend } from './backends/select.js';
import { InputError } from './errors.js';
import type { Mdp } from './mdp/model.js';
import { averageReward, environmentSpec } from './mdp/model.js';

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

/**
 * The exact report as flat typed arrays (row-major, the layout of the .npz `evaluate --out`
 * writes): what evaluatePolicy computes before it builds the nested JSON arrays. At 10^6 states
 * the nested form costs more time and memory than the solves, so `evaluate --out` uses this.
 */
export interface PolicyArrays {
  backend: Backend['name'];
  states: number;
  actions: number;
  J: Float64Array;
  Javg: number;
  /** [S] (absent with per-agent kernels, like Q, Jstar, Vstar). */
  V?: Float64Array;
  /** [S*A]. */
  Q?: Float64Array;
  /** [N*S*A]. */
  grad: Float64Array;
  /** [S*A]. */
  gradAvg: Float64Array;
  Jstar?: number;
  Vstar?: Float64Array;
  /** [S] of the average MDP, or [N*S] (one row per agent) with per-agent kernels. */
  policyStar: Int32Array;
  perAgentPolicyStar: boolean;
  JstarPerAgent: Float64Array;
  K?: number;
  JK?: Float64Array;
  /** [N*S*A]. */
  gradK?: Float64Array;
}

/** An environment that can also run J* on the thread pool (the native backend's *Async variants). */
interface PoolOptimal {
  optimalAsync(reward: Float64Array, vOut: Float64Array): Promise<number>;
}
const hasPoolOptimal = (e: Environment): e is Environment & PoolOptimal => typeof (e as Partial<PoolOptimal>).optimalAsync === 'function';

/**
 * Runs `jobs` with at most `limit` in flight. The J* solves (one per agent and the average MDP's)
 * are independent, so on a backend with a thread pool they overlap each other and the evaluation
 * on the main thread; each job's numbers are those of a call of its own (its own workspace).
 */
async function inPool<T>(jobs: (() => Promise<T>)[], limit: number): Promise<T[]> {
  const out: T[] = new Array(jobs.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < jobs.length) {
      const k = next++;
      out[k] = await jobs[k]!();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, jobs.length)) }, lane));
  return out;
}

export interface EvaluateOptions {
  horizon?: number;
  backend?: Backend | BackendChoice;
  /** J* solves run at once on a backend with a thread pool (default: the cores, at most the pool's threads). */
  concurrency?: number;
}

export async function evaluatePolicy(mdp: Mdp, theta: Float64Array, options: EvaluateOptions = {}): Promise<PolicyReport> {
  return policyReport(await evaluatePolicyArrays(mdp, theta, options));
}

/** The nested JSON form of a report (the fixtures' field names and shapes). */
export function policyReport(a: PolicyArrays): PolicyReport {
  const S = a.states, A = a.actions, SA = S * A, N = a.J.length;
  const report: PolicyReport = {
    backend: a.backend,
    J: Array.from(a.J),
    Javg: a.Javg,
    grad: Array.from({ length: N }, (_, i) => rows(a.grad.subarray(i * SA, (i + 1) * SA), A)),
    gradAvg: rows(a.gradAvg, A),
    policyStar: a.perAgentPolicyStar ? Array.from({ length: N }, (_, i) => Array.from(a.policyStar.subarray(i * S, (i + 1) * S))) : Array.from(a.policyStar),
    JstarPerAgent: Array.from(a.JstarPerAgent),
  };
  if (a.V) report.V = Array.from(a.V);
  if (a.Q) report.Q = rows(a.Q, A);
  if (a.Jstar !== undefined) report.Jstar = a.Jstar;
  if (a.Vstar) report.Vstar = Array.from(a.Vstar);
  if (a.K !== undefined) {
    report.K = a.K;
    report.JK = Array.from(a.JK!);
    report.gradK = Array.from({ length: N }, (_, i) => rows(a.gradK!.subarray(i * SA, (i + 1) * SA), A));
  }
  return report;
}

export async function evaluatePolicyArrays(mdp: Mdp, theta: Float64Array, options: EvaluateOptions = {}): Promise<PolicyArrays> {
  const S = mdp.states, A = mdp.actions, SA = S * A, N = mdp.rewards.length;
  if (theta.length !== SA) throw new InputError(`theta has ${theta.length} values, expected states*actions = ${SA}`);
  const K = options.horizon;
  if (K !== undefined && (!Number.isSafeInteger(K) || K < 1)) throw new InputError(`horizon must be an integer >= 1, got ${K}`);
  const backend = typeof options.backend === 'object' ? options.backend : await loadBackend(options.backend);
  const envs = mdp.kernels.map((_, k) => backend.createEnvironment(environmentSpec(mdp, k)));
  const envOf = (i: number): Environment => envs[envs.length === 1 ? 0 : i]!;
  try {
    const rbar = mdp.perAgentKernels ? null : averageReward(mdp);
    // The J* solves: each agent's own (JstarPerAgent) and the average MDP's, with V* out. Started
    // first, so that on a backend with a thread pool they run beside the evaluation below.
    const optima: { env: Environment; reward: Float64Array; v: Float64Array }[] = mdp.rewards.map((r, i) => ({ env: envOf(i), reward: r, v: new Float64Array(S) }));
    if (rbar) optima.push({ env: envs[0]!, reward: rbar, v: new Float64Array(S) });
    const pooled = optima.every((o) => hasPoolOptimal(o.env));
    // No more jobs in flight than the pool has threads (libuv's, 4 unless UV_THREADPOOL_SIZE says
    // otherwise): a queued job already holds copies of its reward table and V*.
    const limit = options.concurrency ?? Math.min(availableParallelism(), Number(process.env.UV_THREADPOOL_SIZE) || 4);
    const optimaDone = pooled
      ? inPool(optima.map((o) => () => (o.env as Environment & PoolOptimal).optimalAsync(o.reward, o.v)), limit)
      : null;
    // Until the pool is awaited, a failure below must not leave its promise unobserved.
    optimaDone?.catch(() => undefined);

    const J = new Float64Array(N);
    let grad = new Float64Array(0);
    const JK = new Float64Array(N);
    let gradK = new Float64Array(0);
    let V: Float64Array | undefined, Q: Float64Array | undefined;
    if (envs.length === 1) {
      // One shared kernel: every agent's table and (without per-agent kernels) the average MDP's
      // ride in one call (one factorisation, one occupancy solve; every table's solve is
      // independent, so its numbers are those of a call of its own), and the outputs are used in
      // place: grad is the first N*S*A entries, V and Q of the average the last table's.
      const m = N + (rbar ? 1 : 0);
      const tables = new Float64Array(m * SA);
      mdp.rewards.forEach((r, i) => tables.set(r, i * SA));
      if (rbar) tables.set(rbar, N * SA);
      const out = { J: new Float64Array(m), V: new Float64Array(m * S), Q: new Float64Array(m * SA), grad: new Float64Array(m * SA), occupancy: new Float64Array(S) };
      envs[0]!.evaluate(theta, tables, out);
      J.set(out.J.subarray(0, N));
      grad = out.grad.subarray(0, N * SA);
      if (rbar) {
        V = out.V.subarray(N * S, m * S);
        Q = out.Q.subarray(N * SA, m * SA);
      }
      if (K !== undefined) {
        const tr = { JK, gradK: new Float64Array(N * SA) };
        envs[0]!.truncated(theta, tables.subarray(0, N * SA), K, tr);
        gradK = tr.gradK;
      }
    } else {
      grad = new Float64Array(N * SA);
      if (K !== undefined) gradK = new Float64Array(N * SA);
      envs.forEach((env, i) => {
        const out = { J: new Float64Array(1), V: new Float64Array(S), Q: new Float64Array(SA), grad: new Float64Array(SA), occupancy: new Float64Array(S) };
        env.evaluate(theta, mdp.rewards[i]!, out);
        J[i] = out.J[0]!;
        grad.set(out.grad, i * SA);
        if (K !== undefined) {
          const tr = { JK: new Float64Array(1), gradK: new Float64Array(SA) };
          env.truncated(theta, mdp.rewards[i]!, K, tr);
          JK[i] = tr.JK[0]!;
          gradK.set(tr.gradK, i * SA);
        }
      });
    }
    let Javg = 0;
    for (let i = 0; i < N; i++) Javg += J[i]!;
    Javg /= N;
    const gradAvg = new Float64Array(SA);
    for (let i = 0; i < N; i++) for (let j = 0; j < SA; j++) gradAvg[j] = gradAvg[j]! + grad[i * SA + j]!;
    for (let j = 0; j < SA; j++) gradAvg[j] = gradAvg[j]! / N;

    const values = optimaDone ? await optimaDone : optima.map((o) => o.env.optimal(o.reward, o.v));
    const report: PolicyArrays = {
      backend: backend.name,
      states: S,
      actions: A,
      J,
      Javg,
      grad,
      gradAvg,
      policyStar: new Int32Array(0),
      perAgentPolicyStar: !rbar,
      JstarPerAgent: Float64Array.from(values.slice(0, N)),
    };
    if (rbar) {
      const vstar = optima[N]!.v;
      report.V = V;
      report.Q = Q;
      report.Jstar = values[N]!;
      report.Vstar = vstar;
      report.policyStar = Int32Array.from(greedyActions(optimalQ(mdp.kernels[0]!, S, A, mdp.gamma, rbar, vstar), S, A));
    } else {
      // Per-agent kernels: each agent's own MDP's greedy policy, from its J* solve's V*.
      report.policyStar = new Int32Array(N * S);
      mdp.rewards.forEach((r, i) => report.policyStar.set(greedyActions(optimalQ(mdp.kernels[i]!, S, A, mdp.gamma, r, optima[i]!.v), S, A), i * S));
    }
    if (K !== undefined) {
      report.K = K;
      report.JK = JK;
      report.gradK = gradK;
    }
    return report;
  } finally {
    envs.forEach((e) => e.dispose());
  }
}
