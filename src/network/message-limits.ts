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

/**
 * HTTP/2 sizes for tables of `tableSize` entries (server.ts, agent-host.ts, node.ts). At
 * S*A = 4 x 10^6 with Node's defaults (64 KiB flow-control windows, 10 MB of session memory) and a
 * fixed 30 s body timeout, four agents in one process pushing 32 MB vectors (their event loop
 * held by the kernels between pushes) sent bodies that outlasted the timeout, the aggregator
 * closed them, and the session, past its memory limit, refused every retry
 * (NGHTTP2_ENHANCE_YOUR_CALM). The body timeout (requestTimeoutMs below) is the fix that was
 * measured to matter; these sizes are margin, so that a large message never waits on 64 KiB
 * acknowledgements and a session does not refuse new streams while large ones are in flight:
 *   - a stream may have a whole vector in flight (window = the largest request, at most 2^31 - 1),
 *     and the connection MAX_STREAMS_IN_FLIGHT of them;
 *   - the session's memory limit (a credit, not an allocation) holds that much and two answers;
 * both never below Node's defaults, so small tables keep today's settings.
 */
export interface Http2Sizes {
  /** SETTINGS_INITIAL_WINDOW_SIZE: bytes a stream may send before the peer acknowledges. */
  streamWindow: number;
  /** The connection's local window (session.setLocalWindowSize). */
  connectionWindow: number;
  /** maxSessionMemory, in MB as Node takes it. */
  sessionMemoryMb: number;
}

/** Messages a connection may have in flight at full window. */
export const MAX_STREAMS_IN_FLIGHT = 4;
const NODE_DEFAULT_WINDOW = 65_535;
const NODE_DEFAULT_SESSION_MB = 10;
const MAX_WINDOW = 2 ** 31 - 1;

export function http2Sizes(tableSize: number): Http2Sizes {
  const request = maxRequestBytes(tableSize), answer = maxPullAnswerBytes(tableSize);
  const streamWindow = Math.min(MAX_WINDOW, Math.max(NODE_DEFAULT_WINDOW, request));
  const connectionWindow = Math.min(MAX_WINDOW, Math.max(NODE_DEFAULT_WINDOW, MAX_STREAMS_IN_FLIGHT * request));
  const sessionMemoryMb = Math.max(NODE_DEFAULT_SESSION_MB, Math.ceil((connectionWindow + 2 * answer) / 2 ** 20));
  return { streamWindow, connectionWindow, sessionMemoryMb };
}

/**
 * The slowest request body the aggregator waits for: the request timeout (--request-timeout, 30 s
 * by default) grows by a request's bytes at this rate, so a body of one vector always has
 * `maxRequestBytes / MIN_BODY_BYTES_PER_S` seconds more (32 s at S*A = 4 x 10^6; under 0.1 s up to
 * 10^4 entries). Trickling attackers are still cut off: at this rate a body ends within a minute.
 */
export const MIN_BODY_BYTES_PER_S = 2 ** 20;

export function requestTimeoutMs(baseMs: number, tableSize: number): number {
  return baseMs + Math.ceil((1000 * maxRequestBytes(tableSize)) / MIN_BODY_BYTES_PER_S);
}

/**
 * An agent learns S*A only from Register, after its connection is open: its HTTP/2 sessions are
 * sized for tables of up to 2^22 entries (a 1000 x 1000 gridworld has 4 x 10^6), which only lets
 * the aggregator send that much without waiting (the agent reads whole messages anyway).
 */
export const AGENT_HTTP2_TABLE_ENTRIES = 2 ** 22;

/** http2.connect options for an agent's sessions (stream window and session memory; see http2Sizes). */
export function agentHttp2Options(): { settings: { initialWindowSize: number }; maxSessionMemory: number } {
  const z = http2Sizes(AGENT_HTTP2_TABLE_ENTRIES);
  return { settings: { initialWindowSize: z.streamWindow }, maxSessionMemory: z.sessionMemoryMb };
}
