import { isIPv6 } from 'node:net';

/**
 * What the aggregator does about callers that misbehave before they are trusted: per-address
 * backoff after failed authentications, and logging of refusals that an attacker cannot turn
 * into a flood of stderr lines. Node only.
 */

/**
 * The key an address is counted under: an IPv4 address as it is (IPv4-mapped IPv6 included),
 * an IPv6 address by its /64 prefix (one host usually holds a whole /64, so counting single
 * addresses would let it rotate through 2^64 of them).
 */
export function addressKey(address: string | undefined): string {
  if (!address) return 'unknown';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (!isIPv6(address)) return address;
  const [head = '', tail = ''] = address.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = address.includes('::') ? [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  return `${groups
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}

export interface BackoffPolicy {
  /** Failed authentications an address may make before it is blocked. */
  freeFailures: number;
  /** The first block; each further failure doubles it. */
  baseMs: number;
  /** The longest block. */
  maxMs: number;
  /** An address without a failure for this long starts afresh. */
  forgetMs: number;
}

/**
 * Defaults: 3 free failures (a mistyped token file gets its clear answers), then blocks of
 * 1 s, 2 s, 4 s, ... up to 60 s. An attacker is held to about one checked guess a minute.
 */
export const BACKOFF_DEFAULTS: BackoffPolicy = { freeFailures: 3, baseMs: 1000, maxMs: 60_000, forgetMs: 10 * 60_000 };

/** Addresses remembered at most (past this, forgotten ones are dropped first, then the oldest). */
const MAX_TRACKED = 10_000;

interface Failures {
  count: number;
  last: number;
  blockedUntil: number;
}

/**
 * Per-address backoff after failed authentications. While an address is blocked its calls are
 * refused (ResourceExhausted) before any token is checked, so guessing gains nothing from
 * parallel calls. A success does not clear the count (an attacker sharing an agent's address
 * would otherwise be pardoned by that agent); only time does.
 */
export class AuthBackoff {
  readonly policy: BackoffPolicy;
  private readonly byAddress = new Map<string, Failures>();

  constructor(policy: Partial<BackoffPolicy> = {}) {
    this.policy = { ...BACKOFF_DEFAULTS, ...policy };
  }

  /** Milliseconds left of the address's block (0: not blocked). */
  blockedFor(key: string, now = Date.now()): number {
    const f = this.byAddress.get(key);
    return f && f.blockedUntil > now ? f.blockedUntil - now : 0;
  }

  /** Records a failed authentication; returns the block it starts (ms; 0: none yet). */
  failure(key: string, now = Date.now()): number {
    let f = this.byAddress.get(key);
    if (f && now - f.last > this.policy.forgetMs && f.blockedUntil <= now) f = undefined;
    if (!f) {
      this.makeRoom(now);
      f = { count: 0, last: now, blockedUntil: 0 };
    }
    this.byAddress.delete(key); // re-inserted last: the map stays ordered by last failure
    this.byAddress.set(key, f);
    f.count += 1;
    f.last = now;
    const over = f.count - this.policy.freeFailures;
    if (over <= 0) return 0;
    const ms = Math.min(this.policy.baseMs * 2 ** Math.min(over - 1, 30), this.policy.maxMs);
    f.blockedUntil = now + ms;
    return ms;
  }

  private makeRoom(now: number): void {
    if (this.byAddress.size < MAX_TRACKED) return;
    for (const [k, f] of this.byAddress) if (now - f.last > this.policy.forgetMs && f.blockedUntil <= now) this.byAddress.delete(k);
    for (const k of this.byAddress.keys()) {
      if (this.byAddress.size < MAX_TRACKED) break;
      this.byAddress.delete(k);
    }
  }
}

/** Refusal lines on stderr: at most this often in full; the rest are counted into one summary. */
export const REFUSAL_LOG_INTERVAL_MS = 10_000;

/**
 * Rate-limited logging of refusals: the first refusal of an interval is printed in full, the
 * others of the interval are counted and summarised in one line when it ends. A burst of any
 * size thus costs two lines per interval, and the operator still sees what is happening.
 */
export class RefusalLog {
  private windowStart = 0;
  private windowEnd = 0;
  private suppressed = 0;
  private readonly addresses = new Set<string>();
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly out: (line: string) => void,
    readonly intervalMs = REFUSAL_LOG_INTERVAL_MS,
  ) {}

  note(address: string | undefined, message: string): void {
    const now = Date.now();
    if (now >= this.windowEnd) {
      this.flush();
      this.windowStart = now;
      this.windowEnd = now + this.intervalMs;
      this.out(`refused: ${message}${address ? ` (from ${address})` : ''}`);
      return;
    }
    this.suppressed += 1;
    if (this.addresses.size < 5) this.addresses.add(address ?? 'unknown');
    this.timer ??= setTimeout(() => this.flush(), this.windowEnd - now);
    this.timer.unref?.();
  }

  /** Prints the summary of the current interval, if anything was held back. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.suppressed === 0) return;
    const from = [...this.addresses].join(', ');
    const secs = Math.max(1, Math.round((Math.min(Date.now(), this.windowEnd) - this.windowStart) / 1000));
    this.out(`refused ${this.suppressed} more call${this.suppressed > 1 ? 's' : ''} or connection${this.suppressed > 1 ? 's' : ''} in the last ${secs} s (from ${from}${this.addresses.size >= 5 ? ', ...' : ''}; not logged one by one)`);
    this.suppressed = 0;
    this.addresses.clear();
  }
}
