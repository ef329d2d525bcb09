/**
 * Names from files (an MDP's `name`) are printed escaped: control characters (C0, DEL, C1) and
 * the Unicode bidirectional overrides would otherwise reach the terminal raw, where they can
 * recolour, move the cursor or reorder what the user reads.
 */
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

export function displayName(name: string): string {
  return name.replace(UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
