/**
 * The shared memory of a worker pool: one SharedArrayBuffer that the main thread and every
 * worker map the same way. Only these cross threads during a run (no per-step or per-round
 * messages): a phase's inputs (which agents take part, theta_bar, the algorithm's down vectors),
 * the agents' messages (Delta_i or a report), J_i and grad J_i at theta_bar, each agent's
 * committed state (its random stream and its kept vectors, so the main thread can checkpoint and
 * a fresh worker can rerun a failed agent from it), and the control words.
 *
 * Control words (Int32, Atomics only):
 *   WAKE                    bumped and notified by any party with news; the main thread waits on it
 *   KIND, ROUND, CMDID      the current command's parameters (same for every worker); CMDID is the
 *                           command's number, the same on reruns (the chained barrier counts it)
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
 *     HALF      CMDID of the latest chained command whose report part w finished
 *     PHASE     run mode: phases w finished in the current run (the workers' barrier counts it)
 *     RDONE     run mode: rounds w finished in the current run (main reads a round once all have)
 *     RROUND    run mode: 1 + the run-relative round w is working on (for failure messages)
 *   Each worker's words fill their own 64-byte line, apart from the command words and from each
 *   other: a worker spinning on another's PHASE must not share a line with words it writes.
 *
 * Run mode (K_RUN, see host.ts): the workers run round after round without the main thread, from
 * round descriptors the main thread posts ahead (POSTED, the run-relative index of the last one
 * posted; `rflags` and `rmembers`, one slot per round of the ring). The ring has `ring` slots
 * (2 to RUN_RING, fewer for large tables): round k's held reports land in slot (k + 1) % ring
 * (slot 0 holding those the run started with), its evaluation and server state in slot k % ring,
 * so the main thread reads round k while the workers run up to ring - 1 rounds further; it posts
 * round k + ring only once it has read round k, which is what keeps a slot from being
 * overwritten. Published states use two areas by parity (states of round k in area (k + 1) % 2):
 * a round that publishes states is posted at most two rounds past the last one read. The
 * deltas need two slots (round k's in slot k % 2): without a report phase a round has one
 * barrier, and a worker may run round k + 1's local phase while another still sums round k's
 * deltas, but not round k + 2's. The last worker to finish a round wakes the main thread only when the round is at
 * least WAKEAT (which the main thread sets before it waits), so a main thread that is ahead is
 * woken once per batch of rounds, not once per round. With `shareReports` the agents' live
 * states sit in `rngMid`/`keptMid` (unused by run mode otherwise) and CLAIM hands out the tasks
 * of each round's report phase.
 */

export const CMD_EXIT = -1;

/** Command kinds (bit flags). */
export const K_EVAL = 1;
export const K_LOCAL = 2;
/** The report phase (Fast-FedPG's memory samples; the fault phase `memory`). */
export const K_REPORT = 4;
/**
 * A chained command (with K_REPORT and K_LOCAL): the report phase of round t, then, once every
 * worker's reports are in (a barrier between workers), the server's report step computed by each
 * worker through the plug-in (ServerCore.applyReports on a replica: the same code and inputs as
 * the main thread's, so the same bits), then the local phase of round t+1 with its down vectors.
 * One command per round instead of two: the main thread is not on the path between the phases.
 */
export const K_CHAIN = 8;
/**
 * Run mode: the workers run rounds from the posted descriptors until told to exit, computing
 * every server step themselves (ServerCore on a replica: the plug-in's code over the same inputs
 * in the same order, so the same bits as the main thread, which applies them too when it reads
 * each round). The agents' states stay in the workers and are published when a round asks (F_STATES).
 */
export const K_RUN = 16;

/** Round descriptor flags (run mode). */
export const F_EVAL = 1;
/** Publish the agents' states at the end of the round (checkpoints, Ditto's personal J, the end). */
export const F_STATES = 2;

/** Bits of `members`: the agent reports, and/or runs the local phase, in this command. */
export const M_REPORT = 1;
export const M_LOCAL = 2;

