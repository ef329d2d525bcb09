import { inflateSync, unzipSync, Zip, ZipDeflate } from 'fflate';
import { readZipDirectory, ZipError, type ZipEntry } from './zip-directory.js';
import { storedMember } from './zip-stored.js';
import type { TransitionTable } from '../backends/types.js';
import { InputError } from '../errors.js';
import { formatBytes, MAX_TABLE_ENTRIES, MemoryLedger } from '../limits.js';
import { writeFileAtomic } from '../util/atomic.js';
import type { Mdp } from './model.js';
import { npyHeader, NpyError, readNpyHeader } from './npy.js';
import { MDP_FORMAT, REWARD_RANGE_HINT, SUM_TOLERANCE, type MdpParseOptions, type MdpWithoutRewards } from './parse.js';
import { readAt } from './input-file.js';

/**
 * MDPs as numpy .npz archives (README, "File formats"), so a researcher can build one with numpy
 * and np.savez / np.savez_compressed it. Members (each a .npy array):
 *   format      0-d string 'fedpg-mdp/1' (or 'fedpg-shared/1': no rewards)
 *   name        0-d string (optional)
 *   gamma       0-d float64
 *   initial     [S] float64
 *   rewards     [N, S, A] float64 (not in a shared file)
 *   transitions [S, A, S] float64 (or [N, S, A, S]: one kernel per agent), or CSR over the S*A
 *               rows (row s*A + a): indptr [S*A + 1], indices [nnz] (int32 or int64), data [nnz]
 * Values little-endian float64, indices little-endian int32 or int64, C order; members stored or
 * deflated. Anything else is refused by name. The zip's central directory is read first
 * (zip-directory.ts), then each member straight from the file; every member's uncompressed size
 * is checked against the memory budget before anything is allocated or inflated (fflate's
 * inflate never writes past the declared size), and every array's shape
 * against its bytes, so a small archive cannot make the reader allocate more than it holds.
 */

const MEMBERS = ['format', 'name', 'gamma', 'initial', 'rewards', 'transitions', 'indptr', 'indices', 'data'] as const;
/** The members of one agent's fedpg-rewards/2 archive (fedpg split --format npz). */
const REWARDS_MEMBERS = ['format', 'agent', 'key', 'rewards'] as const;
type MemberName = (typeof MEMBERS)[number] | (typeof REWARDS_MEMBERS)[number];

export const SHARED_NPZ_FORMAT = 'fedpg-shared/1';

