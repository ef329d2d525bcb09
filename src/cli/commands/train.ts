import type { Command } from 'commander';
import { InputError } from '../../errors.js';
import { algorithmNames, algorithmOf, refuseForeignOptions } from '../../federation/algorithms/registry.js';
import { DEFAULT_SETTINGS, resolveSettings, type TrainSettings } from '../../federation/settings.js';
import { displayName } from '../../mdp/display.js';
import { loadTheta } from '../../mdp/format.js';
import { addMemoryBudgetFlag, addRescaleFlag, loadMdpWithFlags, rewardMapLines, withRewardMap } from '../mdp-flags.js';
import { parseWorkers } from '../../federation/workers/plan.js';
import { backendChoice, int, num, oneOf, printJson } from '../flags.js';
import { trainWithLog, type RuntimeFlags, type SessionOptions } from '../session.js';
import { parseSeedCount } from '../seeds.js';
import { trainSeeds } from '../seeds-commands.js';

/** The CLI's default per-phase limit with worker threads (the library's default is none). */
export const DEFAULT_ROUND_TIMEOUT_MS = 600_000;
export const DEFAULT_CHECKPOINT_EVERY = 10;

export interface RunFlags {
  algorithm?: string;
  rounds?: string;
  localSteps?: string;
  eta?: string;
  alphaG?: string;
  gradient?: string;
  horizon?: string;
  batch?: string;
  seed?: string;
  serverSeed?: string;
  correction?: string;
  entropy?: string;
  proxMu?: string;
  serverMomentum?: string;
  momentumBeta?: string;
  isClip?: string;
  participation?: string;
  byzantine?: string;
  attack?: string;
  aggregation?: string;
  personalize?: string;
  topology?: string;
  dpClip?: string;
  dpNoise?: string;
  dpDelta?: string;
  backend?: string;
  theta0?: string;
  out?: string;
  json?: boolean;
  workers?: string;
  retry?: string;
  roundTimeout?: string;
  checkpoint?: string;
  checkpointEvery?: string;
  fresh?: boolean;
  rescaleRewards?: boolean;
  evalEvery?: string;
}

/**
 * The training settings' flags, shared by train, run and serve. `algorithms`: the choices this
 * command takes (null: the command fixes the algorithm itself).
 */
export function addSettingsFlags(cmd: Command, algorithms: readonly string[] | null = algorithmNames(), defaults: Partial<typeof DEFAULT_SETTINGS> = {}): Command {
  const d = { ...DEFAULT_SETTINGS, ...defaults };
  if (algorithms) cmd.option('--algorithm <name>', `${algorithms.join(' | ')} (default ${d.algorithm})`);
  return cmd
    .option('--rounds <T>', `communication rounds (default ${d.rounds})`)
    .option('--local-steps <H>', `local steps per round (default ${d.localSteps})`)
    .option('--eta <x>', `local step size (default ${d.eta})`)
    .option('--alpha-g <x>', `server step size in (0,1] (default ${d.alphaG})`)
    .option('--gradient <mode>', `exact | sampled (default ${d.gradient}; fednpg: exact, its only form)`)
    .option('--horizon <K>', `estimator horizon (default ${d.horizon})`)
    .option('--batch <M>', `trajectories per estimate (default ${d.batch})`)
    .option('--seed <n>', `the agents' seed: agent i samples from agentStream(seed, i) (default ${d.seed})`)
    .option('--server-seed <n>', "the server's own draws: participation, random graphs (default: --seed)")
    .option('--correction <kind>', `fast-fedpg: memory (Algorithm 1) | fresh (a new g_i(theta_bar) each round: an ablation) (default ${d.correction})`)
    .option('--entropy <tau>', `entropy weight for regfedpg (required there) or fast-fedpg (default ${d.entropy})`)
    .option('--prox-mu <mu>', `fedprox: proximal weight MU >= 0 (default ${d.proxMu})`)
    .option('--server-momentum <beta>', `fedavgm: server momentum BETA in [0, 1) (default ${d.serverMomentum})`)
    .option('--participation <P>', 'fraction of agents the server draws each round, in (0, 1] (default 1; not for local)')
    .option('--byzantine <F>', 'simulated hostile agents 0..F-1 (default 0; needs --attack)')
    .option('--attack <kind>', 'what hostile agents send: signflip | zero | gaussian:SIGMA')
    .option('--aggregation <rule>', 'the server\'s rule: mean | median | trimmed:B | krum:F | geomed (default mean)')
    .option('--personalize <kind>', 'personal policies beside the global one: ditto:LAMBDA (eta * LAMBDA < 1)')
    .option('--momentum-beta <beta>', `fedsvrpg-m: momentum BETA in (0, 1] (default ${d.momentumBeta})`)
    .option('--is-clip <C>', `fedsvrpg-m: importance weights clipped to [1/C, C], 0 for none (default ${d.isClip})`)
    .option('--topology <graph>', 'fednpg: complete | ring | er:P (default complete); fednpg takes exact gradients only, its default')
    .option('--dp-clip <C>', 'differential privacy: clip every vector an agent sends to norm C (default 0: off)')
    .option('--dp-noise <sigma>', 'differential privacy: add N(0, (SIGMA C)^2) noise per entry (needs --dp-clip)')
    .option('--dp-delta <D>', `the delta of the reported (epsilon, delta) guarantee (default ${d.dpDelta})`)
    .option('--theta0 <file>', 'initial theta: S x A JSON array or an object with "theta" (default zeros)');
}

