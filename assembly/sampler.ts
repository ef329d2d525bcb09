import { Env } from './env';
import { ldf, stf, ldi, sti, zalloc, release } from './mem';
import { detExp, detLog } from './detmath';

/**
 * The Eq. 5 estimator, consuming the random stream exactly as src/backends/js/sampler.ts: the
 * same alias tables (Vose, built in the documented order), the same xoshiro128** generator and
 * double construction, the same softmax row and action pick, and the same draw order (per
 * trajectory one double for s_0, then per step one for the action and, except after the last
 * step, one for the next state: 4K outputs), so one stream gives the same trajectories and (up to
 * the last bit of exp) the same estimate as the js reference, with g[s,a] += G (c(s,a) - n(s)
 * pi(a|s)) added per trajectory in trajectory order and divided by M at the end.
 *
 * How it runs: the doubles of up to LANES trajectories are drawn first (in stream order), then the
 * trajectories advance in lockstep, one step of every lane at a time: their alias-table, policy
 * and reward reads are independent, so an out-of-order core overlaps their cache misses (large
 * tables) and their dependency chains (small ones). Each lane records its (s, a) path and return;
 * the paths are then replayed one trajectory after another to add their scores in order. The
 * action pick and the alias choice are branch-free (random branches mispredict half the time).
 */

/** Trajectories advanced together. */
export const LANES: i32 = 16;
/** Bytes of one alias column: prob (f64), hi (i32), lo (i32), one cache line per draw. */
const ENTRY: i32 = 16;

/** Vose's construction of one row into AoS entries, exactly as alias.ts fillRow. */
function fillRow(outcomes: usize, probs: usize, n: i32, entries: usize, scaled: usize, small: usize, large: usize): void {
  let ns = 0;
  let nl = 0;
  const nf = <f64>n;
  for (let k = 0; k < n; k++) {
    const sc = ldf(probs, k) * nf;
    stf(scaled, k, sc);
    const o = ldi(outcomes, k);
    const en = entries + <usize>(k * ENTRY);
    store<f64>(en, 0);
    store<i32>(en, o, 8);
    store<i32>(en, o, 12);
    if (sc < 1) sti(small, ns++, k);
    else sti(large, nl++, k);
  }
  while (ns > 0 && nl > 0) {
    const l = ldi(small, --ns);
    const g = ldi(large, --nl);
    const el = entries + <usize>(l * ENTRY);
    store<f64>(el, ldf(scaled, l));
    store<i32>(el, ldi(outcomes, g), 12);
    const sg = ldf(scaled, g) + ldf(scaled, l) - 1;
    stf(scaled, g, sg);
    if (sg < 1) sti(small, ns++, g);
    else sti(large, nl++, g);
  }
  while (nl > 0) store<f64>(entries + <usize>(ldi(large, --nl) * ENTRY), 1);
  while (ns > 0) store<f64>(entries + <usize>(ldi(small, --ns) * ENTRY), 1);
}

function buildSampler(e: Env): void {
  const S = e.S, SA = e.SA;
  // Transition rows: only outcomes with p > 0 get a column.
  let total = 0;
  let maxRow = 1;
  for (let r = 0; r < SA; r++) {
    let n = 0;
    for (let k = ldi(e.rowStart, r); k < ldi(e.rowStart, r + 1); k++) if (ldf(e.prob, k) > 0) n++;
    total += n;
    if (n > maxRow) maxRow = n;
  }
  if (S > maxRow) maxRow = S;
  const outcomes = zalloc(maxRow, 4);
  const probs = zalloc(maxRow, 8);
  const scaled = zalloc(maxRow, 8);
  const small = zalloc(maxRow, 4);
  const large = zalloc(maxRow, 4);
  e.aStart = zalloc(SA + 1, 4);
  e.aEntries = zalloc(total, ENTRY);
  let off = 0;
  for (let r = 0; r < SA; r++) {
    let n = 0;
    for (let k = ldi(e.rowStart, r); k < ldi(e.rowStart, r + 1); k++) {
      const p = ldf(e.prob, k);
      if (p > 0) {
        sti(outcomes, n, ldi(e.next, k));
        stf(probs, n++, p);
      }
    }
    sti(e.aStart, r, off);
    fillRow(outcomes, probs, n, e.aEntries + <usize>off * ENTRY, scaled, small, large);
    off += n;
  }
  sti(e.aStart, SA, off);
  e.aBytes = <f64>total * ENTRY;
  // Initial distribution.
  let n = 0;
  for (let s = 0; s < S; s++) {
    const p = ldf(e.initial, s);
    if (p > 0) {
      sti(outcomes, n, s);
      stf(probs, n++, p);
    }
  }
  e.iN = n;
  e.iEntries = zalloc(n, ENTRY);
  fillRow(outcomes, probs, n, e.iEntries, scaled, small, large);
  release(outcomes);
  release(probs);
  release(scaled);
  release(small);
  release(large);
  e.pi = zalloc(SA, 8);
  e.cum = zalloc(SA, 8);
  e.lastPos = zalloc(S, 4);
  e.piStamp = zalloc(S, 4);
  e.visits = zalloc(S, 8);
  e.counts = zalloc(SA, 8);
  e.visited = zalloc(S, 4);
  e.acc = zalloc(SA, 8);
  e.logPi = zalloc(SA, 8);
  e.piList = zalloc(S, 4);
  e.lazyD = zalloc(SA, 8);
  e.lzRow = zalloc(e.A, 8);
  e.pullT = zalloc(S, 4);
  memory.fill(e.pullT, 0xff, (<usize>S) << 2);
  e.lzCenter = 0;
  e.lzD = 0;
  e.nPi = 0;
  e.stamp = 0;
  e.laneCap = 0;
  e.sampler = 1;
}

