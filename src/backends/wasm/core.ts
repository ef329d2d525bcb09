import type {
  Backend,
  Environment,
  EnvironmentSpec,
  Evaluation,
  LocalRoundArgs,
  TruncatedEvaluation,
  WarmStart,
} from '../types.js';
import { checkEntropy, checkKernelArgs, checkLocalRound, checkRewardTables, checkRewardValues, checkSvrpgEstimate, checkTheta, checkWarm, thetaOverflow } from '../checks.js';
import {
  isWasmModule,
  requireWebAssembly,
  webAssembly,
  type WasmBytes,
  type WasmGlobal,
  type WasmImports,
  type WasmInstance,
  type WasmMemory,
  type WasmModule,
} from './api.js';

/**
 * The WebAssembly backend's facade, free of any host API (no fs, no fetch, no process): it takes
 * the module's bytes or a compiled WebAssembly.Module, so Node (src/backends/wasm/index.ts), the
 * browser entry (src/browser.ts) and Web Workers share it.
 *
 * Memory: an environment's shared tables (rho and the transition kernel, as CSR rows) are copied
 * into the module's linear memory once, at createEnvironment, and stay there; each kernel call
 * copies only theta, the reward table(s) and the 4-word random stream in, and its results out.
 * Linear memory can grow during any call that allocates (alias tables and solver workspaces are
 * built on first use), which detaches every typed-array view of the old buffer: each environment
 * re-creates its views whenever it finds them detached (byteLength 0) before touching them.
 */

/** File names of the two builds (wasm/ at the package root, produced by `npm run build:wasm`). */
export const WASM_FILE_SIMD = 'fedpg-simd.wasm';
export const WASM_FILE_SCALAR = 'fedpg.wasm';

/** A minimal module using one SIMD instruction (i8x16.popcnt): it validates only where SIMD runs. */
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11,
]);

/** True when this engine runs WebAssembly SIMD (fixed-width 128-bit). */
export function simdSupported(): boolean {
  try {
    const wa = webAssembly();
    return !!wa && wa.validate(SIMD_PROBE);
  } catch {
    return false;
  }
}

/** The build to load here: the SIMD one where the engine validates SIMD, else the scalar one. */
export function wasmFileName(simd = simdSupported()): string {
  return simd ? WASM_FILE_SIMD : WASM_FILE_SCALAR;
}

interface Exports {
  memory: WasmMemory;
  simd: WasmGlobal;
  alloc(bytes: number): number;
  free(ptr: number): void;
  envNew(S: number, A: number, gamma: number, nnz: number): number;
  envInitial(e: number): number;
  envRowStart(e: number): number;
  envNext(e: number): number;
  envProb(e: number): number;
  envFinish(e: number): number;
  envFree(e: number): void;
  /** gpomdp = 1: the (regularised) GPOMDP estimator, also at tau = 0; 0: Eq. 5. */
  estimate(e: number, theta: number, reward: number, horizon: number, batch: number, rng: number, tau: number, gpomdp: number): number;
  localRound(
    e: number, theta: number, reward: number, correction: number, eta: number, steps: number,
    sampled: number, horizon: number, batch: number, rng: number, tau: number,
  ): number;
  evaluate(e: number, theta: number, rewards: number, n: number, J: number, V: number, Q: number, grad: number, occ: number, tau: number, warm: number): number;
  truncated(e: number, theta: number, rewards: number, n: number, horizon: number, JK: number, gradK: number): number;
  optimal(e: number, reward: number, vOut: number): number;
  status(): number;
  /** After a THETA_OVERFLOW status: the exact step (1-based) after which theta overflowed, 0 for a sampled round's end. */
  overflowStep(): number;
  luFactor(a: number, piv: number, n: number, pack: number): number;
  packBytes(n: number): number;
  mapMath(which: number, x: number, out: number, n: number): void;
  estimateSvrpg(e: number, theta: number, thetaPrev: number, reward: number, horizon: number, batch: number, clip: number, rng: number, outCur: number, outPrev: number): number;
  localRoundSvrpg(
    e: number, theta: number, reward: number, thetaPrev: number, u: number, beta: number, clip: number, eta: number,
    steps: number, horizon: number, batch: number, rng: number,
  ): number;
  localRoundPull(
    e: number, theta: number, reward: number, correction: number, eta: number, steps: number, horizon: number, batch: number,
    rng: number, center: number, weight: number,
  ): number;
}

