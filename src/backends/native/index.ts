import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Backend, Environment, EnvironmentSpec, Evaluation, LocalRoundArgs, TruncatedEvaluation, WarmStart } from '../types.js';
import { checkEntropy, checkKernelArgs, checkLocalRound, checkRewardTables, checkRewardValues, checkSvrpgEstimate, checkTheta } from '../checks.js';
import { BackendUnavailableError } from '../../errors.js';
import { InputError } from '../../errors.js';

/**
 * The native backend: C++17 kernels (native/src) behind Node-API, loaded with node-gyp-build from
 * build/Release (a local build) or prebuilds/<platform>-<arch>/ (the binaries shipped in the
 * package). The facade below runs the same boundary checks as the js backend; the addon checks
 * types and lengths again, so even a caller that bypasses the facade gets a JS exception, never a
 * crash.
 */

/** The calling convention this facade speaks; the addon exports the one it was built with. */
export const NATIVE_ABI_VERSION = 3;

/** The package root: dist/backends/native/index.js (or src/backends/native/index.ts) is three levels down. */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export type SimdLevel = 'generic' | 'avx2' | 'avx512';

export interface NativeEnvironmentOptions {
  /** Vector path of the dense LU; 'auto' (default) takes the widest the CPU supports. Every path gives the same bits. */
  simd?: 'auto' | SimdLevel;
  /** Trajectories sampled in lockstep (1 = one at a time, 0 = decide from the MDP's size). Results do not depend on it. */
  lanes?: number;
}

export interface NativeInfo {
  abiVersion: number;
  napiVersion: number;
  /** The widest vector path this CPU supports. */
  simd: SimdLevel;
  simdSupported: SimdLevel[];
  denseLimit: number;
  luPanel: number;
}

/** evaluate's positional arguments: the inputs, the outputs, tau, and the optional warm start (in/out). */
type RawEvaluateArgs = [
  theta: Float64Array,
  rewards: Float64Array,
  J: Float64Array,
  V: Float64Array,
  Q: Float64Array,
  grad: Float64Array,
  occupancy: Float64Array,
  tau?: number,
  warmV?: Float64Array,
  warmOccupancy?: Float64Array,
];

/** The addon's environment object (native/src/addon.cc), positional arguments, no facade checks. */
export interface RawEnvironment {
  readonly states: number;
  readonly actions: number;
  readonly simd: SimdLevel | 'none';
  readonly disposed: boolean;
  evaluate(...args: RawEvaluateArgs): void;
  truncated(theta: Float64Array, rewards: Float64Array, horizon: number, JK: Float64Array, gradK: Float64Array): void;
  optimal(reward: Float64Array, vOut: Float64Array): number;
  estimateGradient(theta: Float64Array, reward: Float64Array, horizon: number, batch: number, rng: Uint32Array, out: Float64Array): void;
  estimateRegularized(theta: Float64Array, reward: Float64Array, tau: number, horizon: number, batch: number, rng: Uint32Array, out: Float64Array): void;
  estimateSvrpg(theta: Float64Array, thetaPrev: Float64Array, reward: Float64Array, horizon: number, batch: number, clip: number, rng: Uint32Array, outCur: Float64Array, outPrevWeighted: Float64Array): void;
  /** One options object read by name (a missing or mistyped field: a TypeError naming it). */
  localRound(options: LocalRoundArgs): void;
  evaluateAsync(...args: RawEvaluateArgs): Promise<void>;
  truncatedAsync(theta: Float64Array, rewards: Float64Array, horizon: number, JK: Float64Array, gradK: Float64Array): Promise<void>;
  optimalAsync(reward: Float64Array, vOut: Float64Array): Promise<number>;
  estimateGradientAsync(theta: Float64Array, reward: Float64Array, horizon: number, batch: number, rng: Uint32Array, out: Float64Array): Promise<void>;
  estimateRegularizedAsync(theta: Float64Array, reward: Float64Array, tau: number, horizon: number, batch: number, rng: Uint32Array, out: Float64Array): Promise<void>;
  localRoundAsync(options: LocalRoundArgs): Promise<void>;
  dispose(): void;
}

