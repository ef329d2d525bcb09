import { describe, expect, it } from 'vitest';
import { loadBackendByName } from '../src/backends/select.js';
import { evaluatePolicy, evaluatePolicyArrays, policyReport } from '../src/evaluate.js';
import { gridworldMdp } from '../src/mdp/generate.js';
import { averageReward, environmentSpec } from '../src/mdp/model.js';

/**
 * evaluatePolicyArrays runs the J* solves (each agent's and the average MDP's) on the native
 * thread pool, several at once, beside the evaluation. Each must be the solve of its own reward
 * table, bit for bit what a plain `optimal` call gives, whatever the number in flight.
 */
describe('evaluatePolicyArrays: J* solves on the thread pool', async () => {
  const native = await loadBackendByName('native').catch(() => null);
  // A sparse gridworld (2704 states > the dense limit) whose agents' goals differ, so a mixed-up
  // table or output changes the numbers.
  const mdp = gridworldMdp({ width: 52, height: 52, agents: 4 });
  const theta = new Float64Array(mdp.states * mdp.actions).map((_, j) => Math.sin(j) / 4);

  it.skipIf(!native)('gives each solve the bits of a call of its own, for 1, 2 and 4 in flight', async () => {
    const env = native!.createEnvironment(environmentSpec(mdp));
    const own = mdp.rewards.map((r) => env.optimal(r, new Float64Array(mdp.states)));
    const vstar = new Float64Array(mdp.states);
    const jstar = env.optimal(averageReward(mdp), vstar);
    env.dispose();
    expect(new Set(own).size).toBe(4);
    for (const concurrency of [1, 2, 4]) {
      const a = await evaluatePolicyArrays(mdp, theta, { backend: native!, concurrency });
      expect(Array.from(a.JstarPerAgent)).toEqual(own);
      expect(a.Jstar).toBe(jstar);
      expect(Buffer.from(a.Vstar!.buffer, a.Vstar!.byteOffset, a.Vstar!.byteLength).equals(Buffer.from(vstar.buffer))).toBe(true);
    }
  });

  it('its nested form is evaluatePolicy, and agrees across backends to 1e-11', async () => {
    const reports = [];
    for (const name of ['js', 'native'] as const) {
      const backend = await loadBackendByName(name).catch(() => null);
      if (!backend) continue;
      const arrays = await evaluatePolicyArrays(mdp, theta, { backend });
      expect(policyReport(arrays)).toEqual(await evaluatePolicy(mdp, theta, { backend }));
      expect(arrays.grad.length).toBe(4 * mdp.states * mdp.actions);
      expect(arrays.policyStar.length).toBe(mdp.states);
      reports.push(arrays);
    }
    if (reports.length < 2) return;
    const [js, nat] = reports as [Awaited<ReturnType<typeof evaluatePolicyArrays>>, Awaited<ReturnType<typeof evaluatePolicyArrays>>];
    for (let i = 0; i < 4; i++) expect(Math.abs(js.JstarPerAgent[i]! - nat.JstarPerAgent[i]!)).toBeLessThan(1e-11);
    expect(Math.abs(js.Jstar! - nat.Jstar!)).toBeLessThan(1e-11);
    expect(Array.from(js.policyStar)).toEqual(Array.from(nat.policyStar));
  }, 120_000);
});
