"""Operating svcdns: /health and /ready, SIGTERM with lameduck (queries
answered while /ready fails, a forwarded TCP query in flight still answered
after lameduck, then exit 0), reloads through --config FILE and SIGHUP (TTL,
zone files, query log; a bad configuration rejected with the old one kept;
sockets kept; options that need a restart named), and --check-config."""

import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_upstream as fu  # noqa: E402
import svcdns_testlib as t  # noqa: E402

OPS = os.path.join(t.FIXTURES, "ops")
WEB = "web.shop.svc.cluster.local."


def ttl_of(port, name=WEB):
    msg, _ = t.query(port, name, "A", timeout=1)
    return msg.answer[0].ttl if msg.answer else None


def answers(port, name, qtype="A"):
    msg, _ = t.query(port, name, qtype, timeout=1)
    return sorted(rd.to_text() for rr in msg.answer for rd in rr)


class TcpClient:
    """One DNS-over-TCP connection kept open across events."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)

    def send(self, name, qtype="A", rd=False):
        q = t.make_query(name, qtype, edns=False, rd=rd)
        w = q.to_wire()
        self.s.sendall(struct.pack("!H", len(w)) + w)
        return q.id

    def recv(self, timeout=5):
        self.s.settimeout(timeout)
        (n,) = struct.unpack("!H", t.recv_exact(self.s, 2))
        return t.parse(t.recv_exact(self.s, n))

    def ask(self, name, qtype="A"):
        self.send(name, qtype)
        return self.recv()

    def close(self):
        self.s.close()


def exited_cleanly(tally, srv, name):
    """For a server that exited by itself: status 0, no sanitizer report."""
    srv.kill()  # no-op once it exited; forgets it
    srv.stopped = True
    text = srv.stderr_text()
    bad = [m for m in t.SANITIZER_MARKERS if m in text]
    tally.check(srv.proc.returncode == 0 and not bad, name,
                "status %s %s\n%s" % (srv.proc.returncode, bad, srv.stderr_tail(20)))


def test_health_ready(tally):
    http = t.free_port()
    srv = t.Server(os.path.join(OPS, "cluster"), ["--http", "127.0.0.1:%d" % http]).start()
    try:
        st, _, body = t.http_get(http, "/health")
        tally.check(st == 200 and body == "OK\n", "/health: 200", "%s %r" % (st, body))
        ok, _ = t.poll(lambda: t.http_get(http, "/ready")[0] == 200, timeout=3)
        tally.check(bool(ok), "/ready: 200 once the manifests are served",
                    str(t.http_get(http, "/ready")))
    finally:
        srv.stop()  # checked in test_lameduck: here only the time it takes is of interest


def test_lameduck(tally):
    up = fu.FakeUpstream(delay=1.5)
    http = t.free_port()
    srv = t.Server(os.path.join(OPS, "cluster"),
                   ["--http", "127.0.0.1:%d" % http, "--lameduck", "500ms", "--threads", "1",
                    "--upstream", "127.0.0.1:%d" % up.port]).start()
    c = TcpClient(srv.port)
    try:
        tally.check(t.http_get(http, "/ready")[0] == 200, "ready before SIGTERM")
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        # "At once" is as soon as the signal is delivered and handled: a
        # request racing the signal may still see 200, so ask until 503
        # (well within the 500 ms lameduck).
        got = {}

        def unready():
            got["r"] = t.http_get(http, "/ready")
            return got["r"][0] == 503

        t.poll(unready, timeout=0.3, interval=0.01)
        st, _, body = got["r"]
        tally.check(st == 503 and "shutting down" in body, "/ready fails at once after SIGTERM",
                    "%s %r after %.2f s" % (st, body, time.monotonic() - t0))
        # A forwarded query over TCP that is answered only after lameduck.
        slow_id = c.send("slow.example.com.", rd=True)
        during = []
        while time.monotonic() - t0 < 0.35:
            during.append(bool(answers(srv.port, WEB)))
            time.sleep(0.02)
        tally.check(during and all(during), "UDP answered during lameduck",
                    "%d of %d" % (during.count(True), len(during)))
        c2 = TcpClient(srv.port)
        tally.check(bool(c2.ask(WEB).answer), "a new TCP connection is answered during lameduck")
        c2.close()
        tally.check(time.monotonic() - t0 < 0.5, "(those checks ran inside lameduck)",
                    "%.2f s" % (time.monotonic() - t0))
        tally.check(srv.alive(), "still running during lameduck")
        # after lameduck: no new connections, the one in flight is answered
        time.sleep(max(0, 0.9 - (time.monotonic() - t0)))
        try:
            socket.create_connection(("127.0.0.1", srv.port), timeout=1).close()
            refused = False
        except OSError:
            refused = True
        tally.check(refused, "after lameduck, new TCP connections are refused")
        r = c.recv(timeout=5)
        got = sorted(rd.to_text() for rr in r.answer for rd in rr)
        tally.check(r.id == slow_id and got == ["192.0.2.99"],
                    "the TCP query in flight is answered after lameduck",
                    "%s %s after %.2f s" % (r.id, got, time.monotonic() - t0))
        try:
            srv.proc.wait(timeout=8)
        except subprocess.TimeoutExpired:
            pass
        dt = time.monotonic() - t0
        tally.check(srv.proc.returncode == 0 and 1.2 < dt < 8,
                    "exit 0 once the answer in flight went out",
                    "status %s after %.1f s" % (srv.proc.returncode, dt))
        tally.check("drained" in srv.stderr_text(), "the log says it drained",
                    srv.stderr_tail(6))
    finally:
        c.close()
        if srv.alive():
            tally.server_stopped(srv)
        else:
            exited_cleanly(tally, srv, "no sanitizer report after lameduck")
        up.close()

    # without --http nobody can see readiness: no lameduck, a quick exit
    srv = t.Server(os.path.join(OPS, "cluster")).start()
    t0 = time.monotonic()
    problems = srv.stop()
    tally.check(not problems and time.monotonic() - t0 < 3,
                "without --http SIGTERM exits at once",
                "%.1f s %s" % (time.monotonic() - t0, problems))

    # a second signal during lameduck stops at once
    http = t.free_port()
    srv = t.Server(os.path.join(OPS, "cluster"),
                   ["--http", "127.0.0.1:%d" % http, "--lameduck", "30s"]).start()
    t0 = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    ok, _ = t.poll(lambda: t.http_get(http, "/ready")[0] == 503, timeout=3)
    tally.check(bool(ok) and srv.alive(), "lameduck of 30 s begins")
    problems = srv.stop()
    tally.check(not problems and time.monotonic() - t0 < 5,
                "a second SIGTERM ends lameduck at once",
                "%.1f s %s" % (time.monotonic() - t0, problems))


def wait_log(srv, pattern, since=0, timeout=10):
    def found():
        return re.search(pattern, srv.stderr_text()[since:])
    v, _ = t.poll(found, timeout=timeout, interval=0.05)
    return v


def test_reload(tally):
    d = t.copy_fixture("ops")
    zone = os.path.join(d, "zones", "example.org.zone")
    conf = os.path.join(d, "svcdns.conf")
    http = t.free_port()
    t.write_file(conf, "# test configuration\nttl 30\nzone-file example.org=%s\n" % zone)
    srv = t.Server(os.path.join(d, "cluster"),
                   ["--config", conf, "--http", "127.0.0.1:%d" % http, "--lameduck", "0"]).start()
    c = TcpClient(srv.port)
    try:
        tally.check(ttl_of(srv.port) == 30, "--config sets the TTL", "ttl %s" % ttl_of(srv.port))
        tally.check(answers(srv.port, "example.org.") == ["192.0.2.10"],
                    "--config serves the zone file")

        # a good change: applied, sockets kept, reload counted
        mark = len(srv.stderr_text())
        t.write_atomic(conf, "ttl 7\nlog-queries\nzone-file example.org=%s\n" % zone)
        ok, dt = t.poll(lambda: ttl_of(srv.port) == 7, timeout=10)
        tally.check(bool(ok), "a change of the file is applied (TTL 30 -> 7)",
                    "after %.1f s: ttl %s\n%s" % (dt, ttl_of(srv.port), srv.stderr_tail(8)))
        tally.check(wait_log(srv, r"reload \(config file changed\): applied.*ttl=7", mark),
                    "the log says what the reload changed", srv.stderr_tail(8))
        r = c.ask(WEB)
        tally.check(r.answer and r.answer[0].ttl == 7,
                    "a TCP connection opened before the reload still works (sockets kept)")
        ok, _ = t.poll(lambda: t.metric(t.scrape(http), "svcdns_reloads_total",
                                        result="success") == 1, timeout=3)
        tally.check(bool(ok), "svcdns_reloads_total{result=success} 1")
        answers(srv.port, "mail.example.org.")
        tally.check(wait_log(srv, r'query 127\.0\.0\.1:\d+ - \d+ "A IN mail\.example\.org\. udp',
                             timeout=3), "the reload turned the query log on")

        # SIGHUP re-reads the zone files
        with open(zone, "a") as f:
            f.write("reloaded    IN A    192.0.2.77\n")
        srv.proc.send_signal(signal.SIGHUP)
        ok, dt = t.poll(lambda: answers(srv.port, "reloaded.example.org.") == ["192.0.2.77"],
                        timeout=10)
        tally.check(bool(ok), "SIGHUP reloads the zone file", "after %.1f s" % dt)

        # bad configurations: rejected with the reason, the running one stays
        bad = [("ttl abc\n", r"--ttl abc: expected seconds"),
               ("ttl 9\nno-such-option 1\n", r"unrecognized option.*no-such-option"),
               ("ttl 9\nzone-file example.org=%s\n" % os.path.join(d, "nonexistent.zone"),
                r"nonexistent\.zone"),
               ("ttl 9\nlisten\n", r"listen.*requires an argument|--listen"),
               ("ttl 9\nstale-after 0\n", r"--stale-after 0")]
        for i, (text, why) in enumerate(bad):
            mark = len(srv.stderr_text())
            t.write_atomic(conf, text)
            line = wait_log(srv, r"reload \(config file changed\) rejected, the running "
                            r"configuration stays: [^\n]*" + why, mark)
            tally.check(line, "bad configuration %d rejected with its reason" % (i + 1),
                        srv.stderr_tail(6))
            tally.check(ttl_of(srv.port) == 7 and
                        answers(srv.port, "reloaded.example.org.") == ["192.0.2.77"],
                        "bad configuration %d: the old one stays in force" % (i + 1))
        ok, _ = t.poll(lambda: t.metric(t.scrape(http), "svcdns_reloads_total",
                                        result="failure") == len(bad), timeout=3)
        tally.check(bool(ok), "svcdns_reloads_total{result=failure} counts them")

        # what only a restart changes is named, the rest applied
        c.close()
        c = TcpClient(srv.port)
        other = t.free_port()
        mark = len(srv.stderr_text())
        t.write_atomic(conf, "ttl 11\nlisten 127.0.0.1:%d\nzone-file example.org=%s\n"
                       % (other, zone))
        tally.check(wait_log(srv, r"take effect only at a restart: --listen", mark),
                    "a changed --listen is named as needing a restart", srv.stderr_tail(5))
        ok, _ = t.poll(lambda: ttl_of(srv.port) == 11, timeout=5)
        tally.check(bool(ok) and t.udp_exchange(other, t.make_query(WEB).to_wire(),
                                                timeout=0.5) is None,
                    "the rest is applied; listeners stay as they were")
        r = c.ask(WEB)
        tally.check(r.answer and r.answer[0].ttl == 11, "the old TCP connection still answers")
    finally:
        c.close()
        tally.server_stopped(srv)


def test_check_config(tally):
    d = t.copy_fixture("ops")
    conf = os.path.join(d, "good.conf")
    t.write_file(conf, "ttl 10\nlisten 127.0.0.1:5399\n")
    p = subprocess.run([t.BIN, "--check-config", "--config", conf, "--manifests",
                        os.path.join(d, "cluster")], capture_output=True, text=True, timeout=20)
    tally.check(p.returncode == 0 and "configuration OK" in p.stdout,
                "--check-config accepts a good file", "%s %s %s" % (p.returncode, p.stdout,
                                                                   p.stderr[-300:]))
    t.write_file(conf, "ttl 10\nthreads lots\n")
    p = subprocess.run([t.BIN, "--check-config", "--config", conf, "--manifests",
                        os.path.join(d, "cluster")], capture_output=True, text=True, timeout=20)
    tally.check(p.returncode == 2 and "--threads lots" in p.stderr,
                "--check-config rejects a bad one and says why",
                "%s %s" % (p.returncode, p.stderr[-300:]))
    t.write_file(conf, "ttl 10\n--\n")
    p = subprocess.run([t.BIN, "--config", conf, "--manifests", os.path.join(d, "cluster")],
                       capture_output=True, text=True, timeout=20)
    tally.check(p.returncode == 2 and "good.conf:2: expected an option name" in p.stderr,
                "a file that cannot be parsed stops the start, naming the line",
                "%s %s" % (p.returncode, p.stderr[-300:]))


def main(tally):
    test_health_ready(tally)
    test_lameduck(tally)
    test_reload(tally)
    test_check_config(tally)


if __name__ == "__main__":
    t.main_guard(t.Tally("ops"), main)
