import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { jsBackend } from '../src/backends/js/index.js';
import {
  drawExperiment,
  EXPERIMENT_NAMES,
  EXPERIMENTS,
  firstAgents,
  mirroredMdp,
  perAgentKernelMdp,
  readExperimentLog,
  resolveMdpSource,
  runExperiment,
  scaleHeterogeneity,
  summarise,
  type ExperimentParams,
  type ExperimentSummary,
} from '../src/experiments/index.js';
import { checkpointRounds, runTask } from '../src/experiments/task.js';
import { train } from '../src/federation/train.js';
import { environmentSpec } from '../src/mdp/model.js';
import { bootstrapSlope, logLogFit, quantile, semiLogFit } from '../src/experiments/stats.js';
import { loadMdp } from '../src/mdp/format.js';
import { averageReward } from '../src/mdp/model.js';
import { fixturePath, readExpect, relativeError } from './helpers/fixtures.js';

/**
 * The experiments (issue 7): each one at a tiny size on the js backend, the documented summary
 * fields, the bias claim on plateau-s6-a3-n4, results independent of the thread count, the CLI's
 * contract (JSON, exit codes, Ctrl-C leaves a valid partial log) and the helpers' arithmetic.
 */

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli', 'main.js');
const tmp = mkdtempSync(join(tmpdir(), 'fedpg-experiments-'));

/** The fields every summary has (ExperimentSummary), in the documented order. */
const SUMMARY_FIELDS = ['format', 'experiment', 'title', 'claim', 'params', 'backend', 'runs', 'partial', 'columns', 'rows', 'fits', 'findings', 'tables', 'fixed'];

/** Tiny settings per experiment (seconds on js). */
const TINY: Record<string, Partial<ExperimentParams>> = {
  bias: { localSteps: [1, 5], heterogeneity: [0, 1], rounds: 40 },
  speedup: { mdp: ['speedup-s5-a3-n8', 'mirrored:states=4,actions=2,agents=4,gamma=0.8,heterogeneity=1,seed=3'], agents: [1, 2, 4], seeds: 2, rounds: 20 },
  horizon: { mdp: ['speedup-s5-a3-n8'], horizon: [1, 3, 6], seeds: 2, rounds: 20 },
  heterogeneity: { heterogeneity: [0, 0.5, 1], seeds: 2, rounds: 15, batch: 2 },
  nonidentical: { rounds: 30, seeds: 2, agents: [2, 4] },
  memory: { agents: [1, 2], seeds: 2, rounds: 20 },
  peers: { rounds: 20, seeds: 2, entropy: [0.2], batch: 2, horizon: [10] },
  rivals: { rounds: 15, seeds: 2, horizon: [10], batch: 2 },
  compare: { mdp: ['plateau-s6-a3-n4', 'labbi-challenging'], rounds: 12, seeds: 2, horizon: [10], batch: 2 },
  byzantine: { rounds: 15, seeds: 2 },
  participation: { rounds: 30, seeds: 3 },
  personalization: { mdp: ['random:states=6,actions=3,agents=4,gamma=0.9,heterogeneity=0.5,seed=0'], rounds: 10, seeds: 2, horizon: [10], batch: 2 },
  floor: { agents: [4, 8], rounds: 10, seeds: 2, localSteps: [5] },
  privacy: { agents: [4], rounds: 10, seeds: 2 },
};

function fedpg(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, FEDPG_BACKEND: '' } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A run line without its wall time (the only field allowed to differ between identical runs). */
function withoutTime(line: Record<string, unknown>): Record<string, unknown> {
  const { ms: _ms, ...rest } = line;
  return rest;
}

