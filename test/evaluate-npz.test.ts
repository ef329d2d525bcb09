import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unzipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { readNpyHeader } from '../src/mdp/npy.js';
import { fixturePath } from './helpers/fixtures.js';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
const tmp = mkdtempSync(join(tmpdir(), 'fedpg-evaluate-npz-'));

function fedpg(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Every member of an .npz as { shape, values } (float64 or int32, little-endian, C order). */
function readMembers(path: string): Record<string, { shape: number[]; values: number[] }> {
  const out: Record<string, { shape: number[]; values: number[] }> = {};
  for (const [name, bytes] of Object.entries(unzipSync(readFileSync(path)))) {
    const h = readNpyHeader(bytes);
    const body = bytes.slice(h.dataOffset);
    const values = h.descr === '<i4' ? Array.from(new Int32Array(body.buffer)) : Array.from(new Float64Array(body.buffer));
    out[name.replace(/\.npy$/, '')] = { shape: h.shape, values };
  }
  return out;
}

describe('fedpg evaluate --out FILE.npz', () => {
  it('writes the arrays bit for bit as --json prints them, and prints only the scalars', () => {
    const mdp = fixturePath('random-s6-a3-n4.json');
    const full = JSON.parse(fedpg(['evaluate', mdp, '--horizon', '5', '--backend', 'js', '--json']).stdout);
    const out = join(tmp, 'report.npz');
    const r = fedpg(['evaluate', mdp, '--horizon', '5', '--backend', 'js', '--json', '--out', out]);
    expect(r.code).toBe(0);
    const scalars = JSON.parse(r.stdout);
    expect(scalars.arrays).toBe(out);
    expect(scalars.J).toEqual(full.J);
    expect(scalars.Jstar).toBe(full.Jstar);
    expect(scalars).not.toHaveProperty('grad');
    const m = readMembers(out);
    expect(Object.keys(m).sort()).toEqual(['Q', 'V', 'Vstar', 'grad', 'gradAvg', 'gradK', 'policyStar']);
    expect(m.grad!.shape).toEqual([4, 6, 3]);
    expect(m.grad!.values).toEqual(full.grad.flat(2));
    expect(m.Q!.values).toEqual(full.Q.flat());
    expect(m.gradK!.values).toEqual(full.gradK.flat(2));
    expect(m.policyStar!).toEqual({ shape: [6], values: full.policyStar });
  });

  it('refuses --json above 10^5 table entries without --out, and a --out that is not .npz', () => {
    const big = join(tmp, 'big.npz');
    expect(fedpg(['generate', 'gridworld', '--width', '160', '--height', '160', '--agents', '2', '--out', big]).code).toBe(0);
    const r = fedpg(['evaluate', big, '--json', '--backend', 'js']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^fedpg: error: the report's arrays have 102400 entries per table \(S\*A > 100000\), too many for JSON on stdout: pass --out FILE\.npz/);
    expect(r.stdout).toBe('');
    const bad = fedpg(['evaluate', fixturePath('random-s6-a3-n4.json'), '--out', join(tmp, 'r.json')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--out must name a \.npz file/);
  });
});
