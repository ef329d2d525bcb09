import { readdirSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { getExperiment, readExperimentLog, usedParams } from './index.js';
import { experimentLogText } from './log.js';
import { SHARD_LOG_NAME, type ShardHeader } from './shard.js';
import type { RunResult } from './task.js';
import type { ExperimentHeader, ExperimentLog } from './types.js';

/**
 * `fedpg experiment merge DIR...`: joins the logs of the shards of one experiment (--shard I/N)
 * into the log an unsharded run writes. Every check refuses with one line naming the shard files
 * and the values: shards of another experiment or other settings, a shard given twice, a shard
 * missing, a shard cut short. The merged header is the shards' header without `shard`, with
 * started = the earliest shard's start, threads = the shards' threads summed, command = the merge's
 * command; end.seconds spans the earliest start to the latest end.
 */

interface ShardLog {
  path: string;
  log: ExperimentLog;
  shard: ShardHeader;
}

/** The shard logs named by `inputs`: files as given, and every NAME.shard-I-of-N.jsonl in a directory. */
export function shardLogFiles(inputs: readonly string[]): string[] {
  const files: string[] = [];
  const seen = new Set<string>();
  const add = (f: string): void => {
    const real = realpathSync(f);
    if (seen.has(real)) return; // the same file named twice (a directory and a file in it) is one shard
    seen.add(real);
    files.push(f);
  };
  for (const p of inputs) {
    let isDir: boolean;
    try {
      isDir = statSync(p).isDirectory();
    } catch (e) {
      throw new InputError(`cannot read ${p}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    if (!isDir) {
      add(p);
      continue;
    }
    const names = readdirSync(p).filter((n) => SHARD_LOG_NAME.test(n)).sort();
    if (!names.length) throw new InputError(`${p} holds no shard logs (NAME.shard-I-of-N.jsonl, written by fedpg experiment NAME --shard I/N --out ${p})`);
    for (const n of names) add(join(p, n));
  }
  return files;
}

function readShard(path: string): ShardLog {
  const log = readExperimentLog(path);
  const shard = log.header.shard;
  if (!shard) throw new InputError(`${path} is not a shard log (its header has no shard: it already holds a whole experiment)`);
  return { path, log, shard };
}

const show = (v: unknown): string => JSON.stringify(v ?? null);
const label = (s: ShardLog): string => `shard ${s.shard.index}/${s.shard.count} (${s.path})`;

/** Refuses shards that are not of one experiment with one set of settings, backend and version. */
function checkSame(shards: ShardLog[]): void {
  const ref = shards[0]!;
  const fields: [string, (h: ExperimentHeader) => unknown][] = [
    ['experiment', (h) => h.experiment],
    ['version', (h) => h.version],
    ['backend', (h) => h.backend],
    ['quick', (h) => h.quick ?? false],
    ['shard count', (h) => h.shard!.count],
    ['runs', (h) => h.runs],
  ];
  const e = getExperiment(ref.log.header.experiment);
  for (const k of e.params) fields.push([`params.${k}`, (h) => h.params[k]]);
  fields.push(['notes', (h) => h.notes]);
  for (const s of shards.slice(1)) {
    for (const [name, get] of fields) {
      const a = show(get(ref.log.header)), b = show(get(s.log.header));
      if (a !== b) throw new InputError(`shard logs disagree on ${name}: ${ref.path} has ${a}, ${s.path} has ${b}`);
    }
  }
}

/** Refuses a shard given twice, a missing shard, and slices that do not partition the runs. */
function checkComplete(shards: ShardLog[]): void {
  const { count } = shards[0]!.shard;
  const { experiment, runs } = shards[0]!.log.header;
  const byIndex = new Map<number, ShardLog>();
  for (const s of shards) {
    const other = byIndex.get(s.shard.index);
    if (other) throw new InputError(`shard ${s.shard.index}/${count} appears twice: ${other.path} and ${s.path}`);
    byIndex.set(s.shard.index, s);
  }
  const missing = Array.from({ length: count }, (_, i) => i).filter((i) => !byIndex.has(i));
  if (missing.length) {
    throw new InputError(`missing shard${missing.length > 1 ? 's' : ''} ${missing.map((i) => `${i}/${count}`).join(', ')} of ${experiment}: merge needs all ${count} (fedpg experiment ${experiment} --shard I/${count} writes shard I)`);
  }
  const owner = new Map<number, ShardLog>();
  for (const s of shards) {
    for (const t of s.shard.tasks) {
      const o = owner.get(t);
      if (o) throw new InputError(`run ${t} is in both ${label(o)} and ${label(s)}`);
      if (!Number.isSafeInteger(t) || t < 0 || t >= runs) throw new InputError(`${label(s)} lists run ${show(t)}, outside 0..${runs - 1}`);
      owner.set(t, s);
    }
  }
  if (owner.size !== runs) {
    const gap = Array.from({ length: runs }, (_, i) => i).find((i) => !owner.has(i))!;
    throw new InputError(`no shard lists run ${gap} of ${experiment} (the ${count} shards list ${owner.size} of ${runs} runs)`);
  }
  for (const s of shards) {
    const wanted = new Set(s.shard.tasks);
    const got = new Set<number>();
    for (const r of s.log.runs) {
      if (!wanted.has(r.index)) throw new InputError(`${label(s)} holds run ${r.index}, which its shard does not list`);
      if (got.has(r.index)) throw new InputError(`${label(s)} holds run ${r.index} twice`);
      got.add(r.index);
    }
    if (got.size < wanted.size) {
      throw new InputError(`${label(s)} is incomplete: it holds ${got.size} of its ${wanted.size} runs (rerun fedpg experiment ${experiment} --shard ${s.shard.index}/${count})`);
    }
  }
}

/**
 * Merges shard logs (files or directories of them). Returns the merged log (header params filled
 * in, as readExperimentLog gives them) and its canonical text, the same as an unsharded run's
 * but for the invocation fields.
 */
export function mergeShardLogs(inputs: readonly string[], o: { command?: string } = {}): { log: ExperimentLog; text: string; shards: string[] } {
  const files = shardLogFiles(inputs);
  if (!files.length) throw new InputError('merge needs the shard logs: directories or NAME.shard-I-of-N.jsonl files');
  const shards = files.map(readShard);
  checkSame(shards);
  checkComplete(shards);
  const first = shards[0]!.log.header;
  const startMs = Math.min(...shards.map((s) => Date.parse(s.log.header.started)));
  const endMs = Math.max(...shards.map((s) => Date.parse(s.log.header.started) + 1000 * (s.log.end?.seconds ?? 0)));
  const { shard: _shard, command: _command, ...rest } = first;
  const header: ExperimentHeader = { ...rest, threads: shards.reduce((n, s) => n + s.log.header.threads, 0), started: new Date(startMs).toISOString() };
  if (o.command !== undefined) header.command = o.command;
  const runs: RunResult[] = shards.flatMap((s) => s.log.runs).sort((a, b) => a.index - b.index);
  const end = { type: 'end' as const, completed: runs.length, seconds: (endMs - startMs) / 1000 };
  const written = { ...header, params: usedParams(getExperiment(header.experiment), header.params) };
  return { log: { header, runs, end }, text: experimentLogText(written, runs, end), shards: shards.sort((a, b) => a.shard.index - b.shard.index).map((s) => s.path) };
}
