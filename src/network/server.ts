import { cors, createContextKey, createContextValues } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import type { ConnectRouter } from '@connectrpc/connect';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { Duplex } from 'node:stream';
import type { Http2Sizes } from './message-limits.js';
import { ConnectionGuard, type ConnectionLimits } from './limits.js';

/**
 * The aggregator's listener: one TCP port that speaks HTTP/1.1 (Connect and gRPC-Web, what a
 * browser's fetch can use) and cleartext HTTP/2 (gRPC, Connect and gRPC-Web from Node agents).
 * Each connection is routed by its first bytes: the HTTP/2 client preface starts with "PRI ",
 * anything else is HTTP/1.1. Browsers get CORS answers for the allowed origins only. Every
 * connection is bounded by a ConnectionGuard (limits.ts): timeouts and a per-address cap.
 */

/** The caller's IP address, in every handler's context values (undefined in-process). */
export const REMOTE_ADDRESS = createContextKey<string | undefined>(undefined, { description: 'remote address' });

export interface ListenOptions {
  routes: (router: ConnectRouter) => void;
  /** Default 127.0.0.1: only this machine can connect unless you choose otherwise. */
  host?: string;
  /** 0 picks a free port. */
  port: number;
  /** Page origins allowed to call from a browser (exact, e.g. "https://lab.example:8443"), or "*". */
  allowOrigins?: readonly string[];
  /** Aborted when the server closes, so long polls end at once. */
  shutdownSignal?: AbortSignal;
  /** Serve HTTPS (HTTP/2 and HTTP/1.1 by ALPN) with this certificate chain and key (PEM). */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Timeouts and the per-address connection cap (defaults: CONNECTION_DEFAULTS). */
  limits?: Partial<ConnectionLimits>;
  /** A connection refused or closed by the limits (rate-limit it: an attacker controls how often). */
  onRefuse?: (address: string | undefined, message: string) => void;
  /** HTTP/2 windows and session memory for the messages served (message-limits.ts http2Sizes; default Node's). */
  http2?: Http2Sizes;
}

export interface Listening {
  host: string;
  port: number;
  /** The base URL agents use, e.g. http://127.0.0.1:7440. */
  url: string;
  /** Stops accepting, lets answers in flight finish for up to graceMs (default 2 s), then drops every connection. */
  close(graceMs?: number): Promise<void>;
}

type Handler = ReturnType<typeof connectNodeAdapter>;

/**
 * A socket seen through a plain Duplex. Node's HTTP/2 server reads a net.Socket's handle
 * directly, past the bytes the router already read and put back (unshift); given a Duplex it
 * reads through the stream instead, those bytes included.
 */
class SocketStream extends Duplex {
  constructor(private readonly sock: net.Socket) {
    super();
    sock.on('data', (d: Buffer) => {
      if (!this.push(d)) sock.pause();
    });
    sock.on('end', () => this.push(null));
    sock.on('error', (e) => this.destroy(e));
    sock.on('close', () => this.destroy());
  }
  override _read(): void {
    this.sock.resume();
  }
  override _write(chunk: Buffer, encoding: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.sock.write(chunk, encoding, cb);
  }
  override _final(cb: (e?: Error | null) => void): void {
    this.sock.end();
    cb();
  }
  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.sock.destroy();
    cb(err);
  }
}

const ALLOWED_HEADERS = [...new Set([...cors.allowedHeaders, 'Authorization'])].join(', ');

