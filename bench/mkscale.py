#!/usr/bin/env python3
"""Build a scale tree for agentlock benchmarks: N workers, each nothing but
.runtime/agent.lock, under ROOT/rigNNN/polecats/wNNNNN (1,000 workers a rig).

    mkscale.py ROOT N [LIVE_PID]

Lock kinds cycle by worker number: live, live, stale (dead PID, no session),
invalid JSON, so a dry-run pass reads, parses, probes and judges every one of
the N locks and takes the reaper's dry-run path for a quarter of them.
LIVE_PID defaults to 1 (init: always alive); acquired_at is the build time, so
PID 1 counts as the owner until the next reboot (then those locks turn stale).
Deterministic; about 10 s for 100,000 workers on an ext4 disk."""
import json
import os
import socket
import sys
import time


def main(root, n, live_pid=1):
    host = socket.gethostname()
    ns = time.time_ns()
    acquired = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"
    os.makedirs(root, exist_ok=True)
    for i in range(n):
        rt = os.path.join(root, f"rig{i // 1000:03d}", "polecats", f"w{i % 1000:05d}", ".runtime")
        os.makedirs(rt, exist_ok=True)
        kind = i % 4
        with open(os.path.join(rt, "agent.lock"), "w") as fh:
            if kind == 3:
                fh.write("{not json")
            else:
                pid = live_pid if kind < 2 else 999999999
                json.dump({"pid": pid, "acquired_at": acquired,
                           "session_id": "", "hostname": host}, fh, indent=2)
    print(n, "workers under", root)


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], *[int(x) for x in a[1:]])
