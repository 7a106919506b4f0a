"""Forwarding when upstreams fail or misbehave.

Real upstreams (fake_upstream.py) are svcdns serving tests/fixtures/forward
zone files; one that answers SERVFAIL is an svcdns whose own upstream is a
closed port. The dnspython FakeUpstream plays the upstream that does what no
real server does on demand: answers with a wrong ID, for a wrong question,
from another address.

Covered: failover on a closed port (at once, not after the timeout) and on
SERVFAIL; answers that do not match are dropped and counted; random IDs and
source ports; every upstream down -> SERVFAIL at once, and back after a
probe; policies; the forwarding loop found at start; svcdns's own address
refused as an upstream. (--resolv-conf is in test_autopath.py, which runs in
a network namespace of its own where port 53 is free.)
"""

import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_upstream as fu  # noqa: E402
import svcdns_testlib as t  # noqa: E402

import dns.rcode  # noqa: E402
import dns.rdatatype  # noqa: E402

addr = fu.addr
upstream = fu.zone_upstream


def forwarder(upstreams, args=(), manifests=fu.CLUSTER, start=True):
    return fu.forwarder(upstreams, args, manifests=manifests, start=start)


def sent_upstream(fwd, name=None):
    """The upstream each query was sent to, in order."""
    return [x.upstream for x in fu.sent_upstream(fwd, name)]


def a_records(msg):
    return sorted(rd.to_text() for rrset in msg.answer for rd in rrset
                  if rrset.rdtype == dns.rdatatype.A)


def ask(port, name, qtype="A", timeout=4.0):
    msg, _ = t.query(port, name, qtype, rd=True, timeout=timeout)
    return msg


def failover(tally):
    up = upstream("example.test")
    closed = t.free_port()  # nothing listens there: ICMP port unreachable
    fwd = forwarder(["127.0.0.1:%d" % closed, addr(up)], args=["--upstream-timeout", "5000"])
    for i in range(3):
        t0 = time.monotonic()
        m = ask(fwd.port, "www.example.test" if i == 0 else "w%d.example.test" % i, timeout=8)
        dt = time.monotonic() - t0
        want = ["192.0.2.80"] if i == 0 else []
        tally.check(a_records(m) == want and dt < 3.0,
                    "first upstream a closed port: answered by the second (%d)" % i,
                    "%s after %.2f s (the timeout is 5 s)" % (a_records(m), dt))
    tally.check(len(sent_upstream(fwd)) and
                sent_upstream(fwd).count("127.0.0.1:%d" % closed) == 2,
                "a server that failed twice is skipped while down",
                str(sent_upstream(fwd)))
    tally.check("down after 2 failures" in fwd.stderr_text(), "the down upstream is logged")
    tally.server_stopped(fwd)

    # An upstream that answers SERVFAIL: svcdns whose own upstream is closed.
    sf = upstream(args=["--upstream", "127.0.0.1:%d" % closed])
    fwd = forwarder([addr(sf), addr(up)])
    m = ask(fwd.port, "www.example.test")
    tally.check(a_records(m) == ["192.0.2.80"], "first upstream answers SERVFAIL: the second "
                "answers", str(m))
    tally.check(re.search(r"upstream %s: SERVFAIL answer to www.example.test" % addr(sf),
                          fwd.stderr_text()) is not None, "the SERVFAIL was seen and skipped")
    for s in (fwd, sf):
        tally.server_stopped(s)

    # Answers that do not match the question are dropped, whatever they say.
    bogus = fu.FakeUpstream(bogus=True, delay=None)
    fwd = forwarder(["127.0.0.1:%d" % bogus.port, addr(up)],
                    args=["--upstream-timeout", "1000"])
    try:
        m = ask(fwd.port, "www.example.test")
        tally.check(a_records(m) == ["192.0.2.80"],
                    "wrong ID, wrong question, other address: all ignored; the next upstream "
                    "answers", str(a_records(m)))
        log = fwd.stderr_text()
        for why in ("wrong ID", "wrong question", "another address"):
            tally.check(why in log, "dropped and logged: %s" % why)
    finally:
        tally.server_stopped(fwd)
        bogus.close()

    bogus = fu.FakeUpstream(bogus=True, delay=0.05)
    fwd = forwarder(["127.0.0.1:%d" % bogus.port], args=["--cache-size", "0"])
    try:
        m = ask(fwd.port, "www.example.test")
        tally.check(a_records(m) == ["192.0.2.99"],
                    "the right answer after three wrong ones is taken", str(a_records(m)))
        ids = []
        for i in range(20):
            q = t.make_query("r%d.example.test" % i, "A", rd=True)
            ids.append(q.id)
            t.udp_exchange(fwd.port, q.to_wire(), want_id=q.id)
        seen = [x for x in bogus.seen if x.name.startswith("r")]
        ports = {x.port for x in seen}
        qids = {x.id for x in seen}
        tally.check(len(seen) == 20 and len(ports) >= 18 and len(qids) >= 18,
                    "random source ports and IDs upstream",
                    "%d queries, %d ports, %d IDs" % (len(seen), len(ports), len(qids)))
        tally.check(not (qids & set(ids)) or len(qids & set(ids)) <= 1,
                    "upstream IDs are not the clients' IDs")
    finally:
        tally.server_stopped(fwd)
        bogus.close()
    tally.server_stopped(up)


