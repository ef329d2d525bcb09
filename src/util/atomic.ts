import { closeSync, fstatSync, fsyncSync, ftruncateSync, openSync, readdirSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { InputError } from '../errors.js';
import { isProcessAlive } from './process.js';

/**
 * A file could not be written (a full disk, a quota, a read-only file system, permissions). Not
 * a bug of fedpg: the CLI prints its one-line message and exits 1. `code` is the errno name.
 */
export class FileWriteError extends InputError {
  constructor(
    message: string,
    readonly path: string,
    readonly code: string | undefined,
  ) {
    super(message);
    this.name = 'FileWriteError';
  }
}

const REASONS: Record<string, string> = {
  ENOSPC: 'the disk is full (ENOSPC)',
  EDQUOT: 'the disk quota is exhausted (EDQUOT)',
  EFBIG: 'the file is too large (EFBIG)',
  EROFS: 'the file system is read-only (EROFS)',
  EACCES: 'permission denied (EACCES)',
  EPERM: 'operation not permitted (EPERM)',
  EIO: 'an I/O error (EIO)',
  ENOENT: 'its directory does not exist (ENOENT)',
};

function codeOf(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}

function reasonOf(e: unknown): string {
  const code = codeOf(e);
  if (code && REASONS[code]) return REASONS[code];
  return code ?? (e instanceof Error ? e.message : String(e));
}

/**
 * Writes all of `buf` at the descriptor's position. write() may write fewer bytes than asked
 * (a nearly full disk writes what fits, then fails with ENOSPC), so the rest is written again
 * until done; a write that makes no progress counts as a full disk.
 */
function writeAll(fd: number, buf: Uint8Array, position: number | null = null): void {
  let off = 0;
  while (off < buf.length) {
    const n = writeSync(fd, buf, off, buf.length - off, position === null ? null : position + off);
    if (!(n > 0)) throw Object.assign(new Error('write() wrote nothing'), { code: 'ENOSPC' });
    off += n;
  }
}

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

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    /* the error that brought us here is the one to report */
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
    if (!Number.isSafeInteger(pid) || pid === process.pid || isProcessAlive(pid)) continue;
    unlinkQuietly(join(dir, n));
  }
}

export interface AtomicWriteOptions {
  /** Runs after the temporary file is fsynced and before the rename (fault injection in tests). */
  beforeRename?: () => void;
  /** The new file's permissions (e.g. 0o600 for secrets), set when the temporary file is created. */
  mode?: number;
}

/**
 * Writes a whole file atomically: a temporary file beside it, fsync, rename, then an fsync of the
 * directory, so a reader (or a crash at any point) sees either the old file or the new one, never
 * half of it. Every byte is checked written: on a full disk (or any write error) the temporary
 * file is removed, the old file is kept as it was, and a FileWriteError says so. Temporary files
 * left by killed writers are removed.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array | readonly Uint8Array[], options: AtomicWriteOptions = {}): void {
  const dir = dirname(path);
  const tmp = join(dir, `${tempPrefix(path)}${process.pid}.tmp`);
  const fail = (e: unknown): never => {
    unlinkQuietly(tmp);
    throw new FileWriteError(`cannot write ${path}: ${reasonOf(e)}; ${path} was left as it was`, path, codeOf(e));
  };
  let fd: number;
  try {
    fd = openSync(tmp, 'w', options.mode ?? 0o666);
  } catch (e) {
    return fail(e);
  }
  try {
    // A list of parts is written in order (a large file, an .npz, need not be joined in memory first).
    for (const part of typeof data === 'string' ? [Buffer.from(data)] : data instanceof Uint8Array ? [data] : data) writeAll(fd, part);
    fsyncSync(fd);
  } catch (e) {
    closeQuietly(fd);
    return fail(e);
  }
  try {
    closeSync(fd); // some file systems (NFS) report a failed write only here
  } catch (e) {
    return fail(e);
  }
  options.beforeRename?.();
  try {
    renameSync(tmp, path);
  } catch (e) {
    return fail(e);
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

export interface LineLogOptions {
  /** Append to the file as it is (it must end with a whole line) instead of starting it empty. */
  append?: boolean;
}

/**
 * An append-only log of whole lines. Each line goes out in checked write()s and is fsynced before
 * the next round is reported, so a run killed at any point leaves a log of complete lines. A line
 * that cannot be written whole (a full disk) is cut off again: the file is truncated back to the
 * end of the last complete line, and a FileWriteError says so.
 */
export class LineLog {
  private fd: number;
  /** Bytes of complete lines: where the file is cut back to when a line fails. */
  private size: number;

  constructor(
    readonly path: string,
    options: LineLogOptions = {},
  ) {
    try {
      this.fd = openSync(path, options.append ? 'a' : 'w');
      this.size = fstatSync(this.fd).size;
    } catch (e) {
      throw new FileWriteError(`cannot write ${path}: ${reasonOf(e)}`, path, codeOf(e));
    }
  }

  write(value: unknown): void {
    if (this.fd < 0) throw new Error(`the log ${this.path} is closed`);
    const line = Buffer.from(JSON.stringify(value) + '\n');
    try {
      // At the end of the complete lines, explicitly: after a cut the descriptor's offset is
      // past the end of the file, and writing there would leave a hole of zero bytes.
      writeAll(this.fd, line, this.size);
      fsyncSync(this.fd);
    } catch (e) {
      let cut = 'the log ends with its last complete line';
      try {
        ftruncateSync(this.fd, this.size);
        fsyncSync(this.fd);
      } catch {
        cut = 'its last line may be incomplete';
      }
      throw new FileWriteError(`cannot append to ${this.path}: ${reasonOf(e)}; ${cut}`, this.path, codeOf(e));
    }
    this.size += line.length;
  }

  close(): void {
    if (this.fd >= 0) {
      closeQuietly(this.fd);
      this.fd = -1;
    }
  }
}
