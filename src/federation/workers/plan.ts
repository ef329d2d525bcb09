import { availableParallelism } from 'node:os';
import type { BackendName } from '../../backends/types.js';
import { InputError } from '../../errors.js';
import type { Mdp } from '../../mdp/model.js';
import { algorithmOf } from '../algorithms/registry.js';
import { parsePersonalize } from '../personalize.js';
import type { TrainSettings } from '../settings.js';

export type WorkersChoice = number | 'auto';

/**
 * Rough costs in nanoseconds, from the parts of a round measured by bench/workers.bench.js
 * (S = 100, A = 10): a sampled trajectory step costs about (A + 4) sample units, a local step
 * about 4 more per entry of theta (the policy table is rebuilt), an exact evaluation about one
 * flop unit per multiply-add. They only decide whether threads pay for
 * themselves and where the round's evaluation runs, never what a run computes.
 */
const SAMPLE_UNIT_NS: Record<BackendName, number> = { js: 8, wasm: 7, native: 5.5 };
const FLOP_UNIT_NS: Record<BackendName, number> = { js: 2, wasm: 1, native: 0.25 };

export interface RoundCosts {
  /** One agent's gradient work in one round (phase 1 and 2). */
  agent: number;
  /** The round's exact evaluation of theta_bar (one factorisation, N tables); `local`: N of them. */
  evaluation: number;
  /** Its factorisation alone (what every worker repeats when the workers evaluate). */
  factorisation: number;
}

export function roundCosts(mdp: Mdp, s: TrainSettings, backend: BackendName): RoundCosts {
  const N = mdp.rewards.length, S = mdp.states, A = mdp.actions;
  const k = mdp.kernels[0]!;
  const nnz = k.kind === 'dense' ? S * A * S : k.next.length;
  const factor = FLOP_UNIT_NS[backend] * (nnz + (k.kind === 'dense' ? (S * S * S) / 3 : 20 * nnz));
  const perTable = FLOP_UNIT_NS[backend] * (nnz + S * S);
  const alg = algorithmOf(s.algorithm);
  const estimates =
    alg.estimatesPerRound(s) + (alg.reports === 'every-round' ? 1 : 0) + (parsePersonalize(s.personalize).kind === 'ditto' ? s.localSteps : 0);
  const perGradient = s.gradient === 'sampled' ? SAMPLE_UNIT_NS[backend] * (s.batch * s.horizon * (A + 4) + 4 * S * A) : factor + perTable;
  const evaluation = alg.topology === 'local' ? N * (factor + N * perTable) : factor + N * perTable;
  return { agent: estimates * perGradient, evaluation, factorisation: factor };
}

/** Rough cost of one round on one thread, in nanoseconds. */
export function roundCostNs(mdp: Mdp, s: TrainSettings, backend: BackendName): number {
  const c = roundCosts(mdp, s, backend);
  return mdp.rewards.length * c.agent + c.evaluation;
}

/**
 * Where a worker pool's round evaluation runs: on the main thread, overlapping the next round's
 * local steps, when it fits inside them (no work is repeated); otherwise on the workers, each
 * for its own agents (each repeats the factorisation, but the per-agent solves are spread).
 */
export function evaluationOnWorkers(mdp: Mdp, s: TrainSettings, backend: BackendName, workers: number): boolean {
  if (algorithmOf(s.algorithm).topology === 'local') return false;
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
