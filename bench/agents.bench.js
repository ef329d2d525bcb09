// Many agents against one aggregator (issue 15), on loopback only: 1000 agents (S = 20, A = 4,
// sampled Fast-FedPG, M = 1, H = 5) in 4 `fedpg agent --agents I-J` host processes against one
// `fedpg serve`, against the message rate of a bare ConnectRPC unary echo (bench/net-echo.js:
// the same listener, delta-sized messages, 4 client processes of 250 callers on one HTTP/2
// session each) measured in the same run, the two variants interleaved; medians of the runs.
//
// A round is 3 messages per agent as the issue counts them (its delta, its report, its long
// poll); the agents actually make 4 calls (a poll per phase), printed too. The federation's rate
// is timed from the round log between round WARM and the last round, so the start-up (1000
// registrations, environments) is left out, as the echo's connection set-up is.
//
//   node bench/agents.bench.js              3 interleaved repetitions
//   FEDPG_BENCH_QUICK=1 node bench/...      1 repetition, fewer rounds (CI smoke)
// Every child process is killed after a bound, so the suite stops by itself.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomMdp } from '../dist/mdp/generate.js';
import { mdpToJson } from '../dist/mdp/parse.js';
import { AGENTS_PER_SESSION } from '../dist/network/agent-host.js';

const quick = process.env.FEDPG_BENCH_QUICK === '1';
const REPS = quick ? 1 : 3;
const AGENTS = 1000, HOSTS = 4, S = 20, A = 4;
const ROUNDS = quick ? 6 : 12, WARM = 2;
const ECHO_MS = quick ? 1500 : 3000;
const LIMIT_MS = 180_000;
const here = dirname(fileURLToPath(import.meta.url));
const CLI = join(here, '..', 'dist', 'cli', 'main.js');
const dir = mkdtempSync(join(tmpdir(), 'fedpg-agents-bench-'));

/** A child process with its output; killed after LIMIT_MS whatever happens. */
function run(args, { wait } = {}) {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FEDPG_NET_FAULT: '' } });
  let out = '', err = '';
  let hit;
  const ready = new Promise((r) => (hit = r));
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => {
    err += d;
    const m = wait && err.match(wait);
    if (m) hit(m);
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), LIMIT_MS);
  const done = new Promise((resolve) =>
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      hit(null);
      resolve({ code, signal, out, err });
    }),
  );
  return { child, ready, done };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

