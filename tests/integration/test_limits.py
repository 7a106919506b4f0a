"""TCP limits: --tcp-max-conns refuses the connection past the cap and counts
it; --tcp-idle-timeout drops a client that sends nothing, a length prefix and
nothing, or half a message; --tcp-max-lifetime drops a slow-loris client that
trickles a byte at a time (and, as a control, that client survives without
it); a client that never reads its answers stops being read, so svcdns's
memory does not grow with what it sends, while a client that reads slowly gets
every answer of a long pipeline in order; at most 64 queries of one connection
wait on the forwarder at once. Every limit hit is logged once, naming the
flag, not once per hit, and counted in /metrics
(svcdns_dns_limit_hits_total{limit}); the counters also show that a hit was
processed before the test looks at what must not have happened."""

import json
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dns.message  # noqa: E402
import dns.rcode  # noqa: E402

import fake_upstream as fu  # noqa: E402
import svcdns_testlib as t  # noqa: E402

WEB = "web.shop.svc.cluster.local."
BIG = "big.default.svc.cluster.local."  # 300 endpoints: a 5 KB answer over TCP
HUGE = "huge.default.svc.cluster.local."  # 3000 endpoints: 48 KB
IDLE_MS = 1500
LIFETIME_MS = 4000


def frame(wire):
    return struct.pack("!H", len(wire)) + wire


def query(name, qid=None):
    q = dns.message.make_query(name, "A", use_edns=False)
    if qid is not None:
        q.id = qid
    return q.to_wire()


def connect(port, timeout=5.0):
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def ask(s, name=WEB):
    """One query on an open connection; returns the parsed answer."""
    s.sendall(frame(query(name)))
    (n,) = struct.unpack("!H", t.recv_exact(s, 2))
    return dns.message.from_wire(t.recv_exact(s, n))


def closed_after(s, limit):
    """Seconds until the server closes s (EOF or reset), or None within limit."""
    t0 = time.monotonic()
    s.settimeout(0.2)
    while time.monotonic() - t0 < limit:
        try:
            if s.recv(65536) == b"":
                return time.monotonic() - t0
        except socket.timeout:
            continue
        except OSError:
            return time.monotonic() - t0
    return None


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def limit_lines(srv, text):
    return [l for l in srv.stderr_text().splitlines() if "limits:" in l and text in l]


LIMITS = ("tcp_conns", "tcp_idle", "tcp_lifetime", "tcp_backlog", "udp_source", "rrl_drop",
          "rrl_slip")


def start(root, args):
    """svcdns with /metrics on a port of its own (srv.http)."""
    http = t.free_port()
    srv = t.Server(root, list(args) + ["--http", "127.0.0.1:%d" % http, "--lameduck", "0"])
    srv.http = http
    return srv.start()


def hits(srv, limit):
    """svcdns_dns_limit_hits_total{limit} now (None: not exported)."""
    return t.metric(t.scrape(srv.http), "svcdns_dns_limit_hits_total", limit=limit)


def wait_hits(srv, limit, at_least, timeout=5.0):
    """Polls the counter until it reaches at_least; returns its last value."""
    last = [None]

    def reached():
        last[0] = hits(srv, limit)
        return last[0] is not None and last[0] >= at_least
    t.poll(reached, timeout=timeout, interval=0.02)
    return last[0]


# ---- connection cap, idle and lifetime ----------------------------------------

def test_max_conns(tally, srv):
    port = srv.port
    held = []
    try:
        for _ in range(4):
            s = connect(port)
            held.append(s)
            ask(s)
        for i in range(3):
            extra = connect(port)
            extra.sendall(frame(query(WEB)))
            dt = closed_after(extra, 3.0)
            extra.close()
            tally.check(dt is not None, "--tcp-max-conns 4: connection %d past the cap is "
                        "closed unanswered" % (i + 1), "still open after 3 s")
        n = wait_hits(srv, "tcp_conns", 3)
        tally.check(n == 3, "--tcp-max-conns: each refusal is counted in /metrics",
                    "svcdns_dns_limit_hits_total{limit=\"tcp_conns\"} %s, want 3" % n)
        held.pop().close()
        ok, _ = t.poll(lambda: ask(connect(port)).rcode() == dns.rcode.NOERROR, timeout=5.0)
        tally.check(ok, "--tcp-max-conns: a connection closed makes room for a new one")
    finally:
        for s in held:
            s.close()
    # the next tests need the room back: the server sees the closes
    t.poll(lambda: ask(connect(port)).rcode() == dns.rcode.NOERROR, timeout=5.0)
    # The counter said 3: each hit is counted, then logged, so at least the
    # first two hits were fully handled; one line for all of them.
    lines = limit_lines(srv, "--tcp-max-conns")
    tally.check(len(lines) == 1 and "TCP connections refused" in lines[0],
                "--tcp-max-conns: three refusals are logged once", str(lines))


