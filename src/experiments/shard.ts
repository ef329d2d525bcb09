import { InputError } from '../errors.js';

/**
 * Sharding an experiment for job arrays (Slurm --array, Kubernetes indexed Jobs, GNU parallel):
 * shard I of N runs one slice of the experiment's tasks. The slices are a pure function of the
 * tasks' cost estimates (taskCost) and N, so every machine computes the same slices without
 * talking to the others, whatever its thread count or backend.
 */

/** Shard `index` (0-based, as SLURM_ARRAY_TASK_ID and JOB_COMPLETION_INDEX count) of `count`. */
export interface Shard {
  index: number;
  count: number;
}

/** What a shard log's header records: the shard and the task indices it holds (ascending). */
export interface ShardHeader extends Shard {
  tasks: number[];
}

/** Parses `--shard I/N` (0 <= I < N). */
export function parseShard(v: string): Shard {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(v);
  if (!m) throw new InputError(`--shard must be I/N (shard I of N, counting from 0), got '${v}'`);
  const index = Number(m[1]), count = Number(m[2]);
  if (!Number.isSafeInteger(count) || count < 1) throw new InputError(`--shard N must be an integer >= 1, got '${v}'`);
  if (!Number.isSafeInteger(index) || index >= count) throw new InputError(`--shard I must be in 0..${count - 1} (shards count from 0), got '${v}'`);
  return { index, count };
}

/**
 * Splits tasks into `count` slices of near-equal total cost: longest processing time first (the
 * costliest task goes to the least-loaded slice; ties go to the lower task index and the lower
 * slice), which keeps the largest slice within the costliest task of the mean. Returns each
 * slice's task indices, ascending. Slices may be empty when there are fewer tasks than slices.
 */
export function sliceTasks(tasks: readonly { index: number; cost: number }[], count: number): number[][] {
  if (!Number.isSafeInteger(count) || count < 1) throw new Error(`count must be an integer >= 1, got ${count}`);
  const order = [...tasks].sort((a, b) => b.cost - a.cost || a.index - b.index);
  const load = new Array<number>(count).fill(0);
  const slices: number[][] = Array.from({ length: count }, () => []);
  for (const t of order) {
    let best = 0;
    for (let s = 1; s < count; s++) if (load[s]! < load[best]!) best = s;
    load[best]! += t.cost;
    slices[best]!.push(t.index);
  }
  for (const s of slices) s.sort((a, b) => a - b);
  return slices;
}

/** The file a shard writes into its --out directory: NAME.shard-I-of-N.jsonl. */
export function shardLogName(experiment: string, shard: Shard): string {
  return `${experiment}.shard-${shard.index}-of-${shard.count}.jsonl`;
}

/** Recognises a shard log's file name (for `merge DIR`). */
export const SHARD_LOG_NAME = /^(.+)\.shard-(\d+)-of-(\d+)\.jsonl$/;
