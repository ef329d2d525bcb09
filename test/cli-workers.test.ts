import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { fixturePath, parseUntimed } from './helpers/fixtures.js';

/**
 * The CLI flags of the worker runtime: --workers, --checkpoint/--checkpoint-every/--fresh,
 * --retry, --round-timeout, and the process-level guarantees (a kill between the checkpoint's
 * temporary write and its rename loses nothing; Ctrl-C closes every thread and keeps the log).
 */

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli', 'main.js');
const MDP = fixturePath('random-s20-a4-n8.json');
const RUN = ['train', MDP, '--backend', 'js', '--rounds', '8', '--local-steps', '3', '--horizon', '10', '--batch', '2', '--seed', '3'];
const tmp = mkdtempSync(join(tmpdir(), 'fedpg-cli-workers-'));

function fedpg(args: string[], env: Record<string, string> = {}): { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, FEDPG_BACKEND: '', FEDPG_FAULT: '', ...env } });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

function json(args: string[], env: Record<string, string> = {}): any {
  const r = fedpg([...args, '--json'], env);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return parseUntimed(r.stdout);
}

const reference = json(RUN);

describe('fedpg train --workers', () => {
  it.each(['1', '2', '3', '8', 'auto'])('--workers %s gives the same JSON result as in-process', (w) => {
    expect(json([...RUN, '--workers', w])).toEqual(reference);
  });

  it('says how the agents ran in the text summary', () => {
    const r = fedpg([...RUN, '--workers', '2']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^runtime: 2 worker threads$/m);
    expect(fedpg(RUN).stdout).toMatch(/^runtime: in-process \(rounds of about .* ms are too short to gain from threads\)$/m);
  });

  it.each([
    [['--workers', '0'], /--workers must be auto or an integer >= 1, got '0'/],
    [['--workers', 'many'], /--workers must be auto or an integer >= 1, got 'many'/],
    [['--retry', '-1'], /--retry must be an integer >= 0/],
    [['--round-timeout', '1.5'], /--round-timeout must be an integer >= 0/],
    [['--checkpoint-every', '3'], /--checkpoint-every needs --checkpoint <file>/],
    [['--checkpoint', join(tmp, 'x.ckpt'), '--checkpoint-every', '0'], /--checkpoint-every must be an integer >= 1/],
  ])('refuses %j with one line and exit 1', (extra, message) => {
    const r = fedpg([...RUN, ...extra]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});

describe('faults through the CLI (FEDPG_FAULT)', () => {
  it('a failing agent: one line naming the agent, exit 1, the log keeps every finished round, the process exits', () => {
    const log = join(tmp, 'fail.jsonl');
    const r = fedpg([...RUN, '--workers', '2', '--out', log], { FEDPG_FAULT: 'throw,agent=5,round=4' });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('fedpg: error: agent 5 failed in round 4 (local steps): injected fault: throw at agent 5, round 4, local phase\n');
    const lines = readFileSync(log, 'utf8').trim().split('\n').map((l) => parseUntimed(l));
    expect(lines.map((l) => l.round ?? 'header')).toEqual(['header', 1, 2, 3]);
    expect(lines.slice(1)).toEqual(reference.records.slice(0, 3));
  });

  it('--retry 1 reruns it on a fresh worker, says so, and ends with the same result', () => {
    const r = fedpg([...RUN, '--workers', '3', '--retry', '1', '--json'], { FEDPG_FAULT: 'exit,agent=5,round=4,once' });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^fedpg: agent 5 failed in round 4 \(local steps\): its worker thread died .*; rerunning it on a fresh worker thread for agents 5-7 from their saved state \(retry 1 of 1\)\n$/);
    expect(parseUntimed(r.stdout)).toEqual(reference);
  });

  it('--round-timeout ends a hung round instead of hanging', () => {
    const t0 = Date.now();
    const r = fedpg([...RUN, '--workers', '2', '--round-timeout', '300'], { FEDPG_FAULT: 'hang,agent=1,round=2' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^fedpg: error: agent 1 failed in round 2 \(local steps\): it did not finish within 300 ms/);
    expect(Date.now() - t0).toBeLessThan(20_000);
  });

  it('a bad FEDPG_FAULT is refused', () => {
    const r = fedpg(RUN, { FEDPG_FAULT: 'throw,agent=x,round=1' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/fault 'throw,agent=x,round=1': agent must be an integer >= 0/);
  });
});

describe('checkpoint and resume through the CLI', () => {
  it('a kill between the temporary write and the rename loses nothing: rerunning resumes and ends bit-identical, log included', () => {
    const dir = mkdtempSync(join(tmp, 'kill-'));
    const ckpt = join(dir, 'run.ckpt'), log = join(dir, 'run.jsonl');
    const full = join(dir, 'full.jsonl');
    const args = [...RUN, '--workers', '2', '--checkpoint', ckpt, '--checkpoint-every', '2', '--out', log];
    const killed = fedpg(args, { FEDPG_FAULT: 'kill-checkpoint,round=4' });
    expect(killed.signal).toBe('SIGKILL');
    // The round-2 checkpoint is intact; round 4's never replaced it; the log got rounds 1-4.
    expect(JSON.parse(readFileSync(ckpt, 'utf8').split('\n')[1]!).round).toBe(2);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toHaveLength(1);
    expect(readFileSync(log, 'utf8').trim().split('\n')).toHaveLength(5);
    const resumed = fedpg([...args, '--json']);
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toBe(`fedpg: resuming from checkpoint ${ckpt} at round 2 of 8\n`);
    expect(parseUntimed(resumed.stdout)).toEqual(reference);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toHaveLength(0);
    // The log is the uninterrupted run's, line for line (but for the wall-clock fields).
    expect(fedpg([...RUN, '--out', full]).code).toBe(0);
    const lines = (f: string): unknown[] => readFileSync(f, 'utf8').trim().split('\n').map(parseUntimed);
    expect(lines(log)).toEqual(lines(full));
    // Running it again: already finished, nothing to do, same answer.
    const again = fedpg([...args, '--json']);
    expect(again.stderr).toBe(`fedpg: resuming from checkpoint ${ckpt} at round 8 of 8\n`);
    expect(parseUntimed(again.stdout)).toEqual(reference);
  });

  it('--fresh starts over; a mismatched or corrupt checkpoint is refused with a message', () => {
    const ckpt = join(tmp, 'fresh.ckpt');
    expect(json([...RUN, '--checkpoint', ckpt])).toEqual(reference);
    const other = fedpg([...RUN, '--checkpoint', ckpt, '--eta', '0.2']);
    expect(other.code).toBe(1);
    expect(other.stderr).toBe(
      `fedpg: error: checkpoint ${ckpt} refused: it belongs to another run: it was made with other settings: eta 0.1 (this run: 0.2); pass --fresh to start over or choose another --checkpoint file\n`,
    );
    const fresh = fedpg([...RUN, '--checkpoint', ckpt, '--fresh', '--json']);
    expect(fresh.stderr).toBe('');
    expect(parseUntimed(fresh.stdout)).toEqual(reference);
    spawnSync('truncate', ['-s', '100', ckpt]);
    const corrupt = fedpg([...RUN, '--checkpoint', ckpt]);
    expect(corrupt.code).toBe(1);
    expect(corrupt.stderr).toMatch(/refused: it is (corrupt|not a fedpg checkpoint)/);
  });

  it('run keeps one checkpoint per algorithm and resumes both', () => {
    const dir = mkdtempSync(join(tmp, 'run-'));
    const args = ['run', '--backend', 'js', '--width', '3', '--height', '3', '--agents', '2', '--rounds', '6', '--out', join(dir, 'logs'), '--checkpoint', join(dir, 'ck.json'), '--json'];
    const first = fedpg(args);
    expect(first.code).toBe(0);
    expect(existsSync(join(dir, 'ck.fast-fedpg.json')) && existsSync(join(dir, 'ck.fedavg.json'))).toBe(true);
    const second = fedpg(args);
    expect(second.stderr).toBe(`fedpg: resuming from checkpoint ${join(dir, 'ck.fast-fedpg.json')} at round 6 of 6\nfedpg: resuming from checkpoint ${join(dir, 'ck.fedavg.json')} at round 6 of 6\n`);
    expect(parseUntimed(second.stdout).results).toEqual(parseUntimed(first.stdout).results);
  });
});

describe('Ctrl-C', () => {
  it.each(['1', '2'])('stops a run (--workers %s): exit 130, complete log lines, a checkpoint of the last finished round, no lingering process', async (workers) => {
    const dir = mkdtempSync(join(tmp, 'sigint-'));
    const log = join(dir, 'run.jsonl'), ckpt = join(dir, 'run.ckpt');
    const child = spawn(process.execPath, [CLI, ...RUN.slice(0, 4), '--rounds', '1000000', '--workers', workers, '--out', log, '--checkpoint', ckpt, '--checkpoint-every', '1000'], {
      env: { ...process.env, FEDPG_BACKEND: '', FEDPG_FAULT: '' },
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    // Wait for a few finished rounds in the log, then press Ctrl-C.
    for (let k = 0; k < 600; k++) {
      await new Promise((r) => setTimeout(r, 50));
      if (existsSync(log) && readFileSync(log, 'utf8').split('\n').length > 4) break;
    }
    const t0 = Date.now();
    child.kill('SIGINT');
    const code = await exited;
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(code).toBe(130);
    expect(stderr).toMatch(/fedpg: interrupted \(Ctrl-C\); the log holds every finished round/);
    const text = readFileSync(log, 'utf8');
    expect(text.endsWith('\n')).toBe(true);
    const rounds = text.trim().split('\n').slice(1).map((l) => JSON.parse(l).round);
    expect(rounds).toEqual(rounds.map((_, i) => i + 1));
    expect(JSON.parse(readFileSync(ckpt, 'utf8').split('\n')[1]!).round).toBe(rounds[rounds.length - 1]);
    expect(stderr).toMatch(new RegExp(`checkpoint ${ckpt.replace(/[.]/g, '\\.')} saved at round ${rounds[rounds.length - 1]}`));
    rmSync(dir, { recursive: true, force: true });
  });
});
