#!/usr/bin/env python3
"""Fleet mode end to end: a real etcd (private data dir, loopback ports) and real agentlockd
daemons, each in its own UTS namespace with its own hostname, sharing one worker tree.

Usage: test_fleet.py AGENTLOCKD [SCENARIO...]   (scenarios: presence, outage, partition, soak)

Python rather than GoogleTest: the test is process orchestration (etcd, daemons in namespaces,
a TCP relay to partition one host) with nothing of the library to link.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import base64

AGENTLOCKD = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("AGENTLOCKD", "agentlockd")
ETCD = shutil.which("etcd") or "/usr/bin/etcd"
TTL = "2s"
GONE_AFTER = 4.0  # seconds: host_gone_after in every scenario
FAILURES = []


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def check(cond, what):
    if cond:
        log(f"ok: {what}")
    else:
        log(f"FAIL: {what}")
        FAILURES.append(what)
    return cond


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    log(f"timed out after {timeout}s waiting for {what}")
    return None


class Etcd:
    def __init__(self, base, tls=None):
        self.dir = os.path.join(base, "etcd-data")
        self.client = free_port()
        self.peer = free_port()
        self.tls = tls  # {"ca", "cert", "key"} of the server, clients need a cert from the CA
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.client}"
        self.proc = None
        self.log = open(os.path.join(base, "etcd.log"), "ab")

    def start(self):
        peer = f"http://127.0.0.1:{self.peer}"
        self.proc = subprocess.Popen(
            [ETCD, "--name", "default", "--data-dir", self.dir,
             "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"default={peer}"] + self.tls_args(),
            stdout=self.log, stderr=self.log)
        if not wait_for(lambda: self.range("/health-probe") is not None, 30, "etcd to answer"):
            raise RuntimeError("etcd did not start")

    def tls_args(self):
        if not self.tls:
            return []
        return ["--cert-file", self.tls["cert"], "--key-file", self.tls["key"],
                "--trusted-ca-file", self.tls["ca"], "--client-cert-auth"]

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def call(self, path, body):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     method="POST")
        try:
            ctx = None
            if self.tls:
                import ssl
                ctx = ssl.create_default_context(cafile=self.tls["ca"])
                ctx.load_cert_chain(self.tls["client_cert"], self.tls["client_key"])
            with urllib.request.urlopen(req, timeout=2, context=ctx) as r:
                return json.load(r)
        except Exception:
            return None

    def range(self, prefix):
        b = lambda s: base64.b64encode(s.encode()).decode()
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        r = self.call("/v3/kv/range", {"key": b(prefix), "range_end": b(end)})
        if r is None:
            return None
        return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", "")).decode()
                for kv in r.get("kvs", [])}


class Relay:
    """A TCP relay in front of etcd for one host: SIGSTOP-like partition by pausing it."""

    def __init__(self, target_port):
        self.port = free_port()
        self.target = target_port
        self.paused = threading.Event()
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", self.port))
        self.srv.listen(16)
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                c.close()
                continue
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self.pump, args=(a, b), daemon=True).start()

    def pump(self, a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                while self.paused.is_set():  # a partition: bytes go nowhere, nothing answers
                    time.sleep(0.05)
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.close()
            except OSError:
                pass


class Daemon:
    def __init__(self, base, host, tree, endpoint, remove=False, extra=None, mount=None):
        self.host = host
        self.cfg = os.path.join(base, f"{host}.json")
        self.logpath = os.path.join(base, f"{host}.log")
        config = {
            "roots": [tree], "interval": "1s", "full_pass_interval": "1s",
            "tmux_socket": f"agentlock-fleet-test-{os.getpid()}-{host}",
            "log_format": "json", "log_level": "info",
            "fleet": {"etcd": [endpoint], "prefix": "/agentlock-test", "lease_ttl": TTL,
                      "host_gone_after": f"{int(GONE_AFTER)}s", "remove_host_gone": remove,
                      "request_timeout": "500ms", **(extra or {})},
        }
        with open(self.cfg, "w") as f:
            json.dump(config, f)
        self.proc = None
        self.tmux = config["tmux_socket"]
        # (source, target): a directory of its own seen at the shared tree's path
        self.mount = mount

    def session(self, name):
        """Starts a tmux session on this host's tmux server (the daemon's)."""
        subprocess.run(["tmux", "-L", self.tmux, "new-session", "-d", "-s", name, "sleep 600"],
                       check=True)

    def start(self):
        out = open(self.logpath, "ab")
        ns, bind = ["--uts"], ""
        if self.mount:
            ns, bind = ["--uts", "--mount"], f"mount --bind {self.mount[0]} {self.mount[1]} && "
        self.proc = subprocess.Popen(
            ["unshare", *ns, "sh", "-c", f"{bind}hostname {self.host} && exec {AGENTLOCKD} "
             f"--config {self.cfg}"], stdout=out, stderr=out)
        if not wait_for(lambda: self.events("fleet.joined"), 15, f"{self.host} to join"):
            raise RuntimeError(f"{self.host} did not join: {open(self.logpath).read()[-2000:]}")

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            if sig in (signal.SIGKILL, signal.SIGTERM):
                self.proc.wait()

    def events(self, name=None, **fields):
        out = []
        try:
            with open(self.logpath) as f:
                for line in f:
                    try:
                        e = json.loads(line)
                    except ValueError:
                        continue
                    if name and e.get("event") != name:
                        continue
                    if all(e.get(k) == v for k, v in fields.items()):
                        out.append(e)
        except FileNotFoundError:
            pass
        return out


class Tree:
    def __init__(self, base):
        self.root = os.path.join(base, "tree")
        os.makedirs(self.root)
        self.agents = []

    def lock(self, worker, host, pid=None, session="", root=None):
        """Writes <worker>/.runtime/agent.lock; with no pid, starts a live agent (sleep)."""
        if pid is None:
            p = subprocess.Popen(["sleep", "600"])
            self.agents.append(p)
            pid = p.pid
        d = os.path.join(root or self.root, worker, ".runtime")
        os.makedirs(d, exist_ok=True)
        now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"
        tmp = os.path.join(d, "agent.lock.tmp")
        with open(tmp, "w") as f:
            json.dump({"pid": pid, "acquired_at": now, "session_id": session, "hostname": host}, f)
        os.rename(tmp, os.path.join(d, "agent.lock"))
        return pid

    def exists(self, worker):
        return os.path.exists(os.path.join(self.root, worker, ".runtime", "agent.lock"))

    def path(self, worker):
        return os.path.join(self.root, worker)

    def stop_agents(self):
        for p in self.agents:
            if p.poll() is None:
                p.kill()
                p.wait()


def dead_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


class Fixture:
    def __init__(self, name, tls=None):
        self.base = tempfile.mkdtemp(prefix=f"agentlock-fleet-{name}-")
        self.etcd = Etcd(self.base, tls(self.base) if tls else None)
        self.tree = Tree(self.base)
        self.daemons = []
        self.relays = []

    def daemon(self, host, remove=False, relay=False, extra=None, mount=None):
        endpoint = self.etcd.url
        if relay:
            r = Relay(self.etcd.client)
            self.relays.append(r)
            endpoint = f"http://127.0.0.1:{r.port}"
        d = Daemon(self.base, host, self.tree.root, endpoint, remove, extra, mount)
        self.daemons.append(d)
        d.start()
        return d

    def removals(self):
        return [e for d in self.daemons for e in d.events("lock.removed")]

    def close(self):
        for r in self.relays:
            r.paused.clear()
        for d in self.daemons:
            d.kill(signal.SIGKILL)
            subprocess.run(["tmux", "-L", d.tmux, "kill-server"], stderr=subprocess.DEVNULL)
        self.etcd.kill()
        self.tree.stop_agents()
        if not FAILURES or os.environ.get("KEEP_FLEET_TMP") is None:
            shutil.rmtree(self.base, ignore_errors=True)


def scenario_presence():
    """A daemon SIGKILLed: its lease expires, its host goes missing, then host-gone after the
    grace period; reported only where removal is off, removed where it is on. A cross-host
    session collision is logged on both hosts. Live locks of live hosts are never removed."""
    fx = Fixture("presence")
    try:
        fx.etcd.start()
        h1 = fx.daemon("h1")
        h2 = fx.daemon("h2")
        fx.tree.lock("w-h1", "h1")
        fx.tree.lock("w-h2", "h2")
        h1.session("S-dup")
        h2.session("S-dup")
        fx.tree.lock("w-h1-dup", "h1", session="S-dup")
        fx.tree.lock("w-h2-dup", "h2", session="S-dup")
        check(wait_for(lambda: "/agentlock-test/hosts/h2" in (fx.etcd.range("/agentlock-test/hosts/") or {}),
                       10, "h2's host key"), "h2 publishes its host key")
        check(wait_for(lambda: any(k.endswith("/w-h1") for k in (fx.etcd.range("/agentlock-test/claims/h1/") or {})),
                       10, "h1's claim"), "h1 publishes its live claim")
        check(wait_for(lambda: h1.events("collision.cross_host", kind="session", other_host="h2"), 20,
                       "h1 collision"), "h1 logs collision.cross_host with h2's evidence")
        check(wait_for(lambda: h2.events("collision.cross_host", kind="session", other_host="h1"), 20,
                       "h2 collision"), "h2 logs collision.cross_host with h1's evidence")
        e = (h1.events("collision.cross_host") or [{}])[0]
        check(e.get("worker") == fx.tree.path("w-h1-dup") and e.get("other_worker") == fx.tree.path("w-h2-dup")
              and e.get("session_id") == "S-dup" and e.get("other_pid") not in (None, "0"),
              "the collision carries both hosts' workers, session and pids")
        check(wait_for(lambda: h1.events("lock.foreign", worker=fx.tree.path("w-h2")), 10, "foreign"),
              "h1 reports h2's lock as foreign while h2 lives")

        killed_at = time.monotonic()
        h2.kill(signal.SIGKILL)
        gone_key = wait_for(lambda: "/agentlock-test/hosts/h2" not in (fx.etcd.range("/agentlock-test/hosts/") or {"x": 1}),
                            10, "h2's key to expire")
        check(gone_key and time.monotonic() - killed_at >= 1.0,
              "the SIGKILLed daemon's lease expires and its host key vanishes")
        check(not any(k.startswith("/agentlock-test/claims/h2/") for k in (fx.etcd.range("/agentlock-test/claims/") or {})),
              "its claims vanish with the lease")
        missing = wait_for(lambda: h1.events("fleet.host_missing", host="h2"), 10, "host_missing")
        check(missing, "h1 logs fleet.host_missing for h2")
        gone = wait_for(lambda: h1.events("lock.host_gone", worker=fx.tree.path("w-h2")), GONE_AFTER + 10, "host-gone")
        check(gone and gone[0].get("verdict") == "host-gone", "h1 judges h2's lock host-gone after the grace period")
        gone_at = time.monotonic()
        check(gone_at - killed_at >= GONE_AFTER, f"not before host_gone_after ({gone_at - killed_at:.1f}s)")
        time.sleep(3)
        check(fx.tree.exists("w-h2") and fx.tree.exists("w-h2-dup"), "with remove_host_gone false the locks stay")
        check(not fx.removals(), "no daemon removed anything")

        h3 = fx.daemon("h3", remove=True)
        removed = wait_for(lambda: h3.events("lock.removed", worker=fx.tree.path("w-h2")), GONE_AFTER + 15, "h3 removal")
        check(removed and removed[0].get("verdict") == "host-gone",
              "a daemon with remove_host_gone removes the host-gone lock through the reaper")
        check(fx.tree.exists("w-h1") and fx.tree.exists("w-h1-dup"), "h1's live locks stay")
        check(all(e.get("worker") in (fx.tree.path("w-h2"), fx.tree.path("w-h2-dup")) for e in fx.removals()),
              "nothing but the gone host's locks was removed")
    finally:
        fx.close()


def scenario_outage():
    """etcd killed and restarted mid-run: every foreign lock stays foreign, nothing is removed
    while etcd is away, the host-gone clock restarts, the daemons recover."""
    fx = Fixture("outage")
    try:
        fx.etcd.start()
        h1 = fx.daemon("h1", remove=True)
        h2 = fx.daemon("h2", remove=True)
        fx.tree.lock("w-h1", "h1")
        fx.tree.lock("w-h2", "h2")
        fx.tree.lock("w-h9", "h9", pid=4242)  # a host that never joined: missing from the start
        wait_for(lambda: h1.events("lock.foreign", worker=fx.tree.path("w-h9")), 10, "h9 judged")
        time.sleep(1.5)  # the clock on h9 runs, but not for host_gone_after
        fx.etcd.kill()
        down_at = time.monotonic()
        check(wait_for(lambda: h1.events("fleet.unreachable") and h2.events("fleet.unreachable"), 10,
                       "unreachable"), "both daemons log fleet.unreachable")
        time.sleep(GONE_AFTER + 2)
        check(len(h1.events("fleet.unreachable")) == 1, "fleet.unreachable is logged once")
        check(fx.tree.exists("w-h9"), "no host-gone removal while etcd was unreachable")
        # A local stale lock is still removed: local judging goes on.
        fx.tree.lock("w-h1-stale", "h1", pid=dead_pid())
        check(wait_for(lambda: h1.events("lock.removed", worker=fx.tree.path("w-h1-stale")), 10, "local removal"),
              "local judging goes on while etcd is away")
        fx.etcd.start()
        up_at = time.monotonic()
        check(wait_for(lambda: h1.events("fleet.recovered") and h2.events("fleet.recovered"), 15, "recovered"),
              "both daemons log fleet.recovered")
        removed = wait_for(lambda: [e for e in fx.removals() if e.get("worker") == fx.tree.path("w-h9")],
                           GONE_AFTER + 15, "h9 removal")
        check(removed, "the gone host's lock is removed once etcd was seen long enough")
        check(time.monotonic() - up_at >= GONE_AFTER - 0.5,
              f"the host-gone clock restarted after the outage ({time.monotonic() - up_at:.1f}s after recovery)")
        check(fx.tree.exists("w-h1") and fx.tree.exists("w-h2"), "the live hosts' locks stay")
        check(all(e.get("worker") in (fx.tree.path("w-h9"), fx.tree.path("w-h1-stale")) for e in fx.removals()),
              "nothing else was removed")
        del down_at
    finally:
        fx.close()


def scenario_partition():
    """One host cut off from etcd (its relay stops passing bytes): it keeps every foreign lock
    and goes on judging its own; the others see it missing, then gone, and (removal off) keep
    its locks; when the partition heals it rejoins and the others see it back."""
    fx = Fixture("partition")
    try:
        fx.etcd.start()
        h1 = fx.daemon("h1", relay=True)
        h2 = fx.daemon("h2")
        fx.tree.lock("w-h1", "h1")
        fx.tree.lock("w-h2", "h2")
        fx.tree.lock("w-h9", "h9", pid=4242)
        wait_for(lambda: h1.events("lock.foreign", worker=fx.tree.path("w-h9")), 10, "h9 judged")
        fx.relays[0].paused.set()
        check(wait_for(lambda: h1.events("fleet.unreachable"), 10, "h1 unreachable"),
              "the partitioned host logs fleet.unreachable")
        check(wait_for(lambda: h2.events("lock.host_gone", worker=fx.tree.path("w-h1")), GONE_AFTER + 12,
                       "h2 sees h1 gone"), "the others judge the partitioned host's locks host-gone")
        fx.tree.lock("w-h1-stale", "h1", pid=dead_pid())
        check(wait_for(lambda: h1.events("lock.removed", worker=fx.tree.path("w-h1-stale")), 10, "local"),
              "the partitioned host still removes its own stale lock")
        time.sleep(2)
        check(fx.tree.exists("w-h9") and fx.tree.exists("w-h2") and fx.tree.exists("w-h1"),
              "no lock of another host is removed by anyone during the partition")
        check(not h1.events("lock.host_gone"), "the partitioned host judges no lock host-gone")
        fx.relays[0].paused.clear()
        check(wait_for(lambda: h1.events("fleet.recovered"), 15, "h1 recovered"), "h1 logs fleet.recovered")
        check(wait_for(lambda: h2.events("fleet.host_back", host="h1"), 15, "h1 back"),
              "the others see the healed host back")
    finally:
        fx.close()


def scenario_soak(seconds=20):
    """Agents on three hosts take and drop locks, some die, for `seconds`: every live agent's
    lock stays, every dead local agent's lock goes, and no lock of a live host is removed by
    another host."""
    fx = Fixture("soak")
    try:
        fx.etcd.start()
        hosts = [fx.daemon(h, remove=True) for h in ("h1", "h2", "h3")]
        import random
        rnd = random.Random(13)
        live = {}  # worker -> (host, Popen)
        end = time.monotonic() + seconds
        n = 0
        while time.monotonic() < end:
            host = rnd.choice(["h1", "h2", "h3"])
            worker = f"s{n % 60}"
            n += 1
            if worker in live:
                h, p = live.pop(worker)
                p.kill()
                p.wait()
                if rnd.random() < 0.5:  # a clean release; else the daemon must clean up
                    try:
                        os.unlink(os.path.join(fx.tree.path(worker), ".runtime", "agent.lock"))
                    except FileNotFoundError:
                        pass  # its daemon was quicker
                continue
            if fx.tree.exists(worker):
                continue  # a dead agent's lock waits for its host's daemon
            pid = fx.tree.lock(worker, host)
            live[worker] = (host, fx.tree.agents[-1])
            time.sleep(0.05)
        time.sleep(3)
        missing = [w for w in live if not fx.tree.exists(w)]
        check(not missing, f"every live agent's lock is still there ({len(live)} live, missing {missing})")
        for w, (h, _) in live.items():
            removed = [e for e in fx.removals() if e.get("worker") == fx.tree.path(w)
                       and e.get("hostname") == h and e.get("pid") == str(live[w][1].pid)]
            if removed:
                check(False, f"live lock {w} was removed: {removed}")
        leftovers = wait_for(lambda: all(fx.tree.exists(w) == (w in live) for w in (f"s{i}" for i in range(60))),
                             15, "dead agents' locks to go")
        check(leftovers, "every dead agent's lock is removed by its own host's daemon")
        check(all(e.get("verdict") == "stale" and e.get("hostname") in (None, "", h.host)
                  for h in hosts for e in h.events("lock.removed")),
              "every removal was a local stale lock (no host-gone removal of a live host)")
        check(not any(h.events("fleet.unreachable") for h in hosts), "etcd stayed reachable")
        log(f"soak: {n} operations, {len(fx.removals())} removals")
    finally:
        fx.close()


def scenario_worker():
    """One worker path held live on two hosts whose trees are not the same (h2 sees a directory
    of its own at the shared path: a mount gone wrong): both log collision.cross_host of kind
    worker, with each other's evidence, and neither removes anything."""
    fx = Fixture("worker")
    try:
        fx.etcd.start()
        private = os.path.join(fx.base, "tree-h2")
        os.makedirs(private)
        h1 = fx.daemon("h1")
        h2 = fx.daemon("h2", mount=(private, fx.tree.root))
        pid1 = fx.tree.lock("w-same", "h1")
        pid2 = fx.tree.lock("w-same", "h2", root=private)
        same = fx.tree.path("w-same")
        e1 = wait_for(lambda: h1.events("collision.cross_host", kind="worker", other_host="h2"), 20, "h1")
        e2 = wait_for(lambda: h2.events("collision.cross_host", kind="worker", other_host="h1"), 20, "h2")
        check(e1 and e1[0].get("worker") == same and e1[0].get("other_worker") == same
              and str(e1[0].get("pid")) == str(pid1) and e1[0].get("other_pid") == str(pid2),
              "h1 logs the worker claimed on h2 too, with both pids")
        check(e2 and str(e2[0].get("pid")) == str(pid2) and e2[0].get("other_pid") == str(pid1),
              "h2 logs the same collision from its side")
        check(not fx.removals() and fx.tree.exists("w-same")
              and os.path.exists(os.path.join(private, "w-same", ".runtime", "agent.lock")),
              "both locks stay")
    finally:
        fx.close()


