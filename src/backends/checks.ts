import type { Environment, LocalRoundArgs, WarmStart } from './types.js';

/**
 * Boundary checks shared by every backend's facade: a wrong length or a non-finite theta becomes
 * a RangeError with a message here, before any kernel could read or write out of bounds.
 */

function checkLength(what: string, arr: { length: number }, want: number): void {
  if (arr.length !== want) throw new RangeError(`${what} has length ${arr.length}, expected ${want}`);
}

export function checkTheta(env: Environment, theta: Float64Array): void {
  checkFinite('theta', env, theta);
}

/** A warm start of evaluate() for nV = n*S values and nOcc = S occupancies: Float64Arrays of those lengths, finite. */
export function checkWarm(warm: WarmStart, nV: number, nOcc: number): void {
  if (!(warm.V instanceof Float64Array)) throw new TypeError('warm.V must be a Float64Array');
  if (!(warm.occupancy instanceof Float64Array)) throw new TypeError('warm.occupancy must be a Float64Array');
  checkLength('warm.V', warm.V, nV);
  checkLength('warm.occupancy', warm.occupancy, nOcc);
  for (let j = 0; j < nV; j++) if (!Number.isFinite(warm.V[j]!)) throw new RangeError(`warm.V[${j}] is ${warm.V[j]}, not a finite number`);
  for (let j = 0; j < nOcc; j++)
    if (!Number.isFinite(warm.occupancy[j]!)) throw new RangeError(`warm.occupancy[${j}] is ${warm.occupancy[j]}, not a finite number`);
}

function checkPositiveInt(what: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 1 || v > 0x7fffffff) throw new RangeError(`${what} must be an integer in [1, 2^31-1], got ${v}`);
}

export function checkKernelArgs(
  env: Environment,
  theta: Float64Array,
  reward: Float64Array,
  horizon: number,
  batch: number,
  rng: Uint32Array,
  out: Float64Array,
): void {
  checkTheta(env, theta);
  const SA = env.states * env.actions;
  checkLength('reward', reward, SA);
  checkLength('gradient output', out, SA);
  checkPositiveInt('horizon', horizon);
  checkPositiveInt('batch', batch);
  if (!(rng instanceof Uint32Array) || rng.length !== 4) throw new TypeError('rng must be a Uint32Array of 4 words');
}

export function checkLocalRound(env: Environment, args: LocalRoundArgs): void {
  const SA = env.states * env.actions;
  checkTheta(env, args.theta);
  checkLength('reward', args.reward, SA);
  if (args.correction) checkLength('correction', args.correction, SA);
  if (!Number.isFinite(args.eta)) throw new RangeError(`eta must be finite, got ${args.eta}`);
  if (!Number.isSafeInteger(args.steps) || args.steps < 0) throw new RangeError(`steps must be a non-negative integer, got ${args.steps}`);
  if (args.gradient === 'sampled') {
    checkPositiveInt('horizon', args.horizon);
    checkPositiveInt('batch', args.batch);
    if (!(args.rng instanceof Uint32Array) || args.rng.length !== 4) throw new TypeError('rng must be a Uint32Array of 4 words');
  } else if (args.gradient !== 'exact') {
    throw new RangeError(`gradient must be 'exact' or 'sampled', got ${String(args.gradient)}`);
  }
  checkSvrpg(env, args);
  checkPull(env, args);
}

/** A local round's pull: sampled Eq. 5 only, a finite weight and a finite center of S*A entries. */
export function checkPull(env: Environment, args: LocalRoundArgs): void {
  const p = args.pull;
  if (!p) return;
  if (args.gradient !== 'sampled') throw new RangeError(`pull is sampled only, got gradient ${String(args.gradient)}`);
  if ((args.entropy ?? 0) !== 0) throw new RangeError(`pull cannot be combined with entropy, got ${args.entropy}`);
  if (args.svrpg) throw new RangeError('pull cannot be combined with svrpg');
  if (!Number.isFinite(p.weight)) throw new RangeError(`pull.weight must be finite, got ${p.weight}`);
  checkLength('pull.center', p.center, env.states * env.actions);
  for (let j = 0; j < p.center.length; j++) {
    if (!Number.isFinite(p.center[j]!)) throw new RangeError(`pull.center[${j}] must be finite, got ${p.center[j]}`);
  }
}

/** FedSVRPG-M's fields of a local round: sampled only, no correction and no entropy beside it. */
export function checkSvrpg(env: Environment, args: LocalRoundArgs): void {
  const sv = args.svrpg;
  if (!sv) return;
  const SA = env.states * env.actions;
  if (args.gradient !== 'sampled') throw new RangeError(`svrpg is sampled only, got gradient ${String(args.gradient)}`);
  if (args.correction) throw new RangeError('svrpg cannot be combined with a correction (pass correction: null)');
  if ((args.entropy ?? 0) !== 0) throw new RangeError(`svrpg cannot be combined with entropy, got entropy ${args.entropy}`);
  checkFinite('svrpg.thetaPrev', env, sv.thetaPrev);
  if (!(sv.u instanceof Float64Array)) throw new TypeError('svrpg.u must be a Float64Array');
  checkLength('svrpg.u', sv.u, SA);
  if (!Number.isFinite(sv.beta)) throw new RangeError(`svrpg.beta must be finite, got ${sv.beta}`);
  checkClip(sv.clip, 'svrpg.clip');
}

