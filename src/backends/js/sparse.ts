/**
 * Certified sparse solves of (I - gamma K) x = b and (I - gamma K)^T x = b for the policy kernels
 * K = P_pi past the dense LU's limit: restarted BiCGSTAB, right-preconditioned by an ILU(0)
 * factorisation of I - gamma K (its transpose preconditions the transposed system). The same
 * algorithm in the same operation order as native/src/sparse.cc and assembly/sparse.ts.
 *
 * The stopping rule proves the error bound. K is non-negative with row sums at most kappa (computed,
 * rounded up), gamma kappa < 1, so ||(I - gamma K)^{-1}||_inf = ||(I - gamma K^T)^{-1}||_1 <= 1/(1 - gamma kappa)
 * (Neumann series). The residual r_k = b - (I - gamma K) x_k equals (I - gamma K)(x - x_k), hence
 * |x - x_k|_inf <= |r_k|_inf / (1 - gamma kappa) for values, and the same in the 1-norm for the
 * transposed system (occupancy). r_k is recomputed from K (not taken from the recursion) and its
 * rounding is bounded a priori by floor = (m + 4) u (|b| + (1 + gamma kappa)|x|) in that norm
 * (m = most entries in a row, or a column when transposed; u = 2^-53). A solve stops when
 *   (|fl(r_k)| + floor) / (1 - gamma kappa) <= max(tol max(1, |x_k|), 4 floor / (1 - gamma kappa)),
 * which proves |x - x_k| <= tol max(1, |x_k|) (tol = 1e-12) whenever the rounding floor is below a
 * quarter of the target; closer to gamma = 1 the proven bound is the floor's, 4 floor / (1 - gamma kappa).
 */

export const SPARSE_TOLERANCE = 1e-12;
const UNIT = 1.1102230246251565e-16; // 2^-53
/** BiCGSTAB iterations (all restarts together) before a solve gives up. */
const MAX_ITERATIONS = 20000;

/** x . y with four interleaved partial sums, combined as (s0 + s1) + (s2 + s3), as native and wasm. */
export function dot4(x: Float64Array, y: Float64Array, n: number): number {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += x[i]! * y[i]!;
    s1 += x[i + 1]! * y[i + 1]!;
    s2 += x[i + 2]! * y[i + 2]!;
    s3 += x[i + 3]! * y[i + 3]!;
  }
  let s = s0 + s1 + (s2 + s3);
  for (; i < n; i++) s += x[i]! * y[i]!;
  return s;
}

/** The norm of a solve's bound: inf-norm for values, 1-norm (one = true) for the transposed system. */
function norm(x: Float64Array, n: number, one: boolean): number {
  let m = 0;
  if (one) for (let i = 0; i < n; i++) m += Math.abs(x[i]!);
  else for (let i = 0; i < n; i++) m = Math.max(m, Math.abs(x[i]!));
  return m;
}

/** Growable typed-array builder (the CSR arrays of A are built row by row). */
function grow<T extends Float64Array | Int32Array>(a: T, need: number): T {
  if (need <= a.length) return a;
  const b = new (a.constructor as { new (n: number): T })(Math.max(need, 2 * a.length));
  b.set(a);
  return b;
}

export class SparseSolver {
  private n = 0;
  private gamma = 0;
  private gk = 0;
  private kStart: Int32Array = new Int32Array(0);
  private kCol: Int32Array = new Int32Array(0);
  private kVal: Float64Array = new Float64Array(0);
  private maxRow = 0;
  private maxCol = 0;
  // A = I - gamma K with an explicit diagonal; lu holds ILU(0) (L unit lower, U upper) on A's pattern.
  private start = new Int32Array(0);
  private col: Int32Array = new Int32Array(0);
  private diag = new Int32Array(0);
  private a: Float64Array = new Float64Array(0);
  private lu = new Float64Array(0);
  private invDiag = new Float64Array(0);
  private vec: Float64Array[] = [];
  /** The certified bound of the last solve, relative to max(1, |x|). */
  lastBound = 0;

  /** gamma kappa, the contraction factor of the bound. */
  contraction(): number {
    return this.gk;
  }