/** Lane buffers for horizon K (kept between calls, grown when K grows). */
function ensureLanes(e: Env, K: i32): void {
  if (K <= e.laneCap) return;
  if (e.laneCap) {
    release(e.draws);
    release(e.trajS);
    release(e.trajSa);
    release(e.disc);
    release(e.terms);
  }
  e.draws = zalloc(LANES * 2 * K, 8);
  e.terms = zalloc(LANES * K, 8);
  e.trajS = zalloc(LANES * K, 4);
  e.trajSa = zalloc(LANES * K, 4);
  e.disc = zalloc(K, 8);
  e.laneCap = K;
}

/**
 * pi = softmax(th) over A actions with the max subtracted; with `withLog`, also lp = log pi =
 * th - max - log z (exact even where pi underflows). detExp and detLog, z summed in action order:
 * the same bits as the js and native rows. With cum != 0 the normalising pass also writes the
 * running sum of pi into cum and returns the last action with pi > 0 (one pass instead of two).
 */
// @ts-ignore: decorator
@inline function softmaxRow(th: usize, A: i32, pi: usize, lp: usize, withLog: bool, cum: usize): i32 {
  let m = ldf(th, 0);
  for (let a = 1; a < A; a++) {
    const t = ldf(th, a);
    if (t > m) m = t;
  }
  let z: f64 = 0;
  for (let a = 0; a < A; a++) {
    const x = detExp(ldf(th, a) - m);
    stf(pi, a, x);
    z += x;
  }
  if (withLog) {
    const logZ = detLog(z);
    for (let a = 0; a < A; a++) stf(lp, a, ldf(th, a) - m - logZ);
  }
  let last = 0;
  if (cum) {
    let c: f64 = 0;
    for (let a = 0; a < A; a++) {
      const p = ldf(pi, a) / z;
      stf(pi, a, p);
      c += p;
      stf(cum, a, c);
      if (p > 0) last = a;
    }
  } else {
    for (let a = 0; a < A; a++) stf(pi, a, ldf(pi, a) / z);
  }
  return last;
}

/** Brings row s's x = theta - center (in lzD) from its step pullT[s] to step l (js pullRow). */
function pullRow(e: Env, s: i32, l: i32): void {
  const A = e.A;
  const off = (<usize>(s * A)) << 3;
  const d = e.lzD + off, ce = e.lzCenter + off;
  if (ldi(e.pullT, s) < 0) {
    const st = e.lzStart + off;
    for (let a = 0; a < A; a++) stf(d, a, ldf(st, a) - ldf(ce, a));
    sti(e.pullT, s, 0);
  }
  const n = l - ldi(e.pullT, s);
  const qn = ldf(e.lzQp, n), gn = ldf(e.lzGs, n);
  if (e.lzC) {
    const c = e.lzC + off, eta = e.lzEta;
    for (let a = 0; a < A; a++) stf(d, a, qn * ldf(d, a) + gn * (eta * ldf(c, a)));
  } else {
    for (let a = 0; a < A; a++) stf(d, a, qn * ldf(d, a));
  }
  sti(e.pullT, s, l);
}

