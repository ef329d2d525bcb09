/**
 * Random streams. Each agent owns one xoshiro128** stream, derived from the run seed and the
 * agent's index alone, so an agent's draws do not depend on how many agents run beside it, on
 * which thread it runs, or in which order agents finish.
 *
 * xoshiro128** works on 32-bit words, which JavaScript, C++ and WebAssembly all run at full
 * speed (a 64-bit generator would need BigInt in JavaScript), and every backend implements the
 * same generator and the same double construction, so one stream drives the same trajectories
 * on every backend.
 */

const MASK64 = (1n << 64n) - 1n;

function splitmix64(state: { x: bigint }): bigint {
  state.x = (state.x + 0x9e3779b97f4a7c15n) & MASK64;
  let z = state.x;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

/** Largest accepted seed: seeds are integers in [0, 2^53 - 1] so they survive JSON exactly. */
export const MAX_SEED = Number.MAX_SAFE_INTEGER;

/**
 * The stream of agent `agent` in a run seeded with `seed`: SplitMix64 over seed, then over the
 * agent index, expanded to the four 32-bit words of xoshiro128**.
 */
export function agentStream(seed: number, agent: number): Uint32Array {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be an integer in [0, 2^53-1], got ${seed}`);
  if (!Number.isSafeInteger(agent) || agent < 0) throw new RangeError(`agent index must be a non-negative integer, got ${agent}`);
  const base = { x: BigInt(seed) };
  const key = splitmix64(base);
  const st = { x: key ^ ((BigInt(agent) * 0xd1b54a32d192ed03n) & MASK64) };
  const a = splitmix64(st);
  const b = splitmix64(st);
  const out = new Uint32Array([Number(a & 0xffffffffn), Number(a >> 32n), Number(b & 0xffffffffn), Number(b >> 32n)]);
  if ((out[0] | out[1] | out[2] | out[3]) === 0) out[0] = 1; // the all-zero state is a fixed point
  return out;
}

/** One xoshiro128** output; advances `s` in place. The backends inline this same code. */
export function nextUint32(s: Uint32Array): number {
  const s0 = s[0]!, s1 = s[1]!, s2 = s[2]!, s3 = s[3]!;
  const m = Math.imul(s1, 5);
  const result = Math.imul((m << 7) | (m >>> 25), 9) >>> 0;
  const t = s1 << 9;
  const n2 = s2 ^ s0;
  const n3 = s3 ^ s1;
  s[1] = s1 ^ n2;
  s[0] = s0 ^ n3;
  s[2] = n2 ^ t;
  s[3] = (n3 << 11) | (n3 >>> 21);
  return result;
}

/** A uniform double in [0, 1) with 53 random bits, from two outputs. */
export function nextDouble(s: Uint32Array): number {
  const x = nextUint32(s) >>> 5;
  const y = nextUint32(s) >>> 6;
  return (x * 67108864 + y) * 1.1102230246251565e-16;
}

/**
 * An agent's private stream key: the 16 bytes of its initial xoshiro128** state as 32 lowercase hex
 * characters (fedpg-rewards/2's `key`). `fedpg split` derives it one-way from a secret the
 * aggregator never sees (or, with --seed S, writes agentStream(S, i), which `train --seed S` uses).
 */
export function streamKey(stream: Uint32Array): string {
  let out = '';
  for (let k = 0; k < 4; k++) out += stream[k]!.toString(16).padStart(8, '0');
  return out;
}

/** The stream of a key (32 hex characters, not all zero); null when the text is not one. */
export function streamFromKey(key: string): Uint32Array | null {
  if (!/^[0-9a-f]{32}$/.test(key)) return null;
  const s = new Uint32Array(4);
  for (let k = 0; k < 4; k++) s[k] = parseInt(key.slice(8 * k, 8 * k + 8), 16);
  return (s[0]! | s[1]! | s[2]! | s[3]!) === 0 ? null : s;
}
