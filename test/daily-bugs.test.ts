import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { fixturePath } from './helpers/fixtures.js';

/**
 * The rough edges a new user hit (issue 19), each reproduced as the user met it. Every process
 * is bounded; the serve tests wait on its output, never on sleeps.
 */

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const tmp = mkdtempSync(join(tmpdir(), 'fedpg-daily-'));

function fedpg(args: string[], cwd = ROOT): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd, env: { ...process.env, FEDPG_BACKEND: '', FEDPG_NET_FAULT: '' }, timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A child we can talk to: resolves `until(re)` when stderr matches, `exit` when it ends. */
function start(args: string[]): { until: (re: RegExp) => Promise<void>; exit: Promise<number | null>; kill: (s: NodeJS.Signals) => void; out: () => string; err: () => string } {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: tmp, env: { ...process.env, FEDPG_BACKEND: '', FEDPG_NET_FAULT: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  const waiters: (() => void)[] = [];
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => {
    err += d;
    waiters.forEach((w) => w());
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const exit = new Promise<number | null>((r) => child.on('close', (code) => (clearTimeout(timer), r(code))));
  const until = (re: RegExp): Promise<void> =>
    new Promise((resolve, reject) => {
      const check = (): void => (re.test(err) ? resolve() : undefined);
      waiters.push(check);
      check();
      void exit.then(() => (re.test(err) ? resolve() : reject(new Error(`exited before ${re}: ${err}`))));
    });
  return { until, exit, kill: (s) => child.kill(s), out: () => out, err: () => err };
}

describe('a reader that closes the pipe early', () => {
  it('ends fedpg quietly with exit 0, not an EPIPE stack trace', () => {
    // `true` exits without reading, so fedpg's write finds the pipe closed (node starts slower).
    for (const args of ['--version', `evaluate ${JSON.stringify(fixturePath('random-s6-a3-n4.json'))} --json`]) {
      const r = spawnSync('bash', ['-c', `set -o pipefail; "${process.execPath}" "${CLI}" ${args} | true`], { encoding: 'utf8', timeout: 60_000 });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    }
  });
});

describe('run --help', () => {
  it("shows run's own defaults (300 rounds, eta 1, exact gradients), not train's", () => {
    const r = fedpg(['run', '--help']);
    expect(r.code).toBe(0);
    const line = (flag: string): string => r.stdout.split('\n').find((l) => l.trimStart().startsWith(flag)) ?? '';
    expect(line('--rounds')).toContain('(default 300)');
    expect(line('--eta')).toContain('(default 1)');
    expect(line('--gradient')).toMatch(/\(default exact[;)]/);
    expect(line('--local-steps')).toContain('(default 10)');
    // train keeps the library's defaults.
    const t = fedpg(['train', '--help']).stdout;
    expect(t).toMatch(/--rounds <T>\s+communication rounds \(default 100\)/);
    expect(t).toMatch(/--gradient <mode>\s+exact \| sampled \(default sampled[;)]/);
  });
});

describe('fedpg serve', () => {
  it('rerun with the checkpoint of its finished run: prints the result and exits 0 without listening', async () => {
    const fed = join(tmp, 'fed');
    expect(fedpg(['split', fixturePath('random-s6-a3-n4.json'), '--out', fed]).code).toBe(0);
    const ck = join(tmp, 'agg.ckpt');
    const args = ['serve', join(fed, 'shared.json'), '--agents', '4', '--token-file', join(fed, 'tokens.json'), '--port', '0', '--checkpoint', ck, '--rounds', '2', '--gradient', 'exact', '--json'];
    const first = start(args);
    await first.until(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
    const url = first.err().match(/listening on (http:\/\/127\.0\.0\.1:\d+)/)![1]!;
    const agents = [0, 1, 2, 3].map((i) => start(['agent', '--server', url, '--agent', String(i), '--rewards', join(fed, `rewards-${i}.json`), '--token-file', join(fed, `token-${i}.json`), '--backend', 'js', '--json']));
    expect(await first.exit).toBe(0);
    for (const a of agents) expect(await a.exit).toBe(0);
    const want = JSON.parse(first.out());
    const t0 = Date.now();
    const again = fedpg(args);
    expect(again.code, again.stderr).toBe(0);
    // It used to announce "listening" and linger for agents that already left.
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(again.stderr).not.toContain('listening on');
    expect(again.stderr).toContain('holds this run finished');
    const got = JSON.parse(again.stdout);
    expect(got.J).toEqual(want.J);
    expect(got.theta).toEqual(want.theta);
  }, 60_000);

  it.each([
    [['--no-checkpoint'], /interrupted; no checkpoint was kept \(--no-checkpoint\): a restart starts the run over/],
    [['--checkpoint', 'kept.ckpt'], /interrupted; kept\.ckpt keeps every finished phase/],
  ])('Ctrl-C with %j says what is kept', async (extra, message) => {
    const fed = join(tmp, 'fed-int');
    if (!existsSync(fed)) expect(fedpg(['split', fixturePath('random-s6-a3-n4.json'), '--out', fed]).code).toBe(0);
    const p = start(['serve', join(fed, 'shared.json'), '--agents', '4', '--token-file', join(fed, 'tokens.json'), '--port', '0', ...extra]);
    await p.until(/listening on/);
    p.kill('SIGINT');
    expect(await p.exit).toBe(130);
    expect(p.err()).toMatch(message);
    expect(p.err()).not.toMatch(extra[0] === '--no-checkpoint' ? /checkpoint keeps/ : /no checkpoint/);
  }, 60_000);
});

describe('a fresh clone', () => {
  it('every examples/ file the README names exists, and the README commands on them run', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const named = [...new Set(readme.match(/examples\/[\w.-]+\.json/g))];
    expect(named.sort()).toEqual(['examples/random-s6-a3-n4.expect.json', 'examples/random-s6-a3-n4.json', 'examples/tasks.json']);
    for (const f of named) expect(existsSync(join(ROOT, f)), f).toBe(true);
    // No example names a bare file a new user does not have.
    expect(readme).not.toMatch(/fedpg (train|split|evaluate) (tasks|random-s6-a3-n4)\.json/);
    // The documented --json example, as printed there (numbers rounded).
    const cmd = readme.match(/`fedpg (train examples\/random-s6-a3-n4\.json [^`]*--json)`/)![1]!.split(' ');
    const r = fedpg([...cmd, '--backend', 'js']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).J.map((v: number) => +v.toFixed(6))).toEqual([5.265778, 5.321957, 5.37235]);
    const train = fedpg(['train', 'examples/tasks.json', '--rounds', '3', '--gradient', 'exact', '--backend', 'js', '--json']);
    expect(train.code, train.stderr).toBe(0);
    expect(JSON.parse(train.stdout).settings).toMatchObject({ agents: 4, states: 25, actions: 4 });
  });

  it('.gitignore keeps the outputs of run and serve out; a packed tarball builds its prebuilt addon (prepack)', () => {
    const ignore = readFileSync(join(ROOT, '.gitignore'), 'utf8').split('\n');
    expect(ignore).toContain('fedpg-run/');
    expect(ignore).toContain('fedpg-aggregator.ckpt');
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    expect(pkg.scripts.prepack).toMatch(/^prebuildify --napi --strip\b/);
    // Its output must not reach stdout, where `npm pack --json` writes the tarball's name.
    expect(pkg.scripts.prepack).toMatch(/1>&2$/);
  });

  it('fedpg run writes its plot beside its logs and prints the path', () => {
    const dir = join(tmp, 'run-out');
    const r = fedpg(['run', '--rounds', '4', '--width', '3', '--height', '3', '--agents', '2', '--backend', 'js', '--out', dir]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`plot: ${join(dir, 'run.svg')}, ${join(dir, 'run.html')}`);
    const svg = readFileSync(join(dir, 'run.svg'), 'utf8');
    expect(svg).toContain('fast-fedpg');
    expect(svg).toContain('fedavg');
  });
});

describe('evaluate policyStar on the command line', () => {
  it('--json has it; the text shows it for small S', () => {
    const j = fedpg(['evaluate', fixturePath('random-s6-a3-n4.json'), '--backend', 'js', '--json']);
    expect(j.code).toBe(0);
    const report = JSON.parse(j.stdout);
    expect(report.policyStar).toHaveLength(6);
    const t = fedpg(['evaluate', fixturePath('random-s6-a3-n4.json'), '--backend', 'js']);
    expect(t.stdout).toContain(`policy*      ${report.policyStar.join(' ')}`);
    const per = JSON.parse(fedpg(['evaluate', fixturePath('labbi-challenging.json'), '--backend', 'js', '--json']).stdout);
    expect(per.policyStar).toHaveLength(2);
    expect(per.policyStar[0]).toHaveLength(7);
  });
});

describe('fedpg run interrupted', () => {
  it('Ctrl-C: exits 130 and plots the rounds so far, marked partial', async () => {
    const dir = join(tmp, 'run-int');
    const p = start(['run', '--rounds', '1000000', '--width', '3', '--height', '3', '--agents', '2', '--backend', 'js', '--out', dir]);
    const log = join(dir, 'fast-fedpg.jsonl');
    // Wait (bounded) until the first log holds a few rounds.
    for (let i = 0; i < 600 && !(existsSync(log) && readFileSync(log, 'utf8').split('\n').length > 4); i++) await new Promise((r) => setTimeout(r, 50));
    p.kill('SIGINT');
    expect(await p.exit).toBe(130);
    expect(p.err()).toContain(`their plot (marked partial): ${join(dir, 'run.svg')}`);
    expect(readFileSync(join(dir, 'run.svg'), 'utf8')).toContain('PARTIAL LOG');
  }, 60_000);
});
