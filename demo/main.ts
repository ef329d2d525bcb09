/**
 * The demo page: the server of a federation in the page, its agents in Web Workers, the kernels
 * in WebAssembly. Pick an MDP (the gridworld preset or an uploaded fedpg-mdp/1 file) and the
 * algorithms, press Run, and watch J and the optimality gap per round. Results are also exposed
 * as data attributes, for tests and scripts:
 *   #app[data-state]                        loading | ready | running | done | stopped | error
 *   .result[data-algorithm][data-final-gap][data-final-j][data-rounds][data-status]
 *   #throughput[data-steps-per-second]      environment steps per second (sampled gradients)
 */
import {
  Chart,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  LogarithmicScale,
  PointElement,
  Tooltip,
  type ChartDataset,
} from 'chart.js';
import {
  GRID_MOVES,
  algorithmOf,
  InputError,
  Training,
  compileWasmModule,
  gridworldMdp,
  instantiateWasmBackend,
  parseJsonText,
  parseMdp,
  resolveSettings,
  type Algorithm,
  type Mdp,
  type TrainSettings,
  type WasmBackend,
  type WasmModule,
} from '../src/browser.js';
import { WorkerHost, WorkerPool } from './pool.js';

Chart.register(LineController, LineElement, PointElement, LinearScale, LogarithmicScale, Legend, Tooltip);

const COLORS: Record<Algorithm, string> = {
  'fast-fedpg': '#1f6fd0',
  fedavg: '#e8710a',
  centralized: '#188038',
  local: '#8e44ad',
  regfedpg: '#b0174a',
};
const LABELS: Record<Algorithm, string> = {
  'fast-fedpg': 'Fast-FedPG',
  fedavg: 'FedAvg-PG',
  centralized: 'Centralised PG',
  local: 'Local PG',
  regfedpg: 'Entropy-reg. FedAvg',
};
/** Largest upload and largest state space the page runs interactively. */
const MAX_UPLOAD_BYTES = 64 * 1024 * 1024;
const MAX_STATES = 2048;

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page lacks #${id}`);
  return el as T;
};
const app = $('app');
const runButton = $<HTMLButtonElement>('run');
const stopButton = $<HTMLButtonElement>('stop');

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function setState(s: 'loading' | 'ready' | 'running' | 'done' | 'stopped' | 'error'): void {
  app.dataset.state = s;
}

function showError(text: string | null): void {
  const el = $('error');
  el.textContent = text ?? '';
  el.hidden = text === null;
}

function input(id: string): HTMLInputElement {
  return $<HTMLInputElement>(id);
}

function num(id: string, what: string): number {
  const raw = input(id).value.trim();
  const v = Number(raw);
  if (raw === '' || !Number.isFinite(v)) throw new InputError(`${what} must be a number, got "${raw}"`);
  return v;
}

function int(id: string, what: string, min: number, max: number): number {
  const v = num(id, what);
  if (!Number.isInteger(v) || v < min || v > max) throw new InputError(`${what} must be an integer from ${min} to ${max}, got ${v}`);
  return v;
}

// ---------------------------------------------------------------------------------------------
// The MDP

interface Grid {
  width: number;
  height: number;
  /** Goal cells of each agent. */
  goals: number[][];
}

/** R_i <- (1 - h) mean_j R_j + h R_i: h = 0 makes every task the same, h = 1 keeps them apart. */
function mixRewards(mdp: Mdp, h: number): void {
  if (h === 1) return;
  const SA = mdp.states * mdp.actions;
  const mean = new Float64Array(SA);
  for (const r of mdp.rewards) for (let j = 0; j < SA; j++) mean[j] = mean[j]! + r[j]!;
  for (let j = 0; j < SA; j++) mean[j] = mean[j]! / mdp.rewards.length;
  for (const r of mdp.rewards) for (let j = 0; j < SA; j++) r[j] = Math.min(1, Math.max(0, (1 - h) * mean[j]! + h * r[j]!));
}

/** The cells where agent i's best reward sits (for drawing goals of an uploaded gridworld). */
function rewardPeaks(mdp: Mdp): number[][] {
  const A = mdp.actions;
  return mdp.rewards.map((r) => {
    let best = -Infinity;
    for (let j = 0; j < r.length; j++) best = Math.max(best, r[j]!);
    if (!(best > 0)) return [];
    const cells: number[] = [];
    for (let s = 0; s < mdp.states; s++) {
      let m = -Infinity;
      for (let a = 0; a < A; a++) m = Math.max(m, r[s * A + a]!);
      if (m === best) cells.push(s);
    }
    return cells.length <= 4 ? cells : [];
  });
}

