import type { EnvironmentSpec, Evaluation, TruncatedEvaluation, WarmStart } from '../types.js';
import { SPARSE_TOLERANCE, SparseSolver } from './sparse.js';
import { checkWarm } from '../checks.js';

/**
 * Exact quantities by linear solves: (I - gamma P_theta) V = r_theta for every reward table and
 * the transposed system for the occupancy measure share one LU factorisation (partial pivoting).
 * Past DENSE_LIMIT states a dense factorisation no longer fits comfortably: one ILU(0) of the
 * sparse I - gamma P_theta then preconditions BiCGSTAB solves whose stopping rule proves a relative
 * error of 1e-12 (sparse.ts), optionally warm-started from the caller's previous solution.
 */
export const DENSE_LIMIT = 2048;

/** Full softmax policy into pi [S*A] (max subtracted, then normalised). */
export function softmaxPolicy(theta: Float64Array, S: number, A: number, pi: Float64Array): void {
  for (let s = 0; s < S; s++) {
    const base = s * A;
    let m = theta[base]!;
    for (let a = 1; a < A; a++) if (theta[base + a]! > m) m = theta[base + a]!;
    let z = 0;
    for (let a = 0; a < A; a++) {
      const e = Math.exp(theta[base + a]! - m);
      pi[base + a] = e;
      z += e;
    }
    for (let a = 0; a < A; a++) pi[base + a] = pi[base + a]! / z;
  }
}

/** log pi(a|s) computed from theta directly (exact even where pi underflows). */
export function logSoftmax(theta: Float64Array, S: number, A: number): Float64Array {
  const out = new Float64Array(S * A);
  for (let s = 0; s < S; s++) {
    const base = s * A;
    let m = theta[base]!;
    for (let a = 1; a < A; a++) if (theta[base + a]! > m) m = theta[base + a]!;
    let z = 0;
    for (let a = 0; a < A; a++) z += Math.exp(theta[base + a]! - m);
    const logZ = Math.log(z);
    for (let a = 0; a < A; a++) out[base + a] = theta[base + a]! - m - logZ;
  }
  return out;
}

/** In-place LU with partial pivoting of a dense row-major n x n matrix: P M = L U. */
export class DenseLU {
  readonly piv: Int32Array;
  constructor(
    readonly n: number,
    readonly a: Float64Array,
  ) {
    this.piv = new Int32Array(n);
  }

  factor(): void {
    const { n, a, piv } = this;
    for (let k = 0; k < n; k++) {
      let p = k;
      let best = Math.abs(a[k * n + k]!);
      for (let i = k + 1; i < n; i++) {
        const v = Math.abs(a[i * n + k]!);
        if (v > best) {
          best = v;
          p = i;
        }
      }
      piv[k] = p;
      if (p !== k) {
        for (let j = 0; j < n; j++) {
          const tmp = a[k * n + j]!;
          a[k * n + j] = a[p * n + j]!;
          a[p * n + j] = tmp;
        }
      }
      const d = a[k * n + k]!;
      if (d === 0) throw new Error('singular matrix in LU factorisation');
      for (let i = k + 1; i < n; i++) {
        const row = i * n;
        const l = a[row + k]! / d;
        a[row + k] = l;
        if (l !== 0) {
          const krow = k * n;
          for (let j = k + 1; j < n; j++) a[row + j] = a[row + j]! - l * a[krow + j]!;
        }
      }
    }
  }

  /** Solves M x = b in place. */
  solve(b: Float64Array): void {
    const { n, a, piv } = this;
    for (let k = 0; k < n; k++) {
      const p = piv[k]!;
      if (p !== k) {
        const t = b[k]!;
        b[k] = b[p]!;
        b[p] = t;
      }
    }
    for (let i = 0; i < n; i++) {
      let sum = b[i]!;
      const row = i * n;
      for (let j = 0; j < i; j++) sum -= a[row + j]! * b[j]!;
      b[i] = sum;
    }
    for (let i = n - 1; i >= 0; i--) {
      let sum = b[i]!;
      const row = i * n;
      for (let j = i + 1; j < n; j++) sum -= a[row + j]! * b[j]!;
      b[i] = sum / a[row + i]!;
    }
  }