/** pi(.|s) (softmaxRow), its running sum, and its last positive action; log pi with `withLog`. */
function policyRow(e: Env, theta: usize, s: i32, stamp: i32, withLog: bool): void {
  const A = e.A;
  const off = (<usize>(s * A)) << 3;
  let src = theta + off;
  if (e.lzD) {
    // Row s of the lazy theta, in the documented order (js Sampler.localRoundLazy): (start + lc*c) + D.
    const row = e.lzRow, st = e.lzStart + off, d = e.lzD + off;
    if (e.lzCenter) {
      pullRow(e, s, e.lzStep);
      const ce = e.lzCenter + off;
      for (let a = 0; a < A; a++) stf(row, a, ldf(ce, a) + ldf(d, a));
    } else if (e.lzC) {
      const c = e.lzC + off, lc = e.lzLc;
      for (let a = 0; a < A; a++) stf(row, a, ldf(st, a) + lc * ldf(c, a) + ldf(d, a));
    } else {
      for (let a = 0; a < A; a++) stf(row, a, ldf(st, a) + ldf(d, a));
    }
    src = row;
  }
  sti(e.lastPos, s, softmaxRow(src, A, e.pi + off, e.logPi + off, withLog, e.cum + off));
  sti(e.piStamp, s, stamp);
  sti(e.piList, e.nPi++, s);
}

/**
 * The smallest a with u < cum[a] (A when there is none), as a count: cum is non-decreasing (a
 * running sum of non-negative terms), so the entries with cum <= u are exactly a prefix.
 */
// @ts-ignore: decorator
@inline function pickAction(cum: usize, A: i32, u: f64): i32 {
  let a = 0;
  let b = 0;
  // Vector compares pay off for longer rows only (lane extraction costs more than a few scalar compares).
  if (ASC_FEATURE_SIMD && A >= 8) {
    const vu = f64x2.splat(u);
    let cnt = i64x2.splat(0);
    for (; b + 2 <= A; b += 2) cnt = i64x2.sub(cnt, f64x2.le(v128.load(cum + ((<usize>b) << 3)), vu));
    a = <i32>(i64x2.extract_lane(cnt, 0) + i64x2.extract_lane(cnt, 1));
  }
  for (; b < A; b++) a += <i32>(ldf(cum, b) <= u);
  return a;
}

/** One alias draw from a row of n AoS entries with uniform u. */
// @ts-ignore: decorator
@inline function aliasDraw(entries: usize, n: i32, u: f64): i32 {
  const x = u * <f64>n;
  const k = <i32>x;
  const en = entries + <usize>(k * ENTRY);
  return select<i32>(load<i32>(en, 8), load<i32>(en, 12), x - <f64>k < load<f64>(en));
}

/** Restores the all-zero acc outside the rows the previous call wrote, and empties piList. */
function resetAcc(e: Env): void {
  const A = e.A, acc = e.acc, piList = e.piList;
  for (let q = 0, nq = e.nPi; q < nq; q++) {
    const row = acc + ((<usize>(ldi(piList, q) * A)) << 3);
    for (let b = 0; b < A; b++) stf(row, b, 0);
  }
  e.nPi = 0;
}

/** A new stamp for this call's policy rows; stamps wrap by resetting the stamp arrays. */
function nextStamp(e: Env): i32 {
  if (e.stamp >= 0x7ffffff0) {
    e.stamp = 0;
    memory.fill(e.piStamp, 0xff, (<usize>e.S) << 2);
  }
  return ++e.stamp;
}

/**
 * Runs `batch` trajectories and leaves their estimate (the sum divided by the batch) in e.acc,
 * whose other rows are zero. Only the rows of states visited in this call are touched: they are
 * listed in e.piList (the states whose policy row was computed) and zeroed again at the next call,
 * so a call costs O(visited states), not O(S*A). The stream state is read from and written back
 * to rng (4 words). Returns e.acc.
 */
