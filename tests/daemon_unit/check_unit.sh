#!/usr/bin/env bash
# Checks systemd/agentlockd.service the way the issue asks:
#   systemd-analyze verify --recursive-errors=yes --man=no   (no errors, no warnings)
#   systemd-analyze security --offline=yes                   (overall exposure at most 2.0)
# verify insists that ExecStart's binary exists, so it checks a copy of the unit whose ExecStart
# points at the binary just built; everything else is the shipped unit, byte for byte.
# Usage: check_unit.sh UNIT_FILE AGENTLOCKD_BINARY   (exit 77 = skipped: no systemd-analyze)
set -euo pipefail
unit=$1
binary=$2
max_exposure=2.0

if ! command -v systemd-analyze >/dev/null; then
  echo "SKIPPED: systemd-analyze is not installed (Debian package: systemd)" >&2
  exit 77
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
name=$(basename "$unit")
grep -q '^ExecStart=/usr/bin/agentlockd ' "$unit" || {
  echo "FAIL: $unit: ExecStart is not /usr/bin/agentlockd ..." >&2
  exit 1
}
sed "s|^ExecStart=/usr/bin/agentlockd |ExecStart=$binary |" "$unit" >"$work/$name"

echo "== systemd-analyze verify --recursive-errors=yes --man=no $name"
if ! out=$(systemd-analyze verify --recursive-errors=yes --man=no "$work/$name" 2>&1); then
  echo "$out" >&2
  echo "FAIL: systemd-analyze verify failed" >&2
  exit 1
fi
if [[ -n "$out" ]]; then
  echo "$out" >&2
  echo "FAIL: systemd-analyze verify printed warnings" >&2
  exit 1
fi
echo "ok"

echo "== systemd-analyze security --offline=yes $name"
out=$(systemd-analyze security --offline=yes "$unit" 2>&1) || true
exposure=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9][0-9.]*\).*/\1/p' <<<"$out")
if [[ -z "$exposure" ]]; then
  echo "$out" >&2
  echo "FAIL: no overall exposure level in systemd-analyze security's output" >&2
  exit 1
fi
echo "exposure $exposure (at most $max_exposure)"
if ! awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e <= m) }'; then
  grep '✗' <<<"$out" >&2 || true
  echo "FAIL: exposure $exposure is above $max_exposure" >&2
  exit 1
fi
echo "ok"
