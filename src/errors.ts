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
