"""--handover-socket: a new svcdns takes the listening sockets over from the
running one while clients ask without pause (UDP, and TCP with a connection
per query as dig and the C library make them): no query goes unanswered and
none fails, from manifests and from the Kubernetes API (where the new process
serves only once synced, so none meets SERVFAIL). Also: no process to take
over from, a stale socket file, an old process gone mid-way, and a new one
that goes away before it serves (the old one serves on, then honours the
SIGTERM it held)."""

import os
import signal
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakeapi"))
import fakeapi  # noqa: E402
import kubetest as k  # noqa: E402

t = k.t
CLUSTER = os.path.join(t.FIXTURES, "cluster")
SOA_NAME = "cluster.local."


class Load:
    """Clients asking the SOA of the cluster zone without pause until
    stopped: `udp` threads (each a socket of its own, a new one every 100
    queries so that the kernel spreads them over the listening sockets) and
    one TCP thread (a connection per query). A query unanswered within 2 s is
    lost; an answer that is not NOERROR with the SOA failed. The serials seen
    tell which processes answered."""

    def __init__(self, port, udp=3):
        self.port = port
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.sent = self.answered = self.lost = self.failed = 0
        self.tcp_sent = self.tcp_answered = self.tcp_lost = self.tcp_failed = 0
        self.serials = set()
        self.why = []
        self.threads = [threading.Thread(target=self._udp, daemon=True) for _ in range(udp)]
        self.threads.append(threading.Thread(target=self._tcp, daemon=True))

    def start(self):
        for th in self.threads:
            th.start()
        return self

    def stop(self):
        self.stop_ev.set()
        for th in self.threads:
            th.join(10)

    def _check(self, wire, qid):
        """None when the answer is right, else why not."""
        try:
            msg = t.parse(wire)
        except Exception as e:  # noqa: BLE001
            return "unparsable answer: %s" % e
        if msg.id != qid:
            return "answer to another query"
        rc = t.dns.rcode.to_text(msg.rcode())
        soa = [rr for rr in msg.answer if rr.rdtype == t.dns.rdatatype.SOA]
        if rc != "NOERROR" or not soa:
            return "rcode %s, %d answer records" % (rc, len(msg.answer))
        with self.lock:
            self.serials.add(soa[0][0].serial)
        return None

    def _count(self, tcp, outcome, why=None):
        with self.lock:
            if tcp:
                self.tcp_sent += 1
            else:
                self.sent += 1
            if outcome == "ok":
                if tcp:
                    self.tcp_answered += 1
                else:
                    self.answered += 1
            elif outcome == "lost":
                if tcp:
                    self.tcp_lost += 1
                else:
                    self.lost += 1
            else:
                if tcp:
                    self.tcp_failed += 1
                else:
                    self.failed += 1
            if why and len(self.why) < 10:
                self.why.append(("tcp: " if tcp else "udp: ") + why)

    def _udp(self):
        s = None
        n = 0
        while not self.stop_ev.is_set():
            if n % 100 == 0:
                if s:
                    s.close()
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.connect(("127.0.0.1", self.port))
            n += 1
            q = t.make_query(SOA_NAME, "SOA", edns=False)
            s.send(q.to_wire())
            deadline = time.monotonic() + 2.0
            outcome, why = "lost", "no answer within 2 s"
            while time.monotonic() < deadline:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    wire = s.recv(4096)
                except socket.timeout:
                    break
                except OSError as e:
                    why = "error %s" % e
                    break
                if len(wire) >= 2 and struct.unpack("!H", wire[:2])[0] != q.id:
                    continue  # a late answer to an earlier query: not this one's
                why = self._check(wire, q.id)
                outcome = "ok" if why is None else "failed"
                break
            self._count(False, outcome, why)
        if s:
            s.close()

    def _tcp(self):
        while not self.stop_ev.is_set():
            q = t.make_query(SOA_NAME, "SOA", edns=False)
            w = q.to_wire()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2.0) as s:
                    s.sendall(struct.pack("!H", len(w)) + w)
                    (n,) = struct.unpack("!H", t.recv_exact(s, 2))
                    wire = t.recv_exact(s, n)
            except Exception as e:  # noqa: BLE001 - refused, reset, closed, timed out
                self._count(True, "lost", "%s: %s" % (type(e).__name__, e))
                continue
            why = self._check(wire, q.id)
            self._count(True, "ok" if why is None else "failed", why)

    def summary(self):
        return ("udp sent %d answered %d lost %d failed %d; tcp sent %d answered %d lost %d "
                "failed %d" % (self.sent, self.answered, self.lost, self.failed, self.tcp_sent,
                               self.tcp_answered, self.tcp_lost, self.tcp_failed))


LISTENING = "the next process can take over through"


