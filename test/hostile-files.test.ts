import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError } from '../src/errors.js';
import { MemoryLedger, parseBytes } from '../src/limits.js';
import { parseJsonStrict } from '../src/mdp/json.js';
import { parseMdp } from '../src/mdp/parse.js';
import { parseShared } from '../src/network/formats.js';
import { fedpgLimited, refusalLine } from './helpers/cli.js';
import { fixturePath } from './helpers/fixtures.js';

/**
 * Issue 16 item 6: hostile input files. Each case was reproduced against main before the fix
 * (the test named in the comment failed there: a 5 GB allocation and abort, a hang, a stack
 * trace, a silent acceptance); every one now ends in one line and exit 1.
 */

const tmp = mkdtempSync(join(tmpdir(), 'fedpg-hostile-'));
const BACKEND = ['--backend', 'js'];
const tiny = { format: 'fedpg-mdp/1', states: 1, actions: 1, gamma: 0.9, initial: [1], transitions: [[[1]]], rewards: [[[0.5]]] };

function file(name: string, text: string): string {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
}

describe('hostile files end in one line and exit 1', () => {
  it('a 700-byte shared file claiming 10^8 states: serve refuses it without allocating', () => {
    const text = JSON.stringify({ format: 'fedpg-shared/1', states: 1e8, actions: 4, gamma: 0.9, initial: [1], transitions: { sparse: [[0, 0, 0, 1]] } });
    expect(text.length).toBeLessThan(700);
    const shared = file('huge-shared.json', text);
    // main: parseShared built an S x A table of zeros first (5 GB) and aborted.
    const r = fedpgLimited(['serve', shared, '--agents', '1', '--token-file', join(tmp, 'no-tokens.json'), '--port', '0']);
    expect(refusalLine(r)).toBe(`fedpg: error: ${shared}: initial has 1 entries, expected 100000000`);
    expect(() => parseShared(JSON.parse(text), 's')).toThrow('s: initial has 1 entries, expected 100000000');
  });

  it('train /dev/zero is refused by its file type, not read', () => {
    // main: readFileSync streamed /dev/zero until 16.8 GB.
    expect(refusalLine(fedpgLimited(['train', '/dev/zero', ...BACKEND]))).toBe('fedpg: error: /dev/zero: is a character device, not a regular file; give the path of a file');
  });

  it('a FIFO is refused at once instead of hanging', () => {
    const fifo = join(tmp, 'pipe.json');
    execFileSync('mkfifo', [fifo]);
    // main: the read waited for a writer forever (killed by the time limit).
    const r = fedpgLimited(['evaluate', fifo, ...BACKEND], { timeoutMs: 15_000 });
    expect(refusalLine(r)).toBe(`fedpg: error: ${fifo}: is a FIFO (named pipe), not a regular file; give the path of a file`);
  });

  it('10^6-deep nesting is refused by depth, without a stack overflow', () => {
    const deep = file('deep.json', '['.repeat(1e6) + ']'.repeat(1e6));
    // main: "internal error: RangeError: Maximum call stack size exceeded".
    expect(refusalLine(fedpgLimited(['evaluate', deep, ...BACKEND]))).toMatch(/deep\.json: \[0\]\[0\].*\(\d+ more levels\) nests deeper than 64 levels; no fedpg file needs that$/);
  });

  it('states: 1e15 is checked against the data present', () => {
    const p = file('s1e15.json', JSON.stringify({ ...tiny, states: 1e15, transitions: { sparse: [[0, 0, 0, 1]] } }));
    // main: new Float64Array(1e15) threw "RangeError: Invalid typed array length" with a stack.
    expect(refusalLine(fedpgLimited(['evaluate', p, ...BACKEND]))).toBe(`fedpg: error: ${p}: initial has 1 entries, expected 1000000000000000`);
  });

  it('S*A + 1 beyond the typed-array limit: the sparse list must cover every row first', () => {
    const p = file('sa.json', JSON.stringify({ format: 'fedpg-shared/1', states: 2, actions: 2 ** 31, gamma: 0.9, initial: [0.5, 0.5], transitions: { sparse: [[0, 0, 0, 1]] } }));
    // main: new Int32Array(2^32 + 1) threw a RangeError with a stack (serve and agents).
    const r = fedpgLimited(['serve', p, '--agents', '1', '--token-file', join(tmp, 'no-tokens.json'), '--port', '0']);
    expect(refusalLine(r)).toBe(`fedpg: error: ${p}: transitions.sparse has 1 entries, fewer than the 4294967296 rows (states x actions = 2 x 2147483648) it must cover; every (state, action) needs at least one`);
  });

  it('1e309 is reported as out of range, not as null', () => {
    const p = file('inf.json', JSON.stringify(tiny).replace('"gamma":0.9', '"gamma":1e309'));
    // main: "gamma is null, not a finite number".
    expect(refusalLine(fedpgLimited(['evaluate', p, ...BACKEND]))).toBe(`fedpg: error: ${p}: gamma is 1e309, out of range for a float64 (magnitude at most 1.8e308)`);
    const q = file('inf2.json', JSON.stringify(tiny).replace('[[[0.5]]]', '[[[-2e400]]]'));
    expect(refusalLine(fedpgLimited(['evaluate', q, ...BACKEND]))).toBe(`fedpg: error: ${q}: rewards[0][0][0] is -2e400, out of range for a float64 (magnitude at most 1.8e308)`);
  });

  it('duplicate keys are refused, at any depth', () => {
    const p = file('dup.json', JSON.stringify(tiny).replace('"gamma":0.9', '"gamma":0.9,"gamma":0.5'));
    // main: silently took the second gamma (0.5).
    expect(refusalLine(fedpgLimited(['evaluate', p, ...BACKEND]))).toBe(`fedpg: error: ${p}: gamma appears twice in the same object; a key may appear once`);
    expect(() => parseJsonStrict('{"transitions": {"sparse": [], "sparse": []}}', 'd.json')).toThrow('d.json: transitions.sparse appears twice in the same object; a key may appear once');
    expect(() => parseJsonStrict('{"a": 1, "\\u0061": 2}', 'd.json')).toThrow('d.json: a appears twice');
  });

  it("control characters in a name are escaped when printed", () => {
    const name = 'evil\u001b[2J\u001b]0;owned\u0007\u202e';
    const p = file('name.json', JSON.stringify({ ...tiny, name }));
    const r = fedpgLimited(['run', '--mdp', p, '--rounds', '1', '--out', join(tmp, 'run-name'), ...BACKEND]);
    expect(r.code).toBe(0);
    // main: the escape sequences reached the terminal raw.
    expect(r.stdout).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f\u202e]/);
    expect(r.stdout).toContain('evil\\u001b[2J\\u001b]0;owned\\u0007\\u202e: 1 agents');

    // Paths and values quoted in error lines are escaped the same way.
    const evil = join(tmp, 'x\u001b[31m.json');
    expect(refusalLine(fedpgLimited(['evaluate', evil, ...BACKEND]))).toBe(`fedpg: error: ${tmp}/x\\u001b[31m.json: no such file`);
  });

  it('a JSON file beyond the budget is refused by its size before it is read', () => {
    const big = readFileSync(fixturePath('random-s50-a5-n3.json'), 'utf8');
    const p = file('big.json', big);
    const r = fedpgLimited(['evaluate', p, '--memory-budget', '64K', ...BACKEND]);
    expect(refusalLine(r)).toMatch(new RegExp(`^fedpg: error: ${p}: is [0-9.]+ KiB, more than the 16.0 KiB a JSON file may have \\(a 4th of the memory budget; raise it with --memory-budget\\); store large MDPs as \\.npz$`));
    const env = fedpgLimited(['evaluate', p, ...BACKEND], { env: { FEDPG_MEMORY_BUDGET: '64K' } });
    expect(refusalLine(env)).toMatch(/more than the 16\.0 KiB a JSON file may have/);
    expect(fedpgLimited(['evaluate', p, '--memory-budget', '64M', ...BACKEND]).code).toBe(0);
    expect(refusalLine(fedpgLimited(['evaluate', p, '--memory-budget', 'lots', ...BACKEND]))).toBe("fedpg: error: --memory-budget must be a byte count such as 4294967296, 512M or 4GiB, got 'lots'");
  });
});

