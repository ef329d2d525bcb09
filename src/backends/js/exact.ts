import type { EnvironmentSpec, Evaluation, TruncatedEvaluation } from '../types.js';

/**
 * Exact quantities by linear solves: (I - gamma P_theta) V = r_theta for every reward table and
 * the transposed system for the occupancy measure share one LU factorisation (partial pivoting).
 * Past DENSE_LIMIT states a dense factorisation no longer fits comfortably, and the solves switch
 * to Gauss-Seidel sweeps over the sparse rows, converged to a relative 1e-15.
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

export class ExactSolver {
  private readonly S: number;
  private readonly A: number;
  private readonly gamma: number;
  private readonly dense: boolean;
  private readonly pi: Float64Array;
  private readonly mat: Float64Array;
  private readonly lu: DenseLU | null;
  private readonly work: Float64Array;

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

  /** Factors I - gamma P_policy (dense path) or returns its sparse rows (iterative path). */
  private prepare(policy: Float64Array): SparseKernel | null {
    if (!this.dense) return this.kernelRows(policy);
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

  /** x = (I - gamma K)^{-1} b, in place; Gauss-Seidel on the sparse rows. */
  private iterate(k: SparseKernel, b: Float64Array, transposed: boolean): void {
    const S = this.S, g = this.gamma;
    const rhs = Float64Array.from(b);
    const x = b;
    x.set(rhs);
    if (transposed) {
      // x = rhs + gamma K^T x, by Jacobi sweeps (K^T's rows are K's columns).
      const next = new Float64Array(S);
      for (let it = 0; it < 100000; it++) {
        next.set(rhs);
        for (let s = 0; s < S; s++) {
          const xs = x[s]!;
          if (xs === 0) continue;
          for (let q = k.start[s]!; q < k.start[s + 1]!; q++) next[k.col[q]!] = next[k.col[q]!]! + g * k.val[q]! * xs;
        }
        let diff = 0, scale = 0;
        for (let s = 0; s < S; s++) {
          diff = Math.max(diff, Math.abs(next[s]! - x[s]!));
          scale = Math.max(scale, Math.abs(next[s]!));
        }
        x.set(next);
        if (diff <= 1e-15 * Math.max(scale, 1e-300)) return;
      }
      throw new Error('iterative solve did not converge in 100000 sweeps');
    }
    for (let it = 0; it < 100000; it++) {
      let diff = 0, scale = 0;
      for (let s = 0; s < S; s++) {
        let sum = rhs[s]!;
        let diag = 0;
        for (let q = k.start[s]!; q < k.start[s + 1]!; q++) {
          const j = k.col[q]!;
          if (j === s) diag = k.val[q]!;
          else sum += g * k.val[q]! * x[j]!;
        }
        const v = sum / (1 - g * diag);
        diff = Math.max(diff, Math.abs(v - x[s]!));
        scale = Math.max(scale, Math.abs(v));
        x[s] = v;
      }
      if (diff <= 1e-15 * Math.max(scale, 1e-300)) return;
    }
    throw new Error('iterative solve did not converge in 100000 sweeps');
  }

  private solve(k: SparseKernel | null, b: Float64Array): void {
    if (k) this.iterate(k, b, false);
    else this.lu!.solve(b);
  }

  private solveTransposed(k: SparseKernel | null, b: Float64Array): void {
    if (k) this.iterate(k, b, true);
    else this.lu!.solveTransposed(b);
  }

  /**
   * Exact V, Q, J and gradient for n reward tables; with tau > 0 those of the entropy-regularised
   * objective: V_tau = (I - gamma P)^{-1} (r_theta + tau H_theta), Q_tau = R + gamma P V_tau,
   * grad = d pi (Q_tau - tau log pi - V_tau) / (1 - gamma).
   */
  evaluate(theta: Float64Array, rewards: Float64Array, out: Evaluation, tau = 0): void {
    const S = this.S, A = this.A, g = this.gamma, SA = S * A;
    const n = rewards.length / SA;
    const pi = this.pi;
    softmaxPolicy(theta, S, A, pi);
    const logPi = tau > 0 ? logSoftmax(theta, S, A) : null;
    const kernel = this.prepare(pi);
    const d = out.occupancy;
    d.set(this.spec.initial);
    this.solveTransposed(kernel, d);
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
      this.solve(kernel, v);
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

  /**
   * J* by policy iteration: exact solves make it finite and accurate to rounding. An action
   * changes only when it improves Q by more than 1e-12 (relative), so ties cannot cycle.
   */
  optimal(reward: Float64Array, vOut: Float64Array): number {
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
      const kernel = this.prepare(policy);
      for (let s = 0; s < S; s++) v[s] = reward[s * A + choice[s]!]!;
      this.solve(kernel, v);
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
}
