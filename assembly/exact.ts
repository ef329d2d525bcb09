import { Env, expectNext } from './env';
import { ldf, stf, ldi, sti, zalloc, release } from './mem';
import { luFactor, luSolve, luSolveTransposed, packBytes } from './lu';
import { Sparse, sparseNew, sparsePrepare, sparseSolve, SPARSE_TOLERANCE, NOT_CONTRACTING } from './sparse';

/**
 * Exact quantities, ported from src/backends/js/exact.ts: V = (I - gamma P_theta)^{-1} r_theta
 * and the occupancy measure by one (blocked) LU factorisation for S <= DENSE_LIMIT; beyond, one
 * ILU(0) of the sparse I - gamma P_theta preconditions certified BiCGSTAB solves (sparse.ts),
 * optionally warm-started; the K-step truncation by the backward recursion; J* by policy iteration.
 *
 * Status codes returned to the facade: 0 ok, 1 singular matrix, 3 policy iteration did not
 * converge, 4 theta holds a non-finite entry, 5 a sparse solve did not reach its error bound,
 * 6 gamma times a transition row sum is not below 1, 7 policy iteration stopped above its bound,
 * 8 a local round's theta overflowed (index.ts localRound; the step is in overflowStep()).
 */
export const OK: i32 = 0;
export const SINGULAR: i32 = 1;
export const PI_NO_CONVERGENCE: i32 = 3;
export const NON_FINITE_THETA: i32 = 4;
export const PI_ABOVE_BOUND: i32 = 7;
export const THETA_OVERFLOW: i32 = 8;
const UNIT: f64 = 1.1102230246251565e-16;
/** Gauss-Seidel value-iteration sweeps that choose the sparse J*'s first policy. */
const INITIAL_SWEEPS: i32 = 4;

function ensureExact(e: Env): void {
  if (e.exact) return;
  const S = e.S, SA = e.SA;
  e.xpi = zalloc(SA, 8);
  e.xlogPi = zalloc(SA, 8);
  if (e.dense) {
    e.mat = zalloc(S * S, 8);
    e.piv = zalloc(S, 4);
    e.pack = zalloc(packBytes(S) >> 3, 8);
  } else {
    e.kStart = zalloc(S + 1, 4);
    e.kCol = zalloc(e.nnz, 4);
    e.kVal = zalloc(e.nnz, 8);
    e.mark = zalloc(S, 4);
    e.accS = zalloc(S, 8);
    e.touched = zalloc(S, 4);
    e.rhs = zalloc(S, 8);
    e.sparse = changetype<usize>(sparseNew(S, 0));
  }
  e.work = zalloc(S, 8);
  e.oneJ = zalloc(1, 8);
  e.oneV = zalloc(S, 8);
  e.oneQ = zalloc(SA, 8);
  e.oneGrad = zalloc(SA, 8);
  e.oneOcc = zalloc(S, 8);
  e.policy = zalloc(SA, 8);
  e.choice = zalloc(S, 4);
  e.tq = zalloc(SA, 8);
  e.tv = zalloc(S, 8);
  e.tvNext = zalloc(S, 8);
  e.exact = 1;
}

/**
 * Full softmax policy into pi [S*A] (max subtracted, then normalised); with logPi != 0 also
 * log pi = theta - max - log z (the js logSoftmax: the same z, summed in the same order).
 */
export function softmaxPolicy(theta: usize, S: i32, A: i32, pi: usize, logPi: usize = 0): void {
  for (let s = 0; s < S; s++) {
    const base = s * A;
    let m = ldf(theta, base);
    for (let a = 1; a < A; a++) {
      const t = ldf(theta, base + a);
      if (t > m) m = t;
    }
    let z: f64 = 0;
    for (let a = 0; a < A; a++) {
      const x = Math.exp(ldf(theta, base + a) - m);
      stf(pi, base + a, x);
      z += x;
    }
    if (logPi) {
      const logZ = Math.log(z);
      for (let a = 0; a < A; a++) stf(logPi, base + a, ldf(theta, base + a) - m - logZ);
    }
    for (let a = 0; a < A; a++) stf(pi, base + a, ldf(pi, base + a) / z);
  }
}

/** Sorts ints ascending in place (heap sort: no recursion, no allocation). */
function sortInts(p: usize, n: i32): void {
  for (let start = (n >> 1) - 1; start >= 0; start--) siftDown(p, start, n);
  for (let end = n - 1; end > 0; end--) {
    const t = ldi(p, 0);
    sti(p, 0, ldi(p, end));
    sti(p, end, t);
    siftDown(p, 0, end);
  }
}

