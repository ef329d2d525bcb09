import type { Command } from 'commander';
import { InputError } from '../../errors.js';
import { evaluatePolicyArrays, policyReport, type PolicyArrays } from '../../evaluate.js';
import { npzArrayParts, type NpzMember } from '../../mdp/npz.js';
import { writeFileAtomic } from '../../util/atomic.js';
import { loadTheta } from '../../mdp/format.js';
import { addMemoryBudgetFlag, addRescaleFlag, loadMdpWithFlags, rewardMapLines, withRewardMap } from '../mdp-flags.js';
import { backendChoice, int, printJson } from '../flags.js';

/** States up to which the text output lists the greedy optimal policy (the JSON always has it). */
export const POLICY_STAR_TEXT_MAX_STATES = 30;

/** policy* as text, one action per state (per agent with per-agent kernels); nothing for large S. */
export function policyStarLines(r: Pick<PolicyArrays, 'policyStar' | 'perAgentPolicyStar'>, S: number): string[] {
  if (S > POLICY_STAR_TEXT_MAX_STATES) return [`policy*      (${S} states: see --json policyStar)`];
  if (r.perAgentPolicyStar) {
    const n = r.policyStar.length / S;
    return Array.from({ length: n }, (_, i) => `policy*[${i}]${' '.repeat(Math.max(1, 4 - String(i).length))}${r.policyStar.subarray(i * S, (i + 1) * S).join(' ')}   (agent ${i}'s own MDP: greedy optimal action per state)`);
  }
  return [`policy*      ${r.policyStar.join(' ')}   (greedy optimal action per state of the average MDP)`];
}

/** Table entries (S*A) above which `evaluate --json` needs --out FILE.npz for its arrays. */
export const JSON_ARRAY_LIMIT = 100_000;

/** The report's arrays as .npz members (float64; policyStar int32), with numpy shapes: views, no copies. */
export function reportArrays(r: PolicyArrays): NpzMember[] {
  const S = r.states, A = r.actions, N = r.J.length;
  const out: NpzMember[] = [];
  if (r.V) out.push({ name: 'V', data: r.V, shape: [S] });
  if (r.Q) out.push({ name: 'Q', data: r.Q, shape: [S, A] });
  out.push({ name: 'grad', data: r.grad, shape: [N, S, A] });
  out.push({ name: 'gradAvg', data: r.gradAvg, shape: [S, A] });
  if (r.Vstar) out.push({ name: 'Vstar', data: r.Vstar, shape: [S] });
  out.push({ name: 'policyStar', data: r.policyStar, shape: r.perAgentPolicyStar ? [N, S] : [S] });
  if (r.gradK) out.push({ name: 'gradK', data: r.gradK, shape: [N, S, A] });
  return out;
}

/** The report's scalars (what `--json` prints beside `--out`), in the order of the full report. */
export function reportScalars(r: PolicyArrays): Record<string, unknown> {
  const out: Record<string, unknown> = { backend: r.backend, J: Array.from(r.J), Javg: r.Javg, JstarPerAgent: Array.from(r.JstarPerAgent) };
  if (r.Jstar !== undefined) out.Jstar = r.Jstar;
  if (r.K !== undefined) {
    out.K = r.K;
    out.JK = Array.from(r.JK!);
  }
  return out;
}

export function evaluateCommand(program: Command): void {
  const cmd = program
    .command('evaluate')
    .description('exact J, V, Q, gradients (and with --horizon the K-truncated ones) of a policy, and J*, V* and a greedy optimal policy (policyStar) of the average MDP')
    .argument('<mdp>', 'a fedpg-mdp/1 file (JSON or .npz)')
    .option('--theta <file>', 'theta: an S x A JSON array, or an object with a "theta" field (default: zeros)')
    .option('--horizon <K>', 'also report J_K and grad_K for this truncation horizon')
    .option('--backend <name>', 'auto, native, wasm or js (default: $FEDPG_BACKEND, then auto)')
    .option('--json', 'print one JSON object')
    .option('--out <file.npz>', `write the arrays (V, Q, grad, gradAvg, Vstar, policyStar, gradK) to this .npz and print only the scalars; required with --json above ${JSON_ARRAY_LIMIT} table entries (S*A)`);
  addMemoryBudgetFlag(addRescaleFlag(cmd))
    .action(async (file: string, o: { theta?: string; horizon?: string; backend?: string; json?: boolean; out?: string; rescaleRewards?: boolean }) => {
      const loaded = loadMdpWithFlags(file, o);
      const mdp = loaded.mdp;
      const SA = mdp.states * mdp.actions;
      if (o.out !== undefined && !o.out.endsWith('.npz')) throw new InputError(`--out must name a .npz file, got '${o.out}'`);
      if (o.json && o.out === undefined && SA > JSON_ARRAY_LIMIT)
        throw new InputError(`the report's arrays have ${SA} entries per table (S*A > ${JSON_ARRAY_LIMIT}), too many for JSON on stdout: pass --out FILE.npz, which receives the arrays while --json prints the scalars`);
      const theta = o.theta ? loadTheta(o.theta, mdp.states, mdp.actions) : new Float64Array(mdp.states * mdp.actions);
      const horizon = int('horizon', o.horizon, 1);
      const arrays = await evaluatePolicyArrays(mdp, theta, { horizon, backend: backendChoice(o.backend) });
      if (o.out !== undefined) {
        writeFileAtomic(o.out, npzArrayParts(reportArrays(arrays)));
        if (o.json) return printJson(withRewardMap({ ...reportScalars(arrays), arrays: o.out }, loaded));
      } else if (o.json) return printJson(withRewardMap(policyReport(arrays), loaded));
      const lines = [
        `backend      ${arrays.backend}`,
        `agents       ${mdp.rewards.length}, states ${mdp.states}, actions ${mdp.actions}, gamma ${mdp.gamma}`,
        `J (mean)     ${arrays.Javg}`,
        ...Array.from(arrays.J, (j, i) => `J[${i}]${' '.repeat(Math.max(1, 8 - String(i).length))}${j}`),
      ];
      if (arrays.Jstar !== undefined) lines.push(`J*           ${arrays.Jstar}`, `gap          ${arrays.Jstar - arrays.Javg}`);
      const gn = arrays.gradAvg.reduce((s, v) => s + v * v, 0);
      lines.push(`|grad J|^2   ${gn}`);
      lines.push(...policyStarLines(arrays, mdp.states));
      if (arrays.JK) lines.push(`J_K (K=${arrays.K}) ${arrays.JK.reduce((s, v) => s + v, 0) / arrays.JK.length} (mean)`);
      lines.push(...rewardMapLines(loaded));
      if (o.out !== undefined) lines.push(`arrays       ${o.out} (V, Q, grad, gradAvg, Vstar, policyStar, gradK: np.load reads them)`);
      process.stdout.write(lines.join('\n') + '\n');
    });
}
