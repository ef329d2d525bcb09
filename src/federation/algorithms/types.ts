import type { Environment, GradientMode } from '../../backends/types.js';
import type { AggregationRule } from '../aggregate.js';
import type { TrainSettings } from '../settings.js';

/**
 * The algorithm plug-in contract. An algorithm is ONE object (one file in this folder) that says
 * everything the runtimes need; the in-process loop (train.ts), the worker runtime
 * (workers/host.ts) and the network aggregator (src/network/aggregator.ts) drive it only through
 * this interface, so adding an algorithm touches its own file, the registry line and the docs.
 *
 * A round of a server-based algorithm, whatever the runtime:
 *   [before round 1, if `reports` is not 'none'] every agent calls `report` at theta_bar(0) and
 *     sends it; the server keeps each agent's last report and calls `serverReports`;
 *   1. the server draws the round's participants (--participation) and sends each theta_bar and
 *      the `down` vectors of its state;
 *   2. each participant runs `localRound` from theta_bar and sends Delta_i = theta_i - theta_bar;
 *   3. the server calls `serverStep` with the participants' deltas in agent order;
 *   4. [if `reports` is 'every-round'] the participants `report` at theta_bar(t+1); the server
 *      keeps them and calls `serverReports` with the last report of every agent that has one.
 * The runtime adds the field's cross-cutting options around these calls (hostile agents' attacks
 * on every message, Ditto's personal steps after the local round, differential privacy), so an
 * algorithm file holds only its own rule.
 *
 * State crosses runtimes as opaque Float64Arrays of S*A entries, named: the agent-side vectors
 * (`agentState`, e.g. Fast-FedPG's memory g_i) and the server-side ones (`serverState`, e.g.
 * FedAvgM's v); checkpoints, agent state files, the worker SharedArrayBuffer and the network
 * aggregator carry them without knowing what they are.
 */

/** What an agent's side of an algorithm works with. Private to the agent: never sent. */
export interface AgentSide {
  readonly id: number;
  readonly env: Environment;
  /** This agent's reward table [S*A]. */
  readonly reward: Float64Array;
  readonly settings: TrainSettings;
  /** The agent's random stream, advanced in place by every sampled estimate. */
  readonly rng: Uint32Array;
  /** One of the agent's kept vectors (declared in `agentState`): persists across rounds. */
  kept(name: string): Float64Array;
  /** A scratch vector [S*A] of this agent, by name (not kept). */
  scratch(name: string): Float64Array;
  /**
   * The agent's gradient estimate at theta into out: Eq. 5 (sampled), or the GPOMDP form with the
   * entropy bonus when settings.entropy > 0; with exact gradients grad J_i (or grad J_tau,i).
   */
  gradient(theta: Float64Array, out: Float64Array): void;
  /** `steps` steps theta += eta (estimate(theta) + correction), in one backend call. */
  ascend(theta: Float64Array, steps: number, correction: Float64Array | null): void;
}

/** What the server's side of an algorithm works with. */
export interface ServerSide {
  readonly settings: TrainSettings;
  /** Number of agents in the federation. */
  readonly agents: number;
  /** theta_bar, updated in place by serverStep. */
  readonly thetaBar: Float64Array;
  /** The aggregation rule (--aggregation); `mean` is Eq. 7. */
  readonly rule: AggregationRule;
  /** One of the server's kept vectors (declared in `serverState`). */
  vector(name: string): Float64Array;
  /** A scratch vector [S*A] by name. */
  scratch(name: string): Float64Array;
}

export type Topology = 'server' | 'local' | 'peers';