def test_idle(tally, srv):
    cases = [("sends nothing", b""),
             ("sends a length prefix and nothing", b"\x00\x40"),
             ("sends half a message", frame(query(WEB))[:20])]
    lo, hi = IDLE_MS / 1000.0 * 0.5, IDLE_MS / 1000.0 + 5.0
    for label, data in cases:
        s = connect(srv.port)
        if data:
            s.sendall(data)
        dt = closed_after(s, hi + 2)
        s.close()
        tally.check(dt is not None and lo <= dt <= hi,
                    "--tcp-idle-timeout %d: a client that %s is dropped" % (IDLE_MS, label),
                    "closed after %s s, want %.1f..%.1f" % (dt, lo, hi))
        print("# idle client that %s: closed after %.2f s" % (label, dt or -1), flush=True)


def slow_loris(port, seconds, interval=0.4):
    """Trickles the bytes of a 65535-byte message, one per interval; returns
    how long the server kept the connection (None: still open)."""
    s = connect(port)
    t0 = time.monotonic()
    try:
        s.sendall(b"\xff\xff")
        s.settimeout(interval)
        while time.monotonic() - t0 < seconds:
            try:
                if s.recv(4096) == b"":
                    return time.monotonic() - t0
            except socket.timeout:
                pass
            except OSError:
                return time.monotonic() - t0
            try:
                s.send(b"x")
            except OSError:
                return time.monotonic() - t0
        return None
    finally:
        s.close()


def test_lifetime(tally, srv, control):
    lo, hi = LIFETIME_MS / 1000.0 * 0.75, LIFETIME_MS / 1000.0 + 5.0
    dt = slow_loris(srv.port, hi + 2)
    print("# slow loris (a byte every 0.4 s): closed after %s s" % (
        "%.2f" % dt if dt else "never"), flush=True)
    tally.check(dt is not None and lo <= dt <= hi,
                "--tcp-max-lifetime %d: a slow-loris client is dropped" % LIFETIME_MS,
                "closed after %s s, want %.1f..%.1f" % (dt, lo, hi))
    dt = slow_loris(control.port, LIFETIME_MS / 1000.0 + 1.5)
    tally.check(dt is None, "control: without --tcp-max-lifetime the slow loris stays "
                "(the idle timeout alone cannot catch it)", "closed after %s s" % dt)

    # a busy client is also closed at its lifetime, but between answers: every
    # answer it got is whole
    s = connect(srv.port)
    t0 = time.monotonic()
    answered, end = 0, None
    try:
        while time.monotonic() - t0 < hi:
            try:
                r = ask(s)
            except (OSError, ConnectionError):
                end = time.monotonic() - t0
                break
            if r.rcode() != dns.rcode.NOERROR or not r.answer:
                break
            answered += 1
            time.sleep(0.1)
    finally:
        s.close()
    tally.check(end is not None and lo <= end <= hi and answered > 10,
                "--tcp-max-lifetime: a busy client is closed between whole answers",
                "%d answers, closed after %s s" % (answered, end))
    lines, _ = t.poll(lambda: limit_lines(srv, "--tcp-max-lifetime"), timeout=3.0)
    tally.check(len(lines or []) == 1, "--tcp-max-lifetime: logged once", str(lines))


# ---- clients that do not read ---------------------------------------------------

