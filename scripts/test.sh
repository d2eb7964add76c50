#!/usr/bin/env bash
# The test command: installs dependencies, builds, runs every test suite.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/install-deps.sh"
"$here/scripts/build.sh"
build=${BUILD_DIR:-$here/build}
cd "$build"
ctest --output-on-failure -j "${AGENTLOCK_JOBS:-$(nproc)}" --timeout 300
