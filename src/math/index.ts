/**
 * Deterministic elementary functions: exp (Tang), log and cos (fdlibm) with the same bits on every backend
 * (js, native C++, wasm AssemblyScript) and every machine. See README "Equivalence".
 */
export { detExp } from './exp.js';
export { detLog } from './log.js';
export { detCos } from './cos.js';