describe('every experiment at a tiny size', () => {
  it('has a tiny setting here for every registered experiment', () => {
    expect(Object.keys(TINY).sort()).toEqual([...EXPERIMENT_NAMES].sort());
    expect(EXPERIMENT_NAMES).toEqual(['bias', 'speedup', 'horizon', 'heterogeneity', 'nonidentical', 'memory', 'peers', 'rivals', 'compare', 'byzantine', 'participation', 'personalization', 'floor', 'privacy']);
  });

  it.each(EXPERIMENT_NAMES.map((n) => [n]))('%s runs, logs, summarises with the documented fields and draws', async (name) => {
    const dir = join(tmp, `tiny-${name}`);
    const logPath = join(tmp, `${name}.jsonl`);
    const { log, summary } = await runExperiment(name, { ...TINY[name], backend: 'js' }, { threads: 1, logPath });
    expect(Object.keys(summary)).toEqual(SUMMARY_FIELDS);
    expect(summary.format).toBe('fedpg-experiment-summary/1');
    expect(summary.experiment).toBe(name);
    expect(summary.backend).toBe('js');
    expect(summary.partial).toBe(false);
    expect(summary.runs.completed).toBe(summary.runs.planned);
    expect(summary.runs.completed).toBeGreaterThan(1);
    expect(summary.columns).toEqual(EXPERIMENTS[name]!.columns);
    expect(summary.rows.length).toBeGreaterThan(0);
    for (const row of summary.rows) expect(Object.keys(row)).toEqual(summary.columns);
    expect(summary.findings.length).toBeGreaterThan(0);
    for (const f of summary.fits) expect(Object.keys(f).sort()).toEqual(['ci', 'from', 'group', 'intercept', 'label', 'n', 'r2', 'slope', 'slopeSe', 'to']);
    // The log alone gives the same summary (what `fedpg plot` draws).
    const read = readExperimentLog(logPath);
    expect(read.end?.completed).toBe(log.runs.length);
    expect(read.runs.map((r) => r.index)).toEqual(log.runs.map((r) => r.index));
    expect(JSON.parse(JSON.stringify(summarise(read)))).toEqual(JSON.parse(JSON.stringify(summary)));
    const files = await drawExperiment(read, summary, dir, name);
    const svg = readFileSync(files.svg, 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('</svg>');
    const html = readFileSync(files.html, 'utf8');
    expect(html).toContain('<svg');
    expect(html).toContain('Settings');
    expect(html).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org)/);
    const csv = readFileSync(files.csv, 'utf8').trimEnd().split('\n');
    expect(csv[0]).toBe(summary.columns.join(','));
    expect(csv).toHaveLength(summary.rows.length + 1);
  });
});

describe('bias (claim 1) on plateau-s6-a3-n4: theta = 0, H = 10, eta = 0.5, T = 2000, exact', () => {
  let summary: ExperimentSummary;
  it('Fast-FedPG falls below 1e-3 while FedAvg stays above 0.1', async () => {
    ({ summary } = await runExperiment('bias', { localSteps: [10], heterogeneity: [1], rounds: 2000, backend: 'js' }, { threads: 1 }));
    const fast = summary.rows.find((r) => r.method === 'fast-fedpg')!;
    const avg = summary.rows.find((r) => r.method === 'fedavg')!;
    expect(summary.params.eta).toBe(0.5);
    expect(fast.source).toBe('plateau-s6-a3-n4');
    expect(fast.rounds).toBe(2000);
    expect(fast.finalGap as number).toBeLessThan(1e-3);
    expect(fast.finalGap as number).toBeGreaterThan(0);
    expect(avg.finalGap as number).toBeGreaterThan(0.1);
    // The numbers SPEC.md quotes (8.9e-3 / 1.6e-3 / 4.0e-4; FedAvg 0.15) and the O(1/T) rate.
    expect(fast.gap100 as number).toBeCloseTo(8.9e-3, 4);
    expect(fast.gap500 as number).toBeCloseTo(1.6e-3, 4);
    expect(fast.finalGap as number).toBeCloseTo(4.0e-4, 5);
    expect(avg.finalGap as number).toBeCloseTo(0.15, 2);
    expect(fast.slope as number).toBeGreaterThan(-1.1);
    expect(fast.slope as number).toBeLessThan(-0.9);
    expect(avg.decadeRatio as number).toBeGreaterThan(0.95);
    expect(summary.tables[0]!.rows).toEqual([{ H: 10, 'h=1': avg.finalGap }]);
  });

  it('runs exactly the fixture iterates (J after rounds 1..400 of the expect file, to 1e-9)', async () => {
    const exp = readExpect('plateau-s6-a3-n4').expect;
    const { log } = await runExperiment('bias', { localSteps: [10], heterogeneity: [1], rounds: 400, backend: 'js' }, { threads: 1 });
    for (const [method, key] of [['fast-fedpg', 'fastFedPG'], ['fedavg', 'fedAvg']] as const) {
      const run = log.runs.find((r) => r.cell.method === method)!;
      const want = run.curve.round.map((t) => exp[key].J[t]);
      expect(relativeError(run.curve.J, want), method).toBeLessThanOrEqual(1e-9);
      expect(relativeError(run.Jstar, exp.Jstar)).toBeLessThanOrEqual(1e-9);
    }
  });
});

