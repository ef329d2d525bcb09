import { jsBackend } from '../backends/js/index.js';
import { loadBackendByName } from '../backends/select.js';
import type { BackendName, Environment, TransitionTable } from '../backends/types.js';
import type { TrainSettings } from '../federation/settings.js';
import { Training } from '../federation/train.js';
import { averageReward, environmentSpec, type Mdp } from '../mdp/model.js';

/**
 * One run of an experiment: one train() call (one algorithm, one setting, one seed) and the
 * numbers the experiment's summary needs, measured inside the run. Tasks are plain data
 * (structured-cloneable, typed arrays included), so the same function runs in the main thread
 * and in a pool thread, and a run's result depends on its task alone, never on the thread.
 */
export interface RunTask {
  /** Position in the experiment's run list (results are ordered by it, whatever finishes first). */
  index: number;
  /** The run's coordinates in the experiment (algorithm, N, H, ...): what the summary groups by. */
  cell: Record<string, string | number>;
  mdp: Mdp;
  settings: Partial<TrainSettings>;
  backend: BackendName;
  /** Checkpoints per decade of rounds for the stored curve (log-spaced); round 0 and T always. */
  pointsPerDecade: number;
  /** Also this many evenly spaced checkpoints (for plots with a linear round axis). */
  linearPoints?: number;
  /** When set (shared kernel only): also record the entropy-regularised gap J_tau* - J_tau at each checkpoint. */
  regularizedTau?: number;
  /** Record |grad_K J - grad J| of the average MDP (K = settings.horizon) at theta0 and at the final theta. */
  truncationBias?: boolean;
  /** The initial theta [S*A] (zeros when omitted). */
  theta0?: Float64Array;
  /** Also record these round-record fields at each checkpoint (curve.extra; null where a record lacks one). */
  record?: ExtraField[];
  /** Record every agent's J_i after the last round (final.agentJ; for `local`, J_i(theta_i)). */
  finalAgentJ?: boolean;
  /** Record the final theta_bar's greedy action per state (final.greedy). */
  greedy?: boolean;
  /** Score the final theta_bar on this reward table (same kernel): final.scoredGap = its J* - its J. */
  scoreOn?: Float64Array;
}

/** Round-record fields an experiment may ask a run to keep at its checkpoints. */
export type ExtraField = 'bytes' | 'trajectories' | 'personalGap' | 'personalJ' | 'consensus' | 'dpEpsilon';

/** The curve of a run at its checkpoints (round 0 = before the first round). */
export interface RunCurve {
  round: number[];
  J: number[];
  /** J* - J; null with per-agent kernels. */
  gap: (number | null)[];
  /** |grad J(theta_bar(r-1))|^2, the norm at the start of round r (null at round 0 and for `local`). */
  gradNormSq: (number | null)[];
  /** (1/r) sum_{t<r} |grad J(theta_bar(t))|^2: the average of claim 3 (null at round 0). */
  avgGradNormSq: (number | null)[];
  /** J_tau* - J_tau(theta_bar) (regularizedTau only). */
  gapTau?: number[];
  /** The fields of RunTask.record, one value per checkpoint (null at round 0 and where absent). */
  extra?: Partial<Record<ExtraField, (number | null)[]>>;
}

export interface RunResult {
  index: number;
  cell: Record<string, string | number>;
  seed: number;
  /** The resolved settings (train()'s header). */
  settings: Record<string, unknown>;
  backend: BackendName;
  Jstar: number | null;
  /** J_tau* of the average MDP (regularizedTau only). */
  JtauStar?: number;
  curve: RunCurve;
  final: {
    round: number;
    J: number;
    gap: number | null;
    avgGradNormSq: number | null;
    gapTau?: number;
    /** |grad_K J - grad J| at theta0 and at the final theta (truncationBias only). */
    truncationBias0?: number;
    truncationBias?: number;
    /** The greedy action per state of the final theta_bar (RunTask.greedy). */
    greedy?: number[];
    /** J_i per agent after the last round (RunTask.finalAgentJ). */
    agentJ?: number[];
    /** J* - J of the final theta_bar on RunTask.scoreOn. */
    scoredGap?: number;
  };
  cost: { trajectories: number; steps: number; bytes: number };
  /** Wall time of the run in milliseconds (the only field that varies between identical runs). */
  ms: number;
}

