import { InputError } from '../errors.js';
import { MAX_JSON_DEPTH } from '../limits.js';

/**
 * Strict JSON for input files. JSON.parse alone accepts what an MDP file must not contain: a
 * duplicate key (the last silently wins), numbers beyond float64 (1e309 becomes Infinity, later
 * printed as null), and nesting deep enough to overflow the stack of any recursive code that
 * looks at the value. So the text is first scanned by the validating scanner below (the JSON
 * grammar of RFC 8259, with a key set per open object, a depth limit and a range check of every
 * number that could overflow), which names the path of the offending value; only text that passed
 * goes to JSON.parse, which builds the value fast. No host APIs (the browser entry uses it).
 */

const enum Ch {
  Tab = 9,
  Lf = 10,
  Cr = 13,
  Space = 32,
  Quote = 34,
  Plus = 43,
  Comma = 44,
  Minus = 45,
  Dot = 46,
  Zero = 48,
  Nine = 57,
  Colon = 58,
  UpperE = 69,
  OpenBracket = 91,
  Backslash = 92,
  CloseBracket = 93,
  LowerE = 101,
  OpenBrace = 123,
  CloseBrace = 125,
}

interface Frame {
  array: boolean;
  /** Arrays: index of the current element. */
  index: number;
  /** Objects: the keys seen, and the current one. */
  keys: Set<string> | null;
  key: string;
}