/** True when the file's first bytes are a zip signature (a local file header or an empty zip). */
export function isNpz(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && ((head[2] === 3 && head[3] === 4) || (head[2] === 5 && head[3] === 6));
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The members' arrays are viewed in place as this machine's numbers, which only a little-endian host reads as '<f8' / '<i4' / '<i8'. */
function assertLittleEndianHost(path: string): void {
  if (!LITTLE_ENDIAN_HOST) throw new InputError(`${path}: .npz files are read on little-endian machines only`);
}

interface Member {
  name: MemberName;
  descr: string;
  shape: number[];
  fortran: boolean;
  /** The array's bytes (after the .npy header). */
  data: Uint8Array;
}

function product(shape: readonly number[]): number {
  return shape.reduce((p, d) => p * d, 1);
}

function shapeText(shape: readonly number[]): string {
  return `(${shape.join(', ')}${shape.length === 1 ? ',' : ''})`;
}

class NpzReader {
  constructor(
    readonly path: string,
    private readonly members: Map<MemberName, Member>,
  ) {}

  fail(msg: string): never {
    throw new InputError(`${this.path}: ${msg}`);
  }

  has(name: MemberName): boolean {
    return this.members.has(name);
  }

  get(name: MemberName, ndim: number | null, hint: string): Member {
    const m = this.members.get(name);
    if (!m) this.fail(`has no array '${name}' (${hint})`);
    if (m.descr.includes('O')) this.fail(`${name} holds Python objects (dtype object), which fedpg never unpickles; save a numeric array`);
    if (ndim !== null && m.shape.length !== ndim) this.fail(`${name} has shape ${shapeText(m.shape)}, expected ${ndim} dimensions (${hint})`);
    if (m.fortran && m.shape.length > 1) this.fail(`${name} is stored in Fortran order; save np.ascontiguousarray(${name}) (C order)`);
    return m;
  }

  private dtype(m: Member, want: string, what: string): never {
    const d = m.descr;
    const why =
      d.includes('O') ? 'Python objects (dtype object), which fedpg never unpickles'
      : d.startsWith('>') ? `big-endian ${d.slice(1)}`
      : `dtype ${d}`;
    this.fail(`${m.name} holds ${why}; it must be ${what} ('${want}'): save ${m.name}.astype('${want}')`);
  }

  private checkBytes(m: Member, itemsize: number): number {
    const n = product(m.shape);
    if (!(n <= MAX_TABLE_ENTRIES)) this.fail(`${m.name} has shape ${shapeText(m.shape)}: ${n} entries, more than the ${MAX_TABLE_ENTRIES} one table may hold`);
    if (m.data.length !== n * itemsize) this.fail(`${m.name} holds ${m.data.length} bytes of data, but its shape ${shapeText(m.shape)} needs ${n * itemsize}`);
    return n;
  }

  float64(m: Member): Float64Array {
    if (m.descr !== '<f8') this.dtype(m, '<f8', 'little-endian float64');
    const n = this.checkBytes(m, 8);
    if (m.data.byteOffset % 8 === 0) return new Float64Array(m.data.buffer, m.data.byteOffset, n);
    return new Float64Array(m.data.slice().buffer, 0, n); // an unaligned member (a writer without numpy's 64-byte padding)
  }

  /** int32 or int64 indices as an Int32Array (every value must be in 0..2^31-1). */
  indices(m: Member): Int32Array {
    if (m.descr === '<i4') {
      const n = this.checkBytes(m, 4);
      return m.data.byteOffset % 4 === 0 ? new Int32Array(m.data.buffer, m.data.byteOffset, n) : new Int32Array(m.data.slice().buffer, 0, n);
    }
    if (m.descr !== '<i8') this.dtype(m, '<i8', 'little-endian int32 or int64');
    const n = this.checkBytes(m, 8);
    const words = m.data.byteOffset % 4 === 0 ? new Int32Array(m.data.buffer, m.data.byteOffset, 2 * n) : new Int32Array(m.data.slice().buffer, 0, 2 * n);
    // Compacted in place: value k is (low word 2k, high word 2k+1); it fits when the high word is 0
    // and the low word is non-negative.
    for (let k = 0; k < n; k++) {
      const lo = words[2 * k]!, hi = words[2 * k + 1]!;
      if (hi !== 0 || lo < 0) this.fail(`${m.name}[${k}] is ${(BigInt(hi) << 32n) | BigInt(lo >>> 0)}, outside 0..${MAX_TABLE_ENTRIES}`);
      words[k] = lo;
    }
    return words.subarray(0, n);
  }

  text(m: Member): string {
    if (m.shape.length !== 0) this.fail(`${m.name} has shape ${shapeText(m.shape)}, expected a 0-d string (np.array('...'))`);
    const u = /^<U([0-9]+)$/.exec(m.descr), s = /^\|S([0-9]+)$/.exec(m.descr);
    if (u) {
      if (m.data.length !== 4 * Number(u[1])) this.fail(`${m.name} holds ${m.data.length} bytes, but dtype ${m.descr} needs ${4 * Number(u[1])}`);
      let out = '';
      const dv = new DataView(m.data.buffer, m.data.byteOffset, m.data.byteLength);
      for (let k = 0; k < m.data.length; k += 4) {
        const cp = dv.getUint32(k, true);
        if (cp === 0) break;
        if (cp > 0x10ffff) this.fail(`${m.name} holds an invalid character (code ${cp})`);
        out += String.fromCodePoint(cp);
      }
      return out;
    }
    if (s) {
      if (m.data.length !== Number(s[1])) this.fail(`${m.name} holds ${m.data.length} bytes, but dtype ${m.descr} needs ${s[1]}`);
      const end = m.data.indexOf(0);
      return new TextDecoder('utf-8').decode(m.data.subarray(0, end < 0 ? m.data.length : end));
    }
    this.fail(`${m.name} has dtype ${m.descr}; it must be a string (dtype '<U..' or '|S..')`);
  }

  /** A probability vector: finite, >= 0, summing to 1. `at(j)` names entry j. */
  distribution(v: Float64Array, start: number, n: number, at: (j: number) => string, what: string): void {
    let sum = 0;
    for (let j = 0; j < n; j++) {
      const p = v[start + j]!;
      if (!Number.isFinite(p)) this.fail(`${at(j)} is ${p}, not a finite number`);
      if (p < 0) this.fail(`${at(j)} is ${p}, a negative probability`);
      sum += p;
    }
    if (Math.abs(sum - 1) > SUM_TOLERANCE) this.fail(`${what} sums to ${sum}, not 1 (tolerance ${SUM_TOLERANCE})`);
  }
}

/** The members an archive may hold and what it is, for the messages. */
interface MemberRules {
  allowed: readonly MemberName[];
  what: string;
}
const MDP_RULES: MemberRules = { allowed: MEMBERS, what: 'a fedpg MDP' };

/**
 * The checks every member passes before anything is allocated for it: a known .npy name, once,
 * stored or deflated, its uncompressed size within the memory budget.
 */
function admitMember(f: { name: string; compression: number; size: number }, path: string, ledger: MemoryLedger, seen: Set<string>, rules: MemberRules): void {
  const key = f.name.endsWith('.npy') ? f.name.slice(0, -4) : f.name;
  if (!(rules.allowed as readonly string[]).includes(key)) throw new InputError(`${path}: holds '${f.name}', which is no array of ${rules.what} (expected ${rules.allowed.map((m) => `${m}.npy`).join(', ')})`);
  if (!f.name.endsWith('.npy')) throw new InputError(`${path}: member '${f.name}' must be a .npy array ('${f.name}.npy', as np.savez names it)`);
  if (seen.has(f.name)) throw new InputError(`${path}: holds '${f.name}' twice; an array may appear once`);
  seen.add(f.name);
  if (f.compression !== 0 && f.compression !== 8) throw new InputError(`${path}: ${f.name} uses zip compression method ${f.compression}; only stored and deflate (np.savez, np.savez_compressed) are read`);
  ledger.reserve(f.size, `${f.name} (${formatBytes(f.size)} uncompressed)`);
}

/** A member's bytes with its .npy header read. */
function withHeader(file: string, bytes: Uint8Array, path: string): Member {
  const name = file.slice(0, -4) as MemberName;
  try {
    const h = readNpyHeader(bytes);
    return { name, descr: h.descr, shape: h.shape, fortran: h.fortranOrder, data: bytes.subarray(h.dataOffset) };
  } catch (e) {
    if (e instanceof NpyError) throw new InputError(`${path}: ${name} ${e.message}`);
    throw e;
  }
}

function unreadable(path: string, why: string): never {
  throw new InputError(`${path}: is not a readable .npz (zip) archive (${why})`);
}

/**
 * Reads the archive's members from the open file (budget-checked, each straight into a buffer of
 * its own: see zip-directory.ts) and each one's .npy header. Stored members cost one read();
 * deflated ones are read, then inflated by fflate into a buffer of their declared size (fflate
 * never writes past it; a member that inflates to another size is refused).
 */
function readFileMembers(fd: number, size: number, path: string, ledger: MemoryLedger, rules: MemberRules = MDP_RULES): Map<MemberName, Member> {
  assertLittleEndianHost(path);
  let entries: ZipEntry[];
  try {
    entries = readZipDirectory(fd, size);
  } catch (e) {
    if (e instanceof ZipError) unreadable(path, e.message);
    throw e;
  }
  const seen = new Set<string>();
  for (const f of entries) {
    admitMember(f, path, ledger, seen, rules);
    if (f.compression === 0 && f.compressedSize !== f.size) unreadable(path, `${f.name} is stored, but its sizes differ: ${f.compressedSize} and ${f.size} bytes`);
  }
  const out = new Map<MemberName, Member>();
  for (const f of entries) {
    let member: Uint8Array;
    if (f.compression === 0) {
      member = new Uint8Array(f.size);
      if (readAt(fd, member, f.dataOffset) !== f.size) unreadable(path, `${f.name} is cut short`);
    } else {
      const packed = new Uint8Array(f.compressedSize);
      if (readAt(fd, packed, f.dataOffset) !== f.compressedSize) unreadable(path, `${f.name} is cut short`);
      try {
        member = inflateSync(packed, { out: new Uint8Array(f.size) });
      } catch (e) {
        unreadable(path, `${f.name}: ${e instanceof Error ? e.message : String(e)}`);
      }
      if (member.length !== f.size) unreadable(path, `${f.name} inflates to ${member.length} bytes, not the ${f.size} its directory declares`);
    }
    const m = withHeader(f.name, member, path);
    out.set(m.name, m);
  }
  return out;
}

/** The same from an archive already in memory (a message's bytes), through fflate's unzipSync. */
function readMembers(bytes: Uint8Array, path: string, ledger: MemoryLedger, rules: MemberRules = MDP_RULES): Map<MemberName, Member> {
  assertLittleEndianHost(path);
  const seen = new Set<string>();
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(bytes, {
      filter: (f) => {
        admitMember({ name: f.name, compression: f.compression, size: f.originalSize }, path, ledger, seen, rules);
        return true;
      },
    });
  } catch (e) {
    if (e instanceof InputError) throw e;
    unreadable(path, e instanceof Error ? e.message : String(e));
  }
  const out = new Map<MemberName, Member>();
  for (const [file, member] of Object.entries(files)) {
    const m = withHeader(file, member, path);
    out.set(m.name, m);
  }
  return out;
}

