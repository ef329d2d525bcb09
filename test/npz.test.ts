import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { InputError } from '../src/errors.js';
import { loadMdp, mdpToJson } from '../src/mdp/format.js';
import { gridworldMdp, randomMdp } from '../src/mdp/generate.js';
import type { Mdp } from '../src/mdp/model.js';
import { npyHeader, readNpyHeader } from '../src/mdp/npy.js';
import { npzParts, writeNpz } from '../src/mdp/npz.js';
import { loadShared } from '../src/network/shared-file.js';
import { sharedToJson } from '../src/network/formats.js';
import { fedpgLimited, refusalLine } from './helpers/cli.js';
import { fixturePath } from './helpers/fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'fedpg-npz-'));

function bits(mdp: Mdp): unknown {
  return mdpToJson(mdp);
}

function npzFile(name: string, mdp: Mdp, compress = false): string {
  const p = join(tmp, name);
  writeNpz(p, mdp, { compress });
  return p;
}

describe('.npz round trip', () => {
  it.each(['random-s6-a3-n4', 'random-s20-a4-n8-sparse', 'labbi-challenging', 'plateau-s6-a3-n4'])('%s: write then read gives the same MDP, stored and deflated', (name) => {
    const mdp = loadMdp(fixturePath(`${name}.json`));
    for (const compress of [false, true]) {
      const again = loadMdp(npzFile(`${name}-${compress}.npz`, mdp, compress));
      expect(bits(again)).toEqual(bits(mdp));
      expect(again.perAgentKernels).toBe(mdp.perAgentKernels);
      expect(again.kernels[0]!.kind).toBe(mdp.kernels[0]!.kind);
    }
  });

  it('a large sparse gridworld round-trips bit for bit', () => {
    const g = gridworldMdp({ width: 120, height: 90, agents: 3, goals: 'spread' });
    const { goals: _g, width: _w, height: _h, ...mdp } = g;
    const again = loadMdp(npzFile('grid.npz', mdp));
    const k = mdp.kernels[0]!, k2 = again.kernels[0]!;
    expect(k.kind === 'sparse' && k2.kind === 'sparse').toBe(true);
    if (k.kind === 'sparse' && k2.kind === 'sparse') {
      expect(Buffer.from(k2.prob.buffer, k2.prob.byteOffset, k2.prob.byteLength).equals(Buffer.from(k.prob.buffer, k.prob.byteOffset, k.prob.byteLength))).toBe(true);
      expect(Array.from(k2.next)).toEqual(Array.from(k.next));
      expect(Array.from(k2.rowStart)).toEqual(Array.from(k.rowStart));
    }
    again.rewards.forEach((r, i) => expect(Array.from(r)).toEqual(Array.from(mdp.rewards[i]!)));
    expect(again.name).toBe(mdp.name);
  });

  it('the same MDP always gives the same bytes', () => {
    const m = randomMdp({ states: 9, actions: 2, agents: 2, branching: 3 });
    const a = Buffer.concat(npzParts(m)), b = Buffer.concat(npzParts(m));
    expect(a.equals(b)).toBe(true);
  });

  it('the .npy header is padded so data starts on a 64-byte boundary, and reads back', () => {
    for (const shape of [[], [7], [3, 4, 5]]) {
      const h = npyHeader('<f8', shape);
      expect(h.length % 64).toBe(0);
      expect(readNpyHeader(h)).toEqual({ descr: '<f8', fortranOrder: false, shape, dataOffset: h.length });
    }
  });

  it('a shared .npz (fedpg-shared/1) loads for serve; an MDP .npz is refused there', () => {
    const mdp = loadMdp(fixturePath('random-s6-a3-n4.json'));
    const p = join(tmp, 'shared.npz');
    writeNpz(p, mdp, { format: 'fedpg-shared/1' });
    expect(sharedToJson(loadShared(p))).toEqual(sharedToJson(mdp));
    expect(() => loadMdp(p)).toThrow(`${p}: is a fedpg-shared/1 archive (no rewards); an MDP file with rewards is needed here`);
    const q = npzFile('full.npz', mdp);
    expect(() => loadShared(q)).toThrow(`${q}: format must be "fedpg-shared/1", got "fedpg-mdp/1"`);
  });

  it('the CLI evaluates an .npz exactly as its JSON', () => {
    const json = fixturePath('random-s20-a4-n8-sparse.json');
    const npz = npzFile('cli.npz', loadMdp(json));
    const a = fedpgLimited(['evaluate', json, '--json', '--backend', 'js']);
    const b = fedpgLimited(['evaluate', npz, '--json', '--backend', 'js']);
    expect(b.code).toBe(0);
    expect(JSON.parse(b.stdout)).toEqual(JSON.parse(a.stdout));
  });
});

