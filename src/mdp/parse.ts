import type { TransitionTable } from '../backends/types.js';
import { InputError } from '../errors.js';
import { MemoryLedger, memoryBudget } from '../limits.js';
import { parseJsonStrict } from './json.js';
import type { Mdp } from './model.js';

/**
 * fedpg-mdp/1 (SPEC.md): parsing with validation, and serialisation. No host APIs here (the
 * browser entry uses this module); format.ts adds the file reading for Node. Every refusal names the
 * field, the index and the value; nothing half-loaded is ever returned (the Mdp is built only
 * after every check passed). Every declared size (states, actions, agents, entries) is checked
 * against the data actually present and against the memory budget (src/limits.ts) before the
 * table it sizes is allocated, so a small file cannot make the reader allocate gigabytes.
 */

export interface MdpParseOptions {
  /** Accept finite rewards outside [0, 1] (for --rescale-rewards, which maps them into it). */
  anyFiniteRewards?: boolean;
  /** Bytes the tables may take (default: memoryBudget()). */
  memoryBudget?: number;
}

export const MDP_FORMAT = 'fedpg-mdp/1';
/** Rows of P and rho must sum to 1 within this. */
export const SUM_TOLERANCE = 1e-9;

type Json = unknown;

/** A value as an error message shows it: JSON, shortened; NaN and the infinities by name; `missing` for undefined. */
export function describe(v: Json): string {
  if (v === undefined) return 'missing';
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  let s: string | undefined;
  try {
    s = JSON.stringify(v);
  } catch {
    s = Array.isArray(v) ? 'an array' : 'an object'; // too deep or cyclic to print
  }
  return s === undefined ? String(v) : s.length > 40 ? s.slice(0, 37) + '...' : s;
}

class Checker {
  constructor(private readonly where: string) {}

  fail(msg: string): never {
    throw new InputError(`${this.where}: ${msg}`);
  }

  object(v: Json, field: string): Record<string, Json> {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(`${field} must be a JSON object, got ${describe(v)}`);
    return v as Record<string, Json>;
  }

  int(v: Json, field: string, min: number): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) this.fail(`${field} must be an integer >= ${min}, got ${describe(v)}`);
    return v;
  }

  finite(v: Json, field: string): number {
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(`${field} is ${describe(v)}, not a finite number`);
    return v;
  }

  array(v: Json, field: string, len?: number): Json[] {
    if (!Array.isArray(v)) this.fail(`${field} must be an array, got ${describe(v)}`);
    if (len !== undefined && v.length !== len) this.fail(`${field} has ${v.length} entries, expected ${len}`);
    return v;
  }

  /** A probability vector of length n: finite, >= 0, summing to 1. */
  distribution(v: Json, field: string, n: number, out: Float64Array, offset: number): void {
    const arr = this.array(v, field, n);
    let sum = 0;
    for (let j = 0; j < n; j++) {
      const p = this.finite(arr[j], `${field}[${j}]`);
      if (p < 0) this.fail(`${field}[${j}] is ${p}, a negative probability`);
      out[offset + j] = p;
      sum += p;
    }
    if (Math.abs(sum - 1) > SUM_TOLERANCE) this.fail(`${field} sums to ${sum}, not 1 (tolerance ${SUM_TOLERANCE})`);
  }
}

function isObject(v: Json): v is Record<string, Json> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseDense(c: Checker, v: Json, field: string, S: number, A: number, ledger: MemoryLedger): TransitionTable {
  const rows = c.array(v, field, S);
  // The first row's shape is checked before the S*A*S table is allocated: A is not bounded by S.
  c.array(c.array(rows[0], `${field}[0]`, A)[0], `${field}[0][0]`, S);
  ledger.entries(S * A * S, `${field} (states x actions x states)`);
  ledger.reserve(S * A * S * 8, `${field} (${S} x ${A} x ${S} dense float64)`);
  const p = new Float64Array(S * A * S);
  for (let s = 0; s < S; s++) {
    const acts = c.array(rows[s], `${field}[${s}]`, A);
    for (let a = 0; a < A; a++) c.distribution(acts[a], `${field}[${s}][${a}]`, S, p, (s * A + a) * S);
  }
  return { kind: 'dense', p };
}

