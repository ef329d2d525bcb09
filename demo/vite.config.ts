import { fileURLToPath } from 'node:url';
import { createLogger, defineConfig } from 'vite';

/**
 * The browser demo: `npm run demo` builds it into build/demo and serves it on 127.0.0.1:4173
 * (vite preview); `npx vite --config demo/vite.config.ts` serves it with hot reload. The page
 * and its workers import the library's browser entry (src/browser.ts) directly; the .wasm files
 * (wasm/, committed, rebuilt by `npm run build:wasm`) become hashed assets of the bundle.
 */
const root = fileURLToPath(new URL('.', import.meta.url));

const repo = fileURLToPath(new URL('..', import.meta.url));

/**
 * The federation modules import node builtins for their Node-only paths (checkpoints, worker
 * threads); vite replaces those with browser stubs and warns once per import. The page never
 * takes those paths, so the warnings are summed up in one line instead of a screenful.
 */
function quietLogger() {
  const logger = createLogger('info');
  const warn = logger.warn.bind(logger);
  let stubbed = 0;
  logger.warn = (msg, options) => {
    if (msg.includes('has been externalized for browser compatibility')) {
      if (stubbed++ === 0) warn('(Node builtins imported by Node-only federation paths are stubbed in the browser bundle.)', options);
      return;
    }
    warn(msg, options);
  };
  return logger;
}

export default defineConfig({
  root,
  base: './',
  customLogger: quietLogger(),
  plugins: [],
  build: {
    outDir: fileURLToPath(new URL('../build/demo', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    chunkSizeWarningLimit: 1024,
  },
  worker: { format: 'es', plugins: () => [] },
  server: { host: '127.0.0.1', port: 5173, strictPort: false, fs: { allow: [repo] } },
  preview: { host: '127.0.0.1', port: 4173, strictPort: false },
});