export const C_WAKE = 0;
export const C_KIND = 1;
export const C_CMDID = 2;
export const C_ROUND = 3;
export const C_POSTED = 4;
/** Run mode: the run-relative round whose end wakes the main thread (it waits for it). */
export const C_WAKEAT = 5;
/** Run mode with shared reports: the claim counter of the round's report-phase tasks (see host.ts). */
export const C_CLAIM = 6;
/** Run mode: rounds finished, summed over workers (the last worker of a round wakes the main thread). */
export const C_RCOUNT = 7;
const WORKER_BASE = 16;
export const WORKER_STRIDE = 16;
export const W_CMD = 0;
export const W_DONE = 1;
export const W_EVAL = 2;
export const W_FAILED = 3;
export const W_CURRENT = 4;
export const W_GEN = 5;
export const W_READY = 6;
export const W_ERRLEN = 7;
export const W_ATTEMPT = 8;
export const W_HALF = 9;
export const W_PHASE = 10;
export const W_RDONE = 11;
export const W_RROUND = 12;
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
  /** Vectors the server sends down with theta_bar (the algorithm's `down`). */
  down: number;
  /** Vectors each agent keeps (keptNames). */
  kept: number;
  /** Vectors the server keeps besides theta_bar (the algorithm's serverState). */
  serverVectors: number;
  /** The agents evaluate J_i and grad J_i at theta_bar. */
  evaluate: boolean;
  /** Run mode is possible. */
  run: boolean;
  /**
   * Run mode: the report phase and the evaluation are shared out task by task (any worker runs
   * any agent's report, one worker the whole evaluation), the agents' states living in the
   * shared `rngMid`/`keptMid` areas; every worker holds every reward table.
   */
  shareReports: boolean;
  /** With shareReports: the evaluation's chunks (plan-costs.ts evaluationChunks). */
  evalChunks: number;
  /** Run mode: slots of the per-round areas (reports, evalJ, evalGrad, server states, descriptors); 1 without run mode. */
  ring: number;
}

/** The most rounds a run's ring holds (the main thread reads round k while the workers run up to RUN_RING - 1 more). */
export const RUN_RING = 8;

export interface Views {
  ctl: Int32Array;
  /** [N]: M_REPORT | M_LOCAL bits of the agents that take part in the current command. */
  members: Int32Array;
  /** [N]: 1 when reports[i] holds agent i's last report (the server's held reports, mirrored). */
  held: Int32Array;
  /** theta_bar (or the report point) [SA] and the down vectors [down*SA]. */
  theta: Float64Array;
  down: Float64Array;
  /** [N*SA]: the local phase's messages (Delta_i, or for `local` the agent's theta); slot 0 of outSlots. */
  out: Float64Array;
  /** Run mode: two slots of out (one without run mode). */
  outSlots: Float64Array[];
  /** [N*SA]: every agent's last report as sent (what the server holds); slot 0 of reportSlots. */
  reports: Float64Array;
  /** Run mode: `ring` slots each of reports, evalJ and evalGrad (one slot without run mode). */
  reportSlots: Float64Array[];
  evalJSlots: Float64Array[];
  evalGradSlots: Float64Array[];
  /**
   * Run mode, algorithms that report every round: sum_i grad J_i in slot k % ring, each worker
   * summing its share of the coordinates after the round's second barrier (in agent order, as
   * the main thread would: the same bits), so the main thread only takes the norm.
   */
  evalGsumSlots: Float64Array[];
  /** Run mode: [ring*N] the M_* bits of each descriptor slot. */
  rmembers: Int32Array;
  /** Run mode: [ring] the F_* flags of each descriptor slot. */
  rflags: Int32Array;
  /**
   * Run mode: the server's state after round k in slot k % ring, [(1 + serverVectors) * SA]: theta_bar,
   * then the vectors (each worker writes its share of the coordinates; every replica holds the same).
   */
  roundServerSlots: Float64Array[];
  /** [serverVectors*SA]: the server's vectors when a chained command was issued (before its report step). */
  server: Float64Array;
  /**
   * [N*kept*SA]: the agents' committed kept vectors, those after a chained command's report part,
   * and after the phase; in run mode, the states published after round k: kept (and rng) for odd
   * k, keptNext (and rngNext) for even k.
   */
  kept: Float64Array;
  keptMid: Float64Array;
  keptNext: Float64Array;
  /** [N] and [N*SA], or empty. */
  evalJ: Float64Array;
  evalGrad: Float64Array;
  /** [N*4] committed xoshiro128** states, after a chained command's report part, and after the phase. */
  rng: Uint32Array;
  rngMid: Uint32Array;
  rngNext: Uint32Array;
  /** [W*ERR_BYTES]. */
  err: Uint8Array;
}

