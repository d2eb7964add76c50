#!/usr/bin/env bash
# Configures and builds agentlock into ${BUILD_DIR:-build} with Ninja.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$here/build}
jobs=${AGENTLOCK_JOBS:-$(nproc)}
cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" \
  -DAGENTLOCK_WERROR=ON "$@" >/dev/null
cmake --build "$build" -j "$jobs"