/** The importance-weight clip: 0 (none) or a finite C >= 1. */
export function checkClip(clip: number, what = 'clip'): void {
  if (!(clip === 0 || (Number.isFinite(clip) && clip >= 1))) throw new RangeError(`${what} must be 0 (no clipping) or a finite number >= 1, got ${clip}`);
}

/** estimateSvrpg's arguments: those of the estimator, thetaPrev (finite, [S*A]), the clip and the second output. */
export function checkSvrpgEstimate(
  env: Environment,
  theta: Float64Array,
  thetaPrev: Float64Array,
  reward: Float64Array,
  horizon: number,
  batch: number,
  clip: number,
  rng: Uint32Array,
  outCur: Float64Array,
  outPrevWeighted: Float64Array,
): void {
  checkKernelArgs(env, theta, reward, horizon, batch, rng, outCur);
  checkLength('gradient output (weighted)', outPrevWeighted, env.states * env.actions);
  checkFinite('thetaPrev', env, thetaPrev);
  checkClip(clip);
}

/**
 * An exact round's rewards, finite: checked before its first solve (a NaN reaching the sparse
 * solvers would end in each backend's own solver error; O(S*A) against a solve's cost).
 */
export function checkRewardValues(env: Environment, reward: Float64Array): void {
  checkFinite('reward', env, reward);
}

/**
 * The reward tables of an evaluation (evaluate, evaluateRegularized, truncated: n tables of S*A,
 * stacked), finite. A NaN or an infinity used to end in each backend's own way: NaN outputs, a
 * solver error of its own past 2048 states, or (native's sparse path) J = 0. The first non-finite
 * entry is named rewards[i][s][a]; types and lengths stay each backend's checks. One pass over
 * the tables, small beside the solves it guards.
 */
export function checkRewardTables(env: Environment, rewards: Float64Array): void {
  if (!(rewards instanceof Float64Array)) return;
  const e = nonFiniteEntry('rewards', env, rewards, true);
  if (e) throw e;
}

function checkFinite(what: string, env: Environment, x: Float64Array): void {
  if (!(x instanceof Float64Array)) throw new TypeError(`${what} must be a Float64Array`);
  checkLength(what, x, env.states * env.actions);
  const e = nonFiniteEntry(what, env, x);
  if (e) throw e;
}

/**
 * The error for x's first non-finite entry, named as what[s][a] (what[i][s][a] for x of stacked
 * tables of S*A), or null when x is finite.
 */
function nonFiniteEntry(what: string, env: Environment, x: Float64Array, tables = false): RangeError | null {
  for (let j = 0; j < x.length; j++) {
    if (!Number.isFinite(x[j]!)) {
      const A = env.actions, SA = env.states * A;
      const i = Math.floor(j / SA), r = j - i * SA, s = Math.floor(r / A);
      return new RangeError(`${what}${tables ? `[${i}]` : ''}[${s}][${r - s * A}] is ${x[j]}, not a finite number`);
    }
  }
  return null;
}

/**
 * A local round's overflow check (the same rule and message in native's checkRoundTheta and
 * wasm's THETA_OVERFLOW status): exact rounds check theta after every step, since the next step's
 * solve needs a finite theta; sampled rounds check once, at the end, since a non-finite entry never
 * becomes finite again (it is only ever added to) and the lazy rounds form theta densely only then.
 * `step` is the step just taken (1-based), or 0 for the end of a sampled round. Returns null when
 * theta is finite, else the error: a non-finite reward, correction or svrpg.u entry when there is
 * one (the inputs the boundary checks do not scan; looked for only here, on the error path), else
 * the overflow at theta's first non-finite entry.
 */
export function thetaOverflow(env: Environment, args: LocalRoundArgs, step: number): RangeError | null {
  const { theta, steps } = args;
  let j = 0;
  while (j < theta.length && Number.isFinite(theta[j]!)) j++;
  if (j === theta.length) return null;
  const input =
    nonFiniteEntry('reward', env, args.reward) ??
    (args.correction ? nonFiniteEntry('correction', env, args.correction) : null) ??
    (args.svrpg ? nonFiniteEntry('svrpg.u', env, args.svrpg.u) : null);
  if (input) return input;
  const s = Math.floor(j / env.actions);
  const when = step > 0 ? `after local step ${step} of ${steps}` : `at the end of a local round of ${steps} step${steps === 1 ? '' : 's'}`;
  return new RangeError(`theta[${s}][${j - s * env.actions}] is ${theta[j]} ${when} (the steps overflowed the float64 range: lower eta)`);
}

export function checkEntropy(tau: number): void {
  if (!Number.isFinite(tau) || tau < 0) throw new RangeError(`entropy weight tau must be a finite number >= 0, got ${tau}`);
}
