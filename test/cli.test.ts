import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { fixturePath, readExpect, relativeError, untimed } from './helpers/fixtures.js';

/** The built CLI, spawned with node as a user's shell would (npm test compiles it first). */
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli', 'main.js');
const BACKEND = ['--backend', 'js'];

function fedpg(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, FEDPG_BACKEND: '' } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function json(...args: string[]): any {
  const r = fedpg(...args, '--json');
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout);
}

const tmp = mkdtempSync(join(tmpdir(), 'fedpg-cli-'));

describe('fedpg evaluate', () => {
  it('reports every expect-file field of a fixture to 1e-9', () => {
    const exp = readExpect('random-s20-a4-n8-sparse').expect;
    const out = json('evaluate', fixturePath('random-s20-a4-n8-sparse.json'), '--theta', fixturePath('random-s20-a4-n8-sparse.expect.json'), '--horizon', String(exp.K), ...BACKEND);
    for (const k of ['J', 'Javg', 'V', 'Q', 'grad', 'gradAvg', 'Jstar', 'Vstar', 'JK', 'gradK']) expect(relativeError(out[k], exp[k]), k).toBeLessThanOrEqual(1e-9);
    expect(out.K).toBe(exp.K);
    expect(out.backend).toBe('js');
  });

  it('leaves out V, Q, Jstar and Vstar with per-agent transitions', () => {
    const exp = readExpect('labbi-challenging').expect;
    const out = json('evaluate', fixturePath('labbi-challenging.json'), '--theta', fixturePath('labbi-challenging.expect.json'), '--horizon', '10', ...BACKEND);
    for (const k of ['V', 'Q', 'Jstar', 'Vstar']) expect(out).not.toHaveProperty(k);
    for (const k of ['J', 'Javg', 'grad', 'gradAvg', 'JK', 'gradK']) expect(relativeError(out[k], exp[k]), k).toBeLessThanOrEqual(1e-9);
  });

  it('without --horizon gives no K, JK, gradK; without --theta starts at zero', () => {
    const out = json('evaluate', fixturePath('plateau-s6-a3-n4.json'), ...BACKEND);
    expect(out).not.toHaveProperty('JK');
    const exp = readExpect('plateau-s6-a3-n4');
    expect(exp.theta.flat().every((v: number) => v === 0)).toBe(true);
    expect(relativeError(out.J, exp.expect.J)).toBeLessThanOrEqual(1e-9);
  });
});

describe('fedpg train', () => {
  it('prints the documented JSON for the README example', () => {
    const out = json('train', fixturePath('random-s6-a3-n4.json'), '--algorithm', 'fast-fedpg', '--gradient', 'exact', '--rounds', '2', '--local-steps', '5', '--eta', '0.5', '--theta0', fixturePath('random-s6-a3-n4.expect.json'), ...BACKEND);
    expect(out.algorithm).toBe('fast-fedpg');
    expect(out.backend).toBe('js');
    expect(out.gradient).toBe('exact');
    expect(out.J.map((v: number) => +v.toFixed(6))).toEqual([5.265778, 5.321957, 5.37235]);
    expect(out.gradNormSq.map((v: number) => +v.toFixed(6))).toEqual([0.023286, 0.021265]);
    expect(out.theta).toHaveLength(6);
    expect(out.records.map((r: any) => [r.round, +r.J.toFixed(6), +r.gap.toFixed(6), +r.gradNormSq.toFixed(6), r.trajectories, r.steps, r.bytes])).toEqual([
      [1, 5.321957, 0.652165, 0.023286, 0, 0, 2880],
      [2, 5.37235, 0.601771, 0.021265, 0, 0, 5184],
    ]);
  });

  it('reproduces the fixture iterates (labbi-challenging, per-agent kernels)', () => {
    const s = readExpect('labbi-challenging').expect.fastFedPG;
    const out = json('train', fixturePath('labbi-challenging.json'), '--algorithm', 'fast-fedpg', '--gradient', 'exact', '--rounds', String(s.rounds), '--local-steps', String(s.localSteps), '--eta', String(s.eta), '--alpha-g', String(s.alphaG), '--theta0', fixturePath('zeros-s7-a4.json'), ...BACKEND);
    expect(relativeError(out.J, s.J)).toBeLessThanOrEqual(1e-9);
    expect(relativeError(out.theta, s.theta)).toBeLessThanOrEqual(1e-9);
    expect(relativeError(out.gradNormSq, s.gradNormSq)).toBeLessThanOrEqual(1e-9);
    expect(out.records[0].gap).toBeNull();
  });

  it('writes a JSONL log: a header with the settings and J before round 1, then one record per round', () => {
    const log = join(tmp, 'run.jsonl');
    const out = json('train', fixturePath('random-s6-a3-n4.json'), '--rounds', '3', '--local-steps', '2', '--batch', '4', '--horizon', '20', '--seed', '7', '--out', log, ...BACKEND);
    const lines = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(4);
    expect(lines[0].type).toBe('header');
    expect(lines[0].settings).toMatchObject({ rounds: 3, localSteps: 2, batch: 4, horizon: 20, seed: 7, gradient: 'sampled', algorithm: 'fast-fedpg' });
    expect(lines[0].J0).toBe(out.J[0]);
    expect(lines.slice(1)).toEqual(out.records);
    expect(out.records[2].trajectories).toBe(4 * 4 * (1 + 3 * 3));
  });

  it('is reproducible: the same seed gives the same output', () => {
    const a = json('train', fixturePath('random-s6-a3-n4.json'), '--rounds', '3', '--seed', '11', ...BACKEND);
    const b = json('train', fixturePath('random-s6-a3-n4.json'), '--rounds', '3', '--seed', '11', ...BACKEND);
    expect(untimed(a)).toEqual(untimed(b));
  });
});

