import { InputError } from '../errors.js';
import { readJsonOrNpz } from '../mdp/format.js';
import { readNpz, SHARED_NPZ_FORMAT } from '../mdp/npz.js';
import { parseJsonText } from '../mdp/parse.js';
import { parseShared, type SharedMdp } from './formats.js';

/**
 * Reads a fedpg-shared/1 file for `fedpg serve`: JSON, or an .npz whose format marker is
 * 'fedpg-shared/1' (told apart by the first bytes), with the same file-type, size and memory
 * checks as every MDP file.
 */
export function loadShared(path: string): SharedMdp {
  return readJsonOrNpz(
    path,
    (fd, size) => {
      const c = readNpz(fd, size, path);
      if (c.format !== SHARED_NPZ_FORMAT) throw new InputError(`${path}: format must be "${SHARED_NPZ_FORMAT}", got ${JSON.stringify(c.format)}`);
      return c.mdp;
    },
    (text) => parseShared(parseJsonText(text, path), path),
  );
}
