import type { BackendChoice, BackendName, GradientMode } from '../backends/types.js';
import type { Algorithm, Correction } from '../federation/settings.js';
import type { ShardHeader } from './shard.js';
import type { RunResult, RunTask } from './task.js';

/**
 * The settings of an experiment: every experiment reads the ones it lists in `Experiment.params`
 * (the CLI refuses the others) and fixes the rest. Lists are the values the experiment sweeps.
 */
export interface ExperimentParams {
  /** MDP sources (see mdps.ts): files, embedded fixtures or generators. */
  mdp: string[];
  algorithms: Algorithm[];
  gradient: GradientMode[];
  /** T, communication rounds. */
  rounds: number;
  /** H values. */
  localSteps: number[];
  eta: number;
  alphaG: number;
  /** K values (sampled gradients). */
  horizon: number[];
  /** M, trajectories per estimate. */
  batch: number;
  /** N values: the first N agents of each source (N = 1: the average reward table, see firstAgents). */
  agents: number[];
  /** Values of the heterogeneity knob R_i(h) = (1 - h) R_bar + h R_i (1 = the MDP as given). */
  heterogeneity: number[];
  /** Fast-FedPG's correction: memory (Algorithm 1) and/or fresh (the ablation). */
  correction: Correction[];
  /** Entropy weights tau for regfedpg and fast-fedpg+entropy. */
  entropy: number[];
  /** Sampled runs use seeds 0 .. seeds-1 (exact runs are deterministic: one run). */
  seeds: number;
  /**
   * Rounds of the centralized baseline: `matched` runs H*T rounds (one step each), so it takes as
   * many gradient steps and trajectories as FedAvg; `rounds` runs T rounds.
   */
  centralized: 'matched' | 'rounds';
  backend: BackendChoice;
}

export type ParamName = keyof ExperimentParams;

export type Row = Record<string, string | number | null>;

/** A fitted power law or rate, as the summary reports it. */
export interface Fit {
  /** What was fitted, e.g. "fast-fedpg on speedup-s5-a3-n8: mean final gap ~ N^slope". */
  label: string;
  /** Group coordinates (method, source, ...). */
  group: Record<string, string | number>;
  slope: number;
  /** log y at log x = 0 (power laws) or at x = 0 (rates): the fitted line is intercept + slope * x. */
  intercept: number;
  /** Standard error of the slope from the regression (NaN below three points). */
  slopeSe: number;
  /** 95% bootstrap interval over seeds, where there are seeds. */
  ci: [number, number] | null;
  r2: number;
  /** Points used. */
  n: number;
  /** The x range fitted over. */
  from: number;
  to: number;
}

/** Everything a reader (and `--json`) gets from an experiment; a pure function of its log. */
export interface ExperimentSummary {
  format: 'fedpg-experiment-summary/1';
  experiment: string;
  title: string;
  claim: string;
  params: ExperimentParams;
  backend: BackendName;
  /** The run count the experiment planned and the number the log holds. */
  runs: { planned: number; completed: number };
  /** True when the log ends before every planned run finished (an interrupted experiment). */
  partial: boolean;
  /** The fields of every row, in order (the CSV's header). */
  columns: string[];
  rows: Row[];
  fits: Fit[];
  /** One-line statements with the numbers that answer the claim. */
  findings: string[];
  /** Extra tables (e.g. the bias experiment's plateau heights, H by heterogeneity). */
  tables: { title: string; columns: string[]; rows: Row[] }[];
  /** Settings fixed by the experiment (not flags), as shown on the HTML page. */
  fixed: Record<string, string | number>;
}

/** The first line of an experiment log (fedpg-experiment/1). */
export interface ExperimentHeader {
  type: 'header';
  format: 'fedpg-experiment/1';
  experiment: string;
  params: ExperimentParams;
  backend: BackendName;
  threads: number;
  /** Planned runs (the log then holds one `run` line per finished run, in completion order). */
  runs: number;
  version: string;
  started: string;
  /** The command line, when the CLI wrote the log. */
  command?: string;
  /** Cells the plan skipped (e.g. N larger than a source's agents), one sentence each. */
  notes: string[];
  /** True when the run used the experiment's --quick configuration. */
  quick?: boolean;
  /**
   * A shard's log (--shard I/N): which shard and the task indices it runs; `runs` stays the
   * whole experiment's count. `fedpg experiment merge` joins the shards into one log without it.
   */
  shard?: ShardHeader;
}

export interface ExperimentLog {
  header: ExperimentHeader;
  runs: RunResult[];
  /** The closing line (absent in a partial log). */
  end: { type: 'end'; completed: number; seconds: number } | null;
}

/** The tasks of an experiment before their index and backend are assigned. */
export type PlannedTask = Omit<RunTask, 'index' | 'backend'>;

export interface Experiment {
  name: string;
  title: string;
  /** The claim of SPEC.md it checks, in a sentence or two. */
  claim: string;
  /** The parameters a user may set (CLI flags); the others are fixed to `defaults`. */
  params: ParamName[];
  defaults: ExperimentParams;
  /**
   * `--quick`: a smaller configuration (overrides of `defaults`, documented in the README) that
   * finishes in under a minute and still shows the claim's direction; explicit flags win.
   */
  quick: Partial<ExperimentParams>;
  /** Settings fixed by the experiment, for the settings table. */
  fixed: Record<string, string | number>;
  /** The fields of the summary's rows (documented; the CSV's columns). */
  columns: string[];
  plan(p: ExperimentParams): { tasks: PlannedTask[]; notes: string[] };
  summarise(log: ExperimentLog): Omit<ExperimentSummary, 'format' | 'experiment' | 'title' | 'claim' | 'params' | 'backend' | 'runs' | 'partial' | 'columns' | 'fixed'>;
  /** A vega-lite specification of the plot. */
  chart(summary: ExperimentSummary, log: ExperimentLog): Record<string, unknown>;
}
