/**
 * A mistake in what the user gave us (a file, a flag's value). The CLI prints its message on one
 * line and exits 1, without a stack trace; anything else escaping is a bug and keeps its stack.
 */
export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}

/** A wrong or missing flag: the CLI exits 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/**
 * A backend that cannot load here (a missing or broken build, an engine without what it needs);
 * its message lists what was tried and how to fix it. The CLI prints it on one line and exits 1.
 */
export class BackendUnavailableError extends Error {
  constructor(
    readonly backend: 'js' | 'native' | 'wasm',
    message: string,
  ) {
    super(message);
    this.name = 'BackendUnavailableError';
  }
}
