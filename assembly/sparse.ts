import { dot as dot4, ldf, stf, ldi, sti, zalloc, release } from './mem';

/**
 * Certified sparse solves of (I - gamma K) x = b and (I - gamma K)^T x = b past the dense limit:
 * restarted BiCGSTAB, right-preconditioned by ILU(0) of I - gamma K (its transpose for the
 * transposed system), stopped by the proven bound
 *   (|fl(r_k)| + floor) / (1 - gamma kappa) <= max(tol max(1, |x_k|), 4 floor / (1 - gamma kappa))
 * (inf-norm for values, 1-norm for the transposed system; floor = (m + 4) u (|b| + (1 + gamma kappa)|x|)).
 * Ported from src/backends/js/sparse.ts, which carries the proof; the same operations in the same
 * order, so the three backends follow the same iterates (mem.ts's dot is the four-sum dot4 of js
 * and native).
 */

export const SPARSE_TOLERANCE: f64 = 1e-12;
const UNIT: f64 = 1.1102230246251565e-16;
const MAX_ITERATIONS: i32 = 20000;

/** Status codes (shared with exact.ts): the solve stagnated or ran out of iterations; gamma kappa >= 1. */
export const SPARSE_NO_BOUND: i32 = 5;
export const NOT_CONTRACTING: i32 = 6;

/** The solver's memory for one environment: S rows and room for `cap` entries of I - gamma K. */
@unmanaged
export class Sparse {
  n: i32;
  cap: i32;
  gamma: f64;
  gk: f64;
  maxRow: i32;
  maxCol: i32;
  lastBound: f64;
  kStart: usize; // borrowed: K's rows (i32[n+1], i32[nnz], f64[nnz])
  kCol: usize;
  kVal: usize;
  start: usize; // i32[n+1]
  col: usize; // i32[cap]
  diag: usize; // i32[n]
  a: usize; // f64[cap]
  lu: usize; // f64[cap]
  invDiag: usize; // f64[n]
  pos: usize; // i32[n]
  colCount: usize; // i32[n]
  r: usize; // f64[n] each
  rh: usize;
  p: usize;
  v: usize;
  s: usize;
  t: usize;
  ph: usize;
  sh: usize;
  work: usize;
}

export function sparseNew(n: i32, cap: i32): Sparse {
  const z = changetype<Sparse>(zalloc(1, <i32>offsetof<Sparse>()));
  z.n = n;
  z.cap = cap;
  z.start = zalloc(n + 1, 4);
  z.col = zalloc(cap, 4);
  z.diag = zalloc(n, 4);
  z.a = zalloc(cap, 8);
  z.lu = zalloc(cap, 8);
  z.invDiag = zalloc(n, 8);
  z.pos = zalloc(n, 4);
  z.colCount = zalloc(n, 4);
  z.r = zalloc(n, 8);
  z.rh = zalloc(n, 8);
  z.p = zalloc(n, 8);
  z.v = zalloc(n, 8);
  z.s = zalloc(n, 8);
  z.t = zalloc(n, 8);
  z.ph = zalloc(n, 8);
  z.sh = zalloc(n, 8);
  z.work = zalloc(n, 8);
  return z;
}

export function sparseFree(z: Sparse): void {
  release(z.start);
  release(z.col);
  release(z.diag);
  release(z.a);
  release(z.lu);
  release(z.invDiag);
  release(z.pos);
  release(z.colCount);
  release(z.r);
  release(z.rh);
  release(z.p);
  release(z.v);
  release(z.s);
  release(z.t);
  release(z.ph);
  release(z.sh);
  release(z.work);
  heap.free(changetype<usize>(z));
}

function norm(x: usize, n: i32, one: bool): f64 {
  let m: f64 = 0;
  if (one) {
    for (let i = 0; i < n; i++) m += Math.abs(ldf(x, i));
  } else {
    for (let i = 0; i < n; i++) m = Math.max(m, Math.abs(ldf(x, i)));
  }
  return m;
}

