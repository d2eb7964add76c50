#!/usr/bin/env bash
# The test command: installs dependencies, builds, builds the Debian packages (lintian must report
# no error), runs every test suite. Says loudly when the real-systemd test was skipped.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/install-deps.sh"
"$here/scripts/build.sh"
# The .deb files that tests/systemd boots (build-pkg/deb/), checked by lintian.
"$here/scripts/package.sh"
build=${BUILD_DIR:-$here/build}
cd "$build"
rm -f "$build/tests/systemd/agentlockd_systemd.skipped"
status=0
ctest --output-on-failure -j "${AGENTLOCK_JOBS:-$(nproc)}" --timeout 300 2>&1 |
  tee "$build/ctest.log" || status=$?
if grep -q 'agentlockd_systemd .*Skipped' "$build/ctest.log"; then
  echo "################################################################################"
  echo "## WARNING: agentlockd_systemd was SKIPPED: agentlockd was NOT tested under a real"
  echo "## systemd (tests/systemd). Reason:"
  sed 's/^/##   /' "$build/tests/systemd/agentlockd_systemd.skipped" 2>/dev/null ||
    echo "##   (see: ctest -R agentlockd_systemd -V)"
  echo "################################################################################"
fi
# The checks beyond ctest (docs/testing.md): the fuzzers (30 s a target), the whole suite under
# ASan+UBSan and the concurrent parts under TSan, clang-tidy. Each runs even after a failure; all count.
failed_steps=()
for step in fuzz.sh sanitize.sh tidy.sh; do
  "$here/scripts/$step" || { status=1; failed_steps+=("$step"); }
done
# What failed, again at the end, where a CI page's tail shows it.
if ((status != 0)); then
  "$here/scripts/failures.sh" "$build/ctest.log" "the main run ($build/ctest.log)"
  "$here/scripts/failures.sh" "${ASAN_BUILD_DIR:-$here/build-asan}/ctest.log" "the ASan+UBSan run"
  echo "test: FAILED (exit $status); steps that failed after ctest: ${failed_steps[*]:-none}" >&2
fi
exit $status
