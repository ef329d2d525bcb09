import { Piscina } from 'piscina';
import type { BackendName } from '../../backends/types.js';
import type { Mdp } from '../../mdp/model.js';
import { environmentSpec } from '../../mdp/model.js';
import { keptNames, type AgentState } from '../agent.js';
import { algorithmOf } from '../algorithms/registry.js';
import { AgentFailure, type FaultSpec } from '../faults.js';
import type { AgentPool, ChainedRound, NextLocalPhase, RoundContext, RoundRunner } from '../pool.js';
import type { TrainSettings } from '../settings.js';
import type { HostInit } from './host.js';
import { evaluationChunks, roundCosts } from './plan-costs.js';
import { compiledScript } from './script.js';
import {
  allocate,
  agentsOf,
  C_CMDID,
  C_KIND,
  C_POSTED,
  C_RCOUNT,
  C_ROUND,
  C_WAKE,
  C_WAKEAT,
  C_CLAIM,
  CMD_EXIT,
  F_EVAL,
  F_STATES,
  K_CHAIN,
  K_EVAL,
  K_LOCAL,
  K_REPORT,
  K_RUN,
  M_LOCAL,
  M_REPORT,
  P_EVAL,
  P_LOCAL,
  P_MEMORY,
  readError,
  RUN_RING,
  views,
  wake,
  workerWord,
  W_ATTEMPT,
  W_CMD,
  W_CURRENT,
  W_DONE,
  W_EVAL,
  W_FAILED,
  W_GEN,
  W_HALF,
  W_PHASE,
  W_RDONE,
  W_READY,
  W_RROUND,
  type LayoutParams,
  type Views,
} from './layout.js';

/**
 * The worker-thread runtime: the N agents of a run on W threads (W <= N), each thread hosting a
 * fixed contiguous block of agents for the whole run. Everything crosses through one
 * SharedArrayBuffer (Atomics.notify to start, Atomics.waitAsync to collect), never a message.
 * Server algorithms without reruns or time limits use run mode (RoundRunner, K_RUN): the threads
 * run whole rounds, each applying the server steps on its own replica of ServerCore, from round
 * descriptors posted up to `ahead` rounds ahead, and the main thread reads each finished round,
 * woken once per batch of rounds (RUN_WAKE_MS). Otherwise
 * each phase of a round is one command: the local phase (optionally preceded by the evaluation of
 * theta_bar, so J and the gradient norm are computed by all threads in parallel and the next round
 * starts at once), the report phase (Fast-FedPG's memory samples), or both chained; the server
 * step then runs on the main thread, in train.ts, through the algorithm's plug-in.
 * Piscina owns the threads: it starts them, reports a thread that dies, terminates a hung one
 * (a task's AbortSignal) and destroys them all on close. Every agent's outputs land in its own
 * slot and the main thread sums in agent order, so results do not depend on W or on timing.
 */

export interface WorkerPoolOptions {
  mdp: Mdp;
  backend: BackendName;
  settings: TrainSettings;
  workers: number;
  /** Every agent's state to start from (fresh streams, or a checkpoint's). */
  states: AgentState[];
  /** The reports the server holds (a checkpoint's), mirrored for chained commands; none at a fresh start. */
  reports?: readonly (Float64Array | null)[];
  /** The agents evaluate theta_bar for the log (evaluateAndStart). */
  evaluate: boolean;
  /** Reruns of a failed worker command on a fresh thread (default 0). */
  retry?: number;
  /** The longest a phase may run on a worker, in ms (0 or undefined: no limit). */
  roundTimeout?: number;
  faults?: FaultSpec[];
  signal?: AbortSignal;
  onInfo?: (message: string) => void;
}

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (e: unknown) => void;
  settled: boolean;
}

function deferred(): Deferred {
  const d = { settled: false } as Deferred;
  d.promise = new Promise<void>((res, rej) => {
    d.resolve = () => {
      d.settled = true;
      res();
    };
    d.reject = (e) => {
      d.settled = true;
      rej(e);
    };
  });
  d.promise.catch(() => {});
  return d;
}

interface Command {
  kind: number;
  /** The command's number (C_CMDID), the same on reruns. */
  id: number;
  /** C_ROUND: the round of the local or report phase (an evaluation is of the round before). */
  round: number;
  seq: number[];
  deadline: number[];
  attempts: number[];
  evaluated: Deferred;
  /** Chained commands: the report part done everywhere and committed. */
  reported: Deferred;
  /** Chained commands: the reporting agents and where their reports go. */
  reporters: readonly number[];
  reportsOut: Float64Array[] | null;
}

