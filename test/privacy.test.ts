import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { jsBackend } from '../src/backends/js/index.js';
import { derivedStream } from '../src/cli/commands/split.js';
import { resolveSettings } from '../src/federation/settings.js';
import { loadMdp } from '../src/mdp/format.js';
import { environmentSpec } from '../src/mdp/model.js';
import { runInProcessFederation } from '../src/network/inprocess.js';
import { agentStream } from '../src/rng.js';
import { fixturePath } from './helpers/fixtures.js';

/**
 * The trust issue's first finding: an aggregator that knows the agents' streams can replay their
 * trajectories (they depend on the stream, theta and P only) and, since a REINFORCE sample is
 * linear in the rewards, g_i = F r_i with F built from replays on the unit reward tables; least
 * squares over enough samples then recovers r_i exactly. The replay here uses what the aggregator
 * holds: the settings it sent (their `seed`), the shared MDP, theta_bar(0) and the g_i it received.
 */
const mdp = loadMdp(fixturePath('random-s20-a4-n8.json'));
const SA = mdp.states * mdp.actions;
const settings = { algorithm: 'fast-fedpg', gradient: 'sampled', rounds: 0, horizon: 12, batch: 20, seed: 0 } as const;

/** The aggregator's model of agent i's first report: F (SA x SA) from unit rewards on a guessed stream. */
function replayedReport(stream: Uint32Array, reward: Float64Array): Float64Array {
  const env = jsBackend.createEnvironment(environmentSpec(mdp));
  const theta0 = new Float64Array(SA);
  const col = new Float64Array(SA);
  const g = new Float64Array(SA);
  const unit = new Float64Array(SA);
  for (let k = 0; k < SA; k++) {
    unit.fill(0);
    unit[k] = 1;
    env.estimateGradient(theta0, unit, settings.horizon, settings.batch, stream.slice(), col);
    // g = F r: column k weighted by r_k (here the true r, to ask whether the model explains g_i at all).
    for (let j = 0; j < SA; j++) g[j] = g[j]! + reward[k]! * col[j]!;
  }
  env.dispose();
  return g;
}

function worst(a: Float64Array, b: Float64Array): number {
  let m = 0;
  for (let j = 0; j < a.length; j++) m = Math.max(m, Math.abs(a[j]! - b[j]!));
  return m;
}

describe('private agent randomness', () => {
  it('with keys from split --seed the aggregator can replay g_i; with private keys it cannot', async () => {
    const s = resolveSettings(settings);
    // Reproducible keys (split --seed 0): the aggregator's replay explains every report exactly.
    const open = await runInProcessFederation(mdp, { ...s, backend: jsBackend });
    for (let i = 0; i < 3; i++) expect(worst(replayedReport(agentStream(s.seed, i), mdp.rewards[i]!), open.reports[i]!)).toBeLessThan(1e-12);
    // Private keys (split's default): the same replay is far off.
    const secret = randomBytes(32);
    const streams = mdp.rewards.map((_, i) => derivedStream(secret, i));
    const closed = await runInProcessFederation(mdp, { ...s, backend: jsBackend, streams });
    for (let i = 0; i < 3; i++) expect(worst(replayedReport(agentStream(s.seed, i), mdp.rewards[i]!), closed.reports[i]!)).toBeGreaterThan(1e-3);
    // ... while the agents' own streams do explain them (the replay is right, only the key is missing).
    for (let i = 0; i < 3; i++) expect(worst(replayedReport(streams[i]!, mdp.rewards[i]!), closed.reports[i]!)).toBeLessThan(1e-12);
  });

  it('derived keys are one-way and distinct per agent', () => {
    const secret = randomBytes(32);
    const a = derivedStream(secret, 0), b = derivedStream(secret, 1);
    expect(Array.from(a)).not.toEqual(Array.from(b));
    expect(Array.from(derivedStream(secret, 0))).toEqual(Array.from(a));
    expect(Array.from(derivedStream(randomBytes(32), 0))).not.toEqual(Array.from(a));
  });
});
