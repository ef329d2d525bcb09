import { closeSync, mkdtempSync, openSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unzipSync, Zip, ZipPassThrough, zipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { readZipDirectory, ZipError } from '../src/mdp/zip-directory.js';
import { storedMember } from '../src/mdp/zip-stored.js';

const tmp = mkdtempSync(join(tmpdir(), 'fedpg-zip-'));

/** The bytes of a zip of `members` (each pushed in `chunks` pieces), stored, with `member` as the entry maker. */
function zipOf(make: (name: string) => ZipPassThrough, members: Record<string, Uint8Array>, chunks: number): Uint8Array {
  const parts: Uint8Array[] = [];
  const zip = new Zip((err, chunk) => {
    if (err) throw err;
    parts.push(chunk);
  });
  for (const [name, data] of Object.entries(members)) {
    const f = make(name);
    f.mtime = new Date(2000, 0, 1);
    zip.add(f);
    const step = Math.ceil(data.length / chunks);
    for (let k = 0; k < chunks; k++) f.push(data.subarray(k * step, (k + 1) * step), k === chunks - 1);
  }
  zip.end();
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) out.set(p, (at += p.length) - p.length);
  return out;
}

function directoryOf(bytes: Uint8Array): ReturnType<typeof readZipDirectory> {
  const p = join(tmp, `z${Math.random().toString(36).slice(2)}.zip`);
  writeFileSync(p, bytes);
  const fd = openSync(p, 'r');
  try {
    return readZipDirectory(fd, bytes.length);
  } finally {
    closeSync(fd);
  }
}

// Seeded bytes (a linear congruential stream), so a wrong CRC cannot hide behind zeros.
const noise = (n: number, seed: number): Uint8Array => {
  const out = new Uint8Array(n);
  let x = seed >>> 0;
  for (let k = 0; k < n; k++) out[k] = (x = (Math.imul(x, 1664525) + 1013904223) >>> 0) >>> 24;
  return out;
};

describe('stored zip members with zlib CRC-32 (zip-stored.ts)', () => {
  it("give fflate's ZipPassThrough bytes exactly, in one chunk or many", () => {
    const members = { 'a.npy': noise(100_003, 1), 'b.npy': noise(7, 2), 'empty.npy': new Uint8Array(0) };
    for (const chunks of [1, 3, 7]) {
      const ours = zipOf(storedMember, members, chunks);
      expect(Buffer.from(ours).equals(zipOf((n) => new ZipPassThrough(n), members, chunks))).toBe(true);
      // and fflate reads them back (it recomputes nothing, but numpy's zipfile checks the CRC:
      // test/npz.test.ts 'numpy reads what fedpg writes').
      expect(Buffer.from(unzipSync(ours)['a.npy']!).equals(members['a.npy'])).toBe(true);
    }
  });
});

describe('the central directory reader (zip-directory.ts)', () => {
  it('finds every member, its method, sizes and where its data start', () => {
    const a = noise(5000, 3), b = new Uint8Array(20_000);
    const bytes = zipSync({ 'a.npy': [a, { level: 0 }], 'b.npy': [b, { level: 6 }] });
    const dir = directoryOf(bytes);
    expect(dir.map((e) => [e.name, e.compression, e.size])).toEqual([['a.npy', 0, 5000], ['b.npy', 8, 20_000]]);
    expect(Buffer.from(bytes.subarray(dir[0]!.dataOffset, dir[0]!.dataOffset + dir[0]!.compressedSize)).equals(a)).toBe(true);
    expect(dir[1]!.compressedSize).toBeLessThan(1000);
  });

  it('reads past an archive comment', () => {
    const bytes = zipSync({ 'a.npy': [noise(10, 4), { level: 0 }] });
    // An archive comment appended by hand (and its length in the end record).
    const withComment = new Uint8Array(bytes.length + 5);
    withComment.set(bytes);
    withComment.set([104, 101, 108, 108, 111], bytes.length);
    withComment[bytes.length - 2] = 5;
    expect(directoryOf(withComment).map((e) => e.name)).toEqual(['a.npy']);
  });

  it('refuses an encrypted member, a directory pointing outside the file, and no end record', () => {
    const bytes = zipSync({ 'a.npy': [noise(64, 5), { level: 0 }] });
    const end = bytes.length - 22;
    const dirAt = new DataView(bytes.buffer).getUint32(end + 16, true);
    const encrypted = bytes.slice();
    encrypted[dirAt + 8] = 1;
    expect(() => directoryOf(encrypted)).toThrow(new ZipError('a.npy is encrypted'));
    const outside = bytes.slice();
    new DataView(outside.buffer).setUint32(end + 16, 1 << 30, true);
    expect(() => directoryOf(outside)).toThrow(/overlaps its end record/);
    const movedLocal = bytes.slice();
    new DataView(movedLocal.buffer).setUint32(dirAt + 42, 5, true);
    expect(() => directoryOf(movedLocal)).toThrow(/a\.npy: no local header at 5/);
    expect(() => directoryOf(bytes.subarray(0, end))).toThrow(/no end-of-central-directory record/);
  });
});
