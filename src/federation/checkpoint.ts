import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { BackendName } from '../backends/types.js';
import { InputError } from '../errors.js';
import type { Mdp } from '../mdp/model.js';
import type { AgentState } from './agent.js';
import type { Costs, ServerState } from './server.js';
import type { FaultSpec } from './faults.js';
import type { TrainSettings } from './settings.js';
import { writeFileAtomic } from '../util/atomic.js';
import { decodeFloat64, encodeFloat64, float64Bytes } from '../util/float64.js';

/**
 * Checkpoints: everything a run needs to continue bit for bit (round, theta_bar or the agents'
 * thetas, the global memory, every agent's random stream and memory, the J and gradient-norm
 * histories the log and the result are rebuilt from). Floating-point arrays are stored as the
 * base64 of their IEEE-754 little-endian bytes, so nothing is rounded (not even -0).
 *
 * File format fedpg-checkpoint/1: line 1 is {"format", "sha256", "bytes"} of line 2, the body.
 * A truncated or altered file fails the checksum and is refused. The body names what the run
 * was (hashes of the MDP and theta0, the settings, the backend), and a run resumes only from a
 * checkpoint of the same run: results are only bit-identical for the same backend. `rounds` may
 * differ (a finished run can be extended), as may the number of workers, which changes nothing.
 *
 * Writes are atomic: a temporary file beside the checkpoint, fsync, rename, fsync of the
 * directory. A process killed at any point leaves the previous checkpoint or the new one.
 */

export const CHECKPOINT_FORMAT = 'fedpg-checkpoint/2';

export interface CheckpointState {
  /** Rounds finished. */
  round: number;
  /** The server: theta_bar, its vectors, every agent's last report, its stream, its cost counters. */
  server: ServerState;
  /** |grad J|^2 at theta_bar (the next round's start); null for `local`. */
  lastGradNormSq: number | null;
  /** J before round 1, then after each finished round: round + 1 values (null: not evaluated). */
  J: (number | null)[];
  /** round values (null for `local`). */
  gradNormSq: (number | null)[];
  /** Ditto's personal J history (round + 1 values), or null. */
  personalJ: (number | null)[] | null;
  /** Decentralised algorithms' consensus history (round + 1 values), or null. */
  consensus: (number | null)[] | null;
  /** J_i per agent before round 1 and after each round. */
  agentJ: (number[] | null)[];
  /** The costs after each finished round and who took part (the records are rebuilt from them). */
  costs: (Costs & { participants?: number[]; dpEpsilon?: number | null })[];
  /** Every agent's stream and kept vectors. */
  agents: AgentState[];
}

/** What identifies a run: a checkpoint of another run is refused. */
export interface RunIdentity {
  mdp: string;
  theta0: string;
  backend: BackendName;
  agents: number;
  states: number;
  actions: number;
  /** The settings except `rounds`. */
  settings: Omit<TrainSettings, 'rounds'>;
}

/** sha256 of an MDP's contents (shapes, gamma, rho, kernels, rewards), as bytes. */
export function mdpDigest(mdp: Mdp): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ states: mdp.states, actions: mdp.actions, agents: mdp.rewards.length, perAgentKernels: mdp.perAgentKernels, kernels: mdp.kernels.map((k) => k.kind) }));
  h.update(float64Bytes(new Float64Array([mdp.gamma])));
  h.update(float64Bytes(mdp.initial));
  for (const k of mdp.kernels) {
    if (k.kind === 'dense') h.update(float64Bytes(k.p));
    else {
      h.update(Buffer.from(k.rowStart.buffer, k.rowStart.byteOffset, k.rowStart.byteLength));
      h.update(Buffer.from(k.next.buffer, k.next.byteOffset, k.next.byteLength));
      h.update(float64Bytes(k.prob));
    }
  }
  for (const r of mdp.rewards) h.update(float64Bytes(r));
  return h.digest('hex');
}

export function runIdentity(mdp: Mdp, theta0: Float64Array, backend: BackendName, settings: TrainSettings): RunIdentity {
  const { rounds: _r, ...rest } = settings;
  return {
    mdp: mdpDigest(mdp),
    theta0: createHash('sha256').update(float64Bytes(theta0)).digest('hex'),
    backend,
    agents: mdp.rewards.length,
    states: mdp.states,
    actions: mdp.actions,
    settings: rest,
  };
}

/** A history with nulls (rounds the evaluation cadence skipped) as float64 with NaN for null. */
function encodeNullable(xs: readonly (number | null)[]): string {
  return encodeFloat64(Float64Array.from(xs, (x) => (x === null ? Number.NaN : x)));
}

