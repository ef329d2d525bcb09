import { readFileSync } from 'node:fs';
import { InputError } from '../errors.js';

/**
 * Reading the round logs of `fedpg train --out`, `fedpg run` and `fedpg serve --out`
 * (fedpg-log/1): a header line `{"type":"header","format":"fedpg-log/1",...}`, then one record per
 * finished round. A log cut short (Ctrl-C, a crash) is valid: it is partial when it holds fewer
 * records than the header's rounds, and a last line without its newline (a torn write) is ignored.
 */

export const RUN_LOG_FORMAT = 'fedpg-log/1';

/** One round's record as the log holds it (fields beyond these are kept but not read). */
export interface LoggedRecord {
  round: number;
  J: number | null;
  gap: number | null;
  trajectories: number;
  steps: number;
  bytes: number;
  [field: string]: unknown;
}

export interface RunLogHeader {
  type: 'header';
  format: typeof RUN_LOG_FORMAT;
  algorithm: string;
  backend: string | null;
  gradient: string;
  /** The resolved settings with agents, states, actions and perAgentKernels. */
  settings: Record<string, unknown> & { rounds: number; seed?: number };
  Jstar: number | null;
  J0: number | null;
}

export interface RunLog {
  path: string;
  header: RunLogHeader;
  records: LoggedRecord[];
  /** Fewer records than the header's rounds: the run was interrupted (or is still running). */
  partial: boolean;
}

/** The first line's format ('fedpg-log/1', 'fedpg-experiment/1', ...), or null when it has none. */
export function logFormat(path: string): string | null {
  const first = readText(path).split('\n', 1)[0] ?? '';
  try {
    const h = JSON.parse(first) as { type?: unknown; format?: unknown };
    return h && h.type === 'header' && typeof h.format === 'string' ? h.format : null;
  } catch {
    return null;
  }
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new InputError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

function finiteOrNull(v: unknown): boolean {
  return v === null || (typeof v === 'number' && Number.isFinite(v));
}

export function readRunLog(path: string): RunLog {
  const text = readText(path);
  const lines = text.split('\n');
  if (!text.endsWith('\n')) lines.pop();
  const parsed: Record<string, unknown>[] = [];
  lines.forEach((l, i) => {
    if (l.trim() === '') return;
    try {
      parsed.push(JSON.parse(l) as Record<string, unknown>);
    } catch {
      throw new InputError(`${path}: line ${i + 1} is not JSON`);
    }
  });
  const header = parsed[0] as unknown as RunLogHeader | undefined;
  if (!header || header.type !== 'header' || header.format !== RUN_LOG_FORMAT) {
    throw new InputError(`${path} is not a ${RUN_LOG_FORMAT} round log (its first line must be a header of that format)`);
  }
  if (typeof header.settings !== 'object' || header.settings === null || !Number.isSafeInteger(header.settings.rounds)) {
    throw new InputError(`${path}: the header's settings.rounds must be an integer, got ${JSON.stringify(header.settings?.rounds)}`);
  }
  const records = parsed.slice(1) as unknown as LoggedRecord[];
  records.forEach((r, i) => {
    const line = i + 2;
    if (!Number.isSafeInteger(r.round) || r.round !== i + 1) throw new InputError(`${path}: line ${line}: round must be ${i + 1}, got ${JSON.stringify(r.round)}`);
    for (const k of ['J', 'gap'] as const) if (!finiteOrNull(r[k])) throw new InputError(`${path}: line ${line}: ${k} must be a finite number or null, got ${JSON.stringify(r[k])}`);
    for (const k of ['trajectories', 'steps', 'bytes'] as const) {
      if (typeof r[k] !== 'number' || !(r[k] >= 0)) throw new InputError(`${path}: line ${line}: ${k} must be a number >= 0, got ${JSON.stringify(r[k])}`);
    }
  });
  return { path, header, records, partial: records.length < header.settings.rounds };
}
