import { create } from '@bufbuild/protobuf';
import { algorithmOf } from '../federation/algorithms/registry.js';
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

/**
 * Why a federation across machines cannot run these settings, or null when it can: it needs a
 * server step (not `local`, which trains no shared policy, nor a decentralised algorithm, whose
 * peer-to-peer transport is out of scope), and hostile agents are simulation only.
 */
export function networkRefusal(s: TrainSettings): string | null {
  const alg = algorithmOf(s.algorithm);
  if (alg.topology === 'local') return `--algorithm ${alg.name} trains no shared policy, so there is nothing to serve`;
  if (alg.topology === 'peers') return `--algorithm ${alg.name} is decentralised (agents mix with neighbours, no server); a peer-to-peer transport is out of scope, so run it with fedpg train`;
  if (s.byzantine > 0) return '--byzantine is simulation only (fedpg train); a real federation faces real agents';
  return null;
}

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
    settingsJson: JSON.stringify(s),
  });
}

/** The settings an agent received, validated as the in-process loop validates them. */
export function settingsFromProto(p: RunSettings): TrainSettings {
  if (p.settingsJson) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(p.settingsJson);
    } catch {
      parsed = null;
    }
    if (!parsed || typeof parsed !== 'object') throw new RangeError('the run settings from the aggregator are not a JSON object');
    return resolveSettings(parsed as Partial<TrainSettings>);
  }
  const seed = Number(p.seed);
  return resolveSettings({
    algorithm: p.algorithm,
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

// The cadence's rule is the training loop's own: agents and aggregator apply the same function.
export { evaluatedRound } from '../federation/cadence.js';
