import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, copyFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The demo in a real browser: Debian's chromium, driven by playwright-core, loads the built page
 * from a static server on 127.0.0.1, runs a short exact-gradient experiment the way a person
 * would (form, Run button), and reads the results from the DOM. Outside CI the suite skips (and
 * says why) when there is no chromium; in CI (CI=true) a missing browser fails it.
 */

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
const CHROMIUM = process.env.FEDPG_CHROMIUM ?? '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
const inCI = process.env.CI === 'true';
if (!haveChromium) {
  if (inCI) throw new Error(`test/browser.test.ts: no chromium at ${CHROMIUM} in CI (apt-get install -y chromium, or set FEDPG_CHROMIUM)`);
  console.warn(`[tests] skipping the browser tests: no chromium at ${CHROMIUM} (apt-get install -y chromium, or set FEDPG_CHROMIUM)`);
}

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/** A static server for the built page, with the headers cross-origin isolation would need. */
function serve(root: string): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    void (async () => {
      const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname)).replace(/^[/\\]+/, '') || 'index.html';
      const file = join(root, path);
      if (relative(root, file).startsWith('..') || relative(root, file).split(sep).includes('..')) {
        res.writeHead(403).end();
        return;
      }
      try {
        const body = await readFile(file);
        res.writeHead(200, {
          'content-type': MIME[extname(file)] ?? 'application/octet-stream',
          'cross-origin-opener-policy': 'same-origin',
          'cross-origin-embedder-policy': 'require-corp',
          'cache-control': 'no-store',
        });
        res.end(body);
      } catch {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      }
    })();
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    const addr = server.address();
    resolve({ server, url: `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/` });
  }));
}