  /** Solves M^T x = b in place (M = P^T L U, so M^T = U^T L^T P). */
  solveTransposed(b: Float64Array): void {
    const { n, a, piv } = this;
    for (let i = 0; i < n; i++) {
      let sum = b[i]!;
      for (let j = 0; j < i; j++) sum -= a[j * n + i]! * b[j]!;
      b[i] = sum / a[i * n + i]!;
    }
    for (let i = n - 1; i >= 0; i--) {
      let sum = b[i]!;
      for (let j = i + 1; j < n; j++) sum -= a[j * n + i]! * b[j]!;
      b[i] = sum;
    }
    for (let k = n - 1; k >= 0; k--) {
      const p = piv[k]!;
      if (p !== k) {
        const t = b[k]!;
        b[k] = b[p]!;
        b[p] = t;
      }
    }
  }
}

/** Sparse rows of a policy's state-to-state kernel, for the iterative path. */
interface SparseKernel {
  start: Int32Array;
  col: Int32Array;
  val: Float64Array;
}

/** The unit roundoff 2^-53 (the certified bounds' rounding terms). */
const UNIT = 1.1102230246251565e-16;
/** Gauss-Seidel value-iteration sweeps that choose the sparse J*'s first policy. */
const INITIAL_SWEEPS = 4;

export class ExactSolver {
  private readonly S: number;
  private readonly A: number;
  private readonly gamma: number;
  private readonly dense: boolean;
  private readonly pi: Float64Array;
  private readonly mat: Float64Array;
  private readonly lu: DenseLU | null;
  private readonly work: Float64Array;
  private readonly sparse = new SparseSolver();

  constructor(private readonly spec: EnvironmentSpec) {
    this.S = spec.states;
    this.A = spec.actions;
    this.gamma = spec.gamma;
    this.dense = this.S <= DENSE_LIMIT;
    this.pi = new Float64Array(this.S * this.A);
    this.mat = new Float64Array(this.dense ? this.S * this.S : 0);
    this.lu = this.dense ? new DenseLU(this.S, this.mat) : null;
    this.work = new Float64Array(this.S);
  }

  /** Calls f(next, p) for every non-zero P(next | s, a). */
  private forEachNext(s: number, a: number, f: (next: number, p: number) => void): void {
    const tr = this.spec.transitions;
    const row = s * this.A + a;
    if (tr.kind === 'dense') {
      const S = this.S;
      const off = row * S;
      for (let j = 0; j < S; j++) {
        const p = tr.p[off + j]!;
        if (p !== 0) f(j, p);
      }
    } else {
      for (let k = tr.rowStart[row]!; k < tr.rowStart[row + 1]!; k++) f(tr.next[k]!, tr.prob[k]!);
    }
  }

  /** (P v)(s,a) = sum_s' P(s'|s,a) v(s'). */
  private expectNext(s: number, a: number, v: Float64Array): number {
    const tr = this.spec.transitions;
    const row = s * this.A + a;
    let sum = 0;
    if (tr.kind === 'dense') {
      const S = this.S;
      const off = row * S;
      for (let j = 0; j < S; j++) sum += tr.p[off + j]! * v[j]!;
    } else {
      for (let k = tr.rowStart[row]!; k < tr.rowStart[row + 1]!; k++) sum += tr.prob[k]! * v[tr.next[k]!]!;
    }
    return sum;
  }

  /** Rows of P_policy for a stochastic policy table [S*A]. */
  private kernelRows(policy: Float64Array): SparseKernel {
    const S = this.S, A = this.A;
    const start = new Int32Array(S + 1);
    const cols: number[] = [];
    const vals: number[] = [];
    const acc = new Map<number, number>();
    for (let s = 0; s < S; s++) {
      acc.clear();
      for (let a = 0; a < A; a++) {
        const w = policy[s * A + a]!;
        if (w === 0) continue;
        this.forEachNext(s, a, (j, p) => acc.set(j, (acc.get(j) ?? 0) + w * p));
      }
      const keys = [...acc.keys()].sort((x, y) => x - y);
      for (const j of keys) {
        cols.push(j);
        vals.push(acc.get(j)!);
      }
      start[s + 1] = cols.length;
    }
    return { start, col: Int32Array.from(cols), val: Float64Array.from(vals) };
  }

