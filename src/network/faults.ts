import { InputError } from '../errors.js';
import type { AgentFault } from './agent.js';
import type { AggregatorCrash } from './aggregator.js';

/**
 * Deterministic fault injection for the network's tests (never for normal use), from the
 * FEDPG_NET_FAULT environment variable, several specs separated by ';':
 *
 *   stall,round=2[,agent=3]      an agent computes its round-2 delta but withholds it until the
 *                                aggregator closed round 2's local phase, then pushes it (late)
 *   exit,round=2[,agent=3]       an agent process exits at round 2's local phase, before pushing
 *   crash,round=2[,phase=local|gradient][,after=1]
 *                                the aggregator kills itself (SIGKILL) right after accepting the
 *                                `after`-th update of that phase (default: local, 1)
 *
 * `agent=` restricts an agent fault to that agent (default: whichever agent reads the variable).
 * Faults fire at a named round and phase, never at a time, so tests do not race the clock.
 */

export const NET_FAULT_ENV = 'FEDPG_NET_FAULT';

export interface NetFaults {
  agent: (AgentFault & { agent?: number })[];
  crash: AggregatorCrash | null;
}

function nonNegInt(spec: string, key: string, v: string): number {
  const x = Number(v);
  if (v.trim() === '' || !Number.isSafeInteger(x) || x < 0) throw new InputError(`${NET_FAULT_ENV} '${spec}': ${key} must be an integer >= 0, got '${v}'`);
  return x;
}

export function parseNetFaults(text: string | undefined): NetFaults {
  const out: NetFaults = { agent: [], crash: null };
  if (!text || !text.trim()) return out;
  for (const spec of text.split(';').map((s) => s.trim()).filter((s) => s !== '')) {
    const [kind, ...parts] = spec.split(',').map((p) => p.trim());
    if (kind !== 'stall' && kind !== 'exit' && kind !== 'crash') throw new InputError(`${NET_FAULT_ENV} '${spec}': kind must be stall, exit or crash`);
    const kv: Record<string, string> = {};
    for (const p of parts) {
      const eq = p.indexOf('=');
      if (eq < 0) throw new InputError(`${NET_FAULT_ENV} '${spec}': '${p}' is not key=value`);
      kv[p.slice(0, eq)] = p.slice(eq + 1);
    }
    const allowed = kind === 'crash' ? ['round', 'phase', 'after'] : ['round', 'agent'];
    for (const k of Object.keys(kv)) if (!allowed.includes(k)) throw new InputError(`${NET_FAULT_ENV} '${spec}': unknown part '${k}' (${allowed.join('=, ')}=)`);
    if (kv.round === undefined) throw new InputError(`${NET_FAULT_ENV} '${spec}': round= is required`);
    const round = nonNegInt(spec, 'round', kv.round);
    if (kind === 'crash') {
      const phase = kv.phase ?? 'local';
      if (phase !== 'local' && phase !== 'gradient') throw new InputError(`${NET_FAULT_ENV} '${spec}': phase must be local or gradient`);
      const after = kv.after === undefined ? 1 : nonNegInt(spec, 'after', kv.after);
      if (after < 1) throw new InputError(`${NET_FAULT_ENV} '${spec}': after must be >= 1`);
      out.crash = { round, phase, after };
    } else {
      const f: AgentFault & { agent?: number } = { kind, round };
      if (kv.agent !== undefined) f.agent = nonNegInt(spec, 'agent', kv.agent);
      out.agent.push(f);
    }
  }
  return out;
}
