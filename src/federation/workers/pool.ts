import { existsSync } from 'node:fs';
import { sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Piscina } from 'piscina';
import type { BackendName } from '../../backends/types.js';
import type { Mdp } from '../../mdp/model.js';
import { environmentSpec } from '../../mdp/model.js';
import type { AgentState } from '../agent.js';
import { AgentFailure, type FaultSpec } from '../faults.js';
import type { AgentPool, NextLocalRounds, RoundContext } from '../pool.js';
import type { TrainSettings } from '../settings.js';
import type { HostInit } from './host.js';
import {
  allocate,
  agentsOf,
  C_GO,
  C_KIND,
  C_ROUND,
  C_STEPS,
  C_WAKE,
  CMD_EXIT,
  K_EVAL,
  K_RUN,
  K_LOCAL,
  K_MEMORY,
  K_PER_AGENT_STARTS,
  K_USE_GMEM,
  P_EVAL,
  P_IDLE,
  P_LOCAL,
  P_MEMORY,
  readError,
  views,
  wake,
  workerWord,
  W_ATTEMPT,
  W_CMD,
  W_CURRENT,
  W_DONE,
  W_EVAL,
  W_EVALROUND,
  W_FAILED,
  W_GEN,
  W_READY,
  W_ROUND,
  W_START,
  type LayoutParams,
  type Views,
} from './layout.js';

/**
 * The worker-thread runtime: the N agents of a run on W threads (W <= N), each thread hosting a
 * fixed contiguous block of agents for the whole run. A round is two commands posted through
 * one SharedArrayBuffer (Atomics.notify to start, Atomics.waitAsync to collect), never a message:
 *   1. local steps (with, from round 2 on, the evaluation of theta_bar first, so J and the gradient
 *      norm are computed by all threads in parallel and the next round starts at once);
 *   2. (Fast-FedPG) the memory samples at the new theta_bar.
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
  /** The agents evaluate theta_bar for the log (evaluateAndStart). */
  evaluate: boolean;
  /** Phase 1 takes one start per agent (algorithm `local`); every other algorithm can use run mode. */
  perAgentStarts: boolean;
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
  /** C_ROUND: the round of the local or memory phase (an evaluation is of the round before). */
  round: number;
  seq: number[];
  deadline: number[];
  attempts: number[];
  evaluated: Deferred;
}

/** The compiled worker script beside this module (under vitest, which runs src/, the one in dist/). */
export function hostScript(): string {
  const here = fileURLToPath(new URL('./host.js', import.meta.url));
  if (existsSync(here)) return pathToFileURL(here).href;
  const k = here.lastIndexOf(`${sep}src${sep}`);
  if (k >= 0) {
    const built = here.slice(0, k) + `${sep}dist${sep}` + here.slice(k + 5);
    if (existsSync(built)) return pathToFileURL(built).href;
  }
  throw new Error(`the worker script ${here} is missing: build the project (npm run build)`);
}

/** Atomics.waitAsync (Node >= 16; tsconfig's lib is ES2022, which does not declare it). */
const waitAsync = (Atomics as unknown as {
  waitAsync(a: Int32Array, index: number, value: number, timeout?: number): { async: boolean; value: Promise<string> | string };
}).waitAsync;

const EXIT_GRACE_MS = 250;
const START_TIMEOUT_MS = 60_000;

export class WorkerPool implements AgentPool {
  readonly concurrent = true;
  readonly evaluates: boolean;
  readonly workers: number;
  private readonly piscina: Piscina;
  private readonly layout: LayoutParams;
  private readonly sab: SharedArrayBuffer;
  private readonly v: Views;
  private readonly N: number;
  private readonly SA: number;
  private readonly blocks: number[][];
  private readonly tasks: Promise<void>[] = [];
  private readonly aborts: AbortController[] = [];
  private readonly dead: (string | null)[];
  private readonly hasMemory: boolean[];
  private generation = 0;
  private seq = 0;
  private busy: Command | null = null;
  private closed = false;
  private running: { useMemory: boolean; consumed: number; attempts: Map<string, number> } | null = null;
  private runCmd: Command | null = null;
  private readonly onAbort = (): void => wake(this.v.ctl);