const EXPORTS: (keyof Exports)[] = [
  'memory', 'simd', 'alloc', 'free', 'envNew', 'envInitial', 'envRowStart', 'envNext', 'envProb', 'envFinish',
  'envFree', 'estimate', 'localRound', 'evaluate', 'truncated', 'optimal', 'status', 'overflowStep', 'luFactor', 'packBytes', 'mapMath', 'estimateSvrpg', 'localRoundSvrpg', 'localRoundPull',
];

/** assembly/exact.ts: a local round's theta overflowed (the facade names the entry and the step). */
const THETA_OVERFLOW = 8;

/** Error statuses returned by the kernels (assembly/exact.ts). */
function statusError(code: number, what: string): Error {
  switch (code) {
    case 1:
      return new Error(`${what}: singular matrix in LU factorisation`);
    case 3:
      return new Error(`${what}: policy iteration did not converge in 10000 iterations`);
    case 5:
      return new Error(`${what}: a sparse solve did not reach its proven error bound of 1e-12 (stagnated or 20000 BiCGSTAB iterations)`);
    case 6:
      return new Error(`${what}: gamma times a transition row sum is not below 1, so I - gamma P is not invertible by the sparse solver's bound`);
    case 7:
      return new Error(`${what}: policy iteration stopped with a Bellman residual above what its error bound needs`);
    default:
      return new Error(`${what}: WebAssembly kernel failed with status ${code}`);
  }
}

/** Reads an AssemblyScript string (UTF-16, byte length in the word before it) for abort(). */
function readString(memory: WasmMemory, ptr: number): string {
  if (!ptr) return '';
  const buf = memory.buffer;
  const p = ptr >>> 0;
  if (p < 4 || p > buf.byteLength) return '';
  const len = new Uint32Array(buf, p - 4, 1)[0]! >>> 1;
  if (p + 2 * len > buf.byteLength) return '';
  return String.fromCharCode(...new Uint16Array(buf, p, len));
}

/** The instantiated module and typed views of its memory (refreshed after growth). */
class Kernels {
  readonly x: Exports;
  private buffer: ArrayBuffer;
  f64: Float64Array;
  i32: Int32Array;

  constructor(instance: WasmInstance) {
    const ex = instance.exports as unknown as Exports;
    for (const name of EXPORTS) {
      if (!(name in ex)) throw new Error(`the WebAssembly module lacks the export '${name}' (stale build? run npm run build:wasm)`);
    }
    this.x = ex;
    this.buffer = ex.memory.buffer;
    this.f64 = new Float64Array(this.buffer);
    this.i32 = new Int32Array(this.buffer);
  }

  /** Current views of the whole memory. */
  views(): this {
    const buf = this.x.memory.buffer;
    if (buf !== this.buffer) {
      this.buffer = buf;
      this.f64 = new Float64Array(buf);
      this.i32 = new Int32Array(buf);
    }
    return this;
  }

  get buf(): ArrayBuffer {
    return this.views().buffer;
  }

  alloc(bytes: number): number {
    // The module's allocator (TLSF) serves blocks below 1 GiB.
    if (!(bytes <= 0x3ff00000)) throw new RangeError(`a block of ${bytes} bytes is too large for the wasm backend (limit 1 GiB)`);
    const p = this.x.alloc(Math.max(16, bytes)) >>> 0;
    if (p === 0 || p % 16 !== 0) throw new Error(`WebAssembly allocation of ${bytes} bytes failed`);
    return p;
  }
}

function checkInt(what: string, v: number, min: number, max = 0x7fffffff): void {
  if (!Number.isSafeInteger(v) || v < min || v > max) throw new RangeError(`${what} must be an integer in [${min}, ${max}], got ${v}`);
}

function checkLen(what: string, arr: { length: number } | null | undefined, want: number): void {
  if (!arr || arr.length !== want) throw new RangeError(`${what} has length ${arr ? arr.length : String(arr)}, expected ${want}`);
}

/** Blocks of one environment's per-call inputs and outputs, in wasm memory. */
interface Io {
  theta: number;
  reward: number;
  corr: number;
  out: number;
  rng: number;
}

