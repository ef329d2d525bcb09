import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The built CLI (npm test compiles it first). */
export const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'cli', 'main.js');

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/**
 * Runs `fedpg ARGS` as a user's shell would, with an address-space cap (ulimit -v, 3 GB by
 * default) and a time limit, so a regression that allocates without bound or hangs fails the test
 * instead of taking the machine down.
 */
export function fedpgLimited(args: string[], opts: { timeoutMs?: number; vmKiB?: number; env?: Record<string, string> } = {}): CliRun {
  const r = spawnSync('bash', ['-c', `ulimit -v ${opts.vmKiB ?? 3_000_000} && exec "$0" "$@"`, process.execPath, CLI, ...args], {
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 30_000,
    env: { ...process.env, FEDPG_BACKEND: '', FEDPG_MEMORY_BUDGET: '', ...opts.env },
  });
  return { code: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '', timedOut: (r.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT' };
}

/** Asserts the documented refusal shape: exit 1, one line on stderr, no stack trace. */
export function refusalLine(r: CliRun): string {
  if (r.timedOut) throw new Error(`fedpg hung (killed after the time limit); stderr: ${r.stderr.slice(0, 300)}`);
  const lines = r.stderr.trimEnd().split('\n');
  if (r.code !== 1 || lines.length !== 1 || /internal error|\n\s+at /.test(r.stderr)) {
    throw new Error(`expected exit 1 with one line, got exit ${r.code} (signal ${r.signal}) and stderr:\n${r.stderr.slice(0, 600)}`);
  }
  return lines[0]!;
}