/** The phases a worker's failure can be in. */
export type FailedPhase = 'local' | 'memory' | 'evaluation';

/** A worker's block of agents in messages: "agent 3" or "agents 2-5". */
function blockLabel(block: readonly number[]): string {
  return block.length === 1 ? `agent ${block[0]}` : `agents ${block[0]}-${block[block.length - 1]}`;
}

/**
 * The AgentFailure named by worker w's CURRENT word (agent * 4 + phase code, layout.ts P_*).
 * Local steps and memory samples are one agent's: that agent is named. The evaluation, or a
 * worker between phases (`idle`: the phase its command is in), belongs to the whole block: its
 * first agent is named and the reason says which worker and agents. Run mode and the per-phase
 * commands count rounds differently, so the caller gives each phase's round (roundOf).
 */
export function failureFromCurrent(cur: number, w: number, block: readonly number[], idle: FailedPhase, roundOf: (phase: FailedPhase) => number, reason: string): AgentFailure {
  const code = cur & 3;
  if (code === P_LOCAL || code === P_MEMORY) {
    const phase = code === P_LOCAL ? 'local' : 'memory';
    return new AgentFailure(cur >> 2, roundOf(phase), phase, reason);
  }
  const phase = code === P_EVAL ? 'evaluation' : idle;
  return new AgentFailure(block[0]!, roundOf(phase), phase, `on worker ${w} (${blockLabel(block)}): ${reason}`);
}

/** The compiled worker script beside this module (under vitest, which runs src/, the one in dist/). */
export function hostScript(): string {
  return compiledScript(import.meta.url, 'host.js');
}

/** Atomics.waitAsync (Node >= 16; tsconfig's lib is ES2022, which does not declare it). */
const waitAsync = (Atomics as unknown as {
  waitAsync(a: Int32Array, index: number, value: number, timeout?: number): { async: boolean; value: Promise<string> | string };
}).waitAsync;

const EXIT_GRACE_MS = 250;
/** The most shared memory run mode may add (two ring slots); larger runs use per-phase commands. */
const RUN_EXTRA_BYTES = 1 << 30;
/** The shared memory a run's ring may take beyond its first slot (more slots while they fit, up to RUN_RING). */
const RUN_RING_BYTES = 64 << 20;
/**
 * Run mode: the main thread asks to be woken about this often (a batch of rounds per wake-up,
 * from the rounds' measured pace), not after every round. With every core running a worker, each
 * wake-up of the main thread preempts one of them while the others wait at the next barrier (a
 * tenth of the round at N = 8, S = 100 on 2 cores); fewer wake-ups leave its work per round.
 */
const RUN_WAKE_MS = 4;
/**
 * The most reward-table bytes each worker holds to share the report phase: every worker then
 * holds every agent's table (and one LocalAgent per agent).
 */
const SHARE_REWARDS_BYTES = 16 << 20;
const START_TIMEOUT_MS = 60_000;

export class WorkerPool implements AgentPool, RoundRunner {
  readonly concurrent = true;
  readonly evaluates: boolean;
  /**
   * Run mode (K_RUN) for server algorithms without reruns or time limits: a rerun needs the
   * per-phase commits of the command path, and a time limit needs the main thread watching
   * every phase.
   */
  readonly runner: RoundRunner | null;
  /** Run mode: the running command, its first round, and the state area last published (parity). */
  private running: Command | null = null;
  private runFirst = 0;
  private published = 0;
  private runFlags: number[] = [];
  private reportRows: Float64Array[][] = [];
  /** Run mode: the last round posted, and the pace of the rounds (ms per round, smoothed; 0 before it is known). */
  private runPosted = -1;
  private roundMs = 0;
  private lastDone: { k: number; at: number } | null = null;
  /** Run mode: rounds that may be posted beyond the last one read (the ring's slots). */
  readonly ahead: number;
  /** The algorithm reports every round (Fast-FedPG's memory samples): run mode's rounds then have a second barrier. */
  private readonly reportsEveryRound: boolean;
  /** Run mode shares the report phase and the evaluation out task by task (LayoutParams.shareReports). */
  get sharesReports(): boolean {
    return this.layout.shareReports;
  }
  readonly workers: number;
  private readonly piscina: Piscina;
  private readonly layout: LayoutParams;
  private readonly sab: SharedArrayBuffer;
  private readonly v: Views;
  private readonly N: number;
  private readonly SA: number;
  private readonly K: number;
  private readonly blocks: number[][];
  private readonly tasks: Promise<void>[] = [];
  private readonly aborts: AbortController[] = [];
  private readonly dead: (string | null)[];
  private generation = 0;
  private seq = 0;
  private commands = 0;
  private busy: Command | null = null;
  private closed = false;
  private readonly onAbort = (): void => wake(this.v.ctl);

