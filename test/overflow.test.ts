import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Backend, EnvironmentSpec, LocalRoundArgs } from '../src/backends/types.js';
import { agentStream } from '../src/rng.js';
import { testedBackends } from './helpers/backends.js';
import { fedpgLimited, refusalLine } from './helpers/cli.js';

/**
 * A local round whose theta overflows the float64 range: every backend throws the same RangeError
 * (src/backends/checks.ts thetaOverflow), on the dense (S <= 2048) and the sparse exact path and on
 * every sampled path, and `fedpg train` ends with exit 1 and one line naming the agent and round.
 * A non-finite reward, correction or svrpg.u is named as such, the same on every backend.
 */

const backends = await testedBackends();

/**
 * The fork: state 0 chooses between state 1 (reward 1 forever, action 0) and state 2 (reward 0
 * forever, action 1); states 3.. are unreachable self-loops that only make S large. At theta = 0
 * with gamma 0.99, grad J at state 0 is (+-)24.75, so one exact step of eta = 1e308 overflows.
 */
function fork(S: number): { spec: EnvironmentSpec; reward: Float64Array } {
  const A = 2;
  const rowStart = new Int32Array(S * A + 1), next = new Int32Array(S * A), prob = new Float64Array(S * A).fill(1);
  for (let s = 0; s < S; s++) {
    for (let a = 0; a < A; a++) {
      rowStart[s * A + a + 1] = s * A + a + 1;
      next[s * A + a] = s === 0 ? 1 + a : s;
    }
  }
  const initial = new Float64Array(S);
  initial[0] = 1;
  const reward = new Float64Array(S * A);
  reward[2] = reward[3] = 1;
  return { spec: { states: S, actions: A, gamma: 0.99, initial, transitions: { kind: 'sparse', rowStart, next, prob } }, reward };
}

/** A table of S*A zeros with `value` at (s, a). */
function oneEntry(S: number, s: number, a: number, value: number): Float64Array {
  const t = new Float64Array(S * 2);
  t[s * 2 + a] = value;
  return t;
}

const OVERFLOW = '(the steps overflowed the float64 range: lower eta)';

interface Case {
  name: string;
  S: number;
  args: (S: number) => Omit<LocalRoundArgs, 'theta' | 'reward' | 'rng'>;
  message: string;
  /** Changes the fork's reward table before the round (a non-finite reward). */
  spoil?: (reward: Float64Array) => void;
}

