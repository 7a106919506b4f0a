"""Topology-ordered answers in central mode (no --node-zone): a client whose
address is an endpoint address with a zone gets the A, AAAA and SRV answers of
a headless Service with the endpoints of its zone first, then the rest, each
part rotating within itself and every endpoint present; a client whose address
is unknown, or whose zone has no endpoint of the Service, gets the plain
rotation. The clients are 127.0.0.x source addresses made endpoint addresses of
zones in the test data, over UDP and TCP."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakeapi"))
import dns.message  # noqa: E402
import dns.query  # noqa: E402
import dns.rdatatype  # noqa: E402
import kubetest as k  # noqa: E402
import fakeapi  # noqa: E402

t = k.t
NS = "topo"
N = 60

# (address, hostname, zone) of the headless Service db
EPS = [
    ("127.0.0.11", "db-0", "zone-a"),
    ("127.0.0.12", "db-1", "zone-a"),
    ("127.0.0.13", "db-2", "zone-b"),
    ("127.0.0.14", "db-3", "zone-b"),
    ("127.0.0.15", "db-4", "zone-c"),
    ("127.0.0.16", "db-5", None),
]
# the client Pods: endpoints of another Service
CLIENTS = [("127.0.0.21", "zone-a"), ("127.0.0.22", "zone-b"), ("127.0.0.23", "zone-d")]


def slice_for(svc, eps):
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": svc + "-1", "namespace": NS,
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4",
            "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
            "endpoints": eps}


def objects():
    out = [fakeapi.namespace(NS)]
    for name in ("db", "client"):
        out.append({"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": name, "namespace": NS},
                    "spec": {"clusterIP": "None",
                             "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}})
    eps = []
    for addr, host, zone in EPS:
        ep = {"addresses": [addr], "hostname": host, "conditions": {"ready": True}}
        if zone:
            ep["zone"] = zone
        eps.append(ep)
    out.append(slice_for("db", eps))
    out.append(slice_for("client", [{"addresses": [a], "zone": z,
                                     "conditions": {"ready": True}} for a, z in CLIENTS]))
    return out


def fqdn(name):
    return "%s.%s.svc.cluster.local." % (name, NS)


def ask(port, qname, qtype, source, tcp):
    q = dns.message.make_query(qname, qtype)
    if tcp:
        return dns.query.tcp(q, "127.0.0.1", port=port, source=source, timeout=3)
    return dns.query.udp(q, "127.0.0.1", port=port, source=source, timeout=3)


def records(msg, qtype):
    rdtype = dns.rdatatype.from_text(qtype)
    out = []
    for rrset in msg.answer:
        if rrset.rdtype == rdtype:
            for rd in rrset:
                text = rd.to_text()
                if qtype == "SRV":  # the target's label is the endpoint's hostname
                    host = text.split()[3].split(".")[0]
                    text = next(a for a, h, _ in EPS if h == host)
                out.append(text)
    return out


def tiered(tally, port, label, qname, qtype, source, near, tcp=False):
    """Asks N times from `source`: every answer holds every endpoint, `near`
    first; within each part of several records each comes first sometimes."""
    every = sorted(a for a, _, _ in EPS)
    rest = [a for a in every if a not in near]
    bad, firsts = [], [set(), set()]
    for i in range(N):
        got = records(ask(port, qname, qtype, source, tcp), qtype)
        if sorted(got) != every:
            bad.append("query %d: %r, want every one of %r" % (i, got, every))
            continue
        if near and sorted(got[:len(near)]) != sorted(near):
            bad.append("query %d: %r, want %r first" % (i, got, near))
            continue
        firsts[0].add(got[0])
        if near:
            firsts[1].add(got[len(near)])
    tally.check(not bad, "%s: every answer holds all %d endpoints, %s"
                % (label, len(every), "%r first" % near if near else "in one rotation"),
                "\n    ".join(bad[:5]))
    want = [sorted(near), sorted(rest)] if near else [every, []]
    got = [sorted(f) for f in firsts]
    tally.check(got == want, "%s: each part rotates within itself" % label,
                "first records %r, want %r" % (got, want))


def main(tally):
    d = t.mkdtemp()
    with open(os.path.join(d, "topo.json"), "w") as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": objects()}, f)
    srv = t.Server(d, ["--threads", "2"]).start()
    zone_a, zone_b = ["127.0.0.11", "127.0.0.12"], ["127.0.0.13", "127.0.0.14"]
    try:
        tiered(tally, srv.port, "a client Pod of zone-a: A", fqdn("db"), "A",
               "127.0.0.21", zone_a)
        tiered(tally, srv.port, "a client Pod of zone-b: A", fqdn("db"), "A",
               "127.0.0.22", zone_b)
        tiered(tally, srv.port, "a client Pod of zone-b over TCP: A", fqdn("db"), "A",
               "127.0.0.22", zone_b, tcp=True)
        tiered(tally, srv.port, "an endpoint of the Service itself, zone-c: A", fqdn("db"),
               "A", "127.0.0.15", ["127.0.0.15"])
        tiered(tally, srv.port, "a client Pod of zone-a: SRV", "_pg._tcp." + fqdn("db"),
               "SRV", "127.0.0.21", zone_a)
        tiered(tally, srv.port, "a client Pod of zone-b: SRV of the Service name",
               fqdn("db"), "SRV", "127.0.0.22", zone_b)
        tiered(tally, srv.port, "a client of a zone without endpoints of the Service: A",
               fqdn("db"), "A", "127.0.0.23", [])
        tiered(tally, srv.port, "an endpoint without a zone: A", fqdn("db"), "A",
               "127.0.0.16", [])
        tiered(tally, srv.port, "a client that is no known Pod: A", fqdn("db"), "A",
               "127.0.0.1", [])
    finally:
        tally.server_stopped(srv)
    # node mode: the server's own zone orders, not the client's
    node = t.Server(d, ["--threads", "2", "--node-name", "node-x", "--node-zone", "zone-a"]).start()
    try:
        tiered(tally, node.port, "node mode: a client Pod of zone-b gets zone-a first",
               fqdn("db"), "A", "127.0.0.22", zone_a)
    finally:
        tally.server_stopped(node)


if __name__ == "__main__":
    t.main_guard(t.Tally("topology_central"), main)
