/**
 * fast-fedpg's WebAssembly module: the kernels of the Backend interface (src/backends/types.ts)
 * over tables held in linear memory. The facade (src/backends/wasm/core.ts) uploads an
 * environment's shared tables once (envNew + the four table pointers + envFinish), then calls a
 * kernel per local round or evaluation with pointers to its own input/output blocks.
 */
import { Env, envNew as newEnv, envFinish as finishEnv, envFree as freeEnv } from './env';
import { ldf, stf } from './mem';
import { sampleBatch, estimate as estimateKernel, allFinite, svrpgBatch, svrpgLazyRound, lazyRound } from './sampler';
import {
  evaluate as evaluateKernel,
  exactGradient,
  oneGrad,
  truncated as truncatedKernel,
  optimal as optimalKernel,
  status,
  OK,
  NON_FINITE_THETA,
  THETA_OVERFLOW,
} from './exact';
import { luFactor as lu, packBytes as luPackBytes } from './lu';

export { status };

/** 1 when this module was built with SIMD. */
export const simd: i32 = ASC_FEATURE_SIMD ? 1 : 0;

export function alloc(bytes: usize): usize {
  return heap.alloc(bytes < 16 ? 16 : bytes);
}

export function free(ptr: usize): void {
  if (ptr) heap.free(ptr);
}

export function envNew(S: i32, A: i32, gamma: f64, nnz: i32): usize {
  return changetype<usize>(newEnv(S, A, gamma, nnz));
}
export function envInitial(e: usize): usize {
  return changetype<Env>(e).initial;
}
export function envRowStart(e: usize): usize {
  return changetype<Env>(e).rowStart;
}
export function envNext(e: usize): usize {
  return changetype<Env>(e).next;
}
export function envProb(e: usize): usize {
  return changetype<Env>(e).prob;
}
export function envFinish(e: usize): i32 {
  return finishEnv(changetype<Env>(e));
}
export function envFree(e: usize): void {
  freeEnv(changetype<Env>(e));
}

/**
 * The step (1-based) after which an exact round's theta overflowed, or 0 when a sampled round's
 * did (checked once, at its end): set with a THETA_OVERFLOW status, for the facade's message
 * (src/backends/checks.ts thetaOverflow states the rule).
 */
let overflowAt: i32 = 0;
export function overflowStep(): i32 {
  return overflowAt;
}

/** THETA_OVERFLOW (overflowAt = step) when theta holds a non-finite entry after `step`, else OK. */
function roundChecked(theta: usize, SA: i32, step: i32): i32 {
  return roundStatus(allFinite(theta, SA), step);
}

/** A round's status from its check: OK when finite, else THETA_OVERFLOW with overflowAt = step. */
function roundStatus(finite: bool, step: i32): i32 {
  if (finite) return OK;
  overflowAt = step;
  return THETA_OVERFLOW;
}

/** The estimator; returns the result's pointer ([S*A], valid until the next call), 0 for a non-finite theta. */
export function estimate(e: usize, theta: usize, reward: usize, horizon: i32, batch: i32, rng: usize, tau: f64, gpomdp: i32): usize {
  return estimateKernel(changetype<Env>(e), theta, reward, horizon, batch, rng, tau, gpomdp != 0);
}

/**
 * H steps theta <- theta + eta (g(theta) + correction) in place (correction = 0 means none);
 * sampled = 1 uses the estimator (stream at rng), 0 the exact gradient; tau > 0 ascends the
 * entropy-regularised objective. Returns a status code.
 */
export function localRound(
  ep: usize, theta: usize, reward: usize, correction: usize, eta: f64, steps: i32,
  sampled: i32, horizon: i32, batch: i32, rng: usize, tau: f64,
): i32 {
  const e = changetype<Env>(ep);
  const SA = e.SA;
  if (!allFinite(theta, SA)) return NON_FINITE_THETA;
  if (sampled && !(tau > 0)) {
    // Eq. 5's steps in the lazy form (a step's cost does not grow with S*A).
    return roundStatus(lazyRound(e, theta, reward, correction, eta, steps, horizon, batch, rng), 0);
  }
  for (let h = 0; h < steps; h++) {
    let g: usize;
    if (sampled) {
      g = sampleBatch(e, theta, reward, horizon, batch, rng, tau, tau > 0);
    } else {
      // Step 0 solves cold, every later one from the previous step's V and occupancy (within this call only).
      const st = exactGradient(e, theta, reward, tau, h > 0);
      if (st != OK) return st;
      g = oneGrad(e);
    }
    if (correction) {
      for (let j = 0; j < SA; j++) stf(theta, j, ldf(theta, j) + eta * (ldf(g, j) + ldf(correction, j)));
    } else {
      for (let j = 0; j < SA; j++) stf(theta, j, ldf(theta, j) + eta * ldf(g, j));
    }
    // The next solve needs a finite theta: an exact round stops at the step that overflowed.
    if (!sampled) {
      const st = roundChecked(theta, SA, h + 1);
      if (st != OK) return st;
    }
  }
  return sampled ? roundChecked(theta, SA, 0) : OK;
}

