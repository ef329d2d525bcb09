import { dot, ldf, ldi, sti, zalloc, release } from './mem';
import { Sparse, sparseFree } from './sparse';

/** Past this many states the exact solves switch from a dense LU to sparse iterations (as js). */
export const DENSE_LIMIT: i32 = 2048;

/**
 * One environment: the shared tables (rho, the transition kernel in CSR form over the S*A rows)
 * and the workspaces of every kernel. Workspaces are allocated on first use, so an exact-only run
 * never builds alias tables and a sampled-only run never allocates the S x S matrix.
 */
@unmanaged
export class Env {
  S: i32;
  A: i32;
  SA: i32;
  nnz: i32;
  dense: i32;
  gamma: f64;
  initial: usize; // f64[S]
  rowStart: usize; // i32[SA+1]
  next: usize; // i32[nnz]
  prob: usize; // f64[nnz]
  rowFull: usize; // i32[SA]: 1 when the row lists every next state in order (contiguous)

  // Sampler (lazy).
  sampler: i32;
  aStart: usize; // i32[SA+1]
  aEntries: usize; // alias columns, 16 bytes each: prob f64, hi i32, lo i32
  aBytes: f64;
  iN: i32;
  iEntries: usize;
  pi: usize; // f64[SA]
  cum: usize; // f64[SA]
  lastPos: usize; // i32[S]
  piStamp: usize; // i32[S]
  visits: usize; // f64[S], zero between trajectories
  counts: usize; // f64[SA], zero between trajectories
  visited: usize; // i32[S]
  acc: usize; // f64[SA]: the last estimate; zero outside the rows of piList
  logPi: usize; // f64[SA]: log pi rows (regularised calls only)
  piList: usize; // i32[S]: states whose policy row the current call computed
  nPi: i32;
  stamp: i32;
  // A sampled local round's lazy theta (lazyRound in sampler.ts): while lzD != 0, row s of theta
  // is (start[s] + lzLc * c[s]) + D[s], formed into lzRow when a policy row is needed.
  lzStart: usize; // f64[SA] (the round's theta, unchanged until the end of the round)
  lzC: usize; // f64[SA] or 0
  lzLc: f64;
  lzD: usize; // f64[SA] while a round runs, else 0
  lazyD: usize; // f64[SA]: the sparse sum, all zero between rounds (allocated with the sampler)
  lzRow: usize; // f64[A]
  // A pulled round (FedProx, Ditto; js Sampler.pullRound): lzD holds x = theta - center as of step
  // pullT[s] (-1: untouched, x = start - center at step 0); lzQp[n] = q^n, lzGs[n] = sum_{i<n} q^i.
  lzCenter: usize; // f64[SA] or 0
  lzQp: usize; // f64[steps+1]
  lzGs: usize; // f64[steps+1]
  lzEta: f64;
  lzStep: i32;
  pullT: usize; // i32[S], -1 between rounds
  // Lockstep lanes (capacity laneCap steps).
  laneCap: i32;
  draws: usize; // f64[LANES*2K]
  trajS: usize; // i32[LANES*K]
  trajSa: usize; // i32[LANES*K]
  disc: usize; // f64[K]
  terms: usize; // f64[LANES*K]: gamma^t (r_t - tau log pi_t) of the regularised estimator
  laneState: usize; // i32[16]
  laneG: usize; // f64[16]
  lanePend: usize; // usize[16]: the alias column each lane draws its next state from
  laneFrac: usize; // f64[16]: x - k of that draw
  touchSink: i32; // the xor of the lanes' touch loads (sampleBatch): stored so they stay in the code
  // FedSVRPG-M (allocated on first use): rows of pi_thetaPrev and their logs, current when
  // prevStamp[s] == prevGen, and the batch's two sums (finished into its two means).
  svrpg: i32;
  piPrev: usize; // f64[SA]
  logPiPrev: usize; // f64[SA]
  prevStamp: usize; // i32[S]: the prevGen a row was computed for
  prevGen: i32;
  svC: usize; // f64[SA]: c = (1 - beta) u of a lazy round (svrpgLazyRound)
  svCur: usize; // f64[SA]: C, then the GPOMDP mean at theta
  svPrev: usize; // f64[SA]: W, then the w-weighted GPOMDP mean at thetaPrev
  svList: usize; // i32[S]: the states whose svCur/svPrev rows the last call wrote (zero elsewhere)
  nSv: i32;

  // Exact solver (lazy).
  exact: i32;
  xpi: usize; // f64[SA]
  xlogPi: usize; // f64[SA]
  mat: usize; // f64[S*S] (dense path)
  piv: usize; // i32[S]
  pack: usize; // f64[S*NB] packing buffer of the blocked LU
  work: usize; // f64[S]
  oneJ: usize; // f64[1]
  oneV: usize; // f64[S]
  oneQ: usize; // f64[SA]
  oneGrad: usize; // f64[SA]
  oneOcc: usize; // f64[S]
  // Sparse path (S > DENSE_LIMIT): rows of P_policy and scratch.
  kStart: usize; // i32[S+1]
  kCol: usize; // i32[nnz]
  kVal: usize; // f64[nnz]
  mark: usize; // i32[S]
  accS: usize; // f64[S]
  touched: usize; // i32[S]
  rhs: usize; // f64[S]
  sparse: usize; // Sparse (assembly/sparse.ts): ILU(0) and BiCGSTAB memory
  // Policy iteration.
  policy: usize; // f64[SA]
  choice: usize; // i32[S]
  // Truncated recursion.
  tq: usize; // f64[SA]
  tv: usize; // f64[S]
  tvNext: usize; // f64[S]
}

