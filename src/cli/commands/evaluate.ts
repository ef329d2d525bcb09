import type { Command } from 'commander';
import { evaluatePolicy } from '../../evaluate.js';
import { loadTheta } from '../../mdp/format.js';
import { addMemoryBudgetFlag, addRescaleFlag, loadMdpWithFlags, rewardMapLines, withRewardMap } from '../mdp-flags.js';
import { backendChoice, int, printJson } from '../flags.js';

/** States up to which the text output lists the greedy optimal policy (the JSON always has it). */
export const POLICY_STAR_TEXT_MAX_STATES = 30;

/** policy* as text, one action per state (per agent with per-agent kernels); nothing for large S. */
export function policyStarLines(p: number[] | number[][], S: number): string[] {
  if (S > POLICY_STAR_TEXT_MAX_STATES) return [`policy*      (${S} states: see --json policyStar)`];
  if (p.length && Array.isArray(p[0])) return (p as number[][]).map((a, i) => `policy*[${i}]${' '.repeat(Math.max(1, 4 - String(i).length))}${a.join(' ')}   (agent ${i}'s own MDP: greedy optimal action per state)`);
  return [`policy*      ${(p as number[]).join(' ')}   (greedy optimal action per state of the average MDP)`];
}

export function evaluateCommand(program: Command): void {
  const cmd = program
    .command('evaluate')
    .description('exact J, V, Q, gradients (and with --horizon the K-truncated ones) of a policy, and J*, V* and a greedy optimal policy (policyStar) of the average MDP')
    .argument('<mdp>', 'a fedpg-mdp/1 file (JSON or .npz)')
    .option('--theta <file>', 'theta: an S x A JSON array, or an object with a "theta" field (default: zeros)')
    .option('--horizon <K>', 'also report J_K and grad_K for this truncation horizon')
    .option('--backend <name>', 'auto, native, wasm or js (default: $FEDPG_BACKEND, then auto)')
    .option('--json', 'print one JSON object');
  addMemoryBudgetFlag(addRescaleFlag(cmd))
    .action(async (file: string, o: { theta?: string; horizon?: string; backend?: string; json?: boolean; rescaleRewards?: boolean }) => {
      const loaded = loadMdpWithFlags(file, o);
      const mdp = loaded.mdp;
      const theta = o.theta ? loadTheta(o.theta, mdp.states, mdp.actions) : new Float64Array(mdp.states * mdp.actions);
      const horizon = int('horizon', o.horizon, 1);
      const report = await evaluatePolicy(mdp, theta, { horizon, backend: backendChoice(o.backend) });
      if (o.json) return printJson(withRewardMap(report, loaded));
      const lines = [
        `backend      ${report.backend}`,
        `agents       ${mdp.rewards.length}, states ${mdp.states}, actions ${mdp.actions}, gamma ${mdp.gamma}`,
        `J (mean)     ${report.Javg}`,
        ...report.J.map((j, i) => `J[${i}]${' '.repeat(Math.max(1, 8 - String(i).length))}${j}`),
      ];
      if (report.Jstar !== undefined) lines.push(`J*           ${report.Jstar}`, `gap          ${report.Jstar - report.Javg}`);
      const gn = report.gradAvg.flat().reduce((s, v) => s + v * v, 0);
      lines.push(`|grad J|^2   ${gn}`);
      lines.push(...policyStarLines(report.policyStar, mdp.states));
      if (report.JK) lines.push(`J_K (K=${report.K}) ${report.JK.reduce((s, v) => s + v, 0) / report.JK.length} (mean)`);
      lines.push(...rewardMapLines(loaded));
      process.stdout.write(lines.join('\n') + '\n');
    });
}