describe('parallel runs', () => {
  it('give the same results with 1 and 2 threads (worker pool of dist/experiments/worker.js)', async () => {
    expect(existsSync(join(dirname(CLI), '..', 'experiments', 'worker.js')), 'build first (npm test runs tsc)').toBe(true);
    const o = { ...TINY.speedup, backend: 'js' as const };
    const one = await runExperiment('speedup', o, { threads: 1, logPath: join(tmp, 'one.jsonl') });
    const two = await runExperiment('speedup', o, { threads: 2, logPath: join(tmp, 'two.jsonl') });
    expect(two.log.runs.map((r) => withoutTime(r as never))).toEqual(one.log.runs.map((r) => withoutTime(r as never)));
    expect(two.summary.rows).toEqual(one.summary.rows);
    // The logs hold the same run lines (sorted here too, though a finished log is in index order: sweep.test.ts).
    const lines = (p: string): unknown[] =>
      readFileSync(p, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l))
        .filter((l) => l.type === 'run')
        .map(withoutTime)
        .sort((a, b) => (a.index as number) - (b.index as number));
    expect(lines(join(tmp, 'two.jsonl'))).toEqual(lines(join(tmp, 'one.jsonl')));
  });
});

describe('parallel runs of the field experiments', () => {
  // Typed arrays in tasks (theta0, scoreOn), recorded extras and DP noise cross the worker boundary unchanged.
  it.each([['participation'], ['privacy'], ['personalization']])('%s gives the same results with 1 and 2 threads', async (name) => {
    const o = { ...TINY[name], backend: 'js' as const };
    const one = await runExperiment(name, o, { threads: 1 });
    const two = await runExperiment(name, o, { threads: 2 });
    expect(two.log.runs.map((r) => withoutTime(r as never))).toEqual(one.log.runs.map((r) => withoutTime(r as never)));
    expect(two.summary.rows).toEqual(one.summary.rows);
    expect(two.summary.findings).toEqual(one.summary.findings);
  });
});

describe('run task options the field experiments use', () => {
  it('theta0, recorded fields, greedy actions, per-agent J and a gap on another reward table match train() and direct evaluation', async () => {
    const mdp = loadMdp(fixturePath('plateau-s6-a3-n4.json'));
    const SA = mdp.states * mdp.actions;
    const theta0 = Float64Array.from({ length: SA }, (_, j) => ((j * 7) % 5) - 2);
    const settings = { algorithm: 'fedavg', gradient: 'sampled' as const, rounds: 6, localSteps: 3, eta: 0.2, horizon: 8, batch: 2, seed: 3, participation: 0.5 };
    const other = mdp.rewards[1]!;
    const r = await runTask({ index: 0, cell: {}, mdp, settings, backend: 'js', pointsPerDecade: 10, theta0, record: ['bytes', 'trajectories'], greedy: true, finalAgentJ: true, scoreOn: other });
    const direct = await train(mdp, { ...settings, theta0, backend: 'js' });
    const env = jsBackend.createEnvironment(environmentSpec(mdp));
    const ev = { J: new Float64Array(1), V: new Float64Array(mdp.states), Q: new Float64Array(SA), grad: new Float64Array(SA), occupancy: new Float64Array(mdp.states) };
    env.evaluate(theta0, averageReward(mdp), ev);
    expect(r.curve.gap[0]).toBeCloseTo(direct.Jstar! - ev.J[0]!, 12);
    expect(r.curve.round).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(r.curve.extra!.bytes).toEqual([null, ...direct.records.map((x) => x.bytes)]);
    expect(r.curve.extra!.trajectories).toEqual([null, ...direct.records.map((x) => x.trajectories)]);
    expect(r.final.agentJ).toEqual(direct.records.at(-1)!.agentJ);
    const theta = direct.theta!;
    expect(r.final.greedy).toEqual(theta.map((row) => row.indexOf(Math.max(...row))));
    const end = Float64Array.from(theta.flat());
    env.evaluate(end, other, ev);
    expect(r.final.scoredGap).toBeCloseTo(env.optimal(other, new Float64Array(mdp.states)) - ev.J[0]!, 12);
    env.dispose();
  });
});