export function envNew(S: i32, A: i32, gamma: f64, nnz: i32): Env {
  const e = changetype<Env>(zalloc(1, <i32>offsetof<Env>()));
  e.S = S;
  e.A = A;
  e.SA = S * A;
  e.nnz = nnz;
  e.gamma = gamma;
  e.dense = S <= DENSE_LIMIT ? 1 : 0;
  e.initial = zalloc(S, 8);
  e.rowStart = zalloc(S * A + 1, 4);
  e.next = zalloc(nnz, 4);
  e.prob = zalloc(nnz, 8);
  e.rowFull = zalloc(S * A, 4);
  e.laneState = zalloc(16, 4);
  e.laneG = zalloc(16, 8);
  e.lanePend = zalloc(16, 4);
  e.laneFrac = zalloc(16, 8);
  return e;
}

/**
 * Checks what the facade wrote (offsets monotone from 0 to nnz, next states in range, every
 * probability finite and >= 0, every row and rho with some positive mass), so no kernel can
 * ever address outside its tables (an alias row needs at least one column), and marks full
 * rows. Returns 0, or a code naming the first defect: 1 offsets, 2 next state out of range,
 * 3 a negative or non-finite probability, 4 a row with no positive probability, 5 the same in rho.
 */
export function envFinish(e: Env): i32 {
  const S = e.S, SA = e.SA;
  if (ldi(e.rowStart, 0) != 0 || ldi(e.rowStart, SA) != e.nnz) return 1;
  for (let r = 0; r < SA; r++) {
    const a = ldi(e.rowStart, r), b = ldi(e.rowStart, r + 1);
    if (b < a || b > e.nnz) return 1;
    let full = b - a == S ? 1 : 0;
    let positive = false;
    for (let k = a; k < b; k++) {
      const j = ldi(e.next, k);
      if (j < 0 || j >= S) return 2;
      if (j != k - a) full = 0;
      const p = ldf(e.prob, k);
      if (!(p >= 0 && p <= 1.0000001)) return 3;
      if (p > 0) positive = true;
    }
    if (!positive) return 4;
    sti(e.rowFull, r, full);
  }
  let mass = false;
  for (let s = 0; s < S; s++) {
    const p = ldf(e.initial, s);
    if (!(p >= 0 && p <= 1.0000001)) return 5;
    if (p > 0) mass = true;
  }
  return mass ? 0 : 5;
}

export function envFree(e: Env): void {
  release(e.initial);
  release(e.rowStart);
  release(e.next);
  release(e.prob);
  release(e.rowFull);
  if (e.sampler) {
    release(e.aStart);
    release(e.aEntries);
    release(e.iEntries);
    release(e.pi);
    release(e.cum);
    release(e.lastPos);
    release(e.piStamp);
    release(e.visits);
    release(e.counts);
    release(e.visited);
    release(e.acc);
    release(e.logPi);
    release(e.piList);
    release(e.lazyD);
    release(e.lzRow);
    release(e.pullT);
    if (e.laneCap) {
      release(e.draws);
      release(e.trajS);
      release(e.trajSa);
      release(e.disc);
      release(e.terms);
    }
  }
  if (e.svrpg) {
    release(e.piPrev);
    release(e.logPiPrev);
    release(e.prevStamp);
    release(e.svC);
    release(e.svCur);
    release(e.svPrev);
    release(e.svList);
  }
  release(e.laneState);
  release(e.laneG);
  release(e.lanePend);
  release(e.laneFrac);
  if (e.exact) {
    release(e.xpi);
    release(e.xlogPi);
    release(e.mat);
    release(e.piv);
    release(e.pack);
    release(e.work);
    release(e.oneJ);
    release(e.oneV);
    release(e.oneQ);
    release(e.oneGrad);
    release(e.oneOcc);
    release(e.kStart);
    release(e.kCol);
    release(e.kVal);
    release(e.mark);
    release(e.accS);
    release(e.touched);
    release(e.rhs);
    if (e.sparse) sparseFree(changetype<Sparse>(e.sparse));
    release(e.policy);
    release(e.choice);
    release(e.tq);
    release(e.tv);
    release(e.tvNext);
  }
  heap.free(changetype<usize>(e));
}

/**
 * (P v)(s,a) = sum_s' P(s'|s,a) v(s'): a full row (every next state, in order) as a dot product
 * with four partial sums, a sparse row in increasing s' (as the js reference).
 */
// @ts-ignore: decorator
@inline export function expectNext(e: Env, row: i32, v: usize): f64 {
  const k0 = ldi(e.rowStart, row), k1 = ldi(e.rowStart, row + 1);
  if (ldi(e.rowFull, row)) return dot(e.prob + ((<usize>k0) << 3), v, k1 - k0);
  let sum: f64 = 0;
  {
    for (let k = k0; k < k1; k++) sum += ldf(e.prob, k) * ldf(v, ldi(e.next, k));
  }
  return sum;
}