const base = { correction: null, steps: 3, horizon: 200, batch: 4 } as const;
const cases: Case[] = [
  { name: 'exact, dense solves', S: 5, args: () => ({ ...base, gradient: 'exact', eta: 1e308 }), message: `theta[0][0] is Infinity after local step 1 of 3 ${OVERFLOW}` },
  { name: 'exact, sparse solves past 2048 states', S: 3000, args: () => ({ ...base, gradient: 'exact', eta: 1e308 }), message: `theta[0][0] is Infinity after local step 1 of 3 ${OVERFLOW}` },
  // A correction of 1e308 on an unreachable state (its gradient is 0) overflows at the second step.
  { name: 'exact with a correction, at step 2', S: 5, args: (S) => ({ ...base, gradient: 'exact', eta: 1, correction: oneEntry(S, 4, 0, 1e308) }), message: `theta[4][0] is Infinity after local step 2 of 3 ${OVERFLOW}` },
  { name: 'exact with a correction, sparse, at step 2', S: 3000, args: (S) => ({ ...base, gradient: 'exact', eta: 1, correction: oneEntry(S, 4, 0, 1e308) }), message: `theta[4][0] is Infinity after local step 2 of 3 ${OVERFLOW}` },
  { name: 'exact with entropy', S: 5, args: (S) => ({ ...base, gradient: 'exact', eta: 1, entropy: 0.1, correction: oneEntry(S, 4, 1, -1e308) }), message: `theta[4][1] is -Infinity after local step 2 of 3 ${OVERFLOW}` },
  { name: 'sampled (Eq. 5, lazy)', S: 5, args: () => ({ ...base, gradient: 'sampled', eta: 1e308 }), message: `theta[0][0] is NaN at the end of a local round of 3 steps ${OVERFLOW}` },
  { name: 'sampled past 2048 states', S: 3000, args: () => ({ ...base, gradient: 'sampled', eta: 1e308 }), message: `theta[0][0] is NaN at the end of a local round of 3 steps ${OVERFLOW}` },
  { name: 'sampled with a correction', S: 5, args: (S) => ({ ...base, gradient: 'sampled', eta: 1, correction: oneEntry(S, 4, 0, 1e308) }), message: `theta[4][0] is Infinity at the end of a local round of 3 steps ${OVERFLOW}` },
  { name: 'sampled with entropy', S: 5, args: (S) => ({ ...base, gradient: 'sampled', eta: 1, entropy: 0.1, correction: oneEntry(S, 4, 0, 1e308) }), message: `theta[4][0] is Infinity at the end of a local round of 3 steps ${OVERFLOW}` },
  {
    name: 'sampled with a pull',
    S: 5,
    args: (S) => ({ ...base, gradient: 'sampled', eta: 1, correction: oneEntry(S, 4, 0, 1e308), pull: { weight: 0.1, center: new Float64Array(S * 2) } }),
    message: `theta[4][0] is Infinity at the end of a local round of 3 steps ${OVERFLOW}`,
  },
  {
    name: 'FedSVRPG-M',
    S: 5,
    args: (S) => ({ ...base, gradient: 'sampled', eta: 1, svrpg: { thetaPrev: new Float64Array(S * 2), u: oneEntry(S, 4, 0, 1e308), beta: 0, clip: 0 } }),
    message: `theta[4][0] is Infinity at the end of a local round of 3 steps ${OVERFLOW}`,
  },
  { name: 'one step', S: 5, args: () => ({ ...base, gradient: 'sampled', eta: 1e308, steps: 1 }), message: `theta[0][0] is Infinity at the end of a local round of 1 step ${OVERFLOW}` },
  // A non-finite input the boundary checks do not scan (reward, correction, svrpg.u) is named
  // instead of an overflow: exact rounds check the reward before their first solve, and the
  // overflow check looks at these inputs on its error path.
  ...(['exact', 'sampled'] as const).flatMap((gradient) =>
    [5, 3000].map((S): Case => ({
      name: `a NaN reward, ${gradient}, S = ${S}`, S, args: () => ({ ...base, gradient, eta: 0.1 }), spoil: (r) => (r[2] = NaN), message: 'reward[1][0] is NaN, not a finite number',
    })),
  ),
  { name: 'a NaN correction, exact past 2048 states', S: 3000, args: (S) => ({ ...base, gradient: 'exact', eta: 0.1, correction: oneEntry(S, 3, 1, NaN) }), message: 'correction[3][1] is NaN, not a finite number' },
  { name: 'a NaN correction, sampled', S: 5, args: (S) => ({ ...base, gradient: 'sampled', eta: 0.1, correction: oneEntry(S, 3, 1, NaN) }), message: 'correction[3][1] is NaN, not a finite number' },
  {
    name: 'an infinite svrpg.u',
    S: 5,
    args: (S) => ({ ...base, gradient: 'sampled', eta: 0.1, svrpg: { thetaPrev: new Float64Array(S * 2), u: oneEntry(S, 3, 1, Infinity), beta: 0.5, clip: 0 } }),
    message: 'svrpg.u[3][1] is Infinity, not a finite number',
  },
];

/** Runs the case; returns the error and the theta and stream the round left. */
function overflowRound(backend: Backend, c: Case): { error: unknown; theta: Float64Array; rng: Uint32Array } {
  const { spec, reward } = fork(c.S);
  c.spoil?.(reward);
  const env = backend.createEnvironment(spec);
  const theta = new Float64Array(c.S * 2);
  const rng = agentStream(7, 0);
  let error: unknown = null;
  try {
    env.localRound({ ...c.args(c.S), theta, reward, rng });
  } catch (e) {
    error = e;
  }
  env.dispose?.();
  return { error, theta, rng };
}

describe.each(cases)('a local round that overflows (or is given a non-finite input): $name', (c) => {
  const runs = backends.map((b) => [b.name, overflowRound(b, c)] as const);

  it.each(runs)('%s throws the documented RangeError', (_name, r) => {
    expect(r.error).toBeInstanceOf(RangeError);
    expect((r.error as Error).message).toBe(c.message);
  });

  it.each(runs)('%s leaves the round\'s last iterate and stream, as js does', (_name, r) => {
    const js = runs.find(([n]) => n === 'js')![1];
    expect(Array.from(r.rng)).toEqual(Array.from(js.rng));
    for (let j = 0; j < r.theta.length; j++) {
      const x = r.theta[j]!, y = js.theta[j]!;
      if (Number.isFinite(y)) expect(Math.abs(x - y)).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(y)));
      else expect(x).toBe(y); // toBe is Object.is: NaN equals NaN
    }
  });
});

