import type { ClientHttp2Stream, Http2Session } from 'node:http2';
import { Http2SessionManager } from '@connectrpc/connect-node';

/**
 * connect-node's Http2SessionManager with one upstream crash guarded (connectrpc/connect-es issue
 * 1768, fix proposed in PR 1769, not released for Node 20): when a GOAWAY arrives on a session
 * with no open streams (the aggregator sends one to every session as it shuts down), the manager
 * destroys the session with an error that Node raises only after the socket has closed; if the
 * manager has left that session's state meanwhile, its listeners are gone and the late error
 * kills the process. It killed agent hosts at the end of the 1000-agent load test. Every session
 * that carried a request gets one listener that swallows that late error, as the manager's own
 * abort() already does; errors of calls still reach them through their streams.
 */
export class GuardedSessionManager extends Http2SessionManager {
  private readonly guarded = new WeakSet<Http2Session>();

  override async request(...args: Parameters<Http2SessionManager['request']>): Promise<ClientHttp2Stream> {
    const stream = await super.request(...args);
    const session = stream.session;
    if (session && !this.guarded.has(session)) {
      this.guarded.add(session);
      session.on('error', () => {});
    }
    return stream;
  }
}