/** The run flags of train and run: the settings, plus the backend and the in-process runtime's. */
export function addRunFlags(cmd: Command, withAlgorithm = true, defaults: Partial<typeof DEFAULT_SETTINGS> = {}): Command {
  // A command with its own defaults (run) shows them, not the library's.
  return addSettingsFlags(cmd, withAlgorithm ? algorithmNames() : null, defaults)
    .option('--backend <name>', 'auto | native | wasm | js (default: $FEDPG_BACKEND, then auto)')
    .option('--workers <W>', 'threads running the agents: auto (the cores; in-process when too small to gain) or a count, 1 = in-process (default auto)')
    .option('--checkpoint <file>', 'save the run here as it goes and resume from it when it exists')
    .option('--checkpoint-every <R>', `rounds between checkpoints (default ${DEFAULT_CHECKPOINT_EVERY}; also after the last round and on Ctrl-C)`)
    .option('--fresh', 'ignore an existing --checkpoint file and start over')
    .option('--retry <n>', 'rerun a failed agent round up to n times on a fresh worker from its saved state (default 0)')
    .option('--eval-every <R>', 'evaluate theta_bar exactly every R rounds and after the last (others log null); auto: every round for exact gradients and S <= 2048, else a cadence keeping evaluation near 10% of the run (default auto)')
    .option('--round-timeout <ms>', `with worker threads, the longest one phase of a round may take (default ${DEFAULT_ROUND_TIMEOUT_MS}; 0: no limit)`);
}

/** The runtime flags (--workers, --checkpoint, ...) as session options. */
export function runtimeFromFlags(o: RunFlags): RuntimeFlags {
  const r: RuntimeFlags = {};
  const workers = parseWorkers('workers', o.workers) ?? 'auto';
  r.workers = workers;
  r.retry = int('retry', o.retry, 0) ?? 0;
  r.roundTimeout = int('round-timeout', o.roundTimeout, 0) ?? DEFAULT_ROUND_TIMEOUT_MS;
  if (o.checkpoint !== undefined) {
    if (o.checkpoint === '') throw new InputError('--checkpoint needs a file name');
    r.checkpoint = o.checkpoint;
  }
  const every = int('checkpoint-every', o.checkpointEvery, 1);
  if (every !== undefined && o.checkpoint === undefined) throw new InputError('--checkpoint-every needs --checkpoint <file>');
  r.checkpointEvery = every ?? DEFAULT_CHECKPOINT_EVERY;
  if (o.fresh) r.fresh = true;
  if (o.evalEvery !== undefined && o.evalEvery !== 'auto') r.evalEvery = int('eval-every', o.evalEvery, 1)!;
  return r;
}