export interface NpzContents {
  format: string;
  mdp: MdpWithoutRewards;
  /** null in a fedpg-shared/1 archive. */
  rewards: Float64Array[] | null;
}

/**
 * Reads and validates an .npz MDP from an open file of `size` bytes. Accepts 'fedpg-mdp/1' and
 * 'fedpg-shared/1' archives; the caller checks which one it wanted.
 */
export function readNpz(fd: number, size: number, path: string, options: MdpParseOptions = {}): NpzContents {
  const ledger = new MemoryLedger(path, options.memoryBudget);
  return npzContents(new NpzReader(path, readFileMembers(fd, size, path, ledger)), options);
}

/**
 * readNpz on an archive already in memory (e.g. the shared MDP an aggregator sends in Register);
 * `where` names it in messages. The members' sizes are checked against the memory budget.
 */
export function readNpzBytes(bytes: Uint8Array, path: string, options: MdpParseOptions = {}, ledger = new MemoryLedger(path, options.memoryBudget)): NpzContents {
  return npzContents(new NpzReader(path, readMembers(bytes, path, ledger)), options);
}

/** Validates an MDP archive's members (readNpz, readNpzBytes). */
function npzContents(r: NpzReader, options: MdpParseOptions): NpzContents {
  const format = r.text(r.get('format', 0, `a 0-d string '${MDP_FORMAT}': np.savez(..., format=np.array('${MDP_FORMAT}'))`));
  if (format !== MDP_FORMAT && format !== SHARED_NPZ_FORMAT) r.fail(`format is ${JSON.stringify(format)}, expected "${MDP_FORMAT}" (or "${SHARED_NPZ_FORMAT}")`);
  const shared = format === SHARED_NPZ_FORMAT;
  const name = r.has('name') ? r.text(r.get('name', 0, 'a 0-d string')) : undefined;
  const gammaArr = r.float64(r.get('gamma', 0, 'a 0-d float64'));
  const gamma = gammaArr[0]!;
  if (!Number.isFinite(gamma)) r.fail(`gamma is ${gamma}, not a finite number`);
  if (!(gamma >= 0 && gamma < 1)) r.fail(`gamma is ${gamma}, outside [0, 1)`);
  const initial = r.float64(r.get('initial', 1, 'shape (S,)'));
  const S = initial.length;
  if (S < 1) r.fail('initial has 0 entries; an MDP needs at least one state');
  r.distribution(initial, 0, S, (j) => `initial[${j}]`, 'initial');

  let rewards: Float64Array[] | null = null;
  let A: number | null = null;
  let N: number | null = null;
  if (shared) {
    if (r.has('rewards')) r.fail(`a ${SHARED_NPZ_FORMAT} archive must not hold rewards (they stay with the agents: use fedpg split)`);
  } else {
    const rm = r.get('rewards', 3, 'shape (N, S, A)');
    const [n, s, a] = rm.shape as [number, number, number];
    if (n < 1) r.fail('rewards has 0 agents; at least one reward table is needed');
    if (s !== S) r.fail(`rewards has shape ${shapeText(rm.shape)}: ${s} states, but initial has ${S}`);
    if (a < 1) r.fail(`rewards has shape ${shapeText(rm.shape)}: 0 actions`);
    const all = r.float64(rm);
    // One comparison per entry (NaN fails it too); the first entry that fails is named below.
    const lo = options.anyFiniteRewards ? -Infinity : 0, hi = options.anyFiniteRewards ? Infinity : 1;
    let q = 0;
    if (options.anyFiniteRewards) while (q < all.length && all[q]! > lo && all[q]! < hi) q++;
    else while (q < all.length && all[q]! >= lo && all[q]! <= hi) q++;
    if (q < all.length) {
      const v = all[q]!;
      const at = `rewards[${Math.floor(q / (S * a))}][${Math.floor(q / a) % S}][${q % a}]`;
      if (!Number.isFinite(v)) r.fail(`${at} is ${v}, not a finite number`);
      r.fail(`${at} is ${v}, outside [0, 1]${REWARD_RANGE_HINT}`);
    }
    rewards = Array.from({ length: n }, (_, i) => all.subarray(i * S * a, (i + 1) * S * a));
    A = a;
    N = n;
  }

  const dense = r.has('transitions');
  const csr = r.has('indptr') || r.has('indices') || r.has('data');
  if (dense && csr) r.fail('holds both transitions and indptr/indices/data; give the kernel one way');
  if (!dense && !csr) r.fail('has no transitions: give transitions (S, A, S) or the CSR arrays indptr, indices, data over the S*A rows');
  let kernels: TransitionTable[];
  let perAgent = false;
  if (dense) {
    const tm = r.get('transitions', null, 'shape (S, A, S) or (N, S, A, S)');
    if (tm.shape.length !== 3 && tm.shape.length !== 4) r.fail(`transitions has shape ${shapeText(tm.shape)}, expected (S, A, S) or (N, S, A, S)`);
    perAgent = tm.shape.length === 4;
    const dims = perAgent ? tm.shape.slice(1) : tm.shape;
    const K = perAgent ? tm.shape[0]! : 1;
    if (dims[0] !== S || dims[2] !== S) r.fail(`transitions has shape ${shapeText(tm.shape)}, but initial has ${S} states`);
    if (A === null) A = dims[1]!;
    if (dims[1] !== A) r.fail(`transitions has shape ${shapeText(tm.shape)}: ${dims[1]} actions, but rewards has ${A}`);
    if (A < 1) r.fail(`transitions has shape ${shapeText(tm.shape)}: 0 actions`);
    if (perAgent && N !== null && K !== N) r.fail(`transitions has ${K} per-agent kernels, but rewards has ${N} agents`);
    const p = r.float64(tm);
    const SAS = S * A * S;
    kernels = [];
    for (let k = 0; k < K; k++) {
      const lead = perAgent ? `[${k}]` : '';
      for (let row = 0; row < S * A; row++) {
        const s = Math.floor(row / A), a = row % A;
        r.distribution(p, k * SAS + row * S, S, (j) => `transitions${lead}[${s}][${a}][${j}]`, `transitions${lead}[${s}][${a}]`);
      }
      kernels.push({ kind: 'dense', p: p.subarray(k * SAS, (k + 1) * SAS) });
    }
  } else {
    const ip = r.get('indptr', 1, 'shape (S*A + 1,)');
    const rows = ip.shape[0]! - 1;
    if (A === null) {
      if (rows < S || rows % S !== 0) r.fail(`indptr has ${rows + 1} entries; with ${S} states it must have S*A + 1`);
      A = rows / S;
    }
    if (rows !== S * A) r.fail(`indptr has ${rows + 1} entries, expected S*A + 1 = ${S * A + 1} (${S} states, ${A} actions)`);
    const rowStart = r.indices(ip);
    const next = r.indices(r.get('indices', 1, 'shape (nnz,)'));
    const prob = r.float64(r.get('data', 1, 'shape (nnz,)'));
    const nnz = next.length;
    if (prob.length !== nnz) r.fail(`data has ${prob.length} entries, but indices has ${nnz}`);
    if (rowStart[0] !== 0) r.fail(`indptr[0] is ${rowStart[0]}, expected 0`);
    if (rowStart[rows] !== nnz) r.fail(`indptr[${rows}] is ${rowStart[rows]}, expected ${nnz} (the length of indices and data)`);
    // The fast pass: per row, indices strictly increasing and below S, probabilities in
    // [0, Infinity), and the sum; the first row that fails any of it is named by namedRowError.
    let bad = -1;
    for (let row = 0; row < rows && bad < 0; row++) {
      const lo = rowStart[row]!, hi = rowStart[row + 1]!;
      if (!(hi > lo && hi <= nnz)) {
        bad = row;
        break;
      }
      let sum = 0, prev = -1;
      for (let q = lo; q < hi; q++) {
        const j = next[q]!, v = prob[q]!;
        if (!(j > prev && j < S && v >= 0 && v < Infinity)) {
          bad = row;
          break;
        }
        prev = j;
        sum += v;
      }
      if (!(Math.abs(sum - 1) <= SUM_TOLERANCE)) bad = row;
    }
    if (bad >= 0) namedRowError(r, bad, A, S, nnz, rowStart, next, prob);
    kernels = [{ kind: 'sparse', rowStart, next, prob }];
  }
  const mdp: MdpWithoutRewards = { states: S, actions: A, gamma, initial, kernels, perAgentKernels: perAgent };
  if (name !== undefined) mdp.name = name;
  return { format, mdp, rewards };
}

