import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsBackend } from '../src/backends/js/index.js';
import { train } from '../src/federation/train.js';
import { loadMdp } from '../src/mdp/format.js';
import { fixturePath, relativeError } from './helpers/fixtures.js';

/**
 * A browser agent (the wasm backend in headless chromium, connect-web over fetch) joins a run
 * beside Node agents (js and wasm backends), on loopback. The page is served from another origin
 * than the aggregator, so the aggregator's CORS answers are exercised. Exact gradients: agents on
 * different backends agree with the in-process js run to 1e-9 (SPEC.md: bit-identical results are
 * only promised on one backend). Outside CI the suite skips when there is no chromium; in CI a
 * missing chromium fails it.
 */

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(REPO, 'dist', 'cli', 'main.js');
const CHROMIUM = process.env.FEDPG_CHROMIUM ?? '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) {
  if (process.env.CI === 'true') throw new Error(`test/network-browser.test.ts: no chromium at ${CHROMIUM} in CI (apt-get install -y chromium, or set FEDPG_CHROMIUM)`);
  console.warn(`[tests] skipping the browser-agent test: no chromium at ${CHROMIUM} (apt-get install -y chromium, or set FEDPG_CHROMIUM)`);
}

const FIXTURE = 'random-s6-a3-n4';
const SETTINGS = { gradient: 'exact' as const, rounds: 5, localSteps: 4, eta: 0.5 };
const FLAGS = ['--gradient', 'exact', '--rounds', '5', '--local-steps', '4', '--eta', '0.5'];
const LIMIT_MS = 90_000;

const PAGE_HTML = `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>fedpg browser agent</title></head>
<body data-state="loading"><pre id="log"></pre><script type="module" src="./main.ts"></script></body></html>`;

/**
 * The page: loads the wasm backend (the facade core.ts, not the library's browser entry, whose
 * training loop would pull Node-only worker code into the bundle), fetches its rewards from its
 * own origin, and joins the aggregator.
 */
const PAGE_MAIN = (repo: string) => `
import { instantiateWasmBackend, simdSupported } from ${JSON.stringify(join(repo, 'src', 'backends', 'wasm', 'core.ts'))};
import simdUrl from ${JSON.stringify(join(repo, 'wasm', 'fedpg-simd.wasm') + '?url')};
import scalarUrl from ${JSON.stringify(join(repo, 'wasm', 'fedpg.wasm') + '?url')};
import { runBrowserAgent } from ${JSON.stringify(join(repo, 'src', 'network', 'browser.ts'))};
const q = new URLSearchParams(location.search);
const log = (m) => { document.getElementById('log').textContent += m + '\\n'; };
(async () => {
  try {
    const bytes = await (await fetch(simdSupported() ? simdUrl : scalarUrl)).arrayBuffer();
    const backend = await instantiateWasmBackend(await WebAssembly.compile(bytes));
    const rewards = await (await fetch(q.get('rewards'))).json();
    const summary = await runBrowserAgent({
      server: q.get('server'), agent: Number(q.get('agent')), token: q.get('token'), rewards, backend,
      protocol: q.get('protocol') || 'connect', onInfo: log, reconnectMs: 20000,
    });
    window.__summary = summary;
    document.body.dataset.state = 'done';
  } catch (e) {
    log('error: ' + (e && e.message ? e.message : String(e)));
    document.body.dataset.state = 'error';
  }
})();
`;

const MIME: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.wasm': 'application/wasm', '.json': 'application/json' };

function staticServer(root: string): Promise<{ server: Server; origin: string }> {
  const server = createServer((req, res) => {
    void (async () => {
      const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(/^[/\\]+/, '') || 'index.html';
      const file = join(root, path);
      if (relative(root, file).startsWith('..')) return void res.writeHead(403).end();
      try {
        const body = await readFile(file);
        res.writeHead(200, { 'content-type': MIME[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' }).end(body);
      } catch {
        res.writeHead(404).end('not found');
      }
    })();
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      resolve({ server, origin: `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}` });
    }),
  );
}

interface Proc {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exited: Promise<number | null>;
}

function start(args: string[]): Proc {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, FEDPG_BACKEND: '', FEDPG_NET_FAULT: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), LIMIT_MS);
  const exited = new Promise<number | null>((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve(code);
    }),
  );
  return { child, out: () => out, err: () => err, exited };
}

