#!/usr/bin/env bash
# agentlockd under a real systemd as PID 1: the packaged unit file, sd_notify, the watchdog and
# the sandboxing are only proven there.
#
# Set-up: a Debian 12 rootfs made by debootstrap (minbase, systemd, dbus, procps, tmux, plus
# libpam-systemd and dbus-user-session for a user manager with its bus, plus the
# package's runtime Depends so that no network is needed per run), cached outside the build folder
# in ${AGENTLOCK_ROOTFS_CACHE:-/var/cache/agentlock-test}; each run boots a throw-away overlay (or
# copy) of it with `systemd-nspawn -b`, installs agentlock_<version>_amd64.deb with dpkg inside the
# booted container, and drives it with nsenter into the container's PID 1.
#
# Checks: start reaches active (running) through READY=1; with a tmux server run by the service
# user, a stale lock is removed while a live lock and a session-held lock are kept; reload with a
# good and with a broken config keeps it active (config.reloaded, config.rejected); journalctl
# AGENTLOCK_EVENT=lock.removed -o json returns the removal with its fields; kill -STOP makes the
# watchdog fire and systemd restart it; stop is clean; systemd-analyze security: exposure <= 2.0.
# The user unit: a user with lingering on, ~/.config/agentlockd/agentlockd.json naming a root
# that user owns, and that user's own tmux server; `systemctl --user enable --now agentlockd` runs
# the daemon as that user, which removes a stale lock, keeps a lock held by a live tmux pane until
# the pane is killed, and logs to the user's journal (`journalctl --user -u agentlockd`).
#
# Usage: test_systemd.sh SOURCE_DIR [DEB]
#   DEB defaults to $AGENTLOCK_DEB, then to the newest agentlock_*_amd64.deb in
#   ${PKG_BUILD_DIR:-<SOURCE_DIR>/build-pkg}/deb; when there is none, or it is older than the
#   sources, scripts/package.sh builds it (a Release build: several minutes).
# Exit: 0 all checks passed, 1 a check failed, 77 skipped (nspawn cannot boot a container here).
set -euo pipefail
src=$(cd "${1:?usage: test_systemd.sh SOURCE_DIR [DEB]}" && pwd)
deb=${2:-${AGENTLOCK_DEB:-}}

suite=bookworm
include_base="systemd,systemd-sysv,dbus,procps,tmux,libpam-systemd,dbus-user-session"
cache_root=${AGENTLOCK_ROOTFS_CACHE:-/var/cache/agentlock-test}
t0=$SECONDS

say() { printf '[systemd-test %3ss] %s\n' "$((SECONDS - t0))" "$*"; }
die() {
  printf '[systemd-test %3ss] FAIL: %s\n' "$((SECONDS - t0))" "$*" >&2
  dump_state
  exit 1
}
# Replaced by the real one once the container runs.
dump_state() { :; }
# ctest runs this in <build>/tests/systemd; scripts/test.sh prints the reason from this file.
skip_file="$PWD/agentlockd_systemd.skipped"
rm -f "$skip_file"
skip() {
  printf '%s\n' "$*" >"$skip_file" 2>/dev/null || true
  {
    echo "################################################################################"
    echo "## SKIPPED: agentlockd under a real systemd was NOT tested"
    echo "## $*"
    echo "################################################################################"
  } >&2
  exit 77
}

if [[ $(id -u) -ne 0 ]]; then
  skip "systemd-nspawn needs root (running as $(id -un))"
fi

