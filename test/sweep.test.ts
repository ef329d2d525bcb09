import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { EXPERIMENT_NAMES, parseShard, planExperiment, shardOf, sliceTasks, taskCost } from '../src/experiments/index.js';

/**
 * Issue 20: `fedpg experiment NAME --shard I/N` and `fedpg experiment merge DIR...`. Four shard
 * processes of one --quick experiment, merged, must equal the single-process log byte for byte
 * once the invocation fields (when, how many threads, which command line) are blanked; merge
 * refuses mismatched, duplicate, missing and unfinished shards with one line each.
 */

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli', 'main.js');
const tmp = mkdtempSync(join(tmpdir(), 'fedpg-sweep-'));
// nonidentical --quick: 32 runs of four lengths (T = 20 .. 600), so the slices must balance
// unequal costs; the js backend (about 1 s for all 32) keeps it independent of the addon build.
const EXPERIMENT = ['experiment', 'nonidentical', '--quick', '--backend', 'js'];

function fedpg(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, FEDPG_BACKEND: '' } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** The same, as a child process running concurrently with others (the shards of a job array). */
function fedpgAsync(...args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, FEDPG_BACKEND: '' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, stderr }));
  });
}

/** A log's text with the invocation fields blanked (the only fields a merge may change). */
function normalised(text: string): string {
  return text
    .replace(/"started":"[^"]*"/g, '"started":"-"')
    .replace(/"threads":\d+/g, '"threads":0')
    .replace(/"command":"(?:[^"\\]|\\.)*"/g, '"command":"-"')
    .replace(/"seconds":[-+\d.eE]+/g, '"seconds":0')
    .replace(/"ms":\d+/g, '"ms":0');
}

/** The refusal contract: exit 1, one line on stderr, no stack. */
function refused(r: { code: number; stdout: string; stderr: string }, pattern: RegExp): void {
  expect(r.code, r.stderr).toBe(1);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^fedpg: error: /);
  expect(lines[0]).toMatch(pattern);
}

const shardDir = (i: number): string => join(tmp, `shard-${i}`);
const shardLog = (i: number): string => join(shardDir(i), `nonidentical.shard-${i}-of-4.jsonl`);

