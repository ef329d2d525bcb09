import type { TrainSettings } from './settings.js';
import { LocalAgent } from './agent.js';

/**
 * The agents of a run, as the training loop drives them: the two phases of a round, each a
 * barrier over all agents. Implementations may run agents in any order or in parallel, but must
 * leave results in the agents' slots, so the server's sums (taken in agent order) are the same
 * whatever finishes first.
 */
export interface AgentPool {
  readonly size: number;
  /**
   * Phase 1: agent i runs `steps` local steps from starts[i] (or from the shared start) with the
   * global memory (Fast-FedPG) or none, leaving its final theta in out[i].
   */
  localRounds(starts: Float64Array | Float64Array[], globalMemory: Float64Array | null, steps: number, out: Float64Array[]): Promise<void>;
  /** Phase 2 (Fast-FedPG): every agent samples g_i(theta), keeps it as memory, and reports it in out[i]. */
  memorySamples(theta: Float64Array, out: Float64Array[]): Promise<void>;
  close(): Promise<void>;
}

/** All agents in this thread, one after the other: the path for one worker. */
export class InProcessPool implements AgentPool {
  constructor(
    private readonly agents: LocalAgent[],
    private readonly settings: TrainSettings,
  ) {}

  get size(): number {
    return this.agents.length;
  }

  async localRounds(starts: Float64Array | Float64Array[], globalMemory: Float64Array | null, steps: number, out: Float64Array[]): Promise<void> {
    this.agents.forEach((a, i) => a.localRound(Array.isArray(starts) ? starts[i]! : starts, globalMemory, steps, this.settings, out[i]!));
  }

  async memorySamples(theta: Float64Array, out: Float64Array[]): Promise<void> {
    this.agents.forEach((a, i) => out[i]!.set(a.sampleMemory(theta, this.settings)));
  }

  async close(): Promise<void> {}
}
