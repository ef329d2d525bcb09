import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { EXPERIMENTS, finishChart, readExperimentLog, runExperiment, usedParams } from '../src/experiments/index.js';
import { readRunLog } from '../src/plot/index.js';
import { fixturePath } from './helpers/fixtures.js';

/**
 * fedpg plot of round logs (issue 19, item 1) and the plot fixes: a train log plots (it used to be
 * refused: "its first line must be the header"), logs are overlaid and labelled by what differs,
 * seeds of one configuration become a mean with a standard-error band, partial logs are marked,
 * curves carry dash patterns, and experiment plots list only the settings used.
 */

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const tmp = mkdtempSync(join(tmpdir(), 'fedpg-plot-'));

function fedpg(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, FEDPG_BACKEND: '' } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function trainLog(name: string, ...flags: string[]): string {
  const out = join(tmp, name);
  const r = fedpg('train', fixturePath('random-s6-a3-n4.json'), '--backend', 'js', '--rounds', '12', '--out', out, '--json', ...flags);
  expect(r.code, r.stderr).toBe(0);
  return out;
}

function csv(path: string): Record<string, string>[] {
  const [head, ...rows] = readFileSync(path, 'utf8').trim().split('\n');
  const cols = head!.split(',');
  return rows.map((r) => Object.fromEntries(r.split(',').map((v, i) => [cols[i]!, v])));
}

describe('fedpg plot of round logs', () => {
  it('plots a train log: J and the gap per round as the log holds them, SVG and self-contained HTML', () => {
    const log = trainLog('one.jsonl');
    const r = fedpg('plot', log, '--json');
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.files).toEqual({ csv: join(tmp, 'one.csv'), svg: join(tmp, 'one.svg'), html: join(tmp, 'one.html') });
    expect(out.series).toHaveLength(1);
    expect(out.series[0]).toMatchObject({ label: 'fast-fedpg', rounds: 12, plannedRounds: 12, partial: false });
    const parsed = readRunLog(log);
    const rows = csv(out.files.csv);
    expect(rows).toHaveLength(13);
    expect(Number(rows[0]!.J)).toBe(parsed.header.J0);
    for (let t = 1; t <= 12; t++) {
      expect(Number(rows[t]!.J)).toBe(parsed.records[t - 1]!.J);
      expect(Number(rows[t]!.trajectories)).toBe(parsed.records[t - 1]!.trajectories);
    }
    const svg = readFileSync(out.files.svg, 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('trajectories sampled');
    expect(svg).toContain('bytes sent');
    const html = readFileSync(out.files.html, 'utf8');
    expect(html).toContain('<svg');
    expect(html).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org)/);
  });

  it('overlays logs labelled by the settings that differ, each with its own dash pattern', () => {
    const a = trainLog('eta-a.jsonl', '--eta', '0.1');
    const b = trainLog('eta-b.jsonl', '--eta', '0.5');
    const r = fedpg('plot', a, b, '--name', 'etas', '--json');
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.series.map((s: any) => s.label)).toEqual(['fast-fedpg eta=0.1', 'fast-fedpg eta=0.5']);
    const svg = readFileSync(out.files.svg, 'utf8');
    // The second series is dashed (vega writes stroke-dasharray for a non-solid pattern).
    expect(svg).toMatch(/stroke-dasharray="7,3"/);
    expect(svg).toContain('own dash pattern');
  });

  it('seeds of one configuration: one series, the mean and the standard error per round', () => {
    const logs = [0, 1, 2].map((s) => trainLog(`seed${s}.jsonl`, '--seed', String(s)));
    const r = fedpg('plot', ...logs, '--name', 'seeds', '--json');
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.series).toHaveLength(1);
    expect(out.series[0]).toMatchObject({ label: 'fast-fedpg 3 seeds', seeds: [0, 1, 2] });
    const Js = logs.map((l) => readRunLog(l).records[11]!.J as number);
    const m = (Js[0]! + Js[1]! + Js[2]!) / 3;
    const se = Math.sqrt(Js.reduce((s, x) => s + (x - m) ** 2, 0) / 2 / 3);
    expect(Math.abs(out.series[0].final.J - m)).toBeLessThanOrEqual(1e-12);
    expect(Math.abs(out.series[0].final.Jse - se)).toBeLessThanOrEqual(1e-12);
    expect(se).toBeGreaterThan(0);
    // The band: an area mark in each of the six panels (J and gap against rounds, trajectories, bytes).
    expect(readFileSync(out.files.svg, 'utf8').match(/aria-roledescription="area mark container"/g)).toHaveLength(6);
  });

  it('marks a partial log (Ctrl-C mid-run) in the summary, the SVG title and the HTML', () => {
    const full = trainLog('full.jsonl');
    const lines = readFileSync(full, 'utf8').split('\n');
    const cut = join(tmp, 'cut.jsonl');
    // the header, 5 records and a torn sixth line
    writeFileSync(cut, lines.slice(0, 6).join('\n') + '\n' + lines[6]!.slice(0, 20));
    const r = fedpg('plot', cut, '--json');
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.series[0]).toMatchObject({ rounds: 5, plannedRounds: 12, partial: true });
    expect(readFileSync(out.files.svg, 'utf8')).toContain('PARTIAL LOG');
    expect(readFileSync(out.files.html, 'utf8')).toContain('Partial log: fast-fedpg has 5 of 12 rounds');
    const text = fedpg('plot', cut);
    expect(text.stdout).toContain('round 5 of 12 (partial log)');
  });

  it('plots a serve log (no backend, no J*, a round whose J is unknown): J only, no gap row', () => {
    const log = join(tmp, 'serve.jsonl');
    const settings = { algorithm: 'fast-fedpg', gradient: 'sampled', rounds: 3, seed: 0, agents: 2, states: 2, actions: 2 };
    const rec = (round: number, J: number | null): string => JSON.stringify({ round, J, gap: null, gradNormSq: null, trajectories: 10 * round, steps: 100 * round, bytes: 64 * round });
    writeFileSync(log, [JSON.stringify({ type: 'header', format: 'fedpg-log/1', algorithm: 'fast-fedpg', backend: null, gradient: 'sampled', settings, Jstar: null, J0: 0.5 }), rec(1, 0.6), rec(2, null), rec(3, 0.8)].join('\n') + '\n');
    const r = fedpg('plot', log, '--json');
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.series[0]).toMatchObject({ rounds: 3, partial: false, final: { J: 0.8, gap: null } });
    const svg = readFileSync(out.files.svg, 'utf8');
    expect(svg).not.toContain('log scale');
    expect(svg).toContain('J (average return)');
  });

  it('refuses what is neither kind of log, with one line naming the file', () => {
    const bad = join(tmp, 'bad.jsonl');
    writeFileSync(bad, '{"type":"header","format":"something/1"}\n');
    const r = fedpg('plot', bad);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(`${bad} is neither a fedpg-log/1 round log nor a fedpg-experiment/1 experiment log`);
    const bad2 = join(tmp, 'bad2.jsonl');
    writeFileSync(bad2, readFileSync(trainLog('ok.jsonl'), 'utf8').replace('"round":3', '"round":7'));
    const r2 = fedpg('plot', bad2);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/line 4: round must be 3, got 7/);
  });
});

