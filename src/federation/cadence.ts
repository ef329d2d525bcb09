import type { BackendName } from '../backends/types.js';
import { InputError } from '../errors.js';
import type { Mdp } from '../mdp/model.js';
import type { TrainSettings } from './settings.js';
import { roundCosts } from './workers/plan-costs.js';

/** Up to this many states every round is evaluated under `auto` (the dense solvers' range). */
export const EVAL_EVERY_ROUND_UP_TO = 2048;

/**
 * The evaluation cadence R of a run: a number given, or for 'auto' 1 (every round) with exact
 * gradients or S <= 2048 (so every small run and every fixture keeps its outputs), otherwise the
 * least R for which one exact evaluation per R rounds costs at most about a tenth of the run:
 * evaluation <= 0.1 (R N agentWork + evaluation), from the size-based cost model of
 * workers/plan-costs.ts (deterministic: never a timing).
 */
export function evalCadence(choice: number | 'auto' | undefined, mdp: Mdp, s: TrainSettings, backend: BackendName): number {
  if (choice !== undefined && choice !== 'auto') {
    if (!Number.isSafeInteger(choice) || choice < 1) throw new InputError(`evalEvery must be an integer >= 1 or auto, got ${String(choice)}`);
    return choice;
  }
  if (s.gradient === 'exact' || mdp.states <= EVAL_EVERY_ROUND_UP_TO) return 1;
  const c = roundCosts(mdp, s, backend);
  const perRound = mdp.rewards.length * c.agent;
  return Math.max(1, Math.ceil((9 * c.evaluation) / perRound));
}

/** Whether round t is one the evaluation cadence R evaluates: round 0, t % R == 0 and the last. */
export function evaluatedRound(t: number, rounds: number, R: number): boolean {
  return t === 0 || t === rounds || R <= 1 || t % R === 0;
}
