import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { InputError } from '../errors.js';
import { isProcessAlive } from './process.js';

/**
 * An exclusive claim on a file that a run keeps writing (a round log): `FILE.lock` beside it,
 * created with O_EXCL and holding the owner's pid and host. A second run that wants the file is
 * refused while the owner lives; a lock whose pid is dead (a run killed with kill -9) is stale
 * and taken over. The pid check is only meaningful on one machine, so a lock from another host
 * is never taken over (delete it by hand once that run is gone).
 */

/** Locks this process holds, released at exit even when the run ends by an error. */
const held = new Set<FileLock>();
let exitHook = false;

interface Owner {
  pid: number;
  host: string;
}

function readOwner(lockPath: string): Owner | null {
  try {
    const j = JSON.parse(readFileSync(lockPath, 'utf8')) as Partial<Owner>;
    if (typeof j.pid === 'number' && typeof j.host === 'string') return { pid: j.pid, host: j.host };
  } catch {
    /* gone, half-written by a writer that died between create and write, or not ours */
  }
  return null;
}

export class FileLock {
  private released = false;

  private constructor(
    readonly path: string,
    readonly lockPath: string,
  ) {}

  /**
   * Claims `path` for this process, or throws an InputError naming the run that holds it.
   * `flag` names the option the user chose the file with (for the message).
   */
  static acquire(path: string, flag: string): FileLock {
    const lockPath = `${path}.lock`;
    const me: Owner = { pid: process.pid, host: hostname() };
    for (let attempt = 0; attempt < 2; attempt++) {
      let fd: number;
      try {
        fd = openSync(lockPath, 'wx', 0o644);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') throw new InputError(`cannot write ${path}: its directory does not exist`);
        if (code !== 'EEXIST') throw new InputError(`cannot lock ${path} (${lockPath}: ${code ?? String(e)})`);
        const owner = readOwner(lockPath);
        const stale = owner !== null && owner.host === me.host && owner.pid !== me.pid && !isProcessAlive(owner.pid);
        if (!stale || attempt > 0) {
          const who = owner ? `pid ${owner.pid}${owner.host !== me.host ? ` on ${owner.host}` : ''}` : 'another process';
          throw new InputError(`${path} is being written by another run (${who}; lock file ${lockPath}): choose another ${flag}, or wait for that run to end (delete the lock file only if no run uses ${path})`);
        }
        // Stale: remove it unless another starter replaced it in the meantime, then try once more.
        const again = readOwner(lockPath);
        if (again && again.pid === owner.pid && again.host === owner.host) {
          try {
            unlinkSync(lockPath);
          } catch {
            /* another starter removed it first */
          }
        }
        continue;
      }
      try {
        writeSync(fd, JSON.stringify(me) + '\n');
        closeSync(fd);
      } catch (e) {
        try {
          closeSync(fd);
        } catch {
          /* reported below */
        }
        unlinkSync(lockPath);
        throw new InputError(`cannot lock ${path} (${lockPath}: ${(e as NodeJS.ErrnoException).code ?? String(e)})`);
      }
      const lock = new FileLock(path, lockPath);
      held.add(lock);
      if (!exitHook) {
        exitHook = true;
        process.on('exit', () => {
          for (const l of held) l.release();
        });
      }
      return lock;
    }
    throw new Error('unreachable');
  }

  /** Gives the file up (removes the lock file if it is still ours). */
  release(): void {
    if (this.released) return;
    this.released = true;
    held.delete(this);
    const owner = readOwner(this.lockPath);
    if (owner && owner.pid === process.pid && owner.host === hostname()) {
      try {
        unlinkSync(this.lockPath);
      } catch {
        /* already gone */
      }
    }
  }
}