/** What the finaliser must free if an environment is dropped without dispose(). */
interface Held {
  k: Kernels;
  blocks: number[];
  env: number;
  freed: boolean;
}

function freeHeld(h: Held): void {
  if (h.freed) return;
  h.freed = true;
  for (const b of h.blocks) if (b) h.k.x.free(b);
  h.blocks.length = 0;
  h.k.x.envFree(h.env);
}

const finalizer: FinalizationRegistry<Held> | null =
  typeof FinalizationRegistry === 'function' ? new FinalizationRegistry<Held>(freeHeld) : null;

class WasmEnvironment implements Environment {
  readonly states: number;
  readonly actions: number;
  private readonly SA: number;
  private readonly held: Held;
  private readonly io: Io;
  // Views of the io blocks, re-created when memory growth detached them.
  private vTheta!: Float64Array;
  private vReward!: Float64Array;
  private vCorr!: Float64Array;
  private vOut!: Float64Array;
  private vRng!: Uint32Array;
  // The estimator's result block (allocated by the module on the first sampled call).
  private accPtr = 0;
  private vAcc = new Float64Array(0);
  // Batch blocks of evaluate()/truncated(), grown on demand: capacity in reward tables.
  private cap = 0;
  private batch = { rewards: 0, J: 0, V: 0, Q: 0, grad: 0, occ: 0 };
  private vecTmp = 0;
  /** FedSVRPG-M's extra blocks (thetaPrev, u, the weighted output), allocated on first use. */
  private sv: { thetaPrev: number; u: number; outPrev: number } | null = null;

  constructor(
    private readonly k: Kernels,
    spec: EnvironmentSpec,
  ) {
    const S = spec.states, A = spec.actions;
    checkInt('states', S, 1);
    checkInt('actions', A, 1);
    if (S * A > 0x7ffffff) throw new RangeError(`states * actions = ${S * A} is too large for the wasm backend`);
    if (!(spec.gamma >= 0 && spec.gamma < 1)) throw new RangeError(`gamma is ${spec.gamma}, outside [0, 1)`);
    checkLen('initial', spec.initial, S);
    const SA = S * A;
    const tr = spec.transitions;
    let nnz: number;
    if (tr.kind === 'dense') {
      checkLen('transitions', tr.p, SA * S);
      nnz = 0;
      for (let j = 0; j < tr.p.length; j++) if (tr.p[j] !== 0) nnz++;
    } else if (tr.kind === 'sparse') {
      checkLen('transitions.rowStart', tr.rowStart, SA + 1);
      nnz = tr.rowStart[SA]!;
      checkLen('transitions.next', tr.next, nnz);
      checkLen('transitions.prob', tr.prob, nnz);
    } else {
      throw new TypeError(`transitions.kind must be 'dense' or 'sparse'`);
    }
    if (nnz > 0x7ffffff) throw new RangeError(`the transition kernel has ${nnz} non-zero entries, too many for the wasm backend`);
    this.states = S;
    this.actions = A;
    this.SA = SA;
    const x = k.x;
    const env = x.envNew(S, A, spec.gamma, nnz) >>> 0;
    const held: Held = { k, blocks: [], env, freed: false };
    this.held = held;
    try {
      const v = k.views();
      v.f64.set(spec.initial, x.envInitial(env) >>> 3);
      const rs = x.envRowStart(env) >>> 2;
      const nx = x.envNext(env) >>> 2;
      const pr = x.envProb(env) >>> 3;
      if (tr.kind === 'dense') {
        // CSR of the non-zero entries, in increasing next state: the order the js reference sums in.
        const p = tr.p;
        let q = 0;
        for (let r = 0; r < SA; r++) {
          v.i32[rs + r] = q;
          const off = r * S;
          for (let j = 0; j < S; j++) {
            const pj = p[off + j]!;
            if (pj !== 0) {
              v.i32[nx + q] = j;
              v.f64[pr + q] = pj;
              q++;
            }
          }
        }
        v.i32[rs + SA] = q;
      } else {
        v.i32.set(tr.rowStart, rs);
        v.i32.set(tr.next, nx);
        v.f64.set(tr.prob, pr);
      }
      const st = x.envFinish(env);
      if (st === 1) throw new RangeError('transitions.rowStart must rise from 0 to the number of entries');
      if (st === 2) throw new RangeError(`transitions name a next state outside 0..${S - 1}`);
      if (st === 3) throw new RangeError('transitions hold a probability that is negative, above 1 or not finite');
      if (st === 4) throw new RangeError('transitions have a (state, action) row without positive probability');
      if (st === 5) throw new RangeError('initial must be probabilities in [0, 1] with some positive mass');
      const io: Io = {
        theta: k.alloc(SA * 8),
        reward: k.alloc(SA * 8),
        corr: k.alloc(SA * 8),
        out: k.alloc(SA * 8),
        rng: k.alloc(16),
      };
      held.blocks.push(io.theta, io.reward, io.corr, io.out, io.rng);
      this.io = io;
    } catch (e) {
      freeHeld(held);
      throw e;
    }
    this.refresh();
    finalizer?.register(this, held, this);
  }

