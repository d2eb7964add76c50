#!/usr/bin/env bash
# The install test: `cmake --install` of a finished build into a staging
# directory (DESTDIR), a check of the layout, then a consumer project outside the tree that finds
# the staged package with find_package(agentlock) and runs against it.
# Usage: check_install.sh BUILD_DIR INSTALL_PREFIX CONSUMER_SOURCE_DIR CMAKE_COMMAND
set -euo pipefail
build=$1
prefix=$2
consumer_src=$3
cmake=${4:-cmake}

work=$(mktemp -d "${TMPDIR:-/tmp}/agentlock-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
stage="$work/stage"
root="$stage$prefix"

echo "== DESTDIR=$stage cmake --install $build   (prefix $prefix)"
DESTDIR="$stage" "$cmake" --install "$build" >"$work/install.log" 2>&1 || {
  cat "$work/install.log" >&2
  echo "FAIL: cmake --install failed" >&2
  exit 1
}

fail=0
expect() { # path under the staged prefix (absolute paths: under the staging root)
  local p=$1
  case $p in /*) p="$stage$p" ;; *) p="$root/$p" ;; esac
  if [[ -e "$p" ]]; then echo "  ok   ${p#"$stage"}"; else echo "  MISSING ${p#"$stage"}" >&2; fail=1; fi
}
# GNUInstallDirs: /usr and / put the config in /etc, any other prefix under itself.
case $prefix in
  /usr | /) etc=/etc ;;
  *) etc=etc ;;
esac
expect bin/agentlockd
expect lib/systemd/system/agentlockd.service
expect "$etc/agentlockd/agentlockd.json"
expect share/man/man8/agentlockd.8.gz
expect bin/agentlock
expect lib/systemd/user/agentlockd.service
expect share/man/man1/agentlock.1.gz
expect share/bash-completion/completions/agentlock
expect share/doc/agentlock/copyright
expect include/agentlock/lock.hpp
expect include/agentlock/result.hpp
if grep -q '^User=' "$root/lib/systemd/system/agentlockd.service" 2>/dev/null; then
  expect lib/sysusers.d/agentlock.conf
fi
config_dir=$(dirname "$(find "$root" -name agentlockConfig.cmake -print -quit)")
if [[ "$config_dir" == "." ]]; then
  echo "  MISSING agentlockConfig.cmake" >&2
  fail=1
else
  expect "${config_dir#"$root/"}/agentlockConfigVersion.cmake"
  expect "${config_dir#"$root/"}/agentlockTargets.cmake"
  lib=$(find "$root" -name libagentlock.a -print -quit)
  [[ -n "$lib" ]] && echo "  ok   ${lib#"$stage"}" || { echo "  MISSING libagentlock.a" >&2; fail=1; }
fi
if ! zcat "$root/share/man/man8/agentlockd.8.gz" | grep -q '^\.TH AGENTLOCKD 8'; then
  echo "  the man page is not a troff page of section 8" >&2
  fail=1
fi
if ! zcat "$root/share/man/man1/agentlock.1.gz" | grep -q '^\.TH AGENTLOCK 1'; then
  echo "  agentlock's man page is not a troff page of section 1" >&2
  fail=1
fi
((fail == 0)) || { echo "FAIL: the installed layout is incomplete" >&2; exit 1; }

echo "== the installed agentlockd runs"
"$root/bin/agentlockd" --version

echo "== consumer project: find_package(agentlock CONFIG REQUIRED) from $root"
"$cmake" -S "$consumer_src" -B "$work/consumer-build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$root" >"$work/configure.log" 2>&1 || {
  cat "$work/configure.log" >&2
  echo "FAIL: the consumer project does not configure against the installed package" >&2
  exit 1
}
found=$(sed -n 's/^agentlock_DIR:PATH=//p' "$work/consumer-build/CMakeCache.txt")
echo "agentlock_DIR=$found"
if [[ "$found" != "$root"/* ]]; then
  echo "FAIL: find_package found agentlock at $found, not in the staged install" >&2
  exit 1
fi
"$cmake" --build "$work/consumer-build" -j1 >"$work/build.log" 2>&1 || {
  cat "$work/build.log" >&2
  echo "FAIL: the consumer project does not build against the installed package" >&2
  exit 1
}
# The consumer compiled against the staged headers, not the source tree's.
if grep -rq "$(cd "$build" && pwd)\|lib/include" "$work/consumer-build/build.ninja"; then
  echo "FAIL: the consumer build refers to the agentlock source or build tree" >&2
  exit 1
fi
mkdir "$work/worker"
"$work/consumer-build/consumer" "$work/worker"
echo "PASS: installed layout, find_package(agentlock), consumer built and ran"
