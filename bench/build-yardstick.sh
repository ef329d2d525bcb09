#!/bin/sh
# Builds the plain C++ yardstick of bench/native.bench.js (bench/yardstick.cc) into build/bench/:
#   yardstick        g++ -O3, baseline x86-64, -ffp-contract=off (the addon's flags, no run-time dispatch)
#   yardstick-avx2   g++ -O3 -mavx2 -mfma (the compiler may fuse and vectorise for this CPU class)
# Usage: bench/build-yardstick.sh [OUTDIR]   (needs g++; `node-gyp rebuild` wipes build/, the bench re-runs this)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-"$root/build/bench"}
cxx=${CXX:-g++}
mkdir -p "$out"
"$cxx" -std=c++17 -O3 -Wall -Wextra -ffp-contract=off -o "$out/yardstick" "$root/bench/yardstick.cc"
"$cxx" -std=c++17 -O3 -Wall -Wextra -mavx2 -mfma -o "$out/yardstick-avx2" "$root/bench/yardstick.cc"
echo "$out/yardstick $out/yardstick-avx2"
