"""The forwarder's cache, against a real upstream (svcdns serving
tests/fixtures/forward/example.test.zone, whose SOA has TTL 3600 and
MINIMUM 2). Upstream traffic is what the forwarder logs at debug level
("upstream ADDR: query NAME ..."); where it matters, the upstream is stopped
so that an answer can only come from the cache.

Covered: a hit without upstream traffic, TTLs counting down, negative answers
cached for min(SOA TTL, SOA MINIMUM) (RFC 2308), SERVFAIL cached briefly,
serve-stale (RFC 8767) only when enabled, and the entry bound of --cache-size.
It also prints the latency of an uncached and a cached outside name.

When entries expire, how TTLs count down, serve-stale's window and which
entry is prefetched are the cache's arithmetic on a clock: tests/unit/
test_cache.c drives it with a fake one. Here wall-clock time only ever has to
pass (a lower bound, never a window that a slow machine could miss): the
checks are that the options reach the cache and the answers look right.
"""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_upstream as fu  # noqa: E402
import svcdns_testlib as t  # noqa: E402

import dns.rcode  # noqa: E402
import dns.rdatatype  # noqa: E402

addr = fu.addr


def upstream(args=()):
    return fu.zone_upstream("example.test", args=args)


def forwarder(up, args=()):
    return fu.forwarder([up], args)


def sent(fwd, name):
    return len(fu.sent_upstream(fwd, name))


def prefetched(fwd, name):
    return len(fu.sent_upstream(fwd, name, prefetch=True))


def ask(port, name, qtype="A"):
    msg, _ = t.query(port, name, qtype, rd=True, timeout=4)
    return msg


def answer_ttls(msg, section="answer"):
    return [rrset.ttl for rrset in getattr(msg, section)]


def positive(tally):
    up = upstream()
    fwd = forwarder(addr(up))
    p = fwd.port
    m1 = ask(p, "ttl100.example.test")
    tally.check(answer_ttls(m1) == [100], "first answer: the upstream's TTL", str(m1))
    m2 = ask(p, "www.example.test")
    m3 = ask(p, "www.example.test")
    tally.check(sent(fwd, "www.example.test.") == 1, "second query answered from the cache",
                "%d upstream queries" % sent(fwd, "www.example.test."))
    tally.check(m2.answer == m3.answer, "the cached answer is the same answer")
    tally.server_stopped(up)  # from here on only the cache can answer
    m4 = ask(p, "www.example.test")
    tally.check(m4.rcode() == dns.rcode.NOERROR and m4.answer == m2.answer,
                "answered from the cache with the upstream gone", str(m4))
    time.sleep(1.1)
    m5 = ask(p, "ttl100.example.test")
    ttl = answer_ttls(m5)
    tally.check(len(ttl) == 1 and 0 < ttl[0] < 100, "TTLs count down in cached answers",
                "TTL %s after more than 1 s" % ttl)
    tally.server_stopped(fwd)


def negative(tally):
    up = upstream()
    fwd = forwarder(addr(up))
    p = fwd.port
    # The TTL the SOA gets is the one the entry is cached with (both come
    # from one computation); its expiry is test_cache.c's.
    m = ask(p, "nothere.example.test")
    soa = [r for r in m.authority if r.rdtype == dns.rdatatype.SOA]
    tally.check(m.rcode() == dns.rcode.NXDOMAIN and soa and soa[0].ttl == 2,
                "NXDOMAIN: the SOA in authority, TTL min(3600, MINIMUM 2)", str(m))
    m = ask(p, "nothere.example.test")
    tally.check(m.rcode() == dns.rcode.NXDOMAIN and sent(fwd, "nothere.example.test.") == 1,
                "NXDOMAIN cached", "%d upstream queries" % sent(fwd, "nothere.example.test."))
    ask(p, "www.example.test", "TXT")
    m = ask(p, "www.example.test", "TXT")
    tally.check(m.rcode() == dns.rcode.NOERROR and not m.answer and
                sent(fwd, "www.example.test.") == 1, "NODATA cached",
                "%d upstream queries" % sent(fwd, "www.example.test."))
    tally.server_stopped(fwd)

    # SERVFAIL: an upstream svcdns whose own upstream is a closed port.
    sf = fu.zone_upstream(args=["--upstream", "127.0.0.1:%d" % t.free_port()])
    fwd = forwarder(addr(sf), args=["--cache-servfail-ttl", "1"])
    p = fwd.port
    codes = [ask(p, "broken.example.test").rcode() for _ in range(2)]
    tally.check(codes == [dns.rcode.SERVFAIL] * 2 and sent(fwd, "broken.example.test.") == 1,
                "SERVFAIL cached", "%d upstream queries" % sent(fwd, "broken.example.test."))
    # asked again and again: upstream again once the 2 s are over
    again, dt = t.poll(lambda: ask(p, "broken.example.test") is not None
                       and sent(fwd, "broken.example.test.") >= 2, timeout=20.0, interval=0.2)
    tally.check(again, "SERVFAIL kept only briefly (--cache-servfail-ttl 2)",
                "%d upstream queries after %.1f s" % (sent(fwd, "broken.example.test."), dt))
    for s in (fwd, sf, up):
        tally.server_stopped(s)