describe('strict JSON', () => {
  it('accepts what JSON.parse accepts and gives the same value', () => {
    for (const t of ['0', '-0.5e-3', '"a\\"b\\u00e9"', '[1, [2, {"x": null}], true, false]', ' {"a": {"a": 1}, "b": [] } ', '{}', '[]', '1e308', '-4.9e-324', '1e-400']) {
      expect(parseJsonStrict(t, 't')).toEqual(JSON.parse(t));
    }
  });

  it.each([
    ['{"a": 1,}', "t: invalid JSON at line 1, column 9 (a): expected a quoted key, got '}'"],
    ['[1 2]', "t: invalid JSON at line 1, column 4 ([0]): expected ',' or ']', got '2'"],
    ['{"a": 01}', "t: invalid JSON at line 1, column 8 (a): expected ',' or '}', got '1'"],
    ['{"a": 1}\n x', "t: invalid JSON at line 2, column 2 (the top-level value): expected the end of the file after the top-level value, got 'x'"],
    ['"tab\there"', "t: invalid JSON at line 1, column 5 (the top-level value): expected no raw control character inside a string (write it as \\u00XX), got '\\t'"],
    ['[1.]', "t: invalid JSON at line 1, column 4 ([0]): expected a digit after the decimal point, got ']'"],
    ['{"x": [NaN]}', "t: invalid JSON at line 1, column 8 (x[0]): expected a JSON value, got 'N'"],
    ['[', "t: invalid JSON at line 1, column 2 ([0]): expected a JSON value, got the end of the file"],
    ['[1e999999]', 't: [0] is 1e999999, out of range for a float64 (magnitude at most 1.8e308)'],
    [`[${'9'.repeat(400)}]`, /^t: \[0\] is 9{37}\.\.\., out of range for a float64/],
  ] as const)('refuses %s', (text, message) => {
    if (typeof message === 'string') expect(() => parseJsonStrict(text, 't')).toThrow(message);
    else expect(() => parseJsonStrict(text, 't')).toThrow(message);
    expect(() => parseJsonStrict(text, 't')).toThrow(InputError);
  });
});

