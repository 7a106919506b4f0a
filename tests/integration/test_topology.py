"""Topology-ordered answers: with --node-name and --node-zone, the A and SRV
answers of a headless Service list the endpoints on this node first, then
those of this zone (an endpoint whose hints.forZones name this zone counts as
this zone's, one hinted elsewhere does not), then the rest; each tier rotates
within itself, and every answer still holds every endpoint. CoreDNS's zonal
names: <zone>.pin._zone.<svc> holds that zone's endpoints (NODATA for a zone
without one), <zone>.prefer._zone.<svc> the same, or every endpoint for a zone
without one; a ClusterIP Service has no zonal names. From manifests and from
the API (zone and hints decoded from the API server's EndpointSlices, and an
update that moves an endpoint to this node reorders the answer)."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakeapi"))
import dns.rdatatype  # noqa: E402
import kubetest as k  # noqa: E402
import fakeapi  # noqa: E402

t = k.t
NS = "topo"
N = 180

# (address, hostname, node, zone, hints): this server is node-a in zone-a.
EPS = [
    ("10.252.0.1", "db-0", "node-a", "zone-a", None),
    ("10.252.0.2", "db-1", "node-a", "zone-a", None),
    ("10.252.0.3", "db-2", "node-b", "zone-a", None),
    ("10.252.0.4", "db-3", "node-b", "zone-a", None),
    ("10.252.0.5", "db-4", "node-c", "zone-b", None),
    ("10.252.0.6", "db-5", "node-c", "zone-b", None),
    ("10.252.0.7", "db-6", "node-d", "zone-c", None),
    ("10.252.0.8", "db-7", "node-e", None, None),
    # hinted to zone-a by the EndpointSlice controller: this zone's tier
    ("10.252.0.9", "db-8", "node-c", "zone-b", ["zone-a"]),
    # in zone-a but hinted to zone-b: not this zone's tier
    ("10.252.0.10", "db-9", "node-b", "zone-a", ["zone-b"]),
]
TIERS = [["10.252.0.1", "10.252.0.2"],
         ["10.252.0.3", "10.252.0.4", "10.252.0.9"],
         ["10.252.0.5", "10.252.0.6", "10.252.0.7", "10.252.0.8", "10.252.0.10"]]


def objects(eps=EPS):
    out = [fakeapi.namespace(NS)]
    out.append({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "db", "namespace": NS},
                "spec": {"clusterIP": "None",
                         "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}})
    endpoints = []
    for addr, host, node, zone, hints in eps:
        ep = {"addresses": [addr], "hostname": host, "nodeName": node,
              "conditions": {"ready": True}}
        if zone:
            ep["zone"] = zone
        if hints:
            ep["hints"] = {"forZones": [{"name": h} for h in hints]}
        endpoints.append(ep)
    # not ready: in no answer
    endpoints.append({"addresses": ["10.252.0.99"], "hostname": "late", "nodeName": "node-a",
                      "zone": "zone-a", "conditions": {"ready": False}})
    out.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "db-1", "namespace": NS,
                             "labels": {"kubernetes.io/service-name": "db"}},
                "addressType": "IPv4",
                "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
                "endpoints": endpoints})
    # a ClusterIP Service with zoned endpoints: no zonal names
    out.append({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": NS},
                "spec": {"clusterIP": "10.96.252.1",
                         "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})
    out.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "web-1", "namespace": NS,
                             "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
                "endpoints": [{"addresses": ["10.252.1.1"], "nodeName": "node-a",
                               "zone": "zone-a"}]})
    # a headless Service none of whose endpoints has a zone: no zonal names
    out.append({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "plain", "namespace": NS},
                "spec": {"clusterIP": "None",
                         "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})
    out.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "plain-1", "namespace": NS,
                             "labels": {"kubernetes.io/service-name": "plain"}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
                "endpoints": [{"addresses": ["10.252.2.1"]}, {"addresses": ["10.252.2.2"]}]})
    return out


def fqdn(name):
    return "%s.%s.svc.cluster.local." % (name, NS)


def answer_list(msg, rdtype):
    out = []
    for rrset in msg.answer:
        if rrset.rdtype == rdtype:
            out.extend(rd.to_text() for rd in rrset)
    return out


def tiered(tally, port, label, qname, qtype, tiers, to_key):
    """Asks N times: every answer holds every record, tier by tier in order,
    and within each tier of several records each comes first about equally."""
    rdtype = dns.rdatatype.from_text(qtype)
    want = sorted(a for tier in tiers for a in tier)
    bad = []
    firsts = [dict() for _ in tiers]
    for i in range(N):
        msg, _ = t.query(port, qname, qtype)
        got = [to_key(x) for x in answer_list(msg, rdtype)]
        if sorted(got) != want:
            bad.append("query %d: %r, want every one of %r" % (i, got, want))
            continue
        pos = 0
        for ti, tier in enumerate(tiers):
            part = got[pos:pos + len(tier)]
            if sorted(part) != sorted(tier):
                bad.append("query %d: %r: records %d.. are %r, want tier %d %r"
                           % (i, got, pos, part, ti, tier))
                break
            if part:
                firsts[ti][part[0]] = firsts[ti].get(part[0], 0) + 1
            pos += len(tier)
    tally.check(not bad, "%s: every answer holds all %d records, nearest tier first"
                % (label, len(want)), "\n    ".join(bad[:5]))
    spread = []
    for ti, tier in enumerate(tiers):
        if len(tier) < 2:
            continue
        # each worker's counter moves by one per rotated answer: give or take
        lo, hi = N // len(tier) // 2, N // len(tier) * 3 // 2 + 2
        if len(firsts[ti]) != len(tier) or not all(lo <= c <= hi
                                                   for c in firsts[ti].values()):
            spread.append("tier %d: first records %r (want each of %r %d..%d times)"
                          % (ti, firsts[ti], tier, lo, hi))
    tally.check(not spread, "%s: each tier rotates within itself" % label,
                "\n    ".join(spread))


def srv_target(text):
    # "0 10 5432 db-0.db.topo.svc.cluster.local." -> the endpoint's address
    host = text.split()[3].split(".")[0]
    return next(a for a, h, *_ in EPS if h == host)


def check_zonal(tally, port, where, node=True):
    z = lambda zone, how: "%s.%s._zone.%s" % (zone, how, fqdn("db"))  # noqa: E731
    all_eps = [a for a, *_ in EPS]
    cases = [
        ("pin of a zone", z("zone-a", "pin"), "A", "NOERROR",
         ["10.252.0.1", "10.252.0.2", "10.252.0.3", "10.252.0.4", "10.252.0.10"]),
        ("pin of another zone", z("zone-b", "pin"), "A", "NOERROR",
         ["10.252.0.5", "10.252.0.6", "10.252.0.9"]),
        ("pin of a zone without endpoints: NODATA", z("zone-x", "pin"), "A", "NOERROR", []),
        ("prefer of a zone", z("zone-c", "prefer"), "A", "NOERROR", ["10.252.0.7"]),
        ("prefer of a zone without endpoints: all", z("zone-x", "prefer"), "A", "NOERROR",
         all_eps),
        ("AAAA of an IPv4 zone: NODATA", z("zone-a", "pin"), "AAAA", "NOERROR", []),
        ("case does not matter", z("ZONE-B", "PIN"), "A", "NOERROR",
         ["10.252.0.5", "10.252.0.6", "10.252.0.9"]),
        ("another word than pin or prefer: NXDOMAIN", z("zone-a", "near"), "A", "NXDOMAIN",
         []),
        ("a ClusterIP Service has no zonal names", "zone-a.pin._zone." + fqdn("web"), "A",
         "NXDOMAIN", []),
        ("a headless Service without zones has none",
         "zone-a.prefer._zone." + fqdn("plain"), "A", "NXDOMAIN", []),
    ]
    for label, qname, qtype, rcode, want in cases:
        k.expect(tally, "%s: %s" % (where, label), port, qname, rcode, want, qtype=qtype)
    if not node:
        return
    # pin orders too: this node's endpoints first
    msg, _ = t.query(port, z("zone-a", "pin"), "A")
    got = answer_list(msg, dns.rdatatype.A)
    tally.check(sorted(got[:2]) == ["10.252.0.1", "10.252.0.2"],
                "%s: a zonal answer lists this node's endpoints first" % where, repr(got))


def from_manifests(tally):
    d = t.mkdtemp()
    with open(os.path.join(d, "topo.json"), "w") as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": objects()}, f)
    hp = t.free_port()
    srv = t.Server(d, ["--threads", "2", "--node-name", "node-a", "--node-zone", "zone-a",
                       "--http", "127.0.0.1:%d" % hp]).start()
    # no --node-zone and a node no endpoint is on: one tier, as before
    flat = t.Server(d, ["--threads", "2", "--node-name", "elsewhere"]).start()
    # --node-name alone: this node's endpoints, then every other
    node_only = t.Server(d, ["--threads", "2", "--node-name", "node-a"]).start()
    try:
        tiered(tally, srv.port, "manifests: A", fqdn("db"), "A", TIERS, lambda x: x)
        tiered(tally, srv.port, "manifests: SRV", "_pg._tcp." + fqdn("db"), "SRV", TIERS,
               srv_target)
        tiered(tally, flat.port, "manifests, no zone and no endpoint on the node: A",
               fqdn("db"), "A", [sum(TIERS, [])], lambda x: x)
        tiered(tally, node_only.port, "manifests, --node-name alone: A", fqdn("db"), "A",
               [TIERS[0], TIERS[1] + TIERS[2]], lambda x: x)
        check_zonal(tally, srv.port, "manifests")
        code, _, body = t.http_get(hp, "/debug/model")
        model = json.loads(body) if code == 200 else {}
        zones = {e.get("address"): e.get("zone")
                 for svc in model.get("services", []) if svc.get("name") == "db"
                 for e in svc.get("endpoints", [])}
        tally.check(zones.get("10.252.0.5") == "zone-b" and "10.252.0.8" in zones
                    and zones["10.252.0.8"] is None,
                    "/debug/model shows each endpoint's zone", repr(zones))
        check_zonal(tally, flat.port, "manifests without a zone of its own", node=False)
    finally:
        tally.server_stopped(srv)
        tally.server_stopped(flat)
        tally.server_stopped(node_only)


def from_api(tally):
    api = fakeapi.FakeAPI().start()
    srv = None
    try:
        for o in objects():
            api.apply(o)
        srv = k.KubeServer(["--api-server", api.url, "--threads", "2", "--node-name", "node-a",
                            "--node-zone", "zone-a"] + k.FAST).start()
        tiered(tally, srv.port, "api: A", fqdn("db"), "A", TIERS, lambda x: x)
        check_zonal(tally, srv.port, "api")
        # db-6 moves to this node: it joins the first tier (an incremental build)
        moved = [(a, h, "node-a" if h == "db-6" else n, z, hi) for a, h, n, z, hi in EPS]
        for o in objects(moved):
            if o["kind"] == "EndpointSlice" and o["metadata"]["name"] == "db-1":
                api.apply(o)
        first = sorted(TIERS[0] + ["10.252.0.7"])

        def reordered():
            msg, _ = t.query(srv.port, fqdn("db"), "A")
            return sorted(answer_list(msg, dns.rdatatype.A)[:3]) == first
        tally.check(t.poll(reordered, timeout=10.0)[0],
                    "api: an endpoint moved to this node comes first after the update")
        tiered(tally, srv.port, "api, after the update: A", fqdn("db"), "A",
               [first, TIERS[1], [a for a in TIERS[2] if a != "10.252.0.7"]], lambda x: x)
    finally:
        if srv:
            tally.server_stopped(srv)
        api.stop()


def main(tally):
    from_manifests(tally)
    from_api(tally)


if __name__ == "__main__":
    t.main_guard(t.Tally("topology"), main)
