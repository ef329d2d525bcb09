import { agentStream } from '../rng.js';
import { parseAggregation, type AggregationRule } from './aggregate.js';
import { algorithmOf } from './algorithms/registry.js';
import type { AlgorithmPlugin, ServerSide } from './algorithms/types.js';
import { parsePersonalize } from './personalize.js';
import { drawParticipants, PARTICIPATION_STREAM } from './participation.js';
import { dpEpsilon } from './privacy.js';
import type { TrainSettings } from './settings.js';

/** Everything the server keeps between phases: what a checkpoint of the server holds. */
export interface ServerState {
  thetaBar: Float64Array;
  /** The algorithm's server vectors, in serverState order. */
  vectors: Float64Array[];
  /** Every agent's last report as received (null before its first), when the algorithm has reports. */
  reports: (Float64Array | null)[];
  /** The server's own stream (participation draws). */
  rng: Uint32Array;
  /** Costs so far (SPEC.md's counting, by who took part). */
  trajectories: number;
  /** Vectors of S*A sent so far, both directions. */
  vectors_sent: number;
  /** Messages each agent has sent (for differential-privacy accounting). */
  messages: number[];
}

/** Costs after some rounds: trajectories, environment steps and bytes (SPEC.md). */
export interface Costs {
  trajectories: number;
  steps: number;
  bytes: number;
}

export function copyServerState(s: ServerState): ServerState {
  return {
    thetaBar: s.thetaBar.slice(),
    vectors: s.vectors.map((v) => v.slice()),
    reports: s.reports.map((r) => (r ? r.slice() : null)),
    rng: s.rng.slice(),
    trajectories: s.trajectories,
    vectors_sent: s.vectors_sent,
    messages: [...s.messages],
  };
}

/**
 * The server's side of a run, for every runtime: the in-process loop and the worker runtime
 * (train.ts) and the network aggregator hold one. It owns theta_bar, the algorithm's server
 * vectors, every agent's last report and its own random stream, applies the algorithm's server
 * rules through the plug-in, draws participants, and counts costs as phases close. Every sum runs
 * in agent order, so any runtime gives the same bits.
 */
export class ServerCore implements ServerSide {
  readonly algorithm: AlgorithmPlugin;
  readonly rule: AggregationRule;
  readonly agents: number;
  readonly state: ServerState;
  private readonly scratches = new Map<string, Float64Array>();
  private readonly perReportTrajectories: number;
  private readonly perLocalTrajectories: number;

  constructor(
    readonly settings: TrainSettings,
    agents: number,
    theta0: Float64Array,
    restored?: ServerState,
  ) {
    this.algorithm = algorithmOf(settings.algorithm);
    this.rule = parseAggregation(settings.aggregation);
    this.agents = agents;
    const SA = theta0.length;
    this.state = restored
      ? copyServerState(restored)
      : {
          thetaBar: Float64Array.from(theta0),
          vectors: this.algorithm.serverState.map(() => new Float64Array(SA)),
          reports: this.algorithm.reports === 'none' ? [] : new Array<Float64Array | null>(agents).fill(null),
          rng: agentStream(settings.serverSeed, PARTICIPATION_STREAM),
          trajectories: 0,
          vectors_sent: 0,
          messages: new Array<number>(agents).fill(0),
        };
    if (!restored) this.algorithm.initServer?.(this);
    const sampled = settings.gradient === 'sampled';
    const ditto = parsePersonalize(settings.personalize).kind === 'ditto' ? settings.localSteps : 0;
    this.perLocalTrajectories = sampled ? settings.batch * (this.algorithm.estimatesPerRound(settings) + ditto) : 0;
    this.perReportTrajectories = sampled ? settings.batch : 0;
  }

  get thetaBar(): Float64Array {
    return this.state.thetaBar;
  }

  vector(name: string): Float64Array {
    const k = this.algorithm.serverState.indexOf(name);
    if (k < 0) throw new Error(`${this.algorithm.name} keeps no server vector named ${name}`);
    return this.state.vectors[k]!;
  }

  scratch(name: string): Float64Array {
    let v = this.scratches.get(name);
    if (!v) {
      v = new Float64Array(this.state.thetaBar.length);
      this.scratches.set(name, v);
    }
    return v;
  }

  /** The vectors sent down with theta_bar in a local phase, in the algorithm's `down` order. */
  down(): Float64Array[] {
    return this.algorithm.down.map((n) => this.vector(n));
  }

