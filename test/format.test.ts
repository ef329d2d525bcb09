import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { InputError } from '../src/errors.js';
import { loadMdp, loadTheta, mdpToJson, parseJsonText, parseMdp } from '../src/mdp/format.js';
import { fixturePath } from './helpers/fixtures.js';

const base = () => JSON.parse(readFileSync(fixturePath('random-s6-a3-n4.json'), 'utf8'));

function refusal(edit: (m: any) => void): string {
  const m = base();
  edit(m);
  try {
    parseMdp(m, 'x.json');
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return (e as Error).message;
  }
  throw new Error('the MDP was accepted');
}

describe('fedpg-mdp/1 validation names the field, the index and the value', () => {
  it.each([
    ['an unknown format tag', (m: any) => (m.format = 'fedpg-mdp/2'), 'x.json: format must be "fedpg-mdp/1", got "fedpg-mdp/2"'],
    ['S < 1', (m: any) => (m.states = 0), 'x.json: states must be an integer >= 1, got 0'],
    ['A < 1', (m: any) => (m.actions = 0), 'x.json: actions must be an integer >= 1, got 0'],
    ['a fractional S', (m: any) => (m.states = 2.5), 'x.json: states must be an integer >= 1, got 2.5'],
    ['gamma = 1', (m: any) => (m.gamma = 1), 'x.json: gamma is 1, outside [0, 1)'],
    ['gamma < 0', (m: any) => (m.gamma = -0.1), 'x.json: gamma is -0.1, outside [0, 1)'],
    ['zero agents', (m: any) => (m.rewards = []), 'x.json: rewards has 0 agents; at least one reward table is needed'],
    ['a reward above 1', (m: any) => (m.rewards[2][4][1] = 1.5), 'x.json: rewards[2][4][1] is 1.5, outside [0, 1] (--rescale-rewards maps all rewards into [0, 1] with one affine map)'],
    ['a negative reward', (m: any) => (m.rewards[0][0][0] = -0.25), 'x.json: rewards[0][0][0] is -0.25, outside [0, 1] (--rescale-rewards maps all rewards into [0, 1] with one affine map)'],
    ['a non-finite reward', (m: any) => (m.rewards[1][2][0] = null), 'x.json: rewards[1][2][0] is null, not a finite number'],
    ['a string probability', (m: any) => (m.transitions[3][1][2] = '0.5'), 'x.json: transitions[3][1][2] is "0.5", not a finite number'],
    [
      'a negative probability',
      (m: any) => {
        m.transitions[1][2][0] = -0.1;
      },
      'x.json: transitions[1][2][0] is -0.1, a negative probability',
    ],
    [
      'a row of P that does not sum to 1',
      (m: any) => {
        m.transitions[4][0] = m.transitions[4][0].map((p: number) => p * 0.9);
      },
      /^x\.json: transitions\[4\]\[0\] sums to 0\.9\d*, not 1 \(tolerance 1e-9\)$/,
    ],
    ['rho not summing to 1', (m: any) => (m.initial = m.initial.map((p: number) => p * 2)), /^x\.json: initial sums to 2(\.0+\d*)?, not 1/],
    ['a short row', (m: any) => m.transitions[2][1].pop(), 'x.json: transitions[2][1] has 5 entries, expected 6'],
    ['a missing reward table row', (m: any) => m.rewards[3].pop(), 'x.json: rewards[3] has 5 entries, expected 6'],
    ['wrong shape of initial', (m: any) => (m.initial = 5), 'x.json: initial must be an array, got 5'],
    ['missing transitions', (m: any) => delete m.transitions, 'x.json: transitions is missing'],
  ] as const)('%s', (_what, edit, message) => {
    const got = refusal(edit);
    if (typeof message === 'string') expect(got).toBe(message);
    else expect(got).toMatch(message);
  });

  it('accepts a row that sums to 1 within 1e-9 and refuses one outside', () => {
    expect(() => parseMdp({ ...base(), initial: [1 - 5e-10, 0, 0, 0, 0, 0] })).not.toThrow();
    expect(() => parseMdp({ ...base(), initial: [1 - 5e-9, 0, 0, 0, 0, 0] })).toThrow(/initial sums to 0.999999995/);
  });

  it('refuses invalid and truncated JSON, a missing file and a directory', () => {
    expect(() => loadMdp(fixturePath('does-not-exist.json'))).toThrow(/does-not-exist\.json: no such file/);
    expect(() => loadMdp(fixturePath(''))).toThrow(/is a directory/);
    expect(() => parseJsonText('{"format": "fedpg-mdp/1", "states": 3', 'cut.json')).toThrow(/^cut\.json: invalid JSON/);
  });
});