describe.runIf(haveChromium)('the browser demo', () => {
  let out = '';
  let profile = '';
  let server: Server | null = null;
  let url = '';
  let context: import('playwright-core').BrowserContext | null = null;

  beforeAll(async () => {
    out = await mkdtemp(join(tmpdir(), 'fedpg-demo-'));
    profile = await mkdtemp(join(tmpdir(), 'fedpg-chromium-'));
    const { build } = await import('vite');
    await build({ configFile: join(REPO, 'demo', 'vite.config.ts'), logLevel: 'error', build: { outDir: out, emptyOutDir: true } });
    ({ server, url } = await serve(out));
    const { chromium } = await import('playwright-core');
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1300, height: 1000 },
    });
  });

  afterAll(async () => {
    await context?.close();
    server?.close();
    if (out) await rm(out, { recursive: true, force: true });
    if (profile) await rm(profile, { recursive: true, force: true });
  });

  async function openPage(query = ''): Promise<{ page: import('playwright-core').Page; errors: string[] }> {
    const page = await context!.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    await page.goto(url + query);
    await page.waitForSelector('#app[data-state="ready"]', { timeout: 30_000 });
    return { page, errors };
  }

  it('runs a short exact-gradient experiment: Fast-FedPG ends below FedAvg\u2019s gap', async () => {
    const { page, errors } = await openPage();
    expect(await page.getAttribute('#app', 'data-simd')).toBe('true');
    // As a person would: the preset 6x6 gridworld with 4 agents, exact gradients, 60 rounds.
    await page.check('input[name=source][value=preset]');
    await page.fill('#width', '6');
    await page.fill('#height', '6');
    await page.fill('#agents', '4');
    await page.fill('#heterogeneity', '1');
    await page.selectOption('#gradient', 'exact');
    await page.fill('#rounds', '60');
    await page.fill('#localSteps', '10');
    await page.fill('#eta', '1');
    await page.fill('#workers', '2');
    for (const alg of ['fast-fedpg', 'fedavg']) await page.check(`input[name=algorithm][value=${alg}]`);
    for (const alg of ['centralized', 'local']) await page.uncheck(`input[name=algorithm][value=${alg}]`);
    await page.click('#run');
    await page.waitForSelector('#app[data-state="done"], #app[data-state="error"]', { timeout: 90_000 });
    expect(await page.textContent('#error')).toBe('');
    expect(await page.getAttribute('#app', 'data-state')).toBe('done');
    const read = async (alg: string) => ({
      gap: Number(await page.getAttribute(`.result[data-algorithm="${alg}"]`, 'data-final-gap')),
      rounds: Number(await page.getAttribute(`.result[data-algorithm="${alg}"]`, 'data-rounds')),
      status: await page.getAttribute(`.result[data-algorithm="${alg}"]`, 'data-status'),
    });
    const fast = await read('fast-fedpg');
    const avg = await read('fedavg');
    expect(fast.rounds).toBe(60);
    expect(avg.rounds).toBe(60);
    expect(fast.status).toBe('done');
    expect(fast.gap).toBeGreaterThan(0);
    expect(avg.gap).toBeGreaterThan(0);
    // The heterogeneity plateau: FedAvg with H = 10 stalls; Fast-FedPG keeps going.
    expect(fast.gap).toBeLessThan(avg.gap / 2);
    // The learned policies are drawn (one canvas per algorithm).
    expect(await page.locator('.policy canvas').count()).toBe(2);
    expect(errors).toEqual([]);
    await mkdir(join(REPO, 'test-results'), { recursive: true });
    const shot = join(REPO, 'test-results', 'demo.png');
    await page.screenshot({ path: shot, fullPage: true });
    // The README's picture: written when missing, or on request.
    const doc = join(REPO, 'docs', 'demo.png');
    if (!existsSync(doc) || process.env.FEDPG_UPDATE_DEMO_PNG === '1') await copyFile(shot, doc);
    await page.close();
  });

  it('samples with the estimator and reports environment steps per second', async () => {
    const { page, errors } = await openPage('?gradient=sampled&rounds=8&localSteps=3&horizon=20&batch=2&eta=0.1&algorithms=fast-fedpg,fedavg');
    await page.click('#run');
    await page.waitForSelector('#app[data-state="done"], #app[data-state="error"]', { timeout: 60_000 });
    expect(await page.textContent('#error')).toBe('');
    const sps = Number(await page.getAttribute('#throughput', 'data-steps-per-second'));
    expect(sps).toBeGreaterThan(1000);
    expect(Number(await page.getAttribute('.result[data-algorithm="fast-fedpg"]', 'data-rounds'))).toBe(8);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('the page\u2019s WebAssembly computes our exp, log and cos with the bits of src/math (issue 17)', async () => {
    // The .wasm the page loads (as built into the page), run by chromium, against the js reference.
    const wasmFiles = (await readdir(join(out, 'assets'))).filter((f) => f.endsWith('.wasm'));
    expect(wasmFiles.length).toBeGreaterThan(0);
    const { detExp, detLog, detCos } = await import('../src/math/index.js');
    const { agentStream, nextDouble } = await import('../src/rng.js');
    const rng = agentStream(17, 0);
    const args = {
      exp: [0, -0, 709.78, -745.1, NaN, Infinity, -Infinity, ...Array.from({ length: 3000 }, () => 1455 * nextDouble(rng) - 745)],
      log: [0, 5e-324, 1, 2, NaN, Infinity, -1, ...Array.from({ length: 3000 }, () => Math.exp(1400 * nextDouble(rng) - 700))],
      cos: [0, Math.PI, Math.PI / 2, 1e6, NaN, ...Array.from({ length: 3000 }, () => 2 * Math.PI * nextDouble(rng))],
    };
    const words = (xs: number[]) => Array.from(new Uint32Array(Float64Array.from(xs).buffer));
    const { page, errors } = await openPage();
    for (const file of wasmFiles) {
      const got = await page.evaluate(
        async ({ path, inputs }) => {
          const { instance } = await WebAssembly.instantiateStreaming(fetch(path), { env: { abort: () => { throw new Error('abort'); } } });
          const ex = instance.exports as unknown as { memory: WebAssembly.Memory; alloc(n: number): number; mapMath(w: number, x: number, o: number, n: number): void };
          const res: Record<string, number[]> = {};
          for (const [name, which] of [['exp', 0], ['log', 1], ['cos', 2]] as const) {
            const w = inputs[name]!, n = w.length / 2;
            const px = ex.alloc(n * 8), po = ex.alloc(n * 8);
            new Uint32Array(ex.memory.buffer, px, 2 * n).set(w);
            ex.mapMath(which, px, po, n);
            res[name] = Array.from(new Uint32Array(ex.memory.buffer, po, 2 * n));
          }
          return res;
        },
        { path: `assets/${file}`, inputs: { exp: words(args.exp), log: words(args.log), cos: words(args.cos) } },
      );
      expect(got.exp, file).toEqual(words(args.exp.map(detExp)));
      expect(got.log, file).toEqual(words(args.log.map(detLog)));
      expect(got.cos, file).toEqual(words(args.cos.map(detCos)));
    }
    expect(errors).toEqual([]);
    await page.close();
  });

  it('a sampled run in the page equals the same run in Node', async () => {
    // The page's wasm backend (its copy of wasm/*.wasm, agents in Web Workers) against Node: J,
    // an exact evaluation of the final theta, is the same bits as Node's wasm run and agrees with
    // the js run to the solvers' 1e-11 (theta itself is not shown on the page).
    const name = 'random-s6-a3-n4';
    const text = await readFile(join(REPO, 'test', 'fixtures', `${name}.json`), 'utf8');
    const q = { gradient: 'sampled', rounds: '12', localSteps: '4', horizon: '15', batch: '3', eta: '0.5', seed: '7' };
    const { page, errors } = await openPage('?' + new URLSearchParams({ ...q, algorithms: 'fast-fedpg,fedavg', workers: '2' }).toString());
    await page.setInputFiles('#file', { name: `${name}.json`, mimeType: 'application/json', buffer: Buffer.from(text) });
    const alphaG = Number(await page.inputValue('#alphaG'));
    await page.click('#run');
    await page.waitForSelector('#app[data-state="done"], #app[data-state="error"]', { timeout: 60_000 });
    expect(await page.textContent('#error')).toBe('');
    const { train } = await import('../src/federation/train.js');
    const { parseMdp } = await import('../src/mdp/parse.js');
    const { loadBackendByName } = await import('../src/backends/select.js');
    const mdp = parseMdp(JSON.parse(text), name);
    for (const algorithm of ['fast-fedpg', 'fedavg'] as const) {
      const pageJ = Number(await page.getAttribute(`.result[data-algorithm="${algorithm}"]`, 'data-final-j'));
      const settings = { algorithm, gradient: 'sampled' as const, rounds: 12, localSteps: 4, horizon: 15, batch: 3, eta: 0.5, alphaG, seed: 7, workers: 1 };
      const wasm = await train(mdp, { ...settings, backend: await loadBackendByName('wasm') });
      const js = await train(mdp, { ...settings, backend: 'js' });
      expect(Object.is(pageJ, wasm.J[12]), `${algorithm}: page J ${pageJ}, Node wasm J ${wasm.J[12]}`).toBe(true);
      expect(Math.abs(pageJ - js.J[12]!)).toBeLessThan(1e-11);
      expect(Math.abs(pageJ - wasm.J[0]!)).toBeGreaterThan(1e-3); // it trained
    }
    expect(errors).toEqual([]);
    await page.close();
  });

  it('explains a bad upload on the page', async () => {
    const { page } = await openPage();
    await page.setInputFiles('#file', { name: 'broken.json', mimeType: 'application/json', buffer: Buffer.from('{"format": "fedpg-mdp/1", "states": 2,') });
    expect(await page.isChecked('input[name=source][value=upload]')).toBe(true);
    await page.click('#run');
    await page.waitForSelector('#app[data-state="error"]', { timeout: 30_000 });
    expect(await page.isVisible('#error')).toBe(true);
    expect(await page.textContent('#error')).toMatch(/^broken\.json: invalid JSON/);

    const noGamma = { format: 'fedpg-mdp/1', states: 1, actions: 1, initial: [1], transitions: [[[1]]], rewards: [[[0.5]]] };
    await page.setInputFiles('#file', { name: 'no-gamma.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(noGamma)) });
    await page.click('#run');
    await page.waitForFunction(() => document.getElementById('error')?.textContent?.includes('no-gamma.json'), undefined, { timeout: 30_000 });
    expect(await page.textContent('#error')).toMatch(/no-gamma\.json: gamma is missing, not a finite number/);
    expect(await page.getAttribute('#app', 'data-state')).toBe('error');

    // A good upload after the bad ones runs (a 1-state MDP: J* is reached at once).
    const good = { ...noGamma, gamma: 0.5, rewards: [[[0.5]], [[1]]] };
    await page.setInputFiles('#file', { name: 'good.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(good)) });
    await page.fill('#rounds', '3');
    await page.click('#run');
    await page.waitForSelector('#app[data-state="done"]', { timeout: 30_000 });
    expect(await page.isVisible('#error')).toBe(false);
    expect(Number(await page.getAttribute('.result[data-algorithm="fast-fedpg"]', 'data-final-j'))).toBeCloseTo(1.5, 12);
    await page.close();
  });
});
