import { InputError } from '../errors.js';

/** Personal policies (SPEC.md, "The field's methods"): Ditto's v_i beside the global model. */
export type Personalize = { kind: 'none' } | { kind: 'ditto'; lambda: number };

export function parsePersonalize(text: string): Personalize {
  if (text === 'none') return { kind: 'none' };
  const m = /^ditto:(.+)$/.exec(String(text));
  if (m) {
    const lambda = Number(m[1]);
    if (m[1]!.trim() === '' || !Number.isFinite(lambda) || lambda < 0) throw new InputError(`personalize ditto:LAMBDA needs a finite LAMBDA >= 0, got '${text}'`);
    return { kind: 'ditto', lambda };
  }
  throw new InputError(`personalize must be none or ditto:LAMBDA, got '${String(text)}'`);
}
