import type { GradientMode } from '../backends/types.js';
import { InputError } from '../errors.js';
import { MAX_SEED } from '../rng.js';
import { parseAggregation } from './aggregate.js';
import { parseAttack } from './attacks.js';
import { parsePersonalize } from './personalize.js';
import { parseTopology } from './topology.js';

/**
 * An algorithm's registry name (src/federation/algorithms/registry.ts): the built-in ones below,
 * or any name a plug-in registered.
 */
export type Algorithm = string;
/** Fast-FedPG's g_i(theta_bar) in the correction: the remembered sample (Algorithm 1) or a fresh one. */
export type Correction = 'memory' | 'fresh';

/** The settings of one training run; every field has a documented default (DEFAULT_SETTINGS). */
export interface TrainSettings {
  algorithm: Algorithm;
  gradient: GradientMode;
  /** T, the number of communication rounds. */
  rounds: number;
  /** H, local steps per round (the algorithm may fix its own: `centralized` takes one). */
  localSteps: number;
  /** Local step size. */
  eta: number;
  /** Global (server) step size alpha_g in (0, 1] (ignored by `centralized` and `local`). */
  alphaG: number;
  /** K, the truncation horizon of the estimator (sampled gradients only). */
  horizon: number;
  /** M, trajectories per gradient estimate (sampled gradients only). */
  batch: number;
  /** The agents' seed: agent i's stream is agentStream(seed, i). */
  seed: number;
  /**
   * The server's own seed (participation draws, random graphs): stream
   * agentStream(serverSeed, 4294967295 or 4294967294). Defaults to `seed`.
   */
  serverSeed: number;
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
  /** FedProx's proximal weight MU >= 0. */
  proxMu: number;
  /** FedAvgM's server momentum BETA in [0, 1). */
  serverMomentum: number;
  /** FedSVRPG-M's momentum BETA in (0, 1]. */
  momentumBeta: number;
  /** FedSVRPG-M's importance-weight clip C (weights in [1/C, C]; 0: none). */
  isClip: number;
  /** The fraction P in (0, 1] of agents the server draws each round. */
  participation: number;
  /** Hostile agents 0..F-1 (simulation only). */
  byzantine: number;
  /** What hostile agents send: none | signflip | zero | gaussian:SIGMA. */
  attack: string;
  /** The server's rule for the deltas (and Fast-FedPG's memories): mean | median | trimmed:B | krum:F | geomed. */
  aggregation: string;
  /** Personal policies beside the global one: none | ditto:LAMBDA. */
  personalize: string;
  /** FedNPG's communication graph: complete | ring | er:P. */
  topology: string;
  /** Differential privacy: every vector an agent sends is clipped to norm C (0: off)... */
  dpClip: number;
  /** ... and gets N(0, (SIGMA C)^2) noise per entry from the agent's private stream. */
  dpNoise: number;
  /** The delta of the (epsilon, delta) guarantee reported as dpEpsilon. */
  dpDelta: number;
}

/** Fixed, documented defaults: outside checks rely on them. */
/** (serverSeed has none of its own: it defaults to seed.) */
export const DEFAULT_SETTINGS: Readonly<Omit<TrainSettings, 'serverSeed'>> = Object.freeze({
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
  proxMu: 0.01,
  serverMomentum: 0.9,
  momentumBeta: 0.2,
  isClip: 20,
  participation: 1,
  byzantine: 0,
  attack: 'none',
  aggregation: 'mean',
  personalize: 'none',
  topology: 'complete',
  dpClip: 0,
  dpNoise: 0,
  dpDelta: 1e-5,
});

/** Every key a settings object (or the library's train options) may carry. */
export const SETTING_KEYS: readonly (keyof TrainSettings)[] = [...(Object.keys(DEFAULT_SETTINGS) as (keyof TrainSettings)[]), 'serverSeed'];

function int(name: string, v: number, min: number, max = 0x7fffffff): void {
  if (!Number.isSafeInteger(v) || v < min || v > max) throw new InputError(`${name} must be an integer in [${min}, ${max}], got ${v}`);
}

function finite(name: string, v: number, ok: (x: number) => boolean, range: string): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw new InputError(`${name} must be ${range}, got ${String(v)}`);
}