  /** Factors I - gamma P_policy (dense path) or returns its sparse rows and prepares their ILU(0). */
  private prepare(policy: Float64Array): SparseKernel | null {
    if (!this.dense) {
      const k = this.kernelRows(policy);
      this.sparse.prepare(this.S, k.start, k.col, k.val, this.gamma);
      return k;
    }
    const S = this.S, A = this.A, g = this.gamma;
    const m = this.mat;
    m.fill(0);
    for (let s = 0; s < S; s++) {
      const row = s * S;
      for (let a = 0; a < A; a++) {
        const w = policy[s * A + a]!;
        if (w === 0) continue;
        this.forEachNext(s, a, (j, p) => {
          m[row + j] = m[row + j]! + w * p;
        });
      }
      for (let j = 0; j < S; j++) m[row + j] = -g * m[row + j]!;
      m[row + s] = m[row + s]! + 1;
    }
    this.lu!.factor();
    return null;
  }

  /**
   * Exact V, Q, J and gradient for n reward tables; with tau > 0 those of the entropy-regularised
   * objective: V_tau = (I - gamma P)^{-1} (r_theta + tau H_theta), Q_tau = R + gamma P V_tau,
   * grad = d pi (Q_tau - tau log pi - V_tau) / (1 - gamma).
   */
  evaluate(theta: Float64Array, rewards: Float64Array, out: Evaluation, tau = 0, warm?: WarmStart): void {
    const S = this.S, A = this.A, g = this.gamma, SA = S * A;
    const n = rewards.length / SA;
    if (warm) checkWarm(warm, n * S, S);
    const pi = this.pi;
    softmaxPolicy(theta, S, A, pi);
    const logPi = tau > 0 ? logSoftmax(theta, S, A) : null;
    const kernel = this.prepare(pi);
    const d = out.occupancy;
    if (!kernel) {
      d.set(this.spec.initial);
      this.lu!.solveTransposed(d);
    } else {
      // The unnormalised occupancy x = d / (1 - gamma) solves (I - gamma P^T) x = rho.
      for (let s = 0; s < S; s++) d[s] = warm ? warm.occupancy[s]! / (1 - g) : 0;
      this.sparse.solve(this.spec.initial, d, true);
    }
    for (let s = 0; s < S; s++) d[s] = (1 - g) * d[s]!;
    const v = this.work;
    for (let i = 0; i < n; i++) {
      const R = rewards.subarray(i * SA, (i + 1) * SA);
      for (let s = 0; s < S; s++) {
        let r = 0;
        for (let a = 0; a < A; a++) r += pi[s * A + a]! * R[s * A + a]!;
        if (logPi) {
          let h = 0;
          for (let a = 0; a < A; a++) h -= pi[s * A + a]! * logPi[s * A + a]!;
          r += tau * h;
        }
        v[s] = r;
      }
      if (!kernel) this.lu!.solve(v);
      else {
        const b = Float64Array.from(v);
        for (let s = 0; s < S; s++) v[s] = warm ? warm.V[i * S + s]! : 0;
        this.sparse.solve(b, v, false);
      }
      let J = 0;
      for (let s = 0; s < S; s++) J += this.spec.initial[s]! * v[s]!;
      out.J[i] = J;
      out.V.set(v, i * S);
      for (let s = 0; s < S; s++) {
        for (let a = 0; a < A; a++) {
          const q = R[s * A + a]! + g * this.expectNext(s, a, v);
          const j = i * SA + s * A + a;
          out.Q[j] = q;
          const adv = logPi ? q - tau * logPi[s * A + a]! - v[s]! : q - v[s]!;
          out.grad[j] = (d[s]! * pi[s * A + a]! * adv) / (1 - g);
        }
      }
    }
    if (warm) {
      warm.V.set(out.V.subarray(0, n * S));
      warm.occupancy.set(d);
    }
  }