describe('sparse transitions', () => {
  const sparse = () => JSON.parse(readFileSync(fixturePath('random-s20-a4-n8-sparse.json'), 'utf8'));

  it('read the same table as the dense form', () => {
    const a = loadMdp(fixturePath('random-s20-a4-n8.json'));
    const b = loadMdp(fixturePath('random-s20-a4-n8-sparse.json'));
    const k = b.kernels[0]!;
    expect(k.kind).toBe('sparse');
    const dense = new Float64Array(20 * 4 * 20);
    if (k.kind === 'sparse') for (let r = 0; r < 80; r++) for (let q = k.rowStart[r]!; q < k.rowStart[r + 1]!; q++) dense[r * 20 + k.next[q]!] = k.prob[q]!;
    expect(Array.from(dense)).toEqual(Array.from((a.kernels[0] as { p: Float64Array }).p));
  });

  it('refuse a repeated entry, an index out of range and a bad row sum', () => {
    const m = sparse();
    m.transitions.sparse.push([...m.transitions.sparse[5]]);
    expect(() => parseMdp(m, 's.json')).toThrow(/s\.json: transitions\.sparse\[\d+\] repeats \(state \d+, action \d+, next state \d+\) of transitions\.sparse\[5\]/);
    const m2 = sparse();
    m2.transitions.sparse[3][2] = 20;
    expect(() => parseMdp(m2, 's.json')).toThrow('s.json: transitions.sparse[3][2] (next state) is 20, outside 0..19');
    const m3 = sparse();
    m3.transitions.sparse.splice(0, 1);
    expect(() => parseMdp(m3, 's.json')).toThrow(/s\.json: transitions\.sparse: row \(state \d+, action \d+\) sums to 0\.\d+, not 1/);
  });
});

describe('per-agent transitions', () => {
  it('are read as one kernel per agent, and their count must match the agents', () => {
    const mdp = loadMdp(fixturePath('labbi-challenging.json'));
    expect(mdp.perAgentKernels).toBe(true);
    expect(mdp.kernels).toHaveLength(2);
    const m = JSON.parse(readFileSync(fixturePath('labbi-challenging.json'), 'utf8'));
    m.rewards.push(m.rewards[0]);
    expect(() => parseMdp(m, 'l.json')).toThrow('l.json: transitions has 2 entries, expected 3');
  });
});

describe('writing', () => {
  it.each(['random-s6-a3-n4', 'random-s20-a4-n8-sparse', 'labbi-challenging'])('%s round-trips exactly', (name) => {
    const mdp = loadMdp(fixturePath(`${name}.json`));
    const again = parseMdp(JSON.parse(JSON.stringify(mdpToJson(mdp))));
    expect(mdpToJson(again)).toEqual(mdpToJson(mdp));
    expect(again.perAgentKernels).toBe(mdp.perAgentKernels);
  });

  it('theta files: an S x A array or an object with theta; wrong shapes are refused', () => {
    const t = loadTheta(fixturePath('random-s6-a3-n4.expect.json'), 6, 3);
    expect(t).toHaveLength(18);
    expect(Array.from(loadTheta(fixturePath('zeros-s6-a3.json'), 6, 3))).toEqual(new Array(18).fill(0));
    expect(() => loadTheta(fixturePath('zeros-s6-a3.json'), 5, 3)).toThrow(/the theta table has 6 entries, expected 5/);
  });
});