describe('the memory budget', () => {
  it('parses byte counts with binary units', () => {
    expect(parseBytes('4294967296', 'b')).toBe(2 ** 32);
    expect(parseBytes('512M', 'b')).toBe(512 * 2 ** 20);
    expect(parseBytes('4GiB', 'b')).toBe(2 ** 32);
    expect(parseBytes('1.5k', 'b')).toBe(1536);
    expect(() => parseBytes('0', 'b')).toThrow(InputError);
    expect(() => parseBytes('-1G', 'b')).toThrow(InputError);
  });

  it('refuses the request that would pass it, naming the size and the override', () => {
    const l = new MemoryLedger('f.json', 1000);
    l.reserve(600, 'a');
    expect(() => l.reserve(500, 'rewards (1 x 1 x 62 float64)')).toThrow(
      'f.json: rewards (1 x 1 x 62 float64) would take 500 bytes (1.07 KiB in all), over the memory budget of 1000 bytes (raise it with --memory-budget or FEDPG_MEMORY_BUDGET)',
    );
  });

  it('is checked by the parser before the tables are allocated', () => {
    const m = JSON.parse(readFileSync(fixturePath('random-s50-a5-n3.json'), 'utf8'));
    expect(() => parseMdp(m, 'm.json', { memoryBudget: 50 * 8 + 50 * 5 * 50 * 8 + 100 })).toThrow(/^m\.json: rewards \(3 x 50 x 5 float64\) would take 5\.86 KiB \(104 KiB in all\), over the memory budget of 98\.1 KiB/);
    expect(() => parseMdp(m, 'm.json', { memoryBudget: 1000 })).toThrow(/^m\.json: transitions \(50 x 5 x 50 dense float64\) would take 97\.7 KiB \(98\.0 KiB in all\)/);
    expect(() => parseMdp(m, 'm.json')).not.toThrow();
  });
});
