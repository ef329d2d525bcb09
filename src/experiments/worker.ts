import { runTask, type RunResult, type RunTask } from './task.js';

/**
 * The pool threads' entry (piscina loads the compiled dist/experiments/worker.js): one task, one
 * run. Aborting a task terminates its thread, so a run never stops half-recorded.
 */
export default function run(task: RunTask): Promise<RunResult> {
  return runTask(task);
}