def wait_log(srv, text, timeout=20.0):
    found, _ = t.poll(lambda: text in srv.stderr_text(), timeout=timeout, interval=0.02)
    return bool(found)


def same_place(srv, old):
    """`srv` listens where `old` does (its port and --http)."""
    srv.port = old.port
    return srv


def replace_under_load(tally, label, old, make_new, prepare=None):
    """Loads `old` (started here unless it runs), starts the new process on
    the same socket path and ports, waits until it serves, stops the old one
    as Kubernetes would (SIGTERM), and counts. Returns the new process."""
    if not old.alive():
        old.start()
    tally.check(wait_log(old, LISTENING), "%s: the old process listens for a hand-over" % label)
    load = Load(old.port).start()
    try:
        t.poll(lambda: load.answered > 200 and load.tcp_answered > 20, timeout=10)
        if prepare:
            prepare()
        # The first serial is the clock's second: a new process that
        # published within the old one's second would look like it.
        serial = t.soa_serial(old.port)
        deadline = time.monotonic() + 5
        while serial and time.time() < serial + 1.05 and time.monotonic() < deadline:
            time.sleep(0.05)
        new = same_place(make_new(), old)
        new.start(wait=False)
        tally.check(wait_log(new, "handover: serving;"),
                    "%s: the new process serves" % label, new.stderr_tail())
        tally.check("a new process took copies of our sockets" in old.stderr_text(),
                    "%s: the new process received the old one's sockets first" % label)
        tally.check(wait_log(old, "waiting for SIGTERM to exit"),
                    "%s: the old process drained and waits" % label, old.stderr_tail())
        problems = old.stop()
        tally.check(not problems, "%s: the old process exits cleanly on SIGTERM" % label,
                    "\n".join(problems))
        # the new process alone, for a while
        base = load.answered
        t.poll(lambda: load.answered > base + 200, timeout=10)
    finally:
        load.stop()
    print("# %s: %s; %d distinct SOA serials" % (label, load.summary(), len(load.serials)))
    tally.check(load.lost == 0 and load.failed == 0 and load.answered > 0,
                "%s: no UDP query lost or failed" % label, load.summary() + " " + str(load.why))
    tally.check(load.tcp_lost == 0 and load.tcp_failed == 0 and load.tcp_answered > 0,
                "%s: no TCP query lost or failed" % label, load.summary() + " " + str(load.why))
    tally.check(len(load.serials) >= 2, "%s: both processes answered (two SOA serials)" % label,
                str(load.serials))
    return new


def http_get(port, path):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(("GET %s HTTP/1.0\r\n\r\n" % path).encode())
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        return data.split(b"\r\n\r\n", 1)[1].decode()
    except (OSError, IndexError):
        return ""


def test_manifests(tally, sock_dir):
    path = os.path.join(sock_dir, "manifests.sock")
    http = t.free_port()
    args = ["--handover-socket", path, "--http", "127.0.0.1:%d" % http]
    old = t.Server(CLUSTER, args + ["--threads", "2"])
    new = replace_under_load(tally, "manifests", old,
                             lambda: t.Server(CLUSTER, args + ["--threads", "3"]))
    tally.check("took over 2 UDP and 2 TCP DNS sockets and the HTTP one" in new.stderr_text(),
                "every worker's sockets and the HTTP one were handed over", new.stderr_tail())
    ready, _ = t.poll(lambda: http_get(http, "/ready").startswith("OK"), timeout=5)
    tally.check(bool(ready), "the new process answers /ready on the same HTTP socket")
    # It hands over in turn, to a process with fewer threads: all three
    # sockets of each kind are served, two of them by one worker.
    newer = replace_under_load(tally, "second hand-over", new,
                               lambda: t.Server(CLUSTER, args + ["--threads", "1"]))
    tally.check("took over 3 UDP and 3 TCP DNS sockets" in newer.stderr_text(),
                "the second hand-over passes on all three of each", newer.stderr_tail())
    tally.server_stopped(newer, "the last process exits cleanly")


def test_api(tally, sock_dir):
    """The new process's first namespaces lists fail: it syncs only after
    its backoff, and the old one serves until then (none meets SERVFAIL)."""
    path = os.path.join(sock_dir, "api.sock")
    api = fakeapi.FakeAPI().start()
    try:
        api.apply_many(fakeapi.load_dir(os.path.join(k.KUBE_FIXTURES, "cluster")))
        src = ["--api-server", api.url] + k.FAST
        args = ["--handover-socket", path, "--threads", "2"]
        new = replace_under_load(
            tally, "API", k.KubeServer(src, args), lambda: k.KubeServer(src, args),
            prepare=lambda: api.fault("namespaces", "list", "status", count=3, code=500))
        log = new.stderr_text()
        sync, serve = log.find("api: first full sync"), log.find("handover: serving;")
        tally.check(log.count("HTTP 500") >= 1 and 0 <= sync < serve,
                    "API: the new process's lists failed, and it served only once synced",
                    new.stderr_tail())
        tally.server_stopped(new, "API: the new process exits cleanly")
    finally:
        api.stop()


