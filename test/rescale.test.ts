import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { evaluatePolicy } from '../src/evaluate.js';
import { loadMdp, parseMdp } from '../src/mdp/format.js';
import { rescaleRewards, rewardRange } from '../src/mdp/rescale.js';
import { fedpgLimited, refusalLine } from './helpers/cli.js';
import { fixturePath } from './helpers/fixtures.js';

/** Issue 19 item 6: --rescale-rewards, one affine map for every agent. */

const tmp = mkdtempSync(join(tmpdir(), 'fedpg-rescale-'));
const FIXTURE = 'random-s6-a3-n4';

/** The fixture with every reward r replaced by 3 r - 7 (all outside [0, 1]). */
function shifted(): { path: string; json: any } {
  const json = JSON.parse(readFileSync(fixturePath(`${FIXTURE}.json`), 'utf8'));
  json.rewards = json.rewards.map((t: number[][]) => t.map((row) => row.map((r) => 3 * r - 7)));
  const path = join(tmp, 'shifted.json');
  writeFileSync(path, JSON.stringify(json));
  return { path, json };
}

describe('rescaleRewards', () => {
  it('maps the global min to 0 and max to 1 with one map for every agent', () => {
    const mdp = parseMdp(shifted().json, 's', { anyFiniteRewards: true });
    const { min, max } = rewardRange(mdp.rewards);
    const { mdp: out, rewardMap } = rescaleRewards(mdp);
    expect(rewardRange(out.rewards)).toEqual({ min: 0, max: 1 });
    expect(rewardMap.scale).toBeCloseTo(1 / (max - min), 14);
    expect(rewardMap.offset).toBeCloseTo(-min / (max - min), 14);
    out.rewards.forEach((t, i) => t.forEach((v, j) => expect(Math.abs(v - (rewardMap.scale * mdp.rewards[i]![j]! + rewardMap.offset))).toBeLessThan(1e-15)));
    // The tables passed in are left alone.
    expect(rewardRange(mdp.rewards)).toEqual({ min, max });
  });

  it('the rescaled objective is the same affine image, so its optimiser is unchanged', async () => {
    const original = loadMdp(fixturePath(`${FIXTURE}.json`));
    const { mdp: viaShift, rewardMap } = rescaleRewards(parseMdp(shifted().json, 's', { anyFiniteRewards: true }));
    const { min, max } = rewardRange(original.rewards);
    // (3r - 7 - (3 min - 7)) / (3 max - 3 min) = (r - min) / (max - min): J' = (J - min/(1-gamma)) / (max - min).
    const theta = Float64Array.from({ length: 18 }, (_, j) => Math.sin(j));
    const a = await evaluatePolicy(original, theta, { backend: 'js' });
    const b = await evaluatePolicy(viaShift, theta, { backend: 'js' });
    const g = original.gamma;
    b.J.forEach((j, i) => expect(Math.abs(j - (a.J[i]! - min / (1 - g)) / (max - min))).toBeLessThan(1e-12));
    expect(Math.abs(b.Jstar! - (a.Jstar! - min / (1 - g)) / (max - min))).toBeLessThan(1e-12);
    expect(Math.abs(rewardMap.scale - 1 / (3 * (max - min)))).toBeLessThan(1e-15);
    // The gradient is scaled by the same positive factor: same direction, same stationary points.
    const ratio = (max - min) * 1;
    b.gradAvg.flat().forEach((v, j) => expect(Math.abs(v * ratio - a.gradAvg.flat()[j]!)).toBeLessThan(1e-12));
  });

  it('equal rewards everywhere become 0', () => {
    const m = parseMdp({ ...JSON.parse(readFileSync(fixturePath(`${FIXTURE}.json`), 'utf8')), rewards: [Array.from({ length: 6 }, () => [5, 5, 5])] }, 'c', { anyFiniteRewards: true });
    const { mdp, rewardMap } = rescaleRewards(m);
    expect(rewardMap).toEqual({ scale: 1, offset: -5 });
    expect(Array.from(mdp.rewards[0]!)).toEqual(new Array(18).fill(0));
  });

  it('non-finite rewards are refused even with the option', () => {
    const { json } = shifted();
    json.rewards[0][0][0] = null;
    expect(() => parseMdp(json, 's', { anyFiniteRewards: true })).toThrow('s: rewards[0][0][0] is null, not a finite number');
  });
});

describe('--rescale-rewards on the CLI', () => {
  it('without the flag an out-of-range reward is refused with a pointer to it', () => {
    const { path } = shifted();
    expect(refusalLine(fedpgLimited(['train', path, '--rounds', '1', '--backend', 'js']))).toBe(
      `fedpg: error: ${path}: rewards[0][0][0] is ${3 * JSON.parse(readFileSync(fixturePath(`${FIXTURE}.json`), 'utf8')).rewards[0][0][0] - 7}, outside [0, 1] (--rescale-rewards maps all rewards into [0, 1] with one affine map)`,
    );
  });

  it('train, evaluate and run state the map in text and in --json', () => {
    const { path } = shifted();
    const mdp = parseMdp(shifted().json, 's', { anyFiniteRewards: true });
    const { rewardMap } = rescaleRewards(mdp);
    for (const args of [
      ['train', path, '--rounds', '2', '--gradient', 'exact'],
      ['evaluate', path],
      ['run', '--mdp', path, '--rounds', '2', '--out', join(tmp, 'run')],
    ]) {
      const j = fedpgLimited([...args, '--rescale-rewards', '--json', '--backend', 'js']);
      expect(j.stderr).toBe('');
      expect(JSON.parse(j.stdout).rewardMap).toEqual(rewardMap);
      const t = fedpgLimited([...args, '--rescale-rewards', '--backend', 'js']);
      expect(t.code).toBe(0);
      expect(t.stdout).toContain(`rewards rescaled into [0, 1] with one affine map for every agent: r' = ${rewardMap.scale} * r + ${rewardMap.offset}`);
      // Without the flag nothing changes shape.
      if (args[0] === 'evaluate') expect(JSON.parse(fedpgLimited([...args.slice(0, 1), fixturePath(`${FIXTURE}.json`), '--json', '--backend', 'js']).stdout)).not.toHaveProperty('rewardMap');
    }
  });

  it('evaluate --rescale-rewards on the shifted file equals evaluate on the normalised rewards', () => {
    const { path } = shifted();
    const original = JSON.parse(readFileSync(fixturePath(`${FIXTURE}.json`), 'utf8'));
    const flat = original.rewards.flat(2) as number[];
    const lo = Math.min(...flat), hi = Math.max(...flat);
    const normal = { ...original, rewards: original.rewards.map((t: number[][]) => t.map((row) => row.map((r) => (r - lo) / (hi - lo)))) };
    const np = join(tmp, 'normal.json');
    writeFileSync(np, JSON.stringify(normal));
    const a = JSON.parse(fedpgLimited(['evaluate', path, '--rescale-rewards', '--json', '--backend', 'js']).stdout);
    const b = JSON.parse(fedpgLimited(['evaluate', np, '--json', '--backend', 'js']).stdout);
    a.J.forEach((j: number, i: number) => expect(Math.abs(j - b.J[i])).toBeLessThan(1e-12));
    expect(Math.abs(a.Jstar - b.Jstar)).toBeLessThan(1e-12);
  });
});