  private refresh(): void {
    const buf = this.k.buf;
    const { io, SA } = this;
    this.vTheta = new Float64Array(buf, io.theta, SA);
    this.vReward = new Float64Array(buf, io.reward, SA);
    this.vCorr = new Float64Array(buf, io.corr, SA);
    this.vOut = new Float64Array(buf, io.out, SA);
    this.vRng = new Uint32Array(buf, io.rng, 4);
  }

  /** The io views, valid now (memory growth detaches them: their byteLength drops to 0). */
  private live(): void {
    if (this.held.freed) throw new Error('this wasm environment was disposed');
    if (this.vRng.byteLength === 0) this.refresh();
  }

  /** Makes room for n reward tables in the batch blocks. */
  private ensureBatch(n: number): void {
    if (n <= this.cap) return;
    const { k, SA, states: S } = this;
    const b = this.batch;
    const blocks = this.held.blocks;
    for (const key of ['rewards', 'J', 'V', 'Q', 'grad', 'occ'] as const) {
      const p = b[key];
      if (p) {
        k.x.free(p);
        blocks.splice(blocks.indexOf(p), 1);
        b[key] = 0;
      }
    }
    this.cap = 0;
    b.rewards = k.alloc(n * SA * 8);
    blocks.push(b.rewards);
    b.J = k.alloc(n * 8);
    blocks.push(b.J);
    b.V = k.alloc(n * S * 8);
    blocks.push(b.V);
    b.Q = k.alloc(n * SA * 8);
    blocks.push(b.Q);
    b.grad = k.alloc(n * SA * 8);
    blocks.push(b.grad);
    b.occ = k.alloc(S * 8);
    blocks.push(b.occ);
    this.cap = n;
  }

  private tables(rewards: Float64Array): number {
    if (!(rewards instanceof Float64Array)) throw new TypeError('rewards must be a Float64Array');
    const n = rewards.length / this.SA;
    if (!Number.isInteger(n) || n < 1) {
      throw new RangeError(`rewards has length ${rewards.length}, not a positive multiple of states * actions = ${this.SA}`);
    }
    return n;
  }

  evaluate(theta: Float64Array, rewards: Float64Array, out: Evaluation, warm?: WarmStart): void {
    this.evaluateWith(theta, rewards, 0, out, warm);
  }

  /** The entropy-regularised J_tau, V_tau, Q_tau and exact gradient of J_tau (tau = 0: evaluate). */
  evaluateRegularized(theta: Float64Array, rewards: Float64Array, tau: number, out: Evaluation, warm?: WarmStart): void {
    this.live();
    checkTheta(this, theta);
    checkEntropy(tau);
    this.evaluateWith(theta, rewards, tau, out, warm);
  }

