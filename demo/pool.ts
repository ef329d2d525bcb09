/**
 * The page's side of the Web Worker runtime: WorkerHost wraps one worker (request/reply by
 * sequence number), WorkerPool implements the federation's AgentPool over several hosts, so the
 * lead's Training loop (src/federation/train.ts) drives agents that live in workers exactly as it
 * drives in-process ones. Agent i lives in worker i mod W; each phase is a barrier over all
 * workers, and results land in the agents' slots, so the server's sums run in agent order.
 */
import type { AgentPool, Mdp, TrainSettings, WasmModule } from '../src/browser.js';
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

  constructor(
    hosts: WorkerHost[],
    private readonly run: string,
    mdp: Mdp,
    settings: TrainSettings,
  ) {
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
        });
      }),
    ).then(() => undefined);
  }

  async localRounds(starts: Float64Array | Float64Array[], globalMemory: Float64Array | null, steps: number, out: Float64Array[]): Promise<void> {
    await this.opened;
    await Promise.all(
      this.groups.map(async ({ host, ids }) => {
        const r = await host.call({
          type: 'local',
          run: this.run,
          ids,
          starts: ids.map((i) => (Array.isArray(starts) ? starts[i]! : starts)),
          globalMemory,
          steps,
        });
        ids.forEach((i, k) => out[i]!.set(r.outs![k]!));
      }),
    );
  }

  async memorySamples(theta: Float64Array, out: Float64Array[]): Promise<void> {
    await this.opened;
    await Promise.all(
      this.groups.map(async ({ host, ids }) => {
        const r = await host.call({ type: 'memory', run: this.run, ids, theta });
        ids.forEach((i, k) => out[i]!.set(r.outs![k]!));
      }),
    );
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.groups.map(({ host }) => host.call({ type: 'close', run: this.run })));
  }
}
