/**
 * Lets the event loop run (timers, signal handlers, messages) and resumes as soon as it has:
 * setImmediate in Node; in browsers a MessageChannel message, which, unlike setTimeout(0), is not
 * clamped to 4 ms once calls nest. Host-free: the browser entry uses it too.
 */
type Channel = { port1: { onmessage: unknown }; port2: { postMessage(v: unknown): void } };

const queue: (() => void)[] = [];
let post: (() => void) | null = null;

function flush(): void {
  for (const f of queue.splice(0)) f();
}

export function yieldToEventLoop(): Promise<void> {
  const g = globalThis as unknown as { setImmediate?: (f: () => void) => unknown; MessageChannel?: new () => Channel };
  if (typeof g.setImmediate === 'function') return new Promise((r) => g.setImmediate!(r));
  if (!post) {
    if (typeof g.MessageChannel === 'function') {
      const ch = new g.MessageChannel();
      ch.port1.onmessage = flush;
      post = () => ch.port2.postMessage(0);
    } else {
      post = () => setTimeout(flush, 0);
    }
  }
  return new Promise((r) => {
    if (queue.push(r) === 1) post!();
  });
}