const numpy = spawnSync('python3', ['-c', 'import numpy; print(numpy.__version__)'], { encoding: 'utf8' });
const hasNumpy = numpy.status === 0;
if (!hasNumpy) console.warn('npz.test.ts: python3 with numpy not found; skipping the files written by numpy');

describe.skipIf(!hasNumpy)('files written by numpy', () => {
  /** The fixture's tables, saved by numpy every supported way; each must read back as the fixture. */
  it.each([
    ['np.savez, dense', 'savez', 'dense', 'int32'],
    ['np.savez_compressed, dense', 'savez_compressed', 'dense', 'int32'],
    ['np.savez, CSR int32', 'savez', 'csr', 'int32'],
    ['np.savez, CSR int64', 'savez', 'csr', 'int64'],
    ['np.savez_compressed, CSR int32', 'savez_compressed', 'csr', 'int32'],
    ['np.savez_compressed, CSR int64', 'savez_compressed', 'csr', 'int64'],
  ])('%s', (_what, fn, layout, itype) => {
    const fixture = fixturePath('random-s20-a4-n8.json');
    const out = join(tmp, `np-${fn}-${layout}-${itype}.npz`);
    const script = `
import json, sys, numpy as np
m = json.load(open(sys.argv[1]))
P = np.array(m['transitions'], dtype=np.float64)
S, A = m['states'], m['actions']
arrays = dict(format=np.array('fedpg-mdp/1'), gamma=np.float64(m['gamma']), initial=np.array(m['initial']), rewards=np.array(m['rewards'], dtype=np.float64))
if sys.argv[3] == 'dense':
    arrays['transitions'] = P
else:
    rows = P.reshape(S * A, S)
    it = getattr(np, sys.argv[4])
    arrays['indptr'] = np.arange(0, S * A * S + 1, S).astype(it)
    arrays['indices'] = np.tile(np.arange(S), S * A).astype(it)
    arrays['data'] = rows.ravel()
getattr(np, sys.argv[5])(sys.argv[2], **arrays)
`;
    const r = spawnSync('python3', ['-c', script, fixture, out, layout, itype, fn], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    const got = loadMdp(out), want = loadMdp(fixture);
    expect(got.gamma).toBe(want.gamma);
    expect(Array.from(got.initial)).toEqual(Array.from(want.initial));
    got.rewards.forEach((t, i) => expect(Array.from(t)).toEqual(Array.from(want.rewards[i]!)));
    const k = got.kernels[0]!;
    const dense = new Float64Array(20 * 4 * 20);
    if (k.kind === 'sparse') for (let row = 0; row < 80; row++) for (let q = k.rowStart[row]!; q < k.rowStart[row + 1]!; q++) dense[row * 20 + k.next[q]!] = k.prob[q]!;
    else dense.set(k.p);
    expect(Array.from(dense)).toEqual(Array.from((want.kernels[0] as { p: Float64Array }).p));
  });

  it('numpy reads what fedpg writes', () => {
    const mdp = loadMdp(fixturePath('random-s20-a4-n8-sparse.json'));
    for (const compress of [false, true]) {
      const p = npzFile(`for-numpy-${compress}.npz`, mdp, compress);
      const r = spawnSync(
        'python3',
        ['-c', "import sys, numpy as np; z = np.load(sys.argv[1]); print(str(z['format']), float(z['gamma']), 'x'.join(map(str, z['rewards'].shape)), z['indptr'].dtype, int(z['indptr'][-1]), float(z['rewards'].sum()))", p],
        { encoding: 'utf8' },
      );
      expect(r.stderr).toBe('');
      const sum = mdp.rewards.reduce((s, t) => s + t.reduce((u, v) => u + v, 0), 0);
      const [fmt, gamma, shape, dtype, nnz, total] = r.stdout.trim().split(' ');
      expect(fmt).toBe('fedpg-mdp/1');
      expect(Number(gamma)).toBe(mdp.gamma);
      expect(shape).toBe('8x20x4');
      expect(dtype).toBe('int32');
      expect(Number(nnz)).toBe((mdp.kernels[0] as { rowStart: Int32Array }).rowStart[80]);
      expect(Math.abs(Number(total) - sum)).toBeLessThan(1e-9);
    }
  });

  it('big-endian, Fortran order, float32 and object arrays are refused by name', () => {
    const script = `
import sys, numpy as np
d = sys.argv[1]
S, A = 2, 2
P = np.full((S, A, S), 0.5); R = np.zeros((1, S, A)); rho = np.array([0.5, 0.5])
base = dict(format=np.array('fedpg-mdp/1'), gamma=0.9, initial=rho, transitions=P)
np.savez(d + '/be.npz', rewards=R.astype('>f8'), **base)
np.savez(d + '/fortran.npz', rewards=np.asfortranarray(np.zeros((1, S, A))), **base)
np.savez(d + '/f32.npz', rewards=R.astype(np.float32), **base)
np.savez(d + '/obj.npz', rewards=np.array([None, 1], dtype=object), **base)
`;
    const r = spawnSync('python3', ['-c', script, tmp], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(() => loadMdp(join(tmp, 'be.npz'))).toThrow(`${join(tmp, 'be.npz')}: rewards holds big-endian f8; it must be little-endian float64 ('<f8'): save rewards.astype('<f8')`);
    expect(() => loadMdp(join(tmp, 'fortran.npz'))).toThrow('rewards is stored in Fortran order; save np.ascontiguousarray(rewards) (C order)');
    expect(() => loadMdp(join(tmp, 'f32.npz'))).toThrow("rewards holds dtype <f4; it must be little-endian float64 ('<f8')");
    expect(() => loadMdp(join(tmp, 'obj.npz'))).toThrow('rewards holds Python objects (dtype object), which fedpg never unpickles; save a numeric array');
  });
});

/** An .npz built member by member (numpy's layout), to reach every refusal without numpy. */
function craft(name: string, members: Record<string, [string, number[], Uint8Array]>, level: 0 | 6 = 0): string {
  const files: Record<string, Uint8Array> = {};
  for (const [k, [descr, shape, data]] of Object.entries(members)) {
    const h = npyHeader(descr, shape);
    const b = new Uint8Array(h.length + data.length);
    b.set(h);
    b.set(data, h.length);
    files[`${k}.npy`] = b;
  }
  const p = join(tmp, name);
  writeFileSync(p, zipSync(files, { level }));
  return p;
}

const f64 = (...v: number[]): Uint8Array => new Uint8Array(Float64Array.from(v).buffer);
const i32 = (...v: number[]): Uint8Array => new Uint8Array(Int32Array.from(v).buffer);
const i64 = (...v: bigint[]): Uint8Array => new Uint8Array(BigInt64Array.from(v).buffer);
const str = (s: string): Uint8Array => new Uint8Array(Uint32Array.from(Array.from(s, (c) => c.codePointAt(0)!)).buffer);

/** A valid 2-state, 2-action CSR MDP; `edit` changes members before writing. */
function csr(name: string, edit: (m: Record<string, [string, number[], Uint8Array]>) => void = () => {}): string {
  const m: Record<string, [string, number[], Uint8Array]> = {
    format: ['<U11', [], str('fedpg-mdp/1')],
    gamma: ['<f8', [], f64(0.9)],
    initial: ['<f8', [2], f64(0.5, 0.5)],
    rewards: ['<f8', [1, 2, 2], f64(0, 1, 0.5, 0.25)],
    indptr: ['<i4', [5], i32(0, 1, 3, 4, 5)],
    indices: ['<i4', [5], i32(1, 0, 1, 0, 1)],
    data: ['<f8', [5], f64(1, 0.5, 0.5, 1, 1)],
  };
  edit(m);
  return craft(name, m);
}

describe('.npz refusals name the array, the index and the value', () => {
  it('a valid crafted file loads', () => {
    const mdp = loadMdp(csr('ok.npz'));
    expect(mdp.states).toBe(2);
    expect(mdp.actions).toBe(2);
    expect(mdp.kernels[0]!.kind).toBe('sparse');
  });

  it.each([
    ['a reward above 1', (m: any) => (m.rewards[2] = f64(0, 1, 1.5, 0.25)), 'rewards[0][1][0] is 1.5, outside [0, 1] (--rescale-rewards maps all rewards into [0, 1] with one affine map)'],
    ['a NaN reward', (m: any) => (m.rewards[2] = f64(0, NaN, 0.5, 0.25)), 'rewards[0][0][1] is NaN, not a finite number'],
    ['a negative probability', (m: any) => (m.data[2] = f64(1, 1.5, -0.5, 1, 1)), 'data[2] is -0.5, a negative probability'],
    ['a row not summing to 1', (m: any) => (m.data[2] = f64(1, 0.5, 0.4, 1, 1)), 'row 1 (state 0, action 1) of indptr/indices/data sums to 0.9, not 1 (tolerance 1e-9)'],
    ['an index out of range', (m: any) => (m.indices[2] = i32(1, 0, 2, 0, 1)), 'indices[2] is 2, outside 0..1 (row 1: state 0, action 1)'],
    ['unsorted indices', (m: any) => (m.indices[2] = i32(1, 1, 0, 0, 1)), 'indices[2] is 0, not above indices[1] = 1 within row 1 (state 0, action 1): sort each row and merge duplicates (csr.sum_duplicates())'],
    ['an empty row', (m: any) => ((m.indptr[2] = i32(0, 1, 1, 4, 5)), (m.data[2] = f64(1, 0.5, 0.5, 1, 1))), 'indptr[2] is 1, equal to indptr[1] = 1: row 1 (state 0, action 1) needs at least one next state'],
    ['indptr not ending at nnz', (m: any) => (m.indptr[2] = i32(0, 1, 3, 4, 4)), 'indptr[4] is 4, expected 5 (the length of indices and data)'],
    ['a negative int32 index at a row start', (m: any) => (m.indices[2] = i32(1, -1, 1, 0, 1)), 'indices[1] is -1, outside 0..1 (row 1: state 0, action 1)'],
    ['an infinite probability', (m: any) => (m.data[2] = f64(1, 0.5, Infinity, 1, 1)), 'data[2] is Infinity, not a finite number'],
    ['an int64 index beyond int32', (m: any) => (m.indices = ['<i8', [5], i64(1n, 0n, 1n, 0n, 2n ** 40n)]), 'indices[4] is 1099511627776, outside 0..2147483647'],
    ['a negative int64 index', (m: any) => (m.indices = ['<i8', [5], i64(1n, 0n, -1n, 0n, 1n)]), 'indices[2] is -1, outside 0..2147483647'],
    ['indptr of the wrong length', (m: any) => (m.indptr = ['<i4', [4], i32(0, 1, 3, 5)]), 'indptr has 4 entries, expected S*A + 1 = 5 (2 states, 2 actions)'],
    ['rewards of the wrong rank', (m: any) => (m.rewards = ['<f8', [2, 2], f64(0, 1, 0.5, 0.25)]), 'rewards has shape (2, 2), expected 3 dimensions (shape (N, S, A))'],
    ['rewards for other states', (m: any) => (m.rewards = ['<f8', [1, 1, 4], f64(0, 1, 0.5, 0.25)]), 'rewards has shape (1, 1, 4): 1 states, but initial has 2'],
    ['int32 rewards', (m: any) => (m.rewards = ['<i4', [1, 2, 2], i32(0, 1, 0, 0)]), "rewards holds dtype <i4; it must be little-endian float64 ('<f8'): save rewards.astype('<f8')"],
    ['float64 indices', (m: any) => (m.indices = ['<f8', [5], f64(1, 0, 1, 0, 1)]), "indices holds dtype <f8; it must be little-endian int32 or int64 ('<i8')"],
    ['a shape larger than the data', (m: any) => (m.initial = ['<f8', [2000000], f64(0.5, 0.5)]), 'initial holds 16 bytes of data, but its shape (2000000,) needs 16000000'],
    ['a missing format', (m: any) => delete m.format, "has no array 'format' (a 0-d string 'fedpg-mdp/1': np.savez(..., format=np.array('fedpg-mdp/1')))"],
    ['another format', (m: any) => (m.format = ['<U11', [], str('fedpg-mdp/9')]), 'format is "fedpg-mdp/9", expected "fedpg-mdp/1" (or "fedpg-shared/1")'],
    ['gamma = 1', (m: any) => (m.gamma = ['<f8', [], f64(1)]), 'gamma is 1, outside [0, 1)'],
    ['rho not summing to 1', (m: any) => (m.initial = ['<f8', [2], f64(0.5, 0.6)]), 'initial sums to 1.1, not 1 (tolerance 1e-9)'],
    ['no kernel', (m: any) => (delete m.indptr, delete m.indices, delete m.data), 'has no transitions: give transitions (S, A, S) or the CSR arrays indptr, indices, data over the S*A rows'],
    ['both kernels', (m: any) => (m.transitions = ['<f8', [2, 2, 2], f64(1, 0, 1, 0, 1, 0, 1, 0)]), 'holds both transitions and indptr/indices/data; give the kernel one way'],
    ['an unknown array', (m: any) => (m.reward = m.rewards), "holds 'reward.npy', which is no array of a fedpg MDP (expected format.npy, name.npy, gamma.npy, initial.npy, rewards.npy, transitions.npy, indptr.npy, indices.npy, data.npy)"],
  ] as const)('%s', (what, edit, message) => {
    const p = csr(`bad-${what.replace(/\W+/g, '-')}.npz`, edit as (m: Record<string, [string, number[], Uint8Array]>) => void);
    expect(() => loadMdp(p)).toThrow(`${p}: ${message}`);
    expect(() => loadMdp(p)).toThrow(InputError);
  });

  it('a member whose declared size passes the budget is refused before it is inflated', () => {
    // 64 MiB of zeros deflate to a few KiB; the declared size is what the budget checks.
    const zeros = new Uint8Array(64 * 2 ** 20);
    const p = craft('bomb.npz', { format: ['<U11', [], str('fedpg-mdp/1')], rewards: ['<f8', [1, 1, zeros.length / 8], zeros] }, 6);
    expect(readFileSync(p).length).toBeLessThan(200_000);
    expect(() => loadMdp(p, { memoryBudget: 32 * 2 ** 20 })).toThrow(/rewards\.npy \(64\.0 MiB uncompressed\) would take 64\.0 MiB .*over the memory budget of 32\.0 MiB/);
  });

  it('a damaged zip and a damaged .npy header are one line each', () => {
    const p = join(tmp, 'cut.npz');
    writeFileSync(p, readFileSync(csr('whole.npz')).subarray(0, 300));
    expect(() => loadMdp(p)).toThrow(new RegExp(`^${p}: is not a readable \\.npz \\(zip\\) archive`));
    const q = craft('badheader.npz', { format: ['<U11', [], str('fedpg-mdp/1')] });
    const bytes = readFileSync(q);
    bytes[bytes.indexOf('descr') + 0] = 'x'.charCodeAt(0);
    writeFileSync(q, bytes);
    expect(() => loadMdp(q)).toThrow(/format has an unknown \.npy header key 'xescr'|not a readable/);
  });

  it('the CLI refuses with one line', () => {
    const p = csr('cli-bad.npz', (m) => (m.gamma = ['>f8', [], f64(0.9)]));
    expect(refusalLine(fedpgLimited(['evaluate', p, '--backend', 'js']))).toBe(`fedpg: error: ${p}: gamma holds big-endian f8; it must be little-endian float64 ('<f8'): save gamma.astype('<f8')`);
  });
});
