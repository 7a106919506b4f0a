"""Rotation of answers of several records (on by default; --no-rotate keeps
the rendered order), the order CoreDNS's loadbalance plugin gives: asked N
times, a headless Service of k endpoints gives each endpoint first about N/k
times, over UDP and TCP, for A, AAAA and SRV, and every answer still holds
every record, with the SRV glue naming the right addresses. A name of one
record, and every name with --no-rotate, answers in one order. dig reads a
rotated SRV answer too."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dns.rdatatype  # noqa: E402
import svcdns_testlib as t  # noqa: E402

ZONE = "cluster.local."
N = 240


def manifests(d):
    objs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "rot"}}]

    def headless(name, family, addrs, hostnames=False):
        objs.append({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": name, "namespace": "rot"},
                     "spec": {"clusterIP": "None", "ipFamilies": [family],
                              "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})
        eps = []
        for i, a in enumerate(addrs):
            ep = {"addresses": [a], "conditions": {"ready": True}}
            if hostnames:
                ep["hostname"] = "%s-%d" % (name, i)
            eps.append(ep)
        objs.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                     "metadata": {"name": name + "-1", "namespace": "rot",
                                  "labels": {"kubernetes.io/service-name": name}},
                     "addressType": family,
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
                     "endpoints": eps})

    headless("four", "IPv4", ["10.251.0.%d" % i for i in range(1, 5)], hostnames=True)
    headless("six", "IPv6", ["fd00:251::%d" % i for i in range(1, 4)])
    headless("solo", "IPv4", ["10.251.1.1"])
    t.write_file(os.path.join(d, "rot.json"),
                 json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))


def records(msg, section="answer"):
    """The section's records as text, in order."""
    out = []
    for rrset in getattr(msg, section):
        for rd in rrset:
            out.append("%s %s %s" % (rrset.name.to_text().lower(),
                                     dns.rdatatype.to_text(rrset.rdtype), rd.to_text()))
    return out


def rotation(tally, port, label, qname, qtype, k, tcp=False, glue=None):
    """Asks N times; checks the counts of the first record, that each answer
    is a rotation of the same records, and the glue."""
    firsts = {}
    ref = None
    bad = []
    for i in range(N):
        msg, _ = t.query(port, qname, qtype, tcp=tcp)
        an = records(msg)
        if ref is None:
            ref = sorted(an)
        if sorted(an) != ref or len(an) != k:
            bad.append("query %d: %r, want the records %r" % (i, an, ref))
            continue
        firsts[an[0]] = firsts.get(an[0], 0) + 1
        if glue is not None:
            got = records(msg, "additional")
            if sorted(got) != sorted(glue):
                bad.append("query %d: additional %r, want %r" % (i, got, glue))
    tally.check(not bad, "%s: every answer holds all %d records" % (label, k),
                "\n    ".join(bad[:5]))
    # Each worker moves its own counter by one per rotated answer: with
    # queries spread over the workers, each record comes first N/k times,
    # give or take one per worker.
    lo, hi = N // k - N // (4 * k), N // k + N // (4 * k)
    ok = len(firsts) == k and all(lo <= c <= hi for c in firsts.values())
    tally.check(ok, "%s: over %d queries each of the %d records comes first about %d times"
                % (label, N, k, N // k), "first records: %r (want %d..%d each)" % (firsts, lo, hi))


def main(tally):
    d = t.mkdtemp()
    manifests(d)
    # Two workers whatever the machine: each is off an even spread by at most
    # one, so the bounds below hold on any number of cores.
    srv = t.Server(d, ["--threads", "2"]).start()
    fixed = t.Server(d, ["--no-rotate"]).start()
    try:
        p = srv.port
        four = "four.rot.svc." + ZONE
        srv_name = "_http._tcp." + four
        glue = ["four-%d.four.rot.svc.cluster.local. A 10.251.0.%d" % (i, i + 1)
                for i in range(4)]
        rotation(tally, p, "A of a headless Service, UDP", four, "A", 4)
        rotation(tally, p, "A of a headless Service, TCP", four, "A", 4, tcp=True)
        rotation(tally, p, "AAAA of a headless Service", "six.rot.svc." + ZONE, "AAAA", 3)
        rotation(tally, p, "the short form", "four.rot.svc.", "A", 4)
        rotation(tally, p, "SRV of a headless Service, glue in order", srv_name, "SRV", 4,
                 glue=glue)
        rotation(tally, p, "SRV over TCP", srv_name, "SRV", 4, tcp=True, glue=glue)

        # dig reads a rotated SRV answer with its glue (its own parser)
        for i in range(2):
            r = t.run_dig(p, srv_name, "SRV")
            tally.check(r.rcode == "NOERROR" and len(r.answer) == 4 and len(r.additional) == 4,
                        "dig reads a rotated SRV answer (%d)" % i,
                        "answer %r additional %r" % (r.answer, r.additional))

        # one record: always the same answer
        wires = set()
        for _ in range(8):
            msg, _ = t.query(p, "solo.rot.svc." + ZONE, "A")
            wires.add(tuple(records(msg)))
        tally.check(len(wires) == 1, "a name of one record answers alike", repr(wires))

        # --no-rotate: the rendered order every time
        for qname, qtype in ((four, "A"), (srv_name, "SRV")):
            orders = set()
            for _ in range(20):
                msg, _ = t.query(fixed.port, qname, qtype)
                orders.add(tuple(records(msg)))
            tally.check(len(orders) == 1 and len(next(iter(orders))) == 4,
                        "--no-rotate: %s %s keeps one order" % (qname, qtype), repr(orders))
    finally:
        tally.server_stopped(srv)
        tally.server_stopped(fixed)


if __name__ == "__main__":
    t.main_guard(t.Tally("rotation"), main)