export function sampleBatch(
  e: Env, theta: usize, reward: usize, horizon: i32, batch: i32, rng: usize, tau: f64, gpomdp: bool,
  thetaPrev: usize = 0, clip: f64 = 0,
): usize {
  // gpomdp: the (entropy-regularised when tau > 0) GPOMDP estimator; otherwise Eq. 5.
  const reg = gpomdp;
  // thetaPrev != 0: FedSVRPG-M (svrpgBatch) - the lanes' paths feed svrpgTrajectory, rows carry logs.
  const svr = thetaPrev != 0;
  const withLog = reg || svr;
  if (!e.sampler) buildSampler(e);
  ensureLanes(e, horizon);
  const A = e.A;
  const K = horizon;
  const D = 2 * K; // doubles per trajectory
  const pi = e.pi, cum = e.cum, lastPos = e.lastPos, piStamp = e.piStamp;
  const visits = e.visits, counts = e.counts, visited = e.visited, acc = e.acc;
  const tStart = e.aStart, tE = e.aEntries;
  const iN = e.iN, iE = e.iEntries;
  const draws = e.draws, trajS = e.trajS, trajSa = e.trajSa, disc = e.disc, terms = e.terms, logPi = e.logPi;
  resetAcc(e);
  const stamp = nextStamp(e);
  const piList = e.piList;
  // gamma^t by repeated multiplication, as the js loop's disc *= gamma.
  let dg: f64 = 1;
  for (let t = 0; t < K; t++) {
    stf(disc, t, dg);
    dg *= e.gamma;
  }
  // When the batch will visit most states anyway (the js backend's rule), every policy row is
  // computed up front and the per-step check disappears; the rows are the same either way.
  // Not in a lazy round: there the formed rows must be exactly the visited ones (as in native).
  const eager = !e.lzD && <i64>e.SA <= 2 * <i64>K * <i64>batch;
  if (eager) for (let s = 0; s < e.S; s++) policyRow(e, theta, s, stamp, withLog);
  const lanes = batch < LANES ? batch : LANES;
  // Alias tables that fit the caches resolve each lane's next state at once; larger ones (pass B).
  const inCache = e.aBytes <= 262144;
  // Tables that outgrow the caches (native's bigTables rule): a touch pass starts every lane's
  // loads of its state's rows before any lane works on its state (WebAssembly has no prefetch).
  const touch = e.aBytes + <f64>e.SA * 32 > 1048576;
  const lzS = e.lzStart, lzC = e.lzC, lzD = e.lzD;
  let sink: i32 = 0;
  // Lane state: current state and return, in small local arrays.
  const cur = e.laneState, G = e.laneG, pend = e.lanePend, frac = e.laneFrac;
  let s0 = load<u32>(rng), s1 = load<u32>(rng, 4), s2 = load<u32>(rng, 8), s3 = load<u32>(rng, 12);
  for (let m0 = 0; m0 < batch; m0 += lanes) {
    const nl = min(lanes, batch - m0);
    // 1. The lanes' doubles, trajectory after trajectory, in stream order.
    const nd = nl * D;
    for (let i = 0; i < nd; i++) {
      let mm = s1 * 5;
      const r1 = rotl<u32>(mm, 7) * 9;
      let t = s1 << 9; s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = rotl<u32>(s3, 11);
      mm = s1 * 5;
      const r2 = rotl<u32>(mm, 7) * 9;
      t = s1 << 9; s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = rotl<u32>(s3, 11);
      stf(draws, i, (<f64>(r1 >>> 5) * 67108864.0 + <f64>(r2 >>> 6)) * 1.1102230246251565e-16);
    }
    // 2. s_0 of every lane.
    for (let l = 0; l < nl; l++) {
      sti(cur, l, aliasDraw(iE, iN, ldf(draws, l * D)));
      stf(G, l, 0);
    }
    // 3. Lockstep: step t of every lane. Pass A does the policy work of every lane and computes
    //    where its next state's alias column is; pass B, a tight loop, reads those columns, so
    //    the lanes' cache misses (the alias table of a large MDP lives in DRAM) are in flight
    //    together instead of one after another.
    for (let t = 0; t < K; t++) {
      const dt = ldf(disc, t);
      const more = t + 1 < K;
      if (touch) {
        // One load from every line the lane's step (and the scores after the batch) will use, in a
        // tight loop: the lanes' cache misses are then in flight together (group prefetching by
        // the out-of-order core), not one lane after another inside pass A. Rows of 16-byte
        // aligned arrays may span two lines: first and last entries.
        const last = (<usize>(A - 1)) << 3;
        for (let l = 0; l < nl; l++) {
          const s = ldi(cur, l);
          const off = (<usize>(s * A)) << 3;
          sink ^= ldi(piStamp, s) ^ ldi(lastPos, s) ^ ldi(tStart, s * A) ^ ldi(tStart, s * A + A);
          let x = load<u64>(cum + off) ^ load<u64>(cum + off + last) ^ load<u64>(pi + off) ^ load<u64>(pi + off + last);
          x ^= load<u64>(reward + off) ^ load<u64>(reward + off + last) ^ load<u64>(visits + ((<usize>s) << 3));
          x ^= load<u64>(counts + off) ^ load<u64>(counts + off + last) ^ load<u64>(acc + off) ^ load<u64>(acc + off + last);
          if (lzD) {
            x ^= load<u64>(lzD + off) ^ load<u64>(lzD + off + last) ^ load<u64>(lzS + off) ^ load<u64>(lzS + off + last);
            if (lzC) x ^= load<u64>(lzC + off) ^ load<u64>(lzC + off + last);
          } else {
            x ^= load<u64>(theta + off) ^ load<u64>(theta + off + last);
          }
          sink ^= <i32>x;
        }
      }
      for (let l = 0; l < nl; l++) {
        const s = ldi(cur, l);
        if (!eager && ldi(piStamp, s) != stamp) policyRow(e, theta, s, stamp, withLog);
        const base = s * A;
        const ld = draws + ((<usize>(l * D)) << 3);
        let a = pickAction(cum + ((<usize>base) << 3), A, load<f64>(ld + ((<usize>(1 + 2 * t)) << 3)));
        a = select<i32>(ldi(lastPos, s), a, a == A);
        const sa = base + a;
        if (reg) stf(terms, l * K + t, dt * (ldf(reward, sa) - tau * ldf(logPi, sa)));
        else stf(G, l, ldf(G, l) + dt * ldf(reward, sa));
        sti(trajS, l * K + t, s);
        sti(trajSa, l * K + t, sa);
        if (more) {
          const st = ldi(tStart, sa);
          const x = load<f64>(ld + ((<usize>(2 + 2 * t)) << 3)) * <f64>(ldi(tStart, sa + 1) - st);
          const k = <i32>x;
          const en = tE + <usize>(st + k) * ENTRY;
          if (inCache) {
            sti(cur, l, select<i32>(load<i32>(en, 8), load<i32>(en, 12), x - <f64>k < load<f64>(en)));
          } else {
            store<usize>(pend + ((<usize>l) << 2), en);
            stf(frac, l, x - <f64>k);
          }
        }
      }
      if (more && !inCache) {
        for (let l = 0; l < nl; l++) {
          const en = load<usize>(pend + ((<usize>l) << 2));
          sti(cur, l, select<i32>(load<i32>(en, 8), load<i32>(en, 12), ldf(frac, l) < load<f64>(en)));
        }
      }
    }
    // 4. Scores, trajectory after trajectory.
    if (svr) {
      for (let l = 0; l < nl; l++) {
        svrpgTrajectory(e, thetaPrev, reward, trajS + ((<usize>(l * K)) << 2), trajSa + ((<usize>(l * K)) << 2), K, clip);
      }
      continue;
    }
    if (reg) {
      // GPOMDP with the entropy bonus (as js estimateRegularized): reward-to-go from the end,
      // g[s_l,.] += togo_l (e_{a_l} - pi(.|s_l)).
      for (let l = 0; l < nl; l++) {
        const ps = trajS + ((<usize>(l * K)) << 2);
        const psa = trajSa + ((<usize>(l * K)) << 2);
        const pt = terms + ((<usize>(l * K)) << 3);
        let togo: f64 = 0;
        for (let t = K - 1; t >= 0; t--) {
          togo += ldf(pt, t);
          const base = ldi(ps, t) * A;
          const al = ldi(psa, t) - base;
          const off = (<usize>base) << 3;
          const ar = acc + off, pr = pi + off;
          for (let b = 0; b < A; b++) stf(ar, b, ldf(ar, b) + togo * (<f64>(b == al ? 1 : 0) - ldf(pr, b)));
        }
      }
      continue;
    }
    // g[s,.] += G (c(s,.) - n(s) pi(.|s)), visited states in first-visit order (as js); visits
    // and counts are zero between trajectories.
    for (let l = 0; l < nl; l++) {
      const ps = trajS + ((<usize>(l * K)) << 2);
      const psa = trajSa + ((<usize>(l * K)) << 2);
      let nv = 0;
      for (let t = 0; t < K; t++) {
        const s = ldi(ps, t);
        const v = ldf(visits, s);
        sti(visited, nv, s);
        nv += <i32>(v == 0);
        stf(visits, s, v + 1);
        const sa = ldi(psa, t);
        stf(counts, sa, ldf(counts, sa) + 1);
      }
      const Gl = ldf(G, l);
      for (let v = 0; v < nv; v++) {
        const vs = ldi(visited, v);
        const off = (<usize>(vs * A)) << 3;
        const n = ldf(visits, vs);
        const ar = acc + off, cr = counts + off, pr = pi + off;
        for (let b = 0; b < A; b++) {
          stf(ar, b, ldf(ar, b) + Gl * (ldf(cr, b) - n * ldf(pr, b)));
          stf(cr, b, 0);
        }
        stf(visits, vs, 0);
      }
    }
  }
  store<u32>(rng, s0);
  store<u32>(rng, s1, 4);
  store<u32>(rng, s2, 8);
  store<u32>(rng, s3, 12);
  e.touchSink = sink;
  if (svr) return acc; // svrpgBatch divides its own sums
  // The mean: the same division as the js estimator, on the visited rows only (the rest are 0).
  const bf = <f64>batch;
  for (let q = 0, nq = e.nPi; q < nq; q++) {
    const row = acc + ((<usize>(ldi(piList, q) * A)) << 3);
    for (let b = 0; b < A; b++) stf(row, b, ldf(row, b) / bf);
  }
  return acc;
}

