import { streamFromKey, streamKey } from '../rng.js';
import type { EnvironmentSpec } from '../backends/types.js';
import { InputError } from '../errors.js';
import { MemoryLedger } from '../limits.js';
import { describe, mdpToJson, parseMdpBody, type MdpParseOptions } from '../mdp/parse.js';
import type { Mdp } from '../mdp/model.js';

/**
 * The files of a federation across machines (SPEC.md): fedpg-shared/1 (the MDP without its
 * rewards: what the aggregator and every agent may see), fedpg-rewards/2 (one agent's reward
 * table, which never leaves that agent) and the token files. Parsing is browser-safe (no fs): a
 * browser agent gets the shared MDP from Register and its rewards from its own page.
 */

export const SHARED_FORMAT = 'fedpg-shared/1';
export const REWARDS_FORMAT = 'fedpg-rewards/2';

/** An MDP without rewards. */
export type SharedMdp = Omit<Mdp, 'rewards'>;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Validates a parsed JSON value as fedpg-shared/1 (every check of fedpg-mdp/1 except the
 * rewards, which it must not hold), with the same size checks against the data present and the
 * memory budget before anything is allocated.
 */
export function parseShared(json: unknown, where = 'shared MDP', options: Pick<MdpParseOptions, 'memoryBudget'> = {}): SharedMdp {
  if (!isObject(json)) throw new InputError(`${where}: the shared MDP must be a JSON object, got ${describe(json)}`);
  if (json.format !== SHARED_FORMAT) throw new InputError(`${where}: format must be "${SHARED_FORMAT}", got ${describe(json.format)}`);
  if ('rewards' in json) throw new InputError(`${where}: a ${SHARED_FORMAT} file must not hold rewards (they stay with the agents: use fedpg split)`);
  return parseMdpBody(json, where, null, new MemoryLedger(where, options.memoryBudget));
}

/** The fedpg-shared/1 JSON value of an MDP (its rewards left out). */
export function sharedToJson(mdp: SharedMdp): Record<string, unknown> {
  const { rewards: _r, ...o } = mdpToJson({ ...mdp, rewards: [] });
  return { ...o, format: SHARED_FORMAT };
}

/** How many agents a shared MDP fixes (per-agent kernels), or null when the kernel is shared. */
export function sharedAgentCount(mdp: SharedMdp): number | null {
  return mdp.perAgentKernels ? mdp.kernels.length : null;
}

/** The environment agent `agent` samples from. */
export function sharedEnvironmentSpec(mdp: SharedMdp, agent: number): EnvironmentSpec {
  const k = mdp.kernels.length === 1 ? mdp.kernels[0]! : mdp.kernels[agent];
  if (!k) throw new InputError(`agent ${agent} has no transition kernel: the shared MDP has ${mdp.kernels.length} per-agent kernels`);
  return { states: mdp.states, actions: mdp.actions, gamma: mdp.gamma, initial: mdp.initial, transitions: k };
}

/**
 * Validates fedpg-rewards/2 against the shared MDP's shape; returns the agent index, its table and
 * its private random stream (from `key`, which only this agent holds).
 */
export function parseRewards(json: unknown, states: number, actions: number, where = 'rewards'): { agent: number; reward: Float64Array; stream: Uint32Array } {
  const fail = (msg: string): never => {
    throw new InputError(`${where}: ${msg}`);
  };
  if (!isObject(json)) return fail(`must be a JSON object, got ${describe(json)}`);
  if (json.format === 'fedpg-rewards/1') fail('it is a fedpg-rewards/1 file, which holds no private stream key: re-run fedpg split');
  if (json.format !== REWARDS_FORMAT) fail(`format must be "${REWARDS_FORMAT}", got ${describe(json.format)}`);
  const stream = typeof json.key === 'string' ? streamFromKey(json.key) : null;
  if (!stream) fail(`key must be the agent's stream key, 32 lowercase hex characters not all zero, got ${typeof json.key === 'string' ? `a string of ${json.key.length} characters` : describe(json.key)}`);
  const agent = json.agent;
  if (typeof agent !== 'number' || !Number.isSafeInteger(agent) || agent < 0) fail(`agent must be an integer >= 0, got ${describe(agent)}`);
  const rows = json.rewards;
  if (isTable(rows)) return { agent: agent as number, reward: checkedTable(rows, states, actions, fail), stream: stream! };
  if (!Array.isArray(rows)) return fail(`rewards must be an [S][A] array, got ${describe(rows)}`);
  if (rows.length !== states) fail(`rewards has ${rows.length} rows, expected ${states} (the shared MDP's states)`);
  new MemoryLedger(where).reserve(states * actions * 8, `rewards (${states} x ${actions} float64)`);
  const reward = new Float64Array(states * actions);
  for (let s = 0; s < states; s++) {
    const r = rows[s];
    if (!Array.isArray(r) || r.length !== actions) fail(`rewards[${s}] must have ${actions} entries (the shared MDP's actions), got ${describe(r)}`);
    for (let a = 0; a < actions; a++) reward[s * actions + a] = checkedReward((r as unknown[])[a], s, a, fail);
  }
  return { agent: agent as number, reward, stream: stream! };
}

