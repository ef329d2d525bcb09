import { InputError } from '../errors.js';
import { nextDouble, agentStream } from '../rng.js';

/** FedNPG's communication graph (SPEC.md, "The two closest rivals"). */
export type Topology = { kind: 'complete' } | { kind: 'ring' } | { kind: 'er'; p: number };

export function parseTopology(text: string): Topology {
  if (text === 'complete' || text === 'ring') return { kind: text };
  const m = /^er:(.+)$/.exec(String(text));
  if (m) {
    const p = Number(m[1]);
    if (m[1]!.trim() === '' || !Number.isFinite(p) || p <= 0 || p > 1) throw new InputError(`topology er:P needs P in (0, 1], got '${text}'`);
    return { kind: 'er', p };
  }
  throw new InputError(`topology must be complete, ring or er:P, got '${String(text)}'`);
}

/** The server's stream for random graphs: an index no agent has. */
export const GRAPH_STREAM = 4294967294;

/**
 * The mixing matrix W [N*N], row-major: `complete` 1/N everywhere; `ring` 1/3 on itself and both
 * neighbours (N <= 2: complete); `er:P` an Erdos-Renyi graph drawn from the server's stream (an
 * edge for i < j in lexicographic order when nextDouble < P) with Metropolis weights. A
 * disconnected draw is refused.
 */
export function mixingMatrix(t: Topology, N: number, serverSeed: number): Float64Array {
  const W = new Float64Array(N * N);
  if (t.kind === 'complete' || (t.kind === 'ring' && N <= 2)) {
    W.fill(1 / N);
    return W;
  }
  if (t.kind === 'ring') {
    for (let n = 0; n < N; n++) {
      W[n * N + n] = 1 / 3;
      W[n * N + ((n + 1) % N)] = 1 / 3;
      W[n * N + ((n + N - 1) % N)] = 1 / 3;
    }
    return W;
  }
  const rng = agentStream(serverSeed, GRAPH_STREAM);
  const adj: boolean[] = new Array<boolean>(N * N).fill(false);
  const deg = new Array<number>(N).fill(0);
  for (let i = 0; i < N; i++)
    for (let j = i + 1; j < N; j++)
      if (nextDouble(rng) < t.p) {
        adj[i * N + j] = adj[j * N + i] = true;
        deg[i]!++;
        deg[j]!++;
      }
  // Connected? A search from node 0.
  const seen = new Array<boolean>(N).fill(false);
  const stack = [0];
  seen[0] = true;
  while (stack.length) {
    const i = stack.pop()!;
    for (let j = 0; j < N; j++)
      if (adj[i * N + j] && !seen[j]) {
        seen[j] = true;
        stack.push(j);
      }
  }
  if (seen.some((x) => !x)) throw new InputError(`topology er:${t.p} with server seed ${serverSeed} drew a disconnected graph of ${N} agents; choose another --server-seed or a larger P`);
  for (let i = 0; i < N; i++) {
    let row = 0;
    for (let j = 0; j < N; j++)
      if (adj[i * N + j]) {
        const w = 1 / (1 + Math.max(deg[i]!, deg[j]!));
        W[i * N + j] = w;
        row += w;
      }
    W[i * N + i] = 1 - row;
  }
  return W;
}