def test_no_old(tally, sock_dir):
    """No file, then a stale one (a socket nobody listens on): the process
    binds its own sockets, serves, and listens on the path for the next."""
    for label, stale in (("no socket file", False), ("stale socket file", True)):
        path = os.path.join(sock_dir, "alone-%d.sock" % stale)
        if stale:
            u = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            u.bind(path)
            u.close()
        srv = t.Server(CLUSTER, ["--handover-socket", path]).start()
        tally.check("no process to take over from" in srv.stderr_text(),
                    "%s: says there was no process to take over from" % label,
                    srv.stderr_tail())
        tally.check(t.soa_serial(srv.port) is not None, "%s: serves" % label)
        wait_log(srv, LISTENING)
        c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            c.connect(path)
            listening = True
        except OSError:
            listening = False
        finally:
            c.close()
        tally.check(listening, "%s: listens on the path for the next process" % label)
        tally.server_stopped(srv, "%s: exits cleanly" % label)


def unix_sockets_on(path):
    with open("/proc/net/unix") as f:
        return sum(1 for line in f if line.rstrip().endswith(" " + path))


def test_old_gone(tally, sock_dir):
    """The old process stops answering (SIGSTOP) and then dies (SIGKILL)
    while the new one waits for its sockets: the new one binds its own."""
    path = os.path.join(sock_dir, "gone.sock")
    old = t.Server(CLUSTER, ["--handover-socket", path]).start()
    tally.check(wait_log(old, LISTENING), "the old process listens for a hand-over")
    old.proc.send_signal(signal.SIGSTOP)
    new = same_place(t.Server(CLUSTER, ["--handover-socket", path]), old)
    new.start(wait=False)
    # The kernel queues the connection for the stopped process: the path then
    # shows twice in /proc/net/unix (the listener and the queued connection).
    queued, _ = t.poll(lambda: unix_sockets_on(path) >= 2, timeout=10)
    tally.check(bool(queued), "the new process connected to the stopped one")
    old.kill()
    tally.check(wait_log(new, "went away before it sent every socket"),
                "the new process says the old one went away", new.stderr_tail())
    tally.check(wait_log(new, "listening on"), "and binds its own sockets", new.stderr_tail())
    ok, _ = t.poll(lambda: t.soa_serial(new.port), timeout=5)
    tally.check(ok is not None, "the new process serves")
    tally.server_stopped(new, "the new process exits cleanly")


def test_new_gone(tally, sock_dir):
    """The new process never syncs (its API server does not answer) and is
    killed: the old one served meanwhile, held the SIGTERM it got while the
    hand-over was in progress, and honours it once the new one is gone."""
    path = os.path.join(sock_dir, "new-gone.sock")
    old = t.Server(CLUSTER, ["--handover-socket", path]).start()
    tally.check(wait_log(old, LISTENING), "the old process listens for a hand-over")
    dead_api = "http://127.0.0.1:%d" % t.free_port()
    new = same_place(k.KubeServer(["--api-server", dead_api] + k.FAST,
                                  ["--handover-socket", path]), old)
    new.start(wait=False)
    tally.check(wait_log(old, "a new process took copies of our sockets"),
                "the new process received the sockets", old.stderr_tail())
    old.proc.send_signal(signal.SIGTERM)
    tally.check(wait_log(old, "stopping once it serves"), "the old process holds SIGTERM",
                old.stderr_tail())
    tally.check(t.soa_serial(old.port) is not None, "and serves meanwhile")
    new.kill()
    tally.check(wait_log(old, "went away before it served"),
                "the old process sees the new one gone", old.stderr_tail())
    try:
        old.proc.wait(timeout=10)
    except t.subprocess.TimeoutExpired:
        pass
    tally.check(old.proc.returncode == 0, "then exits (status 0) on the signal it held",
                "status %s" % old.proc.returncode)
    old.stopped = True
    if old in t._live_servers:
        t._live_servers.remove(old)


def main(tally):
    sock_dir = t.mkdtemp(prefix="svcdns-ho-")
    test_no_old(tally, sock_dir)
    test_old_gone(tally, sock_dir)
    test_new_gone(tally, sock_dir)
    test_manifests(tally, sock_dir)
    test_api(tally, sock_dir)


if __name__ == "__main__":
    t.main_guard(t.Tally("hand-over of the listening sockets"), main)