# --- host tools ---------------------------------------------------------------------------------
need=()
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v python3 >/dev/null || need+=(python3)
if ((${#need[@]} > 0)); then
  say "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- the package --------------------------------------------------------------------------------
# Built by scripts/package.sh (the test command runs it first); rebuilt here when missing or older
# than the sources it is made of, so the test never boots a stale package.
if [[ -z "$deb" ]]; then
  pkg_dir=${PKG_BUILD_DIR:-$src/build-pkg}
  # Prints the newest package, or nothing (with status 0) when there is none yet: a missing
  # directory is the normal state of a fresh checkout, not an error.
  find_deb() {
    [[ -d "$pkg_dir/deb" ]] || return 0
    find "$pkg_dir/deb" -maxdepth 1 -name 'agentlock_*_amd64.deb' | sort -V | tail -n 1
  }
  deb=$(find_deb)
  if [[ -z "$deb" ]]; then
    why="no agentlock_*_amd64.deb in $pkg_dir/deb"
  elif [[ -n $(find "$src/lib" "$src/daemon" "$src/systemd" "$src/config" "$src/packaging" \
    "$src/cmake" "$src/docs" "$src/CMakeLists.txt" -newer "$deb" -type f | sed -n 1p) ]]; then
    why="$deb is older than the sources"
  else
    why=""
  fi
  if [[ -n "$why" ]]; then
    [[ -x "$src/scripts/package.sh" ]] || die "$why, and $src/scripts/package.sh is missing"
    say "$why: building it with scripts/package.sh (log: $pkg_dir/package.log)"
    mkdir -p "$pkg_dir"
    PKG_BUILD_DIR="$pkg_dir" "$src/scripts/package.sh" >"$pkg_dir/package.log" 2>&1 || {
      tail -n 40 "$pkg_dir/package.log" >&2
      die "scripts/package.sh failed (log: $pkg_dir/package.log)"
    }
    deb=$(find_deb)
    [[ -n "$deb" ]] || die "scripts/package.sh succeeded but left no agentlock_*_amd64.deb in $pkg_dir/deb"
  fi
fi
[[ -f "$deb" ]] || die "no package at '$deb'"
say "package $deb"

# --- the cached rootfs --------------------------------------------------------------------------
# The mirror this machine's apt uses for $suite (deb822 .sources or one-line .list), else Debian's.
find_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    awk -v s="$suite" '
      /^[[:space:]]*$/ { if (u != "" && ok) { print u; exit } u = ""; ok = 0; next }
      /^URIs:/ { u = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) ok = 1 }
      END { if (u != "" && ok) print u }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$f" ]] || continue
    awk -v s="$suite" '$1 == "deb" && $0 !~ /\[/ && $3 == s { print $2 } $1 == "deb" && $2 ~ /^\[/ && $4 == s { print $3 }' "$f"
  done
  echo "http://deb.debian.org/debian"
}
mirror=$(find_mirror | sed -n 1p)

# The package's runtime Depends (first alternative of each, names only) go into the rootfs, so a
# run installs the .deb with dpkg alone; the cache key changes when they do.
# A virtual name (libspdlog1.10-fmt9) becomes the host's installed package that provides it, since
# debootstrap resolves no Provides.
real_package() {
  if dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q 'install ok installed'; then
    echo "$1"
    return
  fi
  dpkg-query -W -f='${Package} ${Provides}\n' | awk -v n="$1" \
    '{ for (i = 2; i <= NF; i++) { p = $i; sub(/,$/, "", p); if (p == n) { print $1; exit } } }'
}
depends=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/[[:space:]]//g' |
  grep -v '^$' | while read -r d; do
    r=$(real_package "$d")
    [[ -n "$r" ]] || { echo "cannot resolve Depends '$d' to a package" >&2; exit 1; }
    echo "$r"
  done | sort -u | paste -sd, -) || die "cannot turn the package's Depends into a package list"
include=$(printf '%s,%s' "$include_base" "$depends" | tr ',' '\n' | sort -u | paste -sd, -)
key=$(printf '%s minbase %s\n' "$suite" "$include" | sha256sum | cut -c1-12)
rootfs="$cache_root/rootfs-$suite-$key"
mkdir -p "$cache_root"
exec 9>"$cache_root/.lock"
flock 9
if [[ ! -x "$rootfs/usr/lib/systemd/systemd" ]]; then
  say "debootstrap --variant=minbase --include=$include $suite $rootfs $mirror"
  rm -rf "$rootfs.tmp"
  t_boot=$SECONDS
  if ! debootstrap --variant=minbase --include="$include" "$suite" "$rootfs.tmp" "$mirror" \
    >"$cache_root/debootstrap-$key.log" 2>&1; then
    tail -n 30 "$cache_root/debootstrap-$key.log" >&2
    rm -rf "$rootfs.tmp"
    die "debootstrap failed (log: $cache_root/debootstrap-$key.log)"
  fi
  # No network needed inside, and no apt lists to keep.
  rm -rf "$rootfs.tmp/var/cache/apt/archives/"*.deb "$rootfs.tmp/var/lib/apt/lists/"*_Packages
  mv "$rootfs.tmp" "$rootfs"
  say "debootstrap took $((SECONDS - t_boot)) s"
  # Older rootfs (another Depends list) are 250 MB each: keep only this one.
  for old in "$cache_root/rootfs-$suite-"*; do
    [[ "$old" == "$rootfs" ]] || rm -rf "$old"
  done
