/**
 * The shared memory of a worker pool: one SharedArrayBuffer that the main thread and every
 * worker map the same way. Only these cross threads during a run (no per-step or per-round
 * messages): the round's inputs (theta_bar or per-agent starts, the global memory g), the
 * agents' outputs (final local theta, memory sample g_i, J_i and grad J_i at theta_bar), each
 * agent's committed random-stream state (16 bytes, so the main thread can checkpoint and a fresh
 * worker can rerun a failed agent from it), and the control words of the barrier.
 *
 * Control words (Int32, Atomics only):
 *   WAKE                    bumped and notified by any party with news; the main thread waits on it
 *   KIND, STEPS, ROUND      the current command's parameters (same for every worker)
 *   per worker w, at WORKER_BASE + w * WORKER_STRIDE:
 *     CMD       sequence number of the latest command for w (w waits on it)
 *     DONE      sequence number of the latest command w finished
 *     EVAL      sequence number of the latest command whose evaluation part w finished
 *     FAILED    sequence number of the latest command w failed (the message is in w's error area)
 *     CURRENT   agent * 4 + phase code of w's current work (for messages when w dies or hangs)
 *     GEN       the generation allowed to write for w (a replaced worker stops writing)
 *     READY     the generation that finished starting up
 *     ERRLEN    bytes of the UTF-8 error message
 *     ATTEMPT   0 for a command's first run on w, k for its k-th rerun (fault injection's `once`)
 */

export const CMD_EXIT = -1;

/** Command kinds (bit flags). */
export const K_EVAL = 1;
export const K_LOCAL = 2;
export const K_MEMORY = 4;
/** Phase 1 uses the global memory (Fast-FedPG's correction). */
export const K_USE_GMEM = 8;
/** Phase 1 starts every agent from its own theta (algorithm `local`). */
export const K_PER_AGENT_STARTS = 16;
/** Run mode: whole rounds from round C_ROUND on, as far as C_GO permits (see host.ts). */
export const K_RUN = 32;
/** Run mode, a restarted worker: evaluate theta_bar(C_ROUND - 1) before its first round. */
export const K_EVAL_FIRST = 64;

export const C_WAKE = 0;
export const C_KIND = 1;
export const C_STEPS = 2;
export const C_ROUND = 3;
/** Run mode: the last round the workers may run (-1: stop). */
export const C_GO = 4;
/** Run mode: bumped and notified at every barrier arrival. */
export const C_BAR = 5;
const WORKER_BASE = 8;
export const WORKER_STRIDE = 14;
export const W_CMD = 0;
export const W_DONE = 1;
export const W_EVAL = 2;
export const W_FAILED = 3;
export const W_CURRENT = 4;
export const W_GEN = 5;
export const W_READY = 6;
export const W_ERRLEN = 7;
export const W_ATTEMPT = 8;
/** Run mode: the last round w finished (its agents' state committed), its last evaluation, its barrier epoch, the round it failed in. */
export const W_ROUND = 9;
export const W_EVALROUND = 10;
export const W_ARRIVE = 11;
export const W_FAILROUND = 12;
/** Run mode: the round w starts at (set by the main thread before posting a run command). */
export const W_START = 13;
/** Phase codes in the low bits of CURRENT: agent * 4 + phase. */
export const P_IDLE = 0;
export const P_EVAL = 1;
export const P_LOCAL = 2;
export const P_MEMORY = 3;

export const ERR_BYTES = 2048;

export interface LayoutParams {
  agents: number;
  /** S*A. */
  size: number;
  workers: number;
  /** Per-agent starts (algorithm `local`). */
  perAgentStarts: boolean;
  /** The agents evaluate J_i and grad J_i at theta_bar. */
  evaluate: boolean;
  /** Run mode buffers (every algorithm but `local`). */
  run: boolean;
}

export interface Views {
  ctl: Int32Array;
  theta: Float64Array;
  gmem: Float64Array;
  /** [N*SA] or empty. */
  starts: Float64Array;
  /** [N*SA] (run mode: [2*N*SA], by round parity): phase outputs (final local theta, or g_i). */
  out: Float64Array;
  /** [N*SA]: the agents' committed memories g_i. */
  memory: Float64Array;
  /** [N] and [N*SA], or empty. */
  evalJ: Float64Array;
  evalGrad: Float64Array;
  /** [N*4] committed xoshiro128** states, and the states after the current phase. */
  rng: Uint32Array;
  rngNext: Uint32Array;
  /** [W*ERR_BYTES]. */
  err: Uint8Array;
  /** Run mode, by round parity (index r % 2 holds round r): theta_bar [2*SA], g [2*SA], g_i [2*N*SA], streams [2*N*4], J_i [2*N], grad J_i [2*N*SA]. */
  thetaP: Float64Array;
  gmemP: Float64Array;
  memP: Float64Array;
  rngP: Uint32Array;
  evalJP: Float64Array;
  evalGradP: Float64Array;
  /** [1]: alpha_g of the run. */
  params: Float64Array;
}

