import type { Command } from 'commander';
import { InputError } from '../../errors.js';
import { evaluatePolicy, type PolicyReport } from '../../evaluate.js';
import { npzArrayParts, type NpzMember } from '../../mdp/npz.js';
import { writeFileAtomic } from '../../util/atomic.js';
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

/** Table entries (S*A) above which `evaluate --json` needs --out FILE.npz for its arrays. */
export const JSON_ARRAY_LIMIT = 100_000;

/** The report's arrays as .npz members (float64; policyStar int32), with numpy shapes. */
export function reportArrays(r: PolicyReport, S: number, A: number): NpzMember[] {
  const f = (x: unknown): Float64Array => Float64Array.from((x as unknown[]).flat(3) as number[]);
  const out: NpzMember[] = [];
  const N = r.grad.length;
  if (r.V) out.push({ name: 'V', data: f(r.V), shape: [S] });
  if (r.Q) out.push({ name: 'Q', data: f(r.Q), shape: [S, A] });
  out.push({ name: 'grad', data: f(r.grad), shape: [N, S, A] });
  out.push({ name: 'gradAvg', data: f(r.gradAvg), shape: [S, A] });
  if (r.Vstar) out.push({ name: 'Vstar', data: f(r.Vstar), shape: [S] });
  const ps = r.policyStar as unknown[];
  const perAgent = ps.length > 0 && Array.isArray(ps[0]);
  out.push({ name: 'policyStar', data: Int32Array.from(ps.flat() as number[]), shape: perAgent ? [ps.length, S] : [S] });
  if (r.gradK) out.push({ name: 'gradK', data: f(r.gradK), shape: [N, S, A] });
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
      const report = await evaluatePolicy(mdp, theta, { horizon, backend: backendChoice(o.backend) });
      if (o.out !== undefined) {
        writeFileAtomic(o.out, npzArrayParts(reportArrays(report, mdp.states, mdp.actions)));
        const { V: _v, Q: _q, grad: _g, gradAvg: _ga, Vstar: _vs, policyStar: _p, gradK: _gk, ...scalars } = report;
        if (o.json) return printJson(withRewardMap({ ...scalars, arrays: o.out }, loaded));
      } else if (o.json) return printJson(withRewardMap(report, loaded));
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
      if (o.out !== undefined) lines.push(`arrays       ${o.out} (V, Q, grad, gradAvg, Vstar, policyStar, gradK: np.load reads them)`);
      process.stdout.write(lines.join('\n') + '\n');
    });
}
