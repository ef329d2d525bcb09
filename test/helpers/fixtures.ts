import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');

export function fixturePath(name: string): string {
  return join(FIXTURES, name);
}

/** Names (without .json) of the fixtures that have an expect file. */
export function expectedFixtures(): string[] {
  return readdirSync(FIXTURES)
    .filter((f) => f.endsWith('.expect.json'))
    .map((f) => f.slice(0, -'.expect.json'.length))
    .sort();
}

export function readExpect(name: string): any {
  return JSON.parse(readFileSync(fixturePath(`${name}.expect.json`), 'utf8'));
}

function flat(x: unknown): number[] {
  return Array.isArray(x) ? x.flatMap(flat) : [x as number];
}

/**
 * SPEC.md's agreement rule: the largest absolute difference over max(1, largest |expected|).
 * Shapes must match exactly.
 */
export function relativeError(got: unknown, want: unknown): number {
  const g = flat(got);
  const w = flat(want);
  if (g.length !== w.length) return Infinity;
  let scale = 1;
  for (const v of w) scale = Math.max(scale, Math.abs(v));
  let err = 0;
  for (let i = 0; i < w.length; i++) {
    const d = Math.abs(g[i]! - w[i]!);
    if (!(d <= err)) err = Number.isNaN(d) ? Infinity : d;
  }
  return err / scale;
}

/** [S][A] nested rows of a flat table. */
export function table(t: ArrayLike<number>, A: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < t.length; i += A) out.push(Array.from({ length: A }, (_, a) => t[i + a]!));
  return out;
}

/** Wall-clock fields of the round records: they differ between any two runs. */
const TIMING_KEYS = new Set(['seconds', 'stepsPerSecond']);

/** A deep copy without the wall-clock fields, so two runs' outputs compare with toEqual. */
export function untimed<T>(x: T): T {
  return JSON.parse(JSON.stringify(x), (k, v) => (TIMING_KEYS.has(k) ? undefined : v)) as T;
}

/** JSON.parse without the wall-clock fields. */
export function parseUntimed(text: string): any {
  return JSON.parse(text, (k, v) => (TIMING_KEYS.has(k) ? undefined : v));
}
