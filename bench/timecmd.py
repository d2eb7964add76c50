#!/usr/bin/env python3
"""Times a command: one untimed warm-up run (the page cache is then warm), then --runs timed
runs. Prints one JSON line: the median and every run's wall time, the median CPU time (user +
sys of the command and its children) and the peak RSS of the largest run.

    timecmd.py --name NAME [--town TOWN] [--runs 5] -- COMMAND ARGS...
"""
import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def cpu_children():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def main():
    argv = sys.argv[1:]
    cut = argv.index("--")
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--town", help="recorded as is, for report.py")
    a = ap.parse_args(argv[:cut])
    cmd = argv[cut + 1:]
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)  # warm-up
    wall, cpu = [], []
    for _ in range(a.runs):
        c0 = cpu_children()
        t0 = time.monotonic()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
        wall.append((time.monotonic() - t0) * 1e3)
        cpu.append((cpu_children() - c0) * 1e3)
    print(json.dumps({
        "name": a.name, "town": a.town, "cmd": cmd, "median_ms": statistics.median(wall),
        "runs_ms": [round(x, 1) for x in wall], "cpu_median_ms": statistics.median(cpu),
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}), flush=True)


if __name__ == "__main__":
    main()