  private evaluateWith(theta: Float64Array, rewards: Float64Array, tau: number, out: Evaluation, warm?: WarmStart): void {
    this.live();
    checkTheta(this, theta);
    const n = this.tables(rewards);
    checkRewardTables(this, rewards);
    const S = this.states, SA = this.SA;
    checkLen('J output', out.J, n);
    checkLen('V output', out.V, n * S);
    checkLen('Q output', out.Q, n * SA);
    checkLen('gradient output', out.grad, n * SA);
    checkLen('occupancy output', out.occupancy, S);
    if (warm) checkWarm(warm, n * S, S);
    this.ensureBatch(n);
    const k = this.k;
    const b = this.batch;
    let v = k.views();
    v.f64.set(theta, this.io.theta >>> 3);
    v.f64.set(rewards, b.rewards >>> 3);
    // The kernel reads the warm start from the V and occupancy outputs and solves in place.
    if (warm) {
      v.f64.set(warm.V, b.V >>> 3);
      v.f64.set(warm.occupancy, b.occ >>> 3);
    }
    const st = k.x.evaluate(this.held.env, this.io.theta, b.rewards, n, b.J, b.V, b.Q, b.grad, b.occ, tau, warm ? 1 : 0);
    if (st !== 0) throw statusError(st, 'wasm evaluate');
    v = k.views();
    out.J.set(v.f64.subarray(b.J >>> 3, (b.J >>> 3) + n));
    out.V.set(v.f64.subarray(b.V >>> 3, (b.V >>> 3) + n * S));
    out.Q.set(v.f64.subarray(b.Q >>> 3, (b.Q >>> 3) + n * SA));
    out.grad.set(v.f64.subarray(b.grad >>> 3, (b.grad >>> 3) + n * SA));
    out.occupancy.set(v.f64.subarray(b.occ >>> 3, (b.occ >>> 3) + S));
    if (warm) {
      warm.V.set(out.V.subarray(0, n * S));
      warm.occupancy.set(out.occupancy);
    }
  }

  truncated(theta: Float64Array, rewards: Float64Array, horizon: number, out: TruncatedEvaluation): void {
    this.live();
    checkTheta(this, theta);
    checkRewardTables(this, rewards);
    const n = this.tables(rewards);
    checkInt('horizon', horizon, 0);
    if (horizon * this.states > 0x7ffffff) throw new RangeError(`horizon * states = ${horizon * this.states} is too large for the wasm backend`);
    const SA = this.SA;
    checkLen('JK output', out.JK, n);
    checkLen('gradK output', out.gradK, n * SA);
    this.ensureBatch(n);
    const k = this.k;
    const b = this.batch;
    let v = k.views();
    v.f64.set(theta, this.io.theta >>> 3);
    v.f64.set(rewards, b.rewards >>> 3);
    const st = k.x.truncated(this.held.env, this.io.theta, b.rewards, n, horizon, b.J, b.grad);
    if (st !== 0) throw statusError(st, 'wasm truncated');
    v = k.views();
    out.JK.set(v.f64.subarray(b.J >>> 3, (b.J >>> 3) + n));
    out.gradK.set(v.f64.subarray(b.grad >>> 3, (b.grad >>> 3) + n * SA));
  }

  optimal(reward: Float64Array, vOut: Float64Array): number {
    this.live();
    if (!(reward instanceof Float64Array)) throw new TypeError('reward must be a Float64Array');
    checkLen('reward', reward, this.SA);
    checkRewardValues(this, reward);
    checkLen('V* output', vOut, this.states);
    const k = this.k;
    if (!this.vecTmp) {
      this.vecTmp = k.alloc(this.states * 8);
      this.held.blocks.push(this.vecTmp);
    }
    this.live();
    this.vReward.set(reward);
    const J = k.x.optimal(this.held.env, this.io.reward, this.vecTmp);
    const st = k.x.status();
    if (st !== 0) throw statusError(st, 'wasm optimal');
    const v = k.views();
    vOut.set(v.f64.subarray(this.vecTmp >>> 3, (this.vecTmp >>> 3) + this.states));
    return J;
  }

  /**
   * The boundary checks of checks.ts without their O(S*A) theta scan, which the kernel does
   * instead (a SIMD pass over the copy it works on anyway): any failure here, or a non-finite
   * theta reported by the kernel, goes through checks.ts for its canonical message.
   */
  private quickArgs(theta: Float64Array, reward: Float64Array, horizon: number, batch: number, rng: Uint32Array, out: Float64Array): boolean {
    const SA = this.SA;
    return (
      theta instanceof Float64Array && theta.length === SA &&
      reward instanceof Float64Array && reward.length === SA &&
      out instanceof Float64Array && out.length === SA &&
      rng instanceof Uint32Array && rng.length === 4 &&
      Number.isSafeInteger(horizon) && horizon >= 1 && horizon <= 0x7fffffff &&
      Number.isSafeInteger(batch) && batch >= 1 && batch <= 0x7fffffff
    );
  }