function siftDown(p: usize, root: i32, n: i32): void {
  let r = root;
  while (true) {
    let child = 2 * r + 1;
    if (child >= n) return;
    if (child + 1 < n && ldi(p, child + 1) > ldi(p, child)) child++;
    if (ldi(p, r) >= ldi(p, child)) return;
    const t = ldi(p, r);
    sti(p, r, ldi(p, child));
    sti(p, child, t);
    r = child;
  }
}

/** Rows of P_policy (sparse path): columns ascending, each value summed in (a, entry) order. */
function kernelRows(e: Env, policy: usize): void {
  const S = e.S, A = e.A;
  const mark = e.mark, accS = e.accS, touched = e.touched;
  memory.fill(mark, 0, (<usize>S) << 2);
  let off = 0;
  sti(e.kStart, 0, 0);
  for (let s = 0; s < S; s++) {
    let nt = 0;
    for (let a = 0; a < A; a++) {
      const w = ldf(policy, s * A + a);
      if (w == 0) continue;
      const row = s * A + a;
      for (let k = ldi(e.rowStart, row); k < ldi(e.rowStart, row + 1); k++) {
        const j = ldi(e.next, k);
        if (ldi(mark, j) != s + 1) {
          sti(mark, j, s + 1);
          sti(touched, nt++, j);
          stf(accS, j, 0);
        }
        stf(accS, j, ldf(accS, j) + w * ldf(e.prob, k));
      }
    }
    sortInts(touched, nt);
    for (let q = 0; q < nt; q++) {
      const j = ldi(touched, q);
      sti(e.kCol, off, j);
      stf(e.kVal, off, ldf(accS, j));
      off++;
    }
    sti(e.kStart, s + 1, off);
  }
}

/** Factors I - gamma P_policy (dense path) or builds its sparse rows and their ILU(0). Returns a status. */
function prepare(e: Env, policy: usize): i32 {
  if (!e.dense) {
    kernelRows(e, policy);
    return sparsePrepare(changetype<Sparse>(e.sparse), e.kStart, e.kCol, e.kVal, e.gamma);
  }
  const S = e.S, A = e.A, g = e.gamma;
  const m = e.mat;
  memory.fill(m, 0, (<usize>S * <usize>S) << 3);
  for (let s = 0; s < S; s++) {
    const rowp = m + (<usize>s * <usize>S << 3);
    for (let a = 0; a < A; a++) {
      const w = ldf(policy, s * A + a);
      if (w == 0) continue;
      const r = s * A + a;
      const k0 = ldi(e.rowStart, r), k1 = ldi(e.rowStart, r + 1);
      if (ldi(e.rowFull, r)) {
        const p = e.prob + ((<usize>k0) << 3);
        let j = 0;
        if (ASC_FEATURE_SIMD) {
          const vw = f64x2.splat(w);
          for (; j + 2 <= S; j += 2) {
            const o = (<usize>j) << 3;
            v128.store(rowp + o, f64x2.add(v128.load(rowp + o), f64x2.mul(vw, v128.load(p + o))));
          }
        }
        for (; j < S; j++) stf(rowp, j, ldf(rowp, j) + w * ldf(p, j));
      } else {
        for (let k = k0; k < k1; k++) {
          const j = ldi(e.next, k);
          stf(rowp, j, ldf(rowp, j) + w * ldf(e.prob, k));
        }
      }
    }
    let j = 0;
    if (ASC_FEATURE_SIMD) {
      const vg = f64x2.splat(-g);
      for (; j + 2 <= S; j += 2) {
        const o = (<usize>j) << 3;
        v128.store(rowp + o, f64x2.mul(vg, v128.load(rowp + o)));
      }
    }
    for (; j < S; j++) stf(rowp, j, -g * ldf(rowp, j));
    stf(rowp, s, ldf(rowp, s) + 1);
  }
  return luFactor(m, e.piv, S, e.pack) ? SINGULAR : OK;
}

/**
 * Exact J, V, Q, occupancy and gradient for n reward tables at theta; with tau > 0 those of the
 * entropy-regularised objective: V_tau = (I - gamma P)^{-1} (r_theta + tau H_theta),
 * Q_tau = R + gamma P V_tau, grad = d pi (Q_tau - tau log pi - V_tau) / (1 - gamma).
 */
