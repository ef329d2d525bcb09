import { loadBackendByName } from '../../backends/select.js';
import type { BackendName, EnvironmentSpec } from '../../backends/types.js';
import { LocalAgent } from '../agent.js';
import { applyThetas, meanInto } from '../aggregate.js';
import { AgentScorer } from '../evaluator.js';
import { agentFault, describeFault, sleepSync, type FaultPhase, type FaultSpec } from '../faults.js';
import type { TrainSettings } from '../settings.js';
import {
  C_BAR,
  C_GO,
  C_KIND,
  C_ROUND,
  C_STEPS,
  K_EVAL,
  K_EVAL_FIRST,
  K_RUN,
  K_LOCAL,
  K_MEMORY,
  K_PER_AGENT_STARTS,
  K_USE_GMEM,
  P_EVAL,
  P_IDLE,
  P_LOCAL,
  P_MEMORY,
  W_ARRIVE,
  W_ATTEMPT,
  W_CMD,
  W_EVALROUND,
  W_FAILROUND,
  W_ROUND,
  W_START,
  W_DONE,
  W_EVAL,
  W_FAILED,
  W_CURRENT,
  W_GEN,
  W_READY,
  views,
  wake,
  workerWord,
  writeError,
  type LayoutParams,
} from './layout.js';

/**
 * The body of one pool thread: it hosts a fixed block of agents for the whole run (their reward
 * tables, backend environment and, between phases, their random streams) and serves commands
 * posted through shared memory until told to exit. Started as a piscina task that never returns
 * until the run ends, so the pool library owns the thread (start-up, termination, replacement)
 * while the per-round signalling stays on Atomics.wait/notify.
 */

export interface HostInit {
  sab: SharedArrayBuffer;
  layout: LayoutParams;
  worker: number;
  generation: number;
  backend: BackendName;
  /** Global indices of this worker's agents. */
  agents: number[];
  /** One spec when the kernel is shared, else one per agent of this worker (same order). */
  specs: EnvironmentSpec[];
  /** This worker's agents' reward tables (same order). */
  rewards: Float64Array[];
  settings: TrainSettings;
  faults: FaultSpec[];
}

const PHASE_CODE: Record<FaultPhase, number> = { local: P_LOCAL, memory: P_MEMORY };

/**
 * How long a worker spins at a barrier before it sleeps (FEDPG_SPIN_US, microseconds). Never
 * while waiting for the main thread: spinning there would take the core the main thread needs.
 */
