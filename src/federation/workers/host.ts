import { loadBackendByName } from '../../backends/select.js';
import type { BackendName, EnvironmentSpec } from '../../backends/types.js';
import { LocalAgent } from '../agent.js';
import { loadAlgorithm } from '../algorithms/registry.js';
import { AgentScorer } from '../evaluator.js';
import { agentFault, describeFault, sleepSync, type FaultPhase, type FaultSpec } from '../faults.js';
import type { TrainSettings } from '../settings.js';
import {
  C_KIND,
  C_ROUND,
  K_EVAL,
  K_LOCAL,
  K_REPORT,
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
  W_READY,
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
 * Every phase starts each agent from its committed state (stream and kept vectors) and leaves
 * the state after the phase beside it; the main thread commits it once every worker is done, so
 * a rerun on a fresh thread starts from the same state and computes the same bits.
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
  settings: TrainSettings;
  faults: FaultSpec[];
}

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

  /** Loads agent a's committed state, runs body, and leaves the new state beside it. */
  function withState(a: LocalAgent, body: () => void): void {
    const i = a.id;
    a.state.rng.set(v.rng.subarray(4 * i, 4 * i + 4));
    a.state.kept.forEach((k, j) => k.set(v.kept.subarray((i * K + j) * SA, (i * K + j + 1) * SA)));
    body();
    v.rngNext.set(a.state.rng, 4 * i);
    a.state.kept.forEach((k, j) => v.keptNext.set(k, (i * K + j) * SA));
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
      const round = Atomics.load(ctl, C_ROUND);
      const attempt = Atomics.load(ctl, word(W_ATTEMPT));
      try {
        theta.set(v.theta);
        if (kind & K_EVAL) {
          Atomics.store(ctl, word(W_CURRENT), P_EVAL);
          scorer?.scoreInto(theta, v.evalJ, v.evalGrad);
          if (!mine()) return 'replaced';
          Atomics.store(ctl, word(W_EVAL), seq);
          wake(ctl);
        }
        if (kind & K_LOCAL) down.forEach((d, k) => d.set(v.down.subarray(k * SA, (k + 1) * SA)));
        for (const [flag, ph, code] of [
          [K_LOCAL, 'local', P_LOCAL],
          [K_REPORT, 'memory', P_MEMORY],
        ] as const) {
          if (!(kind & flag)) continue;
          for (const a of agents) {
            const i = a.id;
            if (Atomics.load(v.members, i) !== 1) continue;
            Atomics.store(ctl, word(W_CURRENT), i * 4 + code);
            injected(i, round, ph, attempt);
            withState(a, () => (ph === 'local' ? a.localPhase(theta, down, out) : a.reportPhase(theta, out)));
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
