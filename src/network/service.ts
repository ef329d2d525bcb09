import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, type ConnectRouter } from '@connectrpc/connect';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Aggregator } from './aggregator.js';
import { PushDeltaResponseSchema, PushGradientResponseSchema } from './gen/fedpg/v1/federation_pb.js';
import { AUTH_HEADER, FederationService } from './protocol.js';
import { addressKey, AuthBackoff, RefusalLog, type BackoffPolicy } from './refusals.js';
import { REMOTE_ADDRESS } from './server.js';

/**
 * FederationService on top of the Aggregator: authentication first (every call), then the state
 * machine. Node only (node:crypto).
 */

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** Where refusals go: every one to a callback (tests), or rate-limited through a RefusalLog. */
export type RefusalSink = ((message: string) => void) | RefusalLog;

/**
 * Per-agent secret tokens. The aggregator keeps only their SHA-256 digests and compares digests
 * in constant time, so neither a timing nor a memory dump of the server reveals a token. An
 * address that keeps presenting missing or invalid tokens is blocked for a while (AuthBackoff):
 * its calls are then refused with ResourceExhausted before any token is looked at.
 */
export class TokenAuth {
  private readonly digests: Buffer[];
  readonly backoff: AuthBackoff;

  constructor(
    tokens: readonly string[],
    private readonly onRefuse?: RefusalSink,
    backoff: Partial<BackoffPolicy> = {},
  ) {
    this.digests = tokens.map(digest);
    this.backoff = new AuthBackoff(backoff);
  }

  /**
   * The authenticated agent: refuses a blocked address, a missing or unknown token, or another
   * agent's. `address` is the caller's (undefined in-process).
   */
  check(headers: Headers, claimed: number, call: string, address?: string): number {
    const key = addressKey(address);
    const wait = this.backoff.blockedFor(key);
    if (wait > 0) {
      throw this.refuse(address, `${call}: too many failed authentications from ${key}; try again in ${Math.ceil(wait / 1000)} s`, Code.ResourceExhausted);
    }
    const h = headers.get(AUTH_HEADER) ?? '';
    const m = /^Bearer ([A-Za-z0-9_-]{1,256})$/.exec(h.trim());
    if (!m) throw this.fail(address, key, `${call} without a bearer token (header "authorization: Bearer <token>")`);
    const d = digest(m[1]!);
    const owner = this.ownerOf(d, claimed);
    if (owner < 0) throw this.fail(address, key, `${call} for agent ${claimed} with an invalid token`);
    if (owner !== claimed) throw this.refuse(address, `${call} for agent ${claimed} with the token of agent ${owner}: an agent may act only for itself`, Code.PermissionDenied);
    return owner;
  }

  /**
   * The agent whose token has digest d, or -1. The claimed agent's digest is compared first (in
   * constant time), so an honest call costs one comparison however many agents there are; only a
   * refused call compares against every digest, to name the owner in the refusal.
   */
  private ownerOf(d: Buffer, claimed: number): number {
    const mine = this.digests[claimed];
    if (mine && timingSafeEqual(mine, d)) return claimed;
    let owner = -1;
    for (let i = 0; i < this.digests.length; i++) if (timingSafeEqual(this.digests[i]!, d)) owner = i;
    return owner;
  }

  /** A failed authentication: counted against the address (it may start a block). */
  private fail(address: string | undefined, key: string, message: string): ConnectError {
    const blocked = this.backoff.failure(key);
    const note = blocked > 0 ? `; ${key} is blocked for ${Math.ceil(blocked / 1000)} s` : '';
    return this.refuse(address, message + note, Code.Unauthenticated);
  }

  private refuse(address: string | undefined, message: string, code: Code): ConnectError {
    const sink = this.onRefuse;
    if (sink instanceof RefusalLog) sink.note(address, message);
    else sink?.(`refused: ${message}`);
    return new ConnectError(message, code);
  }
}

/**
 * Per agent, the bytes of its last update answered OK and the phase it was for. A push for that
 * phase with other bytes is refused (AlreadyExists) even after the phase closed: the aggregator
 * answers the same bytes again with OK (a lost answer re-sent), but it no longer holds the
 * update to compare with, and an agent whose update changed has a bug or is not who it was.
 * Kept in memory only: after an aggregator restart the aggregator's own checks apply.
 */
class AnsweredPushes {
  private readonly last = new Map<number, { phase: string; bytes: Uint8Array }>();

  check(agent: number, phase: string, bytes: Uint8Array, what: string, round: number): void {
    const prev = this.last.get(agent);
    if (prev && prev.phase === phase && !sameBytes(prev.bytes, bytes)) {
      throw new ConnectError(`agent ${agent} already pushed a different ${what} for round ${round}`, Code.AlreadyExists);
    }
  }

  record(agent: number, phase: string, bytes: Uint8Array): void {
    this.last.set(agent, { phase, bytes: bytes.slice() });
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** A gradient push's bytes: the packed report, then the bits of J_i and of J_i(v_i) (NaN: none). */
function gradientBytes(req: { gradient: Uint8Array; objective: number; hasPersonal: boolean; personalObjective: number }): Uint8Array {
  const bytes = new Uint8Array(req.gradient.length + 16);
  bytes.set(req.gradient);
  const view = new DataView(bytes.buffer);
  view.setFloat64(req.gradient.length, req.objective, true);
  view.setFloat64(req.gradient.length + 8, req.hasPersonal ? req.personalObjective : Number.NaN, true);
  return bytes;
}

const BACKEND_NAME = /^[a-z0-9-]{0,16}$/;

function clean(s: string, max: number): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f]/g, ' ').slice(0, max);
}

/** The routes of FederationService, with request size limits from the aggregator's shape. */
export function federationRoutes(agg: Aggregator, auth: TokenAuth): (router: ConnectRouter) => void {
  const answered = new AnsweredPushes();
  return (router) => {
    router.service(
      FederationService,
      {
        register(req, ctx) {
          const agent = auth.check(ctx.requestHeader, req.agent, 'Register', ctx.values.get(REMOTE_ADDRESS));
          if (!BACKEND_NAME.test(req.backend)) throw new ConnectError('backend must be a short lowercase name (js, native, wasm)', Code.InvalidArgument);
          return agg.register(agent, req.backend, clean(req.client, 200));
        },
        pullRound(req, ctx) {
          const agent = auth.check(ctx.requestHeader, req.agent, 'PullRound', ctx.values.get(REMOTE_ADDRESS));
          return agg.pull(agent, req, ctx.signal);
        },
        pushDelta(req, ctx) {
          const agent = auth.check(ctx.requestHeader, req.agent, 'PushDelta', ctx.values.get(REMOTE_ADDRESS));
          const phase = `local ${req.round}`;
          answered.check(agent, phase, req.delta, 'delta', req.round);
          const received = agg.pushDelta(agent, req);
          answered.record(agent, phase, req.delta);
          return create(PushDeltaResponseSchema, { received });
        },
        pushGradient(req, ctx) {
          const agent = auth.check(ctx.requestHeader, req.agent, 'PushGradient', ctx.values.get(REMOTE_ADDRESS));
          const phase = `gradient ${req.round}`;
          const bytes = gradientBytes(req);
          answered.check(agent, phase, bytes, 'gradient', req.round);
          const received = agg.pushGradient(agent, req);
          answered.record(agent, phase, bytes);
          return create(PushGradientResponseSchema, { received });
        },
      },
      { readMaxBytes: agg.maxRequestBytes() },
    );
  };
}
