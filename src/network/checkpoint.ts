import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { InputError } from '../errors.js';
import type { TrainSettings } from '../federation/settings.js';
import { writeFileAtomic } from '../util/atomic.js';
import { decodeFloat64, encodeFloat64, float64Bytes } from '../util/float64.js';
import type { AggregatorSnapshot, NetRecord, PhaseKind } from './aggregator.js';

/**
 * The aggregator's checkpoint (fedpg-aggregator-checkpoint/1), written atomically at every phase
 * change: line 1 is {"format", "sha256", "bytes"} of line 2, the body. Floating-point arrays are
 * the base64 of their IEEE-754 little-endian bytes, so nothing is rounded. A checkpoint belongs
 * to one run (its run id: the shared MDP, the settings except `rounds`, theta0 and N); another
 * run's is refused.
 */

export const AGGREGATOR_CHECKPOINT_FORMAT = 'fedpg-aggregator-checkpoint/2';

/** The run id: what must match for a checkpoint (and for agents after a reconnection). */
export function runIdOf(sharedMdp: Uint8Array, settings: TrainSettings, theta0: Float64Array, agents: number): string {
  const { rounds: _r, ...rest } = settings;
  const h = createHash('sha256');
  h.update(sharedMdp);
  h.update(JSON.stringify({ settings: rest, agents }));
  h.update(float64Bytes(theta0));
  return h.digest('hex').slice(0, 32);
}

/** A nullable double, exactly (JSON would turn -0 into 0). */
function encNum(v: number | null): string | null {
  return v === null ? null : encodeFloat64(new Float64Array([v]));
}

function decNum(v: unknown, what: string): number | null {
  return v === null ? null : decodeFloat64(v, 1, what)[0]!;
}

export function writeAggregatorCheckpoint(path: string, s: AggregatorSnapshot): void {
  const body = JSON.stringify({
    runId: s.runId,
    round: s.round,
    phase: s.phase,
    server: {
      thetaBar: encodeFloat64(s.server.thetaBar),
      vectors: s.server.vectors.map(encodeFloat64),
      reports: s.server.reports.map((m) => (m ? encodeFloat64(m) : null)),
      rng: Array.from(s.server.rng),
      trajectories: s.server.trajectories,
      vectorsSent: s.server.vectors_sent,
      messages: s.server.messages,
    },
    memoryRound: s.memoryRound,
    participants: s.participants,
    J: s.J.map(encNum),
    records: s.records.map((r) => ({ ...r, J: encNum(r.J), ...(r.personalJ !== undefined ? { personalJ: encNum(r.personalJ) } : {}) })),
    lastClosed: s.lastClosed,
    roundDeltas: s.roundDeltas,
  });
  const head = { format: AGGREGATOR_CHECKPOINT_FORMAT, sha256: createHash('sha256').update(body).digest('hex'), bytes: Buffer.byteLength(body) };
  writeFileAtomic(path, `${JSON.stringify(head)}\n${body}\n`);
}

const int = (v: unknown, what: string): number => {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new Error(`${what} is not an integer >= 0`);
  return v;
};

/**
 * Reads a checkpoint of run `runId` (N agents, SA parameters); throws InputError saying why it
 * is refused and how to start over.
 */
