/**
 * numpy's .npy format (numpy.lib.format, versions 1.0 to 3.0): the magic "\x93NUMPY", a version,
 * a little-endian header length, then a Python dict literal such as
 * {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), } padded with spaces to a multiple of
 * 64 bytes and ended by a newline, then the raw array bytes. Only the header is handled here
 * (parsed by a small parser of exactly that literal); what a dtype means is npz.ts's business.
 * Errors are plain strings for the caller to prefix with the file and member.
 */

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
/** numpy itself refuses headers above 10000 bytes unless told otherwise. */
const MAX_HEADER = 65536;

export interface NpyHeader {
  /** The dtype string, e.g. '<f8', '<i4', '<U11'. */
  descr: string;
  fortranOrder: boolean;
  shape: number[];
  /** Where the array's bytes start. */
  dataOffset: number;
}

export class NpyError extends Error {}

type Lit = string | boolean | number[] | number | null;

/** Parses the header's Python literal: a dict of str keys to str, bool, int or tuple-of-int. */
function parseDictLiteral(text: string): Map<string, Lit> {
  let i = 0;
  const fail = (what: string): never => {
    throw new NpyError(`its .npy header is not a dict literal numpy writes (expected ${what} at offset ${i}: ${JSON.stringify(text.slice(0, 80))})`);
  };
  const ws = (): void => {
    while (i < text.length && ' \t\r\n'.includes(text[i]!)) i++;
  };
  const str = (): string => {
    const q = text[i];
    if (q !== "'" && q !== '"') fail('a quoted string');
    const end = text.indexOf(q!, i + 1);
    if (end < 0) fail('a closing quote');
    const s = text.slice(i + 1, end);
    if (s.includes('\\')) fail('a string without escapes');
    i = end + 1;
    return s;
  };
  const int = (): number => {
    const m = /^[0-9]+L?/.exec(text.slice(i, i + 24));
    if (!m) fail('an integer');
    i += m![0].length;
    const v = Number(m![0].replace('L', ''));
    if (!Number.isSafeInteger(v)) fail('an integer below 2^53');
    return v;
  };
  const value = (): Lit => {
    ws();
    const c = text[i];
    if (c === "'" || c === '"') return str();
    if (text.startsWith('True', i)) return (i += 4), true;
    if (text.startsWith('False', i)) return (i += 5), false;
    if (text.startsWith('None', i)) return (i += 4), null;
    if (c === '(') {
      i++;
      const dims: number[] = [];
      for (;;) {
        ws();
        if (text[i] === ')') break;
        dims.push(int());
        ws();
        if (text[i] === ',') i++;
        else if (text[i] !== ')') fail("',' or ')' in the shape");
      }
      i++;
      return dims;
    }
    if (c === '[') fail("a plain dtype (a structured dtype, a list of fields, is not a table)");
    return int();
  };
  const out = new Map<string, Lit>();
  ws();
  if (text[i] !== '{') fail("'{'");
  i++;
  for (;;) {
    ws();
    if (text[i] === '}') break;
    const k = str();
    ws();
    if (text[i] !== ':') fail("':'");
    i++;
    out.set(k, value());
    ws();
    if (text[i] === ',') i++;
    else if (text[i] !== '}') fail("',' or '}'");
  }
  i++;
  ws();
  if (i !== text.length) fail('the end of the header');
  return out;
}

/** Reads the header at the start of `bytes` (a whole .npy member). */
export function readNpyHeader(bytes: Uint8Array): NpyHeader {
  if (bytes.length < 10 || MAGIC.some((b, k) => bytes[k] !== b)) throw new NpyError('is not a .npy array (no \\x93NUMPY signature)');
  const major = bytes[6]!;
  if (major < 1 || major > 3) throw new NpyError(`has .npy format version ${major}.${bytes[7]}, not 1.0 to 3.0`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lenAt = major === 1 ? 8 : 8;
  const start = major === 1 ? 10 : 12;
  if (bytes.length < start) throw new NpyError('ends inside its .npy header');
  const len = major === 1 ? dv.getUint16(lenAt, true) : dv.getUint32(lenAt, true);
  if (len > MAX_HEADER) throw new NpyError(`declares a .npy header of ${len} bytes (at most ${MAX_HEADER})`);
  if (bytes.length < start + len) throw new NpyError('ends inside its .npy header');
  const text = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(start, start + len));
  const dict = parseDictLiteral(text);
  for (const k of dict.keys()) if (!['descr', 'fortran_order', 'shape'].includes(k)) throw new NpyError(`has an unknown .npy header key '${k}'`);
  const descr = dict.get('descr'), fortran = dict.get('fortran_order'), shape = dict.get('shape');
  if (typeof descr !== 'string') throw new NpyError("has no 'descr' (dtype) string in its .npy header");
  if (typeof fortran !== 'boolean') throw new NpyError("has no 'fortran_order' True/False in its .npy header");
  if (!Array.isArray(shape)) throw new NpyError("has no 'shape' tuple in its .npy header");
  return { descr, fortranOrder: fortran, shape, dataOffset: start + len };
}

/** The .npy 1.0 header of a C-order array, padded so the data starts at a multiple of 64 bytes. */
export function npyHeader(descr: string, shape: readonly number[]): Uint8Array {
  const dims = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${dims}, }`;
  const total = 10 + dict.length + 1;
  dict += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const out = new Uint8Array(10 + dict.length);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, dict.length, true);
  for (let k = 0; k < dict.length; k++) out[10 + k] = dict.charCodeAt(k);
  return out;
}