export function evaluate(e: Env, theta: usize, rewards: usize, n: i32, J: usize, V: usize, Q: usize, grad: usize, occ: usize, tau: f64, warm: i32 = 0): i32 {
  ensureExact(e);
  const S = e.S, A = e.A, g = e.gamma, SA = e.SA;
  const pi = e.xpi;
  const reg = tau > 0;
  const logPi = e.xlogPi;
  softmaxPolicy(theta, S, A, pi, reg ? logPi : 0);
  let st = prepare(e, pi);
  if (st) return st;
  if (e.dense) {
    memory.copy(occ, e.initial, (<usize>S) << 3);
    luSolveTransposed(e.mat, e.piv, e.S, occ);
  } else {
    // With warm != 0, occ and V hold the caller's guesses; x = d / (1 - gamma) solves (I - gamma P^T) x = rho.
    for (let s = 0; s < S; s++) stf(occ, s, warm ? ldf(occ, s) / (1 - g) : 0);
    st = sparseSolve(changetype<Sparse>(e.sparse), e.initial, occ, true, SPARSE_TOLERANCE);
    if (st) return st;
  }
  for (let s = 0; s < S; s++) stf(occ, s, (1 - g) * ldf(occ, s));
  const inv = 1 - g;
  for (let i = 0; i < n; i++) {
    let v = e.dense ? e.work : e.rhs;
    const R = rewards + (<usize>i * <usize>SA << 3);
    for (let s = 0; s < S; s++) {
      let r: f64 = 0;
      for (let a = 0; a < A; a++) r += ldf(pi, s * A + a) * ldf(R, s * A + a);
      if (reg) {
        let h: f64 = 0;
        for (let a = 0; a < A; a++) h -= ldf(pi, s * A + a) * ldf(logPi, s * A + a);
        r += tau * h;
      }
      stf(v, s, r);
    }
    if (e.dense) {
      luSolve(e.mat, e.piv, e.S, v);
    } else {
      const x = V + (<usize>i * <usize>S << 3);
      if (!warm) memory.fill(x, 0, (<usize>S) << 3);
      st = sparseSolve(changetype<Sparse>(e.sparse), v, x, false, SPARSE_TOLERANCE);
      if (st) return st;
      v = x;
    }
    let Ji: f64 = 0;
    for (let s = 0; s < S; s++) Ji += ldf(e.initial, s) * ldf(v, s);
    stf(J, i, Ji);
    if (e.dense) memory.copy(V + (<usize>i * <usize>S << 3), v, (<usize>S) << 3);
    const Qi = Q + (<usize>i * <usize>SA << 3);
    const Gi = grad + (<usize>i * <usize>SA << 3);
    for (let s = 0; s < S; s++) {
      const ds = ldf(occ, s), vs = ldf(v, s);
      for (let a = 0; a < A; a++) {
        const j = s * A + a;
        const q = ldf(R, j) + g * expectNext(e, j, v);
        stf(Qi, j, q);
        const adv = reg ? q - tau * ldf(logPi, j) - vs : q - vs;
        stf(Gi, j, (ds * ldf(pi, j) * adv) / inv);
      }
    }
  }
  return OK;
}

/**
 * The exact gradient of one reward table into e.oneGrad (for exact local rounds). warm: start the
 * sparse solves from e.oneV and e.oneOcc, the previous call's solution (localRound passes it from
 * step 1 on, as js and native do; step 0 is cold).
 */
export function exactGradient(e: Env, theta: usize, reward: usize, tau: f64, warm: bool): i32 {
  ensureExact(e);
  return evaluate(e, theta, reward, 1, e.oneJ, e.oneV, e.oneQ, e.oneGrad, e.oneOcc, tau, warm ? 1 : 0);
}

export function oneGrad(e: Env): usize {
  ensureExact(e);
  return e.oneGrad;
}

