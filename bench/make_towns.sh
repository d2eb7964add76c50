#!/bin/sh
# Builds the benchmark towns once and caches them under $AGENTLOCK_BENCH_DIR
# (default /var/tmp/agentlock-bench). A town is rebuilt only if its .complete
# marker is missing (an interrupted build is thrown away and started again).
#
#   town-2k    20 rigs x 100 workers, mktree.py defaults: ~330k entries
#   town-20k   200 rigs x 100 workers: ~3.3M entries
#   scale-100k 100,000 workers with only .runtime/agent.lock (mkscale.py)
#
# mktree.py's live locks name PID 1 (always alive), so the towns stay valid.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dir=${AGENTLOCK_BENCH_DIR:-/var/tmp/agentlock-bench}
mktree=${MKTREE:-$here/mktree.py}
mkdir -p "$dir"

build() { # name, generator command...
    name=$1
    shift
    if [ -f "$dir/$name/.complete" ]; then
        return 0
    fi
    rm -rf "${dir:?}/${name:?}"
    echo "building $dir/$name ..." >&2
    start=$(date +%s.%N)
    nice -n 19 "$@" >/dev/null
    end=$(date +%s.%N)
    secs=$(echo "$end - $start" | bc)
    echo "$secs" >"$dir/$name/.build-seconds"
    touch "$dir/$name/.complete"
    echo "built $dir/$name in ${secs}s" >&2
}

only=${1:-all}
case $only in all | town-2k) build town-2k python3 "$mktree" "$dir/town-2k" 20 100 100 10 50 1 ;; esac
case $only in all | scale-100k) build scale-100k python3 "$here/mkscale.py" "$dir/scale-100k" 100000 1 ;; esac
case $only in all | town-20k) build town-20k python3 "$mktree" "$dir/town-20k" 200 100 100 10 50 1 ;; esac