/** Takes K's rows (columns ascending) and gamma; builds I - gamma K and its ILU(0). Returns a status. */
export function sparsePrepare(z: Sparse, kStart: usize, kCol: usize, kVal: usize, gamma: f64): i32 {
  const n = z.n;
  z.gamma = gamma;
  z.kStart = kStart;
  z.kCol = kCol;
  z.kVal = kVal;
  let kappa: f64 = 0;
  let maxRow = 0;
  memory.fill(z.colCount, 0, (<usize>n) << 2);
  for (let i = 0; i < n; i++) {
    let sum: f64 = 0;
    for (let p = ldi(kStart, i); p < ldi(kStart, i + 1); p++) {
      sum += ldf(kVal, p);
      const c = ldi(kCol, p);
      sti(z.colCount, c, ldi(z.colCount, c) + 1);
    }
    kappa = Math.max(kappa, sum);
    maxRow = max(maxRow, ldi(kStart, i + 1) - ldi(kStart, i));
  }
  let maxCol = 0;
  for (let i = 0; i < n; i++) maxCol = max(maxCol, ldi(z.colCount, i));
  z.maxRow = maxRow;
  z.maxCol = maxCol;
  // A's entries: K's plus at most one diagonal per row (grown on demand: a dense-stored kernel's
  // policy rows are usually far sparser than its S*A*S table).
  const need = ldi(kStart, n) + n;
  if (need > z.cap) {
    release(z.col);
    release(z.a);
    release(z.lu);
    z.col = zalloc(need, 4);
    z.a = zalloc(need, 8);
    z.lu = zalloc(need, 8);
    z.cap = need;
  }
  z.gk = gamma * kappa * (1 + <f64>(maxRow + 2) * UNIT);
  if (!(z.gk < 1)) return NOT_CONTRACTING;
  const start = z.start, col = z.col, diag = z.diag, a = z.a;
  let nnz = 0;
  sti(start, 0, 0);
  for (let i = 0; i < n; i++) {
    let placed = false;
    for (let p = ldi(kStart, i); p < ldi(kStart, i + 1); p++) {
      const j = ldi(kCol, p);
      if (!placed && j >= i) {
        sti(diag, i, nnz);
        placed = true;
        if (j == i) {
          sti(col, nnz, i);
          stf(a, nnz++, 1 - gamma * ldf(kVal, p));
          continue;
        }
        sti(col, nnz, i);
        stf(a, nnz++, 1);
      }
      sti(col, nnz, j);
      stf(a, nnz++, -gamma * ldf(kVal, p));
    }
    if (!placed) {
      sti(diag, i, nnz);
      sti(col, nnz, i);
      stf(a, nnz++, 1);
    }
    sti(start, i + 1, nnz);
  }
  // ILU(0), row by row (IKJ); A is an M-matrix, so every pivot stays positive.
  const lu = z.lu, pos = z.pos;
  memory.copy(lu, a, (<usize>nnz) << 3);
  memory.fill(pos, 0xff, (<usize>n) << 2);
  for (let i = 0; i < n; i++) {
    for (let p = ldi(start, i); p < ldi(start, i + 1); p++) sti(pos, ldi(col, p), p);
    for (let p = ldi(start, i); p < ldi(diag, i); p++) {
      const k = ldi(col, p);
      const l = ldf(lu, p) / ldf(lu, ldi(diag, k));
      stf(lu, p, l);
      for (let q = ldi(diag, k) + 1; q < ldi(start, k + 1); q++) {
        const at = ldi(pos, ldi(col, q));
        if (at >= 0) stf(lu, at, ldf(lu, at) - l * ldf(lu, q));
      }
    }
    for (let p = ldi(start, i); p < ldi(start, i + 1); p++) sti(pos, ldi(col, p), -1);
  }
  for (let i = 0; i < n; i++) stf(z.invDiag, i, 1 / ldf(lu, ldi(diag, i)));
  return 0;
}