  private constructor(private readonly o: WorkerPoolOptions) {
    const N = o.mdp.rewards.length;
    if (!Number.isSafeInteger(o.workers) || o.workers < 1 || o.workers > N) throw new RangeError(`workers must be in [1, ${N}], got ${o.workers}`);
    const alg = algorithmOf(o.settings.algorithm);
    this.N = N;
    this.SA = o.mdp.states * o.mdp.actions;
    this.K = keptNames(alg, o.settings).length;
    this.workers = o.workers;
    this.evaluates = o.evaluate;
    this.reportsEveryRound = alg.reports === 'every-round';
    // Run mode keeps a ring of rounds' reports, evaluations and server states: at least two slots
    // (for very large tables even two are left to the per-phase commands), more while they fit
    // in RUN_RING_BYTES.
    const SA = this.SA;
    const slotBytes = 8 * (N * SA + (o.evaluate ? N * SA + N + SA : 0) + (1 + alg.serverState.length) * SA) + 4 * (N + 1);
    const run = alg.topology === 'server' && !(o.retry && o.retry > 0) && !(o.roundTimeout && o.roundTimeout > 0) && 8 * N * SA + 2 * slotBytes <= RUN_EXTRA_BYTES;
    const ring = run ? Math.max(2, Math.min(RUN_RING, 1 + Math.floor(RUN_RING_BYTES / slotBytes))) : 1;
    this.ahead = ring;
    // The report phase shared out task by task (host.ts): for algorithms that report every round
    // on a shared kernel, on two or more workers, while every worker can hold every reward table.
    const shareReports = run && this.reportsEveryRound && o.mdp.kernels.length === 1 && o.workers >= 2 && 8 * N * SA <= SHARE_REWARDS_BYTES;
    const evalChunks = shareReports && o.evaluate ? evaluationChunks(N, o.workers, roundCosts(o.mdp, o.settings, o.backend)) : 0;
    this.layout = { agents: N, size: this.SA, workers: o.workers, down: alg.down.length, kept: this.K, serverVectors: alg.serverState.length, evaluate: o.evaluate, run, ring, shareReports, evalChunks };
    this.runner = run ? this : null;
    this.sab = allocate(this.layout);
    this.v = views(this.sab, this.layout);
    this.blocks = Array.from({ length: o.workers }, (_, w) => agentsOf(w, N, o.workers));
    this.dead = new Array<string | null>(o.workers).fill(null);
    o.states.forEach((s, i) => {
      if (s.kept.length !== this.K) throw new Error(`agent ${i}'s state has ${s.kept.length} kept vectors, expected ${this.K}`);
      this.v.rng.set(s.rng, 4 * i);
      s.kept.forEach((k, j) => this.v.kept.set(k, (i * this.K + j) * this.SA));
    });
    o.reports?.forEach((r, i) => {
      if (!r) return;
      this.v.reports.set(r, i * this.SA);
      this.v.held[i] = 1;
    });
    this.piscina = new Piscina({ filename: hostScript(), minThreads: o.workers, maxThreads: o.workers, idleTimeout: 60_000, recordTiming: false });
    o.signal?.addEventListener('abort', this.onAbort);
  }

  /** Starts the threads and waits until every one has loaded its backend and agents. */
  static async create(o: WorkerPoolOptions): Promise<WorkerPool> {
    const p = new WorkerPool(o);
    try {
      for (let w = 0; w < p.workers; w++) p.spawn(w);
      await p.waitReady([...p.blocks.keys()]);
      return p;
    } catch (e) {
      await p.close();
      throw e;
    }
  }

  get size(): number {
    return this.N;
  }

  private setInputs(local: readonly number[], reporting: readonly number[], theta: Float64Array, down: readonly Float64Array[] | null): void {
    const { v, SA } = this;
    v.members.fill(0);
    for (const i of local) v.members[i] = M_LOCAL;
    for (const i of reporting) v.members[i]! |= M_REPORT;
    v.theta.set(theta);
    if (down) down.forEach((d, k) => v.down.set(d, k * SA));
  }

