/**
 * fast-fedpg's browser entry (package export condition "browser", and "fast-fedpg/browser"):
 * the parts of the library that run in a page or a Web Worker. It never imports fs,
 * worker_threads or the native addon; the kernels are the WebAssembly module (or the js
 * reference backend), loaded by URL.
 *
 *   import { loadWasmBackend, gridworldMdp, train } from 'fast-fedpg/browser';
 *   const backend = await loadWasmBackend();
 *   const result = await train(gridworldMdp({ width: 5, height: 5, agents: 4 }), { backend, gradient: 'exact' });
 *
 * To run agents in Web Workers, compile the module once (compileWasmModule) and post it to each
 * worker, which calls loadWasmBackend(module): a WebAssembly.Module is structured-cloneable.
 */
import { isWasmModule, requireWebAssembly, type WasmBytes, type WasmModule } from './backends/wasm/api.js';
import { instantiateWasmBackend, simdSupported, type WasmBackend, type WasmSource } from './backends/wasm/core.js';

export type {
  Backend,
  BackendName,
  Environment,
  EnvironmentSpec,
  Evaluation,
  GradientMode,
  LocalRoundArgs,
  TransitionTable,
  TruncatedEvaluation,
} from './backends/types.js';
export { WasmBackend, simdSupported, wasmFileName, instantiateWasmBackend, type WasmSource } from './backends/wasm/core.js';
export type { WasmModule, WasmBytes } from './backends/wasm/api.js';
export { jsBackend } from './backends/js/index.js';
export { InputError } from './errors.js';
export type { Mdp } from './mdp/model.js';
export { agentCount, averageReward, environmentSpec, hasPerAgentKernels, stackedRewards } from './mdp/model.js';
export { MDP_FORMAT, mdpToJson, parseJsonText, parseMdp, parseTheta, thetaToJson } from './mdp/parse.js';
export { chainMdp, gridworldMdp, randomMdp, GRID_MOVES } from './mdp/generate.js';
export type { ChainOptions, GridworldOptions, RandomMdpOptions } from './mdp/generate.js';
export { agentStream, nextDouble, nextUint32 } from './rng.js';
export { ALGORITHMS, DEFAULT_SETTINGS, resolveSettings } from './federation/settings.js';
export { algorithmNames, algorithmOf, registerAlgorithm } from './federation/algorithms/registry.js';
export type { AlgorithmPlugin, AgentSide, ServerSide } from './federation/algorithms/types.js';
export { ServerCore } from './federation/server.js';
export type { Algorithm, TrainSettings } from './federation/settings.js';
export { Training, train, trainRounds } from './federation/train.js';
export type { RoundRecord, TrainHeader, TrainOptions, TrainResult } from './federation/train.js';
export type { AgentPool, RoundContext } from './federation/pool.js';
export { InProcessPool } from './federation/pool.js';
export { LocalAgent, exactGradient, initialAgentState, copyAgentState, keptNames } from './federation/agent.js';
export type { AgentState } from './federation/agent.js';

/**
 * The URL of the module build for this engine (SIMD where WebAssembly.validate accepts SIMD).
 * Both URLs are literal `new URL(..., import.meta.url)` expressions, so bundlers (vite, webpack,
 * parcel, esbuild with its file loader) find and emit both files.
 */
export function wasmUrl(simd = simdSupported()): URL {
  return simd ? new URL('../wasm/fedpg-simd.wasm', import.meta.url) : new URL('../wasm/fedpg.wasm', import.meta.url);
}

/** Where a module can come from in a browser: a URL to fetch, its bytes, or a compiled module. */
export type WasmLocation = URL | string | WasmBytes | WasmModule;

/**
 * Compiles the module (streaming where the server sends application/wasm). The result can be
 * posted to Web Workers, which then instantiate it without fetching or compiling again.
 */
export async function compileWasmModule(source: WasmLocation = wasmUrl()): Promise<WasmModule> {
  const wa = requireWebAssembly();
  if (typeof source !== 'string' && !(source instanceof URL)) {
    return isWasmModule(source) ? source : wa.compile(source as WasmBytes);
  }
  const res = await fetch(source);
  if (!res.ok) throw new Error(`cannot load the WebAssembly module from ${String(source)}: HTTP ${res.status} ${res.statusText}`);
  const type = res.headers.get('content-type') ?? '';
  if (wa.compileStreaming && type.split(';')[0]!.trim() === 'application/wasm') return wa.compileStreaming(res);
  return wa.compile(await res.arrayBuffer());
}

/** The wasm backend, from the default URL or a given location (see compileWasmModule). */
export async function loadWasmBackend(source?: WasmLocation): Promise<WasmBackend> {
  const module = await compileWasmModule(source);
  return instantiateWasmBackend(module as WasmSource);
}
