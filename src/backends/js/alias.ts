import type { EnvironmentSpec } from '../types.js';

/**
 * Alias tables (Vose) for O(1) draws from every transition row and from rho. Only outcomes with
 * non-zero probability get a column. Each row of n columns occupies [start, start + n) of the
 * flat arrays; a draw with u in [0,1) takes x = u*n, column k = floor(x), and returns hi[k]
 * when x - k < prob[k], else lo[k].
 *
 * The construction is specified exactly (the native and wasm backends build the same tables), so
 * one random stream gives the same trajectory on every backend:
 *   scaled[k] = p[k] * n; columns with scaled < 1 are pushed on `small`, the others on `large`,
 *   in increasing k; while both are non-empty pop l from small and g from large, set
 *   prob[l] = scaled[l], lo[l] = g, scaled[g] = (scaled[g] + scaled[l]) - 1 and push g on small
 *   if scaled[g] < 1, else on large; whatever is left on either stack gets prob = 1.
 */
export interface AliasTables {
  /** rows + 1 offsets. */
  start: Int32Array;
  prob: Float64Array;
  hi: Int32Array;
  lo: Int32Array;
}

function fillRow(
  outcomes: ArrayLike<number>,
  probs: ArrayLike<number>,
  n: number,
  base: number,
  t: AliasTables,
  scaled: Float64Array,
  small: Int32Array,
  large: Int32Array,
): void {
  let ns = 0;
  let nl = 0;
  for (let k = 0; k < n; k++) {
    scaled[k] = probs[k]! * n;
    t.hi[base + k] = outcomes[k]!;
    t.lo[base + k] = outcomes[k]!;
    if (scaled[k]! < 1) small[ns++] = k;
    else large[nl++] = k;
  }
  while (ns > 0 && nl > 0) {
    const l = small[--ns]!;
    const g = large[--nl]!;
    t.prob[base + l] = scaled[l]!;
    t.lo[base + l] = outcomes[g]!;
    scaled[g] = scaled[g]! + scaled[l]! - 1;
    if (scaled[g]! < 1) small[ns++] = g;
    else large[nl++] = g;
  }
  while (nl > 0) t.prob[base + large[--nl]!] = 1;
  while (ns > 0) t.prob[base + small[--ns]!] = 1;
}

/** Alias tables for `rows` distributions given as (outcome, probability) lists. */
function buildTables(
  rows: number,
  rowNonZeros: (r: number) => { outcomes: ArrayLike<number>; probs: ArrayLike<number>; n: number },
  total: number,
  maxRow: number,
): AliasTables {
  const t: AliasTables = {
    start: new Int32Array(rows + 1),
    prob: new Float64Array(total),
    hi: new Int32Array(total),
    lo: new Int32Array(total),
  };
  const scaled = new Float64Array(maxRow);
  const small = new Int32Array(maxRow);
  const large = new Int32Array(maxRow);
  let off = 0;
  for (let r = 0; r < rows; r++) {
    const { outcomes, probs, n } = rowNonZeros(r);
    t.start[r] = off;
    fillRow(outcomes, probs, n, off, t, scaled, small, large);
    off += n;
  }
  t.start[rows] = off;
  return t;
}

/** Alias tables of the S*A transition rows. */
export function transitionAlias(spec: EnvironmentSpec): AliasTables {
  const S = spec.states;
  const rows = S * spec.actions;
  const tr = spec.transitions;
  if (tr.kind === 'sparse') {
    let total = 0;
    let maxRow = 1;
    const nz: number[] = new Array(rows);
    for (let r = 0; r < rows; r++) {
      let n = 0;
      for (let k = tr.rowStart[r]!; k < tr.rowStart[r + 1]!; k++) if (tr.prob[k]! > 0) n++;
      nz[r] = n;
      total += n;
      if (n > maxRow) maxRow = n;
    }
    const outcomes = new Int32Array(maxRow);
    const probs = new Float64Array(maxRow);
    return buildTables(
      rows,
      (r) => {
        let n = 0;
        for (let k = tr.rowStart[r]!; k < tr.rowStart[r + 1]!; k++) {
          if (tr.prob[k]! > 0) {
            outcomes[n] = tr.next[k]!;
            probs[n++] = tr.prob[k]!;
          }
        }
        return { outcomes, probs, n };
      },
      total,
      maxRow,
    );
  }
  const p = tr.p;
  let total = 0;
  for (let k = 0; k < p.length; k++) if (p[k]! > 0) total++;
  const outcomes = new Int32Array(S);
  const probs = new Float64Array(S);
  return buildTables(
    rows,
    (r) => {
      let n = 0;
      for (let j = 0; j < S; j++) {
        const v = p[r * S + j]!;
        if (v > 0) {
          outcomes[n] = j;
          probs[n++] = v;
        }
      }
      return { outcomes, probs, n };
    },
    total,
    Math.max(S, 1),
  );
}

/** Alias table of the initial distribution rho (one row). */
export function initialAlias(spec: EnvironmentSpec): AliasTables {
  const S = spec.states;
  const outcomes = new Int32Array(S);
  const probs = new Float64Array(S);
  let n = 0;
  for (let s = 0; s < S; s++) {
    if (spec.initial[s]! > 0) {
      outcomes[n] = s;
      probs[n++] = spec.initial[s]!;
    }
  }
  return buildTables(1, () => ({ outcomes, probs, n }), n, Math.max(n, 1));
}
