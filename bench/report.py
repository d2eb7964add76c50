#!/usr/bin/env python3
"""Turns a results directory of bench/run.sh (JSON lines) into the Markdown tables of
bench/RESULTS.md.   report.py RESULTS_DIR"""
import json
import os
import sys


def load(path):
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.startswith("{")]


def ms(x):
    return "-" if x is None else f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def town_of(rec):
    if "town" in rec:
        return rec["town"]
    return os.path.basename(rec["roots"][0])


def pass_table(recs, town):
    rows = [r for r in recs if town_of(r) == town]
    find = next((r for r in rows if r.get("name") == "find"), None)
    base = find["median_ms"] if find else None
    out = [f"**{town}**", "",
           "| what | median wall ms | best wall ms | median CPU ms | median vs find (no prune) |",
           "|---|---:|---:|---:|---:|"]

    def row(label, r):
        ratio = f"{r['median_ms'] / base:.2f}x" if base else "-"
        out.append(f"| {label} | {ms(r['median_ms'])} | {ms(min(r['runs_ms']))} | "
                   f"{ms(r.get('cpu_median_ms'))} | {ratio} |")

    labels = {"find": "`find ROOT -path '*/.runtime/agent.lock'`",
              "find-prune": "`find ROOT -name .git -prune -o -path '*/.runtime/agent.lock' -print`",
              "agentlockd-once": "`agentlockd --once --dry-run --json` (whole process)"}
    for name in ("find", "find-prune", "agentlockd-once"):
        r = next((x for x in rows if x.get("name") == name), None)
        if r:
            row(labels[name], r)
    for mode, label in (("pass", "run_pass, dry run, real probes"), ("walk", "walk only")):
        for r in sorted((x for x in rows if x.get("mode") == mode), key=lambda x: x["threads"]):
            kind = "serial walk" if r["threads"] == 1 else f"parallel walk, {r['threads']} threads"
            row(f"{label}: {kind}", r)
    info = next((x for x in rows if x.get("mode") == "pass"), None)
    if info:
        out.append("")
        out.append(f"dirs read {info['dirs']:,}, locks {info['locks']:,}, "
                   f"unreadable {info['unreadable_dirs']}, would-remove {info['would_remove']:,}")
    return out


def scale_table(recs, rss):
    rss_by_mode = {(r["mode"], r["threads"]): r["peak_rss_kib"] for r in rss}
    out = ["| what | median wall ms | best wall ms | median CPU ms | peak RSS MiB |",
           "|---|---:|---:|---:|---:|"]
    for r in recs:
        if r.get("mode") in ("pass", "stream"):
            how = "records kept" if r["mode"] == "pass" else "streamed, as the daemon runs it"
            label = (f"run_pass dry run ({how}), {r['threads']} thread" +
                     ("s" if r["threads"] > 1 else ""))
            kib = rss_by_mode.get((r["mode"], r["threads"]))
        elif r.get("mode") == "walk":
            # One process ran every thread count: its peak is that of the largest.
            label = f"walk only, {r['threads']} thread" + ("s" if r["threads"] > 1 else "")
            kib = r["peak_rss_kib"]
        else:
            label = "`agentlockd --once --dry-run --json` (whole process)"
            kib = r["peak_rss_kib"]
        peak = "-" if kib is None else f"{kib / 1024:.1f}"
        out.append(f"| {label} | {ms(r['median_ms'])} | {ms(min(r['runs_ms']))} | "
                   f"{ms(r['cpu_median_ms'])} | {peak} |")
    info = next((x for x in recs if "mode" in x), None)
    if info:
        out += ["", f"dirs read {info['dirs']:,}, locks {info['locks']:,}, "
                    f"would-remove {info['would_remove']:,}"]
    return out