def make_pki(base):
    """A CA, a server cert for 127.0.0.1 and a client cert, with the openssl command."""
    d = os.path.join(base, "pki")
    os.makedirs(d)
    run = lambda *a: subprocess.run(["openssl", *a], check=True, cwd=d,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
        "-keyout", "ca.key", "-out", "ca.pem")
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
    for name in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout",
            f"{name}.key", "-out", f"{name}.csr")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", f"{name}.pem")
    p = lambda n: os.path.join(d, n)
    return {"ca": p("ca.pem"), "cert": p("server.pem"), "key": p("server.key"),
            "client_cert": p("client.pem"), "client_key": p("client.key")}


def scenario_tls():
    """etcd with client certificates: a daemon with cacert, cert and key joins; one without a
    client certificate cannot, says so, and keeps every foreign lock."""
    fx = Fixture("tls", tls=make_pki)
    try:
        fx.etcd.start()
        t = fx.etcd.tls
        good = fx.daemon("h1", extra={"cacert": t["ca"], "cert": t["client_cert"],
                                      "key": t["client_key"]})
        check(good.events("fleet.joined"), "a daemon with the client certificate joins over TLS")
        check(wait_for(lambda: "/agentlock-test/hosts/h1" in (fx.etcd.range("/agentlock-test/hosts/") or {}),
                       10, "h1's key over TLS"), "its host key is in etcd")
        bad = Daemon(fx.base, "h2", fx.tree.root, fx.etcd.url, False, {"cacert": t["ca"]})
        fx.daemons.append(bad)
        out = open(bad.logpath, "ab")
        bad.proc = subprocess.Popen(["unshare", "--uts", "sh", "-c", f"hostname h2 && exec {AGENTLOCKD} "
                                     f"--config {bad.cfg}"], stdout=out, stderr=out)
        fx.tree.lock("w-h9", "h9", pid=4242)
        check(wait_for(lambda: bad.events("fleet.unreachable"), 15, "h2 unreachable"),
              "a daemon without a client certificate logs fleet.unreachable")
        time.sleep(GONE_AFTER + 1)
        check(not bad.events("fleet.joined") and not bad.events("lock.host_gone"),
              "it never joins and judges nothing host-gone")
    finally:
        fx.close()


SCENARIOS = {"presence": scenario_presence, "outage": scenario_outage,
             "partition": scenario_partition, "soak": scenario_soak, "tls": scenario_tls,
             "worker": scenario_worker}

if __name__ == "__main__":
    if os.geteuid() != 0:
        print("SKIP: needs root (unshare --uts)")
        sys.exit(77)
    if not os.path.exists(ETCD):
        print("SKIP: no etcd (apt-get install etcd-server)")
        sys.exit(77)
    names = sys.argv[2:] or list(SCENARIOS)
    for name in names:
        log(f"=== {name}")
        try:
            SCENARIOS[name]()
        except Exception as e:  # a scenario that cannot run is a failure, not a skip
            check(False, f"{name} raised {e!r}")
    if FAILURES:
        log(f"{len(FAILURES)} failure(s): " + "; ".join(FAILURES))
        sys.exit(1)
    log("all fleet scenarios passed")
