import { closeSync } from 'node:fs';
import { InputError } from '../errors.js';
import { checkJsonSize, openRegularFile, readAt } from '../mdp/input-file.js';
import { isNpz, readNpz, SHARED_NPZ_FORMAT } from '../mdp/npz.js';
import { parseJsonText } from '../mdp/parse.js';
import { parseShared, type SharedMdp } from './formats.js';

/**
 * Reads a fedpg-shared/1 file for `fedpg serve`: JSON, or an .npz whose format marker is
 * 'fedpg-shared/1' (told apart by the first bytes), with the same file-type, size and memory
 * checks as every MDP file.
 */
export function loadShared(path: string): SharedMdp {
  const { fd, size } = openRegularFile(path);
  try {
    const head = new Uint8Array(4);
    const n = readAt(fd, head, 0);
    if (isNpz(head.subarray(0, n))) {
      const c = readNpz(fd, size, path);
      if (c.format !== SHARED_NPZ_FORMAT) throw new InputError(`${path}: format must be "${SHARED_NPZ_FORMAT}", got ${JSON.stringify(c.format)}`);
      return c.mdp;
    }
    checkJsonSize(path, size);
    const buf = Buffer.allocUnsafe(size);
    const got = readAt(fd, buf, 0);
    return parseShared(parseJsonText(buf.toString('utf8', 0, got), path), path);
  } finally {
    closeSync(fd);
  }
}
