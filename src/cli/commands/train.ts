import type { Command } from 'commander';
import { ALGORITHMS, DEFAULT_SETTINGS, type TrainSettings } from '../../federation/settings.js';
import { loadMdp, loadTheta } from '../../mdp/format.js';
import { backendChoice, int, num, oneOf, printJson } from '../flags.js';
import { trainWithLog } from '../session.js';

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
  correction?: string;
  entropy?: string;
  backend?: string;
  theta0?: string;
  out?: string;
  json?: boolean;
}

/** The run flags shared by train, run (and later serve). */
export function addRunFlags(cmd: Command, withAlgorithm = true): Command {
  const d = DEFAULT_SETTINGS;
  if (withAlgorithm) cmd.option('--algorithm <name>', `${ALGORITHMS.join(' | ')} (default ${d.algorithm})`);
  return cmd
    .option('--rounds <T>', `communication rounds (default ${d.rounds})`)
    .option('--local-steps <H>', `local steps per round (default ${d.localSteps})`)
    .option('--eta <x>', `local step size (default ${d.eta})`)
    .option('--alpha-g <x>', `server step size in (0,1] (default ${d.alphaG})`)
    .option('--gradient <mode>', `exact | sampled (default ${d.gradient})`)
    .option('--horizon <K>', `estimator horizon (default ${d.horizon})`)
    .option('--batch <M>', `trajectories per estimate (default ${d.batch})`)
    .option('--seed <n>', `run seed (default ${d.seed})`)
    .option('--correction <kind>', `fast-fedpg: memory (Algorithm 1) | fresh (a new g_i(theta_bar) each round: an ablation) (default ${d.correction})`)
    .option('--entropy <tau>', `entropy weight for regfedpg (required there) or fast-fedpg (default ${d.entropy})`)
    .option('--backend <name>', 'auto | native | wasm | js (default: $FEDPG_BACKEND, then auto)')
    .option('--theta0 <file>', 'initial theta: S x A JSON array or an object with "theta" (default zeros)');
}

export function settingsFromFlags(o: RunFlags): Partial<TrainSettings> {
  const s: Partial<TrainSettings> = {};
  const set = <K extends keyof TrainSettings>(k: K, v: TrainSettings[K] | undefined): void => {
    if (v !== undefined) s[k] = v;
  };
  set('algorithm', oneOf('algorithm', o.algorithm, ALGORITHMS));
  set('rounds', int('rounds', o.rounds, 0));
  set('localSteps', int('local-steps', o.localSteps, 1));
  set('eta', num('eta', o.eta));
  set('alphaG', num('alpha-g', o.alphaG));
  set('gradient', oneOf('gradient', o.gradient, ['exact', 'sampled'] as const));
  set('horizon', int('horizon', o.horizon, 1));
  set('batch', int('batch', o.batch, 1));
  set('seed', int('seed', o.seed, 0));
  set('correction', oneOf('correction', o.correction, ['memory', 'fresh'] as const));
  set('entropy', num('entropy', o.entropy));
  return s;
}

export function trainCommand(program: Command): void {
  const cmd = program
    .command('train')
    .description('train one policy for all agents of an MDP file and report J, the gap and the final theta')
    .argument('<mdp>', 'a fedpg-mdp/1 file');
  addRunFlags(cmd)
    .option('--out <file>', 'round log (JSONL): a header line, then one record per finished round')
    .option('--json', 'print one JSON object (no progress bar)')
    .action(async (file: string, o: RunFlags) => {
      const mdp = loadMdp(file);
      const settings = { ...DEFAULT_SETTINGS, ...settingsFromFlags(o) };
      const theta0 = o.theta0 ? loadTheta(o.theta0, mdp.states, mdp.actions) : undefined;
      const runOpts: Parameters<typeof trainWithLog>[2] = { progress: !o.json, label: settings.algorithm };
      const backend = backendChoice(o.backend);
      if (backend) runOpts.backend = backend;
      if (theta0) runOpts.theta0 = theta0;
      if (o.out) runOpts.out = o.out;
      const result = await trainWithLog(mdp, settings, runOpts);
      if (o.json) return printJson(result);
      const last = result.records[result.records.length - 1];
      const lines = [
        `${result.algorithm} on ${file} (${result.settings.agents} agents, backend ${result.backend}, ${result.gradient} gradients)`,
        `J before: ${result.J[0]}`,
        `J after ${result.records.length} rounds: ${result.J[result.J.length - 1]}`,
      ];
      if (result.Jstar !== null) lines.push(`J*: ${result.Jstar}`, `gap: ${last ? last.gap : result.Jstar - result.J[0]!}`);
      if (last) lines.push(`trajectories ${last.trajectories}, steps ${last.steps}, bytes ${last.bytes}`);
      if (o.out) lines.push(`round log: ${o.out}`);
      process.stdout.write(lines.join('\n') + '\n');
    });
}