/** Fails with the first thing wrong in CSR row `row` (the checks of the fast pass, one by one). */
function namedRowError(r: NpzReader, row: number, A: number, S: number, nnz: number, rowStart: Int32Array, next: Int32Array, prob: Float64Array): never {
  const lo = rowStart[row]!, hi = rowStart[row + 1]!;
  const s = Math.floor(row / A), a = row % A;
  if (hi <= lo) r.fail(`indptr[${row + 1}] is ${hi}, ${hi < lo ? 'below' : 'equal to'} indptr[${row}] = ${lo}: row ${row} (state ${s}, action ${a}) needs at least one next state`);
  if (hi > nnz) r.fail(`indptr[${row + 1}] is ${hi}, beyond the ${nnz} entries`);
  let sum = 0;
  for (let q = lo; q < hi; q++) {
    const j = next[q]!;
    if (j >= S || j < 0) r.fail(`indices[${q}] is ${j}, outside 0..${S - 1} (row ${row}: state ${s}, action ${a})`);
    if (q > lo && j <= next[q - 1]!) r.fail(`indices[${q}] is ${j}, not above indices[${q - 1}] = ${next[q - 1]} within row ${row} (state ${s}, action ${a}): sort each row and merge duplicates (csr.sum_duplicates())`);
    const v = prob[q]!;
    if (!Number.isFinite(v)) r.fail(`data[${q}] is ${v}, not a finite number`);
    if (v < 0) r.fail(`data[${q}] is ${v}, a negative probability`);
    sum += v;
  }
  r.fail(`row ${row} (state ${s}, action ${a}) of indptr/indices/data sums to ${sum}, not 1 (tolerance ${SUM_TOLERANCE})`);
}

