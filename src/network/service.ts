import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, type ConnectRouter } from '@connectrpc/connect';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Aggregator } from './aggregator.js';
import { PushDeltaResponseSchema, PushGradientResponseSchema } from './gen/fedpg/v1/federation_pb.js';
import { AUTH_HEADER, FederationService } from './protocol.js';

/**
 * FederationService on top of the Aggregator: authentication first (every call), then the state
 * machine. Node only (node:crypto).
 */

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/**
 * Per-agent secret tokens. The aggregator keeps only their SHA-256 digests and compares digests
 * in constant time, so neither a timing nor a memory dump of the server reveals a token.
 */
export class TokenAuth {
  private readonly digests: Buffer[];

  constructor(tokens: readonly string[], private readonly onRefuse?: (message: string) => void) {
    this.digests = tokens.map(digest);
  }

  /** The authenticated agent: refuses a missing or unknown token, or another agent's. */
  check(headers: Headers, claimed: number, call: string): number {
    const h = headers.get(AUTH_HEADER) ?? '';
    const m = /^Bearer ([A-Za-z0-9_-]{1,256})$/.exec(h.trim());
    if (!m) throw this.refuse(`${call} without a bearer token (header "authorization: Bearer <token>")`, Code.Unauthenticated);
    const d = digest(m[1]!);
    const owner = this.ownerOf(d, claimed);
    if (owner < 0) throw this.refuse(`${call} for agent ${claimed} with an invalid token`, Code.Unauthenticated);
    if (owner !== claimed) throw this.refuse(`${call} for agent ${claimed} with the token of agent ${owner}: an agent may act only for itself`, Code.PermissionDenied);
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

  private refuse(message: string, code: Code): ConnectError {
    this.onRefuse?.(`refused: ${message}`);
    return new ConnectError(message, code);
  }
}

const BACKEND_NAME = /^[a-z0-9-]{0,16}$/;

function clean(s: string, max: number): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f]/g, ' ').slice(0, max);
}

/** The routes of FederationService, with request size limits from the aggregator's shape. */
export function federationRoutes(agg: Aggregator, auth: TokenAuth): (router: ConnectRouter) => void {
  return (router) => {
    router.service(
      FederationService,
      {
        register(req, ctx) {
          const agent = auth.check(ctx.requestHeader, req.agent, 'Register');
          if (!BACKEND_NAME.test(req.backend)) throw new ConnectError('backend must be a short lowercase name (js, native, wasm)', Code.InvalidArgument);
          return agg.register(agent, req.backend, clean(req.client, 200));
        },
        pullRound(req, ctx) {
          const agent = auth.check(ctx.requestHeader, req.agent, 'PullRound');
          return agg.pull(agent, req, ctx.signal);
        },
        pushDelta(req, ctx) {
          const agent = auth.check(ctx.requestHeader, req.agent, 'PushDelta');
          return create(PushDeltaResponseSchema, { received: agg.pushDelta(agent, req) });
        },
        pushGradient(req, ctx) {
          const agent = auth.check(ctx.requestHeader, req.agent, 'PushGradient');
          return create(PushGradientResponseSchema, { received: agg.pushGradient(agent, req) });
        },
      },
      { readMaxBytes: agg.maxRequestBytes() },
    );
  };
}