describe('experiment plots', () => {
  it('the header and the HTML list only the settings the experiment reads; a partial log is marked in the SVG', async () => {
    const dir = join(tmp, 'exp');
    const logPath = join(tmp, 'bias.jsonl');
    await runExperiment('bias', {}, { threads: 1, quick: true, logPath });
    const header = JSON.parse(readFileSync(logPath, 'utf8').split('\n')[0]!);
    expect(Object.keys(header.params).sort()).toEqual([...EXPERIMENTS.bias!.params].sort());
    expect(header.params).not.toHaveProperty('agents');
    expect(header.params).not.toHaveProperty('horizon');
    // Reading it back fills in the unused defaults: the summary is the one the run gave.
    expect(readExperimentLog(logPath).header.params.horizon).toEqual(EXPERIMENTS.bias!.defaults.horizon);
    const lines = readFileSync(logPath, 'utf8').trim().split('\n');
    const cut = join(tmp, 'bias-cut.jsonl');
    writeFileSync(cut, lines.slice(0, 4).join('\n') + '\n');
    const r = fedpg('plot', cut, '--out', dir, '--json');
    expect(r.code, r.stderr).toBe(0);
    const svg = readFileSync(join(dir, 'bias-cut.svg'), 'utf8');
    expect(svg).toContain('PARTIAL LOG: 3 of 8 runs');
    const html = readFileSync(join(dir, 'bias-cut.html'), 'utf8');
    expect(html).not.toContain('<td>agents</td>');
    expect(html).not.toContain('<td>horizon</td>');
    expect(html).toContain('<td>localSteps</td>');
    expect(usedParams(EXPERIMENTS.bias!, EXPERIMENTS.bias!.defaults)).not.toHaveProperty('seeds');
  }, 60_000);

  it('finishChart: dashes by the colour field, log x axes end at the data, long subtitles wrap, partial in the title', () => {
    const spec = {
      title: { text: 'T', subtitle: ['x '.repeat(100).trim()] },
      facet: { row: { field: 'H' } },
      spec: { mark: { type: 'line' }, encoding: { x: { field: 'round', scale: { type: 'log' } }, color: { field: 'method', scale: { domain: ['a', 'b'] } } } },
    };
    const done = finishChart(spec, { partial: true, completed: 3, planned: 8 }) as any;
    expect(done.spec.encoding.strokeDash).toMatchObject({ field: 'method', scale: { domain: ['a', 'b'] } });
    expect(done.spec.encoding.x.scale.nice).toBe(false);
    expect(done.title.subtitle.every((l: string) => l.length <= 120)).toBe(true);
    expect(done.title.subtitle.at(-1)).toContain('own dash pattern');
    expect(done.title.text).toBe('T (PARTIAL LOG: 3 of 8 runs)');
    // The input is left alone; a chart that already uses dashes for another field gets none.
    expect((spec.spec.encoding as any).strokeDash).toBeUndefined();
    const other = finishChart({ layer: [{ mark: 'line', encoding: { color: { field: 'method' }, strokeDash: { field: 'tau' } } }, { mark: 'line', encoding: { color: { field: 'bias' } } }] }, { partial: false, completed: 1, planned: 1 }) as any;
    expect(other.layer[1].encoding.strokeDash).toBeUndefined();
    // ... and the one whose dashes tell another field apart gets widths by its colour field.
    expect(other.layer[0].encoding.strokeWidth).toMatchObject({ field: 'method' });
    expect(other.layer[0].encoding.strokeDash).toEqual({ field: 'tau' });
  });

  it('the speedup plot is as wide as its two panels and legend, not twice that', () => {
    const out = join(tmp, 'speedup-replot');
    const r = fedpg('plot', join(ROOT, 'docs', 'plots', 'speedup.jsonl'), '--out', out, '--json');
    expect(r.code, r.stderr).toBe(0);
    const width = Number(readFileSync(join(out, 'speedup.svg'), 'utf8').match(/^<svg[^>]* width="(\d+)"/)![1]);
    // two panels of 330 px, the y axis and the legend: about 860 px (it was 1621).
    expect(width).toBeLessThan(1000);
    expect(width).toBeGreaterThan(700);
  }, 60_000);
});