/** What the compiled addon exports. */
export interface NativeAddon {
  abiVersion: number;
  info(): NativeInfo;
  /** out[i] = f(x[i]): exp, log, cos (native/src/detmath.h) or std.exp, std.log, std.cos (libm); tests and benches. */
  mapMath(name: string, x: Float64Array, out: Float64Array): void;
  Environment: new (spec: EnvironmentSpec, options?: NativeEnvironmentOptions) => RawEnvironment;
}

export interface LoadedAddon {
  addon: NativeAddon;
  /** The .node file that was loaded. */
  path: string;
}

const require = createRequire(import.meta.url);

function message(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).trim().replace(/\s*\n\s*/g, ' | ');
}

function requireAddon(path: string): NativeAddon {
  const addon = require(path) as Partial<NativeAddon>;
  if (addon.abiVersion !== NATIVE_ABI_VERSION || typeof addon.Environment !== 'function' || typeof addon.info !== 'function') {
    throw new Error(`stale build: it speaks calling convention ${String(addon.abiVersion)}, this version of fast-fedpg needs ${NATIVE_ABI_VERSION}`);
  }
  return addon as NativeAddon;
}

/** Files node-gyp-build would consider, in its order: local builds first, then the shipped binaries. */
function candidates(root: string): { path: string; missing?: string }[] {
  const out: { path: string; missing?: string }[] = [];
  for (const kind of ['Release', 'Debug']) {
    const p = join(root, 'build', kind, 'fedpg_native.node');
    out.push(existsSync(p) ? { path: p } : { path: p, missing: 'not found' });
  }
  const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  let files: string[] = [];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.node')).sort();
  } catch {
    out.push({ path: dir + '/', missing: 'no such directory (no prebuilt binary for this platform)' });
    return out;
  }
  if (files.length === 0) out.push({ path: dir + '/', missing: 'contains no .node file' });
  for (const f of files) out.push({ path: join(dir, f) });
  return out;
}

/**
 * Loads the compiled addon of the package at `root` (sharp's lib/sharp.js pattern): node-gyp-build
 * picks the binary; if that fails, every other candidate is tried, so a broken local build cannot
 * hide a working prebuilt binary. Throws BackendUnavailableError listing each path, what failed
 * there, and how to fix it.
 */
export function loadNativeAddon(root: string = PACKAGE_ROOT): LoadedAddon {
  const tried: string[] = [];
  const failures: string[] = [];
  const done = new Set<string>();
  const attempt = (path: string): LoadedAddon | null => {
    done.add(path);
    try {
      return { addon: requireAddon(path), path };
    } catch (e) {
      const why = message(e);
      failures.push(why);
      tried.push(`${path}: ${why}`);
      return null;
    }
  };
  try {
    const nodeGypBuild = require('node-gyp-build') as { resolve(dir: string): string };
    let path: string | null = null;
    try {
      path = nodeGypBuild.resolve(root);
    } catch (e) {
      tried.push(`node-gyp-build in ${root}: ${message(e)}`);
    }
    if (path) {
      const got = attempt(path);
      if (got) return got;
    }
  } catch (e) {
    tried.push(`node-gyp-build: cannot be loaded (${message(e)})`);
  }
  for (const c of candidates(root)) {
    if (done.has(c.path)) continue;
    if (c.missing) {
      tried.push(`${c.path}: ${c.missing}`);
      continue;
    }
    const got = attempt(c.path);
    if (got) return got;
  }

  const fixes: string[] = [];
  const all = failures.join('\n');
  if (/GLIBC|GLIBCXX|CXXABI/.test(all)) {
    fixes.push('- the binary needs a newer C/C++ runtime than this system has: rebuild it here with `npm rebuild fast-fedpg`');
  } else if (/ELF|wrong architecture|invalid ELF header|not a valid Win32/.test(all)) {
    fixes.push(`- the binary was built for another platform than ${process.platform}-${process.arch}: rebuild it with \`npm rebuild fast-fedpg\``);
  } else if (/stale build/.test(all)) {
    fixes.push('- the compiled addon is older than the JavaScript: rebuild it with `npm rebuild fast-fedpg` (in a checkout: `npm run build:native`)');
  }
  fixes.push(
    '- build it from source: run `npm rebuild fast-fedpg` with a C++ toolchain installed (g++ or clang++, make, python3); in a checkout of the project: `npm run build:native`',
    '- or use another backend: `--backend wasm` (or `--backend js`), or set FEDPG_BACKEND=wasm',
  );
  const summary = failures.length
    ? `the native addon failed to load (${failures[0]!.split(' | ')[0]})`
    : `the native addon is not built (no build/Release, no prebuilt binary for ${process.platform}-${process.arch})`;
  throw new BackendUnavailableError(
    'native',
    [
      summary,
      `Looked in ${root} (${process.platform}-${process.arch}, node ${process.versions.node}, Node-API ${process.versions.napi ?? '?'}):`,
      ...tried.map((t) => `  - ${t}`),
      'Possible fixes:',
      ...fixes.map((f) => `  ${f}`),
    ].join('\n'),
  );
}

