import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Command } from 'commander';
import { InputError } from '../../errors.js';
import { loadMdp } from '../../mdp/format.js';
import { rewardsToJson, sharedToJson } from '../../network/formats.js';
import { writeFileAtomic } from '../../util/atomic.js';
import { printJson } from '../flags.js';
import { addMemoryBudgetFlag } from '../mdp-flags.js';

/** A fresh secret: 32 random bytes, base64url (43 characters). */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Secrets are created readable by their owner only (mode 0600), atomically. */
function writeSecret(path: string, text: string): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(tmp, path);
  } catch (e) {
    unlinkSync(tmp);
    throw e;
  }
}

function writeJson(path: string, value: unknown, secret = false): void {
  const text = JSON.stringify(value) + '\n';
  if (secret) writeSecret(path, text);
  else writeFileAtomic(path, text);
}

export function splitCommand(program: Command): void {
  addMemoryBudgetFlag(program
    .command('split')
    .description('split a fedpg-mdp/1 file for a federation across machines: DIR/shared.json (no rewards, for the aggregator and every agent), DIR/rewards-I.json and DIR/token-I.json (agent I only), DIR/tokens.json (the aggregator only)')
    .argument('<mdp>', 'a fedpg-mdp/1 file')
    .requiredOption('--out <dir>', 'directory to write (created if missing; existing files of these names are replaced, and with them every token)')
    .option('--json', 'print the written paths as one JSON object'))
    .action((file: string, o: { out: string; json?: boolean }) => {
      const mdp = loadMdp(file);
      try {
        mkdirSync(o.out, { recursive: true });
      } catch (e) {
        throw new InputError(`cannot create ${o.out} (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
      }
      const N = mdp.rewards.length;
      const shared = join(o.out, 'shared.json');
      writeJson(shared, sharedToJson(mdp));
      const tokens: Record<string, string> = {};
      const agents: { rewards: string; token: string }[] = [];
      for (let i = 0; i < N; i++) {
        const rewards = join(o.out, `rewards-${i}.json`);
        const token = join(o.out, `token-${i}.json`);
        writeJson(rewards, rewardsToJson(i, mdp.rewards[i]!, mdp.states, mdp.actions));
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
          'Give each machine only its own files: the rewards and the token of an agent are its secrets.',
        ].join('\n') + '\n',
      );
    });
}