const SPIN_MS = Number(process.env.FEDPG_SPIN_US ?? 0) / 1000;

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
  const s = init.settings;
  const backend = await loadBackendByName(init.backend);
  const envs = init.specs.map((spec) => backend.createEnvironment(spec));
  const envOf = (k: number) => (envs.length === 1 ? envs[0]! : envs[k]!);
  const agents = init.agents.map(
    (id, k) => new LocalAgent(id, envOf(k), init.rewards[k]!, { rng: new Uint32Array(4), memory: new Float64Array(SA) }),
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
  const gmem = new Float64Array(SA);
  const start = new Float64Array(SA);
  const out = new Float64Array(SA);
  const mine = (): boolean => Atomics.load(ctl, word(W_GEN)) === generation;

  const W = layout.workers;
  const N = layout.agents;
  /** Spins for spinMs, then sleeps on ctl[index] until ok() (re-checked at least every 50 ms). */
  const waitFor = (index: number, ok: () => boolean, spinMs = 0): void => {
    const until = spinMs > 0 ? performance.now() + spinMs : 0;
    while (!ok()) {
      if (performance.now() < until) continue;
      const seen = Atomics.load(ctl, index);
      if (ok()) return;
      Atomics.wait(ctl, index, seen, 50);
    }
  };
  const allArrived = (epoch: number): boolean => {
    for (let u = 0; u < W; u++) if (Atomics.load(ctl, workerWord(u, W_ARRIVE)) < epoch) return false;
    return true;
  };
  /** A barrier over the workers: idempotent per epoch, so a rerun worker can pass it again. */
  const barrier = (epoch: number): void => {
    // Waiting is not working: a timeout blames the busy worker, not those waiting for it.
    Atomics.store(ctl, word(W_CURRENT), P_IDLE);
    Atomics.store(ctl, word(W_ARRIVE), epoch);
    Atomics.add(ctl, C_BAR, 1);
    Atomics.notify(ctl, C_BAR);
    waitFor(C_BAR, () => allArrived(epoch) || !mine() || Atomics.load(ctl, C_GO) < 0, SPIN_MS);
  };
  const stopped = (): boolean => Atomics.load(ctl, C_GO) < 0;
  // By round parity: a worker may start round r + 1 while another still sums round r's outputs.
  const outRows = [0, 1].map((p) => (layout.run || p === 0 ? Array.from({ length: N }, (_, i) => v.out.subarray((p * N + i) * SA, (p * N + i + 1) * SA)) : []));
  const memRows = [0, 1].map((p) => Array.from({ length: N }, (_, i) => v.memP.subarray((p * N + i) * SA, (p * N + i + 1) * SA)));
  const thetaNew = new Float64Array(SA);
  const gNew = new Float64Array(SA);
  const acc = new Float64Array(SA);
  const evaluate = (th: Float64Array, parity: number, r: number): void => {
    Atomics.store(ctl, word(W_CURRENT), P_EVAL);
    scorer?.scoreInto(th, v.evalJP.subarray(parity * N, (parity + 1) * N), v.evalGradP.subarray(parity * N * SA, (parity + 1) * N * SA));
    if (!mine()) return;
    Atomics.store(ctl, word(W_EVALROUND), r);
    wake(ctl);
  };

  /**
   * Run mode: whole rounds, round after round, as far as the main thread permits (C_GO), with
   * the server's step computed here by every worker from every agent's output (same arithmetic,
   * same order, so the same bits) and two barriers among the workers: after the local steps
   * (theta_bar(r) needs every Delta_i) and after the memory samples (g needs every g_i). The state
   * after round r is committed in the parity-r buffers, which the main thread reads while the
   * workers go on with round r + 1 (never further: round r + 2 needs its permission).
   */
  const run = (r0: number, kind: number, attempt0: number): string => {
    const steps = Atomics.load(ctl, C_STEPS);
    const alpha = v.params[0]!;
    const useMem = (kind & K_USE_GMEM) !== 0;
    const evalEach = (kind & K_EVAL) !== 0;
    const p0 = (r0 - 1) & 1;
    theta.set(v.thetaP.subarray(p0 * SA, (p0 + 1) * SA));
    if (useMem) gmem.set(v.gmemP.subarray(p0 * SA, (p0 + 1) * SA));
    if (kind & K_EVAL_FIRST) evaluate(theta, p0, r0 - 1);
    for (let r = r0; ; r++) {
      const prev = (r - 1) & 1, cur = r & 1;
      waitFor(C_GO, () => Atomics.load(ctl, C_GO) >= r || Atomics.load(ctl, C_GO) < 0 || !mine());
      if (!mine()) return 'replaced';
      if (Atomics.load(ctl, C_GO) < 0) return 'stopped';
      const attempt = r === r0 ? attempt0 : 0;
      for (const a of agents) {
        const i = a.id;
        Atomics.store(ctl, word(W_CURRENT), i * 4 + P_LOCAL);
        injected(i, r, 'local', attempt);
        a.state.rng.set(v.rngP.subarray((prev * N + i) * 4, (prev * N + i + 1) * 4));
        if (useMem) a.state.memory!.set(memRows[prev]![i]!);
        a.localRound(theta, useMem ? gmem : null, steps, s, out);
        if (!mine()) return 'replaced';
        outRows[cur]![i]!.set(out);
      }
      barrier(2 * r);
      if (!mine()) return 'replaced';
      if (stopped()) return 'stopped';
      thetaNew.set(theta);
      applyThetas(thetaNew, outRows[cur]!, alpha, acc);
      if (w === 0) v.thetaP.set(thetaNew, cur * SA);
      for (const a of agents) {
        const i = a.id;
        if (useMem) {
          Atomics.store(ctl, word(W_CURRENT), i * 4 + P_MEMORY);
          injected(i, r, 'memory', attempt);
          const g = a.sampleMemory(thetaNew, s);
          if (!mine()) return 'replaced';
          memRows[cur]![i]!.set(g);
        }
        v.rngP.set(a.state.rng, (cur * N + i) * 4);
      }
      if (useMem) {
        barrier(2 * r + 1);
        if (!mine()) return 'replaced';
        if (stopped()) return 'stopped';
        meanInto(gNew, memRows[cur]!);
        if (w === 0) v.gmemP.set(gNew, cur * SA);
        gmem.set(gNew);
      }
      theta.set(thetaNew);
      Atomics.store(ctl, word(W_CURRENT), P_IDLE);
      Atomics.store(ctl, word(W_ROUND), r);
      wake(ctl);
      if (evalEach) {
        evaluate(theta, cur, r);
        if (!mine()) return 'replaced';
      }
    }
  };

  function injected(i: number, round: number, ph: FaultPhase, attempt: number): void {
    const fault = agentFault(init.faults, i, round, ph, attempt);
    if (!fault) return;
    if (fault.kind === 'throw') throw new Error(describeFault(fault));
    if (fault.kind === 'exit') process.exit(70);
    if (fault.kind === 'hang') blockForever();
    if (fault.kind === 'delay') sleepSync(fault.ms ?? 0);
  }

  let seen = Atomics.load(ctl, word(W_CMD));
  Atomics.store(ctl, word(W_READY), generation);
  wake(ctl);
  try {
    for (;;) {
      Atomics.wait(ctl, word(W_CMD), seen);
      const seq = Atomics.load(ctl, word(W_CMD));
      if (seq === seen) continue;
      if (seq < 0 || !mine()) return 'exit';
      seen = seq;
      const kind = Atomics.load(ctl, C_KIND);
      const steps = Atomics.load(ctl, C_STEPS);
      const round = Atomics.load(ctl, C_ROUND);
      const attempt = Atomics.load(ctl, word(W_ATTEMPT));
      try {
        if (kind & K_RUN) {
          const why = run(Atomics.load(ctl, word(W_START)), kind | (attempt & 0x10000 ? K_EVAL_FIRST : 0), attempt & 0xffff);
          if (why === 'replaced') return why;
          continue;
        }
        theta.set(v.theta);
        if (kind & K_EVAL) {
          Atomics.store(ctl, word(W_CURRENT), P_EVAL);
          scorer?.scoreInto(theta, v.evalJ, v.evalGrad);
          if (!mine()) return 'replaced';
          Atomics.store(ctl, word(W_EVAL), seq);
          wake(ctl);
        }
        for (const ph of ['local', 'memory'] as const) {
          if (!(kind & (ph === 'local' ? K_LOCAL : K_MEMORY))) continue;
          if (ph === 'local' && kind & K_USE_GMEM) gmem.set(v.gmem);
          for (const a of agents) {
            const i = a.id;
            Atomics.store(ctl, word(W_CURRENT), i * 4 + PHASE_CODE[ph]);
            injected(i, round, ph, attempt);
            a.state.rng.set(v.rng.subarray(4 * i, 4 * i + 4));
            if (ph === 'local') {
              if (kind & K_USE_GMEM) a.state.memory!.set(v.memory.subarray(i * SA, (i + 1) * SA));
              let from = theta;
              if (kind & K_PER_AGENT_STARTS) {
                start.set(v.starts.subarray(i * SA, (i + 1) * SA));
                from = start;
              }
              a.localRound(from, kind & K_USE_GMEM ? gmem : null, steps, s, out);
              if (!mine()) return 'replaced';
              v.out.set(out, i * SA);
            } else {
              const g = a.sampleMemory(theta, s);
              if (!mine()) return 'replaced';
              v.out.set(g, i * SA);
            }
            v.rngNext.set(a.state.rng, 4 * i);
          }
        }
        Atomics.store(ctl, word(W_CURRENT), P_IDLE);
        Atomics.store(ctl, word(W_DONE), seq);
        wake(ctl);
      } catch (e) {
        if (!mine()) return 'replaced';
        // The cause only: the pool names the agent and phase from CURRENT and the round.
        writeError(v, w, e instanceof Error ? e.message : String(e));
        Atomics.store(ctl, word(W_FAILROUND), kind & K_RUN ? Atomics.load(ctl, word(W_ROUND)) + 1 : round);
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
