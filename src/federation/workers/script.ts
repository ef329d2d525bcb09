import { existsSync } from 'node:fs';
import { sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * The compiled worker script `file` beside the module at `metaUrl` (its import.meta.url). Under
 * vitest, which runs src/, the .js beside it does not exist: the one in dist/ is used.
 */
export function compiledScript(metaUrl: string, file: string): string {
  const here = fileURLToPath(new URL(`./${file}`, metaUrl));
  if (existsSync(here)) return pathToFileURL(here).href;
  const k = here.lastIndexOf(`${sep}src${sep}`);
  if (k >= 0) {
    const built = here.slice(0, k) + `${sep}dist${sep}` + here.slice(k + 5);
    if (existsSync(built)) return pathToFileURL(built).href;
  }
  throw new Error(`the worker script ${here} is missing: build the project (npm run build)`);
}
