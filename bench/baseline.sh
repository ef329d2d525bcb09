#!/bin/sh
# Builds another commit of this repository (dist/ and the native addon; its wasm/ is committed)
# into DIR, for benches that compare before and after in one run (bench/detmath.bench.js reads
# FEDPG_BASELINE_ROOT=DIR). Uses this checkout's node_modules. Touches no branch or worktree.
# Usage: bench/baseline.sh COMMIT DIR
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
commit=$1
dir=$2
mkdir -p "$dir"
git -C "$root" archive "$commit" | tar -x -C "$dir"
[ -e "$dir/node_modules" ] || ln -s "$root/node_modules" "$dir/node_modules"
(cd "$dir" && npx tsc -p tsconfig.json && npx node-gyp rebuild >/dev/null 2>&1)
echo "$dir"