else
  say "cached rootfs $rootfs"
fi
flock -u 9

# --- a throw-away copy, booted ------------------------------------------------------------------
work=$(mktemp -d /var/tmp/agentlock-nspawn.XXXXXX)
root="$work/root"
machine="agentlock-test-$$"
nspawn_pid=""
ct_pid=""
mkdir -p "$work/upper" "$work/ovl" "$root"
if mount -t overlay overlay -o "lowerdir=$rootfs,upperdir=$work/upper,workdir=$work/ovl" "$root" \
  2>/dev/null; then
  overlay=1
else
  overlay=0
  say "overlayfs unavailable: copying the rootfs"
  cp -a "$rootfs/." "$root/"
fi

cleanup() {
  local rc=$?
  if [[ -n "$nspawn_pid" ]] && kill -0 "$nspawn_pid" 2>/dev/null; then
    kill -TERM "$nspawn_pid" 2>/dev/null || true # nspawn turns it into an orderly poweroff
    for _ in $(seq 100); do
      kill -0 "$nspawn_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$nspawn_pid" 2>/dev/null || true
    wait "$nspawn_pid" 2>/dev/null || true
  fi
  if ((overlay)); then umount "$root" 2>/dev/null || umount -l "$root" 2>/dev/null || true; fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

ct() { nsenter -t "$ct_pid" -a -- "$@"; }
# Polls a command in the container until it succeeds or `secs` pass.
wait_ct() {
  local secs=$1
  shift
  local end=$((SECONDS + secs))
  until ct "$@" >/dev/null 2>&1; do
    ((SECONDS < end)) || return 1
    sleep 0.2
  done
}
dump_state() {
  [[ -n "$ct_pid" ]] || { [[ -f "$work/console.log" ]] && tail -n 40 "$work/console.log" >&2; return 0; }
  echo "---- systemctl status agentlockd" >&2
  ct systemctl --no-pager status agentlockd >&2 2>&1 || true
  echo "---- journalctl -u agentlockd (last 60)" >&2
  ct journalctl --no-pager -u agentlockd -n 60 >&2 2>&1 || true
}

cp "$deb" "$root/root/agentlock.deb"
t_start=$SECONDS
SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 systemd-nspawn -b -D "$root" -M "$machine" --register=no \
  --keep-unit --console=passive </dev/null >"$work/console.log" 2>&1 &
nspawn_pid=$!
end=$((SECONDS + 30))
while [[ -z "$ct_pid" ]]; do
  if ! kill -0 "$nspawn_pid" 2>/dev/null; then
    tail -n 20 "$work/console.log" >&2
    skip "systemd-nspawn -b exited before the container booted (console above)"
  fi
  ((SECONDS < end)) || skip "systemd-nspawn -b started no init within 30 s"
  ct_pid=$(pgrep -P "$nspawn_pid" -x systemd || true)
  [[ -n "$ct_pid" ]] || sleep 0.1
done
# PID 1 exists before its bus does: ask until systemctl connects, then wait for the boot to end.
end=$((SECONDS + 60))
while :; do
  state=$(timeout 60 nsenter -t "$ct_pid" -a systemctl is-system-running --wait 2>&1 || true)
  case $state in
    running | degraded) break ;;
  esac
  if ((SECONDS >= end)) || ! kill -0 "$nspawn_pid" 2>/dev/null; then
    tail -n 20 "$work/console.log" >&2
    skip "the container's systemd did not come up (is-system-running: '$state')"
  fi
  sleep 0.2
done
say "booted in $((SECONDS - t_start)) s (system $state)"

# --- install the package ------------------------------------------------------------------------
ct dpkg -i /root/agentlock.deb >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; die "dpkg -i failed"; }
ct id agentlock >/dev/null || die "the package created no user agentlock (sysusers)"
[[ $(ct systemctl is-enabled agentlockd 2>&1 || true) == disabled ]] ||
  die "the package enabled agentlockd before the operator set the worker root"