async function buildMdp(): Promise<{ mdp: Mdp; grid: Grid | null }> {
  const source = (document.querySelector('input[name=source]:checked') as HTMLInputElement | null)?.value ?? 'preset';
  if (source === 'preset') {
    const width = int('width', 'Width', 2, 32);
    const height = int('height', 'Height', 1, 32);
    const agents = int('agents', 'Agents', 1, Math.min(32, width * height));
    const h = num('heterogeneity', 'Heterogeneity');
    if (h < 0 || h > 1) throw new InputError(`Heterogeneity must be in [0, 1], got ${h}`);
    const slip = num('slip', 'Slip');
    const gamma = num('gamma', 'γ');
    const seed = int('seed', 'Seed', 0, Number.MAX_SAFE_INTEGER);
    const g = gridworldMdp({ width, height, agents, slip, gamma, seed });
    mixRewards(g, h);
    return { mdp: g, grid: { width, height, goals: g.goals.map((c) => [c]) } };
  }
  const file = input('file').files?.[0];
  if (!file) throw new InputError('Choose a fedpg-mdp/1 file to upload, or pick the gridworld preset.');
  if (file.size > MAX_UPLOAD_BYTES) {
    throw new InputError(`${file.name} is ${(file.size / 2 ** 20).toFixed(0)} MB; the demo takes files up to ${MAX_UPLOAD_BYTES / 2 ** 20} MB.`);
  }
  const text = await file.text();
  const mdp = parseMdp(parseJsonText(text, file.name), file.name);
  if (mdp.states > MAX_STATES) {
    throw new InputError(`${file.name}: ${mdp.states} states is more than the demo evaluates interactively (up to ${MAX_STATES}); use the CLI.`);
  }
  const m = /gridworld-(\d+)x(\d+)/.exec(mdp.name ?? '');
  let grid: Grid | null = null;
  if (m && mdp.actions === 4 && Number(m[1]) * Number(m[2]) === mdp.states) {
    grid = { width: Number(m[1]), height: Number(m[2]), goals: rewardPeaks(mdp) };
  }
  return { mdp, grid };
}

// ---------------------------------------------------------------------------------------------
// Charts, result cards, policies

type Point = { x: number; y: number };
let gapChart: Chart<'line', Point[]> | null = null;
let jChart: Chart<'line', Point[]> | null = null;
let redrawPending = false;

function scheduleRedraw(): void {
  if (redrawPending) return;
  redrawPending = true;
  requestAnimationFrame(() => {
    redrawPending = false;
    gapChart?.update('none');
    jChart?.update('none');
  });
}

function lineDataset(label: string, color: string, dash: number[] = []): ChartDataset<'line', Point[]> {
  return { label, data: [], borderColor: color, backgroundColor: color, borderWidth: 2, pointRadius: 0, borderDash: dash, tension: 0 };
}

function makeCharts(algs: Algorithm[], rounds: number, Jstar: number | null): void {
  gapChart?.destroy();
  jChart?.destroy();
  const common = {
    animation: false as const,
    responsive: true,
    maintainAspectRatio: false,
    parsing: false as const,
    normalized: true,
    interaction: { mode: 'nearest' as const, intersect: false },
    plugins: { legend: { position: 'bottom' as const, labels: { usePointStyle: true, pointStyle: 'line' as const } } },
  };
  gapChart = new Chart<'line', Point[]>($<HTMLCanvasElement>('gap-chart'), {
    type: 'line',
    data: { datasets: algs.map((a) => lineDataset(LABELS[a], COLORS[a])) },
    options: {
      ...common,
      scales: {
        x: { type: 'linear', min: 0, max: rounds, title: { display: true, text: 'round' } },
        y: { type: 'logarithmic', title: { display: true, text: 'J* − J' } },
      },
    },
  });
  const jSets = algs.map((a) => lineDataset(LABELS[a], COLORS[a]));
  if (Jstar !== null) {
    const star = lineDataset('J*', '#555', [6, 4]);
    star.data.push({ x: 0, y: Jstar }, { x: rounds, y: Jstar });
    jSets.push(star);
  }
  jChart = new Chart<'line', Point[]>($<HTMLCanvasElement>('j-chart'), {
    type: 'line',
    data: { datasets: jSets },
    options: {
      ...common,
      scales: {
        x: { type: 'linear', min: 0, max: rounds, title: { display: true, text: 'round' } },
        y: { type: 'linear', title: { display: true, text: 'J(θ̄)' } },
      },
    },
  });
}