/** J_K and grad_K J for n reward tables (the backward recursion of SPEC.md). */
export function truncated(e: Env, theta: usize, rewards: usize, n: i32, K: i32, JK: usize, gradK: usize): i32 {
  ensureExact(e);
  const S = e.S, A = e.A, g = e.gamma, SA = e.SA;
  const pi = e.xpi;
  softmaxPolicy(theta, S, A, pi);
  const d = zalloc(K * S, 8);
  if (K > 0) memory.copy(d, e.initial, (<usize>S) << 3);
  for (let t = 0; t + 1 < K; t++) {
    const dt = d + (<usize>t * <usize>S << 3);
    const dn = dt + ((<usize>S) << 3);
    for (let s = 0; s < S; s++) {
      const ds = ldf(dt, s);
      if (ds == 0) continue;
      for (let a = 0; a < A; a++) {
        const w = ds * ldf(pi, s * A + a);
        if (w == 0) continue;
        const r = s * A + a;
        for (let k = ldi(e.rowStart, r); k < ldi(e.rowStart, r + 1); k++) {
          const j = ldi(e.next, k);
          stf(dn, j, ldf(dn, j) + w * ldf(e.prob, k));
        }
      }
    }
  }
  let v = e.tv;
  let vNext = e.tvNext;
  const q = e.tq;
  for (let i = 0; i < n; i++) {
    const R = rewards + (<usize>i * <usize>SA << 3);
    const gk = gradK + (<usize>i * <usize>SA << 3);
    memory.fill(gk, 0, (<usize>SA) << 3);
    memory.fill(v, 0, (<usize>S) << 3);
    for (let h = 1; h <= K; h++) {
      for (let s = 0; s < S; s++) {
        let vs: f64 = 0;
        for (let a = 0; a < A; a++) {
          const j = s * A + a;
          const qa = ldf(R, j) + g * expectNext(e, j, v);
          stf(q, j, qa);
          vs += ldf(pi, j) * qa;
        }
        stf(vNext, s, vs);
      }
      const t = K - h;
      const w = Math.pow(g, <f64>t);
      const dt = d + (<usize>t * <usize>S << 3);
      for (let s = 0; s < S; s++) {
        const ds = w * ldf(dt, s);
        const vn = ldf(vNext, s);
        for (let a = 0; a < A; a++) {
          const j = s * A + a;
          stf(gk, j, ldf(gk, j) + ds * ldf(pi, j) * (ldf(q, j) - vn));
        }
      }
      const tmp = v;
      v = vNext;
      vNext = tmp;
    }
    let Jk: f64 = 0;
    for (let s = 0; s < S; s++) Jk += ldf(e.initial, s) * ldf(v, s);
    stf(JK, i, Jk);
  }
  release(d);
  return OK;
}

let lastStatus: i32 = 0;
export function status(): i32 {
  return lastStatus;
}

/** J* of one reward table (V* into vOut): policy iteration with LU solves, or certified sparse ones. */
export function optimal(e: Env, reward: usize, vOut: usize): f64 {
  ensureExact(e);
  lastStatus = OK;
  return e.dense ? optimalDense(e, reward, vOut) : optimalSparse(e, reward, vOut);
}

/**
 * Dense path (as the js reference): greedy start on the reward, exact evaluation, and an action
 * changes only when it improves Q by more than 1e-12 (relative).
 */
function optimalDense(e: Env, reward: usize, vOut: usize): f64 {
  const S = e.S, A = e.A, g = e.gamma;
  const policy = e.policy, choice = e.choice;
  for (let s = 0; s < S; s++) {
    let best = 0;
    for (let a = 1; a < A; a++) if (ldf(reward, s * A + a) > ldf(reward, s * A + best)) best = a;
    sti(choice, s, best);
  }
  const v = vOut;
  for (let iter = 0; iter < 10000; iter++) {
    memory.fill(policy, 0, (<usize>e.SA) << 3);
    for (let s = 0; s < S; s++) stf(policy, s * A + ldi(choice, s), 1);
    const st = prepare(e, policy);
    if (st) {
      lastStatus = st;
      return NaN;
    }
    for (let s = 0; s < S; s++) stf(v, s, ldf(reward, s * A + ldi(choice, s)));
    luSolve(e.mat, e.piv, e.S, v);
    let changed = false;
    for (let s = 0; s < S; s++) {
      const cur = ldi(choice, s);
      const qCur = ldf(reward, s * A + cur) + g * expectNext(e, s * A + cur, v);
      let best = cur;
      let qBest = qCur;
      for (let a = 0; a < A; a++) {
        const qa = ldf(reward, s * A + a) + g * expectNext(e, s * A + a, v);
        if (qa > qBest) {
          best = a;
          qBest = qa;
        }
      }
      if (best != cur && qBest - qCur > 1e-12 * Math.max(1, Math.abs(qCur))) {
        sti(choice, s, best);
        changed = true;
      }
    }
    if (!changed) {
      let Jv: f64 = 0;
      for (let s = 0; s < S; s++) Jv += ldf(e.initial, s) * ldf(v, s);
      return Jv;
    }
  }
  lastStatus = PI_NO_CONVERGENCE;
  return NaN;
}

