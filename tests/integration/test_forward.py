"""Forwarding: names outside the zones svcdns serves go to upstream resolvers.

The upstreams are real DNS servers (fake_upstream.py): a second svcdns serving
the zone files in tests/fixtures/forward, and, where a test needs an upstream
that is slow or never answers, which no real server does on demand, the
dnspython FakeUpstream. The forwarder runs with --log-level debug; its log
lines "upstream ADDR: query NAME ..." are the queries it really sent, which is
how the tests see upstream traffic.

Covered: A/AAAA/MX/TXT/CNAME over UDP and TCP, RA/AA, TC -> TCP with a reused
upstream connection, stub domains, reverse lookups outside the cluster CIDRs,
ExternalName chased, search-suffixed cluster names answered NXDOMAIN without
upstream traffic, --allow-recursion, --max-concurrent, coalescing.
"""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_upstream as fu  # noqa: E402
import svcdns_testlib as t  # noqa: E402

import dns.flags  # noqa: E402
import dns.rcode  # noqa: E402

addr = fu.addr
sent_upstream = fu.sent_upstream
upstream = fu.zone_upstream


def forwarder(upstreams, args=(), threads=1):
    return fu.forwarder(upstreams, args, manifests=fu.CLUSTER, threads=threads)


def ask(port, name, qtype="A", tcp=False, rd=True, timeout=3.0, src=None):
    q = t.make_query(name, qtype, rd=rd)
    if tcp:
        return t.parse(t.tcp_exchange(port, [q.to_wire()], timeout=timeout)[0])
    if src:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((src, 0))
            s.settimeout(timeout)
            s.sendto(q.to_wire(), ("127.0.0.1", port))
            return t.parse(s.recvfrom(65535)[0])
        finally:
            s.close()
    msg, _ = t.query(port, name, qtype, rd=rd, timeout=timeout)
    return msg


def records(msg, section="answer"):
    out = []
    for rrset in getattr(msg, section):
        for rd in rrset:
            out.append("%s %s %s" % (rrset.name.to_text().lower(),
                                     dns.rdatatype.to_text(rrset.rdtype), rd.to_text()))
    return sorted(out)


def expect(msg, rcode="NOERROR", answer=None, ra=True, aa=False):
    """Differences between msg and what is expected (a list of strings)."""
    d = []
    if dns.rcode.to_text(msg.rcode()) != rcode:
        d.append("rcode %s, want %s" % (dns.rcode.to_text(msg.rcode()), rcode))
    if bool(msg.flags & dns.flags.RA) != ra:
        d.append("RA %s, want %s" % (bool(msg.flags & dns.flags.RA), ra))
    if aa is not None and bool(msg.flags & dns.flags.AA) != aa:
        d.append("AA %s, want %s" % (bool(msg.flags & dns.flags.AA), aa))
    if answer is not None and records(msg) != sorted(answer):
        d.append("answer %s, want %s" % (records(msg), sorted(answer)))
    return d