/** The log scale cannot show gaps at rounding level (or below zero): floor them for the chart only. */
function chartGap(gap: number): number {
  return Math.max(gap, 1e-14);
}

function resultCard(alg: Algorithm): HTMLElement {
  const el = document.createElement('div');
  el.className = 'result';
  el.dataset.algorithm = alg;
  el.dataset.status = 'running';
  el.style.setProperty('--c', COLORS[alg]);
  el.innerHTML = `<h3></h3><div>gap <b class="gap">–</b></div><div>J <b class="j">–</b></div>`;
  el.querySelector('h3')!.textContent = LABELS[alg];
  return el;
}

function updateCard(el: HTMLElement, round: number, J: number, gap: number | null): void {
  el.dataset.rounds = String(round);
  el.dataset.finalJ = String(J);
  el.dataset.finalGap = gap === null ? '' : String(gap);
  el.querySelector('.j')!.textContent = J.toFixed(6);
  el.querySelector('.gap')!.textContent = gap === null ? 'n/a (per-agent kernels)' : gap.toExponential(3);
}

function softmaxRow(row: number[]): number[] {
  const m = Math.max(...row);
  const e = row.map((t) => Math.exp(t - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / z);
}

const GOAL_TINTS = ['#ffd166', '#8bd3c7', '#f4a3a8', '#b5c7f7', '#c9e4a6', '#e3c1f0', '#f7c59f', '#a9def9'];

/** The policy as arrows: at each cell the expected move sum_a pi(a|s) move(a); goals tinted per agent. */
function drawPolicy(canvas: HTMLCanvasElement, grid: Grid, theta: number[][]): void {
  const { width: W, height: H } = grid;
  const cell = Math.max(16, Math.min(48, Math.floor(320 / Math.max(W, H))));
  const dpr = window.devicePixelRatio || 1;
  canvas.width = W * cell * dpr;
  canvas.height = H * cell * dpr;
  canvas.style.width = `${W * cell}px`;
  canvas.style.height = `${H * cell}px`;
  const ctx = canvas.getContext('2d')!;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, W * cell, H * cell);
  grid.goals.forEach((cells, i) => {
    for (const s of cells) {
      const x = s % W, y = Math.floor(s / W);
      ctx.fillStyle = GOAL_TINTS[i % GOAL_TINTS.length]!;
      ctx.fillRect(x * cell, y * cell, cell, cell);
      ctx.fillStyle = '#333';
      ctx.font = `${Math.max(9, cell * 0.28)}px system-ui, sans-serif`;
      ctx.fillText(String(i + 1), x * cell + 3, y * cell + Math.max(9, cell * 0.28));
    }
  });
  ctx.strokeStyle = '#d5d9e0';
  ctx.lineWidth = 1;
  for (let x = 0; x <= W; x++) {
    ctx.beginPath();
    ctx.moveTo(x * cell + 0.5, 0);
    ctx.lineTo(x * cell + 0.5, H * cell);
    ctx.stroke();
  }
  for (let y = 0; y <= H; y++) {
    ctx.beginPath();
    ctx.moveTo(0, y * cell + 0.5);
    ctx.lineTo(W * cell, y * cell + 0.5);
    ctx.stroke();
  }
  ctx.strokeStyle = '#1d2330';
  ctx.fillStyle = '#1d2330';
  ctx.lineWidth = Math.max(1.2, cell / 18);
  for (let s = 0; s < W * H; s++) {
    const pi = softmaxRow(theta[s]!);
    let vx = 0, vy = 0;
    pi.forEach((p, a) => {
      vx += p * GRID_MOVES[a]![0];
      vy += p * GRID_MOVES[a]![1];
    });
    const cx = (s % W) * cell + cell / 2, cy = Math.floor(s / W) * cell + cell / 2;
    const len = Math.hypot(vx, vy);
    if (len < 0.08) {
      ctx.beginPath();
      ctx.arc(cx, cy, cell * 0.06, 0, 2 * Math.PI);
      ctx.fill();
      continue;
    }
    const L = cell * 0.42 * Math.min(1, len);
    const ux = vx / len, uy = vy / len;
    const tx = cx + ux * L, ty = cy + uy * L;
    ctx.beginPath();
    ctx.moveTo(cx - ux * L * 0.6, cy - uy * L * 0.6);
    ctx.lineTo(tx, ty);
    ctx.stroke();
    const hw = cell * 0.12;
    ctx.beginPath();
    ctx.moveTo(tx, ty);
    ctx.lineTo(tx - ux * hw * 1.6 - uy * hw, ty - uy * hw * 1.6 + ux * hw);
    ctx.lineTo(tx - ux * hw * 1.6 + uy * hw, ty - uy * hw * 1.6 - ux * hw);
    ctx.closePath();
    ctx.fill();
  }
}