/**
 * The settings' own fields from `partial` over the defaults, checked field by field (the
 * algorithm's own rules are checked by its plug-in: see resolveRunSettings in algorithms/).
 * `given` lists the keys the caller set, so options that belong to another algorithm are refused.
 */
export function resolveBaseSettings(partial: Partial<TrainSettings> = {}): { settings: TrainSettings; given: Set<keyof TrainSettings> } {
  const s = { ...DEFAULT_SETTINGS, serverSeed: 0 } as TrainSettings;
  const given = new Set<keyof TrainSettings>();
  // Only the settings' own keys: callers pass wider option objects (backend, signal, ...).
  for (const k of SETTING_KEYS) {
    const v = partial[k];
    if (v !== undefined && v !== null) {
      (s as unknown as Record<string, unknown>)[k] = v;
      given.add(k);
    }
  }
  if (typeof s.algorithm !== 'string') throw new InputError(`algorithm must be a name, got ${String(s.algorithm)}`);
  if (s.gradient !== 'exact' && s.gradient !== 'sampled') throw new InputError(`gradient must be exact or sampled, got ${String(s.gradient)}`);
  int('rounds', s.rounds, 0);
  int('localSteps', s.localSteps, 1);
  int('horizon', s.horizon, 1);
  int('batch', s.batch, 1);
  int('seed', s.seed, 0, MAX_SEED);
  if (!given.has('serverSeed')) s.serverSeed = s.seed;
  int('serverSeed', s.serverSeed, 0, MAX_SEED);
  finite('eta', s.eta, (x) => x > 0, 'a finite number > 0');
  finite('alphaG', s.alphaG, (x) => x > 0 && x <= 1, 'in (0, 1]');
  if (s.correction !== 'memory' && s.correction !== 'fresh') throw new InputError(`correction must be memory or fresh, got ${String(s.correction)}`);
  finite('entropy', s.entropy, (x) => x >= 0, 'a finite number >= 0');
  finite('proxMu', s.proxMu, (x) => x >= 0, 'a finite number >= 0');
  finite('serverMomentum', s.serverMomentum, (x) => x >= 0 && x < 1, 'in [0, 1)');
  finite('momentumBeta', s.momentumBeta, (x) => x > 0 && x <= 1, 'in (0, 1]');
  finite('isClip', s.isClip, (x) => x === 0 || x >= 1, '0 (no clipping) or a number >= 1');
  finite('participation', s.participation, (x) => x > 0 && x <= 1, 'in (0, 1]');
  int('byzantine', s.byzantine, 0);
  parseAttack(s.attack);
  parseAggregation(s.aggregation);
  parsePersonalize(s.personalize);
  parseTopology(s.topology);
  finite('dpClip', s.dpClip, (x) => x >= 0, 'a finite number >= 0 (0: no differential privacy)');
  finite('dpNoise', s.dpNoise, (x) => x >= 0, 'a finite number >= 0');
  finite('dpDelta', s.dpDelta, (x) => x > 0 && x < 1, 'in (0, 1)');
  if (s.dpNoise > 0 && s.dpClip === 0) throw new InputError('dpNoise (--dp-noise) needs a clip norm: pass --dp-clip C > 0 (the noise is SIGMA C)');
  if (s.byzantine > 0 && s.attack === 'none') throw new InputError('byzantine agents need an attack: pass --attack signflip|zero|gaussian:SIGMA');
  if (s.byzantine === 0 && given.has('attack') && s.attack !== 'none') throw new InputError(`attack ${s.attack} needs hostile agents: pass --byzantine F with F >= 1`);
  return { settings: s, given };
}

export { ALGORITHMS, resolveSettings } from './algorithms/registry.js';

/** Refuses keys a settings object does not have (a typo such as `local_steps` in plain JavaScript). */
export function refuseUnknownKeys(options: object, extra: readonly string[], where = 'train options'): void {
  const known = new Set<string>([...SETTING_KEYS, ...extra]);
  const unknown = Object.keys(options).filter((k) => !known.has(k));
  if (unknown.length)
    throw new InputError(`${where}: unknown option${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `'${k}'`).join(', ')}; valid keys are ${[...known].sort().join(', ')}`);
}
