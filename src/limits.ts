import { InputError } from './errors.js';

/**
 * The project's ONE memory budget: the most memory that loading, validating or generating an MDP
 * may allocate for its tables. Every reader (fedpg-mdp/1 JSON, fedpg-shared/1, .npz) and every
 * generator checks the bytes it is about to allocate against it BEFORE allocating, so a small
 * hostile file that declares a huge table, or a generator asked for a dense table of terabytes,
 * is refused with one line instead of exhausting the machine.
 *
 * The budget is, in order: the value set by a command's `--memory-budget BYTES` flag
 * (setMemoryBudget), the environment variable FEDPG_MEMORY_BUDGET, else 4 GiB. A fixed default
 * (not a fraction of the machine's memory) keeps a file's acceptance the same on every machine.
 * No host APIs here: the browser entry parses MDPs too.
 */

export const DEFAULT_MEMORY_BUDGET = 4 * 2 ** 30;
export const MEMORY_BUDGET_ENV = 'FEDPG_MEMORY_BUDGET';
export const MEMORY_BUDGET_FLAG = '--memory-budget';

/**
 * The longest typed array any table may be: row offsets and next-state indices are Int32Array,
 * and engines cap typed-array lengths, so every single table stays below 2^31 entries.
 */
export const MAX_TABLE_ENTRIES = 2 ** 31 - 1;

/** How deep JSON input may nest. fedpg-mdp/1 needs 5 levels; anything deeper is not an MDP. */
export const MAX_JSON_DEPTH = 64;

/**
 * Parsed JSON costs more memory than its text (numbers become boxed values and arrays); a JSON
 * file is refused when this many times its size exceeds the budget.
 */
export const JSON_BYTES_FACTOR = 4;

/** V8 cannot hold a string longer than about 2^29 characters, so JSON text has to stay below. */
export const MAX_JSON_FILE_BYTES = 2 ** 29 - 64;

let flagBudget: number | undefined;

const UNITS: Record<string, number> = { '': 1, b: 1, k: 2 ** 10, kb: 2 ** 10, kib: 2 ** 10, m: 2 ** 20, mb: 2 ** 20, mib: 2 ** 20, g: 2 ** 30, gb: 2 ** 30, gib: 2 ** 30, t: 2 ** 40, tb: 2 ** 40, tib: 2 ** 40 };

/** Parses a byte count: an integer, optionally with a binary unit (512M, 4GiB, 4g). */
export function parseBytes(text: string, what: string): number {
  const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  const bytes = m && unit !== undefined ? Math.floor(Number(m[1]) * unit) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes < 1) throw new InputError(`${what} must be a byte count such as 4294967296, 512M or 4GiB, got '${text}'`);
  return bytes;
}

/** Sets (or with undefined clears) the budget a command's --memory-budget flag gave. */
export function setMemoryBudget(bytes: number | undefined): void {
  flagBudget = bytes;
}

/** The memory budget in force (flag, then environment, then the default). */
export function memoryBudget(): number {
  if (flagBudget !== undefined) return flagBudget;
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.[MEMORY_BUDGET_ENV];
  if (env !== undefined && env !== '') return parseBytes(env, MEMORY_BUDGET_ENV);
  return DEFAULT_MEMORY_BUDGET;
}

/** 1536 -> "1.5 KiB". */
export function formatBytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let v = n, u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} bytes` : `${v >= 100 ? v.toFixed(0) : v.toPrecision(3)} ${units[u]}`;
}

/**
 * Adds up what one load or generation allocates and refuses, before the allocation, the first
 * request that would take the total past the budget.
 */
export class MemoryLedger {
  private used = 0;
  constructor(
    /** Prefixes messages (a file name), may be empty. */
    private readonly where: string,
    readonly budget: number = memoryBudget(),
    /** Appended to a refusal: what the user can do instead. */
    private readonly hint = '',
  ) {}

  /** Reserves `bytes` for `what`, or throws an InputError naming the size, the budget and the override. */
  reserve(bytes: number, what: string): void {
    const total = this.used + bytes;
    if (!(total <= this.budget)) {
      const prefix = this.where ? `${this.where}: ` : '';
      throw new InputError(
        `${prefix}${what} would take ${formatBytes(bytes)}${this.used > 0 ? ` (${formatBytes(total)} in all)` : ''}, over the memory budget of ${formatBytes(this.budget)} (raise it with ${MEMORY_BUDGET_FLAG} or ${MEMORY_BUDGET_ENV})${this.hint ? `; ${this.hint}` : ''}`,
      );
    }
    this.used = total;
  }

  /** Refuses a table longer than a typed array may be. */
  entries(n: number, what: string): void {
    if (!(n <= MAX_TABLE_ENTRIES)) {
      const prefix = this.where ? `${this.where}: ` : '';
      throw new InputError(`${prefix}${what} would have ${n} entries, more than the ${MAX_TABLE_ENTRIES} one table may hold${this.hint ? `; ${this.hint}` : ''}`);
    }
  }

  get reserved(): number {
    return this.used;
  }
}