  estimateGradient(theta: Float64Array, reward: Float64Array, horizon: number, batch: number, rng: Uint32Array, out: Float64Array): void {
    this.estimateWith(theta, reward, 0, false, horizon, batch, rng, out);
  }

  /** The entropy-regularised GPOMDP estimator, drawing from the stream as estimateGradient does. */
  estimateRegularized(theta: Float64Array, reward: Float64Array, tau: number, horizon: number, batch: number, rng: Uint32Array, out: Float64Array): void {
    this.live();
    if (!this.quickArgs(theta, reward, horizon, batch, rng, out)) checkKernelArgs(this, theta, reward, horizon, batch, rng, out);
    checkEntropy(tau);
    this.estimateWith(theta, reward, tau, true, horizon, batch, rng, out);
  }

  private estimateWith(theta: Float64Array, reward: Float64Array, tau: number, gpomdp: boolean, horizon: number, batch: number, rng: Uint32Array, out: Float64Array): void {
    this.live();
    if (!this.quickArgs(theta, reward, horizon, batch, rng, out)) checkKernelArgs(this, theta, reward, horizon, batch, rng, out);
    this.vTheta.set(theta);
    this.vReward.set(reward);
    this.vRng.set(rng);
    const io = this.io;
    const p = this.k.x.estimate(this.held.env, io.theta, io.reward, horizon, batch, io.rng, tau, gpomdp ? 1 : 0) >>> 0;
    if (p === 0) {
      checkTheta(this, theta);
      throw new RangeError('theta holds a non-finite entry');
    }
    if (p !== this.accPtr || this.vAcc.byteLength === 0) {
      this.refresh();
      this.accPtr = p;
      this.vAcc = new Float64Array(this.k.buf, p, this.SA);
    }
    out.set(this.vAcc);
    rng.set(this.vRng);
  }

  /** The block a pulled round's center is copied into (allocated on the first pulled round). */
  private pullCenter = 0;

  /** A sampled local round with a pull (checked by localRound). */
  private localRoundPull(args: LocalRoundArgs): void {
    const p = args.pull!;
    if (!this.pullCenter) {
      this.pullCenter = this.k.alloc(this.SA * 8);
      this.held.blocks.push(this.pullCenter);
      this.refresh(); // the allocation may have grown memory
    }
    const io = this.io;
    const v = this.k.views().f64;
    v.set(args.theta, io.theta >>> 3);
    v.set(args.reward, io.reward >>> 3);
    if (args.correction) v.set(args.correction, io.corr >>> 3);
    v.set(p.center, this.pullCenter >>> 3);
    this.vRng.set(args.rng);
    const st = this.k.x.localRoundPull(
      this.held.env, io.theta, io.reward, args.correction ? io.corr : 0, args.eta, args.steps, args.horizon, args.batch, io.rng,
      this.pullCenter, p.weight,
    );
    this.finishRound(st, args, 'wasm localRound (pull)');
  }

  /**
   * A local round's status: theta and the stream written back (also after an overflow, which
   * leaves them as js and native do: the round's last iterate), else the kernel's error.
   */
  private finishRound(st: number, args: LocalRoundArgs, what: string): void {
    if (this.vRng.byteLength === 0) this.refresh(); // the call may have grown memory
    if (st !== 0 && st !== THETA_OVERFLOW) throw statusError(st, what);
    args.theta.set(this.vTheta);
    if (args.gradient === 'sampled') args.rng.set(this.vRng);
    if (st === THETA_OVERFLOW) throw thetaOverflow(this, args, this.k.x.overflowStep()) ?? statusError(st, what);
  }

  private svrpgBlocks(): { thetaPrev: number; u: number; outPrev: number } {
    if (!this.sv) {
      const k = this.k, SA = this.SA;
      const b = { thetaPrev: k.alloc(SA * 8), u: k.alloc(SA * 8), outPrev: k.alloc(SA * 8) };
      this.held.blocks.push(b.thetaPrev, b.u, b.outPrev);
      this.sv = b;
    }
    return this.sv;
  }

