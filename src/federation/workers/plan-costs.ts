import type { BackendName } from '../../backends/types.js';
import type { Mdp } from '../../mdp/model.js';
import { algorithmOf } from '../algorithms/registry.js';
import { parsePersonalize } from '../personalize.js';
import type { TrainSettings } from '../settings.js';

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
  /** One table's share of an evaluation beside the factorisation. */
  perTable: number;
  /** One gradient estimate (a memory sample is one). */
  perGradient: number;
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
  return { agent: estimates * perGradient, evaluation, factorisation: factor, perTable, perGradient };
}

/** Rough cost of one round on one thread, in nanoseconds. */
export function roundCostNs(mdp: Mdp, s: TrainSettings, backend: BackendName): number {
  const c = roundCosts(mdp, s, backend);
  return mdp.rewards.length * c.agent + c.evaluation;
}


/**
 * How many chunks of agents the evaluation is cut into when run mode shares it out task by task
 * (host.ts): each chunk is one task of one factorisation and its agents' tables, handed out
 * among the memory samples. More chunks repeat the factorisation, fewer make the longest task
 * longer; the count minimises the shared phase's length, the longer of an even share of all its
 * tasks over W workers and its longest task (from the cost model, so never a timing).
 */
export function evaluationChunks(N: number, W: number, c: RoundCosts): number {
  let best = 1, bestCost = Infinity;
  for (let k = 1; k <= Math.min(N, W); k++) {
    const total = N * c.perGradient + k * c.factorisation + N * c.perTable;
    const cost = Math.max(total / W, c.factorisation + Math.ceil(N / k) * c.perTable);
    if (cost < bestCost) {
      best = k;
      bestCost = cost;
    }
  }
  return best;
}
