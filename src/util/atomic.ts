import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * Writes a whole file atomically: a temporary file beside it, fsync, then rename, so a reader
 * (or a crash) sees either the old file or the new one, never half of it.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    throw e;
  }
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