describe('fedpg experiment --shard and merge', () => {
  beforeAll(async () => {
    const single = fedpg(...EXPERIMENT, '--threads', '1', '--out', join(tmp, 'single'));
    expect(single.code, single.stderr).toBe(0);
    // Four processes at once, as a job array runs them; one with a thread pool, to show the
    // slices and the runs do not depend on the thread count.
    const shards = await Promise.all([0, 1, 2, 3].map((i) => fedpgAsync(...EXPERIMENT, '--shard', `${i}/4`, '--threads', i === 1 ? '2' : '1', '--out', shardDir(i))));
    for (const s of shards) expect(s.code, s.stderr).toBe(0);
  }, 120_000);

  it('4 shards merged equal the single-process log byte for byte (invocation fields blanked), and draw the same CSV and SVG', () => {
    const r = fedpg('experiment', 'merge', shardDir(0), shardDir(1), shardDir(2), shardDir(3), '--out', join(tmp, 'merged'));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^merged 4 shards \(32 runs\)/);
    const single = readFileSync(join(tmp, 'single', 'nonidentical.jsonl'), 'utf8');
    const merged = readFileSync(join(tmp, 'merged', 'nonidentical.jsonl'), 'utf8');
    expect(merged.split('\n')).toHaveLength(32 + 3); // header, 32 runs, end, and the final newline
    expect(normalised(merged)).toBe(normalised(single));
    for (const ext of ['csv', 'svg']) expect(readFileSync(join(tmp, 'merged', `nonidentical.${ext}`), 'utf8'), ext).toBe(readFileSync(join(tmp, 'single', `nonidentical.${ext}`), 'utf8'));
    // The merged invocation fields: the shards' threads summed, the merge's own command line.
    const header = JSON.parse(merged.split('\n')[0]!);
    expect(header.threads).toBe(1 + 2 + 1 + 1);
    expect(header.command).toMatch(/^fedpg experiment merge /);
    expect(header).not.toHaveProperty('shard');
  });

  it('logs hold their runs in task-index order (the canonical order), sharded or not', () => {
    const indices = (path: string): number[] => readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((l) => l.type === 'run').map((l) => l.index);
    expect(indices(join(tmp, 'single', 'nonidentical.jsonl'))).toEqual([...Array(32).keys()]);
    const all: number[] = [];
    for (let i = 0; i < 4; i++) {
      const header = JSON.parse(readFileSync(shardLog(i), 'utf8').split('\n')[0]!);
      expect(header.shard).toMatchObject({ index: i, count: 4 });
      expect(header.runs).toBe(32);
      expect(indices(shardLog(i))).toEqual(header.shard.tasks);
      all.push(...header.shard.tasks);
    }
    expect(all.sort((a, b) => a - b)).toEqual([...Array(32).keys()]);
  });

  it('merge takes one directory holding every shard, and the files themselves', () => {
    const together = join(tmp, 'together');
    mkdirSync(together);
    for (let i = 0; i < 4; i++) copyFileSync(shardLog(i), join(together, `nonidentical.shard-${i}-of-4.jsonl`));
    const r = fedpg('experiment', 'merge', together, '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ experiment: 'nonidentical', runs: { planned: 32, completed: 32 }, partial: false });
    const f = fedpg('experiment', 'merge', shardLog(3), shardLog(1), shardLog(0), shardLog(2), '--out', join(tmp, 'from-files'));
    expect(f.code, f.stderr).toBe(0);
    expect(normalised(readFileSync(join(tmp, 'from-files', 'nonidentical.jsonl'), 'utf8'))).toBe(normalised(readFileSync(join(tmp, 'single', 'nonidentical.jsonl'), 'utf8')));
  });

  it('refuses a missing shard, naming it', () => {
    refused(fedpg('experiment', 'merge', shardDir(0), shardDir(1), shardDir(3), '--out', join(tmp, 'no')), /missing shard 2\/4 of nonidentical/);
  });

  it('refuses a shard given twice, naming both files', () => {
    const again = join(tmp, 'rerun-2');
    mkdirSync(again);
    copyFileSync(shardLog(2), join(again, 'nonidentical.shard-2-of-4.jsonl'));
    refused(fedpg('experiment', 'merge', shardDir(0), shardDir(1), shardDir(2), shardDir(3), again, '--out', join(tmp, 'no')), /shard 2\/4 appears twice: .*shard-2.* and .*rerun-2/);
  });

  it('refuses shards of other settings, naming the setting and both values', () => {
    const other = join(tmp, 'other-rounds');
    const s = fedpg(...EXPERIMENT, '--rounds', '60', '--shard', '1/4', '--threads', '1', '--out', other);
    expect(s.code, s.stderr).toBe(0);
    refused(fedpg('experiment', 'merge', shardDir(0), other, shardDir(2), shardDir(3), '--out', join(tmp, 'no')), /shard logs disagree on params\.rounds: .* has 600, .* has 60$/);
  });

  it('refuses shards of another shard count, another backend and another experiment', () => {
    const five = join(tmp, 'five');
    expect(fedpg(...EXPERIMENT, '--shard', '4/5', '--threads', '1', '--out', five).code).toBe(0);
    refused(fedpg('experiment', 'merge', shardDir(0), shardDir(1), shardDir(2), five), /disagree on shard count: .* has 4, .* has 5$/);
    // The header alone decides the backend check: rewrite it rather than build another backend.
    const wasm = join(tmp, 'wasm-3');
    mkdirSync(wasm);
    writeFileSync(join(wasm, 'nonidentical.shard-3-of-4.jsonl'), readFileSync(shardLog(3), 'utf8').replace('"backend":"js","threads"', '"backend":"wasm","threads"'));
    refused(fedpg('experiment', 'merge', shardDir(0), shardDir(1), shardDir(2), wasm), /disagree on backend: .* has "js", .* has "wasm"$/);
    const bias = join(tmp, 'bias');
    expect(fedpg('experiment', 'bias', '--quick', '--backend', 'js', '--rounds', '20', '--shard', '0/4', '--threads', '1', '--out', bias).code).toBe(0);
    refused(fedpg('experiment', 'merge', bias, shardDir(1), shardDir(2), shardDir(3)), /disagree on experiment: .* has "bias", .* has "nonidentical"$/);
  });

  it('refuses an unfinished shard (a killed job) and a whole log given as a shard', () => {
    const cut = join(tmp, 'cut-1');
    mkdirSync(cut);
    const lines = readFileSync(shardLog(1), 'utf8').split('\n');
    writeFileSync(join(cut, 'nonidentical.shard-1-of-4.jsonl'), lines.slice(0, 4).join('\n') + '\n'); // header and 3 runs
    refused(fedpg('experiment', 'merge', shardDir(0), cut, shardDir(2), shardDir(3)), /shard 1\/4 \(.*\) is incomplete: it holds 3 of its \d+ runs/);
    refused(fedpg('experiment', 'merge', join(tmp, 'single', 'nonidentical.jsonl')), /is not a shard log/);
    refused(fedpg('experiment', 'merge', join(tmp, 'single')), /holds no shard logs/);
  });

  it('refuses a malformed --shard with one line (exit 1)', () => {
    for (const [v, msg] of [['4/4', /--shard I must be in 0\.\.3/], ['1/0', /--shard N must be an integer >= 1/], ['2', /--shard must be I\/N/], ['-1/4', /--shard must be I\/N/]] as const) {
      refused(fedpg(...EXPERIMENT, '--shard', v, '--dry-run'), msg);
    }
  });
});