export function workerWord(w: number, field: number): number {
  return WORKER_BASE + w * WORKER_STRIDE + field;
}

type F64Key = 'theta' | 'gmem' | 'starts' | 'out' | 'memory' | 'evalJ' | 'evalGrad' | 'thetaP' | 'gmemP' | 'memP' | 'evalJP' | 'evalGradP' | 'params';

function plan(p: LayoutParams): { bytes: number; at: Record<keyof Omit<Views, 'ctl'>, [number, number]>; ctlWords: number } {
  const N = p.agents, SA = p.size;
  const ctlWords = WORKER_BASE + p.workers * WORKER_STRIDE;
  let off = Math.ceil((ctlWords * 4) / 8) * 8;
  const f64 = (n: number): [number, number] => {
    const r: [number, number] = [off, n];
    off += n * 8;
    return r;
  };
  const at = {
    theta: f64(SA),
    gmem: f64(SA),
    starts: f64(p.perAgentStarts ? N * SA : 0),
    out: f64((p.run ? 2 : 1) * N * SA),
    memory: f64(N * SA),
    evalJ: f64(p.evaluate ? N : 0),
    evalGrad: f64(p.evaluate ? N * SA : 0),
    thetaP: f64(p.run ? 2 * SA : 0),
    gmemP: f64(p.run ? 2 * SA : 0),
    memP: f64(p.run ? 2 * N * SA : 0),
    evalJP: f64(p.run && p.evaluate ? 2 * N : 0),
    evalGradP: f64(p.run && p.evaluate ? 2 * N * SA : 0),
    params: f64(1),
    rng: [0, 0] as [number, number],
    rngP: [0, 0] as [number, number],
    rngNext: [0, 0] as [number, number],
    err: [0, 0] as [number, number],
  };
  at.rng = [off, N * 4];
  off += N * 16;
  at.rngNext = [off, N * 4];
  off += N * 16;
  at.rngP = [off, p.run ? 2 * N * 4 : 0];
  off += p.run ? 2 * N * 16 : 0;
  at.err = [off, p.workers * ERR_BYTES];
  off += p.workers * ERR_BYTES;
  return { bytes: off, at, ctlWords };
}

export function allocate(p: LayoutParams): SharedArrayBuffer {
  return new SharedArrayBuffer(plan(p).bytes);
}

export function views(sab: SharedArrayBuffer, p: LayoutParams): Views {
  const { at, ctlWords } = plan(p);
  const f = (k: F64Key): Float64Array => new Float64Array(sab, at[k][0], at[k][1]);
  return {
    ctl: new Int32Array(sab, 0, ctlWords),
    theta: f('theta'),
    gmem: f('gmem'),
    starts: f('starts'),
    out: f('out'),
    memory: f('memory'),
    evalJ: f('evalJ'),
    evalGrad: f('evalGrad'),
    rng: new Uint32Array(sab, at.rng[0], at.rng[1]),
    rngNext: new Uint32Array(sab, at.rngNext[0], at.rngNext[1]),
    err: new Uint8Array(sab, at.err[0], at.err[1]),
    thetaP: f('thetaP'),
    gmemP: f('gmemP'),
    memP: f('memP'),
    rngP: new Uint32Array(sab, at.rngP[0], at.rngP[1]),
    evalJP: f('evalJP'),
    evalGradP: f('evalGradP'),
    params: f('params'),
  };
}

/** Agents of worker w: a contiguous block, the same for every run with the same N and W. */
export function agentsOf(w: number, agents: number, workers: number): number[] {
  const lo = Math.floor((w * agents) / workers), hi = Math.floor(((w + 1) * agents) / workers);
  return Array.from({ length: hi - lo }, (_, k) => lo + k);
}

/** Bumps WAKE and wakes whoever waits on it. */
export function wake(ctl: Int32Array): void {
  Atomics.add(ctl, C_WAKE, 1);
  Atomics.notify(ctl, C_WAKE);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function writeError(v: Views, w: number, message: string): void {
  const bytes = encoder.encode(message);
  // Cut on a character boundary (a UTF-8 continuation byte starts 10xxxxxx).
  let n = Math.min(bytes.length, ERR_BYTES);
  if (n < bytes.length) while (n > 0 && (bytes[n]! & 0xc0) === 0x80) n--;
  v.err.set(bytes.subarray(0, n), w * ERR_BYTES);
  Atomics.store(v.ctl, workerWord(w, W_ERRLEN), n);
}

export function readError(v: Views, w: number): string {
  const n = Atomics.load(v.ctl, workerWord(w, W_ERRLEN));
  return decoder.decode(v.err.slice(w * ERR_BYTES, w * ERR_BYTES + n));
}
