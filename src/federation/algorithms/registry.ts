import { InputError } from '../../errors.js';
import { parseAggregation, ruleProblem } from '../aggregate.js';
import { participantCount } from '../participation.js';
import { parsePersonalize } from '../personalize.js';
import { DEFAULT_SETTINGS, resolveBaseSettings, type TrainSettings } from '../settings.js';
import { centralized } from './centralized.js';
import { fastFedpg } from './fast-fedpg.js';
import { fedavg } from './fedavg.js';
import { fedavgm } from './fedavgm.js';
import { fednpg } from './fednpg.js';
import { fedprox } from './fedprox.js';
import { fedsvrpgM } from './fedsvrpg-m.js';
import { local } from './local.js';
import { regfedpg } from './regfedpg.js';
import type { AlgorithmPlugin } from './types.js';

/**
 * Algorithm names to plug-ins. The built-in algorithms register here, one line each; a user's
 * plug-in registers with registerAlgorithm (its module URL lets worker threads load it too).
 */
const registry = new Map<string, AlgorithmPlugin>();

export function registerAlgorithm(p: AlgorithmPlugin): void {
  const old = registry.get(p.name);
  if (old && old !== p && old.module !== p.module) throw new InputError(`an algorithm named ${p.name} is already registered (from ${old.module})`);
  registry.set(p.name, p);
}

for (const p of [fastFedpg, fedavg, centralized, local, regfedpg, fedprox, fedavgm, fedsvrpgM, fednpg]) registerAlgorithm(p);

/** The built-in algorithms' names (plug-ins registered later are in algorithmNames()). */
export const ALGORITHMS: readonly string[] = [...registry.keys()];

/** The names of every registered algorithm, built-ins first. */
export function algorithmNames(): string[] {
  return [...registry.keys()];
}

export function algorithmOf(name: string): AlgorithmPlugin {
  const p = registry.get(name);
  if (!p) throw new InputError(`algorithm must be one of ${algorithmNames().join(', ')}, got ${String(name)}`);
  return p;
}

/** Loads a plug-in by module URL (worker threads) and registers the export named `name`. */
export async function loadAlgorithm(name: string, moduleUrl: string): Promise<AlgorithmPlugin> {
  const have = registry.get(name);
  if (have) return have;
  const mod = (await import(moduleUrl)) as Record<string, unknown>;
  const p = Object.values(mod).find((x): x is AlgorithmPlugin => typeof x === 'object' && x !== null && (x as AlgorithmPlugin).name === name);
  if (!p) throw new Error(`module ${moduleUrl} exports no algorithm named ${name}`);
  registerAlgorithm(p);
  return p;
}

/** The CLI flag of each setting, for messages. */
export const SETTING_FLAGS: Record<keyof TrainSettings, string> = {
  algorithm: '--algorithm',
  gradient: '--gradient',
  rounds: '--rounds',
  localSteps: '--local-steps',
  eta: '--eta',
  alphaG: '--alpha-g',
  horizon: '--horizon',
  batch: '--batch',
  seed: '--seed',
  serverSeed: '--server-seed',
  correction: '--correction',
  entropy: '--entropy',
  proxMu: '--prox-mu',
  serverMomentum: '--server-momentum',
  momentumBeta: '--momentum-beta',
  isClip: '--is-clip',
  participation: '--participation',
  byzantine: '--byzantine',
  attack: '--attack',
  aggregation: '--aggregation',
  personalize: '--personalize',
  topology: '--topology',
  dpClip: '--dp-clip',
  dpNoise: '--dp-noise',
  dpDelta: '--dp-delta',
};

/** The options of the field's methods that need a server step. */
const SERVER_OPTIONS: readonly (keyof TrainSettings)[] = ['participation', 'byzantine', 'attack', 'aggregation', 'personalize', 'dpClip', 'dpNoise'];

function label(k: keyof TrainSettings): string {
  return `${k} (${SETTING_FLAGS[k]})`;
}

/**
 * Refuses options that belong to other algorithms (`--prox-mu` with fedavg, `--correction fresh`
 * with fedavg): the CLI calls it with every flag given, whatever its value.
 */
export function refuseForeignOptions(alg: AlgorithmPlugin, keys: readonly (keyof TrainSettings)[]): void {
  const owned = new Set<keyof TrainSettings>();
  for (const p of registry.values()) for (const k of p.ownSettings) owned.add(k);
  for (const k of keys)
    if (owned.has(k) && !alg.ownSettings.includes(k)) {
      const owners = [...registry.values()].filter((p) => p.ownSettings.includes(k)).map((p) => p.name);
      throw new InputError(`${label(k)} applies to ${owners.join(' and ')} only, not ${alg.name}`);
    }
}

/**
 * Completes and validates settings: the fields one by one, then the algorithm's own rules (its
 * default gradient mode, the options that belong to it, the entropy, the field's options). Throws
 * InputError naming the field and the value.
 */
export function resolveSettings(partial: Partial<TrainSettings> = {}): TrainSettings {
  const { settings: s, given } = resolveBaseSettings(partial);
  const alg = algorithmOf(s.algorithm);
  if (!given.has('gradient') && alg.defaultGradient) s.gradient = alg.defaultGradient;
  if (!alg.gradients.includes(s.gradient))
    throw new InputError(`${alg.name} has no ${s.gradient} form (it takes --gradient ${alg.gradients.join(' or ')}): ${alg.name === 'fednpg' ? 'FedNPG mixes exact entropy-regularised Q tables between neighbours' : 'see the README'}`);
  // A full settings object (a resolved one passed on, or the network's Register reply) carries
  // every key at its default: only a value that differs from it belongs to some algorithm.
  refuseForeignOptions(alg, [...given].filter((k) => s[k] !== (DEFAULT_SETTINGS as Partial<TrainSettings>)[k]));
  if (alg.entropy === 'required' && !(s.entropy > 0)) throw new InputError(`${alg.name} needs an entropy weight: entropy (--entropy TAU) must be > 0`);
  if (alg.entropy === 'none' && s.entropy > 0) {
    const takes = [...registry.values()].filter((p) => p.entropy !== 'none').map((p) => p.name);
    throw new InputError(`entropy applies to ${takes.join(', ')} only, not ${alg.name}`);
  }
  if (alg.topology !== 'server') {
    for (const k of SERVER_OPTIONS)
      if (given.has(k) && s[k] !== (DEFAULT_SETTINGS as Partial<TrainSettings>)[k])
        throw new InputError(`${label(k)} needs a server step, which ${alg.name} does not have`);
  }
  const ditto = parsePersonalize(s.personalize);
  if (ditto.kind === 'ditto' && !(s.eta * ditto.lambda < 1))
    throw new InputError(`personalize ditto:${ditto.lambda} needs eta * LAMBDA < 1, got eta ${s.eta} x ${ditto.lambda} = ${s.eta * ditto.lambda}`);
  alg.validate?.(s);
  return s;
}

/** The checks that need the number of agents: hostile agents, and the rule against the vectors it will see. */
export function checkAgainstAgents(s: TrainSettings, N: number): void {
  if (s.byzantine >= N) throw new InputError(`byzantine (--byzantine) must be below the number of agents (${N}), got ${s.byzantine}`);
  const alg = algorithmOf(s.algorithm);
  if (alg.topology !== 'server') return;
  const rule = parseAggregation(s.aggregation);
  const m = participantCount(s.participation, N);
  const problem = ruleProblem(rule, m);
  if (problem) throw new InputError(`aggregation ${s.aggregation} cannot apply: ${problem}${m < N ? ` (participation ${s.participation} of ${N} agents)` : ''}`);
}