describe.runIf(haveChromium)('a browser agent beside Node agents', () => {
  const work = mkdtempSync(join(tmpdir(), 'fedpg-net-browser-'));
  const fed = join(work, 'fed');
  const site = join(work, 'site');
  let page: { server: Server; origin: string } | null = null;
  let context: import('playwright-core').BrowserContext | null = null;
  const procs: Proc[] = [];

  beforeAll(async () => {
    const split = start(['split', fixturePath(`${FIXTURE}.json`), '--out', fed, '--seed', '0']);
    expect(await split.exited).toBe(0);
    // Bundle the page (vite, as the demo is built): the agent code and the wasm module come from src/ and wasm/.
    const src = join(work, 'page');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'index.html'), PAGE_HTML);
    writeFileSync(join(src, 'main.ts'), PAGE_MAIN(REPO));
    const { build } = await import('vite');
    await build({ root: src, base: './', logLevel: 'error', configFile: false, build: { outDir: site, emptyOutDir: true, target: 'es2022' } });
    writeFileSync(join(site, 'rewards-3.json'), readFileSync(join(fed, 'rewards-3.json')));
    page = await staticServer(site);
    const { chromium } = await import('playwright-core');
    const profile = join(work, 'profile');
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  }, 120_000);

  afterAll(async () => {
    for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    await context?.close();
    page?.server.close();
    await rm(work, { recursive: true, force: true });
  });

  it('joins an exact-gradient run through connect-web (wasm in chromium, js and wasm in Node): J and theta agree with the in-process run to 1e-9', async () => {
    const srv = start(['serve', join(fed, 'shared.json'), '--agents', '4', '--token-file', join(fed, 'tokens.json'), '--port', '0', '--no-checkpoint', '--json', '--allow-origin', page!.origin, ...FLAGS]);
    procs.push(srv);
    const url = await new Promise<string>((resolve, reject) => {
      const check = (): void => {
        const m = /listening on (http:\/\/\S+)/.exec(srv.err());
        if (m) resolve(m[1]!);
      };
      srv.child.stderr!.on('data', check);
      void srv.exited.then(() => reject(new Error(`serve exited: ${srv.err()}`)));
    });
    const backends = ['js', 'wasm', 'js'];
    for (let i = 0; i < 3; i++) {
      const a = start(['agent', '--server', url, '--agent', String(i), '--rewards', join(fed, `rewards-${i}.json`), '--token-file', join(fed, `token-${i}.json`), '--backend', backends[i]!, '--json']);
      procs.push(a);
    }
    const token = JSON.parse(readFileSync(join(fed, 'token-3.json'), 'utf8')).token as string;
    const tab = await context!.newPage();
    const errors: string[] = [];
    tab.on('pageerror', (e) => errors.push(e.message));
    const q = new URLSearchParams({ server: url, agent: '3', token, rewards: `${page!.origin}/rewards-3.json`, protocol: 'connect' });
    await tab.goto(`${page!.origin}/index.html?${q}`);
    await tab.waitForSelector('body[data-state="done"], body[data-state="error"]', { timeout: 60_000 });
    const log = await tab.textContent('#log');
    expect(await tab.getAttribute('body', 'data-state'), log ?? '').toBe('done');
    const summary = await tab.evaluate(() => (window as unknown as { __summary: unknown }).__summary);
    expect(summary).toMatchObject({ agent: 3, backend: 'wasm', deltas: 5, gradients: 6, refused: 0 });
    expect(errors).toEqual([]);
    await tab.close();
    expect(await srv.exited, srv.err()).toBe(0);
    const r = JSON.parse(srv.out());
    expect(r.agentBackends).toEqual(['js', 'wasm', 'js', 'wasm']);
    expect(srv.err()).toMatch(/agent 3 registered \(backend wasm, browser \(.*HeadlessChrome/);
    const want = await train(loadMdp(fixturePath(`${FIXTURE}.json`)), { backend: jsBackend, ...SETTINGS });
    expect(relativeError(r.J, want.J)).toBeLessThanOrEqual(1e-9);
    expect(relativeError(r.theta, want.theta)).toBeLessThanOrEqual(1e-9);
    for (const p of procs.slice(1)) expect(await p.exited, p.err()).toBe(0);
  });
});
