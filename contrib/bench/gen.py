#!/usr/bin/python3
"""Generates the benchmark's cluster, deterministically from its size:

  manifests/*.json     Services and EndpointSlices as `kubectl get -o json` Lists, for svcdns
  zones/*.zone         the records svcdns serves for them, as master files for Knot and NSD
  queries.txt          the query mix, in dnsperf's format ("name type" per line)
  samples.txt          names whose answers must be the same on every server
  meta.json            counts, and one name that is served only once everything is loaded

The cluster: N Services spread over N/100 namespaces (at least one), plus
default/kubernetes and kube-system/kube-dns. 85% ClusterIP with named ports, 10%
headless with 5 endpoints that have hostnames (a StatefulSet's), 5% ExternalName.
Every ClusterIP Service has an EndpointSlice too (they are not in DNS but the model
holds them), so that the cluster has 5 endpoints per Service in all.

Usage: gen.py --services N --out DIR [--queries 100000] [--seed 1]
"""
import argparse
import ipaddress
import json
import os
import random
import sys

ZONE = "cluster.local"
TTL = 5
MAX_FILE = 15 << 20  # svcdns refuses manifest files over 16 MiB
SVCS_PER_FILE = 2000
EPS_PER_SVC = 5

WORDS = ["api", "web", "auth", "cart", "orders", "payments", "search", "users", "catalog",
         "billing", "gateway", "events", "notify", "ledger", "inventory", "reports", "media",
         "profile", "session", "checkout", "pricing", "shipping", "reviews", "feed"]
EXTERNAL = ["google.com", "api.github.com", "s3.amazonaws.com", "registry-1.docker.io",
            "login.microsoftonline.com", "sts.amazonaws.com", "storage.googleapis.com",
            "api.stripe.com", "hooks.slack.com", "sentry.io", "pypi.org", "repo.maven.apache.org"]

SERVICE_NET = ipaddress.ip_address("10.96.0.0")
POD_NET = ipaddress.ip_address("10.128.0.0")


def rev(ip):
    return ".".join(reversed(str(ip).split("."))) + ".in-addr.arpa."


class Cluster:
    def __init__(self, n):
        self.services = []  # dicts, also the source of the zone
        self.n_endpoints = 0
        n_ns = max(1, n // 100)
        self.namespaces = ["ns%d" % (k + 1) for k in range(n_ns)]
        kinds = ["external" if i % 20 == 0 else "headless" if i % 10 == 5 else "clusterip"
                 for i in range(n)]
        n_headless = kinds.count("headless")
        n_cip = kinds.count("clusterip")
        # ClusterIP Services share what the headless ones leave of 5 per Service.
        cip_eps = max(0, EPS_PER_SVC * n - EPS_PER_SVC * n_headless)
        base, extra = divmod(cip_eps, n_cip) if n_cip else (0, 0)
        pod = 1
        k_cip = 0
        self.add(dict(ns="default", name="kubernetes", kind="clusterip", ip=SERVICE_NET + 1,
                      ports=[("https", 443, 6443, "TCP")], eps=[]))
        self.add(dict(ns="kube-system", name="kube-dns", kind="clusterip", ip=SERVICE_NET + 10,
                      ports=[("dns", 53, 53, "UDP"), ("dns-tcp", 53, 53, "TCP"),
                             ("metrics", 9153, 9153, "TCP")], eps=[]))
        for i in range(n):
            ns = self.namespaces[i % n_ns]
            name = "%s-%d" % (WORDS[i % len(WORDS)], i)
            s = dict(ns=ns, name=name, kind=kinds[i], eps=[])
            if s["kind"] == "external":
                s["external"] = "%s.%s" % (name, EXTERNAL[i % len(EXTERNAL)])
            elif s["kind"] == "headless":
                s["ports"] = [("postgres", 5432, 5432, "TCP")]
                for e in range(EPS_PER_SVC):
                    s["eps"].append((POD_NET + pod, "%s-%d" % (name, e)))
                    pod += 1
            else:
                s["ip"] = SERVICE_NET + 16 + i
                ports = [("http", 80, 8080, "TCP")]
                if i % 3 == 0:
                    ports.append(("grpc", 9090, 9090, "TCP"))
                if i % 4 == 0:
                    ports.append(("metrics", 9153, 9153, "TCP"))
                s["ports"] = ports
                for _ in range(base + (1 if k_cip < extra else 0)):
                    s["eps"].append((POD_NET + pod, None))
                    pod += 1
                k_cip += 1
            self.add(s)

    def add(self, s):
        self.services.append(s)
        self.n_endpoints += len(s["eps"])


def fqdn(s):
    return "%s.%s.svc.%s." % (s["name"], s["ns"], ZONE)


def manifest_objects(s):
    svc = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": s["name"], "namespace": s["ns"]}, "spec": {}}
    spec = svc["spec"]
    if s["kind"] == "external":
        spec["type"] = "ExternalName"
        spec["externalName"] = s["external"]
        return [svc]
    spec["clusterIP"] = "None" if s["kind"] == "headless" else str(s["ip"])
    spec["ports"] = [{"name": p[0], "port": p[1], "targetPort": p[2], "protocol": p[3]}
                     for p in s["ports"]]
    objs = [svc]
    if s["eps"]:
        eps = []
        for addr, host in s["eps"]:
            e = {"addresses": [str(addr)], "conditions": {"ready": True}}
            if host:
                e["hostname"] = host
            eps.append(e)
        objs.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                     "metadata": {"name": s["name"] + "-abcde", "namespace": s["ns"],
                                  "labels": {"kubernetes.io/service-name": s["name"]}},
                     "addressType": "IPv4",
                     "ports": [{"name": p[0], "port": p[2], "protocol": p[3]} for p in s["ports"]],
                     "endpoints": eps})
    return objs


