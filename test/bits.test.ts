import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { FIXTURES, fixturePath } from './helpers/fixtures.js';
import { testedBackends } from './helpers/backends.js';

/**
 * Issue 17: a sampled `fedpg train` gives the same theta, bit for bit, on js, native and wasm,
 * for every algorithm with a sampled form, on every fixture MDP (dense, sparse, per-agent
 * kernels). J is an exact evaluation of that theta by each backend's solver, which may differ in
 * the last bits (the solver contract: 1e-11).
 */

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli', 'main.js');
const backends = (await testedBackends()).map((b) => b.name);

const MDPS = readdirSync(FIXTURES)
  .filter((f) => f.endsWith('.json') && !f.endsWith('.expect.json'))
  .filter((f) => JSON.parse(readFileSync(join(FIXTURES, f), 'utf8')).format === 'fedpg-mdp/1')
  .map((f) => f.slice(0, -'.json'.length))
  .sort();

const ALGORITHMS: [string, string[]][] = [
  ['fast-fedpg', ['--algorithm', 'fast-fedpg']],
  ['fedavg', ['--algorithm', 'fedavg']],
  ['centralized', ['--algorithm', 'centralized']],
  ['local', ['--algorithm', 'local']],
  ['regfedpg', ['--algorithm', 'regfedpg', '--entropy', '0.2']],
  ['fast-fedpg --entropy', ['--algorithm', 'fast-fedpg', '--entropy', '0.1']],
  ['fast-fedpg --correction fresh', ['--algorithm', 'fast-fedpg', '--correction', 'fresh']],
];

/** Later sampled methods and options (the field's methods, FedSVRPG-M's kernel, participation, Ditto, attacks, DP). */
const MORE: [string, string[]][] = [
  ['fedprox', ['--algorithm', 'fedprox', '--prox-mu', '0.1']],
  ['fedavgm', ['--algorithm', 'fedavgm', '--server-momentum', '0.5']],
  ['fedsvrpg-m --is-clip 0', ['--algorithm', 'fedsvrpg-m', '--momentum-beta', '0.3', '--is-clip', '0']],
  ['fedsvrpg-m', ['--algorithm', 'fedsvrpg-m', '--momentum-beta', '0.6']],
  ['--participation 0.5', ['--participation', '0.5']],
  ['--personalize ditto', ['--personalize', 'ditto:0.2']],
  ['--attack gaussian', ['--byzantine', '1', '--attack', 'gaussian:0.1']],
  ['--dp-noise', ['--dp-clip', '1', '--dp-noise', '0.5']],
];
const MORE_MDPS = ['labbi-challenging', 'random-s20-a4-n8-sparse', 'random-s6-a3-n4'];

const COMMON = ['--gradient', 'sampled', '--rounds', '6', '--local-steps', '4', '--eta', '0.8', '--horizon', '12', '--batch', '5', '--seed', '17', '--workers', '1', '--json'];

function train(mdp: string, backend: string, flags: string[]): any {
  const r = spawnSync(process.execPath, [CLI, 'train', fixturePath(`${mdp}.json`), ...flags, ...COMMON, '--backend', backend], {
    encoding: 'utf8',
    env: { ...process.env, FEDPG_BACKEND: '' },
  });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return JSON.parse(r.stdout);
}

/** The first index where two nested arrays of numbers differ in bits (Object.is), or -1. */
function firstBitDifference(a: unknown, b: unknown): number {
  const fa = [a].flat(Infinity) as number[], fb = [b].flat(Infinity) as number[];
  if (fa.length !== fb.length) return 0;
  for (let i = 0; i < fa.length; i++) if (!Object.is(fa[i], fb[i])) return i;
  return -1;
}

describe.skipIf(backends.length < 2)('sampled runs are bit-identical across backends', () => {
  it('covers the fixtures: dense, sparse and per-agent kernels', () => {
    expect(MDPS).toEqual(expect.arrayContaining(['labbi-challenging', 'random-s20-a4-n8-sparse', 'random-s6-a3-n4']));
  });

  it.each([
    ...MDPS.flatMap((m) => ALGORITHMS.map(([name, flags]) => [m, name, flags] as const)),
    ...MORE_MDPS.flatMap((m) => MORE.map(([name, flags]) => [m, name, flags] as const)),
  ])('%s, %s', (mdp, _name, flags) => {
    const runs = backends.map((b) => [b, train(mdp, b, flags)] as const);
    const [, ref] = runs[0]!;
    // `local` reports no shared theta but every agent's (`thetas`): those must agree instead.
    const moved = ref.theta ?? ref.thetas;
    // theta moved away from its start (otherwise equal bits would prove nothing)
    expect(moved.flat(Infinity).some((v: number) => v !== 0)).toBe(true);
    for (const [b, run] of runs.slice(1)) {
      expect(run.backend).toBe(b);
      expect(firstBitDifference(run.theta, ref.theta), `theta on ${b} vs ${runs[0]![0]}`).toBe(-1);
      expect(firstBitDifference(run.thetas ?? null, ref.thetas ?? null), `thetas on ${b}`).toBe(-1);
      expect(run.J).toHaveLength(ref.J.length);
      for (let t = 0; t < ref.J.length; t++) expect(Math.abs(run.J[t] - ref.J[t]), `J[${t}] on ${b}`).toBeLessThanOrEqual(1e-11 * Math.max(1, Math.abs(ref.J[t])));
    }
  });
});