def stale(tally):
    up = upstream()
    fwd = forwarder(addr(up), args=["--serve-stale", "60", "--upstream-timeout", "500"])
    plain = forwarder(addr(up), args=["--upstream-timeout", "500"])
    for f in (fwd, plain):
        tally.check(answer_ttls(ask(f.port, "short.example.test")) == [3],
                    "short TTL answer cached")
    tally.server_stopped(up)
    # The entry without serve-stale was cached last: once it has expired
    # (SERVFAIL, the upstream being gone), so has the other.
    expired, dt = t.poll(lambda: ask(plain.port, "short.example.test").rcode()
                         == dns.rcode.SERVFAIL, timeout=30.0, interval=0.2)
    tally.check(expired, "without --serve-stale: SERVFAIL once the 3 s TTL is over",
                "still answered after %.1f s" % dt)
    m = ask(fwd.port, "short.example.test")
    tally.check(m.rcode() == dns.rcode.NOERROR and answer_ttls(m) == [30],
                "--serve-stale: expired answer served (TTL 30) when the upstream fails", str(m))
    for s in (fwd, plain):
        tally.server_stopped(s)


def cache_size(tally):
    up = upstream()
    # --cache-size in entries: 16 at most here (one per shard), so of 40
    # names asked again most go upstream again.
    small = forwarder(addr(up), args=["--cache-size", "16"])
    names = ["n%d.example.test" % i for i in range(40)]
    for n in names:
        ask(small.port, n)
    for n in names:
        ask(small.port, n)
    again = sum(1 for n in names if sent(small, n + ".") == 2)
    tally.check(again >= 24, "--cache-size bounds the entries (LRU evicts)",
                "%d of 40 asked upstream again" % again)
    for srv in (small, up):
        tally.server_stopped(srv)


def latency(tally, n=200):
    """Prints the round trip of an uncached and a cached outside name (the
    wildcard *.wild.example.test gives as many distinct names as wanted),
    measured from Python over UDP: a measurement, with only generous bounds."""
    up = upstream()
    fwd = t.Server(fu.empty_manifests(), args=["--threads", "1", "--upstream", addr(up)]).start()
    names = ["u%d.wild.example.test" % i for i in range(n)]
    ask(fwd.port, "warmup.wild.example.test")

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", fwd.port))
    sock.settimeout(4)

    def timed(name):
        wire = t.make_query(name, "A", rd=True).to_wire()
        t0 = time.perf_counter()
        sock.send(wire)
        while sock.recv(4096)[:2] != wire[:2]:
            pass
        return (time.perf_counter() - t0) * 1e6

    uncached = sorted(timed(x) for x in names)
    cached = sorted(timed(x) for x in names)
    med = lambda v: v[len(v) // 2]  # noqa: E731
    p90 = lambda v: v[len(v) * 9 // 10]  # noqa: E731
    print("# latency over UDP, %d names: uncached (through the upstream) median %.0f us, "
          "p90 %.0f us; cached median %.0f us, p90 %.0f us"
          % (n, med(uncached), p90(uncached), med(cached), p90(cached)))
    sock.close()
    tally.check(med(cached) < 50000 and med(uncached) < 500000,
                "latency within generous bounds", "%.0f / %.0f us" % (med(cached),
                                                                      med(uncached)))
    for s in (fwd, up):
        tally.server_stopped(s)


def main(tally):
    latency(tally)
    positive(tally)
    negative(tally)
    stale(tally)
    cache_size(tally)


if __name__ == "__main__":
    t.main_guard(t.Tally("cache"), main)