  localPhase(agents: readonly number[], start: Float64Array, down: readonly Float64Array[], out: Float64Array[], ctx?: RoundContext): Promise<void> {
    this.assertIdle();
    this.setInputs(agents, [], start, down);
    const cmd = this.issue(K_LOCAL, ctx?.round ?? -1);
    return this.run(cmd).then(() => this.commit(agents, out));
  }

  reportPhase(agents: readonly number[], theta: Float64Array, out: Float64Array[], ctx?: RoundContext): Promise<void> {
    this.assertIdle();
    this.setInputs([], agents, theta, null);
    const cmd = this.issue(K_REPORT, ctx?.round ?? -1);
    return this.run(cmd).then(() => this.commitReports(agents, out, this.v.rngNext, this.v.keptNext));
  }

  /**
   * One command for the report phase of a round and the local phase of the next (K_CHAIN): the
   * workers compute the server's report step themselves, through the plug-in (a ServerCore
   * replica), from `serverVectors` and every held report; optionally they also evaluate theta
   * between the two parts.
   */
  reportAndStart({ round, reporting, theta, reports, serverVectors, next, evaluation }: ChainedRound): { reported: Promise<void>; evaluated: Promise<void> | null; local: Promise<void> } {
    if (evaluation && !this.layout.evaluate) throw new Error('this worker pool was not set up to evaluate');
    this.assertIdle();
    this.setInputs(next.agents, reporting, theta, null);
    serverVectors.forEach((x, k) => this.v.server.set(x, k * this.SA));
    const cmd = this.issue(K_CHAIN | K_REPORT | K_LOCAL | (evaluation ? K_EVAL : 0), round + 1, reporting, reports);
    const done = this.run(cmd);
    done.catch(() => {});
    const evaluated = evaluation
      ? cmd.evaluated.promise.then(() => {
          evaluation.J.set(this.v.evalJ);
          evaluation.grad.set(this.v.evalGrad);
        })
      : null;
    evaluated?.catch(() => {});
    const local = done.then(() => this.commit(next.agents, next.out));
    local.catch(() => {});
    return { reported: cmd.reported.promise, evaluated, local };
  }

  /** After a report part: the reports out, and the reporters' states (from rng, kept) committed. */
  private commitReports(agents: readonly number[], out: Float64Array[], rng: Uint32Array, kept: Float64Array): void {
    const { v, SA, K } = this;
    for (const i of agents) {
      out[i]!.set(v.reports.subarray(i * SA, (i + 1) * SA));
      v.rng.set(rng.subarray(4 * i, 4 * i + 4), 4 * i);
      v.kept.set(kept.subarray(i * K * SA, (i + 1) * K * SA), i * K * SA);
    }
  }

  evaluateAndStart(theta: Float64Array, J: Float64Array, grad: Float64Array, next: NextLocalPhase | null, ctx: RoundContext): { evaluated: Promise<void>; local: Promise<void> | null } {
    if (!this.layout.evaluate) throw new Error('this worker pool was not set up to evaluate');
    this.assertIdle();
    this.setInputs(next ? next.agents : [], [], theta, next ? next.down : null);
    const cmd = this.issue(next ? K_EVAL | K_LOCAL : K_EVAL, ctx.round + 1);
    const done = this.run(cmd);
    done.catch(() => {}); // its failures reach the caller through `evaluated` or `local`
    const evaluated = cmd.evaluated.promise.then(() => {
      J.set(this.v.evalJ);
      grad.set(this.v.evalGrad);
    });
    if (!next) return { evaluated, local: null };
    const local = done.then(() => this.commit(next.agents, next.out));
    local.catch(() => {});
    return { evaluated, local };
  }

  /** After a phase: the messages out, and the agents' new states committed. */
  private commit(agents: readonly number[], out: Float64Array[]): void {
    const { v, SA, K } = this;
    for (const i of agents) {
      out[i]!.set(v.out.subarray(i * SA, (i + 1) * SA));
      v.rng.set(v.rngNext.subarray(4 * i, 4 * i + 4), 4 * i);
      v.kept.set(v.keptNext.subarray(i * K * SA, (i + 1) * K * SA), i * K * SA);
    }
  }

