/**
 * The few WebAssembly JS-API types this backend uses, declared locally: the project compiles
 * against ES2022 + Node types, which declare no `WebAssembly` global, and a DOM lib would leak
 * browser globals into every other module's type checking. Real WebAssembly objects satisfy
 * these shapes, so browser code may pass its own `WebAssembly.Module`.
 */

/** Module bytes (ArrayBuffer or a view such as Uint8Array / Node Buffer). */
export type WasmBytes = ArrayBuffer | ArrayBufferView;
/** A compiled WebAssembly.Module (opaque here; structured-cloneable to Web Workers). */
export type WasmModule = object;
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
export interface WasmGlobal {
  value: unknown;
}
export interface WasmInstance {
  readonly exports: Record<string, unknown>;
}
export type WasmImports = Record<string, Record<string, unknown>>;

export interface WebAssemblyApi {
  validate(bytes: WasmBytes): boolean;
  compile(bytes: WasmBytes): Promise<WasmModule>;
  instantiate(module: WasmModule, imports?: WasmImports): Promise<WasmInstance>;
  compileStreaming?(source: unknown): Promise<WasmModule>;
  Module: { new (bytes: WasmBytes): WasmModule };
  Instance: new (module: WasmModule, imports?: WasmImports) => WasmInstance;
}

/** The engine's WebAssembly namespace, or undefined where there is none. */
export function webAssembly(): WebAssemblyApi | undefined {
  const wa = (globalThis as { WebAssembly?: WebAssemblyApi }).WebAssembly;
  return typeof wa === 'object' && wa !== null ? wa : undefined;
}

/** The engine's WebAssembly namespace; throws a clear error where there is none. */
export function requireWebAssembly(): WebAssemblyApi {
  const wa = webAssembly();
  if (!wa) throw new Error('this JavaScript engine has no WebAssembly support');
  return wa;
}

export function isWasmModule(x: unknown): x is WasmModule {
  const wa = webAssembly();
  return !!wa && typeof x === 'object' && x !== null && x instanceof (wa.Module as unknown as new () => object);
}