def write_manifests(c, out):
    d = os.path.join(out, "manifests")
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.unlink(os.path.join(d, f))
    for k in range(0, len(c.services), SVCS_PER_FILE):
        items = []
        for s in c.services[k:k + SVCS_PER_FILE]:
            items.extend(manifest_objects(s))
        text = json.dumps({"apiVersion": "v1", "kind": "List", "items": items},
                          separators=(",", ":"))
        if len(text) > MAX_FILE:
            sys.exit("gen.py: a manifest file would exceed 15 MiB; lower SVCS_PER_FILE")
        with open(os.path.join(d, "services-%05d.json" % (k // SVCS_PER_FILE)), "w") as f:
            f.write(text)


def soa(origin):
    return ("%s %d IN SOA ns.dns.%s. hostmaster.%s. 1 7200 1800 86400 %d\n"
            "%s %d IN NS ns.dns.%s.\n" % (origin, TTL, ZONE, ZONE, TTL, origin, TTL, ZONE))


def write_zones(c, out):
    """The records svcdns serves (zones/cluster.c), in master-file form."""
    d = os.path.join(out, "zones")
    os.makedirs(d, exist_ok=True)
    z = open(os.path.join(d, ZONE + ".zone"), "w")
    r = open(os.path.join(d, "in-addr.arpa.zone"), "w")
    z.write(soa(ZONE + "."))
    z.write("ns.dns.%s. %d IN A %s\n" % (ZONE, TTL, SERVICE_NET + 10))  # kube-dns: the glue
    z.write('dns-version.%s. %d IN TXT "1.1.0"\n' % (ZONE, TTL))
    r.write(soa("in-addr.arpa."))
    for s in c.services:
        name = fqdn(s)
        if s["kind"] == "external":
            z.write("%s %d IN CNAME %s.\n" % (name, TTL, s["external"]))
            continue
        if s["kind"] == "clusterip":
            z.write("%s %d IN A %s\n" % (name, TTL, s["ip"]))
            r.write("%s %d IN PTR %s\n" % (rev(s["ip"]), TTL, name))
            for pname, port, _, proto in s["ports"]:
                rd = "0 100 %d %s" % (port, name)
                z.write("_%s._%s.%s %d IN SRV %s\n" % (pname, proto.lower(), name, TTL, rd))
                z.write("%s %d IN SRV %s\n" % (name, TTL, rd))
            continue
        weight = max(1, 100 // len(s["eps"]))
        for addr, host in s["eps"]:
            hname = "%s.%s" % (host, name)
            z.write("%s %d IN A %s\n" % (name, TTL, addr))
            z.write("%s %d IN A %s\n" % (hname, TTL, addr))
            r.write("%s %d IN PTR %s\n" % (rev(addr), TTL, hname))
            for pname, _, tport, proto in s["ports"]:
                rd = "0 %d %d %s" % (weight, tport, hname)
                z.write("_%s._%s.%s %d IN SRV %s\n" % (pname, proto.lower(), name, TTL, rd))
                z.write("%s %d IN SRV %s\n" % (name, TTL, rd))
    z.close()
    r.close()


def write_queries(c, out, n, seed):
    """The mix a cluster's pods send (ndots:5 and the search list
    <ns>.svc.<zone> svc.<zone> <zone>): mostly A for Services that exist, their
    AAAA (NODATA: the cluster is IPv4), NXDOMAIN from the search list tried on
    outside names and on <svc>.<ns> short names, SRV, headless, ExternalName, PTR."""
    rnd = random.Random(seed)
    cip = [s for s in c.services if s["kind"] == "clusterip"]
    headless = [s for s in c.services if s["kind"] == "headless"]
    external = [s for s in c.services if s["kind"] == "external"] or cip
    ns = c.namespaces
    def pick(pool):
        return rnd.choice(pool)

    def search_ns(_):  # an outside name tried with the first search suffix
        return "%s.%s.svc.%s." % (pick(EXTERNAL), pick(ns), ZONE), pick(["A", "AAAA"])

    def search_svc(_):
        return "%s.svc.%s." % (pick(EXTERNAL), ZONE), pick(["A", "AAAA"])

    def search_zone(_):
        return "%s.%s." % (pick(EXTERNAL), ZONE), pick(["A", "AAAA"])

    def search_short(s):  # "<svc>.<ns>" tried with "<my-ns>.svc.<zone>" first
        return "%s.%s.%s.svc.%s." % (s["name"], s["ns"], pick(ns), ZONE), "A"

    def missing(_):
        return "%s-%d.%s.svc.%s." % (pick(WORDS), rnd.randrange(10**6), pick(ns), ZONE), "A"

    def srv(s):
        p = s["ports"][0]
        return "_%s._%s.%s" % (p[0], p[3].lower(), fqdn(s)), "SRV"

    def host(s):
        return ("%s.%s" % (pick(s["eps"])[1], fqdn(s)) if s["eps"] and s["eps"][0][1]
                else fqdn(s)), "A"

    def ptr(s):
        return rev(pick(s["eps"])[0] if s["kind"] == "headless" else s["ip"]), "PTR"

    hl = headless or cip
    mix = [  # (share in %, pool, generator)
        (45, cip, lambda s: (fqdn(s), "A")),
        (15, cip, lambda s: (fqdn(s), "AAAA")),
        (7, cip, search_ns),
        (5, cip, search_svc),
        (5, cip, search_zone),
        (5, cip, search_short),
        (3, cip, missing),
        (4, cip, srv),
        (1, hl, srv),
        (2, hl, lambda s: (fqdn(s), "A")),
        (2, hl, host),
        (3, external, lambda s: (fqdn(s), "A")),
        (2, cip, ptr),
        (1, hl, ptr),
    ]
    assert sum(m[0] for m in mix) == 100
    table = [(pool, g) for share, pool, g in mix for _ in range(share)]
    with open(os.path.join(out, "queries.txt"), "w") as f:
        for _ in range(n):
            pool, g = pick(table)
            name, qtype = g(pick(pool))
            f.write("%s %s\n" % (name, qtype))

    # Samples: two of each kind of answer, plus the apex and the empty non-terminals.
    s_cip, s_head, s_ext = cip[2:4] + cip[-1:], headless[:2], external[:2]
    samples = [(ZONE + ".", "SOA"), (ZONE + ".", "NS"), ("dns-version.%s." % ZONE, "TXT"),
               ("ns.dns.%s." % ZONE, "A"), ("svc.%s." % ZONE, "A"),
               ("%s.svc.%s." % (ns[0], ZONE), "A"), ("in-addr.arpa.", "SOA"),
               ("_dns._udp.kube-dns.kube-system.svc.%s." % ZONE, "SRV"),
               ("kube-dns.kube-system.svc.%s." % ZONE, "SRV"),
               ("google.com.%s.svc.%s." % (ns[0], ZONE), "A"),
               ("google.com.svc.%s." % ZONE, "AAAA"), ("google.com.%s." % ZONE, "A"),
               ("nothere.%s.svc.%s." % (ns[0], ZONE), "A"), (rev(SERVICE_NET + 10), "PTR")]
    for s in s_cip:
        samples += [(fqdn(s), "A"), (fqdn(s), "AAAA"), (fqdn(s), "SRV"), (fqdn(s), "TXT"),
                    ("_http._tcp." + fqdn(s), "SRV"), (rev(s["ip"]), "PTR"),
                    (fqdn(s).upper(), "A")]
    for s in s_head:
        samples += [(fqdn(s), "A"), ("%s.%s" % (s["eps"][0][1], fqdn(s)), "A"),
                    ("_postgres._tcp." + fqdn(s), "SRV"), (rev(s["eps"][1][0]), "PTR")]
    for s in s_ext:
        samples += [(fqdn(s), "A"), (fqdn(s), "CNAME")]
    with open(os.path.join(out, "samples.txt"), "w") as f:
        for name, qtype in samples:
            f.write("%s %s\n" % (name, qtype))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--out", required=True)
    ap.add_argument("--queries", type=int, default=100000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-zones", action="store_true", help="manifests only")
    a = ap.parse_args()
    if a.services < 20:
        sys.exit("gen.py: --services must be at least 20")
    c = Cluster(a.services)
    os.makedirs(a.out, exist_ok=True)
    write_manifests(c, a.out)
    if not a.no_zones:
        write_zones(c, a.out)
        write_queries(c, a.out, a.queries, a.seed)
    last = c.services[-1]
    if last["kind"] == "external":
        answer = last["external"] + "."
    else:
        answer = str(last["ip"] if last["kind"] == "clusterip" else last["eps"][0][0])
    meta = {"services": len(c.services), "endpoints": c.n_endpoints,
            "namespaces": len(c.namespaces) + 2,
            "ready_name": fqdn(last), "ready_type": "CNAME" if last["kind"] == "external" else "A",
            "ready_answer": answer}
    with open(os.path.join(a.out, "meta.json"), "w") as f:
        json.dump(meta, f)
    print("gen.py: %d Services (%d endpoints) in %d namespaces -> %s" % (
        meta["services"], meta["endpoints"], meta["namespaces"], a.out))


if __name__ == "__main__":
    main()
