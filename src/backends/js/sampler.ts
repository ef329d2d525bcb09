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
  private svrpg: {
    piPrev: Float64Array; logPiPrev: Float64Array; prevStamp: Int32Array; accPrev: Float64Array; prevGen: number;
    /** One finished row of each sum (svrpgRow), [A]. */
    cur: Float64Array; prev: Float64Array;
  } | null = null;
  private stamp = 0;
  private trajStamp = 0;
  /**
   * The lazy theta of a sampled local round (localRoundLazy): while set, row s of theta is
   * start[s] + lc*c[s] + D[s] (lc = l*eta at step l), formed when a policy row is needed.
   */
  private lazy: { start: Float64Array; c: Float64Array | null; lc: number; D: Float64Array; pull: LazyPull | null } | null = null;
  /** One lazily formed theta row, [A]. */
  private readonly rowBuf: Float64Array;
  /** The states whose policy row the current call formed (their acc rows are this call's). */
  private readonly formed: Int32Array;
  private nFormed = 0;
  /** The sum of sampleBatch's touch loads: stored, so the JIT keeps the loads. */
  private touchSink = 0;
  /** One trajectory's (s, a) indices and discounted rewards (FedSVRPG-M), grown to the horizon. */
  private trajS: Int32Array | null = null;
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
    this.rowBuf = new Float64Array(this.A);
    this.formed = new Int32Array(this.S);
  }

  /**
   * pi = softmax over the A actions of theta's row at `base`, max subtracted, into pi (and, with
   * logPi, log pi = theta - max - log z: exact even where pi underflows). exp and log are our own
   * (src/math) and z is summed in action order, as in the native and wasm samplers, so a row has
   * the same bits on every backend.
   */
  private softmaxRow(
    theta: Float64Array, src: number, base: number, pi: Float64Array, logPi: Float64Array | null,
  ): void {
    const A = this.A;
    let m = theta[src]!;
    for (let a = 1; a < A; a++) if (theta[src + a]! > m) m = theta[src + a]!;
    let z = 0;
    for (let a = 0; a < A; a++) {
      const e = detExp(theta[src + a]! - m);
      pi[base + a] = e;
      z += e;
    }
    if (logPi) {
      const logZ = detLog(z);
      for (let a = 0; a < A; a++) logPi[base + a] = theta[src + a]! - m - logZ;
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
    const lazy = this.lazy;
    if (lazy) {
      // Row s of the lazy theta, in the documented order: (start + lc*c) + D.
      const { start, c, lc, D, pull } = lazy;
      const row = this.rowBuf;
      if (pull) {
        // x = theta - center, brought from its step T[s] to this step l (pullRow), theta = center + x.
        pullRow(pull, start, c, D, s, base, A, pull.step);
        for (let a = 0; a < A; a++) row[a] = pull.center[base + a]! + D[base + a]!;
      } else if (c) for (let a = 0; a < A; a++) row[a] = start[base + a]! + lc * c[base + a]! + D[base + a]!;
      else for (let a = 0; a < A; a++) row[a] = start[base + a]! + D[base + a]!;
      this.softmaxRow(row, 0, base, this.pi, withLog ? this.logPi : null);
    } else {
      this.softmaxRow(theta, base, base, this.pi, withLog ? this.logPi : null);
    }
    // The row's accumulator starts at zero (only formed rows are ever accumulated into).
    this.acc.fill(0, base, base + A);
    this.formed[this.nFormed++] = s;
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
    this.nFormed = 0;
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
    this.sampleBatch(theta, reward, horizon, batch, rng);
    // acc holds the batch's sums on the formed rows; every other row of the estimate is 0.
    out.fill(0);
    const { A, acc, formed } = this;
    for (let q = 0; q < this.nFormed; q++) {
      const base = formed[q]! * A;
      for (let b = 0; b < A; b++) out[base + b] = acc[base + b]! / batch;
    }
  }

  /**
   * A sampled local round in the lazy form (the same form in the native and wasm kernels, so the
   * bits agree): within the call theta_l = start + l*eta*c + D, where D, sparse, sums the previous
   * steps' eta*g_hat on the rows they formed; a policy row is formed from that when a batch needs
   * it, and theta is written densely once, at l = H. Per step:
   *   row_l[j] = (start[j] + (l*eta)*c[j]) + D[j]        (start[j] + D[j] without a correction)
   *   then, on the rows formed at step l: D[j] = D[j] + eta*(acc[j]/M)
   * and at the end theta[j] = row_H[j]. A step costs O(K M + A * formed rows), not O(S A).
   */
  localRoundLazy(
    theta: Float64Array,
    reward: Float64Array,
    correction: Float64Array | null,
    eta: number,
    steps: number,
    horizon: number,
    batch: number,
    rng: Uint32Array,
    pullArgs: { weight: number; center: Float64Array } | null = null,
  ): boolean {
    const { A, acc, formed } = this;
    const D = (this.lazyD ??= new Float64Array(this.S * A));
    if (pullArgs) return this.pullRound(theta, reward, correction, eta, steps, horizon, batch, rng, pullArgs, D);
    try {
      for (let l = 0; l < steps; l++) {
        this.lazy = { start: theta, c: correction, lc: l * eta, D, pull: null };
        this.sampleBatch(theta, reward, horizon, batch, rng);
        for (let q = 0; q < this.nFormed; q++) {
          const base = formed[q]! * A;
          for (let b = 0; b < A; b++) D[base + b] = D[base + b]! + eta * (acc[base + b]! / batch);
        }
      }
    } finally {
      this.lazy = null;
    }
    // theta_H, densely, once; D is left all zero for the next round. The same pass checks theta
    // (x - x is 0 for finite x, NaN otherwise): a separate scan would cost a second pass.
    const hc = steps * eta;
    let finite = true;
    if (correction) {
      for (let j = 0; j < theta.length; j++) {
        const x = theta[j]! + hc * correction[j]! + D[j]!;
        theta[j] = x;
        D[j] = 0;
        finite = finite && x - x === 0;
      }
    } else {
      for (let j = 0; j < theta.length; j++) {
        const x = theta[j]! + D[j]!;
        theta[j] = x;
        D[j] = 0;
        finite = finite && x - x === 0;
      }
    }
    return finite;
  }

  /**
   * localRoundLazy with a pull towards `center` (FedProx, Ditto): theta += eta (g_hat + c -
   * weight (theta - center)). With q = 1 - eta*weight, x = theta - center obeys x <- q x + eta (g_hat
   * + c), so over n steps without samples x <- q^n x + (sum_{i<n} q^i) eta c: a row keeps x in D as of
   * the step T[s] it was last brought up to date (untouched rows: x = start - center at step 0),
   * and is brought to the current step only when a batch visits it:
   *   qp[n] = qp[n-1]*q, gs[n] = gs[n-1]*q + 1 (qp[0] = 1, gs[0] = 0), both by these recurrences;
   *   bring to l:  x = qp[l-T]*x + gs[l-T]*(eta*c)   (x = qp[l-T]*x without c); row = center + x;
   *   after the batch, on the formed rows: x = q*x + eta*(g + c) (q*x + eta*g), T = l + 1;
   *   at the end, every row brought to H, theta = center + x.
   */
  private pullRound(
    theta: Float64Array, reward: Float64Array, correction: Float64Array | null, eta: number, steps: number,
    horizon: number, batch: number, rng: Uint32Array, pullArgs: { weight: number; center: Float64Array }, D: Float64Array,
  ): boolean {
    const { A, S, acc, formed } = this;
    const q = 1 - eta * pullArgs.weight;
    const qp = new Float64Array(steps + 1), gs = new Float64Array(steps + 1);
    qp[0] = 1;
    for (let n = 1; n <= steps; n++) {
      qp[n] = qp[n - 1]! * q;
      gs[n] = gs[n - 1]! * q + 1;
    }
    const T = (this.pullT ??= new Int32Array(S).fill(-1));
    const pull: LazyPull = { center: pullArgs.center, q, eta, qp, gs, T, step: 0 };
    try {
      for (let l = 0; l < steps; l++) {
        pull.step = l;
        this.lazy = { start: theta, c: correction, lc: 0, D, pull };
        this.sampleBatch(theta, reward, horizon, batch, rng);
        for (let k = 0; k < this.nFormed; k++) {
          const s = formed[k]!;
          const base = s * A;
          if (correction) {
            for (let b = 0; b < A; b++) D[base + b] = q * D[base + b]! + eta * (acc[base + b]! / batch + correction[base + b]!);
          } else {
            for (let b = 0; b < A; b++) D[base + b] = q * D[base + b]! + eta * (acc[base + b]! / batch);
          }
          T[s] = l + 1;
        }
      }
    } finally {
      this.lazy = null;
    }
    const center = pullArgs.center;
    let finite = true;
    for (let s = 0; s < S; s++) {
      const base = s * A;
      pullRow(pull, theta, correction, D, s, base, A, steps);
      for (let b = 0; b < A; b++) {
        const x = center[base + b]! + D[base + b]!;
        theta[base + b] = x;
        D[base + b] = 0;
        finite = finite && x - x === 0;
      }
      T[s] = -1;
    }
    return finite;
  }

  /** The pulled round's last step per state (-1: untouched this round), [S]. */
  private pullT: Int32Array | null = null;

  /** The lazy round's sparse sum of eta*g_hat, [S*A], all zero between rounds. */
  private lazyD: Float64Array | null = null;

  /**
   * Eq. 5's batch: leaves sum_m G_m (c - n pi) on the rows of the states it formed (this.formed;
   * it forms the row of every state it visits) in acc, which is stale elsewhere.
   */
  private sampleBatch(
    theta: Float64Array,
    reward: Float64Array,
    horizon: number,
    batch: number,
    rng: Uint32Array,
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
    // When a batch will visit most states anyway, compute every row now and drop the per-step check.
    // Not in a lazy round: there the formed rows must be exactly the visited ones (as in native).
    const eager = !this.lazy && this.S * this.A <= 2 * horizon * batch;
    if (eager) for (let s = 0; s < this.S; s++) this.policyRow(theta, s);
    // Tables past the caches (native's bigTables rule): each new state's rows miss the caches, a
    // dozen arrays, and the step's code reaches them one dependent load after another. A touch
    // of every line the step will use, as soon as the state is drawn, puts those misses in flight
    // together (the out-of-order core overlaps independent loads); the step then finds them cached.
    const touch = tProb.length * 16 + this.S * this.A * 32 > 1 << 20;
    const lz = this.lazy;
    const tc = lz && lz.c ? lz.c : theta, td = lz ? lz.D : theta;
    let sink = 0;
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
        if (touch) {
          // Rows may span two cache lines: their first and last entries.
          const b0 = s * A, b1 = b0 + A - 1;
          // The state's alias rows too (the next draw reads one of them): their first and last entries.
          const e0 = tStart[b0]!, e1 = tStart[b0 + A]! - 1;
          sink += piStamp[s]! + lastPositive[s]! + visitStamp[s]! + visits[s]!
            + cum[b0]! + cum[b1]! + pi[b0]! + pi[b1]! + acc[b0]! + acc[b1]! + counts[b0]! + counts[b1]!
            + reward[b0]! + reward[b1]! + theta[b0]! + theta[b1]! + tc[b0]! + tc[b1]! + td[b0]! + td[b1]!
            + tProb[e0]! + tProb[e1]! + tHi[e0]! + tHi[e1]! + tLo[e0]! + tLo[e1]!;
        }
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
    this.touchSink = sink;
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
   * FedSVRPG-M's estimates on one batch (Environment.estimateSvrpg): svrpgBatch's sums, finished
   * (svrpgRow) and times invM = 1/M (a product: a division per entry cost a tenth of the kernel at
   * S = 1000) on the rows it formed; every other row of both is 0.
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
  ): void {
    this.newPrevRows();
    this.svrpgBatch(theta, thetaPrev, reward, horizon, batch, clip, rng);
    const { A, formed } = this;
    const sv = this.svrpg!;
    const invM = 1 / batch;
    outCur.fill(0);
    outPrev.fill(0);
    for (let q = 0; q < this.nFormed; q++) {
      const base = formed[q]! * A;
      this.svrpgRow(base);
      for (let b = 0; b < A; b++) {
        outCur[base + b] = sv.cur[b]! * invM;
        outPrev[base + b] = sv.prev[b]! * invM;
      }
    }
  }

  /**
   * FedSVRPG-M's local round (LocalRoundArgs.svrpg) in the lazy form of localRoundLazy, with the
   * same bits in the native and wasm kernels. SPEC.md's step d = beta gc + (1 - beta)(u + gc - gw)
   * is gc + (1 - beta) u - (1 - beta) gw: u is constant within the call and gc, gw are zero off the
   * rows a batch visits, so with omb = 1 - beta and c[j] = omb*u[j] (once per call):
   *   row_l[j] = (start[j] + (l*eta)*c[j]) + D[j]                      formed per visited state
   *   then, on the rows formed at step l: D[j] = D[j] + eta*(cur[j]*invM - omb*(prev[j]*invM))
   *   theta[j] = (start[j] + (H*eta)*c[j]) + D[j] at the end, densely, once (D zeroed),
   * where invM = 1/M and cur, prev are the batch's sums as svrpgRow finishes them (estimateSvrpg
   * returns cur*invM and prev*invM). Rows of pi_thetaPrev are formed when a batch first visits their state and
   * kept for the call.
   */
  localRoundSvrpg(
    theta: Float64Array, thetaPrev: Float64Array, u: Float64Array, beta: number, clip: number, reward: Float64Array,
    eta: number, steps: number, horizon: number, batch: number, rng: Uint32Array,
  ): boolean {
    const { A, formed } = this;
    const SA = this.S * A;
    const D = (this.lazyD ??= new Float64Array(SA));
    const c = (this.svrpgC ??= new Float64Array(SA));
    const omb = 1 - beta;
    const invM = 1 / batch;
    for (let j = 0; j < SA; j++) c[j] = omb * u[j]!;
    this.newPrevRows();
    const { cur, prev } = this.svrpg!;
    try {
      for (let l = 0; l < steps; l++) {
        this.lazy = { start: theta, c, lc: l * eta, D, pull: null };
        this.svrpgBatch(theta, thetaPrev, reward, horizon, batch, clip, rng);
        for (let q = 0; q < this.nFormed; q++) {
          const base = formed[q]! * A;
          this.svrpgRow(base);
          for (let b = 0; b < A; b++) D[base + b] = D[base + b]! + eta * (cur[b]! * invM - omb * (prev[b]! * invM));
        }
      }
    } finally {
      this.lazy = null;
    }
    const hc = steps * eta;
    let finite = true; // checked in the final pass, as localRoundLazy
    for (let j = 0; j < SA; j++) {
      const x = theta[j]! + hc * c[j]! + D[j]!;
      theta[j] = x;
      D[j] = 0;
      finite = finite && x - x === 0;
    }
    return finite;
  }

  /** FedSVRPG-M's c = (1 - beta) u of the current lazy round, [S*A]. */
  private svrpgC: Float64Array | null = null;

  /** A new generation of pi_thetaPrev rows (thetaPrev may have changed since the last call). */
  private newPrevRows(): void {
    const SA = this.S * this.A;
    const sv = (this.svrpg ??= {
      piPrev: new Float64Array(SA),
      logPiPrev: new Float64Array(SA),
      prevStamp: new Int32Array(this.S).fill(-1),
      accPrev: new Float64Array(SA),
      prevGen: 0,
      cur: new Float64Array(this.A),
      prev: new Float64Array(this.A),
    });
    if (sv.prevGen >= 0x7ffffff0) {
      sv.prevGen = 0;
      sv.prevStamp.fill(-1);
    }
    sv.prevGen++;
  }

  /**
   * FedSVRPG-M's batch, with the draws of estimate(): leaves C = sum_m sum_h togo_h e_{s_h a_h} in acc
   * and W = sum_m w_m sum_h togo_h e_{s_h a_h} in svrpg.accPrev on the rows it formed (this.formed:
   * the visited states; both rows zeroed when formed, stale elsewhere). pi_theta and pi_thetaPrev are
   * fixed within the batch, so the GPOMDP sums sum_m sum_h togo_h (e_{a_h} - pi(.|s_h)) are
   * C - (sum_b C) pi per row, finished by svrpgRow. The native and wasm kernels do exactly these
   * operations in this order, per trajectory:
   *  - forward, per step: the action from pi_theta; terms_h = gamma^h r_h (disc *= gamma);
   *    lw += log pi_prev(a_h|s_h) - log pi(a_h|s_h);
   *  - w = detExp(lw), clipped to [1/clip, clip] when clip > 0;
   *  - backward, h = K-1 .. 0: togo += terms_h; C(s_h, a_h) += togo; W(s_h, a_h) += w*togo.
   * Rows of pi_thetaPrev are current while their stamp is svrpg.prevGen (newPrevRows starts a new one).
   */
  private svrpgBatch(
    theta: Float64Array,
    thetaPrev: Float64Array,
    reward: Float64Array,
    horizon: number,
    batch: number,
    clip: number,
    rng: Uint32Array,
  ): void {
    const A = this.A;
    const gamma = this.gamma;
    const sv = this.svrpg!;
    const prevGen = sv.prevGen;
    const { logPi, cum, lastPositive, piStamp, acc } = this;
    const { logPiPrev, prevStamp, accPrev } = sv;
    const stamp = this.nextStamp();
    if (this.trajS === null || this.trajS.length < horizon) {
      this.trajS = new Int32Array(horizon);
      this.terms = new Float64Array(horizon);
    }
    const actions = this.trajS, terms = this.terms!;
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
        if (piStamp[s] !== stamp) {
          // policyRow zeroes the row's acc; the weighted sum's row starts at zero with it.
          this.policyRow(theta, s, true);
          accPrev.fill(0, s * A, s * A + A);
          if (prevStamp[s] !== prevGen) this.prevRow(thetaPrev, s, prevGen);
        }
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
      let togo = 0;
      for (let h = horizon - 1; h >= 0; h--) {
        togo += terms[h]!;
        const sa = actions[h]!;
        acc[sa]! += togo;
        accPrev[sa]! += w * togo;
      }
    }
    rng[0] = s0; rng[1] = s1; rng[2] = s2; rng[3] = s3;
  }

  /**
   * Finishes one formed row (at base) of svrpgBatch's sums into svrpg.cur and svrpg.prev [A], in
   * action order: T = sum_b C(b), V = sum_b W(b); cur(b) = C(b) - T*pi(b); prev(b) = W(b) - V*pi_prev(b).
   */
  private svrpgRow(base: number): void {
    const { A, acc, pi } = this;
    const { accPrev, piPrev, cur, prev } = this.svrpg!;
    let T = 0, V = 0;
    for (let b = 0; b < A; b++) {
      T += acc[base + b]!;
      V += accPrev[base + b]!;
    }
    for (let b = 0; b < A; b++) {
      cur[b] = acc[base + b]! - T * pi[base + b]!;
      prev[b] = accPrev[base + b]! - V * piPrev[base + b]!;
    }
  }

  /** pi_thetaPrev(.|s) and its log (FedSVRPG-M's second policy), valid while prevGen is. */
  private prevRow(thetaPrev: Float64Array, s: number, gen: number): void {
    const sv = this.svrpg!;
    this.softmaxRow(thetaPrev, s * this.A, s * this.A, sv.piPrev, sv.logPiPrev);
    sv.prevStamp[s] = gen;
  }
}

/** A pulled lazy round's constants and per-state steps (Sampler.pullRound). */
interface LazyPull {
  center: Float64Array;
  q: number;
  eta: number;
  qp: Float64Array;
  gs: Float64Array;
  T: Int32Array;
  step: number;
}

/** Brings row s's x = theta - center (in D) from its step T[s] to step l (Sampler.pullRound). */
function pullRow(p: LazyPull, start: Float64Array, c: Float64Array | null, D: Float64Array, s: number, base: number, A: number, l: number): void {
  if (p.T[s]! < 0) {
    for (let a = 0; a < A; a++) D[base + a] = start[base + a]! - p.center[base + a]!;
    p.T[s] = 0;
  }
  const n = l - p.T[s]!;
  const qn = p.qp[n]!, gn = p.gs[n]!;
  if (c) for (let a = 0; a < A; a++) D[base + a] = qn * D[base + a]! + gn * (p.eta * c[base + a]!);
  else for (let a = 0; a < A; a++) D[base + a] = qn * D[base + a]!;
  p.T[s] = l;
}
