import { nextDouble } from '../rng.js';

/** The server's stream for participation draws: an index no agent has. */
export const PARTICIPATION_STREAM = 4294967295;

/** m = ceil(P N - 1e-9) in float64 (so 0.07 x 100 gives 7), at least 1. */
export function participantCount(P: number, N: number): number {
  return Math.max(1, Math.ceil(P * N - 1e-9));
}

/**
 * The agents taking part in a round (SPEC.md): with m = N everyone and no draw; otherwise a
 * partial Fisher-Yates shuffle of [0..N-1] from the server's stream, its first m sorted.
 */
export function drawParticipants(rng: Uint32Array, P: number, N: number): number[] {
  const m = participantCount(P, N);
  const idx = Array.from({ length: N }, (_, i) => i);
  if (m >= N) return idx;
  for (let j = 0; j < m; j++) {
    const k = j + Math.floor(nextDouble(rng) * (N - j));
    const t = idx[j]!;
    idx[j] = idx[k]!;
    idx[k] = t;
  }
  return idx.slice(0, m).sort((a, b) => a - b);
}
