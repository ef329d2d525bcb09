import { describe, expect, it } from 'vitest';
import { detCos, detLog } from '../src/math/index.js';
import { jsBackend } from '../src/backends/js/index.js';
import { initialAgentState, LocalAgent } from '../src/federation/agent.js';
import { algorithmOf } from '../src/federation/algorithms/registry.js';
import { updateBounds } from '../src/federation/bounds.js';
import { clipInPlace, dpEpsilon, RDP_ORDERS } from '../src/federation/privacy.js';
import { resolveSettings } from '../src/federation/settings.js';
import { train } from '../src/federation/train.js';
import { loadMdp } from '../src/mdp/format.js';
import { environmentSpec } from '../src/mdp/model.js';
import { agentStream, nextDouble } from '../src/rng.js';
import { fixturePath } from './helpers/fixtures.js';

const mdp = loadMdp(fixturePath('random-s6-a3-n4.json'));
const SA = mdp.states * mdp.actions;

describe('the accountant', () => {
  it('one Gaussian mechanism: epsilon = min over alpha of alpha / (2 sigma^2) + ln(1/delta) / (alpha - 1)', () => {
    // sigma = 1, delta = 1e-5: the terms are alpha/2 + 11.5129.../(alpha - 1); alpha = 5 gives 2.5 + 2.8782 = 5.3782
    // and alpha = 6 gives 3 + 2.3026 = 5.3026, the least over the orders (alpha = 8: 4 + 1.6447 = 5.6447).
    const L = Math.log(1e5);
    expect(dpEpsilon(1, 1, 1e-5)).toBeCloseTo(3 + L / 5, 12);
    // sigma = 10: the optimum moves to larger orders (alpha = 48 here)
    const at = (a: number, m: number, s: number): number => (m * a) / (2 * s * s) + L / (a - 1);
    expect(dpEpsilon(1, 10, 1e-5)).toBeCloseTo(Math.min(...RDP_ORDERS.map((a) => at(a, 1, 10))), 12);
    expect(Math.min(...RDP_ORDERS.map((a) => at(a, 1, 10)))).toBe(at(48, 1, 10));
    // composition: k messages at sigma are one message at sigma / sqrt(k)
    expect(dpEpsilon(16, 4, 1e-5)).toBeCloseTo(dpEpsilon(1, 1, 1e-5), 12);
    expect(dpEpsilon(3, 0, 1e-5)).toBe(Infinity);
    expect(dpEpsilon(0, 1, 1e-5)).toBe(0);
  });

  it('records the largest epsilon over agents, per round, counting the messages each sent', async () => {
    const r = await train(mdp, { gradient: 'exact', rounds: 3, localSteps: 2, eta: 0.3, dpClip: 1, dpNoise: 2, backend: 'js' });
    // Fast-FedPG: 1 report before round 1, then a delta and a report per round.
    r.records.forEach((rec, k) => expect(rec.dpEpsilon).toBeCloseTo(dpEpsilon(1 + 2 * (k + 1), 2, 1e-5), 12));
    expect(r.dpEpsilonPerAgent).toEqual(new Array(4).fill(dpEpsilon(7, 2, 1e-5)));
    const p = await train(mdp, { algorithm: 'fedavg', gradient: 'exact', rounds: 4, localSteps: 2, eta: 0.3, dpClip: 1, dpNoise: 2, participation: 0.5, backend: 'js' });
    const counts = [0, 0, 0, 0];
    for (const rec of p.records) for (const i of rec.participants!) counts[i]!++;
    expect(p.dpEpsilonPerAgent).toEqual(counts.map((c) => dpEpsilon(c, 2, 1e-5)));
    const clipOnly = await train(mdp, { algorithm: 'fedavg', gradient: 'exact', rounds: 1, dpClip: 1, backend: 'js' });
    expect(clipOnly.records[0]!.dpEpsilon).toBeNull();
  });
});

describe('the mechanism', () => {
  it('clips to C, then adds SIGMA C z per entry from the agent stream right after the message (Box-Muller)', () => {
    const s = resolveSettings({ algorithm: 'fedavg', gradient: 'sampled', localSteps: 2, eta: 0.5, horizon: 6, batch: 3, dpClip: 0.05, dpNoise: 1.5 });
    const alg = algorithmOf('fedavg');
    const env = jsBackend.createEnvironment(environmentSpec(mdp));
    const theta0 = new Float64Array(SA);
    const a = new LocalAgent(0, env, mdp.rewards[0]!, initialAgentState(alg, s, agentStream(4, 0), theta0), alg, s);
    const sent = new Float64Array(SA);
    a.localPhase(theta0, [], sent);
    // by hand: the same local steps on a copy of the stream, the clip, then the draws
    const rng = agentStream(4, 0);
    const theta = new Float64Array(SA);
    env.localRound({ theta, reward: mdp.rewards[0]!, correction: null, eta: 0.5, steps: 2, gradient: 'sampled', horizon: 6, batch: 3, rng });
    const want = theta.slice();
    clipInPlace(want, 0.05);
    let norm = 0;
    for (const x of want) norm += x * x;
    expect(Math.sqrt(norm)).toBeCloseTo(0.05, 14); // the delta was longer than C
    for (let j = 0; j < SA; j++) {
      const u1 = nextDouble(rng), u2 = nextDouble(rng);
      want[j] = want[j]! + 1.5 * 0.05 * (Math.sqrt(-2 * detLog(1 - u1)) * detCos(2 * Math.PI * u2));
    }
    expect(Array.from(sent)).toEqual(Array.from(want));
    expect(Array.from(a.state.rng)).toEqual(Array.from(rng));
    env.dispose();
  });

  it("Fast-FedPG keeps its DP-noised, pre-attack report, so the corrections still cancel", async () => {
    const s = resolveSettings({ gradient: 'sampled', horizon: 6, batch: 2, dpClip: 0.5, dpNoise: 1, byzantine: 1, attack: 'signflip' });
    const alg = algorithmOf('fast-fedpg');
    const env = jsBackend.createEnvironment(environmentSpec(mdp));
    const a = new LocalAgent(0, env, mdp.rewards[0]!, initialAgentState(alg, s, agentStream(1, 0), new Float64Array(SA)), alg, s);
    const sent = new Float64Array(SA);
    a.reportPhase(new Float64Array(SA), sent);
    expect(Array.from(sent)).toEqual(Array.from(a.kept('memory')).map((x) => -x));
    env.dispose();
  });

  it('the server\'s norm bound makes room for the noise', () => {
    const s = resolveSettings({ dpClip: 1, dpNoise: 2 });
    const b = updateBounds(s, 0.9, 6, 3);
    expect(b.delta).toBeCloseTo(1 + 2 * (Math.sqrt(18) + 10), 12);
    expect(() => resolveSettings({ dpNoise: 1 })).toThrow(/--dp-noise\) needs a clip norm/);
    expect(() => resolveSettings({ algorithm: 'local', dpClip: 1 })).toThrow(/needs a server step, which local does not have/);
  });
});