def basic(tally):
    up = upstream("example.test", "payments.example.com", "8.8.8.in-addr.arpa")
    corp = upstream("corp.test")
    fwd = forwarder([addr(up)], args=["--stub-domain", "corp.test=" + addr(corp)])
    p = fwd.port
    cases = [
        ("www.example.test", "A", "NOERROR", ["www.example.test. A 192.0.2.80"]),
        ("WWW.Example.Test", "AAAA", "NOERROR", ["www.example.test. AAAA 2001:db8::80"]),
        ("example.test", "MX", "NOERROR", ["example.test. MX 10 mail.example.test."]),
        ("txt.example.test", "TXT", "NOERROR", ['txt.example.test. TXT "hello from upstream"']),
        ("alias.example.test", "A", "NOERROR", ["alias.example.test. CNAME www.example.test.",
                                                "www.example.test. A 192.0.2.80"]),
        ("nothere.example.test", "A", "NXDOMAIN", []),
        # a stub domain goes to its own server (the default upstream REFUSES it)
        ("intranet.corp.test", "A", "NOERROR", ["intranet.corp.test. A 10.99.0.1"]),
        # reverse names outside --service-cidr/--pod-cidr are forwarded ...
        ("8.8.8.8.in-addr.arpa", "PTR", "NOERROR", ["8.8.8.8.in-addr.arpa. PTR dns.google."]),
    ]
    for name, qtype, rcode, answer in cases:
        for tcp in (False, True):
            label = "forward %s %s over %s" % (name, qtype, "TCP" if tcp else "UDP")
            tally.run(label, lambda: expect(ask(p, name, qtype, tcp=tcp), rcode, answer))
    tally.run("question echoed in the client's case",
              lambda: [] if ask(p, "WWW.Example.Test").question[0].name.to_text()
              == "WWW.Example.Test." else ["case lost"])
    tally.check(sent_upstream(fwd, "intranet.corp.test.")[0].upstream == addr(corp),
                "stub domain queries go to the stub's server",
                str(sent_upstream(fwd, "intranet.corp.test.")))
    tally.check(all(x.upstream == addr(up) for x in sent_upstream(fwd, "www.example.test.")),
                "other names go to the default upstream")

    # ... and reverse names inside them are answered from the cluster.
    n0 = len(sent_upstream(fwd))
    tally.run("-x of a ClusterIP answered from the cluster",
              lambda: expect(ask(p, "10.10.96.10.in-addr.arpa", "PTR"), "NOERROR",
                             ["10.10.96.10.in-addr.arpa. PTR web.shop.svc.cluster.local."],
                             aa=True))
    tally.run("-x inside the service CIDR is NXDOMAIN at once",
              lambda: expect(ask(p, "99.99.96.10.in-addr.arpa", "PTR"), "NXDOMAIN", [],
                             aa=True))
    tally.run("-x inside the pod CIDR is NXDOMAIN at once",
              lambda: expect(ask(p, "7.7.244.10.in-addr.arpa", "PTR"), "NXDOMAIN", [], aa=True))

    # Search-list candidates under the cluster zone: NXDOMAIN, never forwarded.
    for name in ("google.com.default.svc.cluster.local", "google.com.svc.cluster.local",
                 "google.com.cluster.local", "www.example.test.shop.svc.cluster.local"):
        tally.run("search-suffixed %s: NXDOMAIN, authoritative" % name,
                  lambda: expect(ask(p, name), "NXDOMAIN", [], aa=True))
    tally.check(len(sent_upstream(fwd)) == n0, "cluster names never go upstream",
                str(sent_upstream(fwd)[n0:]))

    # Cluster answers: authoritative, with RA for a client allowed recursion.
    tally.run("cluster name: AA and RA",
              lambda: expect(ask(p, "web.shop.svc.cluster.local"), "NOERROR",
                             ["web.shop.svc.cluster.local. A 10.96.10.10"], aa=True))
    # ExternalName: the CNAME and the target's address in one answer.
    for tcp in (False, True):
        tally.run("ExternalName chased (%s)" % ("TCP" if tcp else "UDP"),
                  lambda: expect(ask(p, "payments.shop.svc.cluster.local", tcp=tcp), "NOERROR",
                                 ["payments.shop.svc.cluster.local. CNAME "
                                  "api.payments.example.com.",
                                  "api.payments.example.com. A 192.0.2.44"], aa=False))
    tally.run("ExternalName, CNAME asked: the CNAME alone",
              lambda: expect(ask(p, "payments.shop.svc.cluster.local", "CNAME"), "NOERROR",
                             ["payments.shop.svc.cluster.local. CNAME "
                              "api.payments.example.com."], aa=True))

    # With dig, as a person runs it.
    rc, out, err = t._run(t.dig_cmd(p, "www.example.test", "A", opts=["+noall", "+answer",
                                                                       "+comments"]))
    tally.check("192.0.2.80" in out and " ra" in out.split("flags:")[1].split(";")[0],
                "dig: answer and RA", out)
    for s in (fwd, corp, up):
        tally.server_stopped(s)


def ipv6(tally):
    """An upstream on ::1 (the rules allow it), over UDP and over TCP after TC."""
    s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        s6.bind(("::1", 0))
    except OSError:
        tally.skip("IPv6 upstream", "this machine has no IPv6 loopback (::1)")
        return
    finally:
        s6.close()
    p6 = t.free_port()
    up = upstream("example.test", args=["--listen", "[::1]:%d" % p6])
    fwd = forwarder(["[::1]:%d" % p6])
    tally.run("IPv6 upstream", lambda: expect(ask(fwd.port, "www.example.test"), "NOERROR",
                                              ["www.example.test. A 192.0.2.80"]))
    m = ask(fwd.port, "big.example.test", "TXT", tcp=True)
    tally.check(len(records(m)) == 16, "IPv6 upstream over TCP after TC", str(len(records(m))))
    for s in (fwd, up):
        tally.server_stopped(s)