function decodeNullable(v: unknown, n: number, what: string): (number | null)[] {
  return Array.from(decodeFloat64(v, n, what), (x) => (Number.isNaN(x) ? null : x));
}

function serialise(id: RunIdentity, st: CheckpointState): string {
  const sv = st.server;
  const body = {
    run: id,
    round: st.round,
    server: {
      thetaBar: encodeFloat64(sv.thetaBar),
      vectors: sv.vectors.map(encodeFloat64),
      reports: sv.reports.map((r) => (r ? encodeFloat64(r) : null)),
      rng: Array.from(sv.rng),
      trajectories: sv.trajectories,
      vectorsSent: sv.vectors_sent,
      messages: sv.messages,
    },
    lastGradNormSq: st.lastGradNormSq === null ? null : encodeFloat64(new Float64Array([st.lastGradNormSq])),
    J: encodeNullable(st.J),
    gradNormSq: st.gradNormSq.every((g) => g === null) ? null : encodeNullable(st.gradNormSq),
    personalJ: st.personalJ ? encodeNullable(st.personalJ) : null,
    consensus: st.consensus ? encodeNullable(st.consensus) : null,
    agentJ: st.agentJ.map((a) => (a ? encodeFloat64(Float64Array.from(a)) : null)),
    costs: st.costs,
    agents: st.agents.map((a) => ({ rng: Array.from(a.rng), kept: a.kept.map(encodeFloat64) })),
  };
  const text = JSON.stringify(body);
  const head = { format: CHECKPOINT_FORMAT, sha256: createHash('sha256').update(text).digest('hex'), bytes: Buffer.byteLength(text) };
  return `${JSON.stringify(head)}\n${text}\n`;
}

/**
 * Writes the checkpoint atomically. `faults` may ask for the process to be killed between the
 * fsync of the temporary file and the rename (to test that such a kill loses nothing).
 */
/** True when a checkpoint file exists at path (a run then resumes from it). */
export function checkpointExists(path: string): boolean {
  return existsSync(path);
}

export function writeCheckpoint(path: string, id: RunIdentity, st: CheckpointState, faults: readonly FaultSpec[] = []): void {
  writeFileAtomic(path, serialise(id, st), {
    beforeRename: () => {
      if (faults.some((f) => f.kind === 'kill-checkpoint' && f.round === st.round)) process.kill(process.pid, 'SIGKILL');
    },
  });
}

function describeDifference(want: RunIdentity, got: RunIdentity): string | null {
  if (got.agents !== want.agents || got.states !== want.states || got.actions !== want.actions)
    return `it is for ${got.agents} agents, ${got.states} states, ${got.actions} actions (this run: ${want.agents}, ${want.states}, ${want.actions})`;
  if (got.mdp !== want.mdp) return 'it was made with a different MDP';
  if (got.backend !== want.backend) return `it was made with the ${got.backend} backend (this run: ${want.backend}; results are bit-identical only on one backend)`;
  const diffs: string[] = [];
  for (const k of Object.keys(want.settings) as (keyof RunIdentity['settings'])[]) {
    if (got.settings?.[k] !== want.settings[k]) diffs.push(`${k} ${String(got.settings?.[k])} (this run: ${String(want.settings[k])})`);
  }
  if (diffs.length) return `it was made with other settings: ${diffs.join(', ')}`;
  if (got.theta0 !== want.theta0) return 'it was made from a different theta0';
  return null;
}

/**
 * Reads and checks a checkpoint of this run; throws InputError (corrupt, other run, or beyond
 * `rounds`) with a message that says how to start over.
 */
