// One process's load of an .npz MDP, for bench/large.bench.js (the numpy side is
// `python3 bench/large_scipy.py load ...`, timed the same way): the code paths are first warmed on
// a small file (`warmup`), then `file` is loaded `reps` times. cold_s is the first load of `file`
// (fresh memory, as `fedpg evaluate` meets it), warm_s the median of the later ones.
// Usage: node bench/large-load.js FILE WARMUP REPS   (prints one JSON object)
import { loadMdp } from '../dist/mdp/format.js';

const [file, warmup, reps = '3'] = process.argv.slice(2);
loadMdp(warmup);
const times = [];
for (let k = 0; k < Number(reps); k++) {
  const t = performance.now();
  const mdp = loadMdp(file);
  times.push((performance.now() - t) / 1e3);
  if (mdp.states < 1) throw new Error('empty');
}
const later = times.slice(1).sort((a, b) => a - b);
console.log(JSON.stringify({ cold_s: times[0], warm_s: later.length ? later[later.length >> 1] : null }));