def truncation(tally):
    up = upstream("example.test")
    fwd = forwarder([addr(up)], args=["--cache-size", "0"])
    p = fwd.port
    want = 16
    # dnspython over UDP with EDNS 1232: too big, so TC from the forwarder
    m = ask(p, "big.example.test", "TXT")
    tally.check(bool(m.flags & dns.flags.TC) and not m.answer, "big answer over UDP: TC",
                str(m))
    tally.check(any(x.tcp for x in sent_upstream(fwd, "big.example.test.")),
                "the forwarder asked again over TCP after the upstream's TC",
                str(sent_upstream(fwd, "big.example.test.")))
    for i in range(3):
        m = ask(p, "big.example.test", "TXT", tcp=True)
        tally.check(len(records(m)) == want, "big answer over TCP (%d)" % i,
                    "%d records" % len(records(m)))
    # dig retries over TCP by itself
    rc, out, err = t._run(t.dig_cmd(p, "big.example.test", "TXT", opts=["+noall", "+answer"]))
    tally.check(out.count("chunk-") == want, "dig gets the big answer (TC -> TCP)", out[-300:])
    opened = fwd.stderr_text().count("opening a tcp connection")
    tcp_sent = len(sent_upstream(fwd, "big.example.test.", tcp=True))
    tally.check(tcp_sent >= 4 and opened == 1, "one upstream TCP connection, reused",
                "%d TCP queries over %d connections" % (tcp_sent, opened))
    for s in (fwd, up):
        tally.server_stopped(s)


def recursion(tally):
    up = upstream("example.test")
    # Only 10.0.0.0/8 may recurse: the test's 127.0.0.1 may not.
    fwd = forwarder([addr(up)], args=["--allow-recursion", "10.0.0.0/8",
                                      "--allow-recursion", "127.0.0.2/32"])
    p = fwd.port
    tally.run("client outside --allow-recursion: REFUSED, no RA",
              lambda: expect(ask(p, "www.example.test"), "REFUSED", [], ra=False, aa=None))
    tally.run("client outside --allow-recursion: cluster names still answered, no RA",
              lambda: expect(ask(p, "web.shop.svc.cluster.local"), "NOERROR",
                             ["web.shop.svc.cluster.local. A 10.96.10.10"], ra=False, aa=True))
    tally.run("client outside --allow-recursion over TCP: REFUSED",
              lambda: expect(ask(p, "www.example.test", tcp=True), "REFUSED", [], ra=False,
                             aa=None))
    tally.check(not sent_upstream(fwd), "nothing forwarded for a refused client",
                str(sent_upstream(fwd)))
    tally.run("client inside --allow-recursion (127.0.0.2): answered, RA",
              lambda: expect(ask(p, "www.example.test", src="127.0.0.2"), "NOERROR",
                             ["www.example.test. A 192.0.2.80"]))
    for s in (fwd, up):
        tally.server_stopped(s)


def concurrency(tally):
    # --max-concurrent: an upstream that never answers holds two queries.
    slow = fu.FakeUpstream(delay=None)
    fwd = forwarder(["127.0.0.1:%d" % slow.port],
                    args=["--max-concurrent", "2", "--upstream-timeout", "3000"])
    p = fwd.port
    socks = []
    try:
        for i in range(2):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.sendto(t.make_query("held%d.example.test" % i, "A").to_wire(), ("127.0.0.1", p))
            socks.append(s)
        t.poll(lambda: len([x for x in slow.seen if x.name.startswith("held")]) >= 2, timeout=3)
        t0 = time.monotonic()
        m = ask(p, "third.example.test", timeout=2)
        tally.run("over --max-concurrent: REFUSED at once",
                  lambda: expect(m, "REFUSED", [], aa=None)
                  + ([] if time.monotonic() - t0 < 1.5 else ["took too long"]))
        for i, s in enumerate(socks):
            s.settimeout(6)
            tally.run("held query %d: SERVFAIL once the upstream timed out" % i,
                      lambda: expect(t.parse(s.recv(65535)), "SERVFAIL", [], aa=None))
    finally:
        for s in socks:
            s.close()
        tally.server_stopped(fwd)
        slow.close()

    # Coalescing: 30 clients ask the same name while the upstream is slow;
    # it is asked once and every client gets the answer with its own ID.
    slow = fu.FakeUpstream(delay=0.4)
    fwd = forwarder(["127.0.0.1:%d" % slow.port])
    p = fwd.port
    socks, ids = [], []
    try:
        for i in range(30):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            q = t.make_query("www.example.test", "A", rd=True)
            ids.append(q.id)
            s.sendto(q.to_wire(), ("127.0.0.1", p))
            socks.append(s)
        got = 0
        for s, qid in zip(socks, ids):
            s.settimeout(4)
            try:
                m = t.parse(s.recv(65535))
                if m.id == qid and records(m) == ["www.example.test. A 192.0.2.99"]:
                    got += 1
            except socket.timeout:
                pass
        asked = slow.queries("www.example.test.")
        tally.check(got == 30, "coalescing: all 30 clients answered", "%d answered" % got)
        tally.check(len(asked) == 1, "coalescing: the upstream was asked once",
                    "asked %d times" % len(asked))
    finally:
        for s in socks:
            s.close()
        tally.server_stopped(fwd)
        slow.close()


def main(tally):
    basic(tally)
    ipv6(tally)
    truncation(tally)
    recursion(tally)
    concurrency(tally)


if __name__ == "__main__":
    t.main_guard(t.Tally("forward"), main)