export interface AlgorithmPlugin {
  /** The registry name (`--algorithm NAME`). */
  readonly name: string;
  /** The update rule in one line (README table, --help). */
  readonly rule: string;
  /** Where the rule comes from. */
  readonly paper: string;
  /** Its own flags, as `--flag VALUE` (README table). */
  readonly flags: readonly string[];
  /** The file that defines it (import.meta.url): worker threads import it by this URL. */
  readonly module: string;
  /**
   * 'server': agents start each round from theta_bar and a server aggregates their deltas;
   * 'local': each agent keeps its own parameters and nothing is sent; 'peers': agents mix with
   * neighbours, no server (driven by `peers`).
   */
  readonly topology: Topology;
  /** The gradient modes it has; the first is its default when it is not 'sampled'. */
  readonly gradients: readonly GradientMode[];
  /** Its default gradient mode, whatever the global default (FedNPG: exact). */
  readonly defaultGradient?: GradientMode;
  /** The entropy bonus: forbidden, optional, or required (> 0). */
  readonly entropy: 'none' | 'optional' | 'required';
  /** Settings keys that belong to it (refused for every other algorithm). */
  readonly ownSettings: readonly (keyof TrainSettings)[];
  /** Extra checks of its settings (InputError with the field and the value). */
  validate?(s: TrainSettings): void;
  /** Local steps per round. */
  localSteps(s: TrainSettings): number;
  /** The server step size used with its rule. */
  serverStepSize(s: TrainSettings): number;
  /** Names of the vectors each agent keeps between rounds. */
  agentState(s: TrainSettings): readonly string[];
  /** Names of the vectors the server keeps besides theta_bar. */
  readonly serverState: readonly string[];
  /** Server vectors sent down with theta_bar in every local phase (a subset of serverState). */
  readonly down: readonly string[];
  /** Whether agents send a report (a gradient-type vector) before round 1, and after every server step. */
  readonly reports: 'none' | 'initial' | 'every-round';
  /** The agent-side vector that keeps the report as sent before any attack (Fast-FedPG: 'memory'). */
  readonly keepsReport?: string;
  /** Estimates (batches of M trajectories) one participant draws in one local round. */
  estimatesPerRound(s: TrainSettings): number;
  /**
   * Agent: the local round on theta in place. theta starts as `start` (theta_bar(t), or the
   * agent's own parameters for 'local'); `down` holds the server's `down` vectors in that order.
   */
  localRound(a: AgentSide, theta: Float64Array, start: Float64Array, down: readonly Float64Array[]): void;
  /** Agent: its report at theta into out. */
  report?(a: AgentSide, theta: Float64Array, out: Float64Array): void;
  /** Server: its vectors at the start of a run (they are zero otherwise). */
  initServer?(sv: ServerSide): void;
  /** Server: theta_bar (and its state) from the participants' deltas, in agent order. */
  serverStep?(sv: ServerSide, deltas: readonly Float64Array[]): void;
  /** Server: its state from the last report of every agent that has one (agent order). */
  serverReports?(sv: ServerSide, reports: readonly Float64Array[], initial: boolean): void;
  /** Decentralised algorithms: the whole round over every agent's state (see fednpg.ts). */
  readonly peers?: PeerRound;
}

/**
 * A decentralised round (topology 'peers'): every agent computes on its own data (`agentCompute`,
 * run by the agents' runtime, in parallel), then the mixing over the graph (`mix`, which in
 * simulation sees every agent's shared vectors, as the neighbours would receive them).
 */
export interface PeerRound {
  /** Vectors an agent shares with its neighbours each round (subset of agentState). */
  readonly shared: readonly string[];
  /** Start: the agent's state from theta0. */
  init(a: AgentSide, theta0: Float64Array): void;
  /** The agent's own computation after a mixing step (e.g. Q_tau at its new theta). */
  agentCompute(a: AgentSide): void;
  /** The mixing step: new shared vectors of every agent from the old ones, W the mixing matrix. */
  mix(s: TrainSettings, W: Float64Array, states: readonly Record<string, Float64Array>[]): void;
  /** The vector whose agent mean is reported as theta_bar. */
  readonly parameter: string;
  /** Vectors sent per neighbour per round (bytes). */
  readonly tablesPerNeighbour: number;
}
