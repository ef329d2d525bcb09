import { dot, ldf, stf, ldi, sti } from './mem';

/**
 * Dense LU with partial pivoting of a row-major n x n matrix (P M = L U), blocked for the cache:
 * panels of NB columns are factored unblocked (full-row swaps, as the js reference), the block
 * row of U is finished by forward substitution, and the trailing matrix takes one GEMM-like
 * update per panel from a packed copy of that block row. The update's micro-kernel keeps a 4 x 4
 * block of the result in registers: eight f64x2 accumulators in the SIMD build, scalars
 * otherwise. Every element's sum over the panel runs in the same order in both builds (from 0,
 * k increasing, then one subtraction), so the SIMD and scalar modules give identical bits.
 */

export const NB: i32 = 64;
/** Columns of the packed block row kept hot while every row block of the trailing matrix passes. */
const NC: i32 = 256;

/** Bytes of the packing buffer the factorisation needs for order n. */
export function packBytes(n: i32): i32 {
  return NB * (n + 4) * 8;
}

// @ts-ignore: decorator
@inline function swapRows(p: usize, q: usize, n: i32): void {
  let j = 0;
  if (ASC_FEATURE_SIMD) {
    for (; j + 2 <= n; j += 2) {
      const o = (<usize>j) << 3;
      const x = v128.load(p + o);
      v128.store(p + o, v128.load(q + o));
      v128.store(q + o, x);
    }
  }
  for (; j < n; j++) {
    const t = ldf(p, j);
    stf(p, j, ldf(q, j));
    stf(q, j, t);
  }
}

/** y[j] = y[j] - l * x[j] for j < len. */
// @ts-ignore: decorator
@inline function axpyNeg(y: usize, x: usize, l: f64, len: i32): void {
  let j = 0;
  if (ASC_FEATURE_SIMD) {
    const vl = f64x2.splat(l);
    for (; j + 4 <= len; j += 4) {
      const o = (<usize>j) << 3;
      v128.store(y + o, f64x2.sub(v128.load(y + o), f64x2.mul(vl, v128.load(x + o))));
      v128.store(y + o + 16, f64x2.sub(v128.load(y + o + 16), f64x2.mul(vl, v128.load(x + o + 16))));
    }
    for (; j + 2 <= len; j += 2) {
      const o = (<usize>j) << 3;
      v128.store(y + o, f64x2.sub(v128.load(y + o), f64x2.mul(vl, v128.load(x + o))));
    }
  }
  for (; j < len; j++) stf(y, j, ldf(y, j) - l * ldf(x, j));
}

/**
 * C[r][c] -= sum_k L[r][k] U[k][c] for a 4 x 4 block. L rows start at l (row stride ld bytes),
 * U is a packed strip [kb][4], C rows start at c (row stride ld bytes).
 */
// @ts-ignore: decorator
@inline function kernel4x4(c: usize, l: usize, u: usize, ld: usize, kb: i32): void {
  const l1 = l + ld, l2 = l1 + ld, l3 = l2 + ld;
  if (ASC_FEATURE_SIMD) {
    let c00 = f64x2.splat(0), c01 = f64x2.splat(0);
    let c10 = f64x2.splat(0), c11 = f64x2.splat(0);
    let c20 = f64x2.splat(0), c21 = f64x2.splat(0);
    let c30 = f64x2.splat(0), c31 = f64x2.splat(0);
    for (let k = 0; k < kb; k++) {
      const uo = u + ((<usize>k) << 5);
      const ko = (<usize>k) << 3;
      const u0 = v128.load(uo), u1 = v128.load(uo, 16);
      let b = v128.load64_splat(l + ko);
      c00 = f64x2.add(c00, f64x2.mul(b, u0));
      c01 = f64x2.add(c01, f64x2.mul(b, u1));
      b = v128.load64_splat(l1 + ko);
      c10 = f64x2.add(c10, f64x2.mul(b, u0));
      c11 = f64x2.add(c11, f64x2.mul(b, u1));
      b = v128.load64_splat(l2 + ko);
      c20 = f64x2.add(c20, f64x2.mul(b, u0));
      c21 = f64x2.add(c21, f64x2.mul(b, u1));
      b = v128.load64_splat(l3 + ko);
      c30 = f64x2.add(c30, f64x2.mul(b, u0));
      c31 = f64x2.add(c31, f64x2.mul(b, u1));
    }
    let r = c;
    v128.store(r, f64x2.sub(v128.load(r), c00));
    v128.store(r, f64x2.sub(v128.load(r, 16), c01), 16);
    r += ld;
    v128.store(r, f64x2.sub(v128.load(r), c10));
    v128.store(r, f64x2.sub(v128.load(r, 16), c11), 16);
    r += ld;
    v128.store(r, f64x2.sub(v128.load(r), c20));
    v128.store(r, f64x2.sub(v128.load(r, 16), c21), 16);
    r += ld;
    v128.store(r, f64x2.sub(v128.load(r), c30));
    v128.store(r, f64x2.sub(v128.load(r, 16), c31), 16);
  } else {
    // Two passes of 2 rows x 4 columns keep the accumulators in registers.
    kernel2x4(c, l, u, ld, kb);
    kernel2x4(c + ld + ld, l2, u, ld, kb);
  }
}

