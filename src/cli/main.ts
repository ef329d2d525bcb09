#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { createRequire } from 'node:module';
import { BackendUnavailableError } from '../errors.js';
import { InputError, UsageError } from '../errors.js';
import { displayName } from '../mdp/display.js';
import { AgentFailure } from '../federation/faults.js';

/**
 * fedpg: a thin layer over the library. Exit codes: 0 done, 1 bad input (a file, a value, an
 * unavailable backend), 2 bad usage (unknown or missing flag or command). User mistakes print
 * one line, never a stack trace.
 */

const version = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;

/**
 * The commands in help order, each module imported only when it is needed: `fedpg NAME ...`
 * loads NAME's alone, anything else (help, a mistyped name) loads them all. Loading every
 * command's modules (the network stack, plotting, the experiments) took about 0.2 s of CPU at
 * start-up, a tenth of `fedpg evaluate` on a 300 x 300 gridworld.
 */
const COMMANDS: [name: string, load: () => Promise<(program: Command) => void>][] = [
  ['generate', async () => (await import('./commands/generate.js')).generateCommand],
  ['evaluate', async () => (await import('./commands/evaluate.js')).evaluateCommand],
  ['train', async () => (await import('./commands/train.js')).trainCommand],
  ['run', async () => (await import('./commands/run.js')).runCommand],
  ['split', async () => (await import('./commands/split.js')).splitCommand],
  ['serve', async () => (await import('./commands/serve.js')).serveCommand],
  ['agent', async () => (await import('./commands/agent.js')).agentCommand],
  ['experiment', async () => (await import('./commands/experiment.js')).experimentCommand],
  ['plot', async () => (await import('./commands/plot.js')).plotCommand],
];

/** The program with every command, or with `only` (a command's name) alone. */
export async function buildProgram(only?: string): Promise<Command> {
  const program = new Command()
    .name('fedpg')
    .description('Federated and multi-task policy gradient for tabular MDPs: Fast-FedPG, FedAvg-PG and baselines')
    .version(version)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    // Options after a command belong to it (so `experiment merge DIR --out X` reaches merge).
    .enablePositionalOptions()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  for (const [name, load] of COMMANDS) if (only === undefined || name === only) (await load())(program);
  for (const c of program.commands) c.exitOverride().showHelpAfterError('(run with --help for usage)');
  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    const only = COMMANDS.some(([name]) => name === argv[0]) ? argv[0] : undefined;
    await (await buildProgram(only)).parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version exit 0; every other commander error is a usage error.
      return e.exitCode === 0 || e.code === 'commander.helpDisplayed' || e.code === 'commander.version' ? 0 : 2;
    }
    if (e instanceof UsageError) {
      process.stderr.write(`fedpg: ${e.message}\n`);
      return 2;
    }
    if (e instanceof InputError || e instanceof BackendUnavailableError || e instanceof AgentFailure) {
      // Messages quote paths and values from files: escaped, so no control character reaches the terminal.
      process.stderr.write(`fedpg: error: ${displayName(e.message)}\n`);
      return 1;
    }
    if (e instanceof Error && e.message.startsWith('interrupted')) {
      process.stderr.write(`fedpg: ${e.message}\n`);
      return 130;
    }
    process.stderr.write(`fedpg: internal error (please report it): ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return 1;
  }
}

// A reader that stops early (`fedpg run --json | head`) closes the pipe: stop quietly, as Unix
// tools do on SIGPIPE, instead of an unhandled 'error' event with a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    process.exit(0);
  });
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
