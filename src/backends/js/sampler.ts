import type { EnvironmentSpec } from '../types.js';
import type { AliasTables } from './alias.js';
import { nextUint32 } from '../../rng.js';
import { detExp } from '../../math/exp.js';
import { detLog } from '../../math/log.js';

/**
 * The Eq. 5 estimator, g_hat = (sum_{t<K} gamma^t r_t) * (sum_{k<K} grad log pi(a_k|s_k)), as a
 * mean over M trajectories. The score sum is kept as visit counts: at state s it equals
 * c(s,a) - n(s) pi(a|s), where n(s) counts the visits to s and c(s,a) the times a was taken
 * there, so a trajectory costs O(K) draws plus O(A) per distinct state, and pi(.|s) is only
 * computed for the states a batch actually visits.
 *
 * The draw order is part of the cross-backend contract: per trajectory one draw for s_0, then per
 * step one for the action and, except after the last step, one for the next state.
 */
export class Sampler {
  private readonly S: number;
  private readonly A: number;
  private readonly gamma: number;
  private readonly pi: Float64Array;
  private readonly logPi: Float64Array;
  private readonly cum: Float64Array;
  private readonly lastPositive: Int32Array;
  private readonly piStamp: Int32Array;
  private readonly visitStamp: Int32Array;
  private readonly visits: Float64Array;
  private readonly counts: Float64Array;
  private readonly visited: Int32Array;
  private readonly acc: Float64Array;
  /** FedSVRPG-M: rows of pi_thetaPrev (and their logs), current when prevStamp[s] is prevGen. */
  private svrpg: { piPrev: Float64Array; logPiPrev: Float64Array; prevStamp: Int32Array; accPrev: Float64Array; prevGen: number } | null = null;
  private stamp = 0;
  private trajStamp = 0;
  /** One trajectory's states, (s, a) indices and discounted rewards (FedSVRPG-M), grown to the horizon. */
  private trajS: Int32Array | null = null;
  private trajA: Int32Array | null = null;
  private terms: Float64Array | null = null;

  constructor(
    spec: EnvironmentSpec,
    private readonly trans: AliasTables,
    private readonly init: AliasTables,
  ) {
    this.S = spec.states;
    this.A = spec.actions;
    this.gamma = spec.gamma;
    const SA = this.S * this.A;
    this.pi = new Float64Array(SA);
    this.logPi = new Float64Array(SA);
    this.cum = new Float64Array(SA);
    this.lastPositive = new Int32Array(this.S);
    this.piStamp = new Int32Array(this.S);
    this.visitStamp = new Int32Array(this.S);
    this.visits = new Float64Array(this.S);
    this.counts = new Float64Array(SA);
    this.visited = new Int32Array(this.S);
    this.acc = new Float64Array(SA);
  }

  /**
   * pi = softmax over the A actions of theta's row at `base`, max subtracted, into pi (and, with
   * logPi, log pi = theta - max - log z: exact even where pi underflows). exp and log are our own
   * (src/math) and z is summed in action order, as in the native and wasm samplers, so a row has
   * the same bits on every backend.
   */
  private softmaxRow(theta: Float64Array, base: number, pi: Float64Array, logPi: Float64Array | null): void {
    const A = this.A;
    let m = theta[base]!;
    for (let a = 1; a < A; a++) if (theta[base + a]! > m) m = theta[base + a]!;
    let z = 0;
    for (let a = 0; a < A; a++) {
      const e = detExp(theta[base + a]! - m);
      pi[base + a] = e;
      z += e;
    }
    if (logPi) {
      const logZ = detLog(z);
      for (let a = 0; a < A; a++) logPi[base + a] = theta[base + a]! - m - logZ;
    }
    for (let a = 0; a < A; a++) pi[base + a] = pi[base + a]! / z;
  }

