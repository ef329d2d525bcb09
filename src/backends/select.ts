import type { Backend, BackendChoice, BackendName } from './types.js';
import { jsBackend } from './js/index.js';
import { BackendUnavailableError } from '../errors.js';

/**
 * Backend selection. `auto` tries native, then wasm, then js (the order the bench/ results
 * decided; never a timing taken at start-up, so results do not depend on machine load) and says
 * once on stderr why a faster backend was skipped. Forcing a backend that cannot load is an
 * error whose message lists what was tried and how to fix it.
 */

export const BACKEND_NAMES: readonly BackendName[] = ['native', 'wasm', 'js'];

// Defined with the other errors, so the loaders below need not import this module (no cycle).
export { BackendUnavailableError } from '../errors.js';

type Loader = () => Promise<Backend>;

const loaders: Record<BackendName, Loader> = {
  js: async () => jsBackend,
  native: async () => (await import('./native/index.js')).loadNativeBackend(),
  wasm: async () => (await import('./wasm/index.js')).loadWasmBackend(),
};

const cache = new Map<BackendName, Promise<Backend>>();
let warned = false;

/** Loads one backend by name (memoised); rejects with BackendUnavailableError. */
export function loadBackendByName(name: BackendName): Promise<Backend> {
  let p = cache.get(name);
  if (!p) {
    p = loaders[name]();
    cache.set(name, p);
  }
  return p;
}

export function isBackendChoice(v: string): v is BackendChoice {
  return v === 'auto' || (BACKEND_NAMES as readonly string[]).includes(v);
}

/**
 * The backend for a choice; `undefined` reads FEDPG_BACKEND, then falls back to `auto`.
 * `warn` receives the one-time explanation when `auto` skips a backend.
 */
export async function loadBackend(
  choice?: BackendChoice,
  warn: (msg: string) => void = (m) => process.stderr.write(m + '\n'),
): Promise<Backend> {
  const requested = choice ?? (process.env.FEDPG_BACKEND as BackendChoice | undefined) ?? 'auto';
  if (!isBackendChoice(requested)) {
    throw new BackendUnavailableError('js', `unknown backend '${requested}' (choose auto, native, wasm or js)`);
  }
  if (requested !== 'auto') return loadBackendByName(requested);
  const reasons: string[] = [];
  for (const name of BACKEND_NAMES) {
    try {
      const b = await loadBackendByName(name);
      if (reasons.length && !warned) {
        warned = true;
        warn(`fedpg: using the ${name} backend (${reasons.join('; ')})`);
      }
      return b;
    } catch (e) {
      reasons.push(`${name} unavailable: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
    }
  }
  throw new BackendUnavailableError('js', reasons.join('; '));
}