export function readCheckpoint(path: string, want: RunIdentity, rounds: number, keptCount: number, serverVectors: number): CheckpointState {
  const refuse = (why: string): never => {
    throw new InputError(`checkpoint ${path} refused: ${why}; pass --fresh to start over or choose another --checkpoint file`);
  };
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    return refuse(`cannot read it (${e instanceof Error ? e.message : String(e)})`);
  }
  const nl = text.indexOf('\n');
  let head: { format?: unknown; sha256?: unknown; bytes?: unknown };
  try {
    head = JSON.parse(nl < 0 ? text : text.slice(0, nl)) as typeof head;
  } catch {
    return refuse('it is not a fedpg checkpoint (corrupt or another kind of file)');
  }
  if (head?.format === 'fedpg-checkpoint/1') return refuse('it was written by an older fast-fedpg (fedpg-checkpoint/1), whose state this version cannot continue');
  if (head?.format !== CHECKPOINT_FORMAT) return refuse(`its format is ${JSON.stringify(head?.format)}, not ${CHECKPOINT_FORMAT}`);
  const body = nl < 0 ? '' : text.slice(nl + 1).replace(/\n$/, '');
  if (createHash('sha256').update(body).digest('hex') !== head.sha256) return refuse('it is corrupt (checksum mismatch: truncated or altered)');
  let b: Record<string, unknown>;
  try {
    b = JSON.parse(body) as Record<string, unknown>;
  } catch {
    return refuse('it is corrupt (its body is not JSON)');
  }
  const diff = describeDifference(want, b.run as RunIdentity);
  if (diff) return refuse(`it belongs to another run: ${diff}`);
  const round = b.round;
  if (typeof round !== 'number' || !Number.isSafeInteger(round) || round < 0) return refuse('it is corrupt (bad round)');
  if (round > rounds) return refuse(`it is at round ${round}, beyond this run's ${rounds} rounds`);
  try {
    const SA = want.states * want.actions;
    const N = want.agents;
    const local = want.settings.algorithm === 'local';
    const agents = b.agents;
    if (!Array.isArray(agents) || agents.length !== N) throw new Error('the agents\' states are missing');
    const J = decodeNullable(b.J, round + 1, 'J');
    const g = b.gradNormSq === null ? null : decodeNullable(b.gradNormSq, round, 'gradNormSq');
    if (!local && !g && round > 0) throw new Error('gradNormSq is missing');
    const sv = b.server as Record<string, unknown> | undefined;
    if (!sv || typeof sv !== 'object') throw new Error('the server state is missing');
    const vectors = sv.vectors;
    if (!Array.isArray(vectors) || vectors.length !== serverVectors) throw new Error('the server vectors are missing');
    const reports = sv.reports;
    if (!Array.isArray(reports)) throw new Error('the server\'s reports are missing');
    const agentJ = b.agentJ;
    if (!Array.isArray(agentJ) || agentJ.length !== round + 1) throw new Error('the per-agent J history is missing');
    const costs = b.costs;
    if (!Array.isArray(costs) || costs.length !== round || !costs.every((c) => c && ['trajectories', 'steps', 'bytes'].every((k) => Number.isSafeInteger((c as Record<string, unknown>)[k]))))
      throw new Error('the cost history is malformed');
    const stream = (x: unknown, what: string): Uint32Array => {
      if (!Array.isArray(x) || x.length !== 4 || !x.every((v) => Number.isInteger(v) && v >= 0 && v <= 0xffffffff)) throw new Error(`${what} is malformed`);
      return Uint32Array.from(x as number[]);
    };
    const counter = (x: unknown, what: string): number => {
      if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) throw new Error(`${what} is malformed`);
      return x;
    };
    return {
      round,
      server: {
        thetaBar: decodeFloat64(sv.thetaBar, SA, 'theta_bar'),
        vectors: vectors.map((v, k) => decodeFloat64(v, SA, `server vector ${k}`)),
        reports: reports.map((r, i) => (r === null ? null : decodeFloat64(r, SA, `agent ${i}'s report`))),
        rng: stream(sv.rng, 'the server\'s random stream'),
        trajectories: counter(sv.trajectories, 'the trajectory count'),
        vectors_sent: counter(sv.vectorsSent, 'the vector count'),
        messages: Array.isArray(sv.messages) && sv.messages.length === N ? sv.messages.map((m, i) => counter(m, `agent ${i}'s message count`)) : (() => { throw new Error('the message counts are missing'); })(),
      },
      lastGradNormSq: b.lastGradNormSq === null ? null : decodeFloat64(b.lastGradNormSq, 1, 'lastGradNormSq')[0]!,
      J,
      gradNormSq: g ?? new Array<null>(round).fill(null),
      personalJ: b.personalJ === null || b.personalJ === undefined ? null : decodeNullable(b.personalJ, round + 1, 'personalJ'),
      consensus: b.consensus === null || b.consensus === undefined ? null : decodeNullable(b.consensus, round + 1, 'consensus'),
      agentJ: agentJ.map((a, t) => (a === null ? null : Array.from(decodeFloat64(a, N, `agentJ of round ${t}`)))),
      costs: costs as (Costs & { participants?: number[]; dpEpsilon?: number | null })[],
      agents: (agents as { rng?: unknown; kept?: unknown }[]).map((a, i) => {
        const kept = a.kept;
        if (!Array.isArray(kept) || kept.length !== keptCount) throw new Error(`agent ${i}'s kept vectors are missing`);
        return { rng: stream(a.rng, `agent ${i}'s random stream`), kept: kept.map((k, j) => decodeFloat64(k, SA, `agent ${i}'s kept vector ${j}`)) };
      }),
    };
  } catch (e) {
    return refuse(`it is corrupt (${e instanceof Error ? e.message : String(e)})`);
  }
}
