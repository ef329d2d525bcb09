import { InputError } from '../errors.js';

/**
 * Deterministic fault injection, for tests of the runtime's failure paths (never for normal
 * use). A fault fires at a named agent, round and phase, or at the checkpoint write of a round,
 * so a test never races the clock. Specs come from TrainOptions.faults or the FEDPG_FAULT
 * environment variable, several separated by ';':
 *
 *   throw,agent=3,round=5            agent 3 throws at round 5 (local steps)
 *   hang,agent=1,round=2,phase=memory  agent 1 never returns from its memory sample after round 2
 *   exit,agent=0,round=1,once        the worker thread hosting agent 0 exits, on the first attempt only
 *   delay,agent=2,round=3,ms=40      agent 2 sleeps 40 ms before its round 3 (forces a finishing order)
 *   kill-checkpoint,round=4          the process is killed (SIGKILL) after the checkpoint of round 4
 *                                    is written and fsynced to its temporary file, before the rename
 *
 * Rounds count from 1 as in the log; the memory samples taken before round 1 are round 0,
 * phase=memory. `once` fires on the first attempt only, so a retry (--retry 1) succeeds.
 * `hang` and `exit` need worker threads: an in-process agent cannot be pre-empted or lose its thread.
 */

export type FaultKind = 'throw' | 'hang' | 'exit' | 'delay' | 'kill-checkpoint';
export type FaultPhase = 'local' | 'memory';

export interface FaultSpec {
  kind: FaultKind;
  /** The agent (not used by kill-checkpoint). */
  agent?: number;
  round: number;
  /** Default 'local'. */
  phase?: FaultPhase;
  /** Fire on the first attempt only (default: on every attempt). */
  once?: boolean;
  /** `delay` only: milliseconds. */
  ms?: number;
}

const KINDS: readonly FaultKind[] = ['throw', 'hang', 'exit', 'delay', 'kill-checkpoint'];

export const FAULT_ENV = 'FEDPG_FAULT';

function nonNegInt(spec: string, key: string, v: string): number {
  const x = Number(v);
  if (v.trim() === '' || !Number.isSafeInteger(x) || x < 0) throw new InputError(`fault '${spec}': ${key} must be an integer >= 0, got '${v}'`);
  return x;
}

/** Parses FEDPG_FAULT syntax; throws InputError naming the bad part. */
export function parseFaults(text: string | undefined): FaultSpec[] {
  if (!text || !text.trim()) return [];
  return text
    .split(';')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((spec) => {
      const [kind, ...parts] = spec.split(',').map((p) => p.trim());
      if (!KINDS.includes(kind as FaultKind)) throw new InputError(`fault '${spec}': kind must be one of ${KINDS.join(', ')}`);
      const f: FaultSpec = { kind: kind as FaultKind, round: -1 };
      for (const p of parts) {
        if (p === 'once') {
          f.once = true;
          continue;
        }
        const eq = p.indexOf('=');
        const key = eq < 0 ? p : p.slice(0, eq);
        const val = eq < 0 ? '' : p.slice(eq + 1);
        if (key === 'agent') f.agent = nonNegInt(spec, key, val);
        else if (key === 'round') f.round = nonNegInt(spec, key, val);
        else if (key === 'ms') f.ms = nonNegInt(spec, key, val);
        else if (key === 'phase') {
          if (val !== 'local' && val !== 'memory') throw new InputError(`fault '${spec}': phase must be local or memory, got '${val}'`);
          f.phase = val;
        } else throw new InputError(`fault '${spec}': unknown part '${p}' (agent=, round=, phase=, ms=, once)`);
      }
      if (f.round < 0) throw new InputError(`fault '${spec}': round= is required`);
      if (f.kind !== 'kill-checkpoint' && f.agent === undefined) throw new InputError(`fault '${spec}': agent= is required`);
      if (f.kind === 'delay' && f.ms === undefined) throw new InputError(`fault '${spec}': ms= is required`);
      return f;
    });
}

/** The faults of a run: explicit ones, else FEDPG_FAULT. */
export function resolveFaults(given: FaultSpec[] | string | undefined): FaultSpec[] {
  if (Array.isArray(given)) return given;
  return parseFaults(given ?? process.env[FAULT_ENV]);
}

/** Sleeps without spinning (fault `delay`). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** The agent fault (if any) that fires for this agent, round, phase and attempt. */
export function agentFault(faults: readonly FaultSpec[], agent: number, round: number, phase: FaultPhase, attempt: number): FaultSpec | null {
  for (const f of faults) {
    if (f.kind === 'kill-checkpoint') continue;
    if (f.agent === agent && f.round === round && (f.phase ?? 'local') === phase && !(f.once && attempt > 0)) return f;
  }
  return null;
}

export function describeFault(f: FaultSpec): string {
  return `injected fault: ${f.kind} at agent ${f.agent}, round ${f.round}, ${f.phase ?? 'local'} phase${f.once ? ', once' : ''}`;
}

/** An agent's computation failed (threw, its thread died, or it ran out of time). */
export class AgentFailure extends Error {
  constructor(
    readonly agent: number,
    readonly round: number,
    readonly phase: FaultPhase | 'evaluation' | 'start-up',
    readonly reason: string,
  ) {
    super(`agent ${agent} failed in ${phaseLabel(phase, round)}: ${reason}`);
    this.name = 'AgentFailure';
  }
}

export function phaseLabel(phase: FaultPhase | 'evaluation' | 'start-up', round: number): string {
  switch (phase) {
    case 'local':
      return `round ${round} (local steps)`;
    case 'memory':
      return round === 0 ? 'the memory samples before round 1' : `round ${round} (memory sample)`;
    case 'evaluation':
      return `the evaluation after round ${round}`;
    case 'start-up':
      return 'start-up';
  }
}
