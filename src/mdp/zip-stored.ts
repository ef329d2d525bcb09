import * as zlib from 'node:zlib';
import { ZipPassThrough } from 'fflate';

/**
 * A stored (uncompressed) zip member for fflate's Zip whose CRC-32 comes from Node's zlib (C,
 * several GB/s) instead of fflate's JavaScript CRC (about 100 MB/s): writing a 200 MB .npz report
 * spent two seconds in the CRC alone. The bytes written are those of fflate's ZipPassThrough
 * (the same fields, the same CRC); where zlib has no crc32 (Node before 20.15) it is that class.
 */
const zlibCrc32 = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

class ZlibCrcPassThrough extends ZipPassThrough {
  private running = 0;

  override push(chunk: Uint8Array, final?: boolean): void {
    if (!this.ondata) throw new Error('stream finished or not added to a zip');
    this.running = zlibCrc32!(chunk, this.running);
    this.size += chunk.length;
    if (final) this.crc = this.running >>> 0;
    this.process(chunk as Uint8Array<ArrayBuffer>, final ?? false);
  }
}

/** A stored member named `filename` for fflate's Zip. */
export function storedMember(filename: string): ZipPassThrough {
  return zlibCrc32 ? new ZlibCrcPassThrough(filename) : new ZipPassThrough(filename);
}