  /** The round's participants, ascending: everyone, or the server's seeded draw (SPEC.md). */
  participants(): number[] {
    return drawParticipants(this.state.rng, this.settings.participation, this.agents);
  }

  /** The agents whose report the server holds (a local phase of an algorithm with reports needs one). */
  hasReport(i: number): boolean {
    return this.algorithm.reports === 'none' || this.state.reports[i] !== null;
  }

  /** Closes a local phase: the server step over the participants' deltas (ids ascending). */
  applyLocal(ids: readonly number[], deltas: readonly Float64Array[]): void {
    if (!this.algorithm.serverStep) throw new Error(`${this.algorithm.name} has no server step`);
    this.algorithm.serverStep(this, deltas);
    this.countLocal(ids);
  }

  /** Closes a report phase: keeps each reporter's report, then the algorithm's rule over all held. */
  applyReports(ids: readonly number[], reports: readonly Float64Array[], initial: boolean): void {
    this.keepReports(ids, reports);
    const all = this.state.reports.filter((r): r is Float64Array => r !== null);
    this.algorithm.serverReports?.(this, all, initial);
  }

  /**
   * Closes a round that replicas of this server computed (the worker runtime's run mode: the same
   * plug-in code over the same inputs, so the same bits): counts the local phase, keeps the
   * reports (algorithms that report every round) and takes theta_bar and the vectors as computed,
   * instead of computing the steps a second time.
   */
  adoptRound(ids: readonly number[], reports: readonly Float64Array[] | null, thetaBar: Float64Array, vectors: readonly Float64Array[]): void {
    this.countLocal(ids);
    if (reports) this.keepReports(ids, reports);
    this.state.thetaBar.set(thetaBar);
    vectors.forEach((x, k) => this.state.vectors[k]!.set(x));
  }

  private countLocal(ids: readonly number[]): void {
    this.state.trajectories += ids.length * this.perLocalTrajectories;
    // Down: theta_bar and the down vectors; up: Delta_i (SPEC.md's count).
    this.state.vectors_sent += ids.length * (2 + this.algorithm.down.length);
    for (const i of ids) this.state.messages[i]!++;
  }

  /** Keeps each reporter's report as received and counts the report phase. */
  private keepReports(ids: readonly number[], reports: readonly Float64Array[]): void {
    ids.forEach((i, k) => {
      const held = this.state.reports[i];
      if (held) held.set(reports[k]!);
      else this.state.reports[i] = Float64Array.from(reports[k]!);
    });
    this.state.trajectories += ids.length * this.perReportTrajectories;
    this.state.vectors_sent += ids.length;
    for (const i of ids) this.state.messages[i]!++;
  }

  /** Each agent's epsilon so far (differential privacy on; Infinity without noise). */
  dpEpsilons(): number[] {
    const s = this.settings;
    return this.state.messages.map((m) => dpEpsilon(m, s.dpNoise, s.dpDelta));
  }

  /** The record's dpEpsilon: the largest over agents (null when infinite: clipping without noise); undefined without DP. */
  dpEpsilon(): number | null | undefined {
    if (!(this.settings.dpClip > 0)) return undefined;
    const e = Math.max(...this.dpEpsilons());
    return Number.isFinite(e) ? e : null;
  }

  /** Counts vectors sent outside the server's phases (decentralised algorithms: to neighbours). */
  countVectors(n: number): void {
    this.state.vectors_sent += n;
  }

  /** Counts a local round that sends nothing (`local`). */
  countSilent(agents: number): void {
    this.state.trajectories += agents * this.perLocalTrajectories;
  }

  snapshot(): ServerState {
    return copyServerState(this.state);
  }

  /** Puts the server back to a snapshot of this run (a phase that must not be committed). */
  restore(snap: ServerState): void {
    const st = this.state;
    st.thetaBar.set(snap.thetaBar);
    snap.vectors.forEach((v, k) => st.vectors[k]!.set(v));
    st.reports = snap.reports.map((r) => (r ? r.slice() : null));
    st.rng.set(snap.rng);
    st.trajectories = snap.trajectories;
    st.vectors_sent = snap.vectors_sent;
    st.messages = [...snap.messages];
  }

  costs(): Costs {
    const t = this.state.trajectories;
    return { trajectories: t, steps: t * this.settings.horizon, bytes: 8 * this.state.thetaBar.length * this.state.vectors_sent };
  }
}