[[ $(ct systemctl is-active agentlockd 2>&1 || true) == inactive ]] ||
  die "the package started agentlockd before the operator set the worker root"
# shellcheck disable=SC2016 # ${Conffiles} is dpkg-query's, not the shell's
ct dpkg-query -W -f='${Conffiles}\n' agentlock | grep -q '/etc/agentlockd/agentlockd.json' ||
  die "/etc/agentlockd/agentlockd.json is not a conffile"
say "installed: user agentlock, unit disabled and inactive, config a conffile"

# --- the world: a tmux server of the service user, a worker root with three locks ---------------
host=$(ct hostname)
ct systemd-run --quiet --unit=agent-tmux --uid=agentlock -p Type=forking \
  -E HOME=/nonexistent -E SHELL=/bin/sh tmux -f /dev/null new-session -d -s held 'sleep infinity' ||
  die "could not start a tmux server as agentlock"
wait_ct 10 runuser -u agentlock -- tmux has-session -t held || die "tmux session 'held' is not up"
ct systemd-run --quiet --unit=agent-live --uid=agentlock sleep infinity || die "no live agent"
live_pid=$(ct systemctl show -p MainPID --value agent-live)
dead_pid=$(ct sh -c 'echo $$')
[[ "$live_pid" =~ ^[0-9]+$ && "$live_pid" != 0 ]] || die "live agent has no PID"

now=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)
write_lock() { # worker pid session
  local d="$root/srv/agents/$1/.runtime"
  mkdir -p "$d"
  printf '{\n  "pid": %s,\n  "acquired_at": "%s",\n  "session_id": "%s",\n  "hostname": "%s"\n}' \
    "$2" "$now" "$3" "$host" >"$d/agent.lock"
}
write_lock rig/stale "$dead_pid" ""
write_lock rig/live "$live_pid" ""
write_lock rig/held "$dead_pid" "held"
ct chown -R agentlock:agentlock /srv/agents

# The operator's two steps, as docs/install.md gives them: the worker root (a drop-in with
# ReadWritePaths= and User=, the roots in the config), then start. Here also a short watchdog.
ct mkdir -p /etc/systemd/system/agentlockd.service.d
cat >"$root/etc/systemd/system/agentlockd.service.d/worker-root.conf" <<'EOF'
[Service]
User=agentlock
Group=agentlock
ReadWritePaths=/srv/agents
EOF
cat >"$root/etc/systemd/system/agentlockd.service.d/watchdog.conf" <<'EOF'
[Service]
WatchdogSec=2s
RestartSec=1s
EOF
# How each run of the daemon ended, as systemd saw it ('+': outside the sandbox, as root).
cat >"$root/etc/systemd/system/agentlockd.service.d/exit-status.conf" <<'EOF'
[Service]
ExecStopPost=+/bin/sh -c 'echo "$SERVICE_RESULT $EXIT_CODE $EXIT_STATUS" >>/run/agentlockd-exit.log'
EOF
write_config() { # interval log_level
  cat >"$root/etc/agentlockd/agentlockd.json" <<EOF
{
  "roots": ["/srv/agents"],
  "interval": "$1",
  "tmux_socket": "",
  "log_level": "$2"
}
EOF
}
write_config 1s debug
ct systemctl daemon-reload

show() { ct systemctl show -p "$1" --value agentlockd; }

# --- start: active (running) through READY=1 ----------------------------------------------------
t_check=$SECONDS
ct timeout 30 systemctl start agentlockd || die "systemctl start agentlockd failed"
[[ $(ct systemctl show -p Type --value agentlockd) == notify ]] || die "the unit is not Type=notify"
sub=$(show ActiveState)/$(show SubState)
[[ $sub == active/running ]] || die "after start: $sub, not active/running"
status=$(ct systemctl show -p StatusText --value agentlockd)
[[ -n "$status" ]] || die "no STATUS= from the daemon"
say "start: active (running) after READY=1; STATUS=$status"

