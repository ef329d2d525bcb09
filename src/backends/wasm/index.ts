import type { Backend } from '../types.js';
import { BackendUnavailableError } from '../select.js';

/** Placeholder until the WebAssembly backend lands (issue 5): `auto` skips it, forcing it explains. */
export async function loadWasmBackend(): Promise<Backend> {
  throw new BackendUnavailableError('wasm', 'the WebAssembly backend is not part of this build yet');
}
