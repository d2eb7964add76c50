#!/usr/bin/env python3
"""Benchmarks of the real agentlockd with real owner processes (bench/README.md).

    daemon_bench.py latency --daemon PATH [--locks 1000] [--sessions 100] [-- DAEMON ARGS]
    daemon_bench.py idle    --daemon PATH [--locks 10000] [--seconds 60] [-- DAEMON ARGS]
    daemon_bench.py scale   --daemon PATH --root TREE [--passes 4] [-- DAEMON ARGS]
    daemon_bench.py stop    --daemon PATH --root TREE [--runs 5] [--after 0.5] [-- DAEMON ARGS]
    daemon_bench.py town    --daemon PATH [--sessions 100] [--panes 10] [-- DAEMON ARGS]

latency: N locks, each owned by its own `sleep` process and recording no tmux session, plus
  a control group of live owners. Once the daemon has done its first pass, the owners are
  SIGKILLed one at a time at random moments (gaps uniform in [0, 2 * --gap-ms]); inotify
  (IN_DELETE on each .runtime) timestamps each removal. Latency = removal - kill. Then the
  held-by-session case: S locks whose dead owners recorded a live session on a private tmux
  server (the daemon logs them held-by-session); the sessions are killed one at a time at
  random moments and latency = removal - the end of `tmux kill-session`. Prints p50/p90/p99/
  max per case as JSON; fails if a control lock (live owner) was removed.

idle: N live locks owned by distinct `sleep` processes (or --owners fewer, each owning
  several locks: the daemon then reports duplicate-PID collisions, which do not change the
  cost). After the daemon's first pass, samples /proc/<pid>/stat (utime + stime) and
  /proc/<pid>/status (VmRSS, VmHWM) over --seconds with nothing changing.

scale: the daemon, with --dry-run (the tree is left as it is), on an existing tree such as
  scale-100k (bench/mkscale.py): the first pass, then --passes more on SIGUSR1, each waited for
  (pass.completed); prints every pass's time, the resident memory one second after each pass
  and the high-water mark (VmHWM) over the whole run.

stop: the daemon, with --dry-run, on an existing tree big enough that a pass takes over a
  second (town-20k): its second pass (SIGUSR1) is stopped with SIGTERM --after seconds in; the
  time from SIGTERM to the daemon's exit, per run, and how far the cut pass got.

town: gastown's pattern. A private tmux server (tmux -S WORKDIR/tmux.sock, passed to the daemon
  with --tmux-socket-path) runs --sessions sessions of --panes panes, each pane `exec sleep`.
  Every pane holds one lock: its owner PID dead (a reaped `true`), its session_id the pane id
  (%N, as agents record $TMUX_PANE), so the daemon judges every lock held-by-session. Once it
  has logged all of them: (1) idle: CPU (utime + stime) over --seconds of the daemon, of its
  reaped children (cutime + cstime: its tmux clients) and of the tmux server, with nothing
  changing; (2) --pane-kills pane processes SIGKILLed at random moments (gaps uniform in
  [0, 2 * --gap-ms]; the pane closes, remain-on-exit is off): kill -> removal; (3)
  --session-kills sessions ended with `tmux kill-session` at random moments: end of
  kill-session -> removal of each of its locks; (4) `tmux kill-server`: its end -> removal of
  every remaining lock (and how long the server took to exit). --control-sessions
  sessions are never touched before (4): every lock whose pane still lives must still be there
  after (3), else the run fails. Logs at info, as in production.

Everything lives under --workdir (default /var/tmp/agentlock-bench/run-<pid>) and is removed
at the end; owners, the tmux server (and its panes) and the daemon are killed on exit. The daemon
gets --config (an empty {} file), --root, --log-format json, --log-level debug, --tmux-socket
(town: --tmux-socket-path), and
whatever follows `--` (e.g. --interval 1s --no-events for the polling baseline). Logs are
at debug for latency (findings are parsed) and at info, as in production, for idle and town.
"""
import argparse
import ctypes
import json
import os
import random
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

IN_DELETE = 0x200
IN_MOVED_FROM = 0x40
IN_CLOEXEC = 0o2000000
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(*a):
    print("[daemon_bench]", *a, file=sys.stderr, flush=True)


def mem_available_kib():
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


def now_rfc3339():
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def summary_ms(latencies_ns):
    v = sorted(x / 1e6 for x in latencies_ns)
    return {
        "count": len(v),
        "p50_ms": percentile(v, 50),
        "p90_ms": percentile(v, 90),
        "p99_ms": percentile(v, 99),
        "max_ms": v[-1] if v else None,
    }