export function workerWord(w: number, field: number): number {
  return WORKER_BASE + w * WORKER_STRIDE + field;
}

type F64Key = 'theta' | 'down' | 'out' | 'reports' | 'server' | 'roundServer' | 'kept' | 'keptMid' | 'keptNext' | 'evalJ' | 'evalGrad' | 'evalGsum';

function plan(p: LayoutParams): { at: Record<F64Key | 'members' | 'held' | 'rmembers' | 'rflags' | 'rng' | 'rngMid' | 'rngNext' | 'err', [number, number]>; ctlWords: number; bytes: number } {
  const N = p.agents, SA = p.size;
  const ctlWords = WORKER_BASE + p.workers * WORKER_STRIDE;
  const slots = p.run ? p.ring : 1;
  let off = ctlWords * 4;
  // Areas start on 64-byte lines, so no area shares a line with the control words.
  const take = (n: number, bytes: number): [number, number] => {
    off = Math.ceil(off / 64) * 64;
    const r: [number, number] = [off, n];
    off += n * bytes;
    return r;
  };
  const at = {
    members: take(N, 4),
    held: take(N, 4),
    rmembers: take(p.run ? slots * N : 0, 4),
    rflags: take(p.run ? slots : 0, 4),
    theta: take(SA, 8),
    down: take(p.down * SA, 8),
    out: take((p.run ? 2 : 1) * N * SA, 8),
    reports: take(slots * N * SA, 8),
    server: take(p.serverVectors * SA, 8),
    roundServer: take(p.run ? slots * (1 + p.serverVectors) * SA : 0, 8),
    kept: take(N * p.kept * SA, 8),
    keptMid: take(N * p.kept * SA, 8),
    keptNext: take(N * p.kept * SA, 8),
    evalJ: take(p.evaluate ? slots * N : 0, 8),
    evalGrad: take(p.evaluate ? slots * N * SA : 0, 8),
    evalGsum: take(p.evaluate && p.run ? slots * SA : 0, 8),
    rng: take(N * 4, 4),
    rngMid: take(N * 4, 4),
    rngNext: take(N * 4, 4),
    err: take(p.workers * ERR_BYTES, 1),
  };
  return { at, ctlWords, bytes: Math.ceil(off / 8) * 8 };
}

export function allocate(p: LayoutParams): SharedArrayBuffer {
  return new SharedArrayBuffer(plan(p).bytes);
}

export function views(sab: SharedArrayBuffer, p: LayoutParams): Views {
  const { at, ctlWords } = plan(p);
  const f = (k: F64Key): Float64Array => new Float64Array(sab, at[k][0], at[k][1]);
  const slots = p.run ? p.ring : 1;
  /** Slot s of an area holding `slots` equal parts. */
  const slot = (k: F64Key, count = slots): Float64Array[] => {
    const n = at[k][1] / count;
    return Array.from({ length: count }, (_, s) => new Float64Array(sab, at[k][0] + s * n * 8, n));
  };
  const outSlots = slot('out', p.run ? 2 : 1);
  const reportSlots = slot('reports'), evalJSlots = slot('evalJ'), evalGradSlots = slot('evalGrad'), evalGsumSlots = slot('evalGsum');
  const roundServerSlots = slot('roundServer');
  return {
    ctl: new Int32Array(sab, 0, ctlWords),
    members: new Int32Array(sab, at.members[0], at.members[1]),
    held: new Int32Array(sab, at.held[0], at.held[1]),
    rmembers: new Int32Array(sab, at.rmembers[0], at.rmembers[1]),
    rflags: new Int32Array(sab, at.rflags[0], at.rflags[1]),
    theta: f('theta'),
    down: f('down'),
    out: outSlots[0]!,
    outSlots,
    reports: reportSlots[0]!,
    reportSlots,
    evalJSlots,
    evalGradSlots,
    evalGsumSlots,
    roundServerSlots,
    server: f('server'),
    kept: f('kept'),
    keptMid: f('keptMid'),
    keptNext: f('keptNext'),
    evalJ: evalJSlots[0]!,
    evalGrad: evalGradSlots[0]!,
    rng: new Uint32Array(sab, at.rng[0], at.rng[1]),
    rngMid: new Uint32Array(sab, at.rngMid[0], at.rngMid[1]),
    rngNext: new Uint32Array(sab, at.rngNext[0], at.rngNext[1]),
    err: new Uint8Array(sab, at.err[0], at.err[1]),
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
