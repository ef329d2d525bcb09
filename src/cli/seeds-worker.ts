import { trainSeedTask, type SeedTask, type SeedTaskResult } from './seeds.js';

/**
 * The pool threads' entry for `--seeds` (piscina loads the compiled dist/cli/seeds-worker.js):
 * one task, one in-process training run of one seed, its round log written as it goes.
 */
export default function run(task: SeedTask): Promise<SeedTaskResult> {
  return trainSeedTask(task);
}
