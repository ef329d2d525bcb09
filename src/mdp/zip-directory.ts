import { readAt } from './input-file.js';

/**
 * A zip archive's central directory, read from an open file without reading the members, so that
 * each member can then be read straight into a buffer of its own (src/mdp/npz.ts): a stored
 * member in one read(), with no copy of the whole archive (at 10^6 states the archive is 344 MB,
 * and reading it whole, then copying every member out of it, took as long as all the
 * validation). Deflated members are inflated by fflate. zip64 records (np.savez writes them for
 * large arrays) are read; encrypted members, multi-disk archives and directories whose fields
 * point outside the file are refused. Errors are plain `ZipError`s; the caller adds the path.
 */
export class ZipError extends Error {}

export interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflate, anything else as found. */
  compression: number;
  /** Bytes of the member as stored in the archive. */
  compressedSize: number;
  /** Bytes once inflated. */
  size: number;
  /** Where the member's data start in the file (after its local header). */
  dataOffset: number;
}

const EOCD = 0x06054b50, ZIP64_LOCATOR = 0x07064b50, ZIP64_EOCD = 0x06064b50, CENTRAL = 0x02014b50, LOCAL = 0x04034b50;
/** The most central-directory bytes read: a fedpg archive has at most nine short-named members. */
const MAX_DIRECTORY_BYTES = 1 << 20;

const u16 = (b: Uint8Array, k: number): number => b[k]! | (b[k + 1]! << 8);
const u32 = (b: Uint8Array, k: number): number => (b[k]! | (b[k + 1]! << 8) | (b[k + 2]! << 16) | (b[k + 3]! << 24)) >>> 0;
/** A little-endian u64 as a number; above 2^53 it is refused (no file is that large). */
function u64(b: Uint8Array, k: number): number {
  const v = u32(b, k) + u32(b, k + 4) * 2 ** 32;
  if (!Number.isSafeInteger(v)) throw new ZipError(`a zip64 field is ${v}, beyond any file`);
  return v;
}

function readBytes(fd: number, position: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  if (readAt(fd, out, position) !== length) throw new ZipError(`the file ends before byte ${position + length}`);
  return out;
}

/** The central directory's entries, in order, each with the offset of its data. */
export function readZipDirectory(fd: number, fileSize: number): ZipEntry[] {
  // The end-of-central-directory record: 22 bytes plus a comment of up to 65535, at the end.
  const tailLength = Math.min(fileSize, 22 + 65535 + 20);
  const tailStart = fileSize - tailLength;
  const tail = readBytes(fd, tailStart, tailLength);
  let e = -1;
  for (let k = tailLength - 22; k >= 0; k--) {
    if (u32(tail, k) === EOCD && k + 22 + u16(tail, k + 20) === tailLength) {
      e = k;
      break;
    }
  }
  if (e < 0) throw new ZipError('no end-of-central-directory record (not a zip file, or cut short)');
  if (u16(tail, e + 4) !== 0 || u16(tail, e + 6) !== 0) throw new ZipError('a multi-disk (split) archive');
  let count = u16(tail, e + 10), dirSize = u32(tail, e + 12), dirOffset = u32(tail, e + 16);
  let dirEnd = tailStart + e; // the directory must end where its end record (or the zip64 one) starts
  if (count === 0xffff || dirSize === 0xffffffff || dirOffset === 0xffffffff) {
    const l = e - 20;
    if (l < 0 || u32(tail, l) !== ZIP64_LOCATOR) throw new ZipError('a zip64 field without its zip64 locator');
    const z = u64(tail, l + 8);
    if (z + 56 > tailStart + l) throw new ZipError(`the zip64 end record at ${z} lies outside the file`);
    const rec = readBytes(fd, z, 56);
    if (u32(rec, 0) !== ZIP64_EOCD) throw new ZipError(`no zip64 end record at ${z}`);
    count = u64(rec, 32);
    dirSize = u64(rec, 40);
    dirOffset = u64(rec, 48);
    dirEnd = z;
  }
  if (dirSize > MAX_DIRECTORY_BYTES) throw new ZipError(`a central directory of ${dirSize} bytes (an .npz MDP has at most nine arrays)`);
  if (dirOffset + dirSize > dirEnd) throw new ZipError(`the central directory (${dirSize} bytes at ${dirOffset}) overlaps its end record at ${dirEnd}`);
  const dir = readBytes(fd, dirOffset, dirSize);
  const out: ZipEntry[] = [];
  let k = 0;
  for (let i = 0; i < count; i++) {
    if (k + 46 > dirSize || u32(dir, k) !== CENTRAL) throw new ZipError(`central directory entry ${i} is damaged`);
    const flags = u16(dir, k + 8), compression = u16(dir, k + 10);
    let compressedSize = u32(dir, k + 20), size = u32(dir, k + 24);
    const nameLength = u16(dir, k + 28), extraLength = u16(dir, k + 30), commentLength = u16(dir, k + 32);
    let local = u32(dir, k + 42);
    const end = k + 46 + nameLength + extraLength + commentLength;
    if (end > dirSize) throw new ZipError(`central directory entry ${i} runs past the directory`);
    const name = new TextDecoder('utf-8').decode(dir.subarray(k + 46, k + 46 + nameLength));
    if (flags & 1) throw new ZipError(`${name} is encrypted`);
    // zip64: the extra field 0x0001 holds, in this order, those of size, compressed size and
    // local offset whose 32-bit field is 0xffffffff.
    for (let x = k + 46 + nameLength; x + 4 <= k + 46 + nameLength + extraLength; ) {
      const id = u16(dir, x), len = u16(dir, x + 2);
      if (id === 1) {
        let f = x + 4;
        const take = (): number => {
          if (f + 8 > x + 4 + len) throw new ZipError(`${name}'s zip64 field is too short`);
          const v = u64(dir, f);
          f += 8;
          return v;
        };
        if (size === 0xffffffff) size = take();
        if (compressedSize === 0xffffffff) compressedSize = take();
        if (local === 0xffffffff) local = take();
      }
      x += 4 + len;
    }
    if (local + 30 > dirOffset) throw new ZipError(`${name}'s local header at ${local} lies outside the members`);
    const head = readBytes(fd, local, 30);
    if (u32(head, 0) !== LOCAL) throw new ZipError(`${name}: no local header at ${local}`);
    const dataOffset = local + 30 + u16(head, 26) + u16(head, 28);
    if (dataOffset + compressedSize > dirOffset) throw new ZipError(`${name}'s ${compressedSize} bytes at ${dataOffset} run past the members`);
    out.push({ name, compression, compressedSize, size, dataOffset });
    k = end;
  }
  return out;
}