/** Log-spaced rounds in [1, T] (pointsPerDecade per factor of 10), with 0, T and every 1, 2, 5 x 10^k. */
export function checkpointRounds(T: number, pointsPerDecade: number): number[] {
  const out = new Set<number>([0, T]);
  for (let k = 1; k <= T; k *= 10) for (const m of [1, 2, 5]) if (m * k <= T) out.add(m * k);
  if (T >= 1) {
    const n = Math.max(1, Math.ceil(Math.log10(T) * pointsPerDecade));
    for (let k = 0; k <= n; k++) {
      const r = Math.round(Math.pow(T, k / n));
      if (r >= 1 && r <= T) out.add(r);
    }
  }
  return [...out].sort((a, b) => a - b);
}

/**
 * The optimal value of the entropy-regularised average MDP from rho: soft value iteration
 * V(s) = tau log sum_a exp(Q(s,a) / tau), Q = R + gamma P V, to a fixed point (a gamma-contraction;
 * stopped when an update moves V by less than 1e-15 relative, or after 100000 sweeps).
 */
export function softOptimalValue(mdp: Mdp, reward: Float64Array, tau: number): number {
  const S = mdp.states, A = mdp.actions, gamma = mdp.gamma;
  const kernel: TransitionTable = mdp.kernels[0]!;
  let V = new Float64Array(S);
  let next = new Float64Array(S);
  const q = new Float64Array(A);
  for (let sweep = 0; sweep < 100000; sweep++) {
    let delta = 0, scale = 0;
    for (let s = 0; s < S; s++) {
      let m = -Infinity;
      for (let a = 0; a < A; a++) {
        const row = s * A + a;
        let ev = 0;
        if (kernel.kind === 'dense') for (let j = 0; j < S; j++) ev += kernel.p[row * S + j]! * V[j]!;
        else for (let k = kernel.rowStart[row]!; k < kernel.rowStart[row + 1]!; k++) ev += kernel.prob[k]! * V[kernel.next[k]!]!;
        q[a] = reward[row]! + gamma * ev;
        if (q[a]! > m) m = q[a]!;
      }
      let z = 0;
      for (let a = 0; a < A; a++) z += Math.exp((q[a]! - m) / tau);
      next[s] = m + tau * Math.log(z);
      delta = Math.max(delta, Math.abs(next[s]! - V[s]!));
      scale = Math.max(scale, Math.abs(next[s]!));
    }
    [V, next] = [next, V];
    if (delta <= 1e-15 * Math.max(1, scale)) break;
  }
  let J = 0;
  for (let s = 0; s < S; s++) J += mdp.initial[s]! * V[s]!;
  return J;
}

function evaluation(S: number, SA: number) {
  return { J: new Float64Array(1), V: new Float64Array(S), Q: new Float64Array(SA), grad: new Float64Array(SA), occupancy: new Float64Array(S) };
}

/** |grad_K J - grad J| (Euclidean) of the average reward table at theta. */
function truncationBiasAt(env: Environment, theta: Float64Array, rbar: Float64Array, K: number, S: number): number {
  const SA = theta.length;
  const ev = evaluation(S, SA);
  env.evaluate(theta, rbar, ev);
  const tr = { JK: new Float64Array(1), gradK: new Float64Array(SA) };
  env.truncated(theta, rbar, K, tr);
  let s2 = 0;
  for (let j = 0; j < SA; j++) s2 += (tr.gradK[j]! - ev.grad[j]!) ** 2;
  return Math.sqrt(s2);
}

/** The argmax of every state's row of theta (the lowest action among ties). */
export function greedyActions(theta: Float64Array, S: number, A: number): number[] {
  return Array.from({ length: S }, (_, s) => {
    let best = 0;
    for (let a = 1; a < A; a++) if (theta[s * A + a]! > theta[s * A + best]!) best = a;
    return best;
  });
}

/** J* - J(theta) under another reward table on the same kernel (the environment is disposed). */
function scoredGap(env: Environment, theta: Float64Array, reward: Float64Array, S: number): number {
  try {
    const ev = evaluation(S, theta.length);
    env.evaluate(theta, reward, ev);
    return env.optimal(reward, new Float64Array(S)) - ev.J[0]!;
  } finally {
    env.dispose();
  }
}