/** An Environment backed by native memory. Extra methods: *Async variants that run on the libuv pool. */
export class NativeEnvironment implements Environment {
  readonly states: number;
  readonly actions: number;
  /** The LU's vector path for this environment. */
  readonly simd: SimdLevel;
  private raw: RawEnvironment | null;

  constructor(raw: RawEnvironment) {
    this.raw = raw;
    this.states = raw.states;
    this.actions = raw.actions;
    this.simd = raw.simd as SimdLevel;
  }

  private handle(): RawEnvironment {
    if (!this.raw) throw new Error('this native environment has been disposed');
    return this.raw;
  }

  evaluate(theta: Float64Array, rewards: Float64Array, out: Evaluation, warm?: WarmStart): void {
    checkTheta(this, theta);
    checkRewardTables(this, rewards);
    this.handle().evaluate(theta, rewards, out.J, out.V, out.Q, out.grad, out.occupancy, 0, warm?.V, warm?.occupancy);
  }

  truncated(theta: Float64Array, rewards: Float64Array, horizon: number, out: TruncatedEvaluation): void {
    checkTheta(this, theta);
    checkRewardTables(this, rewards);
    this.handle().truncated(theta, rewards, horizon, out.JK, out.gradK);
  }

  optimal(reward: Float64Array, vOut: Float64Array): number {
    checkRewardValues(this, reward);
    return this.handle().optimal(reward, vOut);
  }

  estimateGradient(theta: Float64Array, reward: Float64Array, horizon: number, batch: number, rng: Uint32Array, out: Float64Array): void {
    checkKernelArgs(this, theta, reward, horizon, batch, rng, out);
    this.handle().estimateGradient(theta, reward, horizon, batch, rng, out);
  }

  localRound(args: LocalRoundArgs): void {
    checkLocalRound(this, args);
    const tau = args.entropy ?? 0;
    checkEntropy(tau);
    this.handle().localRound(args);
  }

  /** FedSVRPG-M's two estimates on one batch (Environment.estimateSvrpg). */
  estimateSvrpg(
    theta: Float64Array, thetaPrev: Float64Array, reward: Float64Array, horizon: number, batch: number, clip: number,
    rng: Uint32Array, outCur: Float64Array, outPrevWeighted: Float64Array,
  ): void {
    checkSvrpgEstimate(this, theta, thetaPrev, reward, horizon, batch, clip, rng, outCur, outPrevWeighted);
    this.handle().estimateSvrpg(theta, thetaPrev, reward, horizon, batch, clip, rng, outCur, outPrevWeighted);
  }

  /** Exact J_tau, V_tau, Q_tau and the gradient of J_tau (entropy-regularised objective, regfedpg). */
  evaluateRegularized(theta: Float64Array, rewards: Float64Array, tau: number, out: Evaluation, warm?: WarmStart): void {
    checkTheta(this, theta);
    checkEntropy(tau);
    checkRewardTables(this, rewards);
    this.handle().evaluate(theta, rewards, out.J, out.V, out.Q, out.grad, out.occupancy, tau, warm?.V, warm?.occupancy);
  }

  /** The entropy-regularised GPOMDP estimator, drawing from the stream as estimateGradient does. */
  estimateRegularized(theta: Float64Array, reward: Float64Array, tau: number, horizon: number, batch: number, rng: Uint32Array, out: Float64Array): void {
    checkKernelArgs(this, theta, reward, horizon, batch, rng, out);
    checkEntropy(tau);
    this.handle().estimateRegularized(theta, reward, tau, horizon, batch, rng, out);
  }