class Owners:
    """Real owner processes: `sleep` children, killed on close."""

    def __init__(self):
        self.procs = []

    def spawn(self, n):
        out = []
        for _ in range(n):
            p = subprocess.Popen(["sleep", "1000000"], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.procs.append(p)
            out.append(p)
        return out

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            p.wait()


def proc_stat(pid):
    """CPU seconds (utime, stime; cutime, cstime: its reaped children) and start time (clock
    ticks since boot) of pid, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as fh:
        f = fh.read().rsplit(")", 1)[1].split()  # f[0] is field 3 (state)
    return {"utime": int(f[11]) / CLK_TCK, "stime": int(f[12]) / CLK_TCK,
            "cutime": int(f[13]) / CLK_TCK, "cstime": int(f[14]) / CLK_TCK,
            "starttime": int(f[19])}


def kill_if_same(pid, starttime):
    """SIGKILLs pid if it is still the process that started at starttime (not a reused PID)."""
    try:
        if proc_stat(pid)["starttime"] == starttime:
            os.kill(pid, signal.SIGKILL)
    except (OSError, IndexError, ValueError):
        pass


def dead_pid():
    """The PID of a process that has exited and been reaped: gastown's `gt prime` owner."""
    p = subprocess.Popen(["true"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    p.wait()
    return p.pid


def write_lock(worker, pid, session="", acquired=None):
    rt = os.path.join(worker, ".runtime")
    os.makedirs(rt, exist_ok=True)
    doc = {"pid": pid, "acquired_at": acquired or now_rfc3339(), "session_id": session,
           "hostname": socket.gethostname()}
    tmp = os.path.join(rt, ".agent.lock.tmp")
    with open(tmp, "w") as fh:
        json.dump(doc, fh, indent=2)
    os.rename(tmp, os.path.join(rt, "agent.lock"))


class Inotify:
    """Timestamps the removal of agent.lock in watched .runtime directories.

    The reader thread stamps each read with one clock reading and wakes a waiter only when the
    last key it waits for is gone: a waiter woken on every removal would take the interpreter
    from the reader hundreds of times during a burst and delay the stamps it measures."""

    def __init__(self):
        self.libc = ctypes.CDLL("libc.so.6", use_errno=True)
        self.fd = self.libc.inotify_init1(IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.wd_to_key = {}
        self.removed = {}  # key -> monotonic ns
        self.waiting = set()  # the keys wait_for still waits for
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def watch(self, runtime_dir, key):
        wd = self.libc.inotify_add_watch(self.fd, runtime_dir.encode(), IN_DELETE | IN_MOVED_FROM)
        if wd < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch " + runtime_dir)
        self.wd_to_key[wd] = key

    def _run(self):
        while True:
            try:
                buf = os.read(self.fd, 1 << 16)
            except OSError:
                return
            t = time.monotonic_ns()
            off = 0
            with self.cond:
                while off + 16 <= len(buf):
                    wd, _mask, _cookie, length = struct.unpack_from("iIII", buf, off)
                    name = buf[off + 16: off + 16 + length].rstrip(b"\0")
                    off += 16 + length
                    if name == b"agent.lock" and wd in self.wd_to_key:
                        key = self.wd_to_key[wd]
                        self.removed.setdefault(key, t)
                        if key in self.waiting:
                            self.waiting.discard(key)
                            if not self.waiting:
                                self.cond.notify_all()

    def wait_for(self, keys, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            self.waiting = {k for k in keys if k not in self.removed}
            while self.waiting:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.waiting = set()
                    return False
                self.cond.wait(left)
        return True


class Daemon:
    """The real agentlockd, its JSON log lines written to a file and parsed when asked for.

    The daemon writes to the file directly, as it writes to the journal in service: a pipe to
    this script would fill during a burst of removals (a line of several hundred bytes each) and
    stop the daemon's threads until the script caught up. The lines are parsed only while this
    script waits for one, never by a thread of its own: parsing a burst would hold the
    interpreter while the inotify thread stamps the removals it measures."""

    def __init__(self, path, workdir, root, tmux_socket, extra, level="debug",
                 tmux_flag="--tmux-socket"):
        cfg = os.path.join(workdir, "agentlockd.json")
        with open(cfg, "w") as fh:
            fh.write("{}\n")
        self.argv = [path, "--config", cfg, "--root", root, "--log-format", "json",
                     "--log-level", level, tmux_flag, tmux_socket] + extra
        log("starting", " ".join(self.argv))
        self.events = []
        self.logpath = os.path.join(workdir, "agentlockd.log")
        self.logfile = open(self.logpath, "wb")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.logfile)
        self.reader = open(self.logpath, "rb")
        self.partial = b""

    def _read(self):
        """Parses the lines written since the last call."""
        while True:
            chunk = self.reader.read(1 << 20)
            if not chunk:
                return
            lines = (self.partial + chunk).split(b"\n")
            self.partial = lines.pop()
            for line in lines:
                try:
                    self.events.append(json.loads(line))
                except ValueError:
                    continue

    def _wait(self, found, timeout, what):
        """Waits until found(events) returns something other than None, and returns it."""
        deadline = time.monotonic() + timeout
        while True:
            exited = self.proc.poll() is not None
            self._read()  # after the poll: an exit's last lines are read before it is reported
            result = found(self.events)
            if result is not None:
                return result
            if exited:
                raise RuntimeError(f"agentlockd exited ({self.proc.returncode}) before {what}")
            if time.monotonic() >= deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.02)

    def wait_event(self, pred, timeout, what):
        """Waits for the first event matching pred and returns it."""
        return self._wait(lambda evs: next((ev for ev in evs if pred(ev)), None), timeout, what)

    def count(self, pred):
        self._read()
        return sum(1 for ev in self.events if pred(ev))

    def wait_distinct(self, pred, key, n, timeout, what):
        """Waits until events matching pred name n distinct values of field `key`."""
        self._wait(lambda evs: True if len({ev.get(key) for ev in evs if pred(ev)}) >= n
                   else None, timeout, what)

    def cpu_seconds(self):
        st = proc_stat(self.proc.pid)
        return st["utime"] + st["stime"]

    def memory_kib(self):
        out = {}
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "Threads"):
                    out[key] = int(value.split()[0])
        out["fds"] = len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        return out

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._read()
        self.reader.close()
        self.logfile.close()


class Tmux:
    """A private tmux server: on socket name `name` (tmux -L) or socket path `path` (tmux -S).
    Panes run their command with /bin/sh, whatever $SHELL is, and never see our own $TMUX."""

    def __init__(self, name=None, path=None):
        self.name = name
        self.path = path
        self.socket = ["-S", path] if path else ["-L", name]
        self.started = False
        self.env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
        self.env["SHELL"] = "/bin/sh"

    def run(self, *args):
        return subprocess.run(["tmux", *self.socket, "-f", "/dev/null", *args], env=self.env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True)

    def new_session(self, session):
        r = self.run("new-session", "-d", "-s", session, "sleep 1000000")
        if r.returncode != 0:
            raise RuntimeError("tmux new-session: " + r.stderr)
        self.started = True

    def kill_session(self, session):
        r = self.run("kill-session", "-t", "=" + session)
        if r.returncode != 0:
            raise RuntimeError("tmux kill-session: " + r.stderr)

    def close(self):
        self.run("kill-server")


def first_pass(daemon, timeout):
    return daemon.wait_event(lambda e: e.get("event") == "pass.completed", timeout,
                             "the first pass.completed")


def run_latency(a, workdir, extra):
    root = os.path.join(workdir, "root")
    owners = Owners()
    tmux = Tmux(f"agentlock-bench-{os.getpid()}")
    daemon = None
    try:
        # A tmux server from the start, so that tmux's state is known (ok) for every pass.
        tmux.new_session("keepalive")
        log(f"spawning {a.locks} + {a.sessions} + {a.control} owners")
        no_session = owners.spawn(a.locks)
        with_session = owners.spawn(a.sessions)
        control = owners.spawn(a.control)
        sessions = [f"bench-s{i}" for i in range(a.sessions)]
        for s in sessions:
            tmux.new_session(s)
        workers = {}
        for i, p in enumerate(no_session):
            workers[("plain", i)] = (os.path.join(root, f"rig{i // 100:02d}", "polecats", f"w{i:05d}"), p)
        for i, p in enumerate(with_session):
            workers[("session", i)] = (os.path.join(root, "sessions", f"w{i:05d}"), p)
        for i, p in enumerate(control):
            workers[("control", i)] = (os.path.join(root, "control", f"w{i:05d}"), p)
        for (kind, i), (w, p) in workers.items():
            write_lock(w, p.pid, sessions[i] if kind == "session" else "")

        ino = Inotify()
        for key, (w, _p) in workers.items():
            ino.watch(os.path.join(w, ".runtime"), key)

        daemon = Daemon(a.daemon, workdir, root, tmux.name, extra)
        ev = first_pass(daemon, 120)
        log("first pass:", {k: ev.get(k) for k in ("locks", "removed", "elapsed_ms", "tmux")})

        rng = random.Random(a.seed)
        # Case 1: owner death, no session recorded.
        order = list(range(a.locks))
        rng.shuffle(order)
        kill_at = {}
        log(f"killing {a.locks} owners at random moments (mean gap {a.gap_ms} ms)")
        for i in order:
            time.sleep(rng.uniform(0, 2 * a.gap_ms) / 1000.0)
            p = no_session[i]
            kill_at[("plain", i)] = time.monotonic_ns()
            p.kill()
            p.wait()
        keys = list(kill_at)
        ino.wait_for(keys, a.timeout)
        plain = [ino.removed[k] - kill_at[k] for k in keys if k in ino.removed]
        missing_plain = len(keys) - len(plain)

        # Case 2: held-by-session; the owners die first, then the sessions end.
        result_session = None
        missing_session = 0
        if a.sessions:
            for p in with_session:
                p.kill()
                p.wait()
            daemon.wait_distinct(lambda e: e.get("event") == "lock.held_by_session",
                                 "lock_path", a.sessions, a.timeout,
                                 f"{a.sessions} lock.held_by_session findings")
            end_at = {}
            order = list(range(a.sessions))
            rng.shuffle(order)
            log(f"ending {a.sessions} sessions at random moments")
            for i in order:
                time.sleep(rng.uniform(0, 2 * a.gap_ms) / 1000.0)
                tmux.kill_session(sessions[i])
                end_at[("session", i)] = time.monotonic_ns()
            keys = list(end_at)
            ino.wait_for(keys, a.timeout)
            held = [ino.removed[k] - end_at[k] for k in keys if k in ino.removed]
            missing_session = len(keys) - len(held)
            result_session = summary_ms(held)
            result_session["missing"] = missing_session

        control_removed = [k for k in workers if k[0] == "control" and k in ino.removed]
        result = {
            "bench": "latency",
            "daemon_args": extra,
            "locks": a.locks,
            "owner_death_no_session": dict(summary_ms(plain), missing=missing_plain),
            "session_end_held_by_session": result_session,
            "control_locks_removed": len(control_removed),
        }
        print(json.dumps(result), flush=True)
        if control_removed:
            log("FAILURE: a live owner's lock was removed:", control_removed[:5])
            return 1
        return 0
    finally:
        if daemon:
            daemon.close()
        owners.close()
        tmux.close()


def run_town(a, workdir, extra):
    """gastown's pattern: every lock held by a live pane of a private tmux server, its owner PID
    dead. Idle cost with nothing changing, then removal latency after a pane's process exits,
    after kill-session and after kill-server; fails if a lock of a live pane was removed."""
    if a.panes < 1 or a.sessions < 1:
        raise SystemExit("daemon_bench.py town: --sessions and --panes must be at least 1")
    n_plain = a.sessions - a.session_kills - a.control_sessions
    if n_plain < 0 or (a.pane_kills and a.pane_kills > n_plain * (a.panes - 1)):
        raise SystemExit(f"daemon_bench.py town: {a.sessions} sessions of {a.panes} panes cannot "
                         f"give {a.control_sessions} control sessions, {a.session_kills} to kill "
                         f"and {a.pane_kills} panes to kill without closing their sessions")
    root = os.path.join(workdir, "root")
    tmux = Tmux(path=os.path.join(workdir, "tmux.sock"))
    daemon = None
    server = None  # (pid, start ticks) of the tmux server
    panes = {}  # (session index, pane index) -> {"id": "%N", "pid": P, "start": ticks}
    names = [f"bench-s{si:03d}" for si in range(a.sessions)]
    # Sessions [0, n_plain) lose single panes, the next session_kills are ended whole, the last
    # control_sessions stay untouched until kill-server.
    plain = list(range(n_plain))
    to_end = list(range(n_plain, n_plain + a.session_kills))
    control = list(range(n_plain + a.session_kills, a.sessions))
    try:
        log(f"starting a tmux server ({tmux.path}): {a.sessions} sessions of {a.panes} panes")
        t0 = time.monotonic()
        pane_cmd = "exec sleep 1000000"
        for name in names:
            # One client per session: the session, its other panes (tiled, so that each split
            # finds room), all in one command list.
            args = ["new-session", "-d", "-s", name, "-x", "400", "-y", "100", pane_cmd]
            for _ in range(a.panes - 1):
                args += [";", "split-window", "-d", "-t", f"={name}:", pane_cmd,
                         ";", "select-layout", "-t", f"={name}:", "tiled"]
            tmux.started = True
            r = tmux.run(*args)
            if r.returncode != 0:
                raise RuntimeError(f"tmux new-session {name}: {r.stderr.strip()}")
            if server is None:
                r = tmux.run("display-message", "-p", "#{pid}")
                pid = int(r.stdout.strip())
                server = (pid, proc_stat(pid)["starttime"])
        r = tmux.run("list-panes", "-a", "-F",
                     "#{session_name}\t#{pane_index}\t#{pane_id}\t#{pane_pid}")
        if r.returncode != 0:
            raise RuntimeError("tmux list-panes: " + r.stderr.strip())
        index = {name: si for si, name in enumerate(names)}
        listed = [0] * a.sessions  # panes of each session so far: the pane's number
        for line in r.stdout.splitlines():
            name, _pane_index, pane_id, pid = line.split("\t")
            si = index[name]
            pi = listed[si]
            listed[si] += 1
            pid = int(pid)
            panes[(si, pi)] = {"id": pane_id, "pid": pid, "start": proc_stat(pid)["starttime"]}
        # Each pane's process must be the sleep itself (tmux's fork, then sh, exec it).
        deadline = time.monotonic() + 10
        for pane in panes.values():
            while True:
                with open(f"/proc/{pane['pid']}/comm") as fh:
                    comm = fh.read().strip()
                if comm == "sleep":
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"pane {pane['id']}'s process {pane['pid']} is {comm!r}, "
                                       "not sleep")
                time.sleep(0.01)
        if len(panes) != a.sessions * a.panes:
            raise RuntimeError(f"tmux lists {len(panes)} panes, not {a.sessions * a.panes}")
        setup_s = time.monotonic() - t0
        log(f"{len(panes)} panes in {setup_s:.1f} s; tmux server PID {server[0]}")

        # The locks: written after the server and the sessions, as gastown's agents write theirs,
        # each by a process that has exited since (reaped), recording its pane ($TMUX_PANE).
        workers = {}
        for (si, pi), pane in panes.items():
            w = os.path.join(root, f"rig{si // 10:02d}", "polecats", f"s{si:03d}p{pi:02d}")
            write_lock(w, dead_pid(), pane["id"])
            workers[(si, pi)] = w
        ino = Inotify()
        for key, w in workers.items():
            ino.watch(os.path.join(w, ".runtime"), key)

        started = time.monotonic()
        daemon = Daemon(a.daemon, workdir, root, tmux.path, extra, a.log_level,
                        tmux_flag="--tmux-socket-path")
        ev = first_pass(daemon, 300)
        log("first pass:", {k: ev.get(k) for k in ("locks", "removed", "elapsed_ms", "tmux")})
        daemon.wait_distinct(lambda e: e.get("event") == "lock.held_by_session", "lock_path",
                             len(workers), a.timeout,
                             f"{len(workers)} lock.held_by_session findings")
        held_s = time.monotonic() - started
        log(f"every lock held-by-session {held_s:.1f} s after the start")

        # 1. Idle: nothing changes; the daemon, its reaped children (tmux clients) and the server.
        time.sleep(a.settle)
        d0, s0 = proc_stat(daemon.proc.pid), proc_stat(server[0])
        t0 = time.monotonic()
        log(f"idle for {a.seconds:g} s")
        time.sleep(a.seconds)
        d1, s1 = proc_stat(daemon.proc.pid), proc_stat(server[0])
        window = time.monotonic() - t0
        mem = daemon.memory_kib()
        cpu = {
            "daemon": d1["utime"] + d1["stime"] - d0["utime"] - d0["stime"],
            "daemon_children": d1["cutime"] + d1["cstime"] - d0["cutime"] - d0["cstime"],
            "tmux_server": s1["utime"] + s1["stime"] - s0["utime"] - s0["stime"],
        }
        cpu["total"] = sum(cpu.values())
        idle = {
            "window_s": round(window, 1),
            "cpu_s": {k: round(v, 3) for k, v in cpu.items()},
            "cpu_s_per_min": {k: round(v * 60.0 / window, 3) for k, v in cpu.items()},
            "removed": len(ino.removed),
            "rss_kib": mem.get("VmRSS"),
            "fds": mem.get("fds"),
            "threads": mem.get("Threads"),
        }
        log("idle CPU s/min:", idle["cpu_s_per_min"])

        rng = random.Random(a.seed)
        killed_at = {}  # key -> monotonic ns before its pane or session was killed

        # 2. A pane's process exits (SIGKILL; remain-on-exit is off, so the pane closes). Never
        # pane 0 of a session, so that every session lives on.
        chosen = rng.sample([(si, pi) for si in plain for pi in range(1, a.panes)], a.pane_kills)
        log(f"killing {len(chosen)} pane processes at random moments (mean gap {a.gap_ms} ms)")
        kill_at = {}
        for key in chosen:
            time.sleep(rng.uniform(0, 2 * a.gap_ms) / 1000.0)
            kill_at[key] = killed_at[key] = time.monotonic_ns()
            os.kill(panes[key]["pid"], signal.SIGKILL)
        ino.wait_for(list(kill_at), a.timeout)
        pane_lat = [ino.removed[k] - t for k, t in kill_at.items() if k in ino.removed]
        pane_exit = dict(summary_ms(pane_lat), missing=len(kill_at) - len(pane_lat))

        # 3. kill-session: latency from the end of the command to each of its panes' locks.
        order = list(to_end)
        rng.shuffle(order)
        log(f"ending {len(order)} sessions at random moments")
        end_at = {}
        for si in order:
            time.sleep(rng.uniform(0, 2 * a.gap_ms) / 1000.0)
            begin = time.monotonic_ns()
            tmux.kill_session(names[si])
            end = time.monotonic_ns()
            for pi in range(a.panes):
                killed_at[(si, pi)] = begin
                end_at[(si, pi)] = end
        ino.wait_for(list(end_at), a.timeout)
        sess_lat = [ino.removed[k] - t for k, t in end_at.items() if k in ino.removed]
        session_end = dict(summary_ms(sess_lat), missing=len(end_at) - len(sess_lat),
                           sessions=len(order))

        # 5. Safety, before the server goes: no lock of a pane tmux still lists is gone.
        time.sleep(a.settle)
        r = tmux.run("list-panes", "-a", "-F", "#{pane_id}")
        if r.returncode != 0:
            raise RuntimeError("tmux list-panes: " + r.stderr.strip())
        alive = set(r.stdout.split())
        gone = lambda k: k in ino.removed or not os.path.exists(
            os.path.join(workers[k], ".runtime", "agent.lock"))
        live_removed = [k for k in workers if panes[k]["id"] in alive and gone(k)]
        control_keys = [(si, pi) for si in control for pi in range(a.panes)]
        control_removed = [k for k in control_keys if gone(k)]
        early = [k for k, t in ino.removed.items() if k not in killed_at or t < killed_at[k]]
        untouched_dead = [k for k in workers if k not in killed_at and panes[k]["id"] not in alive]

        # 4. kill-server: latency from the end of the command to each remaining lock's removal.
        remaining = [k for k in workers if k not in ino.removed]
        pidfd = os.pidfd_open(server[0])
        log(f"tmux kill-server ({len(remaining)} locks remaining)")
        begin = time.monotonic_ns()
        r = tmux.run("kill-server")
        end = time.monotonic_ns()
        if r.returncode != 0:
            raise RuntimeError("tmux kill-server: " + r.stderr.strip())
        exited = select.select([pidfd], [], [], a.timeout)[0]
        server_exit_ns = time.monotonic_ns() - end if exited else None
        os.close(pidfd)
        ino.wait_for(remaining, a.timeout)
        srv_lat = [ino.removed[k] - end for k in remaining if k in ino.removed]
        server_end = dict(summary_ms(srv_lat), missing=len(remaining) - len(srv_lat),
                          kill_server_cmd_ms=round((end - begin) / 1e6, 1),
                          server_exit_ms=None if server_exit_ns is None
                          else round(server_exit_ns / 1e6, 1))

        result = {
            "bench": "town",
            "daemon_args": extra,
            "sessions": a.sessions,
            "panes_per_session": a.panes,
            "locks": len(workers),
            "tmux_setup_s": round(setup_s, 1),
            "first_pass_elapsed_ms": ev.get("elapsed_ms"),
            "first_pass_tmux": ev.get("tmux"),
            "all_held_by_session_s": round(held_s, 1),
            "idle": idle,
            "pane_exit": pane_exit,
            "session_kill": session_end,
            "server_kill": server_end,
            "control_locks": len(control_keys),
            "control_locks_removed": len(control_removed),
            "live_pane_locks_removed": len(live_removed),
            "removed_before_kill": len(early),
            "untouched_panes_dead": len(untouched_dead),
        }
        print(json.dumps(result), flush=True)
        bad = control_removed + live_removed + early
        if bad:
            log("FAILURE: a lock was removed while its pane lived:",
                [(panes[k]["id"], workers[k]) for k in bad[:5]])
            return 1
        return 0
    finally:
        if daemon:
            daemon.close()
        if tmux.started:
            tmux.close()
        # Whatever kill-server left (or a server that never answered): only our own processes,
        # recognised by their start time.
        if server:
            kill_if_same(*server)
        for pane in panes.values():
            kill_if_same(pane["pid"], pane["start"])


def run_idle(a, workdir, extra):
    root = os.path.join(workdir, "root")
    owners = Owners()
    daemon = None
    try:
        n_owners = a.owners or a.locks
        log(f"spawning {n_owners} owners for {a.locks} locks")
        t0 = time.monotonic()
        avail0 = mem_available_kib()
        procs = owners.spawn(n_owners)
        spawn_s = time.monotonic() - t0
        owners_mib = (avail0 - mem_available_kib()) / 1024.0
        acquired = now_rfc3339()
        for i in range(a.locks):
            w = os.path.join(root, f"rig{i // 1000:02d}", "polecats", f"w{i:05d}")
            write_lock(w, procs[i % n_owners].pid, "", acquired)
        # Logs at info, as in production: the first pass.completed is logged at info.
        daemon = Daemon(a.daemon, workdir, root, f"agentlock-bench-{os.getpid()}", extra, "info")
        ev = first_pass(daemon, 300)
        log("first pass:", {k: ev.get(k) for k in ("locks", "elapsed_ms", "tmux")})
        # Let start-up settle (watches, pidfds) before the window opens.
        time.sleep(a.settle)
        cpu0 = daemon.cpu_seconds()
        mem0 = daemon.memory_kib()
        t0 = time.monotonic()
        time.sleep(a.seconds)
        elapsed = time.monotonic() - t0
        cpu1 = daemon.cpu_seconds()
        mem1 = daemon.memory_kib()
        result = {
            "bench": "idle",
            "daemon_args": extra,
            "locks": a.locks,
            "owners": n_owners,
            "owner_spawn_s": round(spawn_s, 2),
            "owners_mem_mib": round(owners_mib),
            "first_pass_elapsed_ms": ev.get("elapsed_ms"),
            "startup_cpu_s": round(cpu0, 3),
            "window_s": round(elapsed, 1),
            "cpu_s": round(cpu1 - cpu0, 3),
            "cpu_s_per_min": round((cpu1 - cpu0) * 60.0 / elapsed, 3),
            "rss_kib_end": mem1.get("VmRSS"),
            "hwm_kib": mem1.get("VmHWM"),
            "threads": mem1.get("Threads"),
            "fds": mem1.get("fds"),
            "rss_kib_start": mem0.get("VmRSS"),
        }
        print(json.dumps(result), flush=True)
        return 0
    finally:
        if daemon:
            daemon.close()
        owners.close()


def run_scale(a, workdir, extra):
    """The real daemon (events on unless `extra` says otherwise) on an existing tree, in a dry run
    so that the tree stays as it is: the first pass, then --passes more (SIGUSR1), each waited
    for; resident memory after each, and the high-water mark over all of them."""
    daemon = Daemon(a.daemon, workdir, a.root, f"agentlock-bench-{os.getpid()}",
                    ["--dry-run"] + extra, "debug")
    try:
        is_pass = lambda ev: ev.get("event") == "pass.completed"
        first = daemon.wait_event(is_pass, 600, "the first pass")
        started = {}
        if "--no-events" not in extra:
            started = daemon.wait_event(lambda ev: ev.get("event") == "events.started", 60,
                                        "events.started")
        time.sleep(1.0)  # the watches and pidfds of the first pass are in place
        rss_between = [daemon.memory_kib()["VmRSS"]]
        elapsed = [first.get("elapsed_ms")]
        for i in range(a.passes):
            n = daemon.count(is_pass)
            daemon.proc.send_signal(signal.SIGUSR1)
            daemon._wait(lambda evs: True if sum(1 for ev in evs if is_pass(ev)) > n else None,
                         600, f"pass {i + 2}")
            time.sleep(1.0)
            elapsed.append([ev for ev in daemon.events if is_pass(ev)][-1].get("elapsed_ms"))
            rss_between.append(daemon.memory_kib()["VmRSS"])
        mem = daemon.memory_kib()
        result = {
            "bench": "scale-daemon",
            "daemon_args": ["--dry-run"] + extra,
            "root": a.root,
            "locks": first.get("locks"),
            "dirs": first.get("dirs"),
            "passes": len(elapsed),
            "pass_ms": elapsed,
            "median_pass_ms": sorted(elapsed)[len(elapsed) // 2],
            "pidfds": started.get("pidfds"),
            "watches": started.get("watches"),
            "open_findings": first.get("open_findings"),
            "rss_kib_between_passes": rss_between,
            "hwm_kib": mem.get("VmHWM"),
            "cpu_s": round(daemon.cpu_seconds(), 2),
        }
        print(json.dumps(result), flush=True)
        return 0
    finally:
        daemon.close()


def run_stop(a, workdir, extra):
    """How long SIGTERM takes to end the daemon while a full pass walks a big tree (dry run, so the
    tree stays as it is): --runs times, each with a fresh daemon whose second pass (SIGUSR1) is
    stopped --after seconds in."""
    times_ms = []
    cut_short = []
    for run in range(a.runs):
        daemon = Daemon(a.daemon, workdir, a.root, f"agentlock-bench-{os.getpid()}",
                        ["--dry-run", "--interval", "1h"] + extra, "debug")
        try:
            is_pass = lambda ev: ev.get("event") == "pass.completed"
            first = daemon.wait_event(is_pass, 600, "the first pass")
            n = daemon.count(is_pass)
            daemon.proc.send_signal(signal.SIGUSR1)
            time.sleep(a.after)
            if daemon.count(is_pass) > n:
                raise RuntimeError(f"the pass ended within {a.after} s: use a bigger tree")
            started = time.monotonic()
            daemon.proc.send_signal(signal.SIGTERM)
            code = daemon.proc.wait(600)
            times_ms.append(round((time.monotonic() - started) * 1000, 1))
            if code != 0:
                raise RuntimeError(f"agentlockd exited {code} after SIGTERM")
            daemon._read()  # its last lines, written before it exited
            last = [ev for ev in daemon.events if is_pass(ev)][-1]
            cut_short.append({"dirs": last.get("dirs"), "of_dirs": first.get("dirs"),
                              "cancelled": last.get("cancelled")})
        finally:
            daemon.close()
    print(json.dumps({"bench": "stop", "root": a.root, "after_s": a.after,
                      "exit_ms": times_ms, "median_exit_ms": sorted(times_ms)[len(times_ms) // 2],
                      "passes_cut": cut_short}), flush=True)
    return 0


def main():
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("latency", "idle", "scale", "stop", "town"):
        p = sub.add_parser(name)
        p.add_argument("--daemon", required=True)
        p.add_argument("--workdir")
        p.add_argument("--keep", action="store_true", help="keep the work directory")
    lat = sub.choices["latency"]
    lat.add_argument("--locks", type=int, default=1000)
    lat.add_argument("--sessions", type=int, default=100)
    lat.add_argument("--control", type=int, default=100)
    lat.add_argument("--gap-ms", type=float, default=5.0)
    lat.add_argument("--timeout", type=float, default=60.0)
    lat.add_argument("--seed", type=int, default=4)
    idle = sub.choices["idle"]
    idle.add_argument("--locks", type=int, default=10000)
    idle.add_argument("--owners", type=int, default=0, help="default: one per lock")
    idle.add_argument("--seconds", type=float, default=60.0)
    idle.add_argument("--settle", type=float, default=2.0)
    scale = sub.choices["scale"]
    scale.add_argument("--root", required=True, help="an existing tree (bench/mkscale.py)")
    scale.add_argument("--passes", type=int, default=4, help="passes after the first")
    stop = sub.choices["stop"]
    stop.add_argument("--root", required=True, help="an existing tree (a town)")
    stop.add_argument("--runs", type=int, default=5)
    stop.add_argument("--after", type=float, default=0.5, help="seconds into the pass")
    town = sub.choices["town"]
    town.add_argument("--sessions", type=int, default=100)
    town.add_argument("--panes", type=int, default=10, help="panes per session, a lock each")
    town.add_argument("--pane-kills", type=int, default=100)
    town.add_argument("--session-kills", type=int, default=30)
    town.add_argument("--control-sessions", type=int, default=10)
    town.add_argument("--seconds", type=float, default=60.0, help="the idle window")
    town.add_argument("--settle", type=float, default=2.0)
    town.add_argument("--gap-ms", type=float, default=500.0,
                      help="mean gap between kills (default 500: most kills fall in different "
                      "300 ms tmux polls)")
    town.add_argument("--timeout", type=float, default=60.0)
    town.add_argument("--seed", type=int, default=4)
    town.add_argument("--log-level", default="info",
                      help="the daemon's (debug shows each tmux query; it costs CPU while idle)")
    a = ap.parse_args(argv)
    if a.cmd in ("latency", "town") and shutil.which("tmux") is None:
        print(f"daemon_bench.py {a.cmd}: tmux is not installed (apt-get install tmux)",
              file=sys.stderr)
        return 2

    # SIGTERM and SIGHUP end the run like ^C: the finally blocks kill what was started.
    def stop(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)

    workdir = a.workdir or f"/var/tmp/agentlock-bench/run-{os.getpid()}"
    os.makedirs(workdir, exist_ok=True)
    try:
        if a.cmd == "latency":
            return run_latency(a, workdir, extra)
        if a.cmd == "scale":
            return run_scale(a, workdir, extra)
        if a.cmd == "stop":
            return run_stop(a, workdir, extra)
        if a.cmd == "town":
            return run_town(a, workdir, extra)
        return run_idle(a, workdir, extra)
    finally:
        if not a.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
