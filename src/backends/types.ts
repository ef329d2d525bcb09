/**
 * The backend seam. Every numeric kernel of the project sits behind these two interfaces, so the
 * js reference, the native addon and the WebAssembly module are interchangeable.
 *
 * The calls are coarse on purpose: one call runs a whole local round of H policy-gradient steps
 * for one agent, or evaluates every agent's reward table at once, so a native or wasm backend
 * crosses its boundary once per round and agent, never once per step.
 *
 * Conventions shared by every backend (and tested across them):
 * - All tables are row-major Float64Arrays: theta, Q, gradients [S*A] (index s*A + a), transitions
 *   [S*A*S] (index (s*A + a)*S + s'), a batch of n reward tables [n*S*A].
 * - Random streams are xoshiro128** states held in a Uint32Array of 4 words (see src/rng.ts). A
 *   kernel advances the state in place, so the caller owns the stream and can checkpoint it or
 *   move it to another thread. A uniform double is drawn from two outputs x, y as
 *   ((x >>> 5) * 2^26 + (y >>> 6)) * 2^-53; one draw picks the action, one the next state
 *   (alias method), one the initial state. With the same stream every backend samples the same
 *   trajectories, and (with src/math's exp and log and one summation order) the same bits.
 * - Inputs are validated by the caller (src/mdp) before an Environment is built; kernels still
 *   reject wrong array lengths and non-finite theta with an Error rather than read out of bounds.
 */

export type BackendName = 'js' | 'native' | 'wasm';
export type BackendChoice = BackendName | 'auto';
export type GradientMode = 'exact' | 'sampled';

/** Transitions as the kernels take them: dense [S*A*S] or compressed rows (CSR over the S*A rows). */
export type TransitionTable =
  | { kind: 'dense'; p: Float64Array }
  | {
      kind: 'sparse';
      /** S*A + 1 offsets into `next` and `prob`: row (s, a) is rowStart[s*A+a] .. rowStart[s*A+a+1]-1. */
      rowStart: Int32Array;
      next: Int32Array;
      prob: Float64Array;
    };

/** The environment shared by the agents that use it: everything of an MDP except the rewards. */
export interface EnvironmentSpec {
  states: number;
  actions: number;
  gamma: number;
  initial: Float64Array;
  transitions: TransitionTable;
}

/** Output buffers of {@link Environment.evaluate} for n reward tables. */
export interface Evaluation {
  /** J_i = rho^T V_i, [n]. */
  J: Float64Array;
  /** V_i, [n*S]. */
  V: Float64Array;
  /** Q_i, [n*S*A]. */
  Q: Float64Array;
  /** Exact policy gradient of J_i, [n*S*A]. */
  grad: Float64Array;
  /** Discounted occupancy d_rho (sums to 1), [S]; it does not depend on the reward. */
  occupancy: Float64Array;
}

/**
 * A warm start for {@link Environment.evaluate}: owned by the caller, read and written by the call.
 * On entry the initial guesses of the iterative solves that run past the dense limit (S > 2048);
 * on return this call's V and occupancy, ready for the next call (successive local steps and
 * rounds move theta a little, so their solutions are close). It is plain data, so a training loop
 * can checkpoint it and resume bit for bit. Warm and cold results agree to the solves' proven
 * relative error of 1e-12 (docs/ARCHITECTURE.md "Exact solvers"); all zeros is exactly the cold
 * start. At S <= 2048 the dense LU ignores the guesses (results stay bit-identical) and only
 * writes the solution back. An exact-gradient {@link Environment.localRound} uses the same rule
 * internally: step 0 cold, each later step warm from the previous one, nothing kept after the call.
 */
export interface WarmStart {
  /** [n*S]: V_i of the n reward tables, as in {@link Evaluation.V}. */
  V: Float64Array;
  /** [S]: the discounted occupancy d_rho, as in {@link Evaluation.occupancy}. */
  occupancy: Float64Array;
}

/** Output buffers of {@link Environment.truncated} for n reward tables. */
export interface TruncatedEvaluation {
  /** J_K per table, [n]. */
  JK: Float64Array;
  /** grad_K J per table, [n*S*A]: the expectation of the sampled estimator. */
  gradK: Float64Array;
}

export interface LocalRoundArgs {
  /** In: theta_bar, the round's starting point. Out: theta after the H steps (updated in place). */
  theta: Float64Array;
  /** This agent's reward table, [S*A]. */
  reward: Float64Array;
  /**
   * Added to every gradient of the round: g(theta_bar) - g_i(theta_bar) for Fast-FedPG (Eq. 6),
   * null for plain local ascent (FedAvg, centralised, local).
   */
  correction: Float64Array | null;
  eta: number;
  /** H, the number of local steps. */
  steps: number;
  gradient: GradientMode;
  /** K and M of the estimator; ignored with exact gradients. */
  horizon: number;
  batch: number;
  /** The agent's random stream, advanced in place; untouched with exact gradients. */
  rng: Uint32Array;
  /**
   * tau > 0: ascend the entropy-regularised objective J_tau instead (regfedpg, SPEC.md
   * "Baselines"). Only passed to environments that have {@link Environment.estimateRegularized}.
   */
  entropy?: number;
  /** FedSVRPG-M (SPEC.md): per local step ONE batch of M fresh trajectories of K steps under theta;
   *  gc = GPOMDP estimate at theta, gw = mean over the batch of w_m * GPOMDP_m at thetaPrev, where
   *  w_m = prod_{h<K} pi_thetaPrev(a_h|s_h) / pi_theta(a_h|s_h) clipped to [1/clip, clip] (clip 0: no clipping);
   *  d = beta*gc + (1-beta)*(u + gc - gw); theta += eta*d, computed as gc + (1-beta)*u - (1-beta)*gw in
   *  the lazy form and expression order of js Sampler.localRoundSvrpg (docs/ARCHITECTURE.md). Sampled only.
   *  `correction` must be null and `entropy` 0 (or absent) with it. See {@link Environment.estimateSvrpg}. */
  svrpg?: SvrpgArgs | null;
  /**
   * A pull towards `center` (FedProx's MU, Ditto's LAMBDA as `weight`): every step is
   * theta += eta (g_hat(theta) + correction - weight (theta - center)), all H steps in one call, in
   * the lazy form (a scalar decay per row; see docs/ARCHITECTURE.md). Sampled Eq. 5 only: not with
   * exact gradients, entropy or `svrpg`.
   */
  pull?: { weight: number; center: Float64Array } | null;
}