/** One agent's reward table and stream key as read from an .npz (formats.ts parseRewards checks the rest). */
export interface NpzRewards {
  format: string;
  agent: number;
  key: string;
  /** The [S, A] table, row-major. */
  rewards: { shape: [number, number]; values: Float64Array };
}

/**
 * Reads one agent's fedpg-rewards/2 archive (fedpg split --format npz): members `format` (0-d
 * string), `agent` (0-d int32 or int64), `key` (0-d string: the private stream key) and
 * `rewards` [S, A] float64. Shapes and dtypes are checked here, the values against the shared
 * MDP by parseRewards, as for the JSON file.
 */
export function readNpzRewards(fd: number, size: number, path: string): NpzRewards {
  const r = new NpzReader(path, readFileMembers(fd, size, path, new MemoryLedger(path), { allowed: REWARDS_MEMBERS, what: "an agent's rewards file" }));
  const format = r.text(r.get('format', 0, "a 0-d string: the file's format, 'fedpg-rewards/2'"));
  const agent = r.indices(r.get('agent', 0, 'a 0-d integer'))[0]!;
  const key = r.text(r.get('key', 0, "a 0-d string: the agent's stream key"));
  const rm = r.get('rewards', 2, 'shape (S, A)');
  return { format, agent, key, rewards: { shape: [rm.shape[0]!, rm.shape[1]!], values: r.float64(rm) } };
}

