import { closeSync, constants, fstatSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import { InputError } from '../errors.js';
import { formatBytes, JSON_BYTES_FACTOR, MAX_JSON_FILE_BYTES, MEMORY_BUDGET_FLAG, memoryBudget } from '../limits.js';

/**
 * Reading input files safely: only regular files (a FIFO would hang the reader, /dev/zero would
 * stream forever), and text files only up to a size the memory budget allows, checked before
 * anything is read.
 */

function kindOf(st: Stats): string | null {
  if (st.isFile()) return null;
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

function notRegular(path: string, kind: string): never {
  throw new InputError(`${path}: is ${kind}, not a regular file; give the path of a file`);
}

function cannotRead(path: string, e: unknown): never {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') throw new InputError(`${path}: no such file`);
  if (code === 'EISDIR') notRegular(path, 'a directory');
  throw new InputError(`${path}: cannot read (${code ?? String(e)})`);
}

/**
 * Opens a regular file for reading and returns its descriptor and size. The type is checked
 * before opening (opening a FIFO waits for a writer) and again on the descriptor, which is opened
 * non-blocking, so a path swapped for a FIFO or a device in between still cannot hang or stream
 * forever.
 */
export function openRegularFile(path: string): { fd: number; size: number } {
  let st: Stats;
  try {
    st = statSync(path);
  } catch (e) {
    cannotRead(path, e);
  }
  const kind = kindOf(st);
  if (kind) notRegular(path, kind);
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  } catch (e) {
    cannotRead(path, e);
  }
  const again = fstatSync(fd);
  const kind2 = kindOf(again);
  if (kind2) {
    closeSync(fd);
    notRegular(path, kind2);
  }
  return { fd, size: again.size };
}

/** Reads up to `length` bytes at `position` (fewer only at the end of the file). */
export function readAt(fd: number, out: Uint8Array, position: number): number {
  let done = 0;
  while (done < out.length) {
    const n = readSync(fd, out, done, out.length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/** The largest JSON file the budget allows (its parsed value takes a few times its size). */
export function maxJsonBytes(): number {
  return Math.min(MAX_JSON_FILE_BYTES, Math.floor(memoryBudget() / JSON_BYTES_FACTOR));
}

export function checkJsonSize(path: string, size: number): void {
  const max = maxJsonBytes();
  if (size > max) {
    throw new InputError(
      `${path}: is ${formatBytes(size)}, more than the ${formatBytes(max)} a JSON file may have (${max === MAX_JSON_FILE_BYTES ? 'the longest text a JavaScript string holds' : `a ${JSON_BYTES_FACTOR}th of the memory budget; raise it with ${MEMORY_BUDGET_FLAG}`}); store large MDPs as .npz`,
    );
  }
}

/** Reads a whole text file: a regular file of at most maxJsonBytes(), as UTF-8. */
export function readTextFile(path: string): string {
  const { fd, size } = openRegularFile(path);
  try {
    checkJsonSize(path, size);
    const buf = Buffer.allocUnsafe(size);
    const n = readAt(fd, buf, 0);
    return buf.toString('utf8', 0, n);
  } finally {
    closeSync(fd);
  }
}