/** Runs one task to the end. `signal` stops it before the next round (in-process runs only). */
export async function runTask(task: RunTask, signal?: AbortSignal): Promise<RunResult> {
  const started = Date.now();
  const backend = await loadBackendByName(task.backend);
  const mdp = task.mdp;
  const S = mdp.states, SA = mdp.states * mdp.actions;
  const training = await Training.create(mdp, { ...task.settings, backend, ...(task.theta0 ? { theta0: task.theta0 } : {}) });
  const T = training.settings.rounds;
  const wanted = new Set(checkpointRounds(T, task.pointsPerDecade));
  for (let k = 1; k <= (task.linearPoints ?? 0); k++) wanted.add(Math.round((k * T) / task.linearPoints!));
  const shared = !mdp.perAgentKernels;
  const rbar = shared ? averageReward(mdp) : null;
  const tau = shared && task.regularizedTau !== undefined && task.regularizedTau > 0 ? task.regularizedTau : undefined;
  const regEnv = tau !== undefined ? jsBackend.createEnvironment(environmentSpec(mdp)) : null;
  const regOut = evaluation(S, SA);
  const JtauStar = tau !== undefined ? softOptimalValue(mdp, rbar!, tau) : undefined;
  const gapTauAt = (theta: Float64Array): number => {
    regEnv!.evaluateRegularized!(theta, rbar!, tau!, regOut);
    return JtauStar! - regOut.J[0]!;
  };
  const thetaNow = (): Float64Array => Float64Array.from(training.result().theta!.flat());
  const header = training.header;
  const curve: RunCurve = { round: [0], J: [header.J0], gap: [header.Jstar === null ? null : header.Jstar - header.J0], gradNormSq: [null], avgGradNormSq: [null] };
  const theta0 = (tau !== undefined || task.truncationBias) && training.settings.algorithm !== 'local' ? thetaNow() : null;
  if (tau !== undefined) curve.gapTau = [gapTauAt(theta0!)];
  const extras = task.record ?? [];
  if (extras.length) curve.extra = Object.fromEntries(extras.map((f) => [f, [null]]));
  let sumGrad = 0, countGrad = 0;
  let last = null as null | Awaited<ReturnType<Training['step']>>;
  let yielded = Date.now();
  try {
    while (!training.finished) {
      // In this thread, let the event loop run now and then (a Ctrl-C handler aborts `signal`).
      if (signal && Date.now() - yielded > 50) {
        await new Promise((r) => setImmediate(r));
        yielded = Date.now();
      }
      signal?.throwIfAborted();
      const r = await training.step();
      last = r;
      if (r.gradNormSq !== null) {
        sumGrad += r.gradNormSq;
        countGrad++;
      }
      if (wanted.has(r.round)) {
        curve.round.push(r.round);
        curve.J.push(r.J!);
        curve.gap.push(r.gap);
        curve.gradNormSq.push(r.gradNormSq);
        curve.avgGradNormSq.push(countGrad ? sumGrad / countGrad : null);
        if (tau !== undefined) curve.gapTau!.push(gapTauAt(thetaNow()));
        for (const f of extras) curve.extra![f]!.push(r[f] ?? null);
      }
    }
    const n = curve.round.length - 1;
    const result: RunResult = {
      index: task.index,
      cell: task.cell,
      seed: training.settings.seed,
      settings: header.settings as unknown as Record<string, unknown>,
      backend: backend.name,
      Jstar: header.Jstar,
      curve,
      final: { round: curve.round[n]!, J: curve.J[n]!, gap: curve.gap[n]!, avgGradNormSq: curve.avgGradNormSq[n]! },
      cost: last ? { trajectories: last.trajectories, steps: last.steps, bytes: last.bytes } : { trajectories: 0, steps: 0, bytes: 0 },
      ms: 0,
    };
    if (tau !== undefined) {
      result.JtauStar = JtauStar!;
      result.final.gapTau = curve.gapTau![n]!;
    }
    if (task.truncationBias && shared && theta0) {
      const env = backend.createEnvironment(environmentSpec(mdp));
      try {
        result.final.truncationBias0 = truncationBiasAt(env, theta0, rbar!, training.settings.horizon, S);
        result.final.truncationBias = truncationBiasAt(env, thetaNow(), rbar!, training.settings.horizon, S);
      } finally {
        env.dispose();
      }
    }
    // The last round is always evaluated (whatever the cadence), so its agentJ is there.
    if (task.finalAgentJ && last?.agentJ) result.final.agentJ = last.agentJ.slice();
    if (task.greedy && training.settings.algorithm !== 'local') result.final.greedy = greedyActions(thetaNow(), S, mdp.actions);
    if (task.scoreOn && shared) result.final.scoredGap = scoredGap(backend.createEnvironment(environmentSpec(mdp)), thetaNow(), task.scoreOn, S);
    result.ms = Date.now() - started;
    return result;
  } finally {
    regEnv?.dispose();
    await training.close();
  }
}
