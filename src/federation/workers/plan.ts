import { availableParallelism } from 'node:os';
import type { BackendName } from '../../backends/types.js';
import { InputError } from '../../errors.js';
import type { Mdp } from '../../mdp/model.js';
import { algorithmOf } from '../algorithms/registry.js';
import type { TrainSettings } from '../settings.js';

export type WorkersChoice = number | 'auto';

export { roundCosts, roundCostNs, type RoundCosts } from './plan-costs.js';
import { roundCosts, roundCostNs } from './plan-costs.js';

/**
 * Where a worker pool's round evaluation runs: on the main thread, overlapping the next round's
 * local steps, when it fits inside them (no work is repeated) and a core is left for it;
 * otherwise on the workers, each for its own agents (each repeats the factorisation, but the
 * per-agent solves are spread). With as many workers as cores the main thread's evaluation would
 * take a core from a worker, and the other workers would wait for that one at the next barrier.
 */
export function evaluationOnWorkers(mdp: Mdp, s: TrainSettings, backend: BackendName, workers: number, cores: number = availableParallelism()): boolean {
  if (algorithmOf(s.algorithm).topology === 'local') return false;
  if (workers >= cores) return true;
  const c = roundCosts(mdp, s, backend);
  const perWorker = Math.ceil(mdp.rewards.length / workers) * c.agent;
  return c.evaluation > 0.8 * perWorker;
}

/** Rounds shorter than this gain little from threads: two barriers cost tens of microseconds. */
const MIN_ROUND_NS = 500_000;
/** Runs shorter than this would spend more time starting threads than they save. */
const MIN_RUN_NS = 1_000_000_000;

/**
 * The number of worker threads for a run: an explicit count (capped at N), or for `auto` the
 * available cores (capped at N), staying in-process (1) when rounds or the run are too short to
 * gain. 1 means in-process.
 */
export function planWorkers(
  choice: WorkersChoice | undefined,
  mdp: Mdp,
  s: TrainSettings,
  backend: BackendName,
  cores: number = availableParallelism(),
): { workers: number; why: string } {
  const N = mdp.rewards.length;
  if (choice === undefined) return { workers: 1, why: 'in-process (the library default; pass workers to use threads)' };
  if (choice !== 'auto') {
    if (!Number.isSafeInteger(choice) || choice < 1) throw new InputError(`workers must be an integer >= 1 or auto, got ${String(choice)}`);
    const w = Math.min(choice, N);
    return { workers: w, why: w === 1 ? 'in-process' : `${w} worker threads${choice > N ? ` (one per agent: ${choice} asked)` : ''}` };
  }
  const w = Math.min(cores, N);
  if (w <= 1) return { workers: 1, why: N === 1 ? 'in-process (one agent)' : 'in-process (one core)' };
  const round = roundCostNs(mdp, s, backend);
  if (round < MIN_ROUND_NS) return { workers: 1, why: `in-process (rounds of about ${(round / 1e6).toFixed(2)} ms are too short to gain from threads)` };
  if (round * s.rounds < MIN_RUN_NS) return { workers: 1, why: 'in-process (the run is too short to gain from threads)' };
  return { workers: w, why: `${w} worker threads (auto: ${cores} cores, ${N} agents)` };
}

export function parseWorkers(flag: string, v: string | undefined): WorkersChoice | undefined {
  if (v === undefined) return undefined;
  if (v === 'auto') return 'auto';
  const x = Number(v);
  if (v.trim() === '' || !Number.isSafeInteger(x) || x < 1) throw new InputError(`--${flag} must be auto or an integer >= 1, got '${v}'`);
  return x;
}
