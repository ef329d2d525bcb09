/**
 * The page's side of the Web Worker runtime: WorkerHost wraps one worker (request/reply by
 * sequence number), WorkerPool implements the federation's AgentPool over several hosts, so the
 * lead's Training loop (src/federation/train.ts) drives agents that live in workers exactly as it
 * drives in-process ones. Agent i lives in worker i mod W; each phase is a barrier over all
 * workers, and results land in the agents' slots, so the server's sums run in agent order.
 */
import { algorithmOf, agentStream, initialAgentState, type AgentPool, type AgentState, type Mdp, type TrainSettings, type WasmModule } from '../src/browser.js';
import type { FromWorker, Request, SharedEnvironment } from './protocol.js';

type Ok = Extract<FromWorker, { ok: true }>;

export class WorkerHost {
  private seq = 0;
  private readonly pending = new Map<number, { resolve: (r: Ok) => void; reject: (e: Error) => void }>();
  private broken: Error | null = null;
  /** Resolves with whether the worker runs the SIMD build. */
  readonly ready: Promise<boolean>;

  constructor(
    private readonly worker: Worker,
    module: WasmModule,
  ) {
    worker.onmessage = (ev: MessageEvent<FromWorker>) => {
      const r = ev.data;
      const p = this.pending.get(r.seq);
      if (!p) return;
      this.pending.delete(r.seq);
      if (r.ok) p.resolve(r);
      else p.reject(new Error(r.error));
    };
    worker.onerror = (ev: ErrorEvent) => {
      ev.preventDefault();
      this.fail(new Error(`a Web Worker failed: ${ev.message || 'unknown error'}`));
    };
    worker.onmessageerror = () => this.fail(new Error('a Web Worker sent a message that could not be read'));
    this.ready = this.call({ type: 'init', module }).then((r) => r.simd === true);
  }

  private fail(e: Error): void {
    this.broken = e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  call(msg: Request, transfer: Transferable[] = []): Promise<Ok> {
    if (this.broken) return Promise.reject(this.broken);
    const seq = ++this.seq;
    return new Promise<Ok>((resolve, reject) => {
      this.pending.set(seq, { resolve, reject });
      this.worker.postMessage({ ...msg, seq }, transfer);
    });
  }

  terminate(): void {
    this.fail(new Error('the Web Worker was stopped'));
    this.worker.terminate();
  }
}

function sharedPart(mdp: Mdp): SharedEnvironment {
  return { states: mdp.states, actions: mdp.actions, gamma: mdp.gamma, initial: mdp.initial, kernels: mdp.kernels };
}

export class WorkerPool implements AgentPool {
  readonly size: number;
  private readonly groups: { host: WorkerHost; ids: number[] }[];
  private readonly opened: Promise<void>;
  /** The agents' states as their workers last reported them. */
  private readonly copies: AgentState[];

  constructor(
    hosts: WorkerHost[],
    private readonly run: string,
    mdp: Mdp,
    settings: TrainSettings,
    theta0: Float64Array = new Float64Array(mdp.states * mdp.actions),
  ) {
    const alg = algorithmOf(settings.algorithm);
    this.copies = mdp.rewards.map((_, i) => initialAgentState(alg, settings, agentStream(settings.seed, i), theta0));
    const N = mdp.rewards.length;
    this.size = N;
    this.groups = hosts.map((host) => ({ host, ids: [] as number[] }));
    for (let i = 0; i < N; i++) this.groups[i % hosts.length]!.ids.push(i);
    this.groups = this.groups.filter((g) => g.ids.length > 0);
    const env = sharedPart(mdp);
    this.opened = Promise.all(
      this.groups.map(async ({ host, ids }) => {
        await host.ready;
        // Each worker gets the shared environment and its own agents' rewards only.
        await host.call({
          type: 'open',
          run,
          settings,
          env,
          agents: ids.map((id) => ({ id, reward: mdp.rewards[id]!, kernel: mdp.kernels.length === 1 ? 0 : id })),
          theta0,
        });
      }),
    ).then(() => undefined);
  }

  async localPhase(agents: readonly number[], start: Float64Array, down: readonly Float64Array[], out: Float64Array[]): Promise<void> {
    await this.phase(agents, out, (ids) => ({ type: 'local', run: this.run, ids, start, down: [...down] }));
  }

  async reportPhase(agents: readonly number[], theta: Float64Array, out: Float64Array[]): Promise<void> {
    await this.phase(agents, out, (ids) => ({ type: 'memory', run: this.run, ids, theta }));
  }

  states(): AgentState[] {
    return this.copies.map((c) => ({ rng: c.rng.slice(), kept: c.kept.map((k) => k.slice()) }));
  }

  private async phase(agents: readonly number[], out: Float64Array[], request: (ids: number[]) => Request): Promise<void> {
    await this.opened;
    const taking = new Set(agents);
    await Promise.all(
      this.groups.map(async ({ host, ids: all }) => {
        const ids = all.filter((i) => taking.has(i));
        if (!ids.length) return;
        const r = await host.call(request(ids));
        ids.forEach((i, k) => {
          out[i]!.set(r.outs![k]!);
          this.copies[i] = r.states![k]!;
        });
      }),
    );
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.groups.map(({ host }) => host.call({ type: 'close', run: this.run })));
  }
}