  truncated(theta: Float64Array, rewards: Float64Array, K: number, out: TruncatedEvaluation): void {
    const S = this.S, A = this.A, g = this.gamma, SA = S * A;
    const n = rewards.length / SA;
    const pi = this.pi;
    softmaxPolicy(theta, S, A, pi);
    // d_t for t < K, forward: d_{t+1}(s') = sum_s d_t(s) sum_a pi(a|s) P(s'|s,a).
    const d = new Float64Array(K * S);
    if (K > 0) d.set(this.spec.initial);
    for (let t = 0; t + 1 < K; t++) {
      for (let s = 0; s < S; s++) {
        const ds = d[t * S + s]!;
        if (ds === 0) continue;
        for (let a = 0; a < A; a++) {
          const w = ds * pi[s * A + a]!;
          if (w === 0) continue;
          this.forEachNext(s, a, (j, p) => {
            d[(t + 1) * S + j] = d[(t + 1) * S + j]! + w * p;
          });
        }
      }
    }
    let v = new Float64Array(S);
    let vNext = new Float64Array(S);
    const q = new Float64Array(SA);
    for (let i = 0; i < n; i++) {
      const R = rewards.subarray(i * SA, (i + 1) * SA);
      const gradK = out.gradK.subarray(i * SA, (i + 1) * SA);
      gradK.fill(0);
      v.fill(0);
      for (let h = 1; h <= K; h++) {
        for (let s = 0; s < S; s++) {
          let vs = 0;
          for (let a = 0; a < A; a++) {
            const qa = R[s * A + a]! + g * this.expectNext(s, a, v);
            q[s * A + a] = qa;
            vs += pi[s * A + a]! * qa;
          }
          vNext[s] = vs;
        }
        const t = K - h;
        const w = Math.pow(g, t);
        for (let s = 0; s < S; s++) {
          const ds = w * d[t * S + s]!;
          for (let a = 0; a < A; a++) gradK[s * A + a] = gradK[s * A + a]! + ds * pi[s * A + a]! * (q[s * A + a]! - vNext[s]!);
        }
        const tmp = v;
        v = vNext;
        vNext = tmp;
      }
      let J = 0;
      for (let s = 0; s < S; s++) J += this.spec.initial[s]! * v[s]!;
      out.JK[i] = J;
    }
  }

  /** J* of one reward table (V* into vOut): policy iteration, with LU solves or certified sparse ones. */
  optimal(reward: Float64Array, vOut: Float64Array): number {
    return this.dense ? this.optimalDense(reward, vOut) : this.optimalSparse(reward, vOut);
  }

  /** Q(s, a) = R(s, a) + gamma (P v)(s, a) for every action: the best action (first on ties) and its Q, and Q of `cur`. */
  private greedy(reward: Float64Array, v: Float64Array, s: number, cur: number): [number, number, number] {
    const A = this.A, g = this.gamma;
    let best = cur, qBest = -Infinity, qCur = 0;
    for (let a = 0; a < A; a++) {
      const qa = reward[s * A + a]! + g * this.expectNext(s, a, v);
      if (a === cur) qCur = qa;
      if (qa > qBest) {
        best = a;
        qBest = qa;
      }
    }
    return [best, qBest, qCur];
  }

  /**
   * Dense path: policy iteration with exact LU solves, finite and accurate to rounding. An action
   * changes only when it improves Q by more than 1e-12 (relative), so ties cannot cycle.
   */
  private optimalDense(reward: Float64Array, vOut: Float64Array): number {
    const S = this.S, A = this.A, g = this.gamma;
    const policy = new Float64Array(S * A);
    const choice = new Int32Array(S);
    for (let s = 0; s < S; s++) {
      let best = 0;
      for (let a = 1; a < A; a++) if (reward[s * A + a]! > reward[s * A + best]!) best = a;
      choice[s] = best;
    }
    const v = vOut;
    for (let iter = 0; iter < 10000; iter++) {
      policy.fill(0);
      for (let s = 0; s < S; s++) policy[s * A + choice[s]!] = 1;
      this.prepare(policy);
      for (let s = 0; s < S; s++) v[s] = reward[s * A + choice[s]!]!;
      this.lu!.solve(v);
      let changed = false;
      for (let s = 0; s < S; s++) {
        const cur = choice[s]!;
        const qCur = reward[s * A + cur]! + g * this.expectNext(s, cur, v);
        let best = cur;
        let qBest = qCur;
        for (let a = 0; a < A; a++) {
          const qa = reward[s * A + a]! + g * this.expectNext(s, a, v);
          if (qa > qBest) {
            best = a;
            qBest = qa;
          }
        }
        if (best !== cur && qBest - qCur > 1e-12 * Math.max(1, Math.abs(qCur))) {
          choice[s] = best;
          changed = true;
        }
      }
      if (!changed) {
        let J = 0;
        for (let s = 0; s < S; s++) J += this.spec.initial[s]! * v[s]!;
        return J;
      }
    }
    throw new Error('policy iteration did not converge in 10000 iterations');
  }