def scale_daemon_table(recs):
    out = ["| daemon | locks | passes | median pass ms | RSS between passes MiB | "
           "peak RSS (VmHWM) MiB | pidfds | watches | open findings |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in recs:
        args = " ".join(r["daemon_args"])
        between = max(r["rss_kib_between_passes"]) / 1024
        out.append(f"| `agentlockd {args}` | {r['locks']:,} | {r['passes']} | "
                   f"{ms(r['median_pass_ms'])} | {between:.1f} | {r['hwm_kib'] / 1024:.1f} | "
                   f"{r.get('pidfds') if r.get('pidfds') is not None else '-'} | "
                   f"{r.get('watches') if r.get('watches') is not None else '-'} | "
                   f"{r['open_findings']:,} |")
    return out


def latency_table(recs):
    out = ["| daemon | case | locks | p50 ms | p99 ms | max ms | missing |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for r in recs:
        args = " ".join(r["daemon_args"]) or "(defaults)"
        for key, label in (("owner_death_no_session", "owner death, no session"),
                           ("session_end_held_by_session", "session end, held-by-session")):
            s = r.get(key)
            if s:
                out.append(f"| `{args}` | {label} | {s['count']} | {ms(s['p50_ms'])} | "
                           f"{ms(s['p99_ms'])} | {ms(s['max_ms'])} | {s['missing']} |")
        out.append(f"| `{args}` | live owners' locks removed (must be 0) | | | | | "
                   f"{r['control_locks_removed']} |")
    return out


def idle_table(recs):
    out = ["| daemon | locks (owner processes, their memory) | first pass ms | CPU s over window | CPU s/min | "
           "RSS MiB end | VmHWM MiB | fds |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in recs:
        args = " ".join(r["daemon_args"]) or "(defaults)"
        mem = f", {r['owners_mem_mib']:,} MiB" if "owners_mem_mib" in r else ""
        out.append(f"| `{args}` | {r['locks']:,} ({r['owners']:,}{mem}) | {r['first_pass_elapsed_ms']} | "
                   f"{r['cpu_s']} / {r['window_s']} s | {r['cpu_s_per_min']} | "
                   f"{r['rss_kib_end'] / 1024:.1f} | {r['hwm_kib'] / 1024:.1f} | {r['fds']} |")
    return out


def town_table(recs):
    out = ["| daemon | case | locks | p50 ms | p90 ms | p99 ms | max ms | missing |",
           "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in recs:
        args = " ".join(r["daemon_args"]) or "(defaults)"
        for key, label in (("pane_exit", "pane process killed"),
                           ("session_kill", f"kill-session ({r['session_kill']['sessions']} "
                                            "sessions)"),
                           ("server_kill", "kill-server (server exit "
                                           f"{ms(r['server_kill']['server_exit_ms'])} ms)")):
            s = r[key]
            out.append(f"| `{args}` | {label} | {s['count']:,} | {ms(s['p50_ms'])} | "
                       f"{ms(s['p90_ms'])} | {ms(s['p99_ms'])} | {ms(s['max_ms'])} | "
                       f"{s['missing']} |")
        out.append(f"| `{args}` | live panes' locks removed (must be 0) | | | | | | "
                   f"{r['live_pane_locks_removed'] + r['control_locks_removed']} |")
    out += ["", "| daemon | locks (sessions x panes) | window s | CPU s/min: agentlockd | "
                "its tmux clients | tmux server | total |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for r in recs:
        args = " ".join(r["daemon_args"]) or "(defaults)"
        c = r["idle"]["cpu_s_per_min"]
        out.append(f"| `{args}` | {r['locks']:,} ({r['sessions']} x {r['panes_per_session']}) | "
                   f"{r['idle']['window_s']} | {c['daemon']} | {c['daemon_children']} | "
                   f"{c['tmux_server']} | {c['total']} |")
    return out


def main():
    d = sys.argv[1]
    lines = []
    passes = load(os.path.join(d, "pass.jsonl"))
    if passes:
        lines += ["### 1. Full pass (page cache warm)", ""]
        for town in dict.fromkeys(town_of(r) for r in passes):
            lines += pass_table(passes, town) + [""]
    scale = load(os.path.join(d, "scale.jsonl"))
    if scale:
        rss = load(os.path.join(d, "scale-rss.jsonl"))
        lines += ["### 4. Scale: 100,000 locks", ""] + scale_table(scale, rss) + [""]
    daemons = load(os.path.join(d, "scale-daemon.jsonl"))
    if daemons:
        lines += ["agentlockd itself on the same tree (dry run, first pass then SIGUSR1 passes):",
                  ""] + scale_daemon_table(daemons) + [""]
    lat = load(os.path.join(d, "latency.jsonl"))
    if lat:
        lines += ["### 2. Latency, owner death to removal", ""] + latency_table(lat) + [""]
    idle = load(os.path.join(d, "idle.jsonl"))
    if idle:
        lines += ["### 3. Idle cost", ""] + idle_table(idle) + [""]
    town = load(os.path.join(d, "town.jsonl"))
    if town:
        lines += ["### 5. gastown's pattern: locks held by tmux panes, owners dead", ""]
        lines += town_table(town) + [""]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
