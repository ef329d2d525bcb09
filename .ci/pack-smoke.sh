#!/bin/sh
# Pack smoke test of the native backend's shipping path (issue 4):
#   1-2. `npm pack` makes the tarball: its `prepare` runs tsc and its `prepack` runs prebuildify,
#      which writes prebuilds/<platform>-<arch>/ (needs the C++ toolchain, like any build);
#   3. the tarball is installed into a fresh project with `npm install --offline --ignore-scripts`
#      and a PATH holding only node and npm: no g++, cc, make or python3, so nothing can compile;
#   4. a script in that project imports 'fast-fedpg', forces the native backend and checks J and J*
#      of a two-state MDP against values worked out by hand. The addon must come from the
#      installed package's prebuilds/ directory.
# Exits non-zero on any failure. Usage: .ci/pack-smoke.sh [--keep]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
keep=${1:-}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fedpg-pack-smoke.XXXXXX")
cleanup() { if [ "$keep" = "--keep" ]; then echo "pack-smoke: kept $tmp"; else rm -rf "$tmp"; fi; }
trap cleanup EXIT
say() { echo "pack-smoke: $*"; }

node_bin=$(command -v node)
npm_cli=$(node -p "require('path').join(require('path').dirname(require('fs').realpathSync(process.argv[1])), 'npm-cli.js')" "$(command -v npm)")
[ -f "$npm_cli" ] || { say "cannot find npm-cli.js next to $(command -v npm)"; exit 1; }

# No prebuilt binary of this platform before packing: `npm pack` must make one itself (its
# `prepack` script runs prebuildify), as it does for anyone packing a fresh checkout.
platform_dir="$root/prebuilds/$(node -p 'process.platform + "-" + process.arch')"
rm -rf "$platform_dir"

say "npm pack (its prepack builds the prebuilt binary: prebuildify --napi --strip)"
(cd "$root" && npm pack --json --pack-destination "$tmp" >"$tmp/pack.json" 2>"$tmp/pack.log") || { cat "$tmp/pack.log"; say "npm pack failed"; exit 1; }
prebuilt=$(ls "$platform_dir"/*.node 2>/dev/null) || { cat "$tmp/pack.log"; say "npm pack's prepack made no $platform_dir/*.node"; exit 1; }
say "prebuilt: $prebuilt ($(wc -c <"$prebuilt") bytes)"
tarball="$tmp/$(node -e "const t = require('fs').readFileSync(process.argv[1], 'utf8'); console.log(JSON.parse(t.slice(t.indexOf('[')))[0].filename)" "$tmp/pack.json")"
[ -f "$tarball" ] || { cat "$tmp/pack.log"; say "npm pack produced no tarball"; exit 1; }
say "tarball: $(basename "$tarball") ($(wc -c <"$tarball") bytes)"
tar -tzf "$tarball" >"$tmp/contents.txt"
grep -q '^package/prebuilds/.*\.node$' "$tmp/contents.txt" || { say "the tarball has no prebuilds/*.node"; exit 1; }
if grep -q '^package/build/' "$tmp/contents.txt"; then say "the tarball ships build/ (local build output)"; exit 1; fi

# A PATH with node and npm only.
mkdir -p "$tmp/bin" "$tmp/proj"
ln -s "$node_bin" "$tmp/bin/node"
ln -s "$npm_cli" "$tmp/bin/npm"
for tool in g++ c++ cc gcc clang make python3 python; do
  if PATH="$tmp/bin" command -v "$tool" >/dev/null 2>&1; then say "$tool is still on the restricted PATH"; exit 1; fi
done

say "installing the tarball offline, without scripts, without a compiler on PATH"
printf '{ "name": "fedpg-pack-smoke", "version": "0.0.0", "private": true, "type": "module" }\n' >"$tmp/proj/package.json"
(cd "$tmp/proj" && PATH="$tmp/bin" npm install --offline --ignore-scripts --no-audit --no-fund --loglevel=error "$tarball") \
  >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; say "npm install failed"; exit 1; }

cat >"$tmp/proj/smoke.mjs" <<'JS'
import * as fedpg from 'fast-fedpg';

const backend = await fedpg.loadBackend('native');
if (backend.name !== 'native') throw new Error(`got the ${backend.name} backend`);
if (!/[\\/]node_modules[\\/]fast-fedpg[\\/]prebuilds[\\/]/.test(backend.path)) throw new Error(`the addon came from ${backend.path}, not the package's prebuilds/`);
// Two states, two actions: action 0 stays, action 1 switches; R = [[1, 0], [0, 0.5]], gamma = 1/2, s0 = 0.
// Uniform policy (theta = 0): V = (I - P/4 - P/4)^-1 r with r = [1/2, 1/4] gives V = [7/8, 5/8], so J = 7/8.
// Optimal: stay in 0 (V0 = 1 / (1 - 1/2) = 2), switch from 1 (V1 = 1/2 + 2/2 = 3/2): J* = 2.
const mdp = fedpg.parseMdp({
  format: 'fedpg-mdp/1', states: 2, actions: 2, gamma: 0.5, initial: [1, 0],
  transitions: [[[1, 0], [0, 1]], [[0, 1], [1, 0]]],
  rewards: [[[1, 0], [0, 0.5]]],
});
const env = backend.createEnvironment(fedpg.environmentSpec(mdp));
const out = { J: new Float64Array(1), V: new Float64Array(2), Q: new Float64Array(4), grad: new Float64Array(4), occupancy: new Float64Array(2) };
env.evaluate(new Float64Array(4), fedpg.stackedRewards(mdp), out);
const vStar = new Float64Array(2);
const jStar = env.optimal(fedpg.stackedRewards(mdp), vStar);
const bad = [];
if (Math.abs(out.J[0] - 0.875) > 1e-12) bad.push(`J = ${out.J[0]}, expected 0.875`);
if (Math.abs(out.V[1] - 0.625) > 1e-12) bad.push(`V[1] = ${out.V[1]}, expected 0.625`);
if (Math.abs(jStar - 2) > 1e-12 || Math.abs(vStar[1] - 1.5) > 1e-12) bad.push(`J* = ${jStar}, V*[1] = ${vStar[1]}, expected 2 and 1.5`);
env.dispose();
if (bad.length) throw new Error(bad.join('; '));
console.log(JSON.stringify({ backend: backend.name, addon: backend.path, simd: backend.info.simd, J: out.J[0], Jstar: jStar }));
JS

say "loading the native backend from the installed package"
(cd "$tmp/proj" && PATH="$tmp/bin" FEDPG_BACKEND=native node smoke.mjs) || { say "FAILED"; exit 1; }
say "ok"
