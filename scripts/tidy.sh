#!/usr/bin/env bash
# Runs clang-tidy-14 with the repository's .clang-tidy over every source file of lib/ and
# daemon/, using the compile_commands.json of ${BUILD_DIR:-build} (configured here when it is
# missing; nothing is compiled). Fails on any warning. Installs clang-tidy-14 if missing.
#
#   scripts/tidy.sh                 # everything
#   scripts/tidy.sh lib/src/pass.cpp  # some files
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$here/build}
jobs=${AGENTLOCK_JOBS:-$(nproc)}

if ! command -v clang-tidy-14 >/dev/null; then
  AGENTLOCK_EXTRA_PACKAGES="clang-tidy-14" "$here/scripts/install-deps.sh"
fi
if [[ ! -f "$build/compile_commands.json" ]]; then
  cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" \
    -DAGENTLOCK_WERROR=ON >/dev/null
fi

if (($# > 0)); then
  files=("$@")
else
  mapfile -t files < <(cd "$here" && ls lib/src/*.cpp daemon/*.cpp)
fi
cd "$here"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
start=$(date +%s)
# The build's flags are GCC's: clang does not know some of its warnings (-Wno-tsan, ...).
printf '%s\n' "${files[@]}" |
  xargs -P "$jobs" -n 1 clang-tidy-14 -p "$build" --quiet \
    --extra-arg=-Wno-unknown-warning-option --extra-arg=-Wno-ignored-optimization-argument \
    >"$out" 2>&1 || true
warnings=$(grep -c ': warning: \|: error: ' "$out" || true)
echo "tidy: ${#files[@]} files in $(($(date +%s) - start)) s, $warnings warnings"
if ((warnings > 0)); then
  grep -A3 ': warning: \|: error: ' "$out" | head -200
  exit 1
fi
