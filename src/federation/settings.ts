import type { GradientMode } from '../backends/types.js';
import { InputError } from '../errors.js';
import { MAX_SEED } from '../rng.js';

export type Algorithm = 'fast-fedpg' | 'fedavg' | 'centralized' | 'local' | 'regfedpg';
export const ALGORITHMS: readonly Algorithm[] = ['fast-fedpg', 'fedavg', 'centralized', 'local', 'regfedpg'];
/** Fast-FedPG's g_i(theta_bar) in the correction: the remembered sample (Algorithm 1) or a fresh one. */
export type Correction = 'memory' | 'fresh';

/** The settings of one training run; every field has a documented default (DEFAULT_SETTINGS). */
export interface TrainSettings {
  algorithm: Algorithm;
  gradient: GradientMode;
  /** T, the number of communication rounds. */
  rounds: number;
  /** H, local steps per round (ignored by `centralized`, which takes one step per round). */
  localSteps: number;
  /** Local step size. */
  eta: number;
  /** Global (server) step size alpha_g in (0, 1] (ignored by `centralized` and `local`). */
  alphaG: number;
  /** K, the truncation horizon of the estimator (sampled gradients only). */
  horizon: number;
  /** M, trajectories per gradient estimate (sampled gradients only). */
  batch: number;
  /** The run seed; agent i's stream depends on (seed, i) only. */
  seed: number;
  /**
   * Fast-FedPG only: `memory` uses the sample each agent sent to the server (the paper's
   * Algorithm 1); `fresh` draws a new g_i(theta_bar) at the round's start (an ablation).
   */
  correction: Correction;
  /**
   * tau >= 0, the weight of the entropy bonus: local steps ascend J_tau (regfedpg needs tau > 0;
   * with fast-fedpg it combines the correction with regularisation). Reports stay unregularised.
   */
  entropy: number;
}

/** Fixed, documented defaults: outside checks rely on them. */
export const DEFAULT_SETTINGS: Readonly<TrainSettings> = Object.freeze({
  algorithm: 'fast-fedpg',
  gradient: 'sampled',
  rounds: 100,
  localSteps: 10,
  eta: 0.1,
  alphaG: 1,
  horizon: 50,
  batch: 1,
  seed: 0,
  correction: 'memory',
  entropy: 0,
});

function int(name: string, v: number, min: number, max = 0x7fffffff): void {
  if (!Number.isSafeInteger(v) || v < min || v > max) throw new InputError(`${name} must be an integer in [${min}, ${max}], got ${v}`);
}

/** Completes and validates settings; throws InputError naming the field and the value. */
export function resolveSettings(partial: Partial<TrainSettings> = {}): TrainSettings {
  const s: TrainSettings = { ...DEFAULT_SETTINGS };
  // Only the settings' own keys: callers pass wider option objects (backend, signal, ...).
  for (const k of Object.keys(DEFAULT_SETTINGS) as (keyof TrainSettings)[]) {
    const v = partial[k];
    if (v !== undefined) (s as unknown as Record<string, unknown>)[k] = v;
  }
  if (!ALGORITHMS.includes(s.algorithm)) throw new InputError(`algorithm must be one of ${ALGORITHMS.join(', ')}, got ${String(s.algorithm)}`);
  if (s.gradient !== 'exact' && s.gradient !== 'sampled') throw new InputError(`gradient must be exact or sampled, got ${String(s.gradient)}`);
  int('rounds', s.rounds, 0);
  int('localSteps', s.localSteps, 1);
  int('horizon', s.horizon, 1);
  int('batch', s.batch, 1);
  int('seed', s.seed, 0, MAX_SEED);
  if (!Number.isFinite(s.eta) || s.eta <= 0) throw new InputError(`eta must be a finite number > 0, got ${s.eta}`);
  if (!Number.isFinite(s.alphaG) || s.alphaG <= 0 || s.alphaG > 1) throw new InputError(`alphaG must be in (0, 1], got ${s.alphaG}`);
  if (s.correction !== 'memory' && s.correction !== 'fresh') throw new InputError(`correction must be memory or fresh, got ${String(s.correction)}`);
  if (!Number.isFinite(s.entropy) || s.entropy < 0) throw new InputError(`entropy must be a finite number >= 0, got ${s.entropy}`);
  if (s.algorithm === 'regfedpg' && !(s.entropy > 0)) throw new InputError('regfedpg needs an entropy weight: entropy (--entropy TAU) must be > 0');
  if (s.algorithm !== 'regfedpg' && s.algorithm !== 'fast-fedpg' && s.entropy > 0)
    throw new InputError(`entropy applies to regfedpg and fast-fedpg only, not ${s.algorithm}`);
  return s;
}

/**
 * Communication and sampling counted as SPEC.md says, after `t` rounds with N agents and
 * S*A parameters. Exact gradients sample nothing.
 */
export function costsAfter(s: TrainSettings, N: number, SA: number, t: number): { trajectories: number; steps: number; bytes: number } {
  const M = s.batch, H = s.localSteps;
  let traj: number;
  let vectors: number;
  switch (s.algorithm) {
    case 'fast-fedpg':
      // `fresh` adds one sample per agent at every round's start.
      traj = N * M * (1 + t * (H + (s.correction === 'fresh' ? 2 : 1)));
      vectors = N + 4 * N * t;
      break;
    case 'fedavg':
    case 'regfedpg':
      traj = N * M * H * t;
      vectors = 2 * N * t;
      break;
    case 'centralized':
      traj = N * M * t;
      vectors = 2 * N * t;
      break;
    case 'local':
      traj = N * M * H * t;
      vectors = 0;
      break;
  }
  if (s.gradient === 'exact') traj = 0;
  return { trajectories: traj, steps: traj * s.horizon, bytes: 8 * SA * vectors };
}