  estimateSvrpg(
    theta: Float64Array, thetaPrev: Float64Array, reward: Float64Array, horizon: number, batch: number, clip: number,
    rng: Uint32Array, outCur: Float64Array, outPrevWeighted: Float64Array,
  ): void {
    this.live();
    checkSvrpgEstimate(this, theta, thetaPrev, reward, horizon, batch, clip, rng, outCur, outPrevWeighted);
    const b = this.svrpgBlocks();
    const io = this.io;
    const v = this.k.views().f64;
    v.set(theta, io.theta >>> 3);
    v.set(thetaPrev, b.thetaPrev >>> 3);
    v.set(reward, io.reward >>> 3);
    this.vRng.set(rng);
    const st = this.k.x.estimateSvrpg(this.held.env, io.theta, b.thetaPrev, io.reward, horizon, batch, clip, io.rng, io.out, b.outPrev);
    if (st !== 0) throw statusError(st, 'wasm estimateSvrpg');
    const w = this.k.views().f64;
    outCur.set(w.subarray(io.out >>> 3, (io.out >>> 3) + this.SA));
    outPrevWeighted.set(w.subarray(b.outPrev >>> 3, (b.outPrev >>> 3) + this.SA));
    if (this.vRng.byteLength === 0) this.refresh(); // the call may have grown memory
    rng.set(this.vRng);
  }

  /** FedSVRPG-M's local round (checked by localRound). */
  private localRoundSvrpg(args: LocalRoundArgs): void {
    const sv = args.svrpg!;
    const b = this.svrpgBlocks();
    const io = this.io;
    const v = this.k.views().f64;
    v.set(args.theta, io.theta >>> 3);
    v.set(args.reward, io.reward >>> 3);
    v.set(sv.thetaPrev, b.thetaPrev >>> 3);
    v.set(sv.u, b.u >>> 3);
    this.vRng.set(args.rng);
    const st = this.k.x.localRoundSvrpg(
      this.held.env, io.theta, io.reward, b.thetaPrev, b.u, sv.beta, sv.clip, args.eta, args.steps, args.horizon, args.batch, io.rng,
    );
    this.finishRound(st, args, 'wasm localRound (svrpg)');
  }

  localRound(args: LocalRoundArgs): void {
    this.live();
    if (args.svrpg) {
      checkLocalRound(this, args);
      this.localRoundSvrpg(args);
      return;
    }
    if (args.pull) {
      checkLocalRound(this, args);
      this.localRoundPull(args);
      return;
    }
    const SA = this.SA;
    const quick =
      args.theta instanceof Float64Array && args.theta.length === SA &&
      args.reward instanceof Float64Array && args.reward.length === SA &&
      (args.correction === null || (args.correction instanceof Float64Array && args.correction.length === SA)) &&
      Number.isFinite(args.eta) && Number.isSafeInteger(args.steps) && args.steps >= 0 &&
      (args.gradient === 'exact' ||
        (args.gradient === 'sampled' && args.rng instanceof Uint32Array && args.rng.length === 4 &&
          Number.isSafeInteger(args.horizon) && args.horizon >= 1 && args.horizon <= 0x7fffffff &&
          Number.isSafeInteger(args.batch) && args.batch >= 1 && args.batch <= 0x7fffffff));
    if (!quick) checkLocalRound(this, args);
    const tau = args.entropy ?? 0;
    checkEntropy(tau);
    const sampled = args.gradient === 'sampled';
    if (!sampled) checkRewardValues(this, args.reward);
    this.vTheta.set(args.theta);
    this.vReward.set(args.reward);
    if (args.correction) this.vCorr.set(args.correction);
    if (sampled) this.vRng.set(args.rng);
    const io = this.io;
    const st = this.k.x.localRound(
      this.held.env, io.theta, io.reward, args.correction ? io.corr : 0, args.eta, args.steps,
      sampled ? 1 : 0, sampled ? args.horizon : 0, sampled ? args.batch : 0, io.rng, tau,
    );
    if (st === 4) {
      checkTheta(this, args.theta);
      throw new RangeError('theta holds a non-finite entry');
    }
    this.finishRound(st, args, 'wasm localRound');
  }

  dispose(): void {
    if (this.held.freed) return;
    finalizer?.unregister(this);
    freeHeld(this.held);
  }
}

/** The wasm backend: one module instance (one linear memory) serves every environment it creates. */
export class WasmBackend implements Backend {
  readonly name = 'wasm' as const;
  /** True when the SIMD build is running. */
  readonly simd: boolean;
  private readonly k: Kernels;