  /** evaluate() on the libuv thread pool; `out` is filled when the promise resolves. */
  async evaluateAsync(theta: Float64Array, rewards: Float64Array, out: Evaluation, warm?: WarmStart): Promise<void> {
    checkTheta(this, theta);
    checkRewardTables(this, rewards);
    await this.handle().evaluateAsync(theta, rewards, out.J, out.V, out.Q, out.grad, out.occupancy, 0, warm?.V, warm?.occupancy);
  }

  async truncatedAsync(theta: Float64Array, rewards: Float64Array, horizon: number, out: TruncatedEvaluation): Promise<void> {
    checkTheta(this, theta);
    checkRewardTables(this, rewards);
    await this.handle().truncatedAsync(theta, rewards, horizon, out.JK, out.gradK);
  }

  async optimalAsync(reward: Float64Array, vOut: Float64Array): Promise<number> {
    checkRewardValues(this, reward);
    return this.handle().optimalAsync(reward, vOut);
  }

  /** estimateGradient() off the JS thread; `rng` and `out` are written when the promise resolves. */
  async estimateGradientAsync(theta: Float64Array, reward: Float64Array, horizon: number, batch: number, rng: Uint32Array, out: Float64Array): Promise<void> {
    checkKernelArgs(this, theta, reward, horizon, batch, rng, out);
    await this.handle().estimateGradientAsync(theta, reward, horizon, batch, rng, out);
  }

  /**
   * localRound() off the JS thread. theta and rng are read when called and written back when the
   * promise resolves: do not use them (or call anything else with the same rng) in between.
   */
  async localRoundAsync(args: LocalRoundArgs): Promise<void> {
    checkLocalRound(this, args);
    const tau = args.entropy ?? 0;
    checkEntropy(tau);
    await this.handle().localRoundAsync(args);
  }

  async evaluateRegularizedAsync(theta: Float64Array, rewards: Float64Array, tau: number, out: Evaluation, warm?: WarmStart): Promise<void> {
    checkTheta(this, theta);
    checkEntropy(tau);
    checkRewardTables(this, rewards);
    await this.handle().evaluateAsync(theta, rewards, out.J, out.V, out.Q, out.grad, out.occupancy, tau, warm?.V, warm?.occupancy);
  }

  async estimateRegularizedAsync(theta: Float64Array, reward: Float64Array, tau: number, horizon: number, batch: number, rng: Uint32Array, out: Float64Array): Promise<void> {
    checkKernelArgs(this, theta, reward, horizon, batch, rng, out);
    checkEntropy(tau);
    await this.handle().estimateRegularizedAsync(theta, reward, tau, horizon, batch, rng, out);
  }

  dispose(): void {
    this.raw?.dispose();
    this.raw = null;
  }
}

export interface NativeBackend extends Backend {
  readonly name: 'native';
  /** The .node file in use. */
  readonly path: string;
  readonly info: NativeInfo;
  createEnvironment(spec: EnvironmentSpec, options?: NativeEnvironmentOptions): NativeEnvironment;
}

const SIMD_CHOICES = ['auto', 'generic', 'avx2', 'avx512'];

/** FEDPG_NATIVE_SIMD=generic|avx2|avx512 pins the LU's vector path (results are the same bits; for tests and benchmarks). */
function defaultOptions(info: NativeInfo): NativeEnvironmentOptions {
  const simd = process.env.FEDPG_NATIVE_SIMD;
  if (!simd) return {};
  if (!SIMD_CHOICES.includes(simd)) throw new InputError(`FEDPG_NATIVE_SIMD must be one of ${SIMD_CHOICES.join(', ')}, got '${simd}'`);
  if (simd !== 'auto' && !info.simdSupported.includes(simd as SimdLevel)) {
    throw new InputError(`FEDPG_NATIVE_SIMD=${simd}: this CPU supports ${info.simdSupported.join(', ')}`);
  }
  return { simd: simd as NativeEnvironmentOptions['simd'] };
}

/** The native backend of the package at `root` (throws BackendUnavailableError). */
export function nativeBackendFrom(root: string = PACKAGE_ROOT): NativeBackend {
  const { addon, path } = loadNativeAddon(root);
  const info = addon.info();
  return {
    name: 'native',
    path,
    info,
    createEnvironment: (spec, options) => new NativeEnvironment(new addon.Environment(spec, options ?? defaultOptions(info))),
  };
}

export async function loadNativeBackend(): Promise<NativeBackend> {
  return nativeBackendFrom(PACKAGE_ROOT);
}