/** The scalar half-kernel: rows r and r+1 (ld bytes apart) x 4 columns. */
// @ts-ignore: decorator
@inline function kernel2x4(c: usize, l: usize, u: usize, ld: usize, kb: i32): void {
  const l1 = l + ld;
  let a0: f64 = 0, a1: f64 = 0, a2: f64 = 0, a3: f64 = 0;
  let b0: f64 = 0, b1: f64 = 0, b2: f64 = 0, b3: f64 = 0;
  for (let k = 0; k < kb; k++) {
    const uo = u + ((<usize>k) << 5);
    const ko = (<usize>k) << 3;
    const u0 = load<f64>(uo), u1 = load<f64>(uo, 8), u2 = load<f64>(uo, 16), u3 = load<f64>(uo, 24);
    const x = load<f64>(l + ko), y = load<f64>(l1 + ko);
    a0 += x * u0; a1 += x * u1; a2 += x * u2; a3 += x * u3;
    b0 += y * u0; b1 += y * u1; b2 += y * u2; b3 += y * u3;
  }
  store<f64>(c, load<f64>(c) - a0);
  store<f64>(c, load<f64>(c, 8) - a1, 8);
  store<f64>(c, load<f64>(c, 16) - a2, 16);
  store<f64>(c, load<f64>(c, 24) - a3, 24);
  const d = c + ld;
  store<f64>(d, load<f64>(d) - b0);
  store<f64>(d, load<f64>(d, 8) - b1, 8);
  store<f64>(d, load<f64>(d, 16) - b2, 16);
  store<f64>(d, load<f64>(d, 24) - b3, 24);
}

/** One row x 4 columns (row remainder). */
// @ts-ignore: decorator
@inline function kernel1x4(c: usize, l: usize, u: usize, kb: i32): void {
  let a0: f64 = 0, a1: f64 = 0, a2: f64 = 0, a3: f64 = 0;
  for (let k = 0; k < kb; k++) {
    const uo = u + ((<usize>k) << 5);
    const x = load<f64>(l + ((<usize>k) << 3));
    a0 += x * load<f64>(uo); a1 += x * load<f64>(uo, 8); a2 += x * load<f64>(uo, 16); a3 += x * load<f64>(uo, 24);
  }
  store<f64>(c, load<f64>(c) - a0);
  store<f64>(c, load<f64>(c, 8) - a1, 8);
  store<f64>(c, load<f64>(c, 16) - a2, 16);
  store<f64>(c, load<f64>(c, 24) - a3, 24);
}

/** Trailing update A22 -= L21 U12 for the panel [k0, k0 + kb). */
function trailing(a: usize, n: i32, k0: i32, kb: i32, pack: usize): void {
  const kend = k0 + kb;
  const m = n - kend; // order of A22
  const ld = (<usize>n) << 3;
  const strips = m >> 2;
  // Pack U12 into strips of 4 columns: pack[(strip * kb + k) * 4 + c].
  for (let k = 0; k < kb; k++) {
    const src = a + (<usize>(k0 + k)) * ld + ((<usize>kend) << 3);
    for (let q = 0; q < strips; q++) {
      const dst = pack + (((<usize>(q * kb + k)) << 2) << 3);
      const sp = src + ((<usize>(q << 2)) << 3);
      if (ASC_FEATURE_SIMD) {
        v128.store(dst, v128.load(sp));
        v128.store(dst, v128.load(sp, 16), 16);
      } else {
        store<f64>(dst, load<f64>(sp));
        store<f64>(dst, load<f64>(sp, 8), 8);
        store<f64>(dst, load<f64>(sp, 16), 16);
        store<f64>(dst, load<f64>(sp, 24), 24);
      }
    }
  }
  const rows4 = m & ~3;
  const stripsPerChunk = NC >> 2;
  for (let q0 = 0; q0 < strips; q0 += stripsPerChunk) {
    const q1 = min(strips, q0 + stripsPerChunk);
    let i = 0;
    for (; i < rows4; i += 4) {
      const row = a + (<usize>(kend + i)) * ld;
      const l = row + ((<usize>k0) << 3);
      for (let q = q0; q < q1; q++) {
        const c = row + ((<usize>(kend + (q << 2))) << 3);
        kernel4x4(c, l, pack + (((<usize>(q * kb)) << 2) << 3), ld, kb);
      }
    }
    for (; i < m; i++) {
      const row = a + (<usize>(kend + i)) * ld;
      const l = row + ((<usize>k0) << 3);
      for (let q = q0; q < q1; q++) {
        kernel1x4(row + ((<usize>(kend + (q << 2))) << 3), l, pack + (((<usize>(q * kb)) << 2) << 3), kb);
      }
    }
  }
  // Column remainder (m % 4 columns), element by element in the same order.
  for (let j = strips << 2; j < m; j++) {
    const col = kend + j;
    for (let i = 0; i < m; i++) {
      const row = a + (<usize>(kend + i)) * ld;
      let acc: f64 = 0;
      for (let k = 0; k < kb; k++) acc += ldf(row, k0 + k) * load<f64>(a + (<usize>(k0 + k)) * ld + ((<usize>col) << 3));
      stf(row, col, ldf(row, col) - acc);
    }
  }
}