describe('bad input: one line on stderr, exit 1 for bad files and values, 2 for bad flags', () => {
  const bad = join(tmp, 'bad.json');
  writeFileSync(bad, '{"format": "fedpg-mdp/1", "states": 2,');
  it.each([
    [['evaluate', bad], 1, /^fedpg: error: .*bad\.json: invalid JSON/],
    [['evaluate', join(tmp, 'missing.json')], 1, /^fedpg: error: .*missing\.json: no such file/],
    [['train', fixturePath('random-s6-a3-n4.json'), '--eta', 'fast'], 1, /^fedpg: error: --eta must be a number, got 'fast'/],
    [['train', fixturePath('random-s6-a3-n4.json'), '--algorithm', 'sgd'], 1, /^fedpg: error: --algorithm must be one of fast-fedpg, fedavg, centralized, local, regfedpg, fedprox, fedavgm, .*got 'sgd'/],
    [['train', fixturePath('random-s6-a3-n4.json'), '--alpha-g', '2'], 1, /^fedpg: error: alphaG must be in \(0, 1\], got 2/],
    [['train', fixturePath('random-s6-a3-n4.json'), '--backend', 'gpu'], 1, /^fedpg: error: --backend must be auto, native, wasm or js, got 'gpu'/],
    [['train', fixturePath('random-s6-a3-n4.json'), '--theta0', fixturePath('zeros-s5-a3.json')], 1, /the theta table has 5 entries, expected 6/],
    [['generate', 'maze'], 1, /^fedpg: error: unknown MDP kind 'maze'/],
    [['train', fixturePath('random-s6-a3-n4.json'), '--bogus'], 2, /unknown option '--bogus'/],
    [['train'], 2, /missing required argument 'mdp'/],
    [['frobnicate'], 2, /unknown command 'frobnicate'/],
    [['train', fixturePath('random-s6-a3-n4.json'), '--eta'], 2, /option '--eta <x>' argument missing/],
  ] as const)('fedpg %j exits %i', (args, code, message) => {
    const r = fedpg(...args);
    expect(r.code).toBe(code);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.stdout).toBe('');
  });

  it('--help exits 0', () => {
    const r = fedpg('train', '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/--local-steps <H>/);
  });
});

describe('fedpg generate and run', () => {
  it('generate writes a valid MDP atomically, deterministic in the seed', () => {
    const f = join(tmp, 'grid.json');
    expect(fedpg('generate', 'gridworld', '--width', '3', '--height', '2', '--agents', '3', '--seed', '4', '--out', f).code).toBe(0);
    const m = JSON.parse(readFileSync(f, 'utf8'));
    expect(m.format).toBe('fedpg-mdp/1');
    expect(m.states).toBe(6);
    expect(m.rewards).toHaveLength(3);
    const again = fedpg('generate', 'gridworld', '--width', '3', '--height', '2', '--agents', '3', '--seed', '4');
    expect(JSON.parse(again.stdout)).toEqual(m);
    const ev = json('evaluate', f, ...BACKEND);
    expect(ev.J).toHaveLength(3);
  });

  it('run prints the table of both algorithms and writes their logs', () => {
    const dir = join(tmp, 'run');
    const r = fedpg('run', '--rounds', '20', '--out', dir, ...BACKEND);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/round\s+J fast-fedpg\s+gap fast-fedpg\s+J fedavg\s+gap fedavg/);
    const last = r.stdout.split('\n').find((l) => /^\s*20\s/.test(l))!;
    const [, , gapFast, , gapAvg] = last.trim().split(/\s+/).map(Number);
    expect(gapFast).toBeLessThan(gapAvg!);
    for (const a of ['fast-fedpg', 'fedavg']) {
      expect(existsSync(join(dir, `${a}.jsonl`))).toBe(true);
      expect(readFileSync(join(dir, `${a}.jsonl`), 'utf8').trim().split('\n')).toHaveLength(21);
    }
  });
});