/** The FedSVRPG-M fields of a local round ({@link LocalRoundArgs.svrpg}). */
export interface SvrpgArgs {
  /** The server's previous model theta_prev, [S*A]. */
  thetaPrev: Float64Array;
  /** The global direction u, [S*A]. */
  u: Float64Array;
  /** The momentum weight BETA (finite; SPEC.md: in (0, 1]). */
  beta: number;
  /** The importance-weight clip C: 0 (no clipping) or C >= 1 (w clipped to [1/C, C]). */
  clip: number;
}

export interface Environment {
  readonly states: number;
  readonly actions: number;
  /**
   * Exact V, Q, J, occupancy and gradient for n = rewards.length / (S*A) reward tables at theta;
   * `warm` (optional, in/out) starts the iterative solves from a previous solution. A non-finite
   * reward throws a RangeError naming rewards[i][s][a] (every evaluation here, the same on every
   * backend: src/backends/checks.ts checkRewardTables).
   */
  evaluate(theta: Float64Array, rewards: Float64Array, out: Evaluation, warm?: WarmStart): void;
  /** J_K and grad_K J (the K-step truncation) for n reward tables at theta. */
  truncated(theta: Float64Array, rewards: Float64Array, horizon: number, out: TruncatedEvaluation): void;
  /** J* of one reward table (the optimal value from rho); fills vOut [S] with V*. */
  optimal(reward: Float64Array, vOut: Float64Array): number;
  /** The Eq. 5 estimator: the mean of `batch` truncated REINFORCE estimates at theta, into out [S*A]. */
  estimateGradient(
    theta: Float64Array,
    reward: Float64Array,
    horizon: number,
    batch: number,
    rng: Uint32Array,
    out: Float64Array,
  ): void;
  /**
   * H steps theta <- theta + eta (g_hat(theta) + correction) (or FedSVRPG-M's step, `svrpg`), in one call.
   * A theta that overflows the float64 range throws a RangeError, the same on every backend
   * (src/backends/checks.ts thetaOverflow): exact rounds stop after the step that overflowed
   * (`theta[s][a] is Infinity after local step k of H (...: lower eta)`), sampled rounds check once at
   * their end (`... at the end of a local round of H steps ...`); a non-finite reward, correction or
   * svrpg.u entry is named instead (`correction[s][a] is NaN, not a finite number`); theta and rng then hold the round's
   * last iterate and stream (native's localRoundAsync writes nothing back on any failure).
   */
  localRound(args: LocalRoundArgs): void;
  /**
   * Entropy-regularised kernels (every backend has them). evaluateRegularized fills J with J_tau, V and Q with
   * V_tau and Q_tau, and grad with the exact gradient of J_tau; estimateRegularized is the GPOMDP
   * estimator g = sum_t gamma^t (r_t - tau log pi(a_t|s_t)) sum_{l<=t} grad log pi(a_l|s_l),
   * drawing from the stream exactly as estimateGradient does.
   */
  evaluateRegularized(theta: Float64Array, rewards: Float64Array, tau: number, out: Evaluation, warm?: WarmStart): void;
  estimateRegularized(
    theta: Float64Array,
    reward: Float64Array,
    tau: number,
    horizon: number,
    batch: number,
    rng: Uint32Array,
    out: Float64Array,
  ): void;
  /**
   * FedSVRPG-M's two estimates on ONE batch of `batch` trajectories of `horizon` steps sampled
   * under theta (the stream contract of estimateGradient): outCur [S*A] = the GPOMDP estimate at
   * theta, mean over the batch of sum_{h<K} (sum_{j=h}^{K-1} gamma^j r_j) grad log pi_theta(a_h|s_h);
   * outPrevWeighted [S*A] = the mean over the batch of w_m times the same sum with
   * grad log pi_thetaPrev, w_m = exp(sum_h log pi_thetaPrev(a_h|s_h) - log pi_theta(a_h|s_h))
   * (our own exp: the same bits on every backend), clipped to [1/clip, clip] when clip > 0.
   * Unclipped, E[outPrevWeighted] = grad_K J(thetaPrev).
   */
  estimateSvrpg(
    theta: Float64Array,
    thetaPrev: Float64Array,
    reward: Float64Array,
    horizon: number,
    batch: number,
    clip: number,
    rng: Uint32Array,
    outCur: Float64Array,
    outPrevWeighted: Float64Array,
  ): void;
  /** Frees what the backend holds for this environment (native or wasm memory). Idempotent. */
  dispose(): void;
}

export interface Backend {
  readonly name: BackendName;
  /** Uploads the shared tables once (and builds the alias tables for sampling). */
  createEnvironment(spec: EnvironmentSpec): Environment;
}