/** True when every entry of x [n] is finite (x - x is +0 exactly for finite x, NaN otherwise). */
export function allFinite(x: usize, n: i32): bool {
  let j = 0;
  let bits: u64 = 0;
  if (ASC_FEATURE_SIMD) {
    let acc = i64x2.splat(0);
    for (; j + 2 <= n; j += 2) {
      const v = v128.load(x + ((<usize>j) << 3));
      acc = v128.or(acc, f64x2.sub(v, v));
    }
    bits = i64x2.extract_lane(acc, 0) | i64x2.extract_lane(acc, 1);
  }
  for (; j < n; j++) {
    const v = ldf(x, j);
    bits |= reinterpret<u64>(v - v);
  }
  return bits == 0;
}

/**
 * The estimate at theta (tau > 0: the entropy-regularised GPOMDP estimator): returns the pointer of the [S*A] result (valid until the next call on
 * this environment), or 0 when theta holds a non-finite entry (nothing sampled then).
 */
export function estimate(e: Env, theta: usize, reward: usize, horizon: i32, batch: i32, rng: usize, tau: f64, gpomdp: bool): usize {
  if (!allFinite(theta, e.SA)) return 0;
  return sampleBatch(e, theta, reward, horizon, batch, rng, tau, gpomdp);
}