describe('sliceTasks', () => {
  const tasks = Array.from({ length: 41 }, (_, index) => ({ index, cost: [1, 10, 100, 7][index % 4]! * (1 + (index % 5)) }));

  it('partitions the tasks, deterministically and whatever their order', () => {
    const slices = sliceTasks(tasks, 4);
    expect(slices.flat().sort((a, b) => a - b)).toEqual([...Array(41).keys()]);
    for (const s of slices) expect(s).toEqual([...s].sort((a, b) => a - b));
    expect(sliceTasks([...tasks].reverse(), 4)).toEqual(slices);
    // A fixed-seed shuffle (Park-Miller): another machine may build the list in another order.
    let seed = 7;
    const shuffled = [...tasks];
    for (let i = shuffled.length - 1; i > 0; i--) {
      seed = (seed * 16807) % 2147483647;
      const j = seed % (i + 1);
      [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
    }
    expect(sliceTasks(shuffled, 4)).toEqual(slices);
  });

  it('balances the cost: no slice exceeds the mean by more than the costliest task', () => {
    for (const count of [2, 3, 4, 7]) {
      const loads = sliceTasks(tasks, count).map((s) => s.reduce((sum, i) => sum + tasks[i]!.cost, 0));
      const total = tasks.reduce((s, t) => s + t.cost, 0);
      const maxCost = Math.max(...tasks.map((t) => t.cost));
      expect(Math.max(...loads), `count ${count}`).toBeLessThanOrEqual(total / count + maxCost);
      // Far better than slicing by index, which puts every cost-100 task (index 2 mod 4) in one place.
      expect(Math.max(...loads) - Math.min(...loads), `count ${count}`).toBeLessThanOrEqual(maxCost);
    }
  });

  it('leaves slices empty when there are fewer tasks than slices', () => {
    const s = sliceTasks(tasks.slice(0, 2), 4);
    expect(s.filter((x) => x.length === 0)).toHaveLength(2);
    expect(s.flat().sort((a, b) => a - b)).toEqual([0, 1]);
  });

  it('parses I/N counting from 0', () => {
    expect(parseShard('0/1')).toEqual({ index: 0, count: 1 });
    expect(parseShard(' 3 / 4 ')).toEqual({ index: 3, count: 4 });
    expect(() => parseShard('4/4')).toThrow(/0\.\.3/);
  });
});

describe('every experiment shards without experiment-specific code', () => {
  it('no experiment is called merge (the subcommand)', () => {
    expect(EXPERIMENT_NAMES).not.toContain('merge');
  });

  it.each([...EXPERIMENT_NAMES])('%s --quick: 3 shards partition its runs, each within the costliest run of a third', async (name) => {
    const plan = await planExperiment(name, { backend: 'js' }, { quick: true });
    const shards = [0, 1, 2].map((index) => shardOf(plan, { index, count: 3 }));
    expect(shards.flat().map((t) => t.index).sort((a, b) => a - b)).toEqual(plan.tasks.map((t) => t.index));
    const cost = (ts: typeof plan.tasks): number => ts.reduce((s, t) => s + taskCost(t), 0);
    const maxCost = Math.max(...plan.tasks.map(taskCost));
    for (const s of shards) expect(cost(s)).toBeLessThanOrEqual(cost(plan.tasks) / 3 + maxCost);
  });
});
