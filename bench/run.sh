#!/bin/sh
# shellcheck disable=SC2129 # one redirect per figure reads best
# The agentlock benchmarks, in one run (not part of ctest). See bench/README.md.
#
#   bench/run.sh [pass] [scale] [latency] [idle] [stop] [tmux]   (no argument: the first four)
#
# Environment (all optional):
#   AGENTLOCK_BENCH_DIR  towns and results (default /var/tmp/agentlock-bench)
#   BUILD_DIR            CMake build directory (default <repo>/build-bench, Release)
#   RUNS                 timed runs per figure, after one warm-up (default 5)
#   THREADS              walk thread counts to compare (default 1,2,4)
#   POLL_ARGS            daemon flags for the polling baseline (default "--interval 1s", plus
#                        --no-events when the daemon knows it)
#   EVENT_ARGS           daemon flags for the event-driven run of latency and idle; unset: not run
#   LATENCY_LOCKS, LATENCY_SESSIONS, IDLE_LOCKS, IDLE_SECONDS  (1000, 100, 10000, 60)
#   TOWN_SESSIONS, TOWN_PANES, TOWN_SECONDS  tmux: sessions, panes each, idle window (100, 10, 60)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
dir=${AGENTLOCK_BENCH_DIR:-/var/tmp/agentlock-bench}
build=${BUILD_DIR:-$repo/build-bench}
runs=${RUNS:-5}
threads=${THREADS:-1,2,4}
what=${*:-pass scale latency idle}

echo "== building bench_pass and agentlockd (Release) in $build" >&2
cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DAGENTLOCK_BUILD_BENCH=ON >/dev/null
cmake --build "$build" -j1 --target bench_pass agentlockd >&2
bench_pass=$build/bench/bench_pass
daemon=$build/daemon/agentlockd
if [ -z "${POLL_ARGS+x}" ]; then
    POLL_ARGS="--interval 1s"
    if "$daemon" --help | grep -q -- --no-events; then
        POLL_ARGS="$POLL_ARGS --no-events"
    fi
fi

"$here/make_towns.sh"

out=$dir/results-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
empty=$out/empty-config.json
echo '{}' >"$empty"
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(git -C "$repo" rev-parse --short HEAD)$(git -C "$repo" diff --quiet HEAD -- lib daemon bench || echo ' (+ uncommitted changes)')"
    echo "nproc: $(nproc)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
    echo "filesystem: $(df -T "$dir" | awk 'NR == 2 {print $2 " on " $1}')"
    echo "kernel: $(uname -sr)"
    # shellcheck disable=SC2185 # GNU find: --version needs no path
    echo "find: $(find --version | head -1)"
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out/machine.txt"
cat "$out/machine.txt" >&2