def all_down(tally):
    up = upstream("example.test")
    port = up.port
    fwd = forwarder([addr(up)], args=["--upstream-timeout", "1000"])
    tally.check(a_records(ask(fwd.port, "www.example.test")) == ["192.0.2.80"],
                "answered while the upstream is up")
    tally.server_stopped(up)
    for i in range(2):
        m = ask(fwd.port, "d%d.example.test" % i)
        tally.check(m.rcode() == dns.rcode.SERVFAIL, "upstream gone: SERVFAIL (%d)" % i)
    n = len(sent_upstream(fwd))
    t0 = time.monotonic()
    m = ask(fwd.port, "d9.example.test")
    dt = time.monotonic() - t0
    tally.check(m.rcode() == dns.rcode.SERVFAIL and dt < 0.5 and len(sent_upstream(fwd)) == n,
                "every upstream down: SERVFAIL at once, nothing sent",
                "%s after %.2f s" % (dns.rcode.to_text(m.rcode()), dt))
    tally.check("all 1 down" in fwd.stderr_text(), "every upstream down is logged")
    up = upstream("example.test", port=port)
    back, dt = t.poll(lambda: "answers again" in fwd.stderr_text(), timeout=8)
    tally.check(back, "the probe finds the upstream back", "after %.1f s" % dt)
    tally.check(a_records(ask(fwd.port, "www.example.test")) == ["192.0.2.80"],
                "answered again once the upstream is back")
    for s in (fwd, up):
        tally.server_stopped(s)


def policies(tally):
    ups = [upstream("example.test"), upstream("example.test")]
    names = [addr(u) for u in ups]
    for policy, want_both in (("sequential", False), ("round_robin", True), ("random", True)):
        fwd = forwarder(names, args=["--policy", policy, "--cache-size", "0"])
        for i in range(20):
            ask(fwd.port, "www.example.test")
        used = sent_upstream(fwd, "www.example.test.")
        counts = [used.count(n) for n in names]
        ok = (counts[0] > 0 and counts[1] > 0) if want_both else counts == [20, 0]
        tally.check(ok, "--policy %s" % policy, "queries per upstream: %s" % counts)
        tally.server_stopped(fwd)
    for u in ups:
        tally.server_stopped(u)


def loops(tally):
    # svcdns A forwards to B and B to A: B, started second, finds the loop.
    a = forwarder([], start=False)
    b = forwarder([], start=False)
    a.args += ["--upstream", addr(b), "--upstream-timeout", "1000"]
    b.args += ["--upstream", addr(a), "--upstream-timeout", "1000"]
    a.start()
    b.start()
    found, dt = t.poll(lambda: "forwarding loop" in b.stderr_text(), timeout=8)
    tally.check(found, "a forwarding loop is found at start and logged",
                b.stderr_tail())
    t0 = time.monotonic()
    m = ask(b.port, "www.example.test")
    tally.check(m.rcode() == dns.rcode.SERVFAIL and time.monotonic() - t0 < 2,
                "the looping upstream is not used: SERVFAIL at once", str(m))
    m = ask(a.port, "www.example.test")
    tally.check(m.rcode() == dns.rcode.SERVFAIL, "and its peer does not melt down", str(m))
    tally.check(a.alive() and b.alive(), "both still running")
    for s in (b, a):
        tally.server_stopped(s)

    # svcdns's own listen address as an upstream: refused at start.
    port = t.free_port()
    p = subprocess.run([t.BIN, "--manifests", fu.empty_manifests(), "--listen", "127.0.0.1:%d" % port,
                        "--upstream", "127.0.0.1:%d" % port], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=20)
    tally.check(p.returncode != 0 and "own listen address" in p.stderr,
                "--upstream naming svcdns itself is refused", p.stderr[-500:])


def main(tally):
    failover(tally)
    all_down(tally)
    policies(tally)
    loops(tally)


if __name__ == "__main__":
    t.main_guard(t.Tally("forward-failover"), main)
