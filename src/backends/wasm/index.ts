import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Backend } from '../types.js';
import { BackendUnavailableError } from '../../errors.js';
import { instantiateWasmBackend, simdSupported, wasmFileName, type WasmBackend } from './core.js';

export { WasmBackend, simdSupported, wasmFileName } from './core.js';

/**
 * The Node loader of the wasm backend: reads wasm/fedpg-simd.wasm (or wasm/fedpg.wasm where the
 * engine lacks SIMD, or when FEDPG_WASM_SIMD=0) from the package root, relative to this file, so
 * it works from src/ (tests) and dist/ alike. The browser entry (src/browser.ts) loads the same
 * files by URL instead.
 */
export interface WasmLoadOptions {
  /** Force the SIMD (true) or the scalar (false) build; default: SIMD where the engine has it. */
  simd?: boolean;
}

export function wasmFileUrl(simd?: boolean): URL {
  return new URL(`../../../wasm/${wasmFileName(simd)}`, import.meta.url);
}

export async function loadWasmBackend(options: WasmLoadOptions = {}): Promise<WasmBackend & Backend> {
  let simd = options.simd;
  if (simd === undefined) simd = process.env.FEDPG_WASM_SIMD === '0' ? false : simdSupported();
  if (simd && !simdSupported()) throw new BackendUnavailableError('wasm', 'this engine does not support WebAssembly SIMD (use the scalar build)');
  const url = wasmFileUrl(simd);
  let bytes: Buffer;
  try {
    bytes = await readFile(url);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new BackendUnavailableError('wasm', `cannot read ${fileURLToPath(url)} (${code}); build it with: npm run build:wasm`);
  }
  try {
    return await instantiateWasmBackend(bytes);
  } catch (e) {
    throw new BackendUnavailableError('wasm', `cannot instantiate ${fileURLToPath(url)}: ${e instanceof Error ? e.message : String(e)}`);
  }
}