  /**
   * pi(.|s) (softmaxRow), its running sum, and its last positive action. With `withLog`, also
   * log pi(.|s) (the GPOMDP estimators need it; Eq. 5 does not, and skips the log).
   */
  private policyRow(theta: Float64Array, s: number, withLog = false): void {
    const A = this.A;
    const base = s * A;
    this.softmaxRow(theta, base, this.pi, withLog ? this.logPi : null);
    let c = 0;
    let last = 0;
    for (let a = 0; a < A; a++) {
      const p = this.pi[base + a]!;
      c += p;
      this.cum[base + a] = c;
      if (p > 0) last = a;
    }
    this.lastPositive[s] = last;
    this.piStamp[s] = this.stamp;
  }

  /**
   * A new stamp for this call's policy rows (a row is current when its stamp is). Stamps wrap
   * after 2^31 calls: the arrays are reset rather than let an old stamp alias a new one.
   */
  private nextStamp(): number {
    if (this.stamp >= 0x7ffffff0) {
      this.stamp = 0;
      this.piStamp.fill(-1);
    }
    return ++this.stamp;
  }

  estimate(
    theta: Float64Array,
    reward: Float64Array,
    horizon: number,
    batch: number,
    rng: Uint32Array,
    out: Float64Array,
  ): void {
    const A = this.A;
    const gamma = this.gamma;
    const { pi, cum, lastPositive, piStamp, visitStamp, visits, counts, visited, acc } = this;
    const tStart = this.trans.start, tProb = this.trans.prob, tHi = this.trans.hi, tLo = this.trans.lo;
    const iN = this.init.start[1]!, iProb = this.init.prob, iHi = this.init.hi, iLo = this.init.lo;
    if (this.trajStamp > 0x7fffffff - batch - 1) {
      this.trajStamp = 0;
      visitStamp.fill(-1);
    }
    const stamp = this.nextStamp();
    acc.fill(0);
    // When a batch will visit most states anyway, compute every row now and drop the per-step check.
    const eager = this.S * this.A <= 2 * horizon * batch;
    if (eager) for (let s = 0; s < this.S; s++) this.policyRow(theta, s);
    // The generator lives in locals for the whole batch (V8 keeps them in registers).
    let s0 = rng[0]!, s1 = rng[1]!, s2 = rng[2]!, s3 = rng[3]!;
    for (let m = 0; m < batch; m++) {
      const traj = ++this.trajStamp;
      let nv = 0;
      let G = 0;
      let disc = 1;
      // s_0 ~ rho
      let r1: number, r2: number, mm: number, t: number;
      mm = Math.imul(s1, 5); r1 = Math.imul((mm << 7) | (mm >>> 25), 9) >>> 0;
      t = s1 << 9; s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = (s3 << 11) | (s3 >>> 21);
      mm = Math.imul(s1, 5); r2 = Math.imul((mm << 7) | (mm >>> 25), 9) >>> 0;
      t = s1 << 9; s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = (s3 << 11) | (s3 >>> 21);
      let x = ((r1 >>> 5) * 67108864 + (r2 >>> 6)) * 1.1102230246251565e-16 * iN;
      let k = x | 0;
      let s = x - k < iProb[k]! ? iHi[k]! : iLo[k]!;
      for (let step = 0; step < horizon; step++) {
        if (!eager && piStamp[s] !== stamp) this.policyRow(theta, s);
        const base = s * A;
        mm = Math.imul(s1, 5); r1 = Math.imul((mm << 7) | (mm >>> 25), 9) >>> 0;
        t = s1 << 9; s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = (s3 << 11) | (s3 >>> 21);
        mm = Math.imul(s1, 5); r2 = Math.imul((mm << 7) | (mm >>> 25), 9) >>> 0;
        t = s1 << 9; s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = (s3 << 11) | (s3 >>> 21);
        const u = ((r1 >>> 5) * 67108864 + (r2 >>> 6)) * 1.1102230246251565e-16;
        let a = 0;
        while (a < A && !(u < cum[base + a]!)) a++;
        if (a === A) a = lastPositive[s]!;
        const sa = base + a;
        G += disc * reward[sa]!;
        disc *= gamma;
        if (visitStamp[s] !== traj) {
          visitStamp[s] = traj;
          visited[nv++] = s;
          visits[s] = 0;
          for (let b = 0; b < A; b++) counts[base + b] = 0;
        }
        visits[s]! += 1;
        counts[sa]! += 1;
        if (step + 1 < horizon) {
          mm = Math.imul(s1, 5); r1 = Math.imul((mm << 7) | (mm >>> 25), 9) >>> 0;
          t = s1 << 9; s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = (s3 << 11) | (s3 >>> 21);
          mm = Math.imul(s1, 5); r2 = Math.imul((mm << 7) | (mm >>> 25), 9) >>> 0;
          t = s1 << 9; s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = (s3 << 11) | (s3 >>> 21);
          const st = tStart[sa]!;
          x = ((r1 >>> 5) * 67108864 + (r2 >>> 6)) * 1.1102230246251565e-16 * (tStart[sa + 1]! - st);
          k = x | 0;
          s = x - k < tProb[st + k]! ? tHi[st + k]! : tLo[st + k]!;
        }
      }
      for (let v = 0; v < nv; v++) {
        const vs = visited[v]!;
        const base = vs * A;
        const n = visits[vs]!;
        for (let b = 0; b < A; b++) acc[base + b]! += G * (counts[base + b]! - n * pi[base + b]!);
      }
    }
    rng[0] = s0; rng[1] = s1; rng[2] = s2; rng[3] = s3;
    for (let j = 0; j < acc.length; j++) out[j] = acc[j]! / batch;
  }