# --- the stale lock goes, the live and session-held locks stay -----------------------------------
lock() { echo "/srv/agents/rig/$1/.runtime/agent.lock"; }
wait_ct 20 test ! -e "$(lock stale)" || die "the stale lock was not removed within 20 s"
passes_now=$(ct journalctl -u agentlockd AGENTLOCK_EVENT=pass.completed -o cat | wc -l)
wait_ct 20 sh -c "[ \$(journalctl -u agentlockd AGENTLOCK_EVENT=pass.completed -o cat | wc -l) -ge $((passes_now + 2)) ]" ||
  die "no two further passes after the removal"
ct test -e "$(lock live)" || die "the live agent's lock was removed"
ct test -e "$(lock held)" || die "the lock held by a live tmux session was removed"
ct journalctl -u agentlockd AGENTLOCK_EVENT=lock.held_by_session -o cat | grep -q . ||
  die "no lock.held_by_session event"
say "stale lock removed; live and session-held locks kept over two more passes"

# --- journalctl AGENTLOCK_EVENT=lock.removed -o json ----------------------------------------------
ct journalctl -u agentlockd AGENTLOCK_EVENT=lock.removed -o json >"$work/removed.json"
python3 - "$work/removed.json" "$(lock stale)" "$dead_pid" <<'EOF' || die "lock.removed in the journal lacks fields"
import json, sys
path, lock_path, pid = sys.argv[1], sys.argv[2], sys.argv[3]
entries = [json.loads(l) for l in open(path) if l.strip()]
assert len(entries) == 1, f"{len(entries)} lock.removed entries, expected 1"
e = entries[0]
want = {
    "AGENTLOCK_EVENT": "lock.removed",
    "AGENTLOCK_LOCK_PATH": lock_path,
    "AGENTLOCK_VERDICT": "stale",
    "AGENTLOCK_ACTION": "removed",
    "AGENTLOCK_PID": pid,
    "AGENTLOCK_PID_STATE": "dead",
    "AGENTLOCK_TMUX_STATE": "ok",
    "SYSLOG_IDENTIFIER": "agentlockd",
    "PRIORITY": "6",
}
for k, v in want.items():
    assert e.get(k) == v, f"{k}={e.get(k)!r}, expected {v!r}"
for k in ("AGENTLOCK_REASON", "AGENTLOCK_CONTENT", "AGENTLOCK_ACQUIRED_AT", "AGENTLOCK_WORKER",
          "AGENTLOCK_HOSTNAME", "MESSAGE", "_SYSTEMD_UNIT"):
    assert e.get(k), f"{k} is missing"
assert e["_SYSTEMD_UNIT"] == "agentlockd.service", e["_SYSTEMD_UNIT"]
assert json.loads(e["AGENTLOCK_CONTENT"])["pid"] == int(pid), "CONTENT is not the removed lock"
print("lock.removed:", e["MESSAGE"][:160])
EOF
say "journalctl AGENTLOCK_EVENT=lock.removed -o json: one entry with its fields"

# --- reload: a good config, then a broken one ------------------------------------------------------
main_pid=$(ct systemctl show -p MainPID --value agentlockd)
write_config 2s debug
ct timeout 20 systemctl reload agentlockd || die "systemctl reload (good config) failed"
wait_ct 10 sh -c 'journalctl -u agentlockd AGENTLOCK_EVENT=config.reloaded -o cat | grep -q .' ||
  die "no config.reloaded after a reload with a good config"
printf '{ "roots": ["/srv/agents"], "intervall": "1s" ' >"$root/etc/agentlockd/agentlockd.json"
ct timeout 20 systemctl reload agentlockd || die "systemctl reload (broken config) failed"
wait_ct 10 sh -c 'journalctl -u agentlockd AGENTLOCK_EVENT=config.rejected -o cat | grep -q .' ||
  die "no config.rejected after a reload with a broken config"
sub=$(show ActiveState)/$(show SubState)
[[ $sub == active/running ]] || die "after the reloads: $sub, not active/running"
[[ $(ct systemctl show -p MainPID --value agentlockd) == "$main_pid" ]] ||
  die "the daemon restarted during the reloads"
say "reload: config.reloaded, then config.rejected; still active (running), same PID"
write_config 2s debug
ct timeout 20 systemctl reload agentlockd || die "systemctl reload (restored config) failed"