function pathOf(stack: Frame[]): string {
  let p = '';
  for (const [depth, f] of stack.entries()) {
    if (depth === 8) {
      p += `...(${stack.length - depth} more levels)`;
      break;
    }
    if (f.array) p += `[${f.index}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(f.key)) p += p === '' ? f.key : `.${f.key}`;
    else p += `[${JSON.stringify(f.key)}]`;
  }
  return p === '' ? 'the top-level value' : p;
}

function clip(s: string): string {
  return s.length > 40 ? s.slice(0, 37) + '...' : s;
}

class Scanner {
  private i = 0;
  private readonly stack: Frame[] = [];

  constructor(
    private readonly text: string,
    private readonly where: string,
    private readonly maxDepth: number,
  ) {}

  private fail(msg: string): never {
    throw new InputError(`${this.where}: ${msg}`);
  }

  private syntax(what: string): never {
    const before = this.text.slice(0, this.i);
    const line = before.split('\n').length;
    const column = this.i - before.lastIndexOf('\n');
    const c = this.text[this.i];
    const got = c === undefined ? 'the end of the file' : `'${JSON.stringify(c).slice(1, -1)}'`;
    this.fail(`invalid JSON at line ${line}, column ${column} (${pathOf(this.stack)}): expected ${what}, got ${got}`);
  }

  private ws(): void {
    const t = this.text;
    let i = this.i;
    for (;;) {
      const c = t.charCodeAt(i);
      if (c === Ch.Space || c === Ch.Lf || c === Ch.Cr || c === Ch.Tab) i++;
      else break;
    }
    this.i = i;
  }

  /** Skips a string starting at the quote; returns its raw text including the quotes. */
  private string(): string {
    const t = this.text;
    const start = this.i;
    let i = start + 1;
    for (;;) {
      const c = t.charCodeAt(i);
      if (c === Ch.Quote) break;
      if (Number.isNaN(c)) {
        this.i = i;
        this.syntax('a closing quote');
      }
      if (c < 0x20) {
        this.i = i;
        this.syntax('no raw control character inside a string (write it as \\u00XX)');
      }
      if (c === Ch.Backslash) {
        const e = t[i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(t.slice(i + 2, i + 6))) {
            this.i = i;
            this.syntax('four hex digits after \\u');
          }
          i += 6;
          continue;
        }
        if (e === undefined || !'"\\/bfnrt'.includes(e)) {
          this.i = i;
          this.syntax('a valid escape');
        }
        i += 2;
        continue;
      }
      i++;
    }
    this.i = i + 1;
    return t.slice(start, i + 1);
  }

  private number(): void {
    const t = this.text;
    const start = this.i;
    let i = start;
    let big = false;
    if (t.charCodeAt(i) === Ch.Minus) i++;
    let c = t.charCodeAt(i);
    if (c === Ch.Zero) i++;
    else if (c > Ch.Zero && c <= Ch.Nine) {
      while ((c = t.charCodeAt(i)) >= Ch.Zero && c <= Ch.Nine) i++;
    } else {
      this.i = i;
      this.syntax('a digit');
    }
    if (t.charCodeAt(i) === Ch.Dot) {
      i++;
      c = t.charCodeAt(i);
      if (!(c >= Ch.Zero && c <= Ch.Nine)) {
        this.i = i;
        this.syntax('a digit after the decimal point');
      }
      while ((c = t.charCodeAt(i)) >= Ch.Zero && c <= Ch.Nine) i++;
    }
    c = t.charCodeAt(i);
    if (c === Ch.LowerE || c === Ch.UpperE) {
      big = true;
      i++;
      c = t.charCodeAt(i);
      if (c === Ch.Plus || c === Ch.Minus) i++;
      c = t.charCodeAt(i);
      if (!(c >= Ch.Zero && c <= Ch.Nine)) {
        this.i = i;
        this.syntax('a digit in the exponent');
      }
      while ((c = t.charCodeAt(i)) >= Ch.Zero && c <= Ch.Nine) i++;
    }
    this.i = i;
    // Without an exponent only a number of more than 308 digits can overflow.
    if (big || i - start > 300) {
      const lexeme = t.slice(start, i);
      if (!Number.isFinite(Number(lexeme))) this.fail(`${pathOf(this.stack)} is ${clip(lexeme)}, out of range for a float64 (magnitude at most 1.8e308)`);
    }
  }

  private literal(word: string): void {
    if (this.text.startsWith(word, this.i)) this.i += word.length;
    else this.syntax('a JSON value');
  }

  private push(array: boolean): void {
    if (this.stack.length >= this.maxDepth) this.fail(`${pathOf(this.stack)} nests deeper than ${this.maxDepth} levels; no fedpg file needs that`);
    this.stack.push({ array, index: 0, keys: array ? null : new Set(), key: '' });
    this.i++;
  }

  /** Scans one whole document; throws an InputError at the first problem. */
  scan(): void {
    const t = this.text;
    const stack = this.stack;
    this.ws();
    // An iterative walk (no recursion), so nesting depth never touches the call stack.
    for (;;) {
      // Here a value is expected.
      const c = t.charCodeAt(this.i);
      let opened = false;
      if (c === Ch.OpenBrace) {
        this.push(false);
        this.ws();
        if (t.charCodeAt(this.i) === Ch.CloseBrace) {
          this.i++;
          stack.pop();
        } else {
          this.key();
          opened = true;
        }
      } else if (c === Ch.OpenBracket) {
        this.push(true);
        this.ws();
        if (t.charCodeAt(this.i) === Ch.CloseBracket) {
          this.i++;
          stack.pop();
        } else opened = true;
      } else if (c === Ch.Quote) this.string();
      else if (c === Ch.Minus || (c >= Ch.Zero && c <= Ch.Nine)) this.number();
      else if (c === 116) this.literal('true');
      else if (c === 102) this.literal('false');
      else if (c === 110) this.literal('null');
      else this.syntax('a JSON value');
      if (opened) {
        this.ws();
        continue;
      }
      // After a value: close containers or move to the next element.
      for (;;) {
        const top = stack[stack.length - 1];
        this.ws();
        if (top === undefined) {
          if (this.i !== t.length) this.syntax('the end of the file after the top-level value');
          return;
        }
        const d = t.charCodeAt(this.i);
        if (d === Ch.Comma) {
          this.i++;
          this.ws();
          if (top.array) top.index++;
          else this.key();
          break;
        }
        if (top.array ? d === Ch.CloseBracket : d === Ch.CloseBrace) {
          this.i++;
          stack.pop();
          continue;
        }
        this.syntax(top.array ? "',' or ']'" : "',' or '}'");
      }
      this.ws();
    }
  }

  /** Reads `"key" :` of an object member, refusing a repeated key. */
  private key(): void {
    const top = this.stack[this.stack.length - 1]!;
    if (this.text.charCodeAt(this.i) !== Ch.Quote) this.syntax('a quoted key');
    const key = JSON.parse(this.string()) as string;
    if (top.keys!.has(key)) {
      top.key = key;
      this.fail(`${pathOf(this.stack)} appears twice in the same object; a key may appear once`);
    }
    top.keys!.add(key);
    top.key = key;
    this.ws();
    if (this.text.charCodeAt(this.i) !== Ch.Colon) this.syntax("':' after the key");
    this.i++;
    this.ws();
  }
}

/**
 * Parses JSON text strictly: one line naming the file, the path and the value for a duplicate
 * key, an out-of-range number, too deep nesting or a syntax error.
 */
export function parseJsonStrict(text: string, where: string, maxDepth = MAX_JSON_DEPTH): unknown {
  new Scanner(text, where, maxDepth).scan();
  return JSON.parse(text);
}
