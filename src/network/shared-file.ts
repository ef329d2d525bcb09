import { InputError } from '../errors.js';
import { readJsonOrNpz } from '../mdp/format.js';
import { npzParts, readNpz, readNpzBytes, SHARED_NPZ_FORMAT } from '../mdp/npz.js';
import { parseJsonText } from '../mdp/parse.js';
import { parseShared, sharedToJson, type SharedMdp } from './formats.js';
import { SHARED_NPZ_ENTRIES } from './message-limits.js';

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

/**
 * The bytes of the shared MDP that Register sends every agent (and that the run id hashes):
 * fedpg-shared/1 JSON up to SHARED_NPZ_ENTRIES table entries (S*A), so every smaller run keeps its
 * bytes and run id; .npz above, which is smaller and parses in a fraction of the time (JSON of a
 * 10^6-state gridworld is about 370 MB of text, near the longest string V8 holds).
 */
export function encodeSharedMdp(shared: SharedMdp): Uint8Array {
  if (shared.states * shared.actions <= SHARED_NPZ_ENTRIES) return new TextEncoder().encode(JSON.stringify(sharedToJson(shared)));
  return Buffer.concat(npzParts(shared, { format: SHARED_NPZ_FORMAT }));
}

/** Reads the .npz shared MDP an aggregator sent (RunAgentOptions.decodeSharedNpz), every check included. */
export function decodeSharedNpz(bytes: Uint8Array, where: string): SharedMdp {
  const c = readNpzBytes(bytes, where);
  if (c.format !== SHARED_NPZ_FORMAT) throw new InputError(`${where}: format must be "${SHARED_NPZ_FORMAT}", got ${JSON.stringify(c.format)}`);
  return c.mdp;
}