describe('fedpg train with a step size that overflows theta', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'fedpg-overflow-'));
  /** The fork as a fedpg-mdp/1 file (sparse transitions), two agents with its rewards. */
  function forkFile(S: number): string {
    const sparse: number[][] = [];
    for (let s = 0; s < S; s++) for (let a = 0; a < 2; a++) sparse.push([s, a, s === 0 ? 1 + a : s, 1]);
    const rewards = Array.from({ length: S }, (_, s) => (s === 1 ? [1, 1] : [0, 0]));
    const file = join(tmp, `fork-${S}.json`);
    const initial = Array.from({ length: S }, (_, s) => (s === 0 ? 1 : 0));
    writeFileSync(file, JSON.stringify({ format: 'fedpg-mdp/1', states: S, actions: 2, gamma: 0.99, initial, transitions: { sparse }, rewards: [rewards, rewards] }));
    return file;
  }
  const files = { dense: forkFile(5), sparse: forkFile(3000) };
  // WebAssembly reserves its memory's address space up front (several GiB per instance): the
  // default address-space cap of fedpgLimited would refuse the instance, not the run.
  const limits = (name: string): { vmKiB?: number } => (name === 'wasm' ? { vmKiB: 1 << 30 } : {});
  const run = ['--eta', '1e308', '--rounds', '3', '--local-steps', '3', '--horizon', '200', '--batch', '4'];

  describe.each(backends.map((b) => b.name))('--backend %s', (name) => {
    it.each([
      ['exact', 'dense', `theta[0][0] is Infinity after local step 1 of 3 ${OVERFLOW}`],
      ['exact', 'sparse', `theta[0][0] is Infinity after local step 1 of 3 ${OVERFLOW}`],
      ['sampled', 'dense', `theta[0][0] is NaN at the end of a local round of 3 steps ${OVERFLOW}`],
    ] as const)('--gradient %s (%s): exit 1 and one line naming the agent and the round', (gradient, path, message) => {
      const r = fedpgLimited(['train', files[path], '--gradient', gradient, '--backend', name, '--workers', '1', ...run], limits(name));
      expect(refusalLine(r)).toBe(`fedpg: error: agent 0 failed in round 1 (local steps): ${message}`);
    });

    it('on worker threads too', () => {
      const r = fedpgLimited(['train', files.dense, '--gradient', 'exact', '--backend', name, '--workers', '2', ...run], limits(name));
      expect(refusalLine(r)).toMatch(new RegExp(`^fedpg: error: agent [01] failed in round 1 \\(local steps\\): .*theta\\[0\\]\\[0\\] is Infinity after local step 1 of 3 \\(`));
    });
  });
});

/**
 * A non-finite reward given to an evaluation (evaluate, evaluateRegularized, truncated, optimal):
 * before, NaN outputs on the dense path, each backend's own solver error past 2048 states, and on
 * native's sparse path J = 0; now the same RangeError naming the entry on every backend.
 */
describe.each([
  ['dense (S = 6)', 6],
  ['sparse (S = 3000)', 3000],
] as const)('an evaluation given a non-finite reward: %s', (_label, S) => {
  const { spec, reward } = fork(S);
  const SA = S * 2;
  const bad = (v: number, at: number): Float64Array => {
    const r = new Float64Array(2 * SA);
    r.set(reward, 0);
    r.set(reward, SA);
    r[SA + at] = v;
    return r;
  };
  const out = (n: number) => ({ J: new Float64Array(n), V: new Float64Array(n * S), Q: new Float64Array(n * SA), grad: new Float64Array(n * SA), occupancy: new Float64Array(S) });
  it.each(backends.map((b) => [b.name, b] as const))('%s: evaluate, evaluateRegularized and truncated name rewards[i][s][a]; optimal names reward[s][a]', (_n, b) => {
    const env = b.createEnvironment(spec);
    try {
      const theta = new Float64Array(SA);
      // Table 1, state 2, action 1 (flat SA + 5).
      expect(() => env.evaluate(theta, bad(Number.NaN, 5), out(2))).toThrow(new RangeError('rewards[1][2][1] is NaN, not a finite number'));
      expect(() => env.evaluateRegularized(theta, bad(Infinity, 5), 0.1, out(2))).toThrow(new RangeError('rewards[1][2][1] is Infinity, not a finite number'));
      expect(() => env.truncated(theta, bad(-Infinity, 5), 3, { JK: new Float64Array(2), gradK: new Float64Array(2 * SA) })).toThrow(
        new RangeError('rewards[1][2][1] is -Infinity, not a finite number'),
      );
      const one = Float64Array.from(reward);
      one[5] = Number.NaN;
      expect(() => env.optimal(one, new Float64Array(S))).toThrow(new RangeError('reward[2][1] is NaN, not a finite number'));
      // Finite tables still evaluate.
      const o = out(2);
      env.evaluate(theta, bad(0.5, 5), o);
      expect(Number.isFinite(o.J[0]!) && Number.isFinite(o.J[1]!)).toBe(true);
    } finally {
      env.dispose();
    }
  });
});
