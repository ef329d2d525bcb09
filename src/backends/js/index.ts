import type { Backend, Environment, EnvironmentSpec, Evaluation, LocalRoundArgs, TruncatedEvaluation, WarmStart } from '../types.js';
import { checkEntropy, checkKernelArgs, checkLocalRound, checkRewardTables, checkRewardValues, checkSvrpgEstimate, checkTheta, thetaOverflow } from '../checks.js';
import { initialAlias, transitionAlias } from './alias.js';
import { DENSE_LIMIT, ExactSolver } from './exact.js';
import { Sampler } from './sampler.js';

/** The plain TypeScript backend: the reference the others are tested against, and the last fallback. */
class JsEnvironment implements Environment {
  readonly states: number;
  readonly actions: number;
  private readonly exact: ExactSolver;
  private sampler: Sampler | null = null;
  private readonly grad: Float64Array;
  private readonly one: Evaluation;

  constructor(private readonly spec: EnvironmentSpec) {
    this.states = spec.states;
    this.actions = spec.actions;
    this.exact = new ExactSolver(spec);
    const SA = spec.states * spec.actions;
    this.grad = new Float64Array(SA);
    this.one = {
      J: new Float64Array(1),
      V: new Float64Array(spec.states),
      Q: new Float64Array(SA),
      grad: this.grad,
      occupancy: new Float64Array(spec.states),
    };
  }

  /** Alias tables are built on the first sampled call: exact-only runs never pay for them. */
  private getSampler(): Sampler {
    this.sampler ??= new Sampler(this.spec, transitionAlias(this.spec), initialAlias(this.spec));
    return this.sampler;
  }

  evaluate(theta: Float64Array, rewards: Float64Array, out: Evaluation, warm?: WarmStart): void {
    checkTheta(this, theta);
    checkRewardTables(this, rewards);
    this.exact.evaluate(theta, rewards, out, 0, warm);
  }

  truncated(theta: Float64Array, rewards: Float64Array, horizon: number, out: TruncatedEvaluation): void {
    checkTheta(this, theta);
    checkRewardTables(this, rewards);
    this.exact.truncated(theta, rewards, horizon, out);
  }

  optimal(reward: Float64Array, vOut: Float64Array): number {
    checkRewardValues(this, reward);
    return this.exact.optimal(reward, vOut);
  }

  estimateGradient(theta: Float64Array, reward: Float64Array, horizon: number, batch: number, rng: Uint32Array, out: Float64Array): void {
    checkKernelArgs(this, theta, reward, horizon, batch, rng, out);
    this.getSampler().estimate(theta, reward, horizon, batch, rng, out);
  }

  evaluateRegularized(theta: Float64Array, rewards: Float64Array, tau: number, out: Evaluation, warm?: WarmStart): void {
    checkTheta(this, theta);
    checkEntropy(tau);
    checkRewardTables(this, rewards);
    this.exact.evaluate(theta, rewards, out, tau, warm);
  }

  estimateRegularized(theta: Float64Array, reward: Float64Array, tau: number, horizon: number, batch: number, rng: Uint32Array, out: Float64Array): void {
    checkKernelArgs(this, theta, reward, horizon, batch, rng, out);
    checkEntropy(tau);
    this.getSampler().estimateRegularized(theta, reward, tau, horizon, batch, rng, out);
  }

  estimateSvrpg(
    theta: Float64Array, thetaPrev: Float64Array, reward: Float64Array, horizon: number, batch: number, clip: number,
    rng: Uint32Array, outCur: Float64Array, outPrevWeighted: Float64Array,
  ): void {
    checkSvrpgEstimate(this, theta, thetaPrev, reward, horizon, batch, clip, rng, outCur, outPrevWeighted);
    this.getSampler().estimateSvrpg(theta, thetaPrev, reward, horizon, batch, clip, rng, outCur, outPrevWeighted);
  }

  localRound(args: LocalRoundArgs): void {
    checkLocalRound(this, args);
    const { theta, reward, correction, eta, steps } = args;
    const tau = args.entropy ?? 0;
    checkEntropy(tau);
    const g = this.grad;
    if (args.svrpg) {
      // FedSVRPG-M's steps in the lazy form (Sampler.localRoundSvrpg states the expression order).
      const { thetaPrev, u, beta, clip } = args.svrpg;
      if (!this.getSampler().localRoundSvrpg(theta, thetaPrev, u, beta, clip, reward, eta, steps, args.horizon, args.batch, args.rng)) {
        this.checkRoundEnd(args);
      }
      return;
    }
    const sampler = args.gradient === 'sampled' ? this.getSampler() : null;
    if (!sampler) checkRewardValues(this, reward);
    // Exact steps past the dense limit: step 0 solves cold, every later step starts from the
    // previous step's V and occupancy (this.one's, read and written in place; the same rule in
    // native's exactRound and wasm's localRound). Nothing outlives the call.
    const warm = !sampler && this.states > DENSE_LIMIT ? { V: this.one.V, occupancy: this.one.occupancy } : undefined;
    if (warm) {
      warm.V.fill(0);
      warm.occupancy.fill(0);
    }
    if (sampler && tau === 0) {
      // Eq. 5's steps in the lazy form (a step's cost does not grow with S*A; see Sampler.localRoundLazy).
      // The lazy rounds check theta in their final dense pass and return false when it overflowed.
      if (!sampler.localRoundLazy(theta, reward, correction, eta, steps, args.horizon, args.batch, args.rng, args.pull ?? null)) {
        this.checkRoundEnd(args);
      }
      return;
    }
    for (let h = 0; h < steps; h++) {
      if (sampler) {
        if (tau > 0) sampler.estimateRegularized(theta, reward, tau, args.horizon, args.batch, args.rng, g);
        else sampler.estimate(theta, reward, args.horizon, args.batch, args.rng, g);
      } else this.exact.evaluate(theta, reward, this.one, tau, warm);
      if (correction) for (let j = 0; j < theta.length; j++) theta[j] = theta[j]! + eta * (g[j]! + correction[j]!);
      else for (let j = 0; j < theta.length; j++) theta[j] = theta[j]! + eta * g[j]!;
      if (!sampler) {
        // The next solve needs a finite theta: an exact round stops at the step that overflowed.
        const e = thetaOverflow(this, args, h + 1);
        if (e) throw e;
      }
    }
    if (sampler) this.checkRoundEnd(args);
  }

  /** A sampled round's one overflow check, at its end (checks.ts thetaOverflow says why once is enough). */
  private checkRoundEnd(args: LocalRoundArgs): void {
    const e = thetaOverflow(this, args, 0);
    if (e) throw e;
  }

  dispose(): void {
    this.sampler = null;
  }
}

export const jsBackend: Backend = {
  name: 'js',
  createEnvironment: (spec) => new JsEnvironment(spec),
};