  /**
   * The entropy-regularised GPOMDP estimator (regfedpg): the same draws as {@link estimate}, with
   * g = sum_l grad log pi(a_l|s_l) * sum_{t>=l} gamma^t (r_t - tau log pi(a_t|s_t)), the reward-to-go
   * form of sum_t gamma^t (r_t - tau log pi_t) sum_{l<=t} grad log pi_l.
   */
  estimateRegularized(
    theta: Float64Array,
    reward: Float64Array,
    tau: number,
    horizon: number,
    batch: number,
    rng: Uint32Array,
    out: Float64Array,
  ): void {
    const A = this.A;
    const gamma = this.gamma;
    const { pi, logPi, acc } = this;
    const stamp = this.nextStamp();
    acc.fill(0);
    const states = new Int32Array(horizon);
    const actions = new Int32Array(horizon);
    const terms = new Float64Array(horizon);
    const tStart = this.trans.start, tProb = this.trans.prob, tHi = this.trans.hi, tLo = this.trans.lo;
    const iN = this.init.start[1]!, iProb = this.init.prob, iHi = this.init.hi, iLo = this.init.lo;
    const draw = (): number => {
      const x = nextUint32(rng) >>> 5;
      const y = nextUint32(rng) >>> 6;
      return (x * 67108864 + y) * 1.1102230246251565e-16;
    };
    for (let m = 0; m < batch; m++) {
      let x = draw() * iN;
      let k = x | 0;
      let s = x - k < iProb[k]! ? iHi[k]! : iLo[k]!;
      let disc = 1;
      for (let step = 0; step < horizon; step++) {
        if (this.piStamp[s] !== stamp) this.policyRow(theta, s, true);
        const base = s * A;
        const u = draw();
        let a = 0;
        while (a < A && !(u < this.cum[base + a]!)) a++;
        if (a === A) a = this.lastPositive[s]!;
        const sa = base + a;
        states[step] = s;
        actions[step] = a;
        terms[step] = disc * (reward[sa]! - tau * logPi[sa]!);
        disc *= gamma;
        if (step + 1 < horizon) {
          const st = tStart[sa]!;
          x = draw() * (tStart[sa + 1]! - st);
          k = x | 0;
          s = x - k < tProb[st + k]! ? tHi[st + k]! : tLo[st + k]!;
        }
      }
      let togo = 0;
      for (let l = horizon - 1; l >= 0; l--) {
        togo += terms[l]!;
        const base = states[l]! * A;
        const al = actions[l]!;
        for (let b = 0; b < A; b++) acc[base + b]! += togo * ((b === al ? 1 : 0) - pi[base + b]!);
      }
    }
    for (let j = 0; j < acc.length; j++) out[j] = acc[j]! / batch;
  }