/** y = A x or A^T x. */
function apply(z: Sparse, x: usize, y: usize, transposed: bool): void {
  const n = z.n, start = z.start, col = z.col, a = z.a;
  if (!transposed) {
    for (let i = 0; i < n; i++) {
      let sum: f64 = 0;
      for (let p = ldi(start, i); p < ldi(start, i + 1); p++) sum += ldf(a, p) * ldf(x, ldi(col, p));
      stf(y, i, sum);
    }
  } else {
    memory.fill(y, 0, (<usize>n) << 3);
    for (let i = 0; i < n; i++) {
      const xi = ldf(x, i);
      for (let p = ldi(start, i); p < ldi(start, i + 1); p++) {
        const c = ldi(col, p);
        stf(y, c, ldf(y, c) + ldf(a, p) * xi);
      }
    }
  }
}

/** z = M^{-1} r or M^{-T} r (out and r distinct). */
function precondition(z: Sparse, r: usize, out: usize, transposed: bool): void {
  const n = z.n, start = z.start, col = z.col, diag = z.diag, lu = z.lu, inv = z.invDiag;
  memory.copy(out, r, (<usize>n) << 3);
  if (!transposed) {
    for (let i = 0; i < n; i++) {
      let sum = ldf(out, i);
      for (let p = ldi(start, i); p < ldi(diag, i); p++) sum -= ldf(lu, p) * ldf(out, ldi(col, p));
      stf(out, i, sum);
    }
    for (let i = n - 1; i >= 0; i--) {
      let sum = ldf(out, i);
      for (let p = ldi(start, i + 1) - 1; p > ldi(diag, i); p--) sum -= ldf(lu, p) * ldf(out, ldi(col, p));
      stf(out, i, sum * ldf(inv, i));
    }
  } else {
    for (let i = 0; i < n; i++) {
      const yi = ldf(out, i) * ldf(inv, i);
      stf(out, i, yi);
      for (let p = ldi(diag, i) + 1; p < ldi(start, i + 1); p++) {
        const c = ldi(col, p);
        stf(out, c, ldf(out, c) - ldf(lu, p) * yi);
      }
    }
    for (let i = n - 1; i >= 0; i--) {
      const zi = ldf(out, i);
      for (let p = ldi(start, i); p < ldi(diag, i); p++) {
        const c = ldi(col, p);
        stf(out, c, ldf(out, c) - ldf(lu, p) * zi);
      }
    }
  }
}

/** The rounding floor of a residual's entries: (m + 4) u. */
export function floorFactor(z: Sparse, transposed: bool): f64 {
  return <f64>((transposed ? z.maxCol : z.maxRow) + 4) * UNIT;
}

let certifiedGoal: f64 = 0;

/** res = fl(b - (I - gamma K) x) from K; true when the bound passes; the passing residual norm into certifiedGoal. */
function certify(z: Sparse, b: usize, x: usize, res: usize, transposed: bool, tol: f64): bool {
  const n = z.n, g = z.gamma, kStart = z.kStart, kCol = z.kCol, kVal = z.kVal;
  if (!transposed) {
    for (let i = 0; i < n; i++) {
      let sum: f64 = 0;
      for (let p = ldi(kStart, i); p < ldi(kStart, i + 1); p++) sum += ldf(kVal, p) * ldf(x, ldi(kCol, p));
      stf(res, i, (ldf(b, i) + g * sum) - ldf(x, i));
    }
  } else {
    const y = z.work;
    memory.fill(y, 0, (<usize>n) << 3);
    for (let i = 0; i < n; i++) {
      const xi = ldf(x, i);
      for (let p = ldi(kStart, i); p < ldi(kStart, i + 1); p++) {
        const c = ldi(kCol, p);
        stf(y, c, ldf(y, c) + ldf(kVal, p) * xi);
      }
    }
    for (let i = 0; i < n; i++) stf(res, i, (ldf(b, i) + g * ldf(y, i)) - ldf(x, i));
  }
  const up: f64 = transposed ? 1 + <f64>(n + 1) * UNIT : 1;
  const down: f64 = transposed ? 1 - <f64>(n + 1) * UNIT : 1;
  const rn = norm(res, n, transposed) * up;
  const bn = norm(b, n, transposed) * up;
  const xn = norm(x, n, transposed);
  const floor = floorFactor(z, transposed) * (bn + (1 + z.gk) * xn * up);
  const denom = (1 - z.gk) * (1 - 4 * UNIT);
  const scale = Math.max(1, xn * down);
  const allowed = Math.max(tol * scale, (4 * floor) / denom);
  const bound = (rn + floor) / denom;
  z.lastBound = bound / scale;
  certifiedGoal = allowed * denom - floor;
  return bound <= allowed;
}

