/**
 * Parameters on the wire: packed IEEE-754 float64, little-endian, row-major (index s*A + a).
 * Browser-safe (no Buffer). On little-endian hosts (every engine this project runs on) the bytes
 * are the Float64Array's own; elsewhere they go through a DataView, so the format never depends
 * on the host.
 */

const LITTLE = new Uint8Array(new Float64Array([1]).buffer)[7] === 0x3f;

/** The packed bytes of v (a copy). */
export function packF64(v: Float64Array): Uint8Array {
  if (LITTLE) return new Uint8Array(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength));
  const out = new Uint8Array(v.length * 8);
  const dv = new DataView(out.buffer);
  for (let j = 0; j < v.length; j++) dv.setFloat64(j * 8, v[j]!, true);
  return out;
}

/** A malformed parameter vector: wrong length or a non-finite value. */
export class WireError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WireError';
  }
}

/**
 * Unpacks `bytes` into a new Float64Array of `length` values, refusing a wrong byte count and
 * (unless allowNonFinite) NaN or an infinity, with a message that names `what` and the index.
 * `actions` turns a flat index into [s][a] in messages.
 */
export function unpackF64(bytes: Uint8Array, length: number, what: string, actions = 0): Float64Array {
  if (bytes.length !== length * 8) {
    const n = bytes.length / 8;
    throw new WireError(`${what} has ${bytes.length} bytes (${Number.isInteger(n) ? `${n} values` : 'not a whole number of float64 values'}), expected ${length * 8} (${length} float64 values)`);
  }
  const out = new Float64Array(length);
  if (LITTLE) new Uint8Array(out.buffer).set(bytes);
  else {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let j = 0; j < length; j++) out[j] = dv.getFloat64(j * 8, true);
  }
  for (let j = 0; j < length; j++) {
    if (!Number.isFinite(out[j]!)) {
      const at = actions > 0 ? `[${Math.floor(j / actions)}][${j % actions}]` : `[${j}]`;
      throw new WireError(`${what}${at} is ${out[j]}, not a finite number`);
    }
  }
  return out;
}