  private constructor(private readonly o: WorkerPoolOptions) {
    const N = o.mdp.rewards.length;
    if (!Number.isSafeInteger(o.workers) || o.workers < 1 || o.workers > N) throw new RangeError(`workers must be in [1, ${N}], got ${o.workers}`);
    this.N = N;
    this.SA = o.mdp.states * o.mdp.actions;
    this.workers = o.workers;
    this.evaluates = o.evaluate;
    this.layout = { agents: N, size: this.SA, workers: o.workers, perAgentStarts: o.perAgentStarts, evaluate: o.evaluate, run: !o.perAgentStarts };
    this.sab = allocate(this.layout);
    this.v = views(this.sab, this.layout);
    this.blocks = Array.from({ length: o.workers }, (_, w) => agentsOf(w, N, o.workers));
    this.dead = new Array<string | null>(o.workers).fill(null);
    this.hasMemory = o.states.map((s) => s.memory !== null);
    o.states.forEach((s, i) => {
      this.v.rng.set(s.rng, 4 * i);
      if (s.memory) this.v.memory.set(s.memory, i * this.SA);
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

  localRounds(starts: Float64Array | Float64Array[], globalMemory: Float64Array | null, steps: number, out: Float64Array[], ctx?: RoundContext): Promise<void> {
    this.assertIdle();
    let kind = K_LOCAL;
    if (Array.isArray(starts)) {
      if (!this.layout.perAgentStarts) throw new Error('this worker pool was not set up for per-agent starts');
      kind |= K_PER_AGENT_STARTS;
      starts.forEach((s, i) => this.v.starts.set(s, i * this.SA));
    } else this.v.theta.set(starts);
    if (globalMemory) {
      kind |= K_USE_GMEM;
      this.v.gmem.set(globalMemory);
    }
    const cmd = this.issue(kind, steps, ctx?.round ?? -1);
    return this.run(cmd).then(() => this.commitLocal(out));
  }

  memorySamples(theta: Float64Array, out: Float64Array[], ctx?: RoundContext): Promise<void> {
    this.assertIdle();
    this.v.theta.set(theta);
    const cmd = this.issue(K_MEMORY, 0, ctx?.round ?? -1);
    return this.run(cmd).then(() => {
      const { v, SA } = this;
      for (let i = 0; i < this.N; i++) {
        const row = v.out.subarray(i * SA, (i + 1) * SA);
        out[i]!.set(row);
        v.memory.set(row, i * SA);
        this.hasMemory[i] = true;
      }
      v.rng.set(v.rngNext);
    });
  }

  evaluateAndStart(
    theta: Float64Array,
    J: Float64Array,
    grad: Float64Array,
    next: NextLocalRounds | null,
    ctx: RoundContext,
  ): { evaluated: Promise<void>; local: Promise<void> | null } {
    if (!this.layout.evaluate) throw new Error('this worker pool was not set up to evaluate');
    this.assertIdle();
    this.v.theta.set(theta);
    let kind = K_EVAL;
    if (next) {
      kind |= K_LOCAL;
      if (next.globalMemory) {
        kind |= K_USE_GMEM;
        this.v.gmem.set(next.globalMemory);
      }
    }
    const cmd = this.issue(kind, next?.steps ?? 0, ctx.round + 1);
    const done = this.run(cmd);
    done.catch(() => {}); // its failures reach the caller through `evaluated` or `local`
    const evaluated = cmd.evaluated.promise.then(() => {
      J.set(this.v.evalJ);
      grad.set(this.v.evalGrad);
    });
    if (!next) return { evaluated, local: null };
    const local = done.then(() => this.commitLocal(next.out));
    local.catch(() => {});
    return { evaluated, local };
  }

  // ---- Run mode: whole rounds on the workers (every algorithm but `local`). ----

  /** Run mode is available (the pool was built for an algorithm with a server step). */
  get runs(): boolean {
    return this.layout.run;
  }

  /**
   * Starts run mode at round r0 from theta_bar(r0 - 1), g (Fast-FedPG) and the agents' committed
   * states; rounds then run as far as permit() allows. The pool evaluates after every round when
   * built with `evaluate`.
   */
  startRun(r0: number, thetaBar: Float64Array, globalMemory: Float64Array | null, alpha: number, steps: number): void {
    this.assertIdle();
    if (!this.layout.run) throw new Error('this worker pool was not set up for run mode');
    const { v, SA, N } = this;
    const p = (r0 - 1) & 1;
    v.thetaP.set(thetaBar, p * SA);
    if (globalMemory) v.gmemP.set(globalMemory, p * SA);
    v.rngP.set(v.rng, p * N * 4);
    v.memP.set(v.memory, p * N * SA);
    v.params[0] = alpha;
    const ctl = v.ctl;
    Atomics.store(ctl, C_GO, r0 - 1);
    Atomics.store(ctl, C_KIND, K_RUN | (globalMemory ? K_USE_GMEM : 0) | (this.layout.evaluate ? K_EVAL : 0));
    Atomics.store(ctl, C_STEPS, steps);
    Atomics.store(ctl, C_ROUND, r0);
    this.running = { useMemory: globalMemory !== null, consumed: r0 - 1, attempts: new Map() };
    const cmd: Command = { kind: K_RUN, round: r0, seq: new Array<number>(this.workers).fill(0), deadline: [], attempts: [], evaluated: deferred() };
    this.runCmd = cmd;
    for (let w = 0; w < this.workers; w++) {
      Atomics.store(ctl, workerWord(w, W_ROUND), r0 - 1);
      Atomics.store(ctl, workerWord(w, W_EVALROUND), r0 - 1);
      Atomics.store(ctl, workerWord(w, W_START), r0);
      cmd.attempts[w] = 0;
      this.post(w, cmd);
    }
  }

  /** Lets the workers run rounds up to r. */
  permit(r: number): void {
    const ctl = this.v.ctl;
    if (Atomics.load(ctl, C_GO) < r) {
      Atomics.store(ctl, C_GO, r);
      Atomics.notify(ctl, C_GO);
    }
  }

  /** Waits for round r on every worker; copies theta_bar(r) (and g) out. */
  async roundDone(r: number, thetaBar: Float64Array, globalMemory: Float64Array | null): Promise<void> {
    await this.awaitRun(r, W_ROUND);
    const { v, SA } = this;
    const p = r & 1;
    thetaBar.set(v.thetaP.subarray(p * SA, (p + 1) * SA));
    if (globalMemory) globalMemory.set(v.gmemP.subarray(p * SA, (p + 1) * SA));
    this.running!.consumed = r;
  }

  /** Waits for the workers' evaluation of theta_bar(r) (pools built with `evaluate`); J_i into J, grad J_i into grad. */
  async roundEvaluation(r: number, J: Float64Array, grad: Float64Array): Promise<void> {
    await this.awaitRun(r, W_EVALROUND);
    const { v, N, SA } = this;
    const p = r & 1;
    J.set(v.evalJP.subarray(p * N, (p + 1) * N));
    grad.set(v.evalGradP.subarray(p * N * SA, (p + 1) * N * SA));
  }

  private async awaitRun(r: number, field: number): Promise<void> {
    const cmd = this.runCmd;
    if (!cmd || !this.running) throw new Error('internal: run mode has not started');
    const ctl = this.v.ctl;
    const t = this.o.roundTimeout ?? 0;
    const since = new Array<number>(this.workers).fill(performance.now());
    for (;;) {
      const v0 = Atomics.load(ctl, C_WAKE);
      if (this.o.signal?.aborted) throw this.o.signal.reason;
      if (this.closed) throw new Error('the worker pool was closed');
      const now = performance.now();
      let all = true;
      let next = Infinity;
      const late: number[] = [];
      for (let w = 0; w < this.workers; w++) {
        if (Atomics.load(ctl, workerWord(w, field)) >= r) continue;
        all = false;
        let reason: string | null = null;
        if (Atomics.load(ctl, workerWord(w, W_FAILED)) === cmd.seq[w]) reason = readError(this.v, w);
        else if (this.dead[w]) reason = `its worker thread died (${this.dead[w]})`;
        else if (t > 0 && since[w]! + t <= now) late.push(w);
        else if (t > 0) next = Math.min(next, since[w]! + t);
        if (reason !== null) {
          await this.recoverRun(w, cmd, reason);
          since.fill(performance.now());
          next = 0;
        }
      }
      // Out of time: blame the workers that are busy, not those waiting at a barrier for them
      // (if every late worker waits, which should not happen, the first one).
      const busy = late.filter((w) => (Atomics.load(ctl, workerWord(w, W_CURRENT)) & 3) !== P_IDLE);
      for (const w of busy.length ? busy : late.slice(0, 1)) {
        await this.recoverRun(w, cmd, `it did not finish within ${t} ms (the round timeout)`);
        since.fill(performance.now());
        next = 0;
      }
      if (all) return;
      const res = waitAsync(ctl, C_WAKE, v0, next === Infinity ? undefined : Math.max(0, next - performance.now()));
      if (res.async) await res.value;
    }
  }

  /** Restarts worker w's share of the run on a fresh thread from the last round it committed. */
  private async recoverRun(w: number, cmd: Command, reason: string): Promise<void> {
    const ctl = this.v.ctl;
    const done = Atomics.load(ctl, workerWord(w, W_ROUND));
    const cur = Atomics.load(ctl, workerWord(w, W_CURRENT));
    const code = cur & 3;
    const agent = code === P_LOCAL || code === P_MEMORY ? cur >> 2 : this.blocks[w]![0]!;
    const f =
      code === P_LOCAL
        ? new AgentFailure(agent, done + 1, 'local', reason)
        : code === P_MEMORY
          ? new AgentFailure(agent, done + 1, 'memory', reason)
          : code === P_EVAL
            ? new AgentFailure(agent, done, 'evaluation', `on worker ${w} (${this.agentsLabel(w)}): ${reason}`)
            : new AgentFailure(agent, done + 1, 'local', `on worker ${w} (${this.agentsLabel(w)}): ${reason}`);
    const key = `${w}:${done}`;
    const used = this.running!.attempts.get(key) ?? 0;
    const retry = this.o.retry ?? 0;
    if (used >= retry) {
      this.retire(w);
      throw f;
    }
    this.running!.attempts.set(key, used + 1);
    this.o.onInfo?.(`${f.message}; rerunning it on a fresh worker thread for ${this.agentsLabel(w)} from their saved state (retry ${used + 1} of ${retry})`);
    this.retire(w);
    this.spawn(w);
    await this.waitReady([w]);
    const evalFirst = this.layout.evaluate && Atomics.load(ctl, workerWord(w, W_EVALROUND)) < done;
    Atomics.store(ctl, workerWord(w, W_START), done + 1);
    cmd.attempts[w] = (used + 1) | (evalFirst ? 0x10000 : 0);
    this.post(w, cmd);
  }

  states(): AgentState[] {
    const { v, SA, N } = this;
    if (this.running) {
      const p = this.running.consumed & 1;
      const mem = this.running.useMemory;
      return this.hasMemory.map((_, i) => ({
        rng: v.rngP.slice((p * N + i) * 4, (p * N + i + 1) * 4),
        memory: mem ? v.memP.slice((p * N + i) * SA, (p * N + i + 1) * SA) : null,
      }));
    }
    return this.hasMemory.map((has, i) => ({ rng: v.rng.slice(4 * i, 4 * i + 4), memory: has ? v.memory.slice(i * SA, (i + 1) * SA) : null }));
  }

  /** Ends every thread: a polite exit first (so backends free their memory), then termination. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.o.signal?.removeEventListener('abort', this.onAbort);
    const ctl = this.v.ctl;
    Atomics.store(ctl, C_GO, -1);
    Atomics.notify(ctl, C_GO);
    for (let w = 0; w < this.workers; w++) {
      Atomics.store(ctl, workerWord(w, W_CMD), CMD_EXIT);
      Atomics.notify(ctl, workerWord(w, W_CMD));
    }
    wake(ctl);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled(this.tasks), new Promise((r) => (timer = setTimeout(r, EXIT_GRACE_MS)))]);
    clearTimeout(timer);
    await this.piscina.destroy();
  }

  private commitLocal(out: Float64Array[]): void {
    const { v, SA } = this;
    for (let i = 0; i < this.N; i++) out[i]!.set(v.out.subarray(i * SA, (i + 1) * SA));
    v.rng.set(v.rngNext);
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
      agents,
      specs: mdp.kernels.length === 1 ? [environmentSpec(mdp, 0)] : agents.map((i) => environmentSpec(mdp, i)),
      rewards: agents.map((i) => mdp.rewards[i]!),
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
    const b = this.blocks[w]!;
    return b.length === 1 ? `agent ${b[0]}` : `agents ${b[0]}-${b[b.length - 1]}`;
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
    if (this.running) throw new Error('internal: the pool is in run mode');
  }

  private issue(kind: number, steps: number, round: number): Command {
    this.assertIdle();
    const ctl = this.v.ctl;
    Atomics.store(ctl, C_KIND, kind);
    Atomics.store(ctl, C_STEPS, steps);
    Atomics.store(ctl, C_ROUND, round);
    const W = this.workers;
    const cmd: Command = { kind, round, seq: new Array<number>(W).fill(0), deadline: new Array<number>(W).fill(Infinity), attempts: new Array<number>(W).fill(0), evaluated: deferred() };
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
      cmd.evaluated.resolve();
    } catch (e) {
      cmd.evaluated.reject(e);
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
        let reason: string | null = null;
        if (Atomics.load(ctl, workerWord(w, W_FAILED)) === seq) reason = readError(this.v, w);
        else if (this.dead[w]) reason = `its worker thread died (${this.dead[w]})`;
        else if (cmd.deadline[w]! <= now) reason = `it did not finish within ${this.o.roundTimeout} ms (the round timeout)`;
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

  /** Names the failing agent and phase from what worker w was doing. */
  private failure(w: number, cmd: Command, reason: string): AgentFailure {
    const cur = Atomics.load(this.v.ctl, workerWord(w, W_CURRENT));
    const code = cur & 3;
    const agent = code === P_LOCAL || code === P_MEMORY ? cur >> 2 : this.blocks[w]![0]!;
    if (code === P_LOCAL) return new AgentFailure(agent, cmd.round, 'local', reason);
    if (code === P_MEMORY) return new AgentFailure(agent, cmd.round, 'memory', reason);
    if (code === P_EVAL) return new AgentFailure(agent, cmd.round - 1, 'evaluation', `on worker ${w} (${this.agentsLabel(w)}): ${reason}`);
    const phase = cmd.kind & K_MEMORY ? 'memory' : cmd.kind & K_LOCAL ? 'local' : 'evaluation';
    return new AgentFailure(agent, phase === 'evaluation' ? cmd.round - 1 : cmd.round, phase, `on worker ${w} (${this.agentsLabel(w)}): ${reason}`);
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
  }

  /** Stops worker w's thread (a hung or failed one is terminated by its task's signal). */
  private retire(w: number): void {
    Atomics.store(this.v.ctl, workerWord(w, W_GEN), 0);
    this.aborts[w]?.abort(new Error('replaced'));
  }
}
