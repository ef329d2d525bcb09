/**
 * Messages between the page (the server of the federation) and the Web Workers that host the
 * agents. A worker receives only what its agents may know: the shared environment (S, A, gamma,
 * rho, the transition kernel) and its own agents' reward tables; it answers with the vectors the
 * algorithm sends (deltas, reports) and the agents' own state for the page's checkpoint-like
 * copy (their random streams and kept vectors), never with rewards.
 */
import type { AgentState, TrainSettings, TransitionTable, WasmModule } from '../src/browser.js';

export interface SharedEnvironment {
  states: number;
  actions: number;
  gamma: number;
  initial: Float64Array;
  /** One kernel shared by every agent, or one per agent (index = agent id). */
  kernels: TransitionTable[];
}

export interface AgentSetup {
  id: number;
  reward: Float64Array;
  /** Index into SharedEnvironment.kernels. */
  kernel: number;
}

export type ToWorker =
  | { type: 'init'; seq: number; module: WasmModule }
  | { type: 'open'; seq: number; run: string; settings: TrainSettings; env: SharedEnvironment; agents: AgentSetup[]; theta0: Float64Array }
  | { type: 'local'; seq: number; run: string; ids: number[]; start: Float64Array; down: Float64Array[] }
  | { type: 'memory'; seq: number; run: string; ids: number[]; theta: Float64Array }
  | { type: 'close'; seq: number; run: string };

export type Request = ToWorker extends infer T ? (T extends { seq: number } ? Omit<T, 'seq'> : never) : never;

export type FromWorker =
  | { seq: number; ok: true; outs?: Float64Array[]; states?: AgentState[]; simd?: boolean }
  | { seq: number; ok: false; error: string };
