#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { createRequire } from 'node:module';
import { BackendUnavailableError } from '../errors.js';
import { InputError, UsageError } from '../errors.js';
import { displayName } from '../mdp/display.js';
import { AgentFailure } from '../federation/faults.js';
import { evaluateCommand } from './commands/evaluate.js';
import { experimentCommand } from './commands/experiment.js';
import { generateCommand } from './commands/generate.js';
import { plotCommand } from './commands/plot.js';
import { runCommand } from './commands/run.js';
import { trainCommand } from './commands/train.js';
import { serveCommand } from './commands/serve.js';
import { agentCommand } from './commands/agent.js';
import { splitCommand } from './commands/split.js';

/**
 * fedpg: a thin layer over the library. Exit codes: 0 done, 1 bad input (a file, a value, an
 * unavailable backend), 2 bad usage (unknown or missing flag or command). User mistakes print
 * one line, never a stack trace.
 */

const version = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;

export function buildProgram(): Command {
  const program = new Command()
    .name('fedpg')
    .description('Federated and multi-task policy gradient for tabular MDPs: Fast-FedPG, FedAvg-PG and baselines')
    .version(version)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    // Options after a command belong to it (so `experiment merge DIR --out X` reaches merge).
    .enablePositionalOptions()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  generateCommand(program);
  evaluateCommand(program);
  trainCommand(program);
  runCommand(program);
  splitCommand(program);
  serveCommand(program);
  agentCommand(program);
  experimentCommand(program);
  plotCommand(program);
  for (const c of program.commands) c.exitOverride().showHelpAfterError('(run with --help for usage)');
  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv, { from: 'user' });
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

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