/**
 * Sparse path (as src/backends/js/exact.ts, which states the proof): Gauss-Seidel value-iteration
 * sweeps choose the first policy, then inexact policy iteration with certified sparse solves
 * warm-started from the previous values, stopped when the Bellman residual proves the 1e-12 bound on V*.
 */
function optimalSparse(e: Env, reward: usize, v: usize): f64 {
  const S = e.S, A = e.A, g = e.gamma, SA = e.SA;
  const policy = e.policy, choice = e.choice, rPi = e.rhs;
  const z = changetype<Sparse>(e.sparse);
  let kappa: f64 = 0, rn: f64 = 0;
  let maxRow = 0;
  for (let row = 0; row < SA; row++) {
    let sum: f64 = 0;
    const k0 = ldi(e.rowStart, row), k1 = ldi(e.rowStart, row + 1);
    let count = 0;
    for (let k = k0; k < k1; k++) {
      const p = ldf(e.prob, k);
      sum += p;
      if (p != 0) count++;
    }
    kappa = Math.max(kappa, sum);
    maxRow = max(maxRow, count);
    rn = Math.max(rn, Math.abs(ldf(reward, row)));
  }
  const gk = g * kappa * (1 + <f64>(maxRow + 2) * UNIT);
  if (!(gk < 1)) {
    lastStatus = NOT_CONTRACTING;
    return NaN;
  }
  const denom = (1 - gk) * (1 - 4 * UNIT);
  const tol = SPARSE_TOLERANCE;
  memory.fill(v, 0, (<usize>S) << 3);
  for (let k = 0; k < INITIAL_SWEEPS; k++) {
    for (let t = 0; t < S; t++) {
      const s = k % 2 == 0 ? t : S - 1 - t;
      let qBest = -Infinity;
      for (let a = 0; a < A; a++) {
        const qa = ldf(reward, s * A + a) + g * expectNext(e, s * A + a, v);
        if (qa > qBest) {
          qBest = qa;
          sti(choice, s, a);
        }
      }
      stf(v, s, qBest);
    }
  }
  // Inexact policy iteration (as js): each evaluation to a tenth of the current distance to V*.
  let evalTol: f64 = 1e-3;
  for (let iter = 0; iter < 10000; iter++) {
    memory.fill(policy, 0, (<usize>SA) << 3);
    for (let s = 0; s < S; s++) {
      stf(policy, s * A + ldi(choice, s), 1);
      stf(rPi, s, ldf(reward, s * A + ldi(choice, s)));
    }
    let st = prepare(e, policy);
    if (!st) st = sparseSolve(z, rPi, v, false, evalTol);
    if (st) {
      lastStatus = st;
      return NaN;
    }
    let vn: f64 = 0;
    for (let s = 0; s < S; s++) vn = Math.max(vn, Math.abs(ldf(v, s)));
    const scale = Math.max(1, vn);
    const gain = 0.25 * tol * scale * (1 - gk);
    let bellman: f64 = 0;
    let changed = false;
    for (let s = 0; s < S; s++) {
      const cur = ldi(choice, s);
      let qCur: f64 = 0, qBest = -Infinity;
      let best = cur;
      for (let a = 0; a < A; a++) {
        const qa = ldf(reward, s * A + a) + g * expectNext(e, s * A + a, v);
        if (a == cur) qCur = qa;
        if (qa > qBest) {
          best = a;
          qBest = qa;
        }
      }
      bellman = Math.max(bellman, Math.abs(qBest - ldf(v, s)));
      if (best != cur && qBest - qCur > gain) {
        sti(choice, s, best);
        changed = true;
      }
    }
    const floor = <f64>(maxRow + 4) * UNIT * (rn + (1 + gk) * vn);
    if ((bellman + floor) / denom <= Math.max(tol * scale, (4 * floor) / denom)) {
      let Jv: f64 = 0;
      for (let s = 0; s < S; s++) Jv += ldf(e.initial, s) * ldf(v, s);
      return Jv;
    }
    if (!changed) {
      if (evalTol <= 0.5 * tol) {
        lastStatus = PI_ABOVE_BOUND;
        return NaN;
      }
      evalTol = 0.5 * tol;
    } else {
      evalTol = Math.max(0.5 * tol, Math.min(1e-3, (0.1 * bellman) / (denom * scale)));
    }
  }
  lastStatus = PI_NO_CONVERGENCE;
  return NaN;
}