describe('fedpg experiment and fedpg plot (CLI)', () => {
  it('writes the log, CSV, SVG and HTML and prints one JSON summary; plot redraws the log', () => {
    const out = join(tmp, 'cli');
    const r = fedpg('experiment', 'memory', '--agents', '1,2', '--seeds', '2', '--rounds', '15', '--backend', 'js', '--threads', '2', '--out', out, '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(Object.keys(s)).toEqual([...SUMMARY_FIELDS, 'files']);
    expect(s.files).toEqual({ log: join(out, 'memory.jsonl'), csv: join(out, 'memory.csv'), svg: join(out, 'memory.svg'), html: join(out, 'memory.html') });
    for (const f of Object.values(s.files) as string[]) expect(existsSync(f)).toBe(true);
    const header = JSON.parse(readFileSync(s.files.log, 'utf8').split('\n')[0]!);
    expect(header).toMatchObject({ type: 'header', format: 'fedpg-experiment/1', experiment: 'memory', threads: 2, runs: s.runs.planned });
    expect(header.command).toContain('fedpg experiment memory --agents 1,2');
    const p = fedpg('plot', s.files.log, '--out', join(tmp, 'replot'), '--json');
    expect(p.code).toBe(0);
    const again = JSON.parse(p.stdout);
    expect(again.rows).toEqual(s.rows);
    expect(again.files.svg).toBe(join(tmp, 'replot', 'memory.svg'));
    expect(readFileSync(again.files.svg, 'utf8')).toBe(readFileSync(s.files.svg, 'utf8'));
  });

  it('refuses what an experiment does not read, bad values and unknown names with exit 1; a missing name is exit 2', () => {
    const seeds = fedpg('experiment', 'bias', '--seeds', '3');
    expect(seeds.code).toBe(1);
    expect(seeds.stderr).toMatch(/bias experiment does not take seeds/);
    expect(fedpg('experiment', 'bias', '--local-steps', '1,x').code).toBe(1);
    expect(fedpg('experiment', 'bias', '--heterogeneity', '2').code).toBe(1);
    expect(fedpg('experiment', 'speedup', '--local-steps', '1,2').stderr).toMatch(/one localSteps value/);
    const unknown = fedpg('experiment', 'nope');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/unknown experiment 'nope' \(choose bias, speedup/);
    expect(fedpg('experiment', 'bias', '--mdp', 'no-such-file.json').code).toBe(1);
    expect(fedpg('experiment').code).toBe(2);
    expect(fedpg('plot', join(tmp, 'missing.jsonl')).code).toBe(1);
  });

  it.each([['1'], ['2']])('Ctrl-C (threads %s) exits 130 and leaves a valid partial log that plot draws', async (threads) => {
    const out = join(tmp, `interrupt-${threads}`);
    const child = spawn(process.execPath, [CLI, 'experiment', 'speedup', '--mdp', 'speedup-s5-a3-n8', '--agents', '8', '--seeds', '40', '--rounds', '400', '--backend', 'js', '--threads', threads, '--out', out], {
      env: { ...process.env, FEDPG_BACKEND: '' },
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += String(d)));
    const logPath = join(out, 'speedup.jsonl');
    const runLines = (): number => (existsSync(logPath) ? readFileSync(logPath, 'utf8').split('\n').filter((l) => l.includes('"type":"run"')).length : 0);
    const started = Date.now();
    while (runLines() < 2 && Date.now() - started < 30_000) await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGINT');
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(code).toBe(130);
    expect(stderr).toMatch(/interrupted \(Ctrl-C\); .*speedup\.jsonl holds \d+ of \d+ runs: draw them with fedpg plot/);
    const log = readExperimentLog(logPath);
    expect(log.end).toBeNull();
    expect(log.runs.length).toBeGreaterThanOrEqual(2);
    expect(log.runs.length).toBeLessThan(log.header.runs);
    const p = fedpg('plot', logPath, '--json');
    expect(p.code).toBe(0);
    const s = JSON.parse(p.stdout);
    expect(s.partial).toBe(true);
    expect(s.runs.completed).toBe(log.runs.length);
    expect(readFileSync(s.files.html, 'utf8')).toContain('Partial log');
  });
});

describe('MDP sources', () => {
  it('embeds the fixtures verbatim', () => {
    for (const name of ['plateau-s6-a3-n4', 'speedup-s5-a3-n8', 'labbi-challenging']) {
      const embedded = resolveMdpSource(name);
      expect(embedded.kind).toBe('builtin');
      const file = loadMdp(fixturePath(`${name}.json`));
      expect(embedded.mdp).toEqual(file);
    }
    expect(resolveMdpSource(fixturePath('random-s6-a3-n4.json')).kind).toBe('file');
    expect(() => resolveMdpSource('mirrored:states=5,bogus=1')).toThrow(/unknown key 'bogus'/);
    expect(() => resolveMdpSource('mirrored:agents=3')).toThrow(/even/);
    expect(() => resolveMdpSource('nothing-here')).toThrow(/not a file, an embedded MDP/);
  });

  it('mirrored pairs share one average MDP for every even N; N = 1 is that average', () => {
    const mdp = mirroredMdp({ states: 5, actions: 3, agents: 16, gamma: 0.8, heterogeneity: 1, seed: 2 });
    const all = averageReward(mdp);
    for (const N of [1, 2, 4, 8, 16]) expect(relativeError(Array.from(averageReward(firstAgents(mdp, N))), Array.from(all))).toBeLessThan(1e-15);
    for (const r of mdp.rewards) for (const v of r) expect(v >= 0 && v <= 1).toBe(true);
    expect(relativeError(Array.from(mdp.rewards[0]!), Array.from(mdp.rewards[1]!))).toBeGreaterThan(0.05);
    // The speedup fixture is built the same way.
    const fx = resolveMdpSource('speedup-s5-a3-n8').mdp;
    for (const N of [2, 4, 8]) expect(relativeError(Array.from(averageReward(firstAgents(fx, N))), Array.from(averageReward(fx)))).toBeLessThan(1e-12);
  });

  it('per-agent kernels are distributions and differ between agents', () => {
    const mdp = perAgentKernelMdp({ states: 4, actions: 2, agents: 3, gamma: 0.9, heterogeneity: 0.5, seed: 1 });
    expect(mdp.perAgentKernels).toBe(true);
    expect(mdp.kernels).toHaveLength(3);
    for (const k of mdp.kernels) {
      if (k.kind !== 'dense') throw new Error('dense expected');
      for (let r = 0; r < 8; r++) expect(k.p.subarray(r * 4, r * 4 + 4).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 14);
    }
    const [a, b] = mdp.kernels as { kind: 'dense'; p: Float64Array }[];
    expect(relativeError(Array.from(a!.p), Array.from(b!.p))).toBeGreaterThan(0.01);
    expect(firstAgents(mdp, 2).kernels).toHaveLength(2);
  });

  it('the heterogeneity knob keeps the average reward and makes agents equal at 0', () => {
    const mdp = resolveMdpSource('plateau-s6-a3-n4').mdp;
    expect(scaleHeterogeneity(mdp, 1)).toBe(mdp);
    for (const h of [0, 0.3, 0.7]) {
      const m = scaleHeterogeneity(mdp, h);
      expect(relativeError(Array.from(averageReward(m)), Array.from(averageReward(mdp)))).toBeLessThan(1e-15);
    }
    const flat = scaleHeterogeneity(mdp, 0);
    for (const r of flat.rewards) expect(Array.from(r)).toEqual(Array.from(flat.rewards[0]!));
    expect(() => scaleHeterogeneity(mdp, 1.5)).toThrow(/heterogeneity must be in \[0, 1\]/);
  });
});

describe('measurement helpers', () => {
  it('fits power laws and rates exactly on exact data', () => {
    const x = [1, 2, 4, 8, 16];
    const f = logLogFit(x, x.map((v) => 3 * v ** -1.5));
    expect(f.slope).toBeCloseTo(-1.5, 12);
    expect(Math.exp(f.intercept)).toBeCloseTo(3, 12);
    expect(f.r2).toBeCloseTo(1, 12);
    const g = semiLogFit(x, x.map((k) => 2 * 0.8 ** k));
    expect(Math.exp(g.slope)).toBeCloseTo(0.8, 12);
    expect(logLogFit([1, 2, 3], [1, 0, -1]).n).toBe(1);
    expect(quantile([4, 1, 3, 2], 0.5)).toBe(2.5);
  });

  it('bootstraps the slope deterministically and around the truth', () => {
    const x = [1, 2, 4, 8];
    const groups = x.map((N) => Array.from({ length: 20 }, (_, k) => (1 / N) * (0.8 + (0.4 * k) / 19)));
    const a = bootstrapSlope(x, groups, 500);
    expect(bootstrapSlope(x, groups, 500)).toEqual(a);
    expect(a[0]).toBeLessThan(-1 + 1e-9);
    expect(a[1]).toBeGreaterThan(-1 - 1e-9);
    expect(a[1] - a[0]).toBeLessThan(0.3);
  });

  it('places checkpoints log-spaced with 0, T and the 1-2-5 rounds', () => {
    const c = checkpointRounds(2000, 5);
    expect(c[0]).toBe(0);
    expect(c[c.length - 1]).toBe(2000);
    for (const r of [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]) expect(c).toContain(r);
    expect(new Set(c).size).toBe(c.length);
    expect(checkpointRounds(0, 5)).toEqual([0]);
  });

  it('J_tau* from soft value iteration bounds J_tau and is reached by the regularised runs', async () => {
    const { log } = await runExperiment(
      'peers',
      { algorithms: ['fast-fedpg'], gradient: ['exact'], entropy: [0.2], rounds: 300, backend: 'js' },
      { threads: 1 },
    );
    const run = log.runs.find((r) => r.cell.tau === 0.2)!;
    // J_tau <= J_tau* everywhere (round-off aside) and the run reaches it.
    for (const g of run.curve.gapTau!) expect(g).toBeGreaterThan(-1e-10);
    expect(Math.abs(run.final.gapTau!)).toBeLessThan(1e-9);
    // And a random policy is strictly worse.
    const mdp = resolveMdpSource('plateau-s6-a3-n4').mdp;
    const env = jsBackend.createEnvironment({ states: mdp.states, actions: mdp.actions, gamma: mdp.gamma, initial: mdp.initial, transitions: mdp.kernels[0]! });
    const out = { J: new Float64Array(1), V: new Float64Array(6), Q: new Float64Array(18), grad: new Float64Array(18), occupancy: new Float64Array(6) };
    env.evaluateRegularized!(Float64Array.from({ length: 18 }, (_, j) => Math.sin(j)), averageReward(mdp), 0.2, out);
    expect(run.JtauStar! - out.J[0]!).toBeGreaterThan(1e-3);
    env.dispose();
  });
});
