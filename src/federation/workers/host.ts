import { availableParallelism, loadavg } from 'node:os';
import { loadBackendByName } from '../../backends/select.js';
import type { BackendName, EnvironmentSpec } from '../../backends/types.js';
import { LocalAgent } from '../agent.js';
import { loadAlgorithm } from '../algorithms/registry.js';
import { sumInto } from '../aggregate.js';
import { AgentScorer } from '../evaluator.js';
import { agentFault, describeFault, sleepSync, type FaultPhase, type FaultSpec } from '../faults.js';
import type { TrainSettings } from '../settings.js';
import { ServerCore } from '../server.js';
import {
  C_CMDID,
  C_KIND,
  C_POSTED,
  C_CLAIM,
  C_RCOUNT,
  C_ROUND,
  C_WAKE,
  C_WAKEAT,
  agentsOf,
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
  P_IDLE,
  P_LOCAL,
  P_MEMORY,
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
  views,
  wake,
  workerWord,
  writeError,
  type LayoutParams,
} from './layout.js';

/**
 * The body of one pool thread: it hosts a fixed block of agents for the whole run (their reward
 * tables, backend environment and the algorithm's agent side, loaded by its module URL) and
 * serves commands posted through shared memory until told to exit. Started as a piscina task
 * that never returns until the run ends, so the pool library owns the thread (start-up,
 * termination, replacement) while the per-phase signalling stays on Atomics.wait/notify.
 *
 * Per-phase commands start each agent from its committed state (stream and kept vectors) and
 * leave the state after the phase beside it; the main thread commits it once every worker is
 * done, so a rerun on a fresh thread starts from the same state and computes the same bits. In
 * run mode (runMode below) the agents' states stay in this thread from round to round.
 */

export interface HostInit {
  sab: SharedArrayBuffer;
  layout: LayoutParams;
  worker: number;
  generation: number;
  backend: BackendName;
  /** The algorithm's registry name and the module that defines it. */
  algorithm: { name: string; module: string };
  /** Global indices of this worker's agents. */
  agents: number[];
  /** One spec when the kernel is shared, else one per agent of this worker (same order). */
  specs: EnvironmentSpec[];
  /** This worker's agents' reward tables (same order). */
  rewards: Float64Array[];
  /** Every agent's reward table (global order) when run mode shares the report phase (layout.shareReports), else null. */
  allRewards: Float64Array[] | null;
  settings: TrainSettings;
  faults: FaultSpec[];
}

/**
 * Polls of a control word before blocking in Atomics.wait: a wake-up through the kernel costs
 * tens of microseconds, while the next command (or the last worker at a barrier) is often a few
 * microseconds away. Bounded, so an idle pool does not burn a core.
 */
const COMMAND_SPINS = 2000;
const BARRIER_SPINS = 2000;
/**
 * Run mode's waits (a peer at the barrier, the next round's descriptor) spin before blocking: with
 * one thread per core the spinning costs no other thread anything, while a futex wake-up (tens of
 * microseconds, twice a round) delays the round. The spin adapts: doubled (up to RUN_SPIN_MS)
 * after a blocked wait that ended within RUN_SPIN_MS, which a longer spin would have caught (an
 * idle machine: the peer is microseconds away), halved (down to RUN_SPIN_MIN_MS) after a longer
 * one (the peer was descheduled, or a long imbalance); and kept at RUN_SPIN_MIN_MS while the
 * machine's load average exceeds its cores by more than one (other processes want the cores:
 * spinning would burn the time slice a descheduled peer could run in). The process's own CPU
 * time cannot tell whether the peer runs: Linux accounts other threads' time only at scheduler
 * ticks, milliseconds apart. The pool's close() notifies every word a run waits on; blocked
 * waits also look every RUN_POLL_MS whether the pool told this thread to stop. Not more often:
 * an idle worker woken every few ms is placed afresh by the scheduler each time, and two workers
 * that end up on one core when the next round is posted share it for tens of rounds (the
 * scheduler does not move a thread that ran a moment ago) at half speed.
 */