  startRun(first: number, theta: Float64Array, serverVectors: readonly Float64Array[]): void {
    this.assertIdle();
    if (!this.layout.run) throw new Error('internal: this worker pool was not set up for run mode');
    const { v, SA, N } = this;
    if (this.reportsEveryRound)
      for (let i = 0; i < N; i++) if (v.held[i] !== 1) throw new Error(`internal: run mode needs every agent's report (agent ${i} has none)`);
    v.theta.set(theta);
    serverVectors.forEach((x, k) => v.server.set(x, k * SA));
    const ctl = v.ctl;
    for (let w = 0; w < this.workers; w++) for (const f of [W_PHASE, W_RDONE, W_RROUND]) Atomics.store(ctl, workerWord(w, f), 0);
    Atomics.store(ctl, C_POSTED, -1);
    Atomics.store(ctl, C_RCOUNT, 0);
    Atomics.store(ctl, C_WAKEAT, 0);
    Atomics.store(ctl, C_CLAIM, 0);
    const rows = (area: Float64Array): Float64Array[] => Array.from({ length: N }, (_, i) => area.subarray(i * SA, (i + 1) * SA));
    this.reportRows = v.reportSlots.map(rows);
    this.runFlags = new Array<number>(this.layout.ring).fill(0);
    this.runPosted = -1;
    this.lastDone = null;
    this.runFirst = first;
    this.running = this.issue(K_RUN, first);
  }

  postRound(k: number, agents: readonly number[], evaluate: boolean, states: boolean): void {
    if (!this.running) throw new Error('internal: no run to post a round to');
    if (evaluate && !this.layout.evaluate) throw new Error('this worker pool was not set up to evaluate');
    const { v, N } = this;
    if (k !== this.runPosted + 1) throw new Error(`internal: round ${k} posted after round ${this.runPosted}`);
    const s = k % this.layout.ring;
    const m = v.rmembers.subarray(s * N, (s + 1) * N);
    m.fill(0);
    // A participant of a round that reports every round also reports (M_REPORT is read only then).
    for (const i of agents) m[i] = M_LOCAL | M_REPORT;
    const flags = (evaluate ? F_EVAL : 0) | (states ? F_STATES : 0);
    this.runFlags[s] = flags;
    Atomics.store(v.rflags, s, flags);
    this.runPosted = k;
    Atomics.store(v.ctl, C_POSTED, k);
    Atomics.notify(v.ctl, C_POSTED);
  }

  /** Whether every worker finished round k of the run. */
  private finished(k: number): boolean {
    for (let w = 0; w < this.workers; w++) if (Atomics.load(this.v.ctl, workerWord(w, W_RDONE)) <= k) return false;
    return true;
  }

  async roundDone(k: number): Promise<void> {
    const cmd = this.running;
    if (!cmd) throw new Error('internal: no run');
    const ctl = this.v.ctl;
    if (!this.finished(k)) {
      // Woken once the last round of a batch is done (about RUN_WAKE_MS of rounds), not at round
      // k: the rounds after k are then read without waiting. Never later than the round before
      // the last one posted, so the workers have a round to run while this thread reads and posts.
      const batch = this.roundMs > 0 ? Math.max(1, Math.min(this.layout.ring - 2, Math.floor(RUN_WAKE_MS / this.roundMs))) : 1;
      Atomics.store(ctl, C_WAKEAT, Math.max(k, Math.min(k + batch - 1, this.runPosted - 1)));
    }
    for (;;) {
      const v0 = Atomics.load(ctl, C_WAKE);
      if (this.finished(k)) {
        if (this.runFlags[k % this.layout.ring]! & F_STATES) this.published = (k + 1) & 1;
        this.pace(k);
        return;
      }
      if (this.o.signal?.aborted) throw this.o.signal.reason;
      if (this.closed) throw new Error('the worker pool was closed');
      for (let w = 0; w < this.workers; w++) {
        const reason = this.failedWhy(w, cmd.seq[w]!);
        // A worker that failed after finishing round k (in round k + 1) lets round k finish on
        // the others (they are past its last barrier): round k is still read and recorded. RDONE
        // is read after the failure: the worker sets it before it can fail in the next round.
        if (reason !== null && Atomics.load(ctl, workerWord(w, W_RDONE)) <= k) {
          const f = this.runFailure(w, reason);
          this.retire(w);
          throw f;
        }
      }
      const r = waitAsync(ctl, C_WAKE, v0);
      if (r.async) await r.value;
    }
  }

  /** The rounds' pace: ms per round between two rounds found done (smoothed), for the batch size. */
  private pace(k: number): void {
    const now = performance.now(), last = this.lastDone, c = this.lastCompleted(k);
    if (last && c > last.k) {
      const ms = (now - last.at) / (c - last.k);
      this.roundMs = this.roundMs > 0 ? 0.8 * this.roundMs + 0.2 * ms : ms;
    }
    if (!last || c > last.k) this.lastDone = { k: c, at: now };
  }

