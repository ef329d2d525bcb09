/**
 * Float64Arrays as bytes and base64 text (IEEE-754, this machine's little-endian order), for
 * checkpoints: nothing is rounded, unlike a decimal JSON rendering.
 */

export function float64Bytes(a: Float64Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

export function encodeFloat64(a: Float64Array): string {
  return float64Bytes(a).toString('base64');
}

/** Decodes base64 text of exactly `length` values; `what` names the field in the error. */
export function decodeFloat64(s: unknown, length: number, what: string): Float64Array {
  if (typeof s !== 'string') throw new Error(`${what} is missing`);
  const b = Buffer.from(s, 'base64');
  if (b.length !== length * 8) throw new Error(`${what} has ${b.length / 8} values, expected ${length}`);
  const out = new Float64Array(length);
  float64Bytes(out).set(b);
  return out;
}