function must(r, what) {
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code ?? r.signal}): ${r.err.trim().split('\n').filter((l) => !/registered|run is over/.test(l)).slice(-25).join('\n')}`);
  // Node's process warnings (MaxListenersExceededWarning and the like) are shown, once per kind.
  const warnings = [...new Set(r.err.split('\n').filter((l) => /Warning:/.test(l)).map((l) => l.replace(/^\(node:\d+\) /, '')))];
  for (const w of warnings) console.log(`${what}: ${w}`);
  return r;
}

/** Messages per second of the bare echo: 4 client processes x 250 callers. */
async function echoRate() {
  const srv = run([join(here, 'net-echo.js'), 'server'], { wait: /listening on (\S+)/ });
  try {
    const m = await srv.ready;
    if (!m) throw new Error(`the echo server did not start: ${(await srv.done).err}`);
    const clients = Array.from({ length: HOSTS }, () => run([join(here, 'net-echo.js'), 'client', m[1], String(AGENTS / HOSTS), String(ECHO_MS)]));
    const counts = [];
    for (const c of clients) counts.push(Number(must(await c.done, 'an echo client').out.trim()));
    return counts.reduce((a, b) => a + b, 0) / (ECHO_MS / 1000);
  } finally {
    srv.child.kill('SIGTERM');
    await srv.done;
  }
}

/**
 * serve's connection limit per address, set (not lifted) for this test: every host opens one
 * HTTP/2 session per 64 agents (AGENTS_PER_SESSION), all from 127.0.0.1, plus room for a
 * reconnecting session each.
 */
function limitFlags() {
  const help = spawnSync(process.execPath, [CLI, 'serve', '--help'], { encoding: 'utf8' }).stdout;
  const sessions = HOSTS * Math.ceil(AGENTS / HOSTS / AGENTS_PER_SESSION);
  return help.includes('--max-connections-per-address') ? ['--max-connections-per-address', String(sessions + HOSTS)] : [];
}

/** Rounds per second of the federation (from the round log), and the calls it took. */
async function federationRate(flags) {
  const log = join(dir, 'serve.jsonl');
  rmSync(log, { force: true });
  const srv = run(
    [CLI, 'serve', join(dir, 'shared.json'), '--agents', String(AGENTS), '--token-file', join(dir, 'tokens.json'), '--port', '0', '--no-checkpoint', '--json',
      '--rounds', String(ROUNDS), '--local-steps', '5', '--batch', '1', '--out', log, ...flags],
    { wait: /listening on (http:\/\/127\.0\.0\.1:\d+)/ },
  );
  const m = await srv.ready;
  if (!m) throw new Error(`serve did not start: ${(await srv.done).err}`);
  const per = AGENTS / HOSTS;
  const hosts = Array.from({ length: HOSTS }, (_, h) =>
    run([CLI, 'agent', '--agents', `${h * per}-${(h + 1) * per - 1}`, '--dir', dir, '--server', m[1], '--json']),
  );
  // The round log gains a line per finished round (the header is round 0): time them as they land.
  const at = new Map();
  let lines = 0;
  const poll = setInterval(() => {
    if (!existsSync(log)) return;
    const n = readFileSync(log, 'utf8').split('\n').filter(Boolean).length;
    for (let k = lines + 1; k <= n; k++) at.set(k - 1, performance.now());
    lines = n;
  }, 5);
  try {
    must(await srv.done, 'serve');
    for (const h of hosts) must(await h.done, 'an agent host');
  } finally {
    clearInterval(poll);
  }
  const t0 = at.get(WARM), t1 = at.get(ROUNDS);
  if (t0 === undefined || t1 === undefined) throw new Error(`the round log lacks rounds ${WARM} and ${ROUNDS}`);
  return (ROUNDS - WARM) / ((t1 - t0) / 1000);
}

console.log(`agents bench: ${AGENTS} agents in ${HOSTS} host processes, S=${S} A=${A}, fast-fedpg sampled, M=1, H=5, ${ROUNDS} rounds (timed from round ${WARM}); loopback; load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
const mdp = randomMdp({ states: S, actions: A, agents: AGENTS, seed: 1 });
writeFileSync(join(dir, 'mdp.json'), JSON.stringify(mdpToJson(mdp)));
const sp = spawnSync(process.execPath, [CLI, 'split', join(dir, 'mdp.json'), '--out', dir, '--seed', '1'], { encoding: 'utf8' });
must({ code: sp.status, signal: sp.signal, err: sp.stderr }, 'split');
const flags = limitFlags();
const rows = [];
try {
  for (let k = 0; k < REPS; k++) {
    const echo = await echoRate();
    const rounds = await federationRate(flags);
    rows.push({ echo, rounds, messages: 3 * AGENTS * rounds, calls: 4 * AGENTS * rounds });
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.table(
  rows.map((r, k) => ({ run: k + 1, 'echo msg/s': Math.round(r.echo), 'rounds/s': +r.rounds.toFixed(2), 'federation msg/s': Math.round(r.messages), 'federation calls/s': Math.round(r.calls), ratio: +(r.messages / r.echo).toFixed(3) })),
);
const ratio = median(rows.map((r) => r.messages / r.echo));
console.log(
  `median: echo ${Math.round(median(rows.map((r) => r.echo)))} msg/s, federation ${Math.round(median(rows.map((r) => r.messages)))} msg/s ` +
    `(${median(rows.map((r) => r.rounds)).toFixed(2)} rounds/s), ratio ${ratio.toFixed(3)} (target >= 0.5); load after: ${loadavg()[0].toFixed(2)}`,
);
