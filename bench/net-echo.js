// The bare ConnectRPC baseline of bench/agents.bench.js: a unary "echo" over the federation's own
// service and listener, answered at once (no authentication, no state), with a delta-sized
// payload, and the clients that drive it the way `fedpg agent --agents` does (one HTTP/2 session
// per process, CONCURRENCY callers each making one call at a time).
//
//   node bench/net-echo.js server                       prints "listening on URL", serves until killed
//   node bench/net-echo.js client URL CONCURRENCY MS    calls for MS/2 ms (warm-up), then counts the calls of MS ms
import { create } from '@bufbuild/protobuf';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport, Http2SessionManager } from '@connectrpc/connect-node';
import { PushDeltaResponseSchema } from '../dist/network/gen/fedpg/v1/federation_pb.js';
import { FederationService } from '../dist/network/protocol.js';
import { listen } from '../dist/network/server.js';

const [mode, url, concurrency, ms] = process.argv.slice(2);
if (mode === 'server') {
  const l = await listen({
    port: 0,
    routes: (router) =>
      router.service(FederationService, {
        register() { throw new Error('echo only'); },
        pullRound() { throw new Error('echo only'); },
        pushDelta(req) { return create(PushDeltaResponseSchema, { received: req.delta.length }); },
        pushGradient() { throw new Error('echo only'); },
      }),
  });
  process.stderr.write(`listening on ${l.url}\n`);
  process.on('SIGTERM', () => l.close().then(() => process.exit(0)));
} else if (mode === 'client') {
  const session = new Http2SessionManager(url);
  const client = createClient(FederationService, createConnectTransport({ baseUrl: url, httpVersion: '2', useBinaryFormat: true, sessionManager: session }));
  // S = 20, A = 4: a delta of 80 float64.
  const delta = new Uint8Array(8 * 80);
  await client.pushDelta({ agent: 0, round: 1, delta }); // connect first
  // A warm-up of half the time (JIT, HTTP/2 windows), then MS ms counted.
  const warm = performance.now() + Number(ms) / 2;
  const until = warm + Number(ms);
  let calls = 0;
  await Promise.all(
    Array.from({ length: Number(concurrency) }, async (_, i) => {
      for (;;) {
        await client.pushDelta({ agent: i, round: 1, delta });
        const now = performance.now();
        if (now >= until) break;
        if (now >= warm) calls++;
      }
    }),
  );
  session.abort();
  process.stdout.write(`${calls}\n`);
} else {
  process.stderr.write('usage: net-echo.js server | client URL CONCURRENCY MS\n');
  process.exit(2);
}