def test_never_reads(tally, srv):
    port = srv.port
    s = connect(port)
    size = len(frame(ask(s, HUGE).to_wire()))
    s.close()
    tally.check(size > 40000, "never reads: the answer asked for is large (%d bytes)" % size)
    before = rss_kb(srv.proc.pid)
    s = connect(port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setblocking(False)
    data = frame(query(HUGE)) * 64
    sent, stuck_since = 0, None
    t0 = time.monotonic()
    while time.monotonic() - t0 < 8.0:
        try:
            n = s.send(data)
            sent += n
            stuck_since = None
        except BlockingIOError:
            if stuck_since is None:
                stuck_since = time.monotonic()
            elif time.monotonic() - stuck_since > 1.0:
                break
            time.sleep(0.01)
        except OSError:
            break
    n_queries = sent // len(frame(query(HUGE)))
    after = rss_kb(srv.proc.pid)
    grow_mb = (after - before) / 1024.0
    print("# never-reading client: %d queries sent (%.0f MB of answers if all were "
          "queued), svcdns RSS %d -> %d KB (%+.1f MB)"
          % (n_queries, n_queries * 48.0 / 1024, before, after, grow_mb), flush=True)
    tally.check(stuck_since is not None, "never reads: svcdns stops reading it (its sends "
                "block)", "%d bytes sent in 8 s without blocking" % sent)
    tally.check(grow_mb < 64, "never reads: svcdns's memory grows by less than 64 MB",
                "%+.1f MB" % grow_mb)
    tally.check(t.udp_exchange(port, query(WEB), timeout=2.0) is not None,
                "never reads: other clients are still answered")
    lines, _ = t.poll(lambda: limit_lines(srv, "unread answers"), timeout=3.0)
    tally.check(len(lines or []) == 1, "never reads: logged once", str(lines))
    s.setblocking(True)
    dt = closed_after(s, 15.0)
    s.close()
    tally.check(dt is not None, "never reads: the stalled connection is closed in the end",
                "still open after 15 s")


def test_slow_reader(tally, srv):
    """2000 queries in one go on one connection, answers read slowly at
    first: reading pauses and resumes, and every answer arrives, in order."""
    n = 2000
    s = connect(srv.port, timeout=20.0)
    payload = b"".join(frame(query(BIG, qid=i)) for i in range(n))

    def writer():
        try:
            s.sendall(payload)
        except OSError:
            pass
    before = hits(srv, "tcp_backlog") or 0
    th = threading.Thread(target=writer, daemon=True)
    th.start()
    # nothing is read until the server has filled this client's queue and
    # stopped reading it
    paused = wait_hits(srv, "tcp_backlog", before + 1, timeout=10.0)
    tally.check(paused is not None and paused > before, "slow reader: its queue fills and "
                "svcdns stops reading it", "tcp_backlog %s, %s before" % (paused, before))
    ids = []
    try:
        for _ in range(n):
            (ln,) = struct.unpack("!H", t.recv_exact(s, 2))
            msg = t.recv_exact(s, ln)
            ids.append(struct.unpack("!H", msg[:2])[0])
    except (OSError, ConnectionError) as e:
        ids.append("error: %s" % e)
    finally:
        th.join(timeout=5)
        s.close()
    tally.check(ids == list(range(n)), "slow reader: %d pipelined answers, all, in order" % n,
                "%d answers, first wrong at %s" % (len(ids), next(
                    (i for i, v in enumerate(ids) if v != i), None)))


# ---- queries waiting on the forwarder ---------------------------------------------

def test_pending_cap(tally, root):
    hole = fu.FakeUpstream(delay=None)
    srv = start(root, ["--threads", "1", "--upstream", "127.0.0.1:%d" % hole.port,
                       "--upstream-timeout", "2500"])
    try:
        n = 200
        s = connect(srv.port, timeout=20.0)
        s.sendall(b"".join(frame(query("q%d.flood.example." % i, qid=i)) for i in range(n)))
        # The connection stops being read when its queries waiting upstream
        # reach the cap (a tcp_backlog hit). Each pause lets at most 64 more
        # go, and every one forwarded waits until it times out.
        def paused():
            m = t.scrape(srv.http)
            b = t.metric(m, "svcdns_dns_limit_hits_total", limit="tcp_backlog") or 0
            return (b, t.metric(m, "svcdns_forward_queries_total"),
                    t.metric(m, "svcdns_forward_in_flight")) if b >= 1 else None
        got, _ = t.poll(paused, timeout=10.0, interval=0.02)
        backlog, fwd, in_flight = got or (0, None, None)
        print("# one connection, %d queries for a silent upstream: read paused %d time(s) "
              "with %s forwarded, %s in flight" % (n, backlog, fwd, in_flight), flush=True)
        # (the counters are read while the worker may still be handing the
        # last of the 64 over: the bound is what matters)
        tally.check(got is not None and 0 < fwd <= 64 * backlog and in_flight <= 64,
                    "forwarder: at most 64 queries of one connection wait upstream at once",
                    "paused %d time(s), %s forwarded, %s in flight" % (backlog, fwd, in_flight))
        got = 0
        try:
            for _ in range(n):
                (ln,) = struct.unpack("!H", t.recv_exact(s, 2))
                t.recv_exact(s, ln)
                got += 1
        except (OSError, ConnectionError):
            pass
        s.close()
        tally.check(got == n, "forwarder: every query is answered in the end (SERVFAIL)",
                    "%d of %d" % (got, n))
        tally.server_stopped(srv)
    finally:
        hole.close()


def counters_at_zero(srv):
    m = t.scrape(srv.http)
    d = []
    if m["types"].get("svcdns_dns_limit_hits_total") != "counter":
        d.append("no counter family svcdns_dns_limit_hits_total")
    for limit in LIMITS:
        v = t.metric(m, "svcdns_dns_limit_hits_total", limit=limit)
        if v != 0:
            d.append("limit=%s: %s, want 0" % (limit, v))
    return d


def counted(srv, want):
    """Each limit's counter within [lo, hi] (hi None: no upper bound)."""
    d = []
    for limit, (lo, hi) in want.items():
        v = hits(srv, limit)
        if v is None or v < lo or (hi is not None and v > hi):
            d.append("limit=%s: %s, want %s..%s" % (limit, v, lo, "" if hi is None else hi))
    return d


def huge_manifest(n):
    """A headless Service with n endpoints in slices of 1000 (the most one
    EndpointSlice may hold)."""
    doc = json.loads(t.headless_manifest("huge", "default", n))
    svc, sl = doc["items"]
    eps = sl["endpoints"]
    doc["items"] = [svc]
    for k in range(0, n, 1000):
        part = json.loads(json.dumps(sl))
        part["metadata"]["name"] = "huge-%d" % (k // 1000)
        part["endpoints"] = eps[k:k + 1000]
        doc["items"].append(part)
    return json.dumps(doc)


def body(tally):
    root = t.copy_fixture("watch")
    demo = os.path.join(t.SOURCE, "contrib", "demo")
    for f in os.listdir(demo):
        with open(os.path.join(demo, f)) as src:
            t.write_file(os.path.join(root, "demo-" + f), src.read())
    t.write_file(os.path.join(root, "big.json"), t.headless_manifest("big", "default", 300))
    t.write_file(os.path.join(root, "huge.json"), huge_manifest(3000))

    srv = start(root, ["--threads", "1", "--tcp-max-conns", "4", "--tcp-idle-timeout",
                       str(IDLE_MS), "--tcp-max-lifetime", str(LIFETIME_MS)])
    control = t.Server(root, ["--threads", "1", "--tcp-idle-timeout", str(IDLE_MS),
                              "--tcp-max-lifetime", "0"]).start()
    tally.run("/metrics: every limit has its counter, at 0 before any hit",
              counters_at_zero, srv)
    test_max_conns(tally, srv)
    test_idle(tally, srv)
    test_lifetime(tally, srv, control)
    tally.run("/metrics: refusals, idle and lifetime closes are counted", counted,
              srv, {"tcp_conns": (3, None), "tcp_idle": (3, None), "tcp_lifetime": (2, None)})
    tally.server_stopped(srv)
    tally.server_stopped(control)

    reader = start(root, ["--threads", "1", "--tcp-idle-timeout", "3000"])
    test_never_reads(tally, reader)
    test_slow_reader(tally, reader)
    tally.run("/metrics: a client no longer read is counted", counted,
              reader, {"tcp_backlog": (1, None)})
    tally.server_stopped(reader)

    test_pending_cap(tally, root)


if __name__ == "__main__":
    t.main_guard(t.Tally("test_limits"), body)
