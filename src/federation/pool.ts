import { copyAgentState, type AgentState, type LocalAgent } from './agent.js';
import { AgentFailure, agentFault, describeFault, sleepSync, type FaultPhase, type FaultSpec } from './faults.js';

/** Where a phase belongs, for messages and fault injection. */
export interface RoundContext {
  /** Rounds count from 1; the reports taken before round 1 belong to round 0. */
  round: number;
}

/** The local phase of the next round, started together with an evaluation (see AgentPool.evaluateAndStart). */
export interface NextLocalPhase {
  agents: readonly number[];
  down: readonly Float64Array[];
  out: Float64Array[];
}

/** One round's report phase chained to the next round's local phase (AgentPool.reportAndStart). */
export interface ChainedRound {
  /** The round whose reports these are (the local phase is of round + 1). */
  round: number;
  /** The agents that report, at theta, into reports[i]. */
  reporting: readonly number[];
  theta: Float64Array;
  reports: Float64Array[];
  /** The server's vectors before its report step (the report step starts from them and every held report). */
  serverVectors: readonly Float64Array[];
  /** The next round's participants and where their messages go. */
  next: { agents: readonly number[]; out: Float64Array[] };
  /**
   * Evaluate theta between the two phases, into J and grad (`evaluated`). `reported` resolves when
   * the reports are in and the reporters' states are those after the report phase (states()
   * returns them until `local` resolves).
   */
  evaluation: { J: Float64Array; grad: Float64Array } | null;
}

/**
 * Run mode (worker pools): the pool runs whole rounds by itself, server steps included (computed
 * through the plug-in on replicas of the server, so the same bits), from round descriptors the
 * caller posts ahead; the caller reads each finished round (its deltas, reports, evaluation,
 * states) and takes the server's state after it into its own ServerCore (ServerCore.adoptRound).
 * Rounds are counted from the
 * run's first (k = 0). The caller posts round k + ahead only after it has read round k: the pool
 * keeps `ahead` rounds' data.
 */
export interface RoundRunner {
  /**
   * Rounds that may be posted beyond the last one read: round k + ahead once round k is read
   * (at least 2). A round that publishes states is posted at most two rounds past the last one
   * read (the states of rounds two apart share an area).
   */
  readonly ahead: number;
  /** Starts the run at round `first` from theta_bar and the server's vectors (the state after round first - 1). */
  startRun(first: number, theta: Float64Array, serverVectors: readonly Float64Array[]): void;
  /**
   * Posts round k: its participants (ascending; with an algorithm that reports every round, they
   * also report at the new theta_bar), whether the pool evaluates the new theta_bar (pools that
   * evaluate), and whether it publishes the agents' states after the round.
   */
  postRound(k: number, agents: readonly number[], evaluate: boolean, states: boolean): void;
  /**
   * Resolves once round k is done everywhere (posted rounds are posted in order, each once);
   * rejects with the failure that stopped it. It may wait for a few rounds after k as well, so
   * that the rounds after k are read without waiting.
   */
  roundDone(k: number): Promise<void>;
  /** Every agent's last report after round k, valid until round k + ahead is posted. */
  roundReports(k: number): readonly Float64Array[];
  /** The server's theta_bar and vectors after round k as the pool computed them, valid until round k + ahead is posted. */
  roundServer(k: number): { thetaBar: Float64Array; vectors: readonly Float64Array[] };
  /**
   * J_i and grad J_i [N*SA] at theta_bar after round k (posted with `evaluate`), and sum_i grad J_i
   * (in agent order) when the pool summed it; valid until round k + ahead is posted.
   */
  roundEvaluation(k: number): { J: Float64Array; grad: Float64Array; gradSum: Float64Array | null };
  /** Copies of the agents' states after round k (posted with `states`). */
  roundStates(k: number): AgentState[];
}

/**
 * The agents of a run, as the server drives them: the phases of a round, each a barrier over the
 * agents it names. Implementations may run agents in any order or in parallel, but must leave
 * results in the agents' slots, so the server's sums (taken in agent order) are the same whatever
 * finishes first.
 */
