/**
 * The Node entry pulls in fs, worker_threads and the native addon. A bundler that resolves it
 * into a browser bundle gets this message at load time instead of an obscure failure later.
 */
declare const window: unknown;
if (typeof window !== 'undefined' && typeof (globalThis as { process?: { versions?: { node?: unknown } } }).process?.versions?.node !== 'string') {
  throw new Error(
    "fast-fedpg: this is the Node entry (fs, worker_threads, native addon). In a browser import 'fast-fedpg/browser', or let the bundler use the package's \"browser\" export condition.",
  );
}
export {};