/** pi_thetaPrev(.|s) and its log (FedSVRPG-M's second policy), valid while e.prevGen is. */
function prevRow(e: Env, thetaPrev: usize, s: i32): void {
  const off = (<usize>(s * e.A)) << 3;
  softmaxRow(thetaPrev + off, e.A, e.piPrev + off, e.logPiPrev + off, true, 0);
  sti(e.prevStamp, s, e.prevGen);
}

/**
 * One trajectory's FedSVRPG-M sums from its recorded path, operation for operation as
 * src/backends/js/sampler.ts svrpgBatch: lw = sum_t (log pi_prev - log pi)(a_t|s_t) in step order
 * (rows of pi_thetaPrev formed here when missing), w = detExp(lw) clipped when clip > 0; backward
 * togo += gamma^t r_t, C(s_t, a_t) += togo (in svCur), W(s_t, a_t) += w*togo (in svPrev).
 */
function svrpgTrajectory(e: Env, thetaPrev: usize, reward: usize, ps: usize, psa: usize, K: i32, clip: f64): void {
  const prevGen = e.prevGen, prevStamp = e.prevStamp;
  const logPi = e.logPi, logPiPrev = e.logPiPrev, disc = e.disc;
  let lw: f64 = 0;
  for (let t = 0; t < K; t++) {
    const s = ldi(ps, t);
    if (ldi(prevStamp, s) != prevGen) prevRow(e, thetaPrev, s);
    const sa = ldi(psa, t);
    lw += ldf(logPiPrev, sa) - ldf(logPi, sa);
  }
  let w = detExp(lw);
  if (clip > 0) w = w > clip ? clip : w < 1 / clip ? 1 / clip : w;
  const C = e.svCur, W = e.svPrev;
  let togo: f64 = 0;
  for (let t = K - 1; t >= 0; t--) {
    const sa = ldi(psa, t);
    togo += ldf(disc, t) * ldf(reward, sa);
    stf(C, sa, ldf(C, sa) + togo);
    stf(W, sa, ldf(W, sa) + w * togo);
  }
}

/** FedSVRPG-M's blocks, allocated on first use. */
function ensureSvrpg(e: Env): void {
  if (e.svrpg) return;
  e.piPrev = zalloc(e.SA, 8);
  e.logPiPrev = zalloc(e.SA, 8);
  e.prevStamp = zalloc(e.S, 4);
  e.svC = zalloc(e.SA, 8);
  e.svCur = zalloc(e.SA, 8);
  e.svPrev = zalloc(e.SA, 8);
  e.svList = zalloc(e.S, 4);
  e.nSv = 0;
  e.prevGen = 0;
  e.svrpg = 1;
}

/**
 * FedSVRPG-M's batch: the lanes of sampleBatch draw the paths (the stream contract of the
 * estimator), svrpgTrajectory adds each trajectory's sums in order; then each row the batch formed
 * (e.piList: the visited states) is finished as js svrpgRow, in action order, T = sum_b C(b),
 * V = sum_b W(b), C(b) - T*pi(b) and W(b) - V*pi_prev(b), times invM = 1/M: the means land
 * in e.svCur and e.svPrev on those rows (listed in e.svList), zero elsewhere. keepPrev: thetaPrev
 * is the previous call's, so its rows stay valid (a local round forms each row once). With D != 0
 * (a lazy round's step) the means go into D = D + eta*(gc - omb*gw) instead, as they are formed
 * (svCur and svPrev keep the sums, zeroed at the next call).
 */