export function settingsFromFlags(o: RunFlags): Partial<TrainSettings> {
  const s: Partial<TrainSettings> = {};
  const set = <K extends keyof TrainSettings>(k: K, v: TrainSettings[K] | undefined): void => {
    if (v !== undefined) s[k] = v;
  };
  set('algorithm', oneOf('algorithm', o.algorithm, algorithmNames()));
  set('rounds', int('rounds', o.rounds, 0));
  set('localSteps', int('local-steps', o.localSteps, 1));
  set('eta', num('eta', o.eta));
  set('alphaG', num('alpha-g', o.alphaG));
  set('gradient', oneOf('gradient', o.gradient, ['exact', 'sampled'] as const));
  set('horizon', int('horizon', o.horizon, 1));
  set('batch', int('batch', o.batch, 1));
  set('seed', int('seed', o.seed, 0));
  set('serverSeed', int('server-seed', o.serverSeed, 0));
  set('correction', oneOf('correction', o.correction, ['memory', 'fresh'] as const));
  set('entropy', num('entropy', o.entropy));
  set('proxMu', num('prox-mu', o.proxMu));
  set('serverMomentum', num('server-momentum', o.serverMomentum));
  set('momentumBeta', num('momentum-beta', o.momentumBeta));
  set('isClip', num('is-clip', o.isClip));
  set('participation', num('participation', o.participation));
  set('byzantine', int('byzantine', o.byzantine, 0));
  set('attack', o.attack);
  set('aggregation', o.aggregation);
  set('personalize', o.personalize);
  set('topology', o.topology);
  set('dpClip', num('dp-clip', o.dpClip));
  set('dpNoise', num('dp-noise', o.dpNoise));
  set('dpDelta', num('dp-delta', o.dpDelta));
  // A flag that belongs to another algorithm is refused even at its default value.
  refuseForeignOptions(algorithmOf(s.algorithm ?? DEFAULT_SETTINGS.algorithm), Object.keys(s) as (keyof TrainSettings)[]);
  return s;
}

/** The defined fields only (exactOptionalPropertyTypes: an absent option is not `undefined`). */
export function optional<T extends Record<string, unknown>>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]?: Exclude<T[K], undefined> };
}

/** The runtime line of the text summary: how the agents ran, and where the run resumed from. */
export function runtimeLine(why: string, resumedAt: number | null, checkpoint?: string): string {
  return `runtime: ${why}${resumedAt !== null ? `; resumed from ${checkpoint} at round ${resumedAt}` : ''}`;
}

export function trainCommand(program: Command): void {
  const cmd = program
    .command('train')
    .description('train one policy for all agents of an MDP file and report J, the gap and the final theta')
    .argument('<mdp>', 'a fedpg-mdp/1 file (JSON or .npz)');
  addMemoryBudgetFlag(addRescaleFlag(cmd));
  addRunFlags(cmd)
    .option('--out <file>', 'round log (JSONL): a header line, then one record per finished round')
    .option('--json', 'print one JSON object (no progress bar)')
    .option('--seeds <N>', 'train seeds S..S+N-1 in parallel (one thread per seed, --workers threads; --out LOG writes LOG.seedK per seed): mean ± standard error; --json: every seed\'s result and the summary')
    .action(async (file: string, o: RunFlags & { seeds?: string }) => {
      const loaded = loadMdpWithFlags(file, o);
      const mdp = loaded.mdp;
      const settings = resolveSettings(settingsFromFlags(o));
      const theta0 = o.theta0 ? loadTheta(o.theta0, mdp.states, mdp.actions) : undefined;
      const seeds = parseSeedCount(o.seeds);
      if (seeds !== undefined) return trainSeeds(file, mdp, settings, { seeds, runtime: runtimeFromFlags(o), json: !!o.json, ...optional({ backend: backendChoice(o.backend), theta0, out: o.out }) });
      const runOpts: SessionOptions = { progress: !o.json, label: settings.algorithm, ...runtimeFromFlags(o) };
      const backend = backendChoice(o.backend);
      if (backend) runOpts.backend = backend;
      if (theta0) runOpts.theta0 = theta0;
      if (o.out) runOpts.out = o.out;
      const { result, workersWhy, resumedAt } = await trainWithLog(mdp, settings, runOpts);
      if (o.json) return printJson(withRewardMap(result, loaded));
      const last = result.records[result.records.length - 1];
      const lines = [
        `${result.algorithm} on ${displayName(file)} (${result.settings.agents} agents, backend ${result.backend}, ${result.gradient} gradients)`,
        `J before: ${result.J[0]}`,
        `J after ${result.records.length} rounds: ${result.J[result.J.length - 1]}`,
      ];
      if (result.Jstar !== null) lines.push(`J*: ${result.Jstar}`, `gap: ${last ? last.gap : result.Jstar - result.J[0]!}`);
      if (last) lines.push(`trajectories ${last.trajectories}, steps ${last.steps}, bytes ${last.bytes}`);
      lines.push(...rewardMapLines(loaded), runtimeLine(workersWhy, resumedAt, runOpts.checkpoint));
      if (runOpts.checkpoint) lines.push(`checkpoint: ${runOpts.checkpoint}`);
      if (o.out) lines.push(`round log: ${o.out}`);
      process.stdout.write(lines.join('\n') + '\n');
    });
}
