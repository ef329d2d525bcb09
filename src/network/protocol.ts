import { create } from '@bufbuild/protobuf';
import { resolveSettings, type TrainSettings } from '../federation/settings.js';
import { Phase, RunSettingsSchema, type RunSettings } from './gen/fedpg/v1/federation_pb.js';

/**
 * What both ends of the round protocol agree on besides the schema (proto/fedpg/v1): the order
 * of phases, the settings' mapping, the authentication header. Browser-safe.
 */

export { FederationService, Phase, Status } from './gen/fedpg/v1/federation_pb.js';

/** The header carrying an agent's secret token: `authorization: Bearer <token>`. */
export const AUTH_HEADER = 'authorization';

export function bearer(token: string): string {
  return `Bearer ${token}`;
}

/** Algorithms a federation can run (local trains no shared policy: nothing to aggregate). */
export const NETWORK_ALGORITHMS: readonly TrainSettings['algorithm'][] = ['fast-fedpg', 'fedavg', 'centralized', 'regfedpg'];

/**
 * A phase's place in the run: (0, GRADIENT) = 1, (1, LOCAL) = 2, (1, GRADIENT) = 3, ...; an
 * agent's cursor before any phase is 0 (round 0, PHASE_UNSPECIFIED); DONE is after everything.
 */
export function phaseKey(round: number, phase: Phase): number {
  switch (phase) {
    case Phase.UNSPECIFIED:
      return 0;
    case Phase.LOCAL:
      return 2 * round;
    case Phase.GRADIENT:
      return 2 * round + 1;
    case Phase.DONE:
      return Number.POSITIVE_INFINITY;
  }
}

export function phaseName(round: number, phase: Phase): string {
  switch (phase) {
    case Phase.UNSPECIFIED:
      return 'the start';
    case Phase.LOCAL:
      return `round ${round} (local steps)`;
    case Phase.GRADIENT:
      return round === 0 ? 'the gradient phase before round 1' : `round ${round} (gradient phase)`;
    case Phase.DONE:
      return 'the end of the run';
  }
}

export function settingsToProto(s: TrainSettings): RunSettings {
  return create(RunSettingsSchema, {
    algorithm: s.algorithm,
    gradient: s.gradient,
    rounds: s.rounds,
    localSteps: s.localSteps,
    eta: s.eta,
    alphaG: s.alphaG,
    horizon: s.horizon,
    batch: s.batch,
    seed: BigInt(s.seed),
    correction: s.correction,
    entropy: s.entropy,
  });
}

/** The settings an agent received, validated as the in-process loop validates them. */
export function settingsFromProto(p: RunSettings): TrainSettings {
  const seed = Number(p.seed);
  return resolveSettings({
    algorithm: p.algorithm as TrainSettings['algorithm'],
    gradient: p.gradient as TrainSettings['gradient'],
    rounds: p.rounds,
    localSteps: p.localSteps,
    eta: p.eta,
    alphaG: p.alphaG,
    horizon: p.horizon,
    batch: p.batch,
    seed: BigInt(seed) === p.seed ? seed : Number.NaN,
    correction: p.correction as TrainSettings['correction'],
    entropy: p.entropy,
  });
}

/** Local steps per round and the server step of an algorithm (train.ts's rule). */
export function roundShape(s: TrainSettings): { steps: number; alpha: number; memory: boolean } {
  const centralized = s.algorithm === 'centralized';
  return { steps: centralized ? 1 : s.localSteps, alpha: centralized ? 1 : s.alphaG, memory: s.algorithm === 'fast-fedpg' };
}
