import type { RunResult } from './task.js';
import type { ExperimentHeader, ExperimentLog } from './types.js';

/**
 * The canonical text of a finished fedpg-experiment/1 log: the header, the runs in task-index
 * order, the end line. While an experiment runs its log gets one line per run as each finishes
 * (completion order, fsynced: a crash leaves every finished run); when the last run is in, the
 * log is rewritten in this form, and `fedpg experiment merge` writes the same form, so a merged
 * sweep equals an unsharded run byte for byte except for the invocation fields (header.started,
 * header.threads, header.command, end.seconds and each run's ms).
 */

/** A run's log line. */
export function runLine(r: RunResult): Record<string, unknown> {
  return { type: 'run', ...r };
}

/** The order of a header's fields in the log (fields not listed follow in their own order). */
const HEADER_ORDER: readonly (keyof ExperimentHeader)[] = ['type', 'format', 'experiment', 'params', 'backend', 'threads', 'runs', 'version', 'started', 'notes', 'command', 'quick', 'shard'];

/** `h` with its fields in the canonical order (however it was built or read). */
export function canonicalHeader(h: ExperimentHeader): ExperimentHeader {
  const out: Record<string, unknown> = {};
  for (const k of HEADER_ORDER) if (h[k] !== undefined) out[k] = h[k];
  for (const [k, v] of Object.entries(h)) if (!(k in out) && v !== undefined) out[k] = v;
  return out as unknown as ExperimentHeader;
}

/** `header` as written (its params: the ones the experiment reads); runs in any order. */
export function experimentLogText(header: ExperimentHeader, runs: readonly RunResult[], end: ExperimentLog['end']): string {
  const lines = [JSON.stringify(canonicalHeader(header)), ...[...runs].sort((a, b) => a.index - b.index).map((r) => JSON.stringify(runLine(r)))];
  if (end) lines.push(JSON.stringify(end));
  return lines.join('\n') + '\n';
}
