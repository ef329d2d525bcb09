import { readJsonOrNpz } from '../mdp/format.js';
import { npzArrayParts, readNpzRewards } from '../mdp/npz.js';
import { parseJsonText } from '../mdp/parse.js';
import { streamKey } from '../rng.js';
import { writeFileAtomic } from '../util/atomic.js';
import { REWARDS_FORMAT } from './formats.js';

/**
 * An agent's fedpg-rewards/2 file in Node: JSON or .npz (told apart by the first bytes, like every
 * MDP file), read with the same file-type and size checks. The value goes to parseRewards, which
 * checks it against the shared MDP once the aggregator has sent it.
 */
export function loadRewardsFile(path: string): unknown {
  return readJsonOrNpz(
    path,
    (fd, size) => readNpzRewards(fd, size, path),
    (text) => parseJsonText(text, path),
  );
}

/**
 * Writes agent `agent`'s rewards and private stream key as .npz (members format, agent, key,
 * rewards [S, A]; np.load reads it), atomically and readable by its owner only: it is a secret.
 */
export function writeRewardsNpz(path: string, agent: number, reward: Float64Array, states: number, actions: number, stream: Uint32Array): void {
  const parts = npzArrayParts([
    { name: 'format', data: REWARDS_FORMAT, shape: [] },
    { name: 'agent', data: Int32Array.of(agent), shape: [] },
    { name: 'key', data: streamKey(stream), shape: [] },
    { name: 'rewards', data: reward, shape: [states, actions] },
  ]);
  writeFileAtomic(path, parts, { mode: 0o600 });
}
