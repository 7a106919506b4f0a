"""The forwarder's cache, against a real upstream (svcdns serving
tests/fixtures/forward/example.test.zone, whose SOA has TTL 3600 and
MINIMUM 2). Upstream traffic is what the forwarder logs at debug level
("upstream ADDR: query NAME ..."); where it matters, the upstream is stopped
so that an answer can only come from the cache.

Covered: a hit without upstream traffic, TTLs counting down, negative answers
cached for min(SOA TTL, SOA MINIMUM) (RFC 2308), SERVFAIL cached briefly,
serve-stale (RFC 8767) only when enabled, prefetch of a popular entry, and the
entry bound of --cache-size. It also prints the latency of an uncached and a
cached outside name.
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
    time.sleep(2.2)
    m5 = ask(p, "ttl100.example.test")
    ttl = answer_ttls(m5)
    tally.check(len(ttl) == 1 and 90 <= ttl[0] <= 98, "TTLs count down in cached answers",
                "TTL %s after 2.2 s" % ttl)
    tally.server_stopped(fwd)


def negative(tally):
    up = upstream()
    fwd = forwarder(addr(up))
    p = fwd.port
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
    time.sleep(2.5)
    m = ask(p, "nothere.example.test")
    tally.check(m.rcode() == dns.rcode.NXDOMAIN and sent(fwd, "nothere.example.test.") == 2,
                "negative entry gone after the SOA minimum (2 s)",
                "%d upstream queries" % sent(fwd, "nothere.example.test."))
    tally.server_stopped(fwd)

    # SERVFAIL: an upstream svcdns whose own upstream is a closed port.
    sf = fu.zone_upstream(args=["--upstream", "127.0.0.1:%d" % t.free_port()])
    fwd = forwarder(addr(sf), args=["--cache-servfail-ttl", "1"])
    p = fwd.port
    codes = [ask(p, "broken.example.test").rcode() for _ in range(2)]
    tally.check(codes == [dns.rcode.SERVFAIL] * 2 and sent(fwd, "broken.example.test.") == 1,
                "SERVFAIL cached", "%d upstream queries" % sent(fwd, "broken.example.test."))
    time.sleep(1.5)
    ask(p, "broken.example.test")
    tally.check(sent(fwd, "broken.example.test.") == 2, "SERVFAIL kept only briefly",
                "%d upstream queries" % sent(fwd, "broken.example.test."))
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
    time.sleep(3.3)
    m = ask(fwd.port, "short.example.test")
    tally.check(m.rcode() == dns.rcode.NOERROR and answer_ttls(m) == [30],
                "--serve-stale: expired answer served (TTL 30) when the upstream fails", str(m))
    m = ask(plain.port, "short.example.test")
    tally.check(m.rcode() == dns.rcode.SERVFAIL, "without --serve-stale: SERVFAIL", str(m))
    for s in (fwd, plain):
        tally.server_stopped(s)


def prefetch(tally):
    up = upstream()
    fwd = forwarder(addr(up))
    p = fwd.port
    t0 = time.monotonic()
    ask(p, "ttl10.example.test")
    time.sleep(1)
    ask(p, "ttl10.example.test")
    # Inside the last 10 % of the TTL (9..10 s), a popular entry is refreshed.
    time.sleep(max(0, 9.3 - (time.monotonic() - t0)))
    m = ask(p, "ttl10.example.test")
    got, _ = t.poll(lambda: prefetched(fwd, "ttl10.example.test.") == 1, timeout=2)
    tally.check(m.answer and got, "a popular entry is prefetched before it expires",
                "%d prefetches" % prefetched(fwd, "ttl10.example.test."))
    time.sleep(max(0, 10.5 - (time.monotonic() - t0)))
    m = ask(p, "ttl10.example.test")
    tally.check(sent(fwd, "ttl10.example.test.") == 2 and answer_ttls(m)[0] >= 8,
                "after expiry the prefetched entry answers", "%d upstream queries, TTL %s"
                % (sent(fwd, "ttl10.example.test."), answer_ttls(m)))
    tally.server_stopped(fwd)

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
    for s in (small, up):
        tally.server_stopped(s)


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
    prefetch(tally)


if __name__ == "__main__":
    t.main_guard(t.Tally("cache"), main)