  /** Takes K's rows (CSR, columns ascending) and gamma; builds I - gamma K and its ILU(0). */
  prepare(n: number, kStart: Int32Array, kCol: Int32Array, kVal: Float64Array, gamma: number): void {
    this.n = n;
    this.gamma = gamma;
    this.kStart = kStart;
    this.kCol = kCol;
    this.kVal = kVal;
    let kappa = 0;
    let maxRow = 0;
    const colCount = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      let sum = 0;
      for (let p = kStart[i]!; p < kStart[i + 1]!; p++) {
        sum += kVal[p]!;
        colCount[kCol[p]!]!++;
      }
      kappa = Math.max(kappa, sum);
      maxRow = Math.max(maxRow, kStart[i + 1]! - kStart[i]!);
    }
    let maxCol = 0;
    for (let i = 0; i < n; i++) maxCol = Math.max(maxCol, colCount[i]!);
    this.maxRow = maxRow;
    this.maxCol = maxCol;
    this.gk = gamma * kappa * (1 + (maxRow + 2) * UNIT);
    if (!(this.gk < 1))
      throw new Error(`the policy's kernel has a row summing to ${kappa}: gamma * that is not below 1, so I - gamma P is not invertible by the bound the sparse solver uses`);
    // A = I - gamma K with the diagonal always stored.
    const start = new Int32Array(n + 1);
    const diag = new Int32Array(n);
    let col = new Int32Array(kCol.length + n);
    let a = new Float64Array(kCol.length + n);
    let nnz = 0;
    const push = (j: number, v: number): void => {
      col = grow(col, nnz + 1);
      a = grow(a, nnz + 1);
      col[nnz] = j;
      a[nnz++] = v;
    };
    for (let i = 0; i < n; i++) {
      let placed = false;
      for (let p = kStart[i]!; p < kStart[i + 1]!; p++) {
        const j = kCol[p]!;
        if (!placed && j >= i) {
          diag[i] = nnz;
          placed = true;
          if (j === i) {
            push(i, 1 - gamma * kVal[p]!);
            continue;
          }
          push(i, 1);
        }
        push(j, -gamma * kVal[p]!);
      }
      if (!placed) {
        diag[i] = nnz;
        push(i, 1);
      }
      start[i + 1] = nnz;
    }
    // ILU(0), row by row (IKJ). A is an M-matrix, so every pivot stays positive.
    const lu = a.slice(0, nnz);
    const pos = new Int32Array(n).fill(-1);
    for (let i = 0; i < n; i++) {
      for (let p = start[i]!; p < start[i + 1]!; p++) pos[col[p]!] = p;
      for (let p = start[i]!; p < diag[i]!; p++) {
        const k = col[p]!;
        const l = lu[p]! / lu[diag[k]!]!;
        lu[p] = l;
        for (let q = diag[k]! + 1; q < start[k + 1]!; q++) {
          const at = pos[col[q]!]!;
          if (at >= 0) lu[at] = lu[at]! - l * lu[q]!;
        }
      }
      for (let p = start[i]!; p < start[i + 1]!; p++) pos[col[p]!] = -1;
    }
    const invDiag = new Float64Array(n);
    for (let i = 0; i < n; i++) invDiag[i] = 1 / lu[diag[i]!]!;
    this.start = start;
    this.col = col.subarray(0, nnz);
    this.a = a.subarray(0, nnz);
    this.diag = diag;
    this.lu = lu;
    this.invDiag = invDiag;
    if (this.vec.length === 0 || this.vec[0]!.length !== n) this.vec = Array.from({ length: 9 }, () => new Float64Array(n));
  }

  /** y = A x or A^T x. */
  private apply(x: Float64Array, y: Float64Array, transposed: boolean): void {
    const { n, start, col, a } = this;
    if (!transposed) {
      for (let i = 0; i < n; i++) {
        let sum = 0;
        for (let p = start[i]!; p < start[i + 1]!; p++) sum += a[p]! * x[col[p]!]!;
        y[i] = sum;
      }
    } else {
      y.fill(0, 0, n);
      for (let i = 0; i < n; i++) {
        const xi = x[i]!;
        for (let p = start[i]!; p < start[i + 1]!; p++) y[col[p]!] = y[col[p]!]! + a[p]! * xi;
      }
    }
  }

  /** z = M^{-1} r or M^{-T} r. */
  private precondition(r: Float64Array, z: Float64Array, transposed: boolean): void {
    const { n, start, col, diag, lu, invDiag } = this;
    z.set(r.subarray(0, n));
    if (!transposed) {
      // L z = r (columns ascending), then U z = z (columns descending).
      for (let i = 0; i < n; i++) {
        let sum = z[i]!;
        for (let p = start[i]!; p < diag[i]!; p++) sum -= lu[p]! * z[col[p]!]!;
        z[i] = sum;
      }
      for (let i = n - 1; i >= 0; i--) {
        let sum = z[i]!;
        for (let p = start[i + 1]! - 1; p > diag[i]!; p--) sum -= lu[p]! * z[col[p]!]!;
        z[i] = sum * invDiag[i]!;
      }
    } else {
      // U^T y = r (U's rows scattered forward), then L^T z = y (L's rows scattered backward).
      for (let i = 0; i < n; i++) {
        const yi = z[i]! * invDiag[i]!;
        z[i] = yi;
        for (let p = diag[i]! + 1; p < start[i + 1]!; p++) z[col[p]!] = z[col[p]!]! - lu[p]! * yi;
      }
      for (let i = n - 1; i >= 0; i--) {
        const zi = z[i]!;
        for (let p = start[i]!; p < diag[i]!; p++) z[col[p]!] = z[col[p]!]! - lu[p]! * zi;
      }
    }
  }

  /** The rounding floor of a residual's entries: (m + 4) u. */
  floorFactor(transposed: boolean): number {
    return ((transposed ? this.maxCol : this.maxRow) + 4) * UNIT;
  }

  /** res = fl(b - (I - gamma K) x) from K; returns [passes, the residual norm that would pass]. */
  private certify(b: Float64Array, x: Float64Array, res: Float64Array, transposed: boolean, tol: number): [boolean, number] {
    const { n, gamma: g, kStart, kCol, kVal } = this;
    if (!transposed) {
      for (let i = 0; i < n; i++) {
        let sum = 0;
        for (let p = kStart[i]!; p < kStart[i + 1]!; p++) sum += kVal[p]! * x[kCol[p]!]!;
        res[i] = b[i]! + g * sum - x[i]!;
      }
    } else {
      const y = this.vec[8]!;
      y.fill(0);
      for (let i = 0; i < n; i++) {
        const xi = x[i]!;
        for (let p = kStart[i]!; p < kStart[i + 1]!; p++) y[kCol[p]!] = y[kCol[p]!]! + kVal[p]! * xi;
      }
      for (let i = 0; i < n; i++) res[i] = b[i]! + g * y[i]! - x[i]!;
    }
    // Sums of n non-negative terms are off by at most a factor 1 + n u: round the norms outwards.
    const up = transposed ? 1 + (n + 1) * UNIT : 1, down = transposed ? 1 - (n + 1) * UNIT : 1;
    const rn = norm(res, n, transposed) * up;
    const bn = norm(b, n, transposed) * up;
    const xn = norm(x, n, transposed);
    const floor = this.floorFactor(transposed) * (bn + (1 + this.gk) * xn * up);
    const denom = (1 - this.gk) * (1 - 4 * UNIT);
    const scale = Math.max(1, xn * down);
    const allowed = Math.max(tol * scale, (4 * floor) / denom);
    const bound = (rn + floor) / denom;
    this.lastBound = bound / scale;
    if (!Number.isFinite(bound)) throw new Error('sparse solve: the iterate is not finite');
    return [bound <= allowed, allowed * denom - floor];
  }

  /**
   * x = (I - gamma K)^{-1} b (inf-norm bound) or (I - gamma K^T)^{-1} b (transposed; 1-norm bound).
   * x holds the initial guess on entry. Returns the BiCGSTAB iterations used.
   */
  solve(b: Float64Array, x: Float64Array, transposed: boolean, tol = SPARSE_TOLERANCE): number {
    const n = this.n;
    const one = transposed;
    const [r, rh, p, v, s, t, ph, sh] = this.vec as [Float64Array, Float64Array, Float64Array, Float64Array, Float64Array, Float64Array, Float64Array, Float64Array];
    let iterations = 0, stalls = 0;
    let previous = Infinity;
    for (;;) {
      const [pass, goal] = this.certify(b, x, r, transposed, tol);
      if (pass) return iterations;
      const rn = norm(r, n, one);
      if (rn > 0.5 * previous && ++stalls >= 3)
        throw new Error(`sparse solve stagnated at a proven relative error of ${this.lastBound} (target ${tol})`);
      previous = rn;
      if (iterations >= MAX_ITERATIONS)
        throw new Error(`sparse solve did not reach its error bound in ${MAX_ITERATIONS} BiCGSTAB iterations (proven relative error ${this.lastBound})`);
      // BiCGSTAB from x, right-preconditioned; the certificate above has the last word.
      const target = 0.5 * goal;
      rh.set(r);
      p.fill(0);
      v.fill(0);
      let rho = 1, alpha = 1, omega = 1;
      while (iterations < MAX_ITERATIONS) {
        const rhoNew = dot4(rh, r, n);
        if (rhoNew === 0 || !Number.isFinite(rhoNew)) break;
        const beta = (rhoNew / rho) * (alpha / omega);
        for (let i = 0; i < n; i++) p[i] = r[i]! + beta * (p[i]! - omega * v[i]!);
        this.precondition(p, ph, transposed);
        this.apply(ph, v, transposed);
        const den = dot4(rh, v, n);
        if (den === 0 || !Number.isFinite(den)) break;
        alpha = rhoNew / den;
        for (let i = 0; i < n; i++) s[i] = r[i]! - alpha * v[i]!;
        iterations++;
        if (norm(s, n, one) <= target) {
          for (let i = 0; i < n; i++) x[i] = x[i]! + alpha * ph[i]!;
          break;
        }
        this.precondition(s, sh, transposed);
        this.apply(sh, t, transposed);
        const tt = dot4(t, t, n);
        if (tt === 0 || !Number.isFinite(tt)) {
          for (let i = 0; i < n; i++) x[i] = x[i]! + alpha * ph[i]!;
          break;
        }
        omega = dot4(t, s, n) / tt;
        for (let i = 0; i < n; i++) {
          x[i] = x[i]! + alpha * ph[i]! + omega * sh[i]!;
          r[i] = s[i]! - omega * t[i]!;
        }
        if (norm(r, n, one) <= target || omega === 0) break;
        rho = rhoNew;
      }
    }
  }
}