/** Reads an .npz fedpg-mdp/1 MDP. */
export function readNpzMdp(fd: number, size: number, path: string, options: MdpParseOptions = {}): Mdp {
  const c = readNpz(fd, size, path, options);
  if (c.rewards === null) throw new InputError(`${path}: is a ${c.format} archive (no rewards); an MDP file with rewards is needed here`);
  return { ...c.mdp, rewards: c.rewards };
}

/** A 0-d numpy unicode string ('<U n', UTF-32LE). */
function unicodeMember(text: string): { descr: string; bytes: Uint8Array } {
  const cps = Array.from(text, (ch) => ch.codePointAt(0)!);
  const out = new Uint8Array(4 * Math.max(1, cps.length));
  const dv = new DataView(out.buffer);
  cps.forEach((cp, k) => dv.setUint32(4 * k, cp, true));
  return { descr: `<U${Math.max(1, cps.length)}`, bytes: out };
}

function bytesOf(a: Float64Array | Int32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** fflate writes no zip64 records, so no member and no offset may reach 4 GiB. */
const ZIP32_LIMIT = 2 ** 32 - 2 ** 20;

export interface NpzWriteOptions {
  /** Deflate the members (as np.savez_compressed); default stored (as np.savez). */
  compress?: boolean;
  /** The format marker: fedpg-mdp/1 (default) or fedpg-shared/1 (the rewards are left out). */
  format?: typeof MDP_FORMAT | typeof SHARED_NPZ_FORMAT;
}

/**
 * The .npz bytes of an MDP, as a list of parts (stored members pass the tables' own memory
 * through, so nothing is copied). Sparse kernels are written as CSR with int32 indices.
 */
/** One array member of an .npz archive: little-endian float64 or int32, C order, or a 0-d string. */
export interface NpzMember {
  name: string;
  data: Float64Array | Int32Array | string;
  shape: number[];
}

/**
 * The .npz bytes of named arrays (np.load reads them), as a list of parts, stored or deflated.
 * Used for reports too large to print as JSON (`fedpg evaluate --out FILE.npz`).
 */
export function npzArrayParts(members: readonly NpzMember[], options: { compress?: boolean } = {}): Uint8Array[] {
  const parts: Uint8Array[] = [];
  let failure: Error | null = null;
  const zip = new Zip((err, chunk) => {
    if (err) failure = err;
    else parts.push(chunk);
  });
  const mtime = new Date(2000, 0, 1);
  let total = 0;
  for (const m of members) {
    const text = typeof m.data === 'string' ? unicodeMember(m.data) : null;
    const bytes = text ? text.bytes : bytesOf(m.data as Float64Array | Int32Array);
    total += bytes.length + 256;
    if (total >= ZIP32_LIMIT) throw new InputError(`the .npz would be ${formatBytes(total)}; archives of 4 GiB or more (zip64) are not written`);
    const f = options.compress ? new ZipDeflate(`${m.name}.npy`, { level: 6 }) : storedMember(`${m.name}.npy`);
    f.mtime = mtime;
    zip.add(f);
    f.push(npyHeader(text ? text.descr : m.data instanceof Int32Array ? '<i4' : '<f8', text ? [] : m.shape), false);
    f.push(bytes, true);
  }
  zip.end();
  if (failure) throw failure;
  return parts;
}

export function npzParts(mdp: MdpWithoutRewards & { rewards?: Float64Array[] }, options: NpzWriteOptions = {}): Uint8Array[] {
  const format = options.format ?? MDP_FORMAT;
  const S = mdp.states, A = mdp.actions;
  const parts: Uint8Array[] = [];
  let failure: Error | null = null;
  const zip = new Zip((err, chunk) => {
    if (err) failure = err;
    else parts.push(chunk);
  });
  const mtime = new Date(2000, 0, 1); // fixed, so the same MDP always gives the same bytes
  let total = 0;
  const add = (name: string, descr: string, shape: number[], data: Uint8Array[]): void => {
    const bytes = data.reduce((n, d) => n + d.length, 0);
    total += bytes + 256;
    if (bytes >= ZIP32_LIMIT || total >= ZIP32_LIMIT) throw new InputError(`the .npz would be ${formatBytes(total)}; archives of 4 GiB or more (zip64) are not written: use fewer agents or a sparser kernel`);
    const f = options.compress ? new ZipDeflate(`${name}.npy`, { level: 6 }) : storedMember(`${name}.npy`);
    f.mtime = mtime;
    zip.add(f);
    f.push(npyHeader(descr, shape), data.length === 0);
    data.forEach((d, k) => f.push(d, k === data.length - 1));
  };
  const str = (name: string, text: string): void => {
    const u = unicodeMember(text);
    add(name, u.descr, [], [u.bytes]);
  };
  str('format', format);
  if (mdp.name !== undefined) str('name', mdp.name);
  add('gamma', '<f8', [], [bytesOf(Float64Array.of(mdp.gamma))]);
  add('initial', '<f8', [S], [bytesOf(mdp.initial)]);
  if (format === MDP_FORMAT) {
    const rewards = mdp.rewards ?? [];
    add('rewards', '<f8', [rewards.length, S, A], rewards.map(bytesOf));
  }
  const k0 = mdp.kernels[0]!;
  if (mdp.perAgentKernels || k0.kind === 'dense') {
    const ks = mdp.kernels.map((k) => {
      if (k.kind !== 'dense') throw new InputError('per-agent sparse kernels have no .npz form (CSR holds one kernel); write JSON instead');
      return bytesOf(k.p);
    });
    add('transitions', '<f8', mdp.perAgentKernels ? [ks.length, S, A, S] : [S, A, S], ks);
  } else if (k0.kind === 'sparse') {
    const nnz = k0.rowStart[S * A]!;
    add('indptr', '<i4', [S * A + 1], [bytesOf(k0.rowStart)]);
    add('indices', '<i4', [nnz], [bytesOf(k0.next.subarray(0, nnz))]);
    add('data', '<f8', [nnz], [bytesOf(k0.prob.subarray(0, nnz))]);
  }
  zip.end();
  if (failure) throw failure;
  return parts;
}

/** Writes an MDP as .npz, atomically. */
export function writeNpz(path: string, mdp: MdpWithoutRewards & { rewards?: Float64Array[] }, options: NpzWriteOptions = {}): void {
  writeFileAtomic(path, npzParts(mdp, options));
}