/** Wraps the Connect handler with CORS for browser agents. */
function withCors(handler: Handler, origins: readonly string[]): Handler {
  const any = origins.includes('*');
  const allowed = new Set(origins);
  return ((req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => {
    const origin = req.headers.origin;
    if (typeof origin === 'string') {
      if (!any && !allowed.has(origin)) {
        if (req.method === 'OPTIONS') {
          res.writeHead(403, { 'content-type': 'text/plain' });
          res.end(`origin ${origin} is not allowed (fedpg serve --allow-origin)\n`);
          return;
        }
        // No CORS headers: the browser withholds the answer from the page.
      } else {
        res.setHeader('Access-Control-Allow-Origin', origin);
        res.setHeader('Vary', 'Origin');
        if (req.method === 'OPTIONS') {
          res.writeHead(204, {
            'Access-Control-Allow-Methods': cors.allowedMethods.join(', '),
            'Access-Control-Allow-Headers': ALLOWED_HEADERS,
            'Access-Control-Max-Age': '7200',
          });
          res.end();
          return;
        }
        res.setHeader('Access-Control-Expose-Headers', cors.exposedHeaders.join(', '));
      }
    }
    return (handler as (a: unknown, b: unknown) => void)(req, res);
  }) as Handler;
}

/** HTTP/2 streams one connection may have open at once (agents need one or two). */
const MAX_STREAMS = 100;

/** The HTTP/2 server's settings: the stream cap, and the windows and session memory for large messages. */
function h2Options(o: ListenOptions): { settings: http2.Settings; maxSessionMemory?: number } {
  if (!o.http2) return { settings: { maxConcurrentStreams: MAX_STREAMS } };
  return { settings: { maxConcurrentStreams: MAX_STREAMS, initialWindowSize: o.http2.streamWindow }, maxSessionMemory: o.http2.sessionMemoryMb };
}

/** Opens a new session's connection window as wide as the sizes say (Node's default: 64 KiB). */
function widenWindow(s: http2.Http2Session, o: ListenOptions): void {
  if (!o.http2 || o.http2.connectionWindow <= 65_535) return;
  const set = (): void => {
    try {
      s.setLocalWindowSize(o.http2!.connectionWindow);
    } catch {
      // a session already closing: nothing to widen
    }
  };
  if (s.connecting) s.once('connect', set);
  else set();
}

export async function listen(o: ListenOptions): Promise<Listening> {
  const host = o.host ?? '127.0.0.1';
  const guard = new ConnectionGuard(o.limits, o.onRefuse);
  const L = guard.limits;
  const adapterOptions: Parameters<typeof connectNodeAdapter>[0] = {
    routes: o.routes,
    contextValues: (req) => createContextValues().set(REMOTE_ADDRESS, guard.remoteAddress(req)),
  };
  if (o.shutdownSignal) adapterOptions.shutdownSignal = o.shutdownSignal;
  const handler = guard.track(withCors(connectNodeAdapter(adapterOptions), o.allowOrigins ?? []));
  if (o.tls) return listenTls(o, host, handler, guard);
  // Node's own HTTP/1.1 timeouts agree with the guard's (which also covers HTTP/2 and the sniffing).
  const h1 = http.createServer({ headersTimeout: L.headersTimeoutMs, keepAliveTimeout: L.idleTimeoutMs, requestTimeout: 0 }, handler as http.RequestListener);
  const h2 = http2.createServer(h2Options(o), handler as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void);
  const sessions = new Set<http2.Http2Session>();
  let handing: net.Socket | null = null; // the socket whose session h2 is creating (synchronously)
  h2.on('session', (s) => {
    widenWindow(s, o);
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
    if (handing) guard.bindSession(s, handing);
  });
  const PREFACE = Buffer.from('PRI ');
  // Small request/response messages: send at once (no Nagle), as Node's HTTP servers do.
  const server = net.createServer({ noDelay: true }, (socket) => {
    socket.on('error', () => socket.destroy());
    if (!guard.admit(socket)) return;
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      if (head.length < PREFACE.length && PREFACE.subarray(0, head.length).equals(head)) return; // need more bytes
      socket.removeListener('data', onData);
      socket.pause();
      socket.unshift(head);
      if (head.subarray(0, PREFACE.length).equals(PREFACE)) {
        handing = socket;
        h2.emit('connection', new SocketStream(socket));
        handing = null;
      } else {
        h1.emit('connection', socket);
        socket.resume();
      }
    };
    socket.on('data', onData);
  });
  return {
    ...(await bind(server, o.port, host, 'http')),
    close: (graceMs = 2000) =>
      new Promise<void>((resolve) => {
        // Stop accepting; let answers in flight (the DONE of the last polls) reach their agents.
        server.close(() => resolve());
        h1.closeIdleConnections();
        for (const s of sessions) s.close();
        const force = (): void => {
          for (const s of sessions) s.destroy();
          guard.destroyAll();
          h1.closeAllConnections();
        };
        if (graceMs <= 0) force();
        else setTimeout(force, graceMs).unref();
      }),
  };
}

/** Listens on host:port (0: a free port) and reports the address actually bound, as a URL too. */
async function bind(server: net.Server, port: number, host: string, scheme: 'http' | 'https'): Promise<{ host: string; port: number; url: string }> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  const addr = server.address() as net.AddressInfo;
  const urlHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return { host: addr.address, port: addr.port, url: `${scheme}://${urlHost}:${addr.port}` };
}

/** HTTPS: one secure server negotiates HTTP/2 or HTTP/1.1 by ALPN (no sniffing needed). */
async function listenTls(o: ListenOptions, host: string, handler: Handler, guard: ConnectionGuard): Promise<Listening> {
  const L = guard.limits;
  const server = http2.createSecureServer(
    { cert: o.tls!.cert, key: o.tls!.key, allowHTTP1: true, noDelay: true, handshakeTimeout: L.headersTimeoutMs, ...h2Options(o) },
    handler as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
  );
  const sessions = new Set<http2.Http2Session>();
  // The raw TCP connection, before the TLS layer sees it: the cap and the first timeout start here.
  server.prependListener('connection', (s: net.Socket) => {
    s.on('error', () => s.destroy());
    guard.admit(s);
  });
  server.on('secureConnection', (s: net.Socket) => s.setNoDelay(true));
  server.on('session', (s) => {
    widenWindow(s, o);
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
    guard.bindSession(s, s.socket);
  });
  return {
    ...(await bind(server, o.port, host, 'https')),
    close: (graceMs = 2000) =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sessions) s.close();
        const force = (): void => {
          for (const s of sessions) s.destroy();
          guard.destroyAll();
        };
        if (graceMs <= 0) force();
        else setTimeout(force, graceMs).unref();
      }),
  };
}