# --- the watchdog ---------------------------------------------------------------------------------
restarts=$(ct systemctl show -p NRestarts --value agentlockd)
main_pid=$(ct systemctl show -p MainPID --value agentlockd)
ct kill -STOP "$main_pid"
wait_ct 30 sh -c "[ \$(systemctl show -p NRestarts --value agentlockd) -gt $restarts ] &&
  [ \$(systemctl show -p MainPID --value agentlockd) != $main_pid ] &&
  [ \$(systemctl show -p SubState --value agentlockd) = running ]" ||
  die "no restart by the watchdog within 30 s of kill -STOP $main_pid"
wait_ct 10 sh -c "journalctl -u agentlockd -o cat | grep -qi 'watchdog timeout'" ||
  die "systemd logged no watchdog timeout"
say "kill -STOP: watchdog timeout, restarted (PID $main_pid -> $(ct systemctl show -p MainPID --value agentlockd))"

# --- stop ---------------------------------------------------------------------------------------
ct timeout 40 systemctl stop agentlockd || die "systemctl stop agentlockd failed"
# The run that ended: exited by itself with status 0, not killed by a signal or a time-out.
stop="$(show ActiveState)/$(show Result); $(ct tail -n1 /run/agentlockd-exit.log)"
[[ $stop == "inactive/success; success exited 0" ]] ||
  die "stop was not clean: ActiveState/Result; SERVICE_RESULT EXIT_CODE EXIT_STATUS = $stop"
ct journalctl -u agentlockd AGENTLOCK_EVENT=daemon.stopping -o cat | grep -q . ||
  die "no daemon.stopping event"
say "stop: inactive, exit status 0, daemon.stopping logged"

# --- systemd-analyze security ----------------------------------------------------------------------
ct systemd-analyze security --no-pager agentlockd >"$work/security.txt" 2>&1 || true
exposure=$(sed -n 's/.*Overall exposure level for agentlockd.service: \([0-9.]*\).*/\1/p' "$work/security.txt")
[[ -n "$exposure" ]] || { cat "$work/security.txt" >&2; die "systemd-analyze security printed no exposure"; }
awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }' ||
  { grep '✗' "$work/security.txt" >&2 || true; die "exposure $exposure is above 2.0"; }
say "systemd-analyze security agentlockd: exposure $exposure (at most 2.0)"

# --- the user unit: a lingering user's own agentlockd and tmux server -------------------------
# As the user, through the user manager's bus ($XDG_RUNTIME_DIR/bus), as a login shell would.
user=dev
ct useradd --create-home --shell /bin/sh "$user" || die "useradd $user failed"
uid=$(ct id -u "$user")
as_user() { ct runuser -u "$user" -- env HOME="/home/$user" XDG_RUNTIME_DIR="/run/user/$uid" "$@"; }
ct loginctl enable-linger "$user" || die "loginctl enable-linger $user failed"
wait_ct 30 sh -c "systemctl is-active --quiet user@$uid.service && test -S /run/user/$uid/bus" || {
  ct systemctl --no-pager status "user@$uid.service" "user-runtime-dir@$uid.service" >&2 2>&1 || true
  ct journalctl --no-pager -n 40 -u systemd-logind -u "user@$uid.service" >&2 2>&1 || true
  die "lingering started no user manager for $user (user@$uid.service)"
}
[[ $(ct loginctl show-user "$user" -p Linger --value) == yes ]] || die "$user does not linger"
# The user's own tmux server (its default socket, /tmp/tmux-$uid/default), under the user manager.
as_user systemd-run --user --quiet --unit=agent-tmux -p Type=forking \
  tmux -f /dev/null new-session -d -s work 'sleep infinity' || die "no tmux server for $user"
wait_ct 10 runuser -u "$user" -- tmux has-session -t work || die "$user's tmux session is not up"
pane=$(as_user tmux list-panes -t work -F '#{pane_id}')
[[ "$pane" =~ ^%[0-9]+$ ]] || die "no pane id for $user's session: '$pane'"
user_dead=$(ct sh -c 'echo $$')
user_lock() { echo "/home/$user/town/rig/$1/.runtime/agent.lock"; }
for w in stale:"" pane:"$pane"; do
  d="$root/home/$user/town/rig/${w%%:*}/.runtime"
  mkdir -p "$d"
  printf '{"pid": %s, "acquired_at": "%s", "session_id": "%s", "hostname": "%s"}\n' \
    "$user_dead" "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" "${w#*:}" "$host" >"$d/agent.lock"
