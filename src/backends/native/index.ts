import type { Backend } from '../types.js';
import { BackendUnavailableError } from '../select.js';

/** Placeholder until the native addon lands (issue 4): `auto` skips it, forcing it explains. */
export async function loadNativeBackend(): Promise<Backend> {
  throw new BackendUnavailableError('native', 'the native addon is not part of this build yet');
}
