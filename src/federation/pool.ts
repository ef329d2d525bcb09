import type { TrainSettings } from './settings.js';
import type { AgentState, LocalAgent } from './agent.js';
import { AgentFailure, agentFault, describeFault, sleepSync, type FaultPhase, type FaultSpec } from './faults.js';

/** Where a phase belongs, for messages and fault injection. */
export interface RoundContext {
  /** Rounds count from 1; the memory samples taken before round 1 belong to round 0. */
  round: number;
}

/** Phase 1 of the next round, started together with an evaluation (see AgentPool.evaluateAndStart). */
export interface NextLocalRounds {
  globalMemory: Float64Array | null;
  steps: number;
  out: Float64Array[];
}

/**
 * The agents of a run, as the training loop drives them: the two phases of a round, each a
 * barrier over all agents. Implementations may run agents in any order or in parallel, but must
 * leave results in the agents' slots, so the server's sums (taken in agent order) are the same
 * whatever finishes first.
 */
export interface AgentPool {
  readonly size: number;
  /**
   * The phases run on other threads. Such a pool reads its inputs before localRounds returns,
   * so the caller may reuse them and compute (the round's evaluation) while the phase runs.
   */
  readonly concurrent?: boolean;
  /** The agents evaluate theta_bar themselves (evaluateAndStart is available). */
  readonly evaluates?: boolean;
  /**
   * Phase 1: agent i runs `steps` local steps from starts[i] (or from the shared start) with the
   * global memory (Fast-FedPG) or none, leaving its final theta in out[i].
   */
  localRounds(starts: Float64Array | Float64Array[], globalMemory: Float64Array | null, steps: number, out: Float64Array[], ctx?: RoundContext): Promise<void>;
  /** Phase 2 (Fast-FedPG): every agent samples g_i(theta), keeps it as memory, and reports it in out[i]. */
  memorySamples(theta: Float64Array, out: Float64Array[], ctx?: RoundContext): Promise<void>;
  /**
   * Optional (worker pools): the agents evaluate J_i(theta) and grad J_i(theta) into J[i] and
   * grad[i*SA..] (`evaluated`), then, with `next`, go straight on to the next round's local steps
   * from the same theta (`local`, which fills next.out), so the evaluation runs in parallel and
   * the next round starts without waiting for the caller. ctx.round is the round just finished.
   */
  evaluateAndStart?(
    theta: Float64Array,
    J: Float64Array,
    grad: Float64Array,
    next: NextLocalRounds | null,
    ctx: RoundContext,
  ): { evaluated: Promise<void>; local: Promise<void> | null };
  /** Copies of the agents' states after the last finished phase (for checkpoints). */
  states?(): AgentState[];
  close(): Promise<void>;
}

export interface InProcessOptions {
  faults?: readonly FaultSpec[];
  /** Reruns of a failed agent round from the agent's saved state (default 0). */
  retry?: number;
  onInfo?: (message: string) => void;
}

/** All agents in this thread, one after the other: the path for one worker. */
export class InProcessPool implements AgentPool {
  readonly concurrent = false;

  constructor(
    private readonly agents: LocalAgent[],
    private readonly settings: TrainSettings,
    private readonly o: InProcessOptions = {},
  ) {}

  get size(): number {
    return this.agents.length;
  }

  async localRounds(
    starts: Float64Array | Float64Array[],
    globalMemory: Float64Array | null,
    steps: number,
    out: Float64Array[],
    ctx?: RoundContext,
  ): Promise<void> {
    this.agents.forEach((a, i) =>
      this.run(a, 'local', ctx, () => a.localRound(Array.isArray(starts) ? starts[i]! : starts, globalMemory, steps, this.settings, out[i]!)),
    );
  }

  async memorySamples(theta: Float64Array, out: Float64Array[], ctx?: RoundContext): Promise<void> {
    this.agents.forEach((a, i) => this.run(a, 'memory', ctx, () => out[i]!.set(a.sampleMemory(theta, this.settings))));
  }

  states(): AgentState[] {
    return this.agents.map((a) => ({ rng: a.state.rng.slice(), memory: a.state.memory ? a.state.memory.slice() : null }));
  }

  async close(): Promise<void> {}

  /** One agent's share of a phase, with fault injection and reruns from its saved state. */
  private run(a: LocalAgent, phase: FaultPhase, ctx: RoundContext | undefined, body: () => void): void {
    const faults = this.o.faults ?? [];
    const retry = this.o.retry ?? 0;
    if (!faults.length && !retry) return body();
    const round = ctx?.round ?? -1;
    for (let attempt = 0; ; attempt++) {
      const saved = retry ? { rng: a.state.rng.slice(), memory: a.state.memory ? a.state.memory.slice() : null } : null;
      try {
        const f = agentFault(faults, a.id, round, phase, attempt);
        if (f?.kind === 'delay') sleepSync(f.ms ?? 0);
        else if (f) {
          if (f.kind !== 'throw') throw new Error(`${describeFault(f)} (needs worker threads)`);
          throw new Error(describeFault(f));
        }
        return body();
      } catch (e) {
        const failure = new AgentFailure(a.id, round, phase, e instanceof Error ? e.message : String(e));
        if (!saved || attempt >= retry) throw failure;
        a.state.rng.set(saved.rng);
        if (saved.memory) a.state.memory!.set(saved.memory);
        else a.state.memory = null;
        this.o.onInfo?.(`${failure.message}; rerunning it in-process from its saved state (retry ${attempt + 1} of ${retry})`);
      }
    }
  }
}