/**
 * A sampled (Eq. 5) local round with a pull towards center: theta += eta (g + c - weight (theta -
 * center)) per step, in the lazy pulled form (js Sampler.pullRound). Returns a status code.
 */
export function localRoundPull(
  ep: usize, theta: usize, reward: usize, correction: usize, eta: f64, steps: i32, horizon: i32, batch: i32, rng: usize,
  center: usize, weight: f64,
): i32 {
  const e = changetype<Env>(ep);
  if (!allFinite(theta, e.SA)) return NON_FINITE_THETA;
  return roundStatus(lazyRound(e, theta, reward, correction, eta, steps, horizon, batch, rng, center, weight), 0);
}

/**
 * FedSVRPG-M's two estimates on one batch into outCur and outPrev [S*A]; returns a status
 * (NON_FINITE_THETA when theta or thetaPrev holds a non-finite entry, nothing sampled then).
 */
export function estimateSvrpg(
  ep: usize, theta: usize, thetaPrev: usize, reward: usize, horizon: i32, batch: i32, clip: f64, rng: usize,
  outCur: usize, outPrev: usize,
): i32 {
  const e = changetype<Env>(ep);
  if (!allFinite(theta, e.SA) || !allFinite(thetaPrev, e.SA)) return NON_FINITE_THETA;
  svrpgBatch(e, theta, thetaPrev, reward, horizon, batch, clip, rng, false);
  memory.copy(outCur, e.svCur, (<usize>e.SA) << 3);
  memory.copy(outPrev, e.svPrev, (<usize>e.SA) << 3);
  return OK;
}

/**
 * FedSVRPG-M's local round in place (sampler.ts svrpgLazyRound: the lazy form of js
 * Sampler.localRoundSvrpg), one batch of the stream at rng per step. Returns a status code.
 */
export function localRoundSvrpg(
  ep: usize, theta: usize, reward: usize, thetaPrev: usize, u: usize, beta: f64, clip: f64, eta: f64, steps: i32,
  horizon: i32, batch: i32, rng: usize,
): i32 {
  const e = changetype<Env>(ep);
  if (!allFinite(theta, e.SA) || !allFinite(thetaPrev, e.SA)) return NON_FINITE_THETA;
  return roundStatus(svrpgLazyRound(e, theta, reward, thetaPrev, u, beta, clip, eta, steps, horizon, batch, rng), 0);
}

/** warm != 0: V and occ hold the caller's initial guesses for the sparse solves (S > DENSE_LIMIT). */
export function evaluate(e: usize, theta: usize, rewards: usize, n: i32, J: usize, V: usize, Q: usize, grad: usize, occ: usize, tau: f64, warm: i32): i32 {
  return evaluateKernel(changetype<Env>(e), theta, rewards, n, J, V, Q, grad, occ, tau, warm);
}

export function truncated(e: usize, theta: usize, rewards: usize, n: i32, horizon: i32, JK: usize, gradK: usize): i32 {
  return truncatedKernel(changetype<Env>(e), theta, rewards, n, horizon, JK, gradK);
}

export function optimal(e: usize, reward: usize, vOut: usize): f64 {
  return optimalKernel(changetype<Env>(e), reward, vOut);
}

/** The blocked LU alone (for benchmarks and tests): a is n x n row-major, piv n ints. */
export function luFactor(a: usize, piv: usize, n: i32, pack: usize): i32 {
  return lu(a, piv, n, pack);
}
export function packBytes(n: i32): i32 {
  return luPackBytes(n);
}


export { mapMath } from './detmath';