  constructor(instance: WasmInstance) {
    this.k = new Kernels(instance);
    this.simd = Number(this.k.x.simd.value) === 1;
  }

  createEnvironment(spec: EnvironmentSpec): Environment {
    return new WasmEnvironment(this.k, spec);
  }

  /** Bytes of linear memory the module holds now (it grows, never shrinks). */
  memoryBytes(): number {
    return this.k.buf.byteLength;
  }

  /**
   * out[i] = f(x[i]) in the module, for tests and benches: exp, log, cos are ours
   * (assembly/detmath.ts, the bits of src/math), as.exp, as.log, as.cos AssemblyScript's Math.
   */
  mapMath(name: 'exp' | 'log' | 'cos' | 'as.exp' | 'as.log' | 'as.cos', x: Float64Array, out: Float64Array): void {
    const which = ['exp', 'log', 'cos', 'as.exp', 'as.log', 'as.cos'].indexOf(name);
    if (which < 0) throw new RangeError(`mapMath name must be exp, log, cos, as.exp, as.log or as.cos, got '${String(name)}'`);
    checkLen('out', out, x.length);
    const k = this.k;
    const px = k.alloc(x.length * 8);
    const po = k.alloc(x.length * 8);
    try {
      k.views().f64.set(x, px >>> 3);
      k.x.mapMath(which, px, po, x.length);
      out.set(k.views().f64.subarray(po >>> 3, (po >>> 3) + x.length));
    } finally {
      k.x.free(px);
      k.x.free(po);
    }
  }

  /**
   * The module's blocked LU alone, for benchmarks and tests: factors the n x n row-major matrix
   * `a` (copied in and back out, factors in place) and returns the pivot rows.
   */
  factorLU(a: Float64Array, n: number): Int32Array {
    checkInt('n', n, 1, 46340);
    checkLen('matrix', a, n * n);
    const k = this.k;
    const pm = k.alloc(n * n * 8);
    const pp = k.alloc(n * 4);
    const pk = k.alloc(k.x.packBytes(n));
    try {
      k.views().f64.set(a, pm >>> 3);
      const st = k.x.luFactor(pm, pp, n, pk);
      if (st !== 0) throw statusError(st, 'wasm factorLU');
      const v = k.views();
      a.set(v.f64.subarray(pm >>> 3, (pm >>> 3) + n * n));
      return v.i32.slice(pp >>> 2, (pp >>> 2) + n);
    } finally {
      k.x.free(pm);
      k.x.free(pp);
      k.x.free(pk);
    }
  }
}

/** Where the module comes from: its bytes or an already compiled module. */
export type WasmSource = WasmBytes | WasmModule;

function importsFor(memoryRef: { memory: WasmMemory | null }): WasmImports {
  return {
    env: {
      abort(msg: number, file: number, line: number, col: number): never {
        const m = memoryRef.memory;
        const text = m ? readString(m, msg) : '';
        const where = m ? readString(m, file) : '';
        throw new Error(`WebAssembly kernel aborted: ${text || 'unknown error'}${where ? ` (${where}:${line}:${col})` : ''}`);
      },
    },
  };
}

/** Compiles the module's bytes (a compiled module can be posted to Web Workers). */
export function compileWasm(bytes: WasmBytes): Promise<WasmModule> {
  return requireWebAssembly().compile(bytes);
}

/** Instantiates the backend from bytes or a compiled module. */
export async function instantiateWasmBackend(source: WasmSource): Promise<WasmBackend> {
  const ref: { memory: WasmMemory | null } = { memory: null };
  const wa = requireWebAssembly();
  const module = isWasmModule(source) ? source : await wa.compile(source as WasmBytes);
  const instance = await wa.instantiate(module, importsFor(ref));
  ref.memory = (instance.exports as unknown as Exports).memory;
  return new WasmBackend(instance);
}

/** Synchronous variant (a compiled module, or small bytes where the engine allows sync compiles). */
export function instantiateWasmBackendSync(source: WasmSource): WasmBackend {
  const ref: { memory: WasmMemory | null } = { memory: null };
  const wa = requireWebAssembly();
  const module = isWasmModule(source) ? source : new wa.Module(source as WasmBytes);
  const instance = new wa.Instance(module, importsFor(ref));
  ref.memory = (instance.exports as unknown as Exports).memory;
  return new WasmBackend(instance);
}