function parseSparse(c: Checker, v: Json[], field: string, S: number, A: number, ledger: MemoryLedger): TransitionTable {
  // Every (state, action) row must sum to 1, so it needs an entry: fewer entries than rows can
  // only be a file that declares more states or actions than it describes.
  if (v.length < S * A) c.fail(`${field} has ${v.length} entries, fewer than the ${S * A} rows (states x actions = ${S} x ${A}) it must cover; every (state, action) needs at least one`);
  ledger.entries(S * A + 1, `${field} row offsets (states x actions + 1)`);
  ledger.entries(v.length, field);
  ledger.reserve((S * A + 1) * 4 + v.length * (12 + 8) + S * A * 8, `${field} (${S * A} rows, ${v.length} entries)`);
  const entries: [number, number, number, number][] = [];
  for (let k = 0; k < v.length; k++) {
    const f = `${field}[${k}]`;
    const e = c.array(v[k], f, 4);
    const s = c.int(e[0], `${f}[0] (state)`, 0);
    const a = c.int(e[1], `${f}[1] (action)`, 0);
    const n = c.int(e[2], `${f}[2] (next state)`, 0);
    if (s >= S) c.fail(`${f}[0] (state) is ${s}, outside 0..${S - 1}`);
    if (a >= A) c.fail(`${f}[1] (action) is ${a}, outside 0..${A - 1}`);
    if (n >= S) c.fail(`${f}[2] (next state) is ${n}, outside 0..${S - 1}`);
    const p = c.finite(e[3], `${f}[3] (probability)`);
    if (p < 0) c.fail(`${f}[3] (probability) is ${p}, a negative probability`);
    entries.push([s, a, n, p]);
  }
  const order = entries.map((_, k) => k);
  order.sort((x, y) => {
    const ex = entries[x]!, ey = entries[y]!;
    return ex[0] - ey[0] || ex[1] - ey[1] || ex[2] - ey[2] || x - y;
  });
  const rowStart = new Int32Array(S * A + 1);
  const next = new Int32Array(entries.length);
  const prob = new Float64Array(entries.length);
  const sums = new Float64Array(S * A);
  for (let q = 0; q < order.length; q++) {
    const [s, a, n, p] = entries[order[q]!]!;
    if (q > 0) {
      const [ps, pa, pn] = entries[order[q - 1]!]!;
      if (ps === s && pa === a && pn === n) c.fail(`${field}[${order[q]}] repeats (state ${s}, action ${a}, next state ${n}) of ${field}[${order[q - 1]}]`);
    }
    rowStart[s * A + a + 1]!++;
    next[q] = n;
    prob[q] = p;
  }
  for (let r = 0; r < S * A; r++) rowStart[r + 1]! += rowStart[r]!;
  // Row sums in the order the entries appear in the file's row, as a dense reader would see them.
  for (let q = 0; q < order.length; q++) {
    const [s, a] = entries[order[q]!]!;
    sums[s * A + a]! += prob[q]!;
  }
  for (let s = 0; s < S; s++)
    for (let a = 0; a < A; a++) {
      const sum = sums[s * A + a]!;
      if (Math.abs(sum - 1) > SUM_TOLERANCE) c.fail(`${field}: row (state ${s}, action ${a}) sums to ${sum}, not 1 (tolerance ${SUM_TOLERANCE})`);
    }
  return { kind: 'sparse', rowStart, next, prob };
}