export interface AgentPool {
  readonly size: number;
  /**
   * The phases run on other threads. Such a pool reads its inputs before a phase call returns,
   * so the caller may reuse them and compute (the round's evaluation) while the phase runs.
   */
  readonly concurrent?: boolean;
  /** The agents evaluate theta_bar themselves (evaluateAndStart is available). */
  readonly evaluates?: boolean;
  /**
   * The local phase: each listed agent (ascending) runs LocalAgent.localPhase from `start` with
   * the server's `down` vectors and leaves its message (Delta_i; for `local` its theta) in out[i].
   */
  localPhase(agents: readonly number[], start: Float64Array, down: readonly Float64Array[], out: Float64Array[], ctx?: RoundContext): Promise<void>;
  /** The report phase: each listed agent runs LocalAgent.reportPhase at theta into out[i]. */
  reportPhase(agents: readonly number[], theta: Float64Array, out: Float64Array[], ctx?: RoundContext): Promise<void>;
  /**
   * Optional (worker pools): every agent evaluates J_i(theta) and grad J_i(theta) into J[i] and
   * grad[i*SA..] (`evaluated`), then, with `next`, goes straight on to the next round's local
   * phase from the same theta (`local`, which fills next.out), so the evaluation runs in parallel
   * and the next round starts without waiting for the caller. ctx.round is the round just finished.
   */
  evaluateAndStart?(theta: Float64Array, J: Float64Array, grad: Float64Array, next: NextLocalPhase | null, ctx: RoundContext): { evaluated: Promise<void>; local: Promise<void> | null };
  /**
   * Optional (worker pools): the report phase of round c.round, then, without the caller, the
   * server's report step computed by the pool through the plug-in, then the next round's local
   * phase, optionally with an evaluation between the two (see ChainedRound). The caller applies
   * the same report step itself once `reported` resolves, which gives the same bits.
   */
  reportAndStart?(c: ChainedRound): { reported: Promise<void>; evaluated: Promise<void> | null; local: Promise<void> };
  /** Run mode, when this pool offers it for the run's settings (null or absent otherwise). */
  readonly runner?: RoundRunner | null;
  /** Copies of the agents' states after the last finished phase (checkpoints, evaluation of kept vectors). */
  states(): AgentState[];
  /**
   * Sets kept vector k of agent i between phases (decentralised algorithms in simulation: what the
   * agent computes from its neighbours' messages). Pools without it cannot run `peers` algorithms.
   */
  writeKept?(agent: number, k: number, v: Float64Array): void;
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
    private readonly o: InProcessOptions = {},
  ) {}

  get size(): number {
    return this.agents.length;
  }

  async localPhase(ids: readonly number[], start: Float64Array, down: readonly Float64Array[], out: Float64Array[], ctx?: RoundContext): Promise<void> {
    for (const i of ids) {
      const a = this.agents[i]!;
      this.run(a, 'local', ctx, () => a.localPhase(start, down, out[i]!));
    }
  }

  async reportPhase(ids: readonly number[], theta: Float64Array, out: Float64Array[], ctx?: RoundContext): Promise<void> {
    for (const i of ids) {
      const a = this.agents[i]!;
      this.run(a, 'memory', ctx, () => a.reportPhase(theta, out[i]!));
    }
  }

  states(): AgentState[] {
    return this.agents.map((a) => copyAgentState(a.state));
  }

  writeKept(agent: number, k: number, v: Float64Array): void {
    this.agents[agent]!.state.kept[k]!.set(v);
  }

  async close(): Promise<void> {}

  /** One agent's share of a phase, with fault injection and reruns from its saved state. */
  private run(a: LocalAgent, phase: FaultPhase, ctx: RoundContext | undefined, body: () => void): void {
    const faults = this.o.faults ?? [];
    const retry = this.o.retry ?? 0;
    const round = ctx?.round ?? -1;
    if (!faults.length && !retry) {
      // A kernel's error (a local round whose theta overflowed, ...) names the agent and the round,
      // as the worker pools' do, instead of surfacing bare (the CLI prints AgentFailure as one line).
      try {
        return body();
      } catch (e) {
        throw new AgentFailure(a.id, round, phase, e instanceof Error ? e.message : String(e));
      }
    }
    for (let attempt = 0; ; attempt++) {
      const saved = retry ? copyAgentState(a.state) : null;
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
        saved.kept.forEach((k, j) => a.state.kept[j]!.set(k));
        this.o.onInfo?.(`${failure.message}; rerunning it in-process from its saved state (retry ${attempt + 1} of ${retry})`);
      }
    }
  }
}
