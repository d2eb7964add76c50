#!/usr/bin/env bash
# The run command: builds agentlockd, creates a demo worker root and runs the daemon on it in the
# foreground. The root holds a live agent, a stale lock, an orphaned lock, a lock held by a real
# tmux session on a private socket, an unparseable lock, and a worker whose .runtime is a
# symlink (never followed: reported). After a few seconds the demo ends that tmux session, and
# the daemon removes the lock it was holding.
#
#   scripts/demo.sh            run until Ctrl-C
#   scripts/demo.sh --once     one pass, JSON report on stdout, then exit
#   DEMO_SECONDS=15 scripts/demo.sh   stop by itself after 15 s
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/install-deps.sh" >&2
AGENTLOCK_JOBS=${AGENTLOCK_JOBS:-$(nproc)} "$here/scripts/build.sh" >&2
daemon="${BUILD_DIR:-$here/build}/daemon/agentlockd"

demo=$(mktemp -d "${TMPDIR:-/tmp}/agentlock-demo.XXXXXX")
socket="agentlock-demo-$$"
agent_pid=""
orphan_pid=""
cleanup() {
  if [[ -n "$agent_pid" ]]; then kill "$agent_pid" 2>/dev/null || true; fi
  if [[ -n "$orphan_pid" ]]; then kill "$orphan_pid" 2>/dev/null || true; fi
  tmux -L "$socket" kill-server 2>/dev/null || true
  rm -rf "$demo"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

host=$(hostname)
now() { date -u +%Y-%m-%dT%H:%M:%S.%NZ; }
lock() { # worker pid session
  mkdir -p "$demo/$1/.runtime"
  printf '{\n  "pid": %s,\n  "acquired_at": "%s",\n  "session_id": "%s",\n  "hostname": "%s"\n}' \
    "$2" "$(now)" "$3" "$host" >"$demo/$1/.runtime/agent.lock"
}
dead_pid() { sh -c 'echo $$'; }

sleep 100000 & agent_pid=$!
sleep 100000 & orphan_pid=$!
tmux -L "$socket" -f /dev/null new-session -d -s demo-held 'sleep 100000'

lock rig/live-agent "$agent_pid" ""
lock rig/stale-agent "$(dead_pid)" ""
lock rig/orphaned-agent "$orphan_pid" "session-that-ended"
lock rig/tmux-held-agent "$(dead_pid)" "demo-held"
mkdir -p "$demo/rig/half-written/.runtime"
printf '{"pid": 12' >"$demo/rig/half-written/.runtime/agent.lock"
mkdir -p "$demo/shared-runtime" "$demo/rig/linked-agent"
ln -s ../../shared-runtime "$demo/rig/linked-agent/.runtime"

echo "demo worker root: $demo (tmux socket -L $socket)" >&2
if [[ "${1:-}" == "--once" ]]; then
  "$daemon" --once --json --root "$demo" --tmux-socket "$socket"
  exit 0
fi

echo "agentlockd runs in the foreground; the demo ends tmux session demo-held in 5 s." >&2
( sleep 5; echo ">>> demo: killing tmux session demo-held" >&2
  tmux -L "$socket" kill-session -t demo-held 2>/dev/null || true ) &
args=(--root "$demo" --tmux-socket "$socket" --interval 2s --log-format text)
if [[ -n "${DEMO_SECONDS:-}" ]]; then
  timeout --signal=TERM "$DEMO_SECONDS" "$daemon" "${args[@]}" || true
else
  "$daemon" "${args[@]}"
fi
