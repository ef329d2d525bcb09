import { isBackendChoice } from '../backends/select.js';
import type { BackendChoice } from '../backends/types.js';
import { InputError } from '../errors.js';

/**
 * Flag values arrive as strings and are parsed here, so a bad value (exit 1) is told apart from
 * a bad or missing flag, which commander reports (exit 2).
 */

export function num(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (v.trim() === '' || !Number.isFinite(x)) throw new InputError(`--${flag} must be a number, got '${v}'`);
  return x;
}

export function int(flag: string, v: string | undefined, min = 0): number | undefined {
  const x = num(flag, v);
  if (x === undefined) return undefined;
  if (!Number.isSafeInteger(x) || x < min) throw new InputError(`--${flag} must be an integer >= ${min}, got '${v}'`);
  return x;
}

export function backendChoice(v: string | undefined): BackendChoice | undefined {
  if (v === undefined) return undefined;
  if (!isBackendChoice(v)) throw new InputError(`--backend must be auto, native, wasm or js, got '${v}'`);
  return v;
}

export function oneOf<T extends string>(flag: string, v: string | undefined, allowed: readonly T[]): T | undefined {
  if (v === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(v)) throw new InputError(`--${flag} must be one of ${allowed.join(', ')}, got '${v}'`);
  return v as T;
}

/** Prints one JSON object on stdout (the --json contract). */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + '\n');
}