  /**
   * FedSVRPG-M's estimates on one batch (Environment.estimateSvrpg), with the draws of estimate().
   * The native and wasm kernels do exactly these operations in this order:
   *  - forward, per step: the action from pi_theta; terms_h = gamma^h r_h (disc *= gamma);
   *    lw += log pi_prev(a_h|s_h) - log pi(a_h|s_h);
   *  - w = detExp(lw), clipped to [1/clip, clip] when clip > 0;
   *  - backward, l = K-1 .. 0: togo += terms_l; T(s_l) += togo; C(s_l, a_l) += togo;
   *  - per visited state s and action b: outCur += C - T pi(b|s); outPrev += w (C - T pi_prev(b|s))
   *    (= sum_l togo_l (e_{a_l} - pi(.|s_l)) over the visits of s: the GPOMDP sum, per state);
   *  - both divided by the batch.
   * Rows of pi_thetaPrev are kept between calls while `keepPrev` (thetaPrev unchanged: the steps of
   * one local round), so a round computes each of them once.
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
    outPrev: Float64Array,
    keepPrev = false,
  ): void {
    const A = this.A;
    const gamma = this.gamma;
    const SA = this.S * A;
    const sv = (this.svrpg ??= {
      piPrev: new Float64Array(SA),
      logPiPrev: new Float64Array(SA),
      prevStamp: new Int32Array(this.S).fill(-1),
      accPrev: new Float64Array(SA),
      prevGen: 0,
    });
    if (!keepPrev) {
      if (sv.prevGen >= 0x7ffffff0) {
        sv.prevGen = 0;
        sv.prevStamp.fill(-1);
      }
      sv.prevGen++;
    }
    const prevGen = sv.prevGen;
    const { pi, logPi, cum, lastPositive, piStamp, acc, visitStamp, visits, counts, visited } = this;
    const { piPrev, logPiPrev, prevStamp, accPrev } = sv;
    const stamp = this.nextStamp();
    if (this.trajStamp > 0x7fffffff - batch - 1) {
      this.trajStamp = 0;
      visitStamp.fill(-1);
    }
    acc.fill(0);
    accPrev.fill(0);
    if (this.trajS === null || this.trajS.length < horizon) {
      this.trajS = new Int32Array(horizon);
      this.trajA = new Int32Array(horizon);
      this.terms = new Float64Array(horizon);
    }
    const states = this.trajS, actions = this.trajA!, terms = this.terms!;
    const tStart = this.trans.start, tProb = this.trans.prob, tHi = this.trans.hi, tLo = this.trans.lo;
    const iN = this.init.start[1]!, iProb = this.init.prob, iHi = this.init.hi, iLo = this.init.lo;
    const lo = clip > 0 ? 1 / clip : 0;
    // The generator in locals for the whole batch, as in estimate() (the same draws as nextDouble).
    let s0 = rng[0]!, s1 = rng[1]!, s2 = rng[2]!, s3 = rng[3]!;
    let r1: number, r2: number, mm: number, t: number;
    for (let m = 0; m < batch; m++) {
      mm = Math.imul(s1, 5); r1 = Math.imul((mm << 7) | (mm >>> 25), 9) >>> 0;
      t = s1 << 9; s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = (s3 << 11) | (s3 >>> 21);
      mm = Math.imul(s1, 5); r2 = Math.imul((mm << 7) | (mm >>> 25), 9) >>> 0;
      t = s1 << 9; s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = (s3 << 11) | (s3 >>> 21);
      let x = ((r1 >>> 5) * 67108864 + (r2 >>> 6)) * 1.1102230246251565e-16 * iN;
      let k = x | 0;
      let s = x - k < iProb[k]! ? iHi[k]! : iLo[k]!;
      let disc = 1;
      let lw = 0;
      for (let step = 0; step < horizon; step++) {
        if (piStamp[s] !== stamp) this.policyRow(theta, s, true);
        if (prevStamp[s] !== prevGen) this.prevRow(thetaPrev, s, prevGen);
        const base = s * A;
        mm = Math.imul(s1, 5); r1 = Math.imul((mm << 7) | (mm >>> 25), 9) >>> 0;
        t = s1 << 9; s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = (s3 << 11) | (s3 >>> 21);
        mm = Math.imul(s1, 5); r2 = Math.imul((mm << 7) | (mm >>> 25), 9) >>> 0;
        t = s1 << 9; s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = (s3 << 11) | (s3 >>> 21);
        const u = ((r1 >>> 5) * 67108864 + (r2 >>> 6)) * 1.1102230246251565e-16;
        let a = 0;
        while (a < A && !(u < cum[base + a]!)) a++;
        if (a === A) a = lastPositive[s]!;
        const sa = base + a;
        states[step] = s;
        actions[step] = sa;
        terms[step] = disc * reward[sa]!;
        disc *= gamma;
        lw += logPiPrev[sa]! - logPi[sa]!;
        if (step + 1 < horizon) {
          const st = tStart[sa]!;
          mm = Math.imul(s1, 5); r1 = Math.imul((mm << 7) | (mm >>> 25), 9) >>> 0;
          t = s1 << 9; s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = (s3 << 11) | (s3 >>> 21);
          mm = Math.imul(s1, 5); r2 = Math.imul((mm << 7) | (mm >>> 25), 9) >>> 0;
          t = s1 << 9; s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = (s3 << 11) | (s3 >>> 21);
          x = ((r1 >>> 5) * 67108864 + (r2 >>> 6)) * 1.1102230246251565e-16 * (tStart[sa + 1]! - st);
          k = x | 0;
          s = x - k < tProb[st + k]! ? tHi[st + k]! : tLo[st + k]!;
        }
      }
      let w = detExp(lw);
      if (clip > 0) w = w > clip ? clip : w < lo ? lo : w;
      // T(s) in visits, C(s, a) in counts, both zeroed at a state's first visit of this trajectory.
      const traj = ++this.trajStamp;
      let nv = 0;
      let togo = 0;
      for (let l = horizon - 1; l >= 0; l--) {
        togo += terms[l]!;
        const sl = states[l]!;
        if (visitStamp[sl] !== traj) {
          visitStamp[sl] = traj;
          visited[nv++] = sl;
          visits[sl] = 0;
          counts.fill(0, sl * A, sl * A + A);
        }
        visits[sl]! += togo;
        counts[actions[l]!]! += togo;
      }
      for (let v = 0; v < nv; v++) {
        const vs = visited[v]!;
        const base = vs * A;
        const t = visits[vs]!;
        for (let b = 0; b < A; b++) {
          const c = counts[base + b]!;
          acc[base + b]! += c - t * pi[base + b]!;
          accPrev[base + b]! += w * (c - t * piPrev[base + b]!);
        }
      }
    }
    rng[0] = s0; rng[1] = s1; rng[2] = s2; rng[3] = s3;
    for (let j = 0; j < SA; j++) {
      outCur[j] = acc[j]! / batch;
      outPrev[j] = accPrev[j]! / batch;
    }
  }

  /** pi_thetaPrev(.|s) and its log (FedSVRPG-M's second policy), valid while prevGen is. */
  private prevRow(thetaPrev: Float64Array, s: number, gen: number): void {
    const sv = this.svrpg!;
    this.softmaxRow(thetaPrev, s * this.A, sv.piPrev, sv.logPiPrev);
    sv.prevStamp[s] = gen;
  }
}
