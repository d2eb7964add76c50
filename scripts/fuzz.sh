#!/usr/bin/env bash
# Builds the libFuzzer targets under fuzz/ with clang (-fsanitize=fuzzer,address,undefined, the
# library instrumented too) into ${FUZZ_BUILD_DIR:-build-fuzz} and runs each for FUZZ_SECONDS
# (default 30) from the committed seed corpus (fuzz/corpus/<target>). New inputs go to a scratch
# corpus in the build directory, never into the repository. Crashes are kept as
# <build>/artifacts/<target>-crash-*; any crash or failed check makes this script fail.
#
#   scripts/fuzz.sh                          # the CI run: 30 s per target
#   FUZZ_SECONDS=3600 scripts/fuzz.sh        # the long run: an hour per target
#   FUZZ_TARGETS="parse_lock" FUZZ_SECONDS=0 scripts/fuzz.sh   # 0: until stopped (Ctrl-C)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD_DIR:-$here/build-fuzz}
seconds=${FUZZ_SECONDS:-30}
targets=${FUZZ_TARGETS:-"parse_lock parse_rfc3339 parse_proc_stat parse_tmux_listing"}
jobs=${AGENTLOCK_JOBS:-$(nproc)}

# clang and its runtime libraries (libFuzzer lives in libclang-rt-14-dev), installed
# idempotently through the project's installer.
if ! command -v clang++ >/dev/null || ! dpkg-query -W -f='${Status}' libclang-rt-14-dev 2>/dev/null |
  grep -q "install ok installed"; then
  AGENTLOCK_EXTRA_PACKAGES="clang libclang-rt-14-dev" "$here/scripts/install-deps.sh"
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf '#include <cstddef>\n#include <cstdint>\nextern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }\n' \
  >"$probe/probe.cpp"
if ! clang++ -fsanitize=fuzzer,address,undefined "$probe/probe.cpp" -o "$probe/probe" 2>"$probe/err"; then
  echo "fuzz: clang++ -fsanitize=fuzzer does not work here:" >&2
  cat "$probe/err" >&2
  exit 1
fi

cmake -S "$here" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAGENTLOCK_FUZZ=ON -DAGENTLOCK_BUILD_TESTS=OFF \
  "-DAGENTLOCK_SANITIZE=address;undefined" -DCMAKE_CXX_FLAGS=-fsanitize=fuzzer-no-link >/dev/null
fuzz_targets=()
for t in $targets; do fuzz_targets+=("fuzz_$t"); done
cmake --build "$build" -j "$jobs" --target "${fuzz_targets[@]}"

mkdir -p "$build/artifacts"
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
status=0
for t in $targets; do
  seeds="$here/fuzz/corpus/$t"
  work="$build/corpus/$t"
  mkdir -p "$work"
  args=(-max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048
    -artifact_prefix="$build/artifacts/$t-")
  if [[ -f "$here/fuzz/$t.dict" ]]; then args+=(-dict="$here/fuzz/$t.dict"); fi
  if [[ $t == parse_lock ]]; then args+=(-dict="$here/fuzz/lock.dict" -max_len=4096); fi
  log="$build/$t.log"
  echo "fuzz: $t for ${seconds}s (seeds: $(find "$seeds" -maxdepth 1 -type f | wc -l))"
  if "$build/fuzz/fuzz_$t" "${args[@]}" "$work" "$seeds" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    echo "fuzz: $t ok: ${runs:-?} runs, ${rate:-?} execs/s, ${cov:-cov: ?}, corpus $(find "$work" -maxdepth 1 -type f | wc -l)"
  else
    status=1
    echo "fuzz: $t FAILED; log: $log; artifacts: $build/artifacts/" >&2
    tail -40 "$log" >&2
  fi
done
exit $status
