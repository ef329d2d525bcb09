import type * as http from 'node:http';
import type * as http2 from 'node:http2';
import type * as net from 'node:net';
import { addressKey } from './refusals.js';

/**
 * Bounds on what a connection may hold before it has done anything useful, so sockets that
 * send nothing, trickle header bytes or trickle a body cannot pile up until the aggregator runs
 * out of descriptors. Each connection is in one of two states:
 *
 * - waiting for a request: since it opened (headersTimeoutMs, TLS handshake included) or since
 *   its last answer (idleTimeoutMs), until a request's headers are complete; then it is closed;
 * - serving requests: each request's body must arrive within requestTimeoutMs of its headers.
 *   The answer may take as long as the service likes: a long poll (PullRound, up to --hold) is a
 *   request in flight, so no timeout here ends it (it has its own deadline).
 *
 * At most maxConnectionsPerAddress connections per remote address (an IPv6 /64 counts as one)
 * are open at once; more are closed as soon as they are accepted.
 */
export interface ConnectionLimits {
  headersTimeoutMs: number;
  idleTimeoutMs: number;
  requestTimeoutMs: number;
  maxConnectionsPerAddress: number;
}

/**
 * Defaults (fedpg serve --headers-timeout, --idle-timeout, --request-timeout,
 * --max-connections-per-address). An agent needs one or two connections; 32 leaves room for
 * many agents behind one NAT address while 200 descriptors still outlast one attacking address.
 */
export const CONNECTION_DEFAULTS: ConnectionLimits = {
  headersTimeoutMs: 10_000,
  idleTimeoutMs: 30_000,
  requestTimeoutMs: 30_000,
  maxConnectionsPerAddress: 32,
};

type AnyRequest = http.IncomingMessage | http2.Http2ServerRequest;
type AnyResponse = http.ServerResponse | http2.Http2ServerResponse;
type Listener = (req: AnyRequest, res: AnyResponse) => void;

/** One accepted TCP connection and its timer. */
interface Conn {
  socket: net.Socket;
  /** Its HTTP/2 session, closed with a GOAWAY (so clients reconnect cleanly) rather than cut. */
  session: http2.Http2Session | null;
  key: string;
  inFlight: number;
  timer: ReturnType<typeof setTimeout> | null;
}

/** Identifies a connection at the TCP, TLS and HTTP/2-over-TLS layers alike. */
function connId(s: { remoteAddress?: string | undefined; remotePort?: number | undefined }): string {
  return `${s.remoteAddress}|${s.remotePort}`;
}

export class ConnectionGuard {
  readonly limits: ConnectionLimits;
  private readonly conns = new Map<string, Conn>();
  private readonly perAddress = new Map<string, number>();
  private readonly bodyTimers = new WeakMap<object, ReturnType<typeof setTimeout>>();
  /** Cleartext HTTP/2 sessions run over a wrapper stream without an address: their connection. */
  private readonly sessions = new WeakMap<http2.Http2Session, Conn>();

  constructor(
    limits: Partial<ConnectionLimits> = {},
    private readonly onRefuse?: (address: string | undefined, message: string) => void,
  ) {
    this.limits = { ...CONNECTION_DEFAULTS, ...limits };
  }

  /** Open connections (for tests and messages). */
  get open(): number {
    return this.conns.size;
  }

  /** Takes a freshly accepted TCP connection in, or closes it at once (false) past the per-address cap. */
  admit(socket: net.Socket): boolean {
    const address = socket.remoteAddress;
    if (address === undefined) {
      socket.destroy(); // already gone
      return false;
    }
    const key = addressKey(address);
    const n = this.perAddress.get(key) ?? 0;
    if (n >= this.limits.maxConnectionsPerAddress) {
      this.onRefuse?.(address, `a connection: ${key} already holds ${n} (--max-connections-per-address)`);
      socket.destroy();
      return false;
    }
    this.perAddress.set(key, n + 1);
    const conn: Conn = { socket, session: null, key, inFlight: 0, timer: null };
    const id = connId(socket);
    this.conns.set(id, conn);
    socket.once('close', () => {
      this.stopTimer(conn);
      if (this.conns.get(id) === conn) this.conns.delete(id);
      const left = (this.perAddress.get(key) ?? 1) - 1;
      if (left > 0) this.perAddress.set(key, left);
      else this.perAddress.delete(key);
    });
    this.wait(conn, this.limits.headersTimeoutMs, () => this.onRefuse?.(address, `a connection that sent no complete request within ${this.limits.headersTimeoutMs} ms (closed)`));
    return true;
  }

  /** Ties an HTTP/2 session to the accepted TCP connection it runs over (its socket, or TLS over it). */
  bindSession(session: http2.Http2Session, socket: { remoteAddress?: string | undefined; remotePort?: number | undefined }): void {
    const conn = this.conns.get(connId(socket));
    if (!conn) return;
    conn.session = session;
    this.sessions.set(session, conn);
  }

  /** The caller's address (HTTP/2 over a wrapper stream included). */
  remoteAddress(req: AnyRequest): string | undefined {
    return this.connOf(req)?.socket.remoteAddress ?? req.socket.remoteAddress;
  }

  private connOf(req: AnyRequest): Conn | undefined {
    const session = 'stream' in req ? req.stream.session : undefined;
    return (session && this.sessions.get(session)) || this.conns.get(connId(req.socket));
  }

  /** Wraps a request listener: tracks requests in flight per connection and bounds each body's arrival. */
  track<L extends Listener>(listener: L): L {
    return ((req: AnyRequest, res: AnyResponse) => {
      const conn = this.connOf(req);
      if (conn) {
        conn.inFlight += 1;
        this.stopTimer(conn);
      }
      const timer = setTimeout(() => {
        this.bodyTimers.delete(req);
        if ((req as http.IncomingMessage).complete && !('stream' in req)) return; // HTTP/1.1: parsed whole
        this.onRefuse?.(this.remoteAddress(req), `a request whose body did not arrive within ${this.limits.requestTimeoutMs} ms (closed)`);
        req.destroy();
      }, this.limits.requestTimeoutMs);
      this.bodyTimers.set(req, timer);
      req.once('end', () => this.received(req));
      res.once('close', () => {
        this.received(req);
        if (!conn) return;
        conn.inFlight -= 1;
        if (conn.inFlight === 0) this.wait(conn, this.limits.idleTimeoutMs);
      });
      listener(req, res);
    }) as L;
  }

  /** The request's body has arrived whole (Connect reads it to its end): its timeout is over. */
  private received(req: object): void {
    const t = this.bodyTimers.get(req);
    if (t) clearTimeout(t);
    this.bodyTimers.delete(req);
  }

  /** Closes every connection now (server shutdown). */
  destroyAll(): void {
    for (const c of this.conns.values()) c.socket.destroy();
  }

  /** Closes the connection unless a request arrives within ms. */
  private wait(conn: Conn, ms: number, onExpire?: () => void): void {
    this.stopTimer(conn);
    conn.timer = setTimeout(() => {
      conn.timer = null;
      if (conn.inFlight > 0) return;
      onExpire?.();
      const session = conn.session;
      if (session && !session.closed && !session.destroyed) {
        session.close(); // GOAWAY; ends the connection at once as no stream is open
        setTimeout(() => conn.socket.destroy(), 1000).unref();
      } else conn.socket.destroy();
    }, ms);
    conn.timer.unref?.();
  }

  private stopTimer(conn: Conn): void {
    if (conn.timer) clearTimeout(conn.timer);
    conn.timer = null;
  }
}