function policyPanels(algs: Algorithm[], grid: Grid | null): Map<Algorithm, HTMLCanvasElement> {
  const box = $('policies');
  box.replaceChildren();
  const canvases = new Map<Algorithm, HTMLCanvasElement>();
  if (!grid) {
    const p = document.createElement('p');
    p.className = 'muted';
    p.textContent = 'Policy arrows are drawn for gridworlds: the preset, or an uploaded file named gridworld-WxH with 4 actions.';
    box.append(p);
    return canvases;
  }
  for (const a of algs) {
    const fig = document.createElement('div');
    fig.className = 'policy';
    fig.dataset.algorithm = a;
    const h = document.createElement('h3');
    h.textContent = `${LABELS[a]}: learned policy${a === 'local' ? ' (agent 1)' : ''}`;
    const c = document.createElement('canvas');
    fig.append(h, c);
    box.append(fig);
    canvases.set(a, c);
  }
  return canvases;
}

// ---------------------------------------------------------------------------------------------
// Running

let wasmModule: WasmModule | null = null;
let pageBackend: WasmBackend | null = null;
let stopRequested = false;

function selectedAlgorithms(): Algorithm[] {
  return [...document.querySelectorAll<HTMLInputElement>('input[name=algorithm]:checked')].map((el) => el.value as Algorithm);
}

function trainingOptions(): Partial<TrainSettings> {
  const gradient = $<HTMLSelectElement>('gradient').value as TrainSettings['gradient'];
  return {
    gradient,
    rounds: int('rounds', 'Rounds T', 1, 100000),
    localSteps: int('localSteps', 'Local steps H', 1, 1000),
    eta: num('eta', 'Step η'),
    alphaG: num('alphaG', 'Server step α_g'),
    horizon: int('horizon', 'Horizon K', 1, 100000),
    batch: int('batch', 'Batch M', 1, 100000),
    seed: int('seed', 'Seed', 0, Number.MAX_SAFE_INTEGER),
  };
}

async function run(): Promise<void> {
  if (!wasmModule || !pageBackend) return;
  const module = wasmModule, backend = pageBackend;
  showError(null);
  stopRequested = false;
  const hosts: WorkerHost[] = [];
  const runs: { alg: Algorithm; t: Training; card: HTMLElement; gap: Point[]; J: Point[] }[] = [];
  runButton.disabled = true;
  stopButton.disabled = false;
  try {
    const algs = selectedAlgorithms();
    if (algs.length === 0) throw new InputError('Pick at least one algorithm.');
    const { mdp, grid } = await buildMdp();
    const base = trainingOptions();
    // Validates every field (InputError names it) before any worker starts.
    const settings = algs.map((algorithm) => resolveSettings({ ...base, algorithm }));
    setState('running');
    const nWorkers = Math.min(int('workers', 'Workers', 1, 16), mdp.rewards.length);
    for (let w = 0; w < nWorkers; w++) {
      hosts.push(new WorkerHost(new Worker(new URL('./worker.ts', import.meta.url), { type: 'module', name: `agents-${w}` }), module));
    }
    await Promise.all(hosts.map((h) => h.ready));
    $('results').replaceChildren();
    for (const s of settings) {
      const t = await Training.create(mdp, { ...s, backend, pool: (_agents, st) => new WorkerPool(hosts, s.algorithm, mdp, st) });
      const card = resultCard(s.algorithm);
      $('results').append(card);
      runs.push({ alg: s.algorithm, t, card, gap: [], J: [] });
    }
    const Jstar = runs[0]!.t.header.Jstar;
    $('jstar').textContent = Jstar === null ? 'n/a (per-agent kernels)' : Jstar.toFixed(6);
    app.dataset.jstar = Jstar === null ? '' : String(Jstar);
    const T = settings[0]!.rounds;
    makeCharts(algs, T, Jstar);
    runs.forEach((r, k) => {
      const J0 = r.t.header.J0;
      gapChart!.data.datasets[k]!.data = r.gap;
      jChart!.data.datasets[k]!.data = r.J;
      r.J.push({ x: 0, y: J0 });
      if (Jstar !== null) r.gap.push({ x: 0, y: chartGap(Jstar - J0) });
      updateCard(r.card, 0, J0, Jstar === null ? null : Jstar - J0);
    });
    const canvases = policyPanels(algs, grid);
    const draw = (): void => {
      if (!grid) return;
      for (const r of runs) {
        const res = r.t.result();
        const theta = res.theta ?? res.thetas?.[0];
        if (theta) drawPolicy(canvases.get(r.alg)!, grid, theta);
      }
    };
    draw();
    scheduleRedraw();
    const N = mdp.rewards.length;
    const started = performance.now();
    let lastPolicy = started;
    let round = 0;
    while (round < T && !stopRequested) {
      const recs = await Promise.all(runs.map((r) => r.t.step()));
      round++;
      let envSteps = 0;
      let gradSteps = 0;
      recs.forEach((rec, k) => {
        const r = runs[k]!;
        r.J.push({ x: rec.round, y: rec.J });
        if (rec.gap !== null) r.gap.push({ x: rec.round, y: chartGap(rec.gap) });
        updateCard(r.card, rec.round, rec.J, rec.gap);
        envSteps += rec.steps;
        gradSteps += rec.round * N * algorithmOf(r.alg).localSteps(settings[k]!);
      });
      const secs = (performance.now() - started) / 1000;
      const sps = envSteps / secs;
      $('round').textContent = String(round);
      $('throughput').dataset.stepsPerSecond = String(sps);
      $('sps').textContent = settings[0]!.gradient === 'exact' ? '0 (exact gradients sample nothing)' : sps.toExponential(2);
      $('gps').textContent = (gradSteps / secs).toFixed(0);
      scheduleRedraw();
      if (performance.now() - lastPolicy > 250) {
        lastPolicy = performance.now();
        draw();
      }
    }
    draw();
    for (const r of runs) r.card.dataset.status = stopRequested ? 'stopped' : 'done';
    gapChart?.update('none');
    jChart?.update('none');
    setState(stopRequested ? 'stopped' : 'done');
  } catch (e) {
    for (const r of runs) r.card.dataset.status = 'error';
    showError(e instanceof InputError ? e.message : `The run failed: ${message(e)}`);
    setState('error');
  } finally {
    await Promise.allSettled(runs.map((r) => r.t.close()));
    hosts.forEach((h) => h.terminate());
    runButton.disabled = false;
    stopButton.disabled = true;
  }
}