  /**
   * Sparse path (as native/src/exact.cc): a few Gauss-Seidel value-iteration sweeps choose the first
   * policy, then inexact policy iteration with certified sparse solves warm-started from the
   * previous values (each to a tenth of the current distance to V*, the last to half the final
   * tolerance). The answer is certified by the Bellman residual: T is a (gamma kappa)-contraction in the
   * inf-norm (kappa = the largest row sum of P, rounded up), so |V* - v|_inf <= |T v - v|_inf / (1 - gamma kappa),
   * and J = rho^T v is within that of J* (plus the rounding of that sum, at most S u |v|_inf). Computing T v - v rounds by at most
   * floor = (m + 4) u (|R|_inf + (1 + gamma kappa)|v|_inf) (m = most entries in a row of P); the loop stops when
   * (|fl(T v - v)|_inf + floor) / (1 - gamma kappa) <= max(1e-12 max(1, |v|_inf), 4 floor / (1 - gamma kappa)).
   * The final evaluations run to half that tolerance and an action changes only when it gains more
   * than a quarter of it (times 1 - gamma kappa), so a stable policy passes and near-ties cannot cycle.
   */
  private optimalSparse(reward: Float64Array, v: Float64Array): number {
    const S = this.S, A = this.A, g = this.gamma, SA = S * A;
    let kappa = 0, rn = 0, maxRow = 0;
    for (let s = 0; s < S; s++) {
      for (let a = 0; a < A; a++) {
        let sum = 0, count = 0;
        this.forEachNext(s, a, (_j, p) => {
          sum += p;
          if (p !== 0) count++; // adding an exact zero does not round
        });
        kappa = Math.max(kappa, sum);
        maxRow = Math.max(maxRow, count);
      }
    }
    for (let j = 0; j < SA; j++) rn = Math.max(rn, Math.abs(reward[j]!));
    const gk = g * kappa * (1 + (maxRow + 2) * UNIT);
    if (!(gk < 1)) throw new Error(`a transition row sums to ${kappa}: gamma * that is not below 1, so value iteration does not contract`);
    const denom = (1 - gk) * (1 - 4 * UNIT);
    const tol = SPARSE_TOLERANCE;
    const policy = new Float64Array(SA);
    const choice = new Int32Array(S);
    const rPi = new Float64Array(S);
    // The first policy: greedy after in-place value-iteration sweeps from 0, alternately forwards
    // and backwards, so each sweep carries the rewards across the whole state order.
    v.fill(0);
    for (let k = 0; k < INITIAL_SWEEPS; k++) {
      for (let t = 0; t < S; t++) {
        const s = k % 2 === 0 ? t : S - 1 - t;
        const [best, qBest] = this.greedy(reward, v, s, 0);
        choice[s] = best;
        v[s] = qBest;
      }
    }
    // Inexact policy iteration: while far from V*, an evaluation only needs to be accurate to a
    // tenth of the current distance to it; the last ones run to half the final tolerance.
    let evalTol = 1e-3;
    for (let iter = 0; iter < 10000; iter++) {
      policy.fill(0);
      for (let s = 0; s < S; s++) {
        policy[s * A + choice[s]!] = 1;
        rPi[s] = reward[s * A + choice[s]!]!;
      }
      this.prepare(policy);
      this.sparse.solve(rPi, v, false, evalTol);
      let vn = 0;
      for (let s = 0; s < S; s++) vn = Math.max(vn, Math.abs(v[s]!));
      const scale = Math.max(1, vn);
      const gain = 0.25 * tol * scale * (1 - gk);
      let bellman = 0;
      let changed = false;
      for (let s = 0; s < S; s++) {
        const cur = choice[s]!;
        const [best, qBest, qCur] = this.greedy(reward, v, s, cur);
        bellman = Math.max(bellman, Math.abs(qBest - v[s]!));
        if (best !== cur && qBest - qCur > gain) {
          choice[s] = best;
          changed = true;
        }
      }
      const floor = (maxRow + 4) * UNIT * (rn + (1 + gk) * vn);
      if ((bellman + floor) / denom <= Math.max(tol * scale, (4 * floor) / denom)) {
        let J = 0;
        for (let s = 0; s < S; s++) J += this.spec.initial[s]! * v[s]!;
        return J;
      }
      if (!changed) {
        // Stable but not certified: the evaluation was too loose (or, at full accuracy, rounding won).
        if (evalTol <= 0.5 * tol) throw new Error(`policy iteration stopped with a Bellman residual of ${bellman}, above what its error bound needs`);
        evalTol = 0.5 * tol;
      } else evalTol = Math.max(0.5 * tol, Math.min(1e-3, (0.1 * bellman) / (denom * scale)));
    }
    throw new Error('policy iteration did not converge in 10000 iterations');
  }
}