function parseKernel(c: Checker, v: Json, field: string, S: number, A: number, ledger: MemoryLedger): TransitionTable {
  if (isObject(v)) {
    const keys = Object.keys(v);
    if (!('sparse' in v) || keys.length !== 1) c.fail(`${field} must be an [S][A][S] array or {"sparse": [[s, a, s_next, p], ...]}, got an object with keys ${describe(keys)}`);
    return parseSparse(c, c.array(v.sparse, `${field}.sparse`), `${field}.sparse`, S, A, ledger);
  }
  return parseDense(c, v, field, S, A, ledger);
}

/** True when `transitions` holds one kernel per agent: [N][S][A][S] or [N]{"sparse": ...}. */
function isPerAgent(v: Json): boolean {
  if (!Array.isArray(v) || v.length === 0) return false;
  const first = v[0];
  if (isObject(first)) return true;
  return Array.isArray(first) && Array.isArray(first[0]) && Array.isArray(first[0][0]);
}

/** An MDP's shared part (everything but the rewards), as fedpg-mdp/1 and fedpg-shared/1 hold it. */
export type MdpWithoutRewards = Omit<Mdp, 'rewards'>;

/**
 * The checks fedpg-mdp/1 and fedpg-shared/1 share: name, states, actions, gamma, initial and
 * transitions of the object `o`. `agents`: the reward tables' count when the file holds rewards
 * (per-agent transitions must match it), null for a shared file.
 */
export function parseMdpBody(o: Record<string, Json>, where: string, agents: number | null, ledger: MemoryLedger): MdpWithoutRewards {
  const c = new Checker(where);
  const name = o.name;
  if (name !== undefined && typeof name !== 'string') c.fail(`name must be a string, got ${describe(name)}`);
  const S = c.int(o.states, 'states', 1);
  const A = c.int(o.actions, 'actions', 1);
  if (S * A * S > 2 ** 31 && !isObject(o.transitions)) c.fail(`states=${S}, actions=${A} is too large for dense transitions; use {"sparse": ...}`);
  const gamma = c.finite(o.gamma, 'gamma');
  if (!(gamma >= 0 && gamma < 1)) c.fail(`gamma is ${gamma}, outside [0, 1)`);
  c.array(o.initial, 'initial', S);
  ledger.reserve(S * 8, `initial (${S} float64)`);
  const initial = new Float64Array(S);
  c.distribution(o.initial, 'initial', S, initial, 0);
  let kernels: TransitionTable[];
  const perAgent = isPerAgent(o.transitions);
  if (perAgent) {
    const list = agents === null ? c.array(o.transitions, 'transitions') : c.array(o.transitions, 'transitions', agents);
    kernels = list.map((k, i) => parseKernel(c, k, `transitions[${i}]`, S, A, ledger));
  } else {
    if (o.transitions === undefined) c.fail('transitions is missing');
    kernels = [parseKernel(c, o.transitions, 'transitions', S, A, ledger)];
  }
  const mdp: MdpWithoutRewards = { states: S, actions: A, gamma, initial, kernels, perAgentKernels: perAgent };
  if (typeof name === 'string') mdp.name = name;
  return mdp;
}

/** Validates a parsed JSON value as fedpg-mdp/1. `where` prefixes every message (a file name). */
export function parseMdp(json: Json, where = 'MDP', options: MdpParseOptions = {}): Mdp {
  const c = new Checker(where);
  const ledger = new MemoryLedger(where, options.memoryBudget ?? memoryBudget());
  const o = c.object(json, 'the MDP');
  if (o.format !== MDP_FORMAT) c.fail(`format must be "${MDP_FORMAT}", got ${describe(o.format)}`);
  const rewardsJson = c.array(o.rewards, 'rewards');
  const N = rewardsJson.length;
  if (N === 0) c.fail('rewards has 0 agents; at least one reward table is needed');
  const body = parseMdpBody(o, where, N, ledger);
  const S = body.states, A = body.actions;
  // Every table's shape is checked before the N*S*A floats are allocated.
  for (let i = 0; i < N; i++) c.array(c.array(rewardsJson[i], `rewards[${i}]`, S)[0], `rewards[${i}][0]`, A);
  ledger.reserve(N * S * A * 8, `rewards (${N} x ${S} x ${A} float64)`);
  const rewards: Float64Array[] = [];
  for (let i = 0; i < N; i++) {
    const r = new Float64Array(S * A);
    const rows = c.array(rewardsJson[i], `rewards[${i}]`, S);
    for (let s = 0; s < S; s++) {
      const acts = c.array(rows[s], `rewards[${i}][${s}]`, A);
      for (let a = 0; a < A; a++) {
        const f = `rewards[${i}][${s}][${a}]`;
        const v = c.finite(acts[a], f);
        if (!options.anyFiniteRewards && (v < 0 || v > 1)) c.fail(`${f} is ${v}, outside [0, 1]${REWARD_RANGE_HINT}`);
        r[s * A + a] = v;
      }
    }
    rewards.push(r);
  }
  return { ...body, rewards };
}