export function svrpgBatch(
  e: Env, theta: usize, thetaPrev: usize, reward: usize, K: i32, batch: i32, clip: f64, rng: usize, keepPrev: bool,
  D: usize = 0, eta: f64 = 0, omb: f64 = 0,
): void {
  ensureSvrpg(e);
  if (!keepPrev) {
    if (e.prevGen >= 0x7ffffff0) {
      e.prevGen = 0;
      memory.fill(e.prevStamp, 0xff, (<usize>e.S) << 2);
    }
    e.prevGen++;
  }
  // Only the rows of the states a call visits are touched: the previous call's rows are zeroed
  // here, so a call costs O(visited states), not O(S*A), and the rest stays 0.
  const A = e.A, C = e.svCur, W = e.svPrev, svList = e.svList;
  for (let q = 0, nq = e.nSv; q < nq; q++) {
    const off = (<usize>(ldi(svList, q) * A)) << 3;
    memory.fill(C + off, 0, (<usize>A) << 3);
    memory.fill(W + off, 0, (<usize>A) << 3);
  }
  sampleBatch(e, theta, reward, K, batch, rng, 0, false, thetaPrev, clip);
  const invM = 1 / <f64>batch;
  const nq = e.nPi;
  memory.copy(svList, e.piList, (<usize>nq) << 2);
  e.nSv = nq;
  const pi = e.pi, piPrev = e.piPrev;
  for (let q = 0; q < nq; q++) {
    const off = (<usize>(ldi(svList, q) * A)) << 3;
    const cr = C + off, wr = W + off, p1 = pi + off, p2 = piPrev + off;
    let T: f64 = 0, V: f64 = 0;
    for (let b = 0; b < A; b++) {
      T += ldf(cr, b);
      V += ldf(wr, b);
    }
    if (D) {
      // A lazy round's step (svrpgLazyRound), on the means as they are formed: D = D + eta*(gc - omb*gw).
      const dr = D + off;
      for (let b = 0; b < A; b++) {
        const gc = (ldf(cr, b) - T * ldf(p1, b)) * invM;
        const gw = (ldf(wr, b) - V * ldf(p2, b)) * invM;
        stf(dr, b, ldf(dr, b) + eta * (gc - omb * gw));
      }
    } else {
      for (let b = 0; b < A; b++) {
        stf(cr, b, (ldf(cr, b) - T * ldf(p1, b)) * invM);
        stf(wr, b, (ldf(wr, b) - V * ldf(p2, b)) * invM);
      }
    }
  }
}

/**
 * FedSVRPG-M's local round in the lazy form, operation for operation as js
 * Sampler.localRoundSvrpg: omb = 1 - beta, c = omb*u once per call; row_l = (start + (l*eta)*c) + D
 * formed per visited state; then on the rows the step formed D = D + eta*(gc - omb*gw) (gc, gw:
 * svrpgBatch's means, js's cur*invM and prev*invM); theta =
 * (start + (H*eta)*c) + D densely at the end. A step costs O(K M + A * visited states), not O(S A).
 * Returns false when theta_H holds a non-finite entry (checked in the final pass).
 */
export function svrpgLazyRound(
  e: Env, theta: usize, reward: usize, thetaPrev: usize, u: usize, beta: f64, clip: f64, eta: f64, steps: i32,
  K: i32, batch: i32, rng: usize,
): bool {
  if (!e.sampler) buildSampler(e);
  ensureSvrpg(e);
  const SA = e.SA, D = e.lazyD, c = e.svC;
  const omb = 1 - beta;
  for (let j = 0; j < SA; j++) stf(c, j, omb * ldf(u, j));
  e.lzStart = theta;
  e.lzC = c;
  e.lzD = D;
  for (let l = 0; l < steps; l++) {
    e.lzLc = <f64>l * eta;
    svrpgBatch(e, theta, thetaPrev, reward, K, batch, clip, rng, l > 0, D, eta, omb);
  }
  e.lzD = 0;
  e.lzStart = 0;
  e.lzC = 0;
  // theta_H, densely, once; D is left all zero for the next round. The same pass checks theta
  // (x - x is +0 exactly for finite x, NaN otherwise): a separate scan would cost a second pass.
  const hc = <f64>steps * eta;
  let bits: u64 = 0;
  for (let j = 0; j < SA; j++) {
    const x = ldf(theta, j) + hc * ldf(c, j) + ldf(D, j);
    stf(theta, j, x);
    stf(D, j, 0);
    bits |= reinterpret<u64>(x - x);
  }
  return bits == 0;
}

