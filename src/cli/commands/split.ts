import { createHmac, randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { InputError } from '../../errors.js';
import { loadMdp } from '../../mdp/format.js';
import { isNpz, SHARED_NPZ_FORMAT, writeNpz } from '../../mdp/npz.js';
import { rewardsToJson, sharedToJson } from '../../network/formats.js';
import { writeRewardsNpz } from '../../network/rewards-file.js';
import { writeFileAtomic } from '../../util/atomic.js';
import { int, oneOf, printJson } from '../flags.js';
import { addMemoryBudgetFlag } from '../mdp-flags.js';
import { agentStream } from '../../rng.js';

/** A fresh secret: 32 random bytes, base64url (43 characters). */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * Agent i's private stream: HMAC-SHA256(secret, "fedpg-agent-stream/i"), its first 16 bytes as the
 * xoshiro128** state (one-way: knowing one agent's key or the others' tells nothing of the secret).
 */
export function derivedStream(secret: Uint8Array, agent: number): Uint32Array {
  const d = createHmac('sha256', secret).update(`fedpg-agent-stream/${agent}`).digest();
  const s = new Uint32Array([d.readUInt32LE(0), d.readUInt32LE(4), d.readUInt32LE(8), d.readUInt32LE(12)]);
  if ((s[0]! | s[1]! | s[2]! | s[3]!) === 0) s[0] = 1;
  return s;
}

function writeJson(path: string, value: unknown, secret = false): void {
  // Secrets are created readable by their owner only (mode 0600), atomically, every byte checked.
  writeFileAtomic(path, JSON.stringify(value) + '\n', secret ? { mode: 0o600 } : {});
}

const SPLIT_FORMATS = ['json', 'npz'] as const;

/** True when the file starts with a zip signature (an .npz), whatever its name. */
function isNpzFile(path: string): boolean {
  let fd: number | null = null;
  try {
    fd = openSync(path, 'r');
    const head = new Uint8Array(4);
    return isNpz(head.subarray(0, readSync(fd, head, 0, 4, 0)));
  } catch {
    return false; // loadMdp reports a missing or unreadable file with its own message
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

function removeStale(path: string): void {
  try {
    unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new InputError(`cannot remove ${path}, left by an earlier split (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
}

export function splitCommand(program: Command): void {
  addMemoryBudgetFlag(program
    .command('split')
    .description('split an MDP file for a federation across machines: DIR/shared.json (no rewards, for the aggregator and every agent), DIR/rewards-I.json and DIR/token-I.json (agent I only), DIR/tokens.json (the aggregator only); shared.npz and rewards-I.npz with --format npz')
    .argument('<mdp>', 'a fedpg-mdp/1 file, JSON or .npz')
    .requiredOption('--out <dir>', 'directory to write (created if missing; existing files of these names are replaced, and with them every token)')
    .option('--seed <S>', "write agentStream(S, i) as agent i's stream key, as `fedpg train --seed S` uses (reproducible, NOT secret: a small seed is guessable); default: keys derived from a fresh 256-bit secret that is printed nowhere")
    .option('--format <kind>', 'json | npz: how to write shared and rewards-I (default: the kind of the MDP file, so an .npz MDP splits into .npz files; token files are always JSON)')
    .option('--json', 'print the written paths as one JSON object'))
    .action((file: string, o: { out: string; seed?: string; format?: string; json?: boolean }) => {
      const kind = oneOf('format', o.format, SPLIT_FORMATS) ?? (isNpzFile(file) ? 'npz' : 'json');
      const mdp = loadMdp(file);
      const seed = int('seed', o.seed, 0);
      if (seed !== undefined && !Number.isSafeInteger(seed)) throw new InputError(`--seed must be an integer in [0, 2^53 - 1], got '${o.seed}'`);
      // The secret lives only in this process: every agent's key is derived from it one-way.
      const secret = seed === undefined ? randomBytes(32) : null;
      const streamOf = (i: number): Uint32Array => (secret ? derivedStream(secret, i) : agentStream(seed!, i));
      try {
        mkdirSync(o.out, { recursive: true });
      } catch (e) {
        throw new InputError(`cannot create ${o.out} (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
      }
      const N = mdp.rewards.length;
      // A file of the other kind left by an earlier split would be read instead of (or beside)
      // this one's (fedpg agent --agents prefers rewards-I.npz): it goes.
      const other = kind === 'npz' ? 'json' : 'npz';
      const shared = join(o.out, `shared.${kind}`);
      removeStale(join(o.out, `shared.${other}`));
      if (kind === 'npz') writeNpz(shared, mdp, { format: SHARED_NPZ_FORMAT });
      else writeJson(shared, sharedToJson(mdp));
      const tokens: Record<string, string> = {};
      const agents: { rewards: string; token: string }[] = [];
      for (let i = 0; i < N; i++) {
        const rewards = join(o.out, `rewards-${i}.${kind}`);
        const token = join(o.out, `token-${i}.json`);
        removeStale(join(o.out, `rewards-${i}.${other}`));
        // The rewards file holds the agent's private stream key, so it is a secret too.
        if (kind === 'npz') writeRewardsNpz(rewards, i, mdp.rewards[i]!, mdp.states, mdp.actions, streamOf(i));
        else writeJson(rewards, rewardsToJson(i, mdp.rewards[i]!, mdp.states, mdp.actions, streamOf(i)), true);
        tokens[String(i)] = newToken();
        writeJson(token, { agent: i, token: tokens[String(i)] }, true);
        agents.push({ rewards, token });
      }
      const aggregatorTokens = join(o.out, 'tokens.json');
      writeJson(aggregatorTokens, { tokens }, true);
      if (o.json) return printJson({ shared, tokens: aggregatorTokens, agents });
      process.stdout.write(
        [
          `split ${file} (${N} agents, ${mdp.states} states, ${mdp.actions} actions) into ${o.out}:`,
          `  aggregator: ${shared} and ${aggregatorTokens}`,
          ...agents.map((a, i) => `  agent ${i}: ${shared}, ${a.rewards} and ${a.token}`),
          'Give each machine only its own files: the rewards (with its stream key) and the token of an agent are its secrets.',
          seed === undefined ? 'Stream keys: derived from a fresh secret (not reproducible, not recoverable by the aggregator).' : `Stream keys: agentStream(${seed}, i), as fedpg train --seed ${seed} (reproducible; anyone who guesses the seed can replay the agents).`,
        ].join('\n') + '\n',
      );
    });
}