/** Appended to an out-of-range reward's refusal. */
export const REWARD_RANGE_HINT = ' (--rescale-rewards maps all rewards into [0, 1] with one affine map)';

/** Parses JSON text strictly (src/mdp/json.ts); invalid or truncated JSON gets a one-line message naming the file. */
export function parseJsonText(text: string, where: string): Json {
  return parseJsonStrict(text, where);
}

function rows(t: Float64Array, S: number, A: number): number[][] {
  const out: number[][] = [];
  for (let s = 0; s < S; s++) out.push(Array.from(t.subarray(s * A, (s + 1) * A)));
  return out;
}

function kernelJson(k: TransitionTable, S: number, A: number): Json {
  if (k.kind === 'sparse') {
    const list: [number, number, number, number][] = [];
    for (let s = 0; s < S; s++)
      for (let a = 0; a < A; a++)
        for (let q = k.rowStart[s * A + a]!; q < k.rowStart[s * A + a + 1]!; q++) list.push([s, a, k.next[q]!, k.prob[q]!]);
    return { sparse: list };
  }
  const out: number[][][] = [];
  for (let s = 0; s < S; s++) {
    const acts: number[][] = [];
    for (let a = 0; a < A; a++) acts.push(Array.from(k.p.subarray((s * A + a) * S, (s * A + a + 1) * S)));
    out.push(acts);
  }
  return out;
}

/** The fedpg-mdp/1 JSON value of an MDP (the inverse of parseMdp). */
export function mdpToJson(mdp: Mdp): Record<string, Json> {
  const S = mdp.states, A = mdp.actions;
  const o: Record<string, Json> = { format: MDP_FORMAT };
  if (mdp.name !== undefined) o.name = mdp.name;
  o.states = S;
  o.actions = A;
  o.gamma = mdp.gamma;
  o.initial = Array.from(mdp.initial);
  o.transitions = mdp.perAgentKernels ? mdp.kernels.map((k) => kernelJson(k, S, A)) : kernelJson(mdp.kernels[0]!, S, A);
  o.rewards = mdp.rewards.map((r) => rows(r, S, A));
  return o;
}

/** A theta table, [S][A] rows, as JSON. */
export function thetaToJson(theta: Float64Array, S: number, A: number): number[][] {
  return rows(theta, S, A);
}

/**
 * A theta table from parsed JSON: an S x A array, or an object with a `theta` field (so a
 * fixture's expect file works as is).
 */
export function parseTheta(json: Json, where: string, S: number, A: number): Float64Array {
  const c = new Checker(where);
  const t = isObject(json) ? json.theta : json;
  const field = isObject(json) ? 'theta' : 'the theta table';
  const theta = new Float64Array(S * A);
  const rs = c.array(t, field, S);
  for (let s = 0; s < S; s++) {
    const acts = c.array(rs[s], `${field}[${s}]`, A);
    for (let a = 0; a < A; a++) theta[s * A + a] = c.finite(acts[a], `${field}[${s}][${a}]`);
  }
  return theta;
}