for w in $what; do
    case $w in
    pass)
        for town in town-2k town-20k; do
            root=$dir/$town
            echo "== full pass: $town" >&2
            python3 "$here/timecmd.py" --name find --town $town --runs "$runs" -- \
                find "$root" -path '*/.runtime/agent.lock' >>"$out/pass.jsonl"
            python3 "$here/timecmd.py" --name find-prune --town $town --runs "$runs" -- \
                find "$root" -name .git -prune -o -path '*/.runtime/agent.lock' -print >>"$out/pass.jsonl"
            "$bench_pass" --mode pass --threads "$threads" --runs "$runs" "$root" >>"$out/pass.jsonl"
            "$bench_pass" --mode walk --threads "$threads" --runs "$runs" "$root" >>"$out/pass.jsonl"
            python3 "$here/timecmd.py" --name agentlockd-once --town $town --runs "$runs" -- \
                "$daemon" --once --dry-run --json --config "$empty" --root "$root" \
                --tmux-socket agentlock-bench-none --log-level error >>"$out/pass.jsonl"
        done
        ;;
    scale)
        root=$dir/scale-100k
        echo "== scale: 100,000 locks" >&2
        "$bench_pass" --mode pass --threads "$threads" --runs "$runs" "$root" >>"$out/scale.jsonl"
        "$bench_pass" --mode stream --threads "$threads" --runs "$runs" "$root" >>"$out/scale.jsonl"
        "$bench_pass" --mode walk --threads "$threads" --runs "$runs" "$root" >>"$out/scale.jsonl"
        # One process per thread count for RSS: peak RSS is a per-process high-water mark.
        for t in $(echo "$threads" | tr , ' '); do
            "$bench_pass" --mode pass --threads "$t" --runs 1 "$root" >>"$out/scale-rss.jsonl"
            "$bench_pass" --mode stream --threads "$t" --runs 1 "$root" >>"$out/scale-rss.jsonl"
        done
        # The daemon itself, events on (as installed), then polling: passes and memory.
        echo "== scale: agentlockd on 100,000 locks" >&2
        # shellcheck disable=SC2086
        python3 "$here/daemon_bench.py" scale --daemon "$daemon" --root "$root" \
            --passes "$runs" -- ${EVENT_ARGS:-} >>"$out/scale-daemon.jsonl"
        # shellcheck disable=SC2086
        python3 "$here/daemon_bench.py" scale --daemon "$daemon" --root "$root" \
            --passes "$runs" -- $POLL_ARGS >>"$out/scale-daemon.jsonl"
        python3 "$here/timecmd.py" --name agentlockd-once --town scale-100k --runs "$runs" -- \
            "$daemon" --once --dry-run --json --config "$empty" --root "$root" \
            --tmux-socket agentlock-bench-none --log-level error >>"$out/scale.jsonl"
        ;;
    latency)
        echo "== latency: polling baseline ($POLL_ARGS)" >&2
        # shellcheck disable=SC2086
        python3 "$here/daemon_bench.py" latency --daemon "$daemon" \
            --locks "${LATENCY_LOCKS:-1000}" --sessions "${LATENCY_SESSIONS:-100}" \
            -- $POLL_ARGS >>"$out/latency.jsonl"
        if [ -n "${EVENT_ARGS+x}" ]; then
            echo "== latency: events ($EVENT_ARGS)" >&2
            # shellcheck disable=SC2086
            python3 "$here/daemon_bench.py" latency --daemon "$daemon" \
                --locks "${LATENCY_LOCKS:-1000}" --sessions "${LATENCY_SESSIONS:-100}" \
                -- $EVENT_ARGS >>"$out/latency.jsonl"
        fi
        ;;
    idle)
        echo "== idle: polling baseline ($POLL_ARGS)" >&2
        # shellcheck disable=SC2086
        python3 "$here/daemon_bench.py" idle --daemon "$daemon" --locks "${IDLE_LOCKS:-10000}" \
            --seconds "${IDLE_SECONDS:-60}" -- $POLL_ARGS >>"$out/idle.jsonl"
        if [ -n "${EVENT_ARGS+x}" ]; then
            echo "== idle: events ($EVENT_ARGS)" >&2
            # shellcheck disable=SC2086
            python3 "$here/daemon_bench.py" idle --daemon "$daemon" --locks "${IDLE_LOCKS:-10000}" \
                --seconds "${IDLE_SECONDS:-60}" -- $EVENT_ARGS >>"$out/idle.jsonl"
        fi
        ;;
    stop)
        echo "== stop: SIGTERM during a full pass over town-20k" >&2
        python3 "$here/daemon_bench.py" stop --daemon "$daemon" --root "$dir/town-20k" \
            --runs "$runs" -- --no-events >>"$out/stop.jsonl"
        ;;
    tmux)
        # gastown's pattern: pane-held locks of dead owners; the daemon with its default flags
        # (events on: that is where tmux is watched), plus EVENT_ARGS when set.
        echo "== tmux: ${TOWN_SESSIONS:-100} sessions x ${TOWN_PANES:-10} pane-held locks" >&2
        # shellcheck disable=SC2086
        python3 "$here/daemon_bench.py" town --daemon "$daemon" --sessions "${TOWN_SESSIONS:-100}" \
            --panes "${TOWN_PANES:-10}" --seconds "${TOWN_SECONDS:-60}" \
            -- ${EVENT_ARGS:-} >>"$out/town.jsonl"
        ;;
    *)
        echo "bench/run.sh: unknown part '$w' (pass, scale, latency, idle, stop, tmux)" >&2
        exit 2
        ;;
    esac
done

echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/machine.txt"
python3 "$here/report.py" "$out" >"$out/tables.md"
echo "== results in $out" >&2
cat "$out/machine.txt" "$out/tables.md"
