import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { pathForSeed, seedSettings } from '../src/cli/seeds.js';
import { fixturePath } from './helpers/fixtures.js';

/**
 * --seeds N on train and run (issue 19, item 2): seeds S..S+N-1 on a pool of threads, each seed
 * the same run as `train --seed S+k`, results independent of the thread count, mean ± standard
 * error in the table, every seed's result and the summary in --json.
 */

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli', 'main.js');
const tmp = mkdtempSync(join(tmpdir(), 'fedpg-seeds-'));
const MDP = fixturePath('random-s6-a3-n4.json');
const SAMPLED = ['--backend', 'js', '--rounds', '6', '--local-steps', '3', '--horizon', '10', '--batch', '2'];

function fedpg(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, FEDPG_BACKEND: '' } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function json(...args: string[]): any {
  const r = fedpg(...args, '--json');
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

/** Bitwise equality of number arrays (Object.is per element). */
function same(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => Object.is(x, b[i]));
}

describe('train --seeds', () => {
  it('seed k is `train --seed S+k`, bit for bit, on 1 or 2 threads; the summary is the mean and its standard error', () => {
    const one = json('train', MDP, ...SAMPLED, '--seed', '5', '--seeds', '3', '--workers', '1');
    const two = json('train', MDP, ...SAMPLED, '--seed', '5', '--seeds', '3', '--workers', '2');
    expect(one.seeds).toEqual([5, 6, 7]);
    expect(one.results).toHaveLength(3);
    for (let k = 0; k < 3; k++) {
      const single = json('train', MDP, ...SAMPLED, '--seed', String(5 + k));
      expect(same(one.results[k].J, single.J), `seed ${5 + k} on one thread`).toBe(true);
      expect(same(two.results[k].J, single.J), `seed ${5 + k} on two threads`).toBe(true);
      expect(one.results[k].settings.seed).toBe(5 + k);
    }
    const finals = one.results.map((r: any) => r.J[r.J.length - 1]);
    const m = finals.reduce((s: number, x: number) => s + x, 0) / 3;
    const se = Math.sqrt(finals.reduce((s: number, x: number) => s + (x - m) ** 2, 0) / 2) / Math.sqrt(3);
    expect(Math.abs(one.summary.J.mean - m)).toBeLessThanOrEqual(1e-12);
    expect(Math.abs(one.summary.J.se - se)).toBeLessThanOrEqual(1e-12);
    expect(se).toBeGreaterThan(0);
    expect(one.summary).toMatchObject({ algorithm: 'fast-fedpg', seeds: [5, 6, 7], rounds: 6 });
    expect(two.summary).toEqual(one.summary);
  }, 60_000);

  it('writes one round log per seed and prints mean ± standard error; without --seeds the output keeps its shape', () => {
    const out = join(tmp, 'run.jsonl');
    const r = fedpg('train', MDP, ...SAMPLED, '--seeds', '2', '--out', out);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/fast-fedpg\s+2\s+[\d.]+ ± [\d.]+\s+[\d.]+ ± [\d.]+/);
    for (const s of [0, 1]) {
      const lines = readFileSync(join(tmp, `run.seed${s}.jsonl`), 'utf8').trim().split('\n');
      expect(lines).toHaveLength(7);
      expect(JSON.parse(lines[0]!).settings.seed).toBe(s);
    }
    expect(existsSync(out)).toBe(false);
    const plain = json('train', MDP, ...SAMPLED);
    for (const k of ['J', 'records', 'settings', 'theta']) expect(plain).toHaveProperty(k);
    for (const k of ['seeds', 'results', 'summary']) expect(plain).not.toHaveProperty(k);
  }, 60_000);

  it('server seeds: Z+k with --server-seed Z, else the run\'s seed S+k (the draws of --participation follow them)', () => {
    const flags = [...SAMPLED, '--participation', '0.5', '--seed', '2'];
    const withZ = json('train', MDP, ...flags, '--server-seed', '10', '--seeds', '2', '--workers', '1');
    const withoutZ = json('train', MDP, ...flags, '--seeds', '2', '--workers', '1');
    expect(withZ.results.map((r: any) => [r.settings.seed, r.settings.serverSeed])).toEqual([[2, 10], [3, 11]]);
    expect(withoutZ.results.map((r: any) => [r.settings.seed, r.settings.serverSeed])).toEqual([[2, 2], [3, 3]]);
    const single = json('train', MDP, ...flags.slice(0, -1), '3', '--server-seed', '11');
    expect(same(withZ.results[1].J, single.J)).toBe(true);
    // The server seed changes the participants, so the runs differ.
    expect(same(withZ.results[1].J, withoutZ.results[1].J)).toBe(false);
  }, 60_000);

  it('refuses --seeds 0 with one line', () => {
    const r = fedpg('train', MDP, '--seeds', '0');
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe("fedpg: error: --seeds must be an integer >= 1, got '0'");
  });

  it('seed settings and file names', () => {
    expect(seedSettings({ seed: 3, eta: 0.1 }, 2)).toEqual({ seed: 5, eta: 0.1 });
    expect(seedSettings({ eta: 0.1 }, 1)).toEqual({ seed: 1, eta: 0.1 });
    expect(seedSettings({ seed: 3, serverSeed: 10 } as any, 2)).toEqual({ seed: 5, serverSeed: 12 });
    expect(pathForSeed('dir/run.jsonl', 4)).toBe('dir/run.seed4.jsonl');
    expect(pathForSeed('ck', 4)).toBe('ck.seed4');
  });
});

describe('run --seeds', () => {
  it('both algorithms on every seed: a table of mean ± s.e., per-seed logs and a plot with bands', () => {
    const dir = join(tmp, 'run');
    const args = ['run', '--gradient', 'sampled', '--batch', '2', '--horizon', '10', '--rounds', '5', '--width', '3', '--height', '3', '--agents', '2', '--backend', 'js', '--seeds', '3', '--out', dir];
    const r = fedpg(...args);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('3 seeds (0..2): mean ± standard error over the seeds');
    expect(r.stdout).toMatch(/\n\s+5\s+[\d.]+ ± [\d.]+/);
    expect(r.stdout).toContain(`plot: ${join(dir, 'run.svg')}`);
    for (const a of ['fast-fedpg', 'fedavg']) for (const s of [0, 1, 2]) expect(existsSync(join(dir, `${a}.seed${s}.jsonl`))).toBe(true);
    const svg = readFileSync(join(dir, 'run.svg'), 'utf8');
    expect(svg).toContain('fast-fedpg 3 seeds');
    expect(svg).toContain('area mark container');
    const j = json(...args);
    expect(Object.keys(j.results)).toEqual(['fast-fedpg', 'fedavg']);
    expect(j.results.fedavg).toHaveLength(3);
    expect(j.summary.map((s: any) => s.algorithm)).toEqual(['fast-fedpg', 'fedavg']);
    expect(j.plot.svg).toBe(join(dir, 'run.svg'));
  }, 60_000);
});