  /** The last round every worker finished (k or later). */
  private lastCompleted(k: number): number {
    let done = Infinity;
    for (let w = 0; w < this.workers; w++) done = Math.min(done, Atomics.load(this.v.ctl, workerWord(w, W_RDONE)) - 1);
    return Math.max(k, done);
  }

  roundReports(k: number): readonly Float64Array[] {
    return this.reportRows[(k + 1) % this.layout.ring]!;
  }

  roundServer(k: number): { thetaBar: Float64Array; vectors: readonly Float64Array[] } {
    const slot = this.v.roundServerSlots[k % this.layout.ring]!, SA = this.SA;
    return { thetaBar: slot.subarray(0, SA), vectors: Array.from({ length: this.layout.serverVectors }, (_, q) => slot.subarray((q + 1) * SA, (q + 2) * SA)) };
  }

  roundEvaluation(k: number): { J: Float64Array; grad: Float64Array; gradSum: Float64Array | null } {
    const s = k % this.layout.ring;
    // The workers sum the gradients after a second barrier, which only rounds with reports have.
    return { J: this.v.evalJSlots[s]!, grad: this.v.evalGradSlots[s]!, gradSum: this.reportsEveryRound ? this.v.evalGsumSlots[s]! : null };
  }

  roundStates(k: number): AgentState[] {
    if (!(this.runFlags[k % this.layout.ring]! & F_STATES)) throw new Error(`internal: round ${k} of the run did not publish its states`);
    return this.statesIn((k + 1) & 1);
  }

  /** Why worker w cannot finish its command number seq (it failed it, or its thread died), or null. */
  private failedWhy(w: number, seq: number): string | null {
    if (Atomics.load(this.v.ctl, workerWord(w, W_FAILED)) === seq) return readError(this.v, w);
    if (this.dead[w]) return `its worker thread died (${this.dead[w]})`;
    return null;
  }

  /** Names the failing agent and phase of a run from what worker w was doing: every phase is of the round it was running. */
  private runFailure(w: number, reason: string): AgentFailure {
    const ctl = this.v.ctl;
    const round = this.runFirst + Math.max(0, Atomics.load(ctl, workerWord(w, W_RROUND)) - 1);
    return failureFromCurrent(Atomics.load(ctl, workerWord(w, W_CURRENT)), w, this.blocks[w]!, 'local', () => round, reason);
  }

  writeKept(agent: number, k: number, vec: Float64Array): void {
    this.assertIdle();
    this.v.kept.set(vec, (agent * this.K + k) * this.SA);
  }

  states(): AgentState[] {
    // In run mode the agents' states live in the workers: the last ones published.
    return this.statesIn(this.running ? this.published : 0);
  }

  /** Copies of the states in area 0 (rng, kept: the committed ones) or 1 (rngNext, keptNext). */
  private statesIn(area: number): AgentState[] {
    const { v, SA, K } = this;
    const [rng, kept] = area === 0 ? [v.rng, v.kept] : [v.rngNext, v.keptNext];
    return Array.from({ length: this.N }, (_, i) => ({
      rng: rng.slice(4 * i, 4 * i + 4),
      kept: Array.from({ length: K }, (_, j) => kept.slice((i * K + j) * SA, (i * K + j + 1) * SA)),
    }));
  }

