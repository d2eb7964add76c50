#!/usr/bin/env python3
"""Fleet mode's cost in etcd: one real agentlockd (fleet mode) over 10,000 live locks, against a
private etcd on loopback. Counts what etcd itself saw (its /metrics: gRPC calls handled, gRPC
bytes received and sent, behind the JSON gateway), for the start (publishing every claim) and
for steady state, idle and with churn (one lock rewritten every second), and the bytes each lock
costs in etcd (key + value of its claim).

    sudo python3 bench/fleet_cost.py build/daemon/agentlockd [--locks 10000] [--seconds 60]

Prints a Markdown table (bench/RESULTS.md, "fleet"). Any user can run it; it needs etcd.
"""
import argparse
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metrics(url):
    text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
    calls = 0.0
    rx = tx = 0.0
    for line in text.splitlines():
        if line.startswith("grpc_server_handled_total{"):
            calls += float(line.rsplit(" ", 1)[1])
        elif line.startswith("etcd_network_client_grpc_received_bytes_total"):
            rx += float(line.rsplit(" ", 1)[1])
        elif line.startswith("etcd_network_client_grpc_sent_bytes_total"):
            tx += float(line.rsplit(" ", 1)[1])
    return calls, rx, tx


def call(url, path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST")
    return json.load(urllib.request.urlopen(req, timeout=30))


def claims(url, prefix):
    b = lambda s: base64.b64encode(s.encode()).decode()
    p = prefix + "/claims/"
    r = call(url, "/v3/kv/range", {"key": b(p), "range_end": b(p[:-1] + "0")})
    kvs = r.get("kvs", [])
    size = sum(len(base64.b64decode(kv["key"])) + len(base64.b64decode(kv.get("value", ""))) for kv in kvs)
    return len(kvs), size


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("agentlockd")
    ap.add_argument("--locks", type=int, default=10000)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--lease-ttl", default="10s")
    args = ap.parse_args()

    base = tempfile.mkdtemp(prefix="agentlock-fleet-bench-")
    etcd = daemon = owner = None
    try:
        cport, pport = free_port(), free_port()
        url, peer = f"http://127.0.0.1:{cport}", f"http://127.0.0.1:{pport}"
        etcd = subprocess.Popen(["etcd", "--name", "default", "--data-dir", f"{base}/etcd",
                                 "--listen-client-urls", url, "--advertise-client-urls", url,
                                 "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                                 "--initial-cluster", f"default={peer}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                metrics(url)
                break
            except OSError:
                time.sleep(0.2)
        owner = subprocess.Popen(["sleep", "3600"])
        time.sleep(0.1)
        tree = f"{base}/tree"
        host = socket.gethostname()
        now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"
        for i in range(args.locks):
            d = f"{tree}/rig{i // 1000}/w{i}/.runtime"
            os.makedirs(d)
            with open(f"{d}/agent.lock", "w") as f:
                json.dump({"pid": owner.pid, "acquired_at": now, "session_id": "",
                           "hostname": host}, f)
        cfg = f"{base}/agentlockd.json"
        prefix = "/agentlock/v1"
        with open(cfg, "w") as f:
            json.dump({"roots": [tree], "log_format": "json", "log_level": "warn",
                       "fleet": {"etcd": [url], "prefix": prefix, "lease_ttl": args.lease_ttl}}, f)
        before = metrics(url)
        started = time.monotonic()
        daemon = subprocess.Popen([args.agentlockd, "--config", cfg],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while claims(url, prefix)[0] < args.locks:
            time.sleep(0.5)
            if time.monotonic() - started > 600:
                raise RuntimeError("claims not published in 10 minutes")
        publish_s = time.monotonic() - started
        after_start = metrics(url)
        count, size = claims(url, prefix)
        after_start = metrics(url)  # the range above is not the daemon's

        time.sleep(args.seconds)
        idle = metrics(url)

        churn_until = time.monotonic() + args.seconds
        i = 0
        while time.monotonic() < churn_until:
            d = f"{tree}/rig0/w{i % 1000}/.runtime"
            with open(f"{d}/agent.lock.tmp", "w") as f:
                json.dump({"pid": owner.pid, "acquired_at": now, "session_id": f"s{i}",
                           "hostname": host}, f)
            os.rename(f"{d}/agent.lock.tmp", f"{d}/agent.lock")
            i += 1
            time.sleep(1)
        churn = metrics(url)

        per_min = lambda a, b: tuple((y - x) * 60.0 / args.seconds for x, y in zip(a, b))
        start_d = tuple(y - x for x, y in zip(before, after_start))
        idle_m = per_min(after_start, idle)
        churn_m = per_min(idle, churn)
        print(f"| fleet, {args.locks} live locks on one host, lease_ttl {args.lease_ttl} | requests | bytes to etcd | bytes from etcd |")
        print("|---|---:|---:|---:|")
        print(f"| start: every claim published ({publish_s:.1f} s) | {start_d[0]:.0f} | {start_d[1]:.0f} | {start_d[2]:.0f} |")
        print(f"| steady state, idle, per minute | {idle_m[0]:.0f} | {idle_m[1]:.0f} | {idle_m[2]:.0f} |")
        print(f"| steady state, one lock changed a second, per minute | {churn_m[0]:.0f} | {churn_m[1]:.0f} | {churn_m[2]:.0f} |")
        print(f"\nclaims in etcd: {count}, {size} bytes of keys and values: {size / max(count, 1):.0f} bytes a lock")
    finally:
        for p in (daemon, owner, etcd):
            if p and p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
