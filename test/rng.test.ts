import { describe, expect, it } from 'vitest';
import { agentStream, nextDouble, nextUint32 } from '../src/rng.js';

describe('random streams', () => {
  it('xoshiro128** matches the reference outputs from state {1, 2, 3, 4}', () => {
    // Computed with an independent Python transcription of the published C code.
    const s = new Uint32Array([1, 2, 3, 4]);
    expect(Array.from({ length: 6 }, () => nextUint32(s))).toEqual([11520, 0, 5927040, 70819200, 2031721883, 1637235492]);
    expect(Array.from(s)).toEqual([1110993931, 286554632, 2431677446, 2165318166]);
  });

  it('doubles are in [0, 1) with a mean of 1/2', () => {
    const s = agentStream(1, 0);
    let sum = 0;
    const n = 100000;
    for (let i = 0; i < n; i++) {
      const u = nextDouble(s);
      expect(u >= 0 && u < 1).toBe(true);
      sum += u;
    }
    // standard error sqrt(1/12/n) ~ 9e-4
    expect(Math.abs(sum / n - 0.5)).toBeLessThan(5 * Math.sqrt(1 / 12 / n));
  });

  it('agent streams depend on (seed, agent) only and differ from each other', () => {
    expect(Array.from(agentStream(5, 2))).toEqual(Array.from(agentStream(5, 2)));
    const seen = new Set<string>();
    for (let seed = 0; seed < 20; seed++) for (let a = 0; a < 20; a++) seen.add(agentStream(seed, a).join(','));
    expect(seen.size).toBe(400);
    expect(() => agentStream(-1, 0)).toThrow(/seed/);
    expect(() => agentStream(1.5, 0)).toThrow(/seed/);
  });
});
