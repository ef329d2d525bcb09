import { closeSync, fsyncSync, openSync, readdirSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** Temporary files of `path` are named `.<name>.<pid>.tmp` beside it. */
function tempPrefix(path: string): string {
  return `.${basename(path)}.`;
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    /* already gone, or raced with another cleaner */
  }
}

/** Removes temporary files of earlier writers of `path` that were killed before their rename. */
function removeStaleTemps(path: string): void {
  const dir = dirname(path);
  const prefix = tempPrefix(path);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    if (!n.startsWith(prefix) || !n.endsWith('.tmp')) continue;
    const pid = Number(n.slice(prefix.length, -4));
    if (!Number.isSafeInteger(pid) || pid === process.pid) continue;
    try {
      process.kill(pid, 0);
      continue; // its writer is alive
    } catch {
      /* the writer is gone */
    }
    unlinkQuietly(join(dir, n));
  }
}

export interface AtomicWriteOptions {
  /** Runs after the temporary file is fsynced and before the rename (fault injection in tests). */
  beforeRename?: () => void;
}

/**
 * Writes a whole file atomically: a temporary file beside it, fsync, rename, then an fsync of the
 * directory, so a reader (or a crash at any point) sees either the old file or the new one, never
 * half of it. Temporary files left by killed writers are removed.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array | readonly Uint8Array[], options: AtomicWriteOptions = {}): void {
  const dir = dirname(path);
  const tmp = join(dir, `${tempPrefix(path)}${process.pid}.tmp`);
  const fd = openSync(tmp, 'w');
  try {
    // A list of parts is written in order (a large file need not be joined in memory first).
    // Linux writes at most 2 GiB per call: loop until each part is out.
    for (const part of typeof data === 'string' ? [Buffer.from(data)] : data instanceof Uint8Array ? [data] : data) {
      for (let off = 0; off < part.length; ) {
        const n = writeSync(fd, part, off);
        if (n <= 0) throw new Error(`${path}: the disk accepted no more bytes`);
        off += n;
      }
    }
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    unlinkQuietly(tmp);
    throw e;
  }
  closeSync(fd);
  options.beforeRename?.();
  try {
    renameSync(tmp, path);
  } catch (e) {
    unlinkQuietly(tmp);
    throw e;
  }
  try {
    const dfd = openSync(dir, 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    /* directories cannot be fsynced on every platform; the rename is still atomic */
  }
  removeStaleTemps(path);
}

/**
 * An append-only log of whole lines. Each line goes out in one write() and is fsynced before the
 * next round is reported, so a run killed at any point leaves a log of complete lines.
 */
export class LineLog {
  private fd: number;
  constructor(readonly path: string) {
    this.fd = openSync(path, 'w');
  }
  write(value: unknown): void {
    writeSync(this.fd, JSON.stringify(value) + '\n');
    fsyncSync(this.fd);
  }
  close(): void {
    if (this.fd >= 0) {
      closeSync(this.fd);
      this.fd = -1;
    }
  }
}