/** A reward table as an .npz holds it (mdp/npz.ts readNpzRewards): its shape and row-major values. */
export interface RewardsTable {
  shape: [number, number];
  values: Float64Array;
}

function isTable(v: unknown): v is RewardsTable {
  return isObject(v) && v.values instanceof Float64Array && Array.isArray(v.shape);
}

/**
 * One reward, rewards[s][a], from JSON rows or an .npz table: a finite number in [0, 1]. A number
 * is named as JavaScript prints it (NaN, -Infinity: JSON would print null), anything else as JSON.
 */
function checkedReward(v: unknown, s: number, a: number, fail: (msg: string) => never): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) return fail(`rewards[${s}][${a}] is ${typeof v === 'number' ? v : describe(v)}, not a finite number`);
  if (v < 0 || v > 1) fail(`rewards[${s}][${a}] is ${v}, outside [0, 1]`);
  return v;
}

/** The JSON checks, on a table read from an .npz: its shape, then every value (checkedReward). */
function checkedTable(t: RewardsTable, states: number, actions: number, fail: (msg: string) => never): Float64Array {
  const [S, A] = t.shape;
  if (S !== states || A !== actions) fail(`rewards has shape (${S}, ${A}), expected (${states}, ${actions}) (the shared MDP's states and actions)`);
  const v = t.values;
  for (let q = 0; q < v.length; q++) checkedReward(v[q], Math.floor(q / actions), q % actions, fail);
  return v;
}

/** An agent's fedpg-rewards/2 document: its reward table and its private stream key. */
export function rewardsToJson(agent: number, reward: Float64Array, states: number, actions: number, stream: Uint32Array): Record<string, unknown> {
  const rows: number[][] = [];
  for (let s = 0; s < states; s++) rows.push(Array.from(reward.subarray(s * actions, (s + 1) * actions)));
  return { format: REWARDS_FORMAT, agent, key: streamKey(stream), rewards: rows };
}

/** Tokens are URL- and header-safe: 16 to 256 characters of [A-Za-z0-9_-]. */
export const TOKEN_PATTERN = /^[A-Za-z0-9_-]{16,256}$/;

/** An agent's token file: {"agent": I, "token": "..."}. */
export function parseAgentToken(json: unknown, where = 'token file'): { agent: number; token: string } {
  if (!isObject(json)) throw new InputError(`${where}: must be a JSON object {"agent": I, "token": "..."}, got ${describe(json)}`);
  const { agent, token } = json;
  if (typeof agent !== 'number' || !Number.isSafeInteger(agent) || agent < 0) throw new InputError(`${where}: agent must be an integer >= 0, got ${describe(agent)}`);
  if (typeof token !== 'string' || !TOKEN_PATTERN.test(token)) throw new InputError(`${where}: token must be a string of 16 to 256 characters [A-Za-z0-9_-]`);
  return { agent, token };
}

/** The aggregator's token file: {"tokens": {"0": "...", ...}}, one token per agent 0..N-1. */
export function parseAggregatorTokens(json: unknown, agents: number, where = 'token file'): string[] {
  if (!isObject(json) || !isObject(json.tokens)) throw new InputError(`${where}: must be a JSON object {"tokens": {"0": "...", ...}}`);
  const t = json.tokens;
  const out: string[] = [];
  for (let i = 0; i < agents; i++) {
    const v = t[String(i)];
    if (v === undefined) throw new InputError(`${where}: no token for agent ${i} (the run has ${agents} agents)`);
    if (typeof v !== 'string' || !TOKEN_PATTERN.test(v)) throw new InputError(`${where}: the token of agent ${i} must be a string of 16 to 256 characters [A-Za-z0-9_-]`);
    out.push(v);
  }
  for (const k of Object.keys(t)) {
    if (!/^(0|[1-9][0-9]*)$/.test(k) || Number(k) >= agents) throw new InputError(`${where}: token key "${k}" is not an agent of this run (0..${agents - 1})`);
  }
  if (new Set(out).size !== out.length) throw new InputError(`${where}: two agents share a token; every agent needs its own`);
  return out;
}
