import { readFileSync } from 'node:fs';
import { InputError } from '../errors.js';
import type { Mdp } from './model.js';
import { parseJsonText, parseMdp, parseTheta } from './parse.js';

/**
 * fedpg-mdp/1 files in Node: parse.ts does the validation; this module adds reading them, with a
 * missing or unreadable file turned into an InputError.
 */
export * from './parse.js';

/** Reads a file, turning a missing or unreadable file into an InputError. */
export function readTextFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new InputError(`${path}: no such file`);
    if (code === 'EISDIR') throw new InputError(`${path}: is a directory, not a file`);
    throw new InputError(`${path}: cannot read (${code ?? String(e)})`);
  }
}

export function loadMdp(path: string): Mdp {
  return parseMdp(parseJsonText(readTextFile(path), path), path);
}

/** Reads a theta file (see parseTheta). */
export function loadTheta(path: string, S: number, A: number): Float64Array {
  return parseTheta(parseJsonText(readTextFile(path), path), path, S, A);
}
