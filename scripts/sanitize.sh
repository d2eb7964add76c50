#!/usr/bin/env bash
# The suite under sanitizers:
#   - ASan+UBSan: the whole suite (every ctest test, the soak included), built in
#     ${ASAN_BUILD_DIR:-build-asan} with -DAGENTLOCK_SANITIZE=address;undefined;
#   - TSan: the concurrent parts, built in ${TSAN_BUILD_DIR:-build-tsan} with
#     -DAGENTLOCK_SANITIZE=thread: the daemon's service and event-loop tests, the end-to-end tests
#     of the (TSan-built) daemon, the parallel walk, the path pool and streaming pass
#     (test_scale_parts), and the short soak.
# Every process writes its sanitizer reports to <build>/sanitizer-reports/ (child processes too:
# the daemon under test, the soak's agents), and any report fails the run, even one from a
# process whose test did not notice.
#
#   scripts/sanitize.sh          # both
#   scripts/sanitize.sh asan     # or: tsan
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
jobs=${AGENTLOCK_JOBS:-$(nproc)}
asan=${ASAN_BUILD_DIR:-$here/build-asan}
tsan=${TSAN_BUILD_DIR:-$here/build-tsan}
what=${1:-all}

# Not run under ASan, with the reason:
#   agentlockd_systemd          boots the packaged .deb (build-pkg/) in a container: it tests the
#                               package and the unit, not this build; the main run covers it
#   agentlock_install_consumer  builds a consumer project against the installed tree with plain
#                               flags, which cannot link an ASan-built static library
asan_exclude='^(agentlockd_systemd|agentlock_install_consumer)$'

# The concurrent test binaries run under TSan (those that exist in this tree).
tsan_binaries=(test_daemon_service test_daemon_e2e test_parallel_walk test_daemon_events
  test_events_e2e test_check_worker test_scale_parts)

configure() { # dir sanitizers
  cmake -S "$here" -B "$1" -G Ninja -DAGENTLOCK_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    "-DAGENTLOCK_SANITIZE=$2" >/dev/null
}

# Fails (returns 1) when the reports directory holds any report; prints them.
check_reports() { # dir
  local files
  files=$(find "$1" -type f -size +0 2>/dev/null | sort)
  if [[ -z $files ]]; then
    return 0
  fi
  echo "sanitize: sanitizer reports in $1:" >&2
  for f in $files; do
    echo "---- $f" >&2
    head -60 "$f" >&2
  done
  return 1
}

status=0
if [[ $what == all || $what == asan ]]; then
  start=$(date +%s)
  configure "$asan" "address;undefined"
  cmake --build "$asan" -j "$jobs"
  reports="$asan/sanitizer-reports"
  rm -rf "$reports" && mkdir -p "$reports"
  (
    cd "$asan"
    export ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1"
    export UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1:halt_on_error=1"
    ctest --output-on-failure -j "$jobs" --timeout 900 -E "$asan_exclude" 2>&1 | tee ctest.log
  ) || status=1
  check_reports "$reports" || status=1
  echo "sanitize: ASan+UBSan done in $(($(date +%s) - start)) s (status so far: $status)"
fi

if [[ $what == all || $what == tsan ]]; then
  start=$(date +%s)
  configure "$tsan" "thread"
  available=$(cmake --build "$tsan" --target help | sed -n 's/^\([A-Za-z0-9_]*\): .*/\1/p')
  targets=(agentlockd soak_driver soak_agent)
  for b in "${tsan_binaries[@]}"; do
    if grep -qx "$b" <<<"$available"; then targets+=("$b"); fi
  done
  cmake --build "$tsan" -j "$jobs" --target "${targets[@]}"
  reports="$tsan/sanitizer-reports"
  rm -rf "$reports" && mkdir -p "$reports"
  (
    cd "$tsan"
    export TSAN_OPTIONS="log_path=$reports/tsan:halt_on_error=1:second_deadlock_stack=1"
    export AGENTLOCKD="$tsan/daemon/agentlockd"
    failed=0
    for t in "${targets[@]}"; do
      case $t in agentlockd | soak_driver | soak_agent) continue ;; esac
      echo "sanitize: TSan: $t"
      if ! "$tsan/tests/$t" --gtest_brief=1 >"$tsan/$t.log" 2>&1; then
        echo "sanitize: TSan: $t FAILED (log: $tsan/$t.log)" >&2
        tail -40 "$tsan/$t.log" >&2
        failed=1
      fi
    done
    ctest --output-on-failure --timeout 900 -R '^soak_short$' || failed=1
    exit $failed
  ) || status=1
  check_reports "$reports" || status=1
  echo "sanitize: TSan done in $(($(date +%s) - start)) s (status so far: $status)"
fi
exit $status
