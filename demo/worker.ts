/// <reference lib="webworker" />
/**
 * A Web Worker hosting some agents of one or more runs. It instantiates the WebAssembly module the
 * page compiled (posted once), builds an environment per run, and runs the lead's LocalAgent:
 * the same agent code as the Node runtimes, here behind postMessage.
 */
import { algorithmOf, copyAgentState, initialAgentState, instantiateWasmBackend, LocalAgent, agentStream, type AgentState, type Environment, type TrainSettings, type WasmBackend } from '../src/browser.js';
import type { FromWorker, ToWorker } from './protocol.js';

interface Run {
  settings: TrainSettings;
  envs: Environment[];
  agents: Map<number, LocalAgent>;
  SA: number;
}

const scope = self as unknown as DedicatedWorkerGlobalScope;
let backend: WasmBackend | null = null;
const runs = new Map<string, Run>();

function reply(msg: FromWorker, transfer: Transferable[] = []): void {
  scope.postMessage(msg, transfer);
}

function runOf(name: string): Run {
  const r = runs.get(name);
  if (!r) throw new Error(`run ${name} is not open in this worker`);
  return r;
}

function agentOf(run: Run, id: number): LocalAgent {
  const a = run.agents.get(id);
  if (!a) throw new Error(`agent ${id} does not live in this worker`);
  return a;
}

function statesOf(run: Run, ids: number[]): AgentState[] {
  return ids.map((id) => copyAgentState(agentOf(run, id).state));
}

scope.onmessage = async (ev: MessageEvent<ToWorker>) => {
  const m = ev.data;
  try {
    switch (m.type) {
      case 'init': {
        backend = await instantiateWasmBackend(m.module);
        reply({ seq: m.seq, ok: true, simd: backend.simd });
        break;
      }
      case 'open': {
        if (!backend) throw new Error('the worker has no WebAssembly module yet');
        const b = backend;
        const { states, actions, gamma, initial } = m.env;
        const envs = m.env.kernels.map((transitions) => b.createEnvironment({ states, actions, gamma, initial, transitions }));
        const agents = new Map<number, LocalAgent>();
        for (const a of m.agents) {
          const alg = algorithmOf(m.settings.algorithm);
          agents.set(a.id, new LocalAgent(a.id, envs[a.kernel]!, a.reward, initialAgentState(alg, m.settings, agentStream(m.settings.seed, a.id), m.theta0), alg, m.settings));
        }
        runs.get(m.run)?.envs.forEach((e) => e.dispose());
        runs.set(m.run, { settings: m.settings, envs, agents, SA: states * actions });
        reply({ seq: m.seq, ok: true });
        break;
      }
      case 'local': {
        const run = runOf(m.run);
        const outs = m.ids.map((id) => {
          const out = new Float64Array(run.SA);
          agentOf(run, id).localPhase(m.start, m.down, out);
          return out;
        });
        reply({ seq: m.seq, ok: true, outs, states: statesOf(run, m.ids) }, outs.map((o) => o.buffer));
        break;
      }
      case 'memory': {
        const run = runOf(m.run);
        const outs = m.ids.map((id) => {
          const out = new Float64Array(run.SA);
          agentOf(run, id).reportPhase(m.theta, out);
          return out;
        });
        reply({ seq: m.seq, ok: true, outs, states: statesOf(run, m.ids) }, outs.map((o) => o.buffer));
        break;
      }
      case 'close': {
        runs.get(m.run)?.envs.forEach((e) => e.dispose());
        runs.delete(m.run);
        reply({ seq: m.seq, ok: true });
        break;
      }
    }
  } catch (e) {
    reply({ seq: m.seq, ok: false, error: e instanceof Error ? e.message : String(e) });
  }
};