/**
 * x = (I - gamma K)^{-1} b, or (I - gamma K^T)^{-1} b when transposed; x holds the initial guess.
 * Returns 0 or SPARSE_NO_BOUND.
 */
export function sparseSolve(z: Sparse, b: usize, x: usize, transposed: bool, tol: f64): i32 {
  const n = z.n;
  const one = transposed;
  const r = z.r, rh = z.rh, p = z.p, v = z.v, s = z.s, t = z.t, ph = z.ph, sh = z.sh;
  const bytes = (<usize>n) << 3;
  let iterations = 0, stalls = 0;
  let previous = Infinity;
  for (;;) {
    const pass = certify(z, b, x, r, transposed, tol);
    if (!isFinite(z.lastBound)) return SPARSE_NO_BOUND;
    if (pass) return 0;
    const goal = certifiedGoal;
    const rn = norm(r, n, one);
    if (rn > 0.5 * previous && ++stalls >= 3) return SPARSE_NO_BOUND;
    previous = rn;
    if (iterations >= MAX_ITERATIONS) return SPARSE_NO_BOUND;
    const target = 0.5 * goal;
    memory.copy(rh, r, bytes);
    memory.fill(p, 0, bytes);
    memory.fill(v, 0, bytes);
    let rho: f64 = 1, alpha: f64 = 1, omega: f64 = 1;
    while (iterations < MAX_ITERATIONS) {
      const rhoNew = dot4(rh, r, n);
      if (rhoNew == 0 || !isFinite(rhoNew)) break;
      const beta = (rhoNew / rho) * (alpha / omega);
      for (let i = 0; i < n; i++) stf(p, i, ldf(r, i) + beta * (ldf(p, i) - omega * ldf(v, i)));
      precondition(z, p, ph, transposed);
      apply(z, ph, v, transposed);
      const den = dot4(rh, v, n);
      if (den == 0 || !isFinite(den)) break;
      alpha = rhoNew / den;
      for (let i = 0; i < n; i++) stf(s, i, ldf(r, i) - alpha * ldf(v, i));
      iterations++;
      if (norm(s, n, one) <= target) {
        for (let i = 0; i < n; i++) stf(x, i, ldf(x, i) + alpha * ldf(ph, i));
        break;
      }
      precondition(z, s, sh, transposed);
      apply(z, sh, t, transposed);
      const tt = dot4(t, t, n);
      if (tt == 0 || !isFinite(tt)) {
        for (let i = 0; i < n; i++) stf(x, i, ldf(x, i) + alpha * ldf(ph, i));
        break;
      }
      omega = dot4(t, s, n) / tt;
      for (let i = 0; i < n; i++) {
        stf(x, i, ldf(x, i) + alpha * ldf(ph, i) + omega * ldf(sh, i));
        stf(r, i, ldf(s, i) - omega * ldf(t, i));
      }
      if (norm(r, n, one) <= target || omega == 0) break;
      rho = rhoNew;
    }
  }
  return 0;
}