  /** Ends every thread: a polite exit first (so backends free their memory), then termination. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.o.signal?.removeEventListener('abort', this.onAbort);
    const ctl = this.v.ctl;
    for (let w = 0; w < this.workers; w++) {
      Atomics.store(ctl, workerWord(w, W_CMD), CMD_EXIT);
      Atomics.notify(ctl, workerWord(w, W_CMD));
      // Run mode's waiters: at a barrier (on a peer's PHASE) or for the next round (POSTED).
      Atomics.notify(ctl, workerWord(w, W_PHASE));
    }
    Atomics.notify(ctl, C_POSTED);
    wake(ctl);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled(this.tasks), new Promise((r) => (timer = setTimeout(r, EXIT_GRACE_MS)))]);
    clearTimeout(timer);
    await this.piscina.destroy();
  }

  private spawn(w: number): void {
    const gen = ++this.generation;
    const ctl = this.v.ctl;
    Atomics.store(ctl, workerWord(w, W_GEN), gen);
    this.dead[w] = null;
    const ac = new AbortController();
    this.aborts[w] = ac;
    const { mdp } = this.o;
    const agents = this.blocks[w]!;
    const init: HostInit = {
      sab: this.sab,
      layout: this.layout,
      worker: w,
      generation: gen,
      backend: this.o.backend,
      algorithm: { name: this.o.settings.algorithm, module: algorithmOf(this.o.settings.algorithm).module },
      agents,
      specs: mdp.kernels.length === 1 ? [environmentSpec(mdp, 0)] : agents.map((i) => environmentSpec(mdp, i)),
      rewards: agents.map((i) => mdp.rewards[i]!),
      allRewards: this.layout.shareReports ? mdp.rewards : null,
      settings: this.o.settings,
      faults: this.o.faults ?? [],
    };
    const ended = (why: string): void => {
      if (this.closed || Atomics.load(ctl, workerWord(w, W_GEN)) !== gen) return;
      this.dead[w] = why;
      wake(ctl);
    };
    this.tasks[w] = this.piscina.run(init, { signal: ac.signal }).then(
      (r: unknown) => ended(`it returned (${String(r)})`),
      (e: unknown) => ended(e instanceof Error ? e.message : String(e)),
    );
  }

  private agentsLabel(w: number): string {
    return blockLabel(this.blocks[w]!);
  }

  private async waitReady(ws: number[]): Promise<void> {
    const ctl = this.v.ctl;
    const limit = Math.max(START_TIMEOUT_MS, this.o.roundTimeout ?? 0);
    const deadline = performance.now() + limit;
    for (;;) {
      const v0 = Atomics.load(ctl, C_WAKE);
      if (this.closed) throw new Error('the worker pool was closed');
      this.o.signal?.throwIfAborted();
      let ready = true;
      for (const w of ws) {
        if (this.dead[w]) throw new AgentFailure(this.blocks[w]![0]!, 0, 'start-up', `worker ${w} (${this.agentsLabel(w)}) could not start: ${this.dead[w]}`);
        if (Atomics.load(ctl, workerWord(w, W_READY)) !== Atomics.load(ctl, workerWord(w, W_GEN))) ready = false;
      }
      if (ready) return;
      const left = deadline - performance.now();
      if (left <= 0) throw new AgentFailure(this.blocks[ws[0]!]![0]!, 0, 'start-up', `worker ${ws[0]} did not start within ${limit} ms`);
      const r = waitAsync(ctl, C_WAKE, v0, left);
      if (r.async) await r.value;
    }
  }

  /** One command at a time: its inputs live in shared memory until it is done. */
  private assertIdle(): void {
    if (this.closed) throw new Error('the worker pool is closed');
    if (this.busy) throw new Error('internal: a worker command is still running');
  }

  private issue(kind: number, round: number, reporters: readonly number[] = [], reportsOut: Float64Array[] | null = null): Command {
    this.assertIdle();
    const ctl = this.v.ctl;
    const id = ++this.commands;
    Atomics.store(ctl, C_KIND, kind);
    Atomics.store(ctl, C_ROUND, round);
    Atomics.store(ctl, C_CMDID, id);
    const W = this.workers;
    const cmd: Command = {
      kind,
      id,
      round,
      seq: new Array<number>(W).fill(0),
      deadline: new Array<number>(W).fill(Infinity),
      attempts: new Array<number>(W).fill(0),
      evaluated: deferred(),
      reported: deferred(),
      reporters,
      reportsOut,
    };
    this.busy = cmd;
    for (let w = 0; w < W; w++) this.post(w, cmd);
    return cmd;
  }

  private post(w: number, cmd: Command): void {
    const ctl = this.v.ctl;
    const seq = ++this.seq;
    cmd.seq[w] = seq;
    const t = this.o.roundTimeout ?? 0;
    cmd.deadline[w] = t > 0 ? performance.now() + t : Infinity;
    Atomics.store(ctl, workerWord(w, W_ATTEMPT), cmd.attempts[w]!);
    Atomics.store(ctl, workerWord(w, W_CMD), seq);
    Atomics.notify(ctl, workerWord(w, W_CMD));
  }

  /** Waits for every worker to finish the command, rerunning or failing those that do not. */
  private async run(cmd: Command): Promise<void> {
    try {
      await this.drive(cmd);
      this.settleReports(cmd);
      if (!cmd.evaluated.settled) cmd.evaluated.resolve();
    } catch (e) {
      if (!cmd.evaluated.settled) cmd.evaluated.reject(e);
      if (!cmd.reported.settled) cmd.reported.reject(e);
      throw e;
    } finally {
      if (this.busy === cmd) this.busy = null;
    }
  }