// ---------------------------------------------------------------------------------------------
// Wiring

function syncSource(): void {
  const preset = (document.querySelector('input[name=source]:checked') as HTMLInputElement | null)?.value !== 'upload';
  for (const el of $('preset-fields').querySelectorAll('input')) el.disabled = !preset;
}

/** ?rounds=50&gradient=sampled&autorun=1 fills the form (and runs) from the address. */
function applyQuery(): boolean {
  const q = new URLSearchParams(location.search);
  for (const [k, v] of q) {
    const el = document.getElementById(k);
    if (el instanceof HTMLInputElement || el instanceof HTMLSelectElement) el.value = v;
  }
  const algs = q.get('algorithms');
  if (algs) {
    const want = new Set(algs.split(','));
    for (const el of document.querySelectorAll<HTMLInputElement>('input[name=algorithm]')) el.checked = want.has(el.value);
  }
  return q.get('autorun') === '1';
}

async function boot(): Promise<void> {
  $('controls').addEventListener('submit', (ev) => {
    ev.preventDefault();
    void run();
  });
  stopButton.addEventListener('click', () => {
    stopRequested = true;
  });
  for (const el of document.querySelectorAll('input[name=source]')) el.addEventListener('change', syncSource);
  input('file').addEventListener('change', () => {
    const up = document.querySelector<HTMLInputElement>('input[name=source][value=upload]')!;
    up.checked = true;
    syncSource();
  });
  const autorun = applyQuery();
  syncSource();
  try {
    if (typeof WebAssembly !== 'object') throw new Error('this browser has no WebAssembly');
    if (typeof Worker !== 'function') throw new Error('this browser has no Web Workers');
    wasmModule = await compileWasmModule();
    pageBackend = await instantiateWasmBackend(wasmModule);
    app.dataset.simd = String(pageBackend.simd);
    $('engine').textContent = `WebAssembly ${pageBackend.simd ? 'SIMD' : 'scalar'} build · ${navigator.hardwareConcurrency ?? '?'} logical cores · agents run in Web Workers.`;
    runButton.disabled = false;
    setState('ready');
    if (autorun) void run();
  } catch (e) {
    $('engine').textContent = 'The WebAssembly module could not be loaded.';
    showError(`Cannot start: ${message(e)}`);
    setState('error');
  }
}

void boot();
