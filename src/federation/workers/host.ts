import { loadBackendByName } from '../../backends/select.js';
import type { BackendName, EnvironmentSpec } from '../../backends/types.js';
import { LocalAgent } from '../agent.js';
import { AgentScorer } from '../evaluator.js';
import { agentFault, describeFault, sleepSync, type FaultPhase, type FaultSpec } from '../faults.js';
import type { TrainSettings } from '../settings.js';
import {
  C_KIND,
  C_ROUND,
  C_STEPS,
  K_EVAL,
  K_LOCAL,
  K_MEMORY,
  K_PER_AGENT_STARTS,
  K_USE_GMEM,
  P_EVAL,
  P_IDLE,
  P_LOCAL,
  P_MEMORY,
  W_ATTEMPT,
  W_CMD,
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
            const fault = agentFault(init.faults, i, round, ph, attempt);
            if (fault) {
              if (fault.kind === 'throw') throw new Error(describeFault(fault));
              if (fault.kind === 'exit') process.exit(70);
              if (fault.kind === 'hang') blockForever();
              if (fault.kind === 'delay') sleepSync(fault.ms ?? 0);
            }
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