/** Factors a in place; piv[k] is the row swapped with row k. Returns 0, or 1 when singular. */
export function luFactor(a: usize, piv: usize, n: i32, pack: usize): i32 {
  const ld = (<usize>n) << 3;
  for (let k0 = 0; k0 < n; k0 += NB) {
    const kb = min(NB, n - k0);
    const kend = k0 + kb;
    for (let k = k0; k < kend; k++) {
      const kcol = (<usize>k) << 3;
      let p = k;
      let best = Math.abs(load<f64>(a + (<usize>k) * ld + kcol));
      for (let i = k + 1; i < n; i++) {
        const v = Math.abs(load<f64>(a + (<usize>i) * ld + kcol));
        if (v > best) {
          best = v;
          p = i;
        }
      }
      sti(piv, k, p);
      const krow = a + (<usize>k) * ld;
      if (p != k) swapRows(krow, a + (<usize>p) * ld, n);
      const d = ldf(krow, k);
      if (d == 0) return 1;
      for (let i = k + 1; i < n; i++) {
        const row = a + (<usize>i) * ld;
        const l = ldf(row, k) / d;
        stf(row, k, l);
        if (l != 0) axpyNeg(row + kcol + 8, krow + kcol + 8, l, kend - k - 1);
      }
    }
    if (kend < n) {
      // Block row of U: rows k0..kend-1, columns kend..n-1 (forward substitution with L11).
      const off = (<usize>kend) << 3;
      for (let k = k0; k < kend; k++) {
        const krow = a + (<usize>k) * ld;
        for (let i = k + 1; i < kend; i++) {
          const row = a + (<usize>i) * ld;
          const l = ldf(row, k);
          if (l != 0) axpyNeg(row + off, krow + off, l, n - kend);
        }
      }
      trailing(a, n, k0, kb, pack);
    }
  }
  return 0;
}

/** Solves M x = b in place (row-oriented: dot products of rows of L and U with the solution). */
export function luSolve(a: usize, piv: usize, n: i32, b: usize): void {
  const ld = (<usize>n) << 3;
  for (let k = 0; k < n; k++) {
    const p = ldi(piv, k);
    if (p != k) {
      const t = ldf(b, k);
      stf(b, k, ldf(b, p));
      stf(b, p, t);
    }
  }
  for (let i = 0; i < n; i++) {
    const row = a + (<usize>i) * ld;
    stf(b, i, ldf(b, i) - dot(row, b, i));
  }
  for (let i = n - 1; i >= 0; i--) {
    const row = a + (<usize>i) * ld;
    const o = (<usize>(i + 1)) << 3;
    stf(b, i, (ldf(b, i) - dot(row + o, b + o, n - i - 1)) / ldf(row, i));
  }
}

/**
 * Solves M^T x = b in place (M = P^T L U, so M^T = U^T L^T P), by row sweeps (column-oriented
 * substitution on the transposes) so memory is read contiguously.
 */
export function luSolveTransposed(a: usize, piv: usize, n: i32, b: usize): void {
  const ld = (<usize>n) << 3;
  // U^T y = b: forward.
  for (let i = 0; i < n; i++) {
    const row = a + (<usize>i) * ld;
    const yi = ldf(b, i) / ldf(row, i);
    stf(b, i, yi);
    if (yi != 0) axpyNeg(b + ((<usize>(i + 1)) << 3), row + ((<usize>(i + 1)) << 3), yi, n - i - 1);
  }
  // L^T z = y: backward (unit diagonal).
  for (let i = n - 1; i > 0; i--) {
    const zi = ldf(b, i);
    if (zi != 0) axpyNeg(b, a + (<usize>i) * ld, zi, i);
  }
  for (let k = n - 1; k >= 0; k--) {
    const p = ldi(piv, k);
    if (p != k) {
      const t = ldf(b, k);
      stf(b, k, ldf(b, p));
      stf(b, p, t);
    }
  }
}
