/**
 * How large a federation's messages may be, from the table size S*A alone (README, "A federation
 * across machines"; docs/ARCHITECTURE.md). A vector of S*A float64 packs into 8 S*A bytes (wire.ts),
 * and every message is at most a few such vectors plus a handful of scalar fields:
 *
 *   request (PushDelta, PushGradient: one vector)      8 S*A + 1024 bytes   (the aggregator's readMaxBytes)
 *   PullRound answer (theta_bar, g, the agent's own
 *     memory sample, up to 2 down vectors)             5 x 8 S*A + 4096 bytes
 *   Register answer                                    the shared MDP + 2 x 8 S*A + 4096 bytes
 *
 * At S*A = 4 x 10^6 (a 1000 x 1000 gridworld) a vector is 32 MB, a request 32 MB and a PullRound
 * answer at most 160 MB: under ConnectRPC's per-message ceiling (2^32 - 1 bytes, which the
 * agents' transports keep, since they learn S*A only from Register) and Node's HTTP/2 defaults
 * (measured: 8 concurrent 32 MB streams on one session pass). Browser-safe (no Node APIs).
 */

/** Bytes of one packed vector of `tableSize` = S*A float64 values. */
export function vectorBytes(tableSize: number): number {
  return 8 * tableSize;
}

/** Room for a message's framing and scalar fields (agent, round, J_i, flags, tags, lengths). */
export const REQUEST_OVERHEAD_BYTES = 1024;
const ANSWER_OVERHEAD_BYTES = 4096;

/**
 * The most vectors one PullRound answer carries: theta_bar, the global memory g, the agent's
 * own held report, and an algorithm's `down` vectors (at most two: FedSVRPG-M's theta_prev and u).
 */
export const MAX_ANSWER_VECTORS = 5;

/** The largest request an agent sends, which the aggregator accepts (its readMaxBytes). */
export function maxRequestBytes(tableSize: number): number {
  return vectorBytes(tableSize) + REQUEST_OVERHEAD_BYTES;
}

/** The largest PullRound answer the aggregator sends. */
export function maxPullAnswerBytes(tableSize: number): number {
  return MAX_ANSWER_VECTORS * vectorBytes(tableSize) + ANSWER_OVERHEAD_BYTES;
}

/** The shared MDP goes to the agents as .npz above this many table entries (S*A), as JSON up to it. */
export const SHARED_NPZ_ENTRIES = 100_000;

/** One line for an oversized message: its size, the limit, and where the limit comes from. */
export function oversizeMessage(what: string, bytes: number, tableSize: number): string {
  return `${what} is ${bytes} bytes, above the aggregator's limit of ${maxRequestBytes(tableSize)} bytes (8 x S*A + ${REQUEST_OVERHEAD_BYTES}, S*A = ${tableSize}): the agent and the aggregator disagree on the MDP's size`;
}