/**
 * Eq. 5's steps of a sampled local round in the lazy form, operation for operation as js
 * Sampler.localRoundLazy: row_l = (start + (l*eta)*c) + D formed per visited state, then
 * D += eta*g on the rows the step formed (g = acc, already divided by the batch as js's acc/M),
 * and theta = row_H densely at the end. A step costs O(K M + A * visited states), not O(S A).
 * Returns false when theta_H holds a non-finite entry (checked in the final pass).
 */
export function lazyRound(
  e: Env, theta: usize, reward: usize, c: usize, eta: f64, steps: i32, K: i32, batch: i32, rng: usize,
  center: usize = 0, weight: f64 = 0,
): bool {
  if (!e.sampler) buildSampler(e);
  const A = e.A, SA = e.SA, D = e.lazyD, acc = e.acc, piList = e.piList;
  e.lzStart = theta;
  e.lzC = c;
  e.lzD = D;
  let q: f64 = 1;
  if (center) {
    // The pulled form (js Sampler.pullRound): q = 1 - eta*weight; qp, gs by their recurrences.
    q = 1 - eta * weight;
    e.lzQp = zalloc(steps + 1, 8);
    e.lzGs = zalloc(steps + 1, 8);
    stf(e.lzQp, 0, 1);
    for (let n = 1; n <= steps; n++) {
      stf(e.lzQp, n, ldf(e.lzQp, n - 1) * q);
      stf(e.lzGs, n, ldf(e.lzGs, n - 1) * q + 1);
    }
    e.lzCenter = center;
    e.lzEta = eta;
  }
  const bf = <f64>batch;
  for (let l = 0; l < steps; l++) {
    e.lzLc = <f64>l * eta;
    e.lzStep = l;
    sampleBatch(e, theta, reward, K, batch, rng, 0, false);
    for (let k = 0, nq = e.nPi; k < nq; k++) {
      const s = ldi(piList, k);
      const off = (<usize>(s * A)) << 3;
      const dr = D + off, ar = acc + off;
      if (!center) {
        for (let b = 0; b < A; b++) stf(dr, b, ldf(dr, b) + eta * ldf(ar, b));
      } else if (c) {
        const cr = c + off;
        for (let b = 0; b < A; b++) stf(dr, b, q * ldf(dr, b) + eta * (ldf(ar, b) + ldf(cr, b)));
        sti(e.pullT, s, l + 1);
      } else {
        for (let b = 0; b < A; b++) stf(dr, b, q * ldf(dr, b) + eta * ldf(ar, b));
        sti(e.pullT, s, l + 1);
      }
    }
  }
  if (center) {
    // theta_H = center + x, every row brought to step H; D and the steps reset for the next round.
    let pulledBits: u64 = 0; // theta checked in the same pass (below)
    for (let s = 0; s < e.S; s++) {
      pullRow(e, s, steps);
      const off = (<usize>(s * A)) << 3;
      const tr = theta + off, dr = D + off, ce = center + off;
      for (let b = 0; b < A; b++) {
        const x = ldf(ce, b) + ldf(dr, b);
        stf(tr, b, x);
        stf(dr, b, 0);
        pulledBits |= reinterpret<u64>(x - x);
      }
      sti(e.pullT, s, -1);
    }
    release(e.lzQp);
    release(e.lzGs);
    e.lzCenter = 0;
    e.lzD = 0;
    e.lzStart = 0;
    e.lzC = 0;
    return pulledBits == 0;
  }
  e.lzD = 0;
  e.lzStart = 0;
  e.lzC = 0;
  // theta_H, densely, once; D is left all zero for the next round. The same pass checks theta
  // (x - x is +0 exactly for finite x, NaN otherwise): a separate scan would cost a second pass.
  const hc = <f64>steps * eta;
  let bits: u64 = 0;
  if (c) {
    for (let j = 0; j < SA; j++) {
      const x = ldf(theta, j) + hc * ldf(c, j) + ldf(D, j);
      stf(theta, j, x);
      stf(D, j, 0);
      bits |= reinterpret<u64>(x - x);
    }
  } else {
    for (let j = 0; j < SA; j++) {
      const x = ldf(theta, j) + ldf(D, j);
      stf(theta, j, x);
      stf(D, j, 0);
      bits |= reinterpret<u64>(x - x);
    }
  }
  return bits == 0;
}