done
mkdir -p "$root/home/$user/.config/agentlockd"
printf '{ "roots": ["/home/%s/town"], "interval": "1s", "log_level": "debug" }\n' "$user" \
  >"$root/home/$user/.config/agentlockd/agentlockd.json"
ct chown -R "$user:$user" "/home/$user/town" "/home/$user/.config"

as_user timeout 30 systemctl --user enable --now agentlockd ||
  die "systemctl --user enable --now agentlockd failed as $user"
[[ $(as_user systemctl --user is-enabled agentlockd 2>&1) == enabled ]] || die "user unit not enabled"
[[ $(as_user systemctl --user is-active agentlockd 2>&1) == active ]] || die "user unit not active"
user_pid=$(as_user systemctl --user show -p MainPID --value agentlockd)
owner=$(ct ps -o user= -p "$user_pid" | tr -d ' ')
[[ "$owner" == "$user" ]] || die "the user's agentlockd (PID $user_pid) runs as '$owner', not $user"
say "user unit: $user lingers; systemctl --user enable --now agentlockd: active, PID $user_pid runs as $user"

ujournal() { as_user journalctl --user -u agentlockd "$@"; }
wait_ct 20 test ! -e "$(user_lock stale)" || die "the user's daemon did not remove the stale lock"
passes_now=$(ujournal AGENTLOCK_EVENT=pass.completed -o cat | wc -l)
wait_ct 20 sh -c "[ \$(runuser -u $user -- env XDG_RUNTIME_DIR=/run/user/$uid journalctl --user -u agentlockd AGENTLOCK_EVENT=pass.completed -o cat | wc -l) -ge $((passes_now + 2)) ]" ||
  die "no two further passes in $user's journal (journalctl --user -u agentlockd)"
ct test -e "$(user_lock pane)" || die "the lock held by $user's live tmux pane $pane was removed"
ujournal AGENTLOCK_EVENT=lock.held_by_session -o cat | grep -q . ||
  die "no lock.held_by_session in $user's journal: the daemon did not see $user's tmux"
say "user unit: stale lock removed; the lock of live pane $pane kept over two more passes"

as_user tmux kill-pane -t "$pane" || die "could not kill pane $pane"
wait_ct 10 test ! -e "$(user_lock pane)" || die "the lock of killed pane $pane was not removed"
ujournal AGENTLOCK_EVENT=lock.removed -o json >"$work/user-removed.json"
python3 - "$work/user-removed.json" "$(user_lock stale)" "$(user_lock pane)" "$uid" <<'PY' ||
import json, sys
path, stale, pane, uid = sys.argv[1:]
entries = [json.loads(l) for l in open(path) if l.strip()]
by_path = {e.get("AGENTLOCK_LOCK_PATH"): e for e in entries}
assert set(by_path) == {stale, pane}, f"lock.removed for {sorted(by_path)}"
for e in entries:
    assert e.get("_SYSTEMD_USER_UNIT") == "agentlockd.service", e.get("_SYSTEMD_USER_UNIT")
    assert e.get("_UID") == uid, f"_UID={e.get('_UID')}"
assert by_path[stale]["AGENTLOCK_TRIGGER"] == "pass", by_path[stale].get("AGENTLOCK_TRIGGER")
print("user journal:", ", ".join(e["AGENTLOCK_TRIGGER"] + " " + e["AGENTLOCK_LOCK_PATH"] for e in entries))
PY
  die "lock.removed in $user's journal lacks what it should say"
say "user unit: pane killed, its lock removed; both removals in journalctl --user -u agentlockd"
as_user timeout 40 systemctl --user stop agentlockd || die "systemctl --user stop agentlockd failed"
[[ $(as_user systemctl --user show -p Result --value agentlockd) == success ]] ||
  die "the user's agentlockd did not stop cleanly"

say "checks took $((SECONDS - t_check)) s; whole test $((SECONDS - t0)) s"
echo "PASS: agentlockd under systemd-nspawn -b (systemd $(ct systemctl --version | sed -n 1p | cut -d' ' -f2))"
