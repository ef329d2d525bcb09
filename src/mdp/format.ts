import { closeSync } from 'node:fs';
import type { Mdp } from './model.js';
import { checkJsonSize, openRegularFile, readAt, readTextFile } from './input-file.js';
import { isNpz, readNpzMdp } from './npz.js';
import { parseJsonText, parseMdp, parseTheta, type MdpParseOptions } from './parse.js';

/**
 * MDP files in Node: fedpg-mdp/1 JSON or .npz (told apart by their first bytes, so the name does
 * not matter), read only when they are regular files of a size the memory budget allows.
 * parse.ts and npz.ts do the validation; input-file.ts the safe reading.
 */
export * from './parse.js';
export { readTextFile } from './input-file.js';

/**
 * Opens a regular file and hands it to `npz` (an open descriptor and its size) when its first
 * bytes are a zip signature, else its text (size-checked) to `json`. Every reader of MDP-like
 * files (loadMdp, serve's loadShared) goes through here.
 */
export function readJsonOrNpz<T>(path: string, npz: (fd: number, size: number) => T, json: (text: string) => T): T {
  const { fd, size } = openRegularFile(path);
  try {
    const head = new Uint8Array(4);
    const n = readAt(fd, head, 0);
    if (isNpz(head.subarray(0, n))) return npz(fd, size);
    checkJsonSize(path, size);
    const buf = Buffer.allocUnsafe(size);
    const got = readAt(fd, buf, 0);
    return json(buf.toString('utf8', 0, got));
  } finally {
    closeSync(fd);
  }
}

/** Reads an MDP file: .npz (by its zip signature) or fedpg-mdp/1 JSON. */
export function loadMdp(path: string, options: MdpParseOptions = {}): Mdp {
  return readJsonOrNpz(
    path,
    (fd, size) => readNpzMdp(fd, size, path, options),
    (text) => parseMdp(parseJsonText(text, path), path, options),
  );
}

/** Reads a theta file (see parseTheta). */
export function loadTheta(path: string, S: number, A: number): Float64Array {
  return parseTheta(parseJsonText(readTextFile(path), path), path, S, A);
}