  private async drive(cmd: Command): Promise<void> {
    const ctl = this.v.ctl;
    for (;;) {
      const v0 = Atomics.load(ctl, C_WAKE);
      if (this.o.signal?.aborted) throw this.o.signal.reason;
      if (this.closed) throw new Error('the worker pool was closed');
      // The evaluation belongs to the round before this command's local steps: settle it first,
      // so a failure in those local steps cannot take the finished round's record with it.
      if (cmd.kind & K_CHAIN && !cmd.reported.settled) {
        let half = true;
        for (let w = 0; w < this.workers && half; w++) half = Atomics.load(ctl, workerWord(w, W_HALF)) === cmd.id;
        if (half) {
          this.settleReports(cmd);
          // The local phase gets its own time limit, as it would as a command of its own.
          const t = this.o.roundTimeout ?? 0;
          if (t > 0) cmd.deadline.fill(performance.now() + t);
        }
      }
      if (cmd.kind & K_EVAL && !cmd.evaluated.settled) {
        let allEval = true;
        for (let w = 0; w < this.workers && allEval; w++) allEval = Atomics.load(ctl, workerWord(w, W_EVAL)) === cmd.seq[w];
        if (allEval) cmd.evaluated.resolve();
      }
      const now = performance.now();
      let allDone = true;
      let next = Infinity;
      for (let w = 0; w < this.workers; w++) {
        const seq = cmd.seq[w]!;
        if (Atomics.load(ctl, workerWord(w, W_DONE)) === seq) continue;
        allDone = false;
        let reason = this.failedWhy(w, seq);
        if (reason === null && cmd.deadline[w]! <= now) reason = `it did not finish within ${this.o.roundTimeout} ms (the round timeout)`;
        if (reason !== null) {
          await this.recover(w, cmd, reason);
          next = 0;
        } else next = Math.min(next, cmd.deadline[w]!);
      }
      if (allDone) return;
      const r = waitAsync(ctl, C_WAKE, v0, next === Infinity ? undefined : Math.max(0, next - performance.now()));
      if (r.async) await r.value;
    }
  }

  /** A chained command's report part is done on every worker: its reports out, its states committed. */
  private settleReports(cmd: Command): void {
    if (!(cmd.kind & K_CHAIN) || cmd.reported.settled) return;
    this.commitReports(cmd.reporters, cmd.reportsOut!, this.v.rngMid, this.v.keptMid);
    cmd.reported.resolve();
  }

  /** Names the failing agent and phase of a per-phase command from what worker w was doing. */
  private failure(w: number, cmd: Command, reason: string): AgentFailure {
    // A chained command's reports belong to the round before its local phase; an evaluation is
    // of the round before the command's.
    const reportRound = cmd.kind & K_CHAIN ? cmd.round - 1 : cmd.round;
    const roundOf = (phase: FailedPhase): number => (phase === 'evaluation' ? cmd.round - 1 : phase === 'memory' ? reportRound : cmd.round);
    const idle = cmd.kind & K_REPORT ? 'memory' : cmd.kind & K_LOCAL ? 'local' : 'evaluation';
    return failureFromCurrent(Atomics.load(this.v.ctl, workerWord(w, W_CURRENT)), w, this.blocks[w]!, idle, roundOf, reason);
  }

  private async recover(w: number, cmd: Command, reason: string): Promise<void> {
    const f = this.failure(w, cmd, reason);
    const retry = this.o.retry ?? 0;
    if (cmd.attempts[w]! >= retry) {
      this.retire(w);
      throw f;
    }
    cmd.attempts[w]!++;
    this.o.onInfo?.(`${f.message}; rerunning it on a fresh worker thread for ${this.agentsLabel(w)} from their saved state (retry ${cmd.attempts[w]} of ${retry})`);
    this.retire(w);
    this.spawn(w);
    await this.waitReady([w]);
    this.post(w, cmd);
    // In a chained command the other workers wait at the barrier for this rerun's reports: that
    // wait is not theirs, so their time limit restarts with the rerun's.
    if (cmd.kind & K_CHAIN) for (let u = 0; u < this.workers; u++) if (u !== w) cmd.deadline[u] = Math.max(cmd.deadline[u]!, cmd.deadline[w]!);
  }

  /** Stops worker w's thread (a hung or failed one is terminated by its task's signal). */
  private retire(w: number): void {
    Atomics.store(this.v.ctl, workerWord(w, W_GEN), 0);
    this.aborts[w]?.abort(new Error('replaced'));
  }
}