const RUN_SPIN_MS = 0.2;
const RUN_SPIN_MIN_MS = 0.005;
/** Waits between two looks at the load average. */
const LOAD_CHECK_EVERY = 256;
const RUN_POLL_MS = 1000;

function blockForever(): void {
  // A hung agent: blocked, not spinning, until the pool terminates the thread.
  for (;;) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
}

export default async function host(init: HostInit): Promise<string> {
  const { layout, worker: w, generation } = init;
  const v = views(init.sab, layout);
  const ctl = v.ctl;
  const word = (f: number): number => workerWord(w, f);
  const SA = layout.size;
  const K = layout.kept;
  const algorithm = await loadAlgorithm(init.algorithm.name, init.algorithm.module);
  const backend = await loadBackendByName(init.backend);
  const envs = init.specs.map((spec) => backend.createEnvironment(spec));
  const envOf = (k: number) => (envs.length === 1 ? envs[0]! : envs[k]!);
  const agents = init.agents.map(
    (id, k) =>
      new LocalAgent(id, envOf(k), init.rewards[k]!, { rng: new Uint32Array(4), kept: Array.from({ length: K }, () => new Float64Array(SA)) }, algorithm, init.settings),
  );
  let scorer: AgentScorer | null = null;
  if (layout.evaluate && init.agents.length) {
    const S = init.specs[0]!.states;
    const stacked = (ks: number[]): Float64Array => {
      const r = new Float64Array(ks.length * SA);
      ks.forEach((k, j) => r.set(init.rewards[k]!, j * SA));
      return r;
    };
    const all = init.agents.map((_, k) => k);
    const groups =
      envs.length === 1
        ? [{ env: envs[0]!, agents: init.agents, rewards: stacked(all) }]
        : all.map((k) => ({ env: envs[k]!, agents: [init.agents[k]!], rewards: stacked([k]) }));
    scorer = new AgentScorer(groups, S, SA);
  }
  const theta = new Float64Array(SA);
  const down = Array.from({ length: layout.down }, () => new Float64Array(SA));
  const out = new Float64Array(SA);
  const mine = (): boolean => Atomics.load(ctl, word(W_GEN)) === generation;

  function injected(i: number, round: number, ph: FaultPhase, attempt: number): void {
    const fault = agentFault(init.faults, i, round, ph, attempt);
    if (!fault) return;
    if (fault.kind === 'throw') throw new Error(describeFault(fault));
    if (fault.kind === 'exit') process.exit(70);
    if (fault.kind === 'hang') blockForever();
    if (fault.kind === 'delay') sleepSync(fault.ms ?? 0);
  }

  const N = layout.agents;
  const W = layout.workers;
  // The server's report step for chained commands: a replica of the main thread's ServerCore
  // whose held reports are views of the shared reports, so applyReports runs the same code over
  // the same inputs in the same order as on the main thread.
  const replica = algorithm.topology === 'server' && algorithm.reports === 'every-round' ? new ServerCore(init.settings, N, new Float64Array(SA)) : null;
  const reportViews = Array.from({ length: N }, (_, i) => v.reports.subarray(i * SA, (i + 1) * SA));

  /** Loads agent a's state from (rng, kept) into its LocalAgent. */
  function load(a: LocalAgent, rng: Uint32Array, kept: Float64Array): void {
    const i = a.id;
    a.state.rng.set(rng.subarray(4 * i, 4 * i + 4));
    a.state.kept.forEach((k, j) => k.set(kept.subarray((i * K + j) * SA, (i * K + j + 1) * SA)));
  }

  /** Leaves agent a's state in (rng, kept). */
  function store(a: LocalAgent, rng: Uint32Array, kept: Float64Array): void {
    const i = a.id;
    rng.set(a.state.rng, 4 * i);
    a.state.kept.forEach((k, j) => kept.set(k, (i * K + j) * SA));
  }

  /**
   * Waits (spinning briefly first: the other workers are usually about to arrive) until every
   * worker finished the report part of chained command `id`; 'exit' or 'replaced' when told to stop.
   */
  function barrier(id: number): 'ok' | 'exit' | 'replaced' {
    for (let spin = 0; ; spin++) {
      const v0 = Atomics.load(ctl, C_WAKE);
      let all = true;
      for (let u = 0; u < W && all; u++) all = Atomics.load(ctl, workerWord(u, W_HALF)) === id;
      if (all) return 'ok';
      if (Atomics.load(ctl, word(W_CMD)) < 0) return 'exit';
      if (!mine()) return 'replaced';
      if (spin >= BARRIER_SPINS) Atomics.wait(ctl, C_WAKE, v0, 50);
    }
  }

  /** The server's report step (the plug-in, through ServerCore) over every held report: the down vectors. */
  function serverReportStep(): readonly Float64Array[] {
    const st = replica!.state;
    st.thetaBar.set(theta);
    st.vectors.forEach((x, k) => x.set(v.server.subarray(k * SA, (k + 1) * SA)));
    for (let i = 0; i < N; i++) st.reports[i] = Atomics.load(v.held, i) === 1 ? reportViews[i]! : null;
    replica!.applyReports([], [], false);
    return replica!.down();
  }

  /** The next command's sequence number: spins briefly (a round's next command follows soon), then blocks. */
  function nextCommand(seen: number): number {
    for (let spin = 0; spin < COMMAND_SPINS; spin++) {
      const seq = Atomics.load(ctl, word(W_CMD));
      if (seq !== seen) return seq;
    }
    Atomics.wait(ctl, word(W_CMD), seen);
    return Atomics.load(ctl, word(W_CMD));
  }

  /**
   * Waits until ctl[i] >= target, spinning first (spinMs, adapted); false when this thread must stop
   * (the pool exits or replaced it).
   */
  let spinMs = RUN_SPIN_MS;
  let crowded = false;
  let waits = 0;
  const cores = availableParallelism();
  const cmdWord = word(W_CMD), genWord = word(W_GEN);
  function awaitWord(i: number, target: number): boolean {
    let x = Atomics.load(ctl, i);
    if (x >= target) return true;
    if (waits++ % LOAD_CHECK_EVERY === 0) crowded = loadavg()[0] > cores + 1;
    const t0 = performance.now();
    const until = t0 + (crowded ? RUN_SPIN_MIN_MS : spinMs);
    for (let spin = 1; ; spin++) {
      x = Atomics.load(ctl, i);
      if (x >= target) return true;
      if ((spin & 63) === 0 && performance.now() > until) break;
    }
    return blockOn(i, x, target, t0);
  }

  /**
   * awaitWord's blocking part, a function of its own: optimised code that reached a call site it
   * had never run deoptimised (V8 recompiled awaitWord some 130 times in 2000 rounds when this
   * part was inline, on helper threads that take CPU from the workers).
   */
  function blockOn(i: number, x: number, target: number, t0: number): boolean {
    for (;;) {
      if (Atomics.load(ctl, cmdWord) < 0 || Atomics.load(ctl, genWord) !== generation) return false;
      Atomics.wait(ctl, i, x, RUN_POLL_MS);
      x = Atomics.load(ctl, i);
      if (x >= target) {
        spinMs = performance.now() - t0 <= RUN_SPIN_MS ? Math.min(RUN_SPIN_MS, 2 * spinMs) : Math.max(RUN_SPIN_MIN_MS, spinMs / 2);
        return true;
      }
    }
  }

  /** Run mode's barrier: this worker finished phase `phase`; waits for every other worker to. */
  function runBarrier(phase: number): boolean {
    Atomics.store(ctl, word(W_PHASE), phase);
    Atomics.notify(ctl, word(W_PHASE));
    for (let u = 0; u < W; u++) if (u !== w && !awaitWord(workerWord(u, W_PHASE), phase)) return false;
    return true;
  }

  /**
   * Run mode's shared report phase: one LocalAgent per agent of the run whose state (stream and
   * kept vectors) is a view of the shared live areas (rngMid, keptMid), and the evaluation in
   * layout.evalChunks chunks of contiguous agents, one factorisation each (plan-costs.ts: one
   * chunk at N = 8, S = 100 on two native workers, so the factorisation is not repeated; more
   * where one chunk would outlast the phase, as with js's slower factorisation or many workers).
   */
  function sharedAgents(): { everyone: LocalAgent[]; scorers: AgentScorer[] } {
    const all = init.allRewards!;
    const env = envs[0]!;
    const everyone = all.map(
      (reward, i) =>
        new LocalAgent(
          i,
          env,
          reward,
          { rng: v.rngMid.subarray(4 * i, 4 * i + 4), kept: Array.from({ length: K }, (_, j) => v.keptMid.subarray((i * K + j) * SA, (i * K + j + 1) * SA)) },
          algorithm,
          init.settings,
        ),
    );
    const chunks = layout.evaluate ? layout.evalChunks : 0;
    const scorers = Array.from({ length: chunks }, (_, c) => {
      const ids = agentsOf(c, N, chunks);
      const stacked = new Float64Array(ids.length * SA);
      ids.forEach((i, k) => stacked.set(all[i]!, k * SA));
      return new AgentScorer([{ env, agents: ids, rewards: stacked }], env.states, SA);
    });
    return { everyone, scorers };
  }

  /**
   * Run mode (K_RUN): rounds C_ROUND, C_ROUND + 1, ... as the main thread posts their descriptors,
   * each as the in-process loop runs it: the local phase, a barrier, the server step (the plug-in
   * through a ServerCore replica, over every participant's delta in agent order), then for
   * algorithms that report every round the report phase at the new theta_bar, a barrier and the
   * server's report step; the evaluation of the new theta_bar when the round asks. The agents'
   * states stay in the run (in this thread, or with a shared report phase in the shared live
   * areas), published when a round asks (F_STATES) into the area of parity k + 1. The round's
   * deltas go to slot k % 2, its other results to ring slot k % ring (reports: (k + 1) % ring).
   * Returns only when told to stop.
   */
  function runMode(attempt: number): 'exit' | 'replaced' {
    const stop = (): 'exit' | 'replaced' => (mine() ? 'exit' : 'replaced');
    const first = Atomics.load(ctl, C_ROUND);
    const everyRound = algorithm.reports === 'every-round';
    const rep = new ServerCore(init.settings, N, v.theta);
    const st = rep.state;
    st.thetaBar.set(v.theta);
    st.vectors.forEach((x, k) => x.set(v.server.subarray(k * SA, (k + 1) * SA)));
    const rows = (area: Float64Array): Float64Array[] => Array.from({ length: N }, (_, i) => area.subarray(i * SA, (i + 1) * SA));
    const outRows = v.outSlots.map(rows);
    const reportRows = v.reportSlots.map(rows);
    const ring = layout.ring;
    const rngAreas = [v.rng, v.rngNext], keptAreas = [v.kept, v.keptNext];
    const shared = layout.shareReports ? sharedAgents() : null;
    // This worker's own agents (their local phases); with a shared report phase, the LocalAgents
    // whose states live in shared memory, so any worker can run their reports.
    const home = shared ? init.agents.map((i) => shared.everyone[i]!) : agents;
    for (const a of home) load(a, v.rng, v.kept);
    let claimBase = 0;
    const lo = Math.floor((w * SA) / W), hi = Math.floor(((w + 1) * SA) / W);
    // This worker's share of sum_i grad J_i (after the second barrier every agent's gradient is in).
    const gradShares = v.evalGradSlots.map((g) => Array.from({ length: N }, (_, i) => g.subarray(i * SA + lo, i * SA + hi)));
    const gsumShares = v.evalGsumSlots.map((g) => g.subarray(lo, hi));
    // This worker's share of theta_bar and of each server vector (what it publishes after a round).
    const shares = [st.thetaBar, ...st.vectors].map((x) => x.subarray(lo, hi));
    const ids: number[] = [];
    const deltas: Float64Array[] = [];
    let phase = 0;
    for (let k = 0; ; k++) {
      if (!awaitWord(C_POSTED, k)) return stop();
      const s = k % ring;
      const flags = Atomics.load(v.rflags, s);
      const members = v.rmembers.subarray(s * N, (s + 1) * N);
      const round = first + k;
      Atomics.store(ctl, word(W_RROUND), k + 1);
      const down = rep.down();
      for (const a of home) {
        if (!(members[a.id]! & M_LOCAL)) continue;
        Atomics.store(ctl, word(W_CURRENT), a.id * 4 + P_LOCAL);
        injected(a.id, round, 'local', attempt);
        a.localPhase(st.thetaBar, down, outRows[k & 1]![a.id]!);
        if (!mine()) return 'replaced';
      }
      Atomics.store(ctl, word(W_CURRENT), P_IDLE);
      if (!runBarrier(++phase)) return stop();
      // The participants and their deltas, in buffers reused from round to round.
      ids.length = 0;
      deltas.length = 0;
      for (let i = 0; i < N; i++)
        if (members[i]! & M_LOCAL) {
          ids.push(i);
          deltas.push(outRows[k & 1]![i]!);
        }
      rep.applyLocal(ids, deltas);
      const r = (k + 1) % ring;
      /** Agent a's part of the report phase: its report at the new theta_bar, or its last one carried over. */
      const report = (a: LocalAgent): boolean => {
        const i = a.id;
        if (members[i]! & M_REPORT) {
          Atomics.store(ctl, word(W_CURRENT), i * 4 + P_MEMORY);
          injected(i, round, 'memory', attempt);
          a.reportPhase(st.thetaBar, reportRows[r]![i]!);
          return mine();
        }
        reportRows[r]![i]!.set(reportRows[s]![i]!);
        return true;
      };
      if (shared) {
        // The round's tasks, handed out by CLAIM: the evaluation's chunks first (the longest
        // tasks), then each agent's report. Every worker takes the next task until none is left;
        // each overshoots CLAIM once, so the next round's tasks start W past this round's last.
        const chunks = flags & F_EVAL ? shared.scorers.length : 0;
        const tasks = chunks + N;
        for (;;) {
          const j = (Atomics.add(ctl, C_CLAIM, 1) - claimBase) | 0;
          if (j >= tasks) break;
          if (j < chunks) {
            Atomics.store(ctl, word(W_CURRENT), P_EVAL);
            shared.scorers[j]!.scoreInto(st.thetaBar, v.evalJSlots[s]!, v.evalGradSlots[s]!);
            if (!mine()) return 'replaced';
          } else if (!report(shared.everyone[j - chunks]!)) return 'replaced';
        }
        claimBase = (claimBase + tasks + W) | 0;
      } else if (everyRound) {
        for (const a of agents) if (!report(a)) return 'replaced';
      }
      if (flags & F_EVAL && !shared) {
        Atomics.store(ctl, word(W_CURRENT), P_EVAL);
        scorer?.scoreInto(st.thetaBar, v.evalJSlots[s]!, v.evalGradSlots[s]!);
        if (!mine()) return 'replaced';
      }
      Atomics.store(ctl, word(W_CURRENT), P_IDLE);
      if (everyRound) {
        if (!runBarrier(++phase)) return stop();
        for (let i = 0; i < N; i++) st.reports[i] = reportRows[r]![i]!;
        rep.applyReports([], [], false);
        if (flags & F_EVAL && layout.evaluate) sumInto(gsumShares[s]!, gradShares[s]!);
      }
      // The server's state after the round, for the main thread: this worker's share of the coordinates.
      const pub = v.roundServerSlots[s]!;
      for (let q = 0; q < shares.length; q++) pub.set(shares[q]!, q * SA + lo);
      if (flags & F_STATES) for (const a of home) store(a, rngAreas[(k + 1) & 1]!, keptAreas[(k + 1) & 1]!);
      Atomics.store(ctl, word(W_RDONE), k + 1);
      // Only the round's last worker wakes the main thread, and only at the round it waits for:
      // on a machine whose cores all run workers, every wake-up of the main thread preempts one
      // of them while the others wait at the next barrier.
      if (Atomics.add(ctl, C_RCOUNT, 1) === W * (k + 1) - 1 && k >= Atomics.load(ctl, C_WAKEAT)) wake(ctl);
    }
  }

  let seen = Atomics.load(ctl, word(W_CMD));
  Atomics.store(ctl, word(W_READY), generation);
  wake(ctl);
  try {
    for (;;) {
      const seq = nextCommand(seen);
      if (seq === seen) continue;
      if (seq < 0 || !mine()) return 'exit';
      seen = seq;
      const kind = Atomics.load(ctl, C_KIND);
      const round = Atomics.load(ctl, C_ROUND);
      const id = Atomics.load(ctl, C_CMDID);
      const attempt = Atomics.load(ctl, word(W_ATTEMPT));
      const chained = (kind & K_CHAIN) !== 0;
      try {
        if (kind & K_RUN) return runMode(attempt);
        theta.set(v.theta);
        // A chained command's reports belong to the round before its local phase. A rerun after
        // this worker's report part was done (it failed later) keeps those reports and states.
        if (kind & K_REPORT && !(chained && Atomics.load(ctl, word(W_HALF)) === id)) {
          const [rng, kept] = chained ? [v.rngMid, v.keptMid] : [v.rngNext, v.keptNext];
          for (const a of agents) {
            const i = a.id;
            if (!(Atomics.load(v.members, i) & M_REPORT)) continue;
            Atomics.store(ctl, word(W_CURRENT), i * 4 + P_MEMORY);
            injected(i, chained ? round - 1 : round, 'memory', attempt);
            load(a, v.rng, v.kept);
            a.reportPhase(theta, out);
            store(a, rng, kept);
            if (!mine()) return 'replaced';
            v.reports.set(out, i * SA);
            Atomics.store(v.held, i, 1);
          }
          if (chained) {
            Atomics.store(ctl, word(W_HALF), id);
            wake(ctl);
          }
        }
        if (kind & K_EVAL) {
          Atomics.store(ctl, word(W_CURRENT), P_EVAL);
          scorer?.scoreInto(theta, v.evalJ, v.evalGrad);
          if (!mine()) return 'replaced';
          Atomics.store(ctl, word(W_EVAL), seq);
          wake(ctl);
        }
        if (kind & K_LOCAL) {
          let start: readonly Float64Array[] = down;
          if (chained) {
            const b = barrier(id);
            if (b !== 'ok') return b;
            start = serverReportStep();
          } else down.forEach((d, k) => d.set(v.down.subarray(k * SA, (k + 1) * SA)));
          for (const a of agents) {
            const i = a.id;
            const m = Atomics.load(v.members, i);
            if (!(m & M_LOCAL)) continue;
            Atomics.store(ctl, word(W_CURRENT), i * 4 + P_LOCAL);
            injected(i, round, 'local', attempt);
            if (chained && m & M_REPORT) load(a, v.rngMid, v.keptMid);
            else load(a, v.rng, v.kept);
            a.localPhase(theta, start, out);
            store(a, v.rngNext, v.keptNext);
            if (!mine()) return 'replaced';
            v.out.set(out, i * SA);
          }
        }
        Atomics.store(ctl, word(W_CURRENT), P_IDLE);
        Atomics.store(ctl, word(W_DONE), seq);
        wake(ctl);
      } catch (e) {
        if (!mine()) return 'replaced';
        // The cause only: the pool names the agent and phase from CURRENT and the round.
        writeError(v, w, e instanceof Error ? e.message : String(e));
        Atomics.store(ctl, word(W_FAILED), seq);
        wake(ctl);
        // Stay blocked: the pool terminates this thread (a rerun gets a fresh one) or tells it to exit.
        for (;;) {
          Atomics.wait(ctl, word(W_CMD), seq);
          if (Atomics.load(ctl, word(W_CMD)) < 0) return 'exit';
        }
      }
    }
  } finally {
    envs.forEach((e) => e.dispose());
  }
}