export function readAggregatorCheckpoint(path: string, runId: string, agents: number, SA: number, serverVectors: number): AggregatorSnapshot {
  const refuse = (why: string): never => {
    throw new InputError(`checkpoint ${path} refused: ${why}; pass --fresh to start the run over or choose another --checkpoint file`);
  };
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    return refuse(`cannot read it (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  const nl = text.indexOf('\n');
  let head: { format?: unknown; sha256?: unknown };
  try {
    head = JSON.parse(nl < 0 ? text : text.slice(0, nl)) as typeof head;
  } catch {
    return refuse('it is not an aggregator checkpoint');
  }
  if (head?.format !== AGGREGATOR_CHECKPOINT_FORMAT) return refuse(`its format is ${JSON.stringify(head?.format)}, not ${AGGREGATOR_CHECKPOINT_FORMAT}`);
  const body = nl < 0 ? '' : text.slice(nl + 1).replace(/\n$/, '');
  if (createHash('sha256').update(body).digest('hex') !== head.sha256) return refuse('it is corrupt (checksum mismatch)');
  let b: Record<string, unknown>;
  try {
    b = JSON.parse(body) as Record<string, unknown>;
  } catch {
    return refuse('it is corrupt (its body is not JSON)');
  }
  if (b.runId !== runId) return refuse('it belongs to another run (another shared MDP, other settings, another theta0 or another number of agents)');
  try {
    const phase = b.phase as PhaseKind;
    if (phase !== 'local' && phase !== 'gradient' && phase !== 'done') throw new Error('bad phase');
    const sv = b.server as Record<string, unknown> | undefined;
    if (!sv || typeof sv !== 'object') throw new Error('the server state is missing');
    const vectors = sv.vectors;
    if (!Array.isArray(vectors) || vectors.length !== serverVectors) throw new Error('the server vectors are missing');
    const reports = sv.reports;
    if (!Array.isArray(reports) || (reports.length !== agents && reports.length !== 0)) throw new Error('the agents\' reports are missing');
    const rng = sv.rng;
    if (!Array.isArray(rng) || rng.length !== 4 || !rng.every((x) => Number.isInteger(x) && x >= 0 && x <= 0xffffffff)) throw new Error('the server\'s stream is malformed');
    const participants = b.participants;
    if (!Array.isArray(participants)) throw new Error('the participants are missing');
    const memoryRound = b.memoryRound;
    if (!Array.isArray(memoryRound) || memoryRound.length !== agents) throw new Error('the memory rounds are missing');
    const J = b.J;
    if (!Array.isArray(J)) throw new Error('J is missing');
    const records = b.records;
    if (!Array.isArray(records)) throw new Error('the records are missing');
    const lc = b.lastClosed as { key?: unknown; agents?: unknown } | null;
    if (lc !== null && (typeof lc !== 'object' || typeof lc.key !== 'number' || !Array.isArray(lc.agents))) throw new Error('bad lastClosed');
    return {
      runId,
      round: int(b.round, 'round'),
      phase,
      server: {
        thetaBar: decodeFloat64(sv.thetaBar, SA, 'theta_bar'),
        vectors: vectors.map((v, k) => decodeFloat64(v, SA, `server vector ${k}`)),
        reports: reports.map((m, i) => (m === null ? null : decodeFloat64(m, SA, `agent ${i}'s report`))),
        rng: Uint32Array.from(rng as number[]),
        trajectories: int(sv.trajectories, 'trajectories'),
        vectors_sent: int(sv.vectorsSent, 'vectors'),
        messages: Array.isArray(sv.messages) && sv.messages.length === agents ? sv.messages.map((m, i) => int(m, `agent ${i}'s message count`)) : (() => { throw new Error('the message counts are missing'); })(),
      },
      memoryRound: memoryRound.map((r, i) => int(r, `agent ${i}'s memory round`)),
      participants: participants.map((a) => int(a, 'participant')),
      J: J.map((v, i) => decNum(v, `J[${i}]`)),
      records: (records as (NetRecord & { J: unknown; personalJ?: unknown })[]).map((r, i) => {
        const { personalJ, ...rest } = r;
        return { ...rest, J: decNum(r.J, `record ${i}'s J`), ...(personalJ !== undefined ? { personalJ: decNum(personalJ, `record ${i}'s personalJ`) } : {}) };
      }),
      lastClosed: lc === null ? null : { key: lc.key as number, agents: (lc.agents as unknown[]).map((a) => int(a, 'lastClosed agent')) },
      roundDeltas: int(b.roundDeltas, 'roundDeltas'),
    };
  } catch (e) {
    return refuse(`it is corrupt (${e instanceof Error ? e.message : String(e)})`);
  }
}
