"""--fallthrough[=ZONES], as CoreDNS's fallthrough: an NXDOMAIN for a name
under the zones given (none given: every zone served) is resolved by the
upstreams instead, through the forwarder, as a cluster chained behind another
DNS server would have it. The upstream here is a real one: another svcdns
serving a second cluster under the same domain. A name that exists without
the type asked (NODATA) stays ours; without an upstream (--upstream none) the
NXDOMAIN is answered as before, and so it is without the flag."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_upstream as fu  # noqa: E402
import svcdns_testlib as t  # noqa: E402

import dns.flags  # noqa: E402
import dns.rcode  # noqa: E402
import dns.rdatatype  # noqa: E402

NEAR = "web.near.svc.cluster.local."
FAR = "api.far.svc.cluster.local."


def cluster(d, ns, name, ip):
    objs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
         "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80}]}},
    ]
    t.write_file(os.path.join(d, ns + ".json"),
                 json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))


def ask(port, qname, qtype="A"):
    msg, _ = t.query(port, qname, qtype, rd=True)
    recs = ["%s %s %s" % (rr.name.to_text().lower(), dns.rdatatype.to_text(rr.rdtype),
                          rd.to_text()) for rr in msg.answer for rd in rr]
    return dns.rcode.to_text(msg.rcode()), recs, bool(msg.flags & dns.flags.AA)


def expect(tally, label, srv, qname, qtype, rcode, answer, upstream_asked):
    got = ask(srv.port, qname, qtype)
    sent = fu.sent_upstream(srv, name=qname)
    ok = got[0] == rcode and got[1] == answer and bool(sent) == upstream_asked
    tally.check(ok, label, "got %s %r (sent upstream: %r), want %s %r (sent upstream: %s)"
                % (got[0], got[1], sent, rcode, answer, upstream_asked))


def main(tally):
    near, far = t.mkdtemp(), t.mkdtemp()
    cluster(near, "near", "web", "10.96.1.1")
    cluster(far, "far", "api", "10.97.2.2")
    # The upstream: the other cluster, same domain, authoritative for it.
    up = t.Server(far, ["--threads", "1"]).start()
    dbg = ["--log-level", "debug", "--threads", "1", "--upstream", fu.addr(up)]
    every = t.Server(near, dbg + ["--fallthrough"]).start()
    some = t.Server(near, dbg + ["--fallthrough=far.svc.cluster.local,in-addr.arpa"]).start()
    plain = t.Server(near, dbg).start()
    alone = t.Server(near, ["--fallthrough"]).start()  # --upstream none
    try:
        expect(tally, "a name of ours is answered by us", every, NEAR, "A", "NOERROR",
               [NEAR + " A 10.96.1.1"], False)
        expect(tally, "NXDOMAIN here: the upstream's cluster answers", every, FAR, "A",
               "NOERROR", [FAR + " A 10.97.2.2"], True)
        expect(tally, "and its SRV", every, "_http._tcp." + FAR, "SRV", "NOERROR",
               ["_http._tcp.%s SRV 0 100 80 %s" % (FAR, FAR)], True)
        expect(tally, "NXDOMAIN in both: the upstream's NXDOMAIN", every,
               "none.far.svc.cluster.local.", "A", "NXDOMAIN", [], True)
        expect(tally, "a reverse name inside the service CIDR falls through too", every,
               t.rev("10.97.2.2"), "PTR", "NOERROR", [t.rev("10.97.2.2") + " PTR " + FAR], True)
        expect(tally, "a name that exists without the type (NODATA) stays ours", every, NEAR,
               "AAAA", "NOERROR", [], False)
        rc, _, aa = ask(every.port, "web.near.svc.cluster.local.", "TXT")
        tally.check(rc == "NOERROR" and aa, "NODATA is our authoritative answer",
                    "rcode %s aa %s" % (rc, aa))

        expect(tally, "=ZONES: a name under them falls through", some, FAR, "A", "NOERROR",
               [FAR + " A 10.97.2.2"], True)
        expect(tally, "=ZONES: a reverse name under in-addr.arpa falls through", some,
               t.rev("10.97.2.2"), "PTR", "NOERROR", [t.rev("10.97.2.2") + " PTR " + FAR], True)
        expect(tally, "=ZONES: an NXDOMAIN outside them stays ours", some,
               "api.elsewhere.svc.cluster.local.", "A", "NXDOMAIN", [], False)

        expect(tally, "without --fallthrough: NXDOMAIN, nothing sent upstream", plain, FAR, "A",
               "NXDOMAIN", [], False)
        rc, recs, aa = ask(alone.port, FAR)
        tally.check(rc == "NXDOMAIN" and not recs and aa,
                    "--fallthrough with no upstream (--upstream none): NXDOMAIN as before",
                    "rcode %s answer %r aa %s" % (rc, recs, aa))
    finally:
        for s in (every, some, plain, alone, up):
            tally.server_stopped(s)


if __name__ == "__main__":
    t.main_guard(t.Tally("fallthrough"), main)
