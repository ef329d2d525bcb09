// The backends that load here, in BACKEND_NAMES order (a bench helper; bench/run.js runs only
// *.bench.js). A backend that does not load is named once on stdout and left out.
import { BACKEND_NAMES, loadBackendByName } from '../dist/backends/select.js';

export async function loadedBackends() {
  const backends = [];
  for (const name of BACKEND_NAMES) {
    try {
      backends.push(await loadBackendByName(name));
    } catch (e) {
      console.log(`(${name} backend not loaded: ${e.message.split('\n')[0]})`);
    }
  }
  return backends;
}
