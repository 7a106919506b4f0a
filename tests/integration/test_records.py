"""Every record kind of the Kubernetes DNS spec (1.1.0), against the fixture
cluster in tests/fixtures/cluster, asked three ways: dnspython over UDP with
EDNS, dig over UDP (as a person runs it: RD set, EDNS + cookie) and kdig over
TCP (no EDNS, RD clear)."""

import ipaddress
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import svcdns_testlib as t  # noqa: E402
from svcdns_testlib import Case, SOA, rev  # noqa: E402

D = "default.svc.cluster.local."
NODATA = dict(answer=[], ns=[SOA], extra=[])
NX = dict(rcode="NXDOMAIN", answer=[], ns=[SOA], extra=[])
# A name whose endpoint is not ready yet: the zone's SOA with TTL and MINIMUM
# --not-ready-ttl, 0 (test_peer_ready.py checks the rest).
NX_SOON = dict(rcode="NXDOMAIN", answer=[], extra=[],
               ns=["cluster.local. 0 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. * "
                   "7200 1800 86400 0"])
# The SOA of a reverse zone: owner and contents are not fixed by the spec.
REV_SOA = "* * IN SOA * * * * * * *"
SVC_SOA = "svc. 5 IN SOA * * * * * * *"

LONG_NS = "ns-" + "a" * 60
LONG_SVC = "svc-%s.%s.svc.cluster.local." % ("b" * 59, LONG_NS)
LONG_HOST = "host-%s.%s" % ("c" * 58, LONG_SVC)


def a(name, *ips):
    return ["%s 5 IN A %s" % (name, ip) for ip in ips]


def aaaa(name, *ips):
    return ["%s 5 IN AAAA %s" % (name, ip) for ip in ips]


def srv(name, port, *targets, weight="100"):
    return ["%s 5 IN SRV 0 %s %d %s" % (name, weight, port, tg) for tg in targets]


def ch(name, *lines):
    return ['%s * CH TXT "%s"' % (name, l) for l in lines]


CASES = [
    # ---- zone apex and schema version
    Case("dns-version.cluster.local.", "TXT",
         answer=['dns-version.cluster.local. 5 IN TXT "1.1.0"'], ns=[], extra=[]),
    Case("cluster.local.", "SOA", answer=[SOA], ns=None, extra=None),
    Case("cluster.local.", "NS", answer=["cluster.local. 5 IN NS ns.dns.cluster.local."],
         ns=[], extra=a("ns.dns.cluster.local.", "10.96.0.10"),
         note="glue = kube-dns ClusterIP"),
    Case("cluster.local.", "A", **NODATA),
    Case("svc.cluster.local.", "A", **NODATA),
    Case("pod.cluster.local.", "A", **NODATA),
    Case("default.svc.cluster.local.", "A", **NODATA),
    Case("kube-system.svc.cluster.local.", "SRV", **NODATA),
    Case("empty.svc.cluster.local.", "A", note="Namespace object without services", **NODATA),
    Case("nope.svc.cluster.local.", "A", note="unknown namespace", **NX),
    Case("nope.default.svc.cluster.local.", "A", **NX),
    Case("google.com.default.svc.cluster.local.", "A", **NX),
    Case("foo.cluster.local.", "A", **NX),
    Case("x.web.default.svc.cluster.local.", "A", note="below a ClusterIP service", **NX),
    Case("web.nope.svc.cluster.local.", "A", **NX),

    # ---- ClusterIP services
    Case("web." + D, "A", answer=a("web." + D, "10.96.1.10"), ns=[], extra=[]),
    Case("web." + D, "AAAA", note="IPv4-only service", **NODATA),
    Case("web." + D, "TXT", **NODATA),
    Case("web." + D, "MX", **NODATA),
    Case("web.prod.svc.cluster.local.", "A",
         answer=a("web.prod.svc.cluster.local.", "10.96.3.10"), ns=[], extra=[]),
    Case("api." + D, "A", answer=a("api." + D, "10.96.1.20"), ns=[], extra=[]),
    Case("kube-dns.kube-system.svc.cluster.local.", "A",
         answer=a("kube-dns.kube-system.svc.cluster.local.", "10.96.0.10"), ns=[], extra=[]),
    Case("dual." + D, "A", answer=a("dual." + D, "10.96.2.20"), ns=[], extra=[]),
    Case("dual." + D, "AAAA", answer=aaaa("dual." + D, "fd00:10:96::20"), ns=[], extra=[]),
    Case("v6only." + D, "AAAA", answer=aaaa("v6only." + D, "fd00:10:96::30"), ns=[], extra=[]),
    Case("v6only." + D, "A", note="IPv6-only service", **NODATA),
    Case("single." + D, "A", answer=a("single." + D, "10.96.2.40"), ns=[], extra=[]),

    # ---- SRV of ClusterIP services
    Case("_http._tcp.web." + D, "SRV", answer=srv("_http._tcp.web." + D, 80, "web." + D),
         ns=[], extra=a("web." + D, "10.96.1.10")),
    Case("_https._tcp.web." + D, "SRV", answer=srv("_https._tcp.web." + D, 443, "web." + D),
         ns=[], extra=a("web." + D, "10.96.1.10")),
    Case("_http._tcp.api." + D, "SRV", answer=srv("_http._tcp.api." + D, 80, "api." + D),
         ns=[], extra=a("api." + D, "10.96.1.20")),
    Case("_dns._udp.kube-dns.kube-system.svc.cluster.local.", "SRV",
         answer=srv("_dns._udp.kube-dns.kube-system.svc.cluster.local.", 53,
                    "kube-dns.kube-system.svc.cluster.local."),
         ns=[], extra=a("kube-dns.kube-system.svc.cluster.local.", "10.96.0.10")),
    Case("_dns-tcp._tcp.kube-dns.kube-system.svc.cluster.local.", "SRV",
         answer=srv("_dns-tcp._tcp.kube-dns.kube-system.svc.cluster.local.", 53,
                    "kube-dns.kube-system.svc.cluster.local."),
         ns=[], extra=a("kube-dns.kube-system.svc.cluster.local.", "10.96.0.10")),
    Case("_dns._udp.resolver." + D, "SRV",
         answer=srv("_dns._udp.resolver." + D, 53, "resolver." + D),
         ns=[], extra=a("resolver." + D, "10.96.2.50")),
    Case("_assoc._sctp.resolver." + D, "SRV",
         answer=srv("_assoc._sctp.resolver." + D, 9999, "resolver." + D),
         ns=[], extra=a("resolver." + D, "10.96.2.50")),
    Case("_dns._tcp.resolver." + D, "SRV", note="port 'dns' is UDP only", **NX),
    Case("_http._tcp.dual." + D, "SRV", answer=srv("_http._tcp.dual." + D, 80, "dual." + D),
         ns=[], extra=a("dual." + D, "10.96.2.20") + aaaa("dual." + D, "fd00:10:96::20")),
    Case("_http._tcp.single." + D, "SRV", note="unnamed port: no SRV", **NX),
    Case("_http._udp.web." + D, "SRV", **NX),
    Case("_tcp.web." + D, "SRV", note="empty non-terminal", **NODATA),
    Case("_http._tcp.web." + D, "A", note="SRV name, other type", **NODATA),

    # ---- headless services
    Case("db." + D, "A", answer=a("db." + D, "10.244.2.1", "10.244.2.2", "10.244.2.3"),
         ns=[], extra=[]),
    Case("db." + D, "AAAA", **NODATA),
    Case("db-0.db." + D, "A", answer=a("db-0.db." + D, "10.244.2.1"), ns=[], extra=[]),
    Case("db-1.db." + D, "A", answer=a("db-1.db." + D, "10.244.2.2"), ns=[], extra=[]),
    Case("10-244-2-3.db." + D, "A", answer=a("10-244-2-3.db." + D, "10.244.2.3"),
         ns=[], extra=[], note="endpoint without hostname: dashed IP"),
    Case("db-3.db." + D, "A", note="hostname of a not-ready endpoint", **NX_SOON),
    Case("_mysql._tcp.db." + D, "SRV",
         answer=srv("_mysql._tcp.db." + D, 3306, "db-0.db." + D, "db-1.db." + D,
                    "10-244-2-3.db." + D, weight="*"),
         ns=[], extra=a("db-0.db." + D, "10.244.2.1") + a("db-1.db." + D, "10.244.2.2")
         + a("10-244-2-3.db." + D, "10.244.2.3")),
    Case("stateful." + D, "A",
         answer=a("stateful." + D, "10.244.3.1", "10.244.3.2", "10.244.3.3"), ns=[], extra=[]),
    Case("sts-0.stateful." + D, "A", answer=a("sts-0.stateful." + D, "10.244.3.1"),
         ns=[], extra=[], note="Pod spec.hostname + subdomain"),
    Case("sts-1.stateful." + D, "A", answer=a("sts-1.stateful." + D, "10.244.3.2"),
         ns=[], extra=[]),
    Case("10-244-3-3.stateful." + D, "A", answer=a("10-244-3-3.stateful." + D, "10.244.3.3"),
         ns=[], extra=[], note="subdomain names another service"),
    Case("odd.stateful." + D, "A", note="hostname whose subdomain is another service", **NX),
    Case("_peer._tcp.stateful." + D, "SRV",
         answer=srv("_peer._tcp.stateful." + D, 2380, "sts-0.stateful." + D,
                    "sts-1.stateful." + D, "10-244-3-3.stateful." + D, weight="*"),
         ns=[], extra=a("sts-0.stateful." + D, "10.244.3.1")
         + a("sts-1.stateful." + D, "10.244.3.2") + a("10-244-3-3.stateful." + D, "10.244.3.3")),
    Case("notready." + D, "A", note="headless, no ready endpoint", **NX_SOON),
    Case("nr-0.notready." + D, "A", **NX_SOON),
    Case("publish." + D, "A", answer=a("publish." + D, "10.244.6.1", "10.244.6.2"),
         ns=[], extra=[], note="publishNotReadyAddresses"),
    Case("pub-1.publish." + D, "A", answer=a("pub-1.publish." + D, "10.244.6.2"),
         ns=[], extra=[]),
    Case("lonely." + D, "A", note="headless, no endpoint at all", **NX),

    # ---- more.yaml: IPv6 headless, slices with different ports, LoadBalancer,
    # two-pair selector
    Case("db6." + D, "AAAA", answer=aaaa("db6." + D, "fd00:244::1", "fd00:244::2"), ns=[],
         extra=[], note="IPv6 EndpointSlice"),
    Case("db6." + D, "A", **NODATA),
    Case("a.db6." + D, "AAAA", answer=aaaa("a.db6." + D, "fd00:244::1"), ns=[], extra=[]),
    Case("_peer._tcp.db6." + D, "SRV",
         answer=srv("_peer._tcp.db6." + D, 7000, "a.db6." + D, "b.db6." + D, weight="*"),
         ns=[], extra=aaaa("a.db6." + D, "fd00:244::1") + aaaa("b.db6." + D, "fd00:244::2")),
    Case("mp." + D, "A", answer=a("mp." + D, "10.244.10.1", "10.244.10.2"), ns=[], extra=[],
         note="two EndpointSlices"),
    Case("_peer._tcp.mp." + D, "SRV",
         answer=srv("_peer._tcp.mp." + D, 7001, "m-0.mp." + D, weight="*")
         + srv("_peer._tcp.mp." + D, 7002, "m-1.mp." + D, weight="*"),
         ns=[], extra=a("m-0.mp." + D, "10.244.10.1") + a("m-1.mp." + D, "10.244.10.2"),
         note="SRV port = each endpoint's port"),
    Case("lb." + D, "A", answer=a("lb." + D, "10.96.2.60"), ns=[], extra=[]),
    Case("np." + D, "A", answer=a("np." + D, "10.96.2.70"), ns=[], extra=[]),
    Case("multisel." + D, "A", answer=a("multisel." + D, "10.96.2.80"), ns=[], extra=[]),

    # ---- edge.yaml: namespace "svc", service "pod"; the longest names
    Case("pod.svc.svc.cluster.local.", "A", answer=a("pod.svc.svc.cluster.local.", "10.96.4.1"),
         ns=[], extra=[], note='namespace "svc", service "pod"'),
    Case("pod.svc.svc.", "A", answer=a("pod.svc.svc.", "10.96.4.1"), ns=[], extra=[]),
    Case("svc.svc.cluster.local.", "A", note='namespace "svc"', **NODATA),
    Case(LONG_SVC, "A", answer=a(LONG_SVC, "10.244.12.1"), ns=[], extra=[],
         note="63-character labels"),
    Case(LONG_HOST, "A", answer=a(LONG_HOST, "10.244.12.1"), ns=[], extra=[]),
    Case("_abcdefghijklmno._udp." + LONG_SVC, "SRV",
         answer=srv("_abcdefghijklmno._udp." + LONG_SVC, 65535, LONG_HOST, weight="*"),
         ns=[], extra=a(LONG_HOST, "10.244.12.1"), note="15-character port name, port 65535"),
    Case(rev("10.244.12.1"), "PTR", answer=["%s 5 IN PTR %s" % (rev("10.244.12.1"), LONG_HOST)],
         ns=[], extra=[]),

    Case("ghost." + D, "A", note="EndpointSlice without its Service", **NX),
    Case("g-0.ghost." + D, "A", **NX),
    Case("noports." + D, "A", answer=a("noports." + D, "10.244.13.1", "10.244.13.2",
                                       "10.244.13.3"), ns=[], extra=[],
         note="headless without ports; an address in two slices answered once"),
    Case("10-244-13-2.noports." + D, "A", answer=a("10-244-13-2.noports." + D, "10.244.13.2"),
         ns=[], extra=[]),
    Case("ext2." + D, "A", answer=["ext2.%s 5 IN CNAME api.example.com." % D], ns=[], extra=[],
         note="externalName with a trailing dot"),

    # ---- exported.yaml: kubectl output with server-set fields and a Deployment
    Case("shop." + D, "A", answer=a("shop." + D, "10.96.5.100"), ns=[], extra=[]),
    Case("_http._tcp.shop." + D, "SRV", answer=srv("_http._tcp.shop." + D, 8080, "shop." + D),
         ns=[], extra=a("shop." + D, "10.96.5.100")),
    Case("shop-api." + D, "A", note="a Deployment is not a Service", **NX),

    # ---- ExternalName
    Case("ext." + D, "A", answer=["ext.%s 5 IN CNAME www.example.net." % D], ns=[], extra=[]),
    Case("ext." + D, "AAAA", answer=["ext.%s 5 IN CNAME www.example.net." % D], ns=[], extra=[]),
    Case("ext." + D, "TXT", answer=["ext.%s 5 IN CNAME www.example.net." % D], ns=[], extra=[]),
    Case("ext." + D, "CNAME", answer=["ext.%s 5 IN CNAME www.example.net." % D], ns=[],
         extra=[]),

    # ---- reverse
    Case(rev("10.96.1.10"), "PTR", answer=["%s 5 IN PTR web.%s" % (rev("10.96.1.10"), D)],
         ns=[], extra=[]),
    Case(rev("10.96.0.10"), "PTR",
         answer=["%s 5 IN PTR kube-dns.kube-system.svc.cluster.local." % rev("10.96.0.10")],
         ns=[], extra=[]),
    Case(rev("10.96.3.10"), "PTR",
         answer=["%s 5 IN PTR web.prod.svc.cluster.local." % rev("10.96.3.10")],
         ns=[], extra=[]),
    Case(rev("fd00:10:96::20"), "PTR",
         answer=["%s 5 IN PTR dual.%s" % (rev("fd00:10:96::20"), D)], ns=[], extra=[]),
    Case(rev("10.96.2.20"), "PTR",
         answer=["%s 5 IN PTR dual.%s" % (rev("10.96.2.20"), D)], ns=[], extra=[]),
    Case(rev("fd00:10:96::30"), "PTR",
         answer=["%s 5 IN PTR v6only.%s" % (rev("fd00:10:96::30"), D)], ns=[], extra=[]),
    Case(rev("10.244.2.1"), "PTR",
         answer=["%s 5 IN PTR db-0.db.%s" % (rev("10.244.2.1"), D)], ns=[], extra=[]),
    Case(rev("10.244.3.1"), "PTR",
         answer=["%s 5 IN PTR sts-0.stateful.%s" % (rev("10.244.3.1"), D)], ns=[], extra=[]),
    Case(rev("10.244.6.2"), "PTR",
         answer=["%s 5 IN PTR pub-1.publish.%s" % (rev("10.244.6.2"), D)], ns=[], extra=[]),
    Case(rev("fd00:244::1"), "PTR",
         answer=["%s 5 IN PTR a.db6.%s" % (rev("fd00:244::1"), D)], ns=[], extra=[]),
    Case(rev("10.244.10.2"), "PTR",
         answer=["%s 5 IN PTR m-1.mp.%s" % (rev("10.244.10.2"), D)], ns=[], extra=[]),
    Case(rev("10.96.99.99"), "PTR", rcode="NXDOMAIN", answer=[], ns=[REV_SOA], extra=[],
         note="unknown address"),
    Case(rev("fd00:10:96::99"), "PTR", rcode="NXDOMAIN", answer=[], ns=[REV_SOA], extra=[],
         note="unknown IPv6 address"),

    # ---- pods
    Case("10-244-1-5.default.pod.cluster.local.", "A",
         answer=a("10-244-1-5.default.pod.cluster.local.", "10.244.1.5"), ns=[], extra=[]),
    Case("1-2-3-4.prod.pod.cluster.local.", "A",
         answer=a("1-2-3-4.prod.pod.cluster.local.", "1.2.3.4"), ns=[], extra=[]),
    Case("10-244-1-5.default.pod.cluster.local.", "AAAA", **NODATA),
    Case("10-244-1.default.pod.cluster.local.", "A", note="three octets", **NX),
    Case("10-244-1-300.default.pod.cluster.local.", "A", note="octet > 255", **NX),

    # ---- the short form <svc>.<ns>.svc.
    Case("web.default.svc.", "A", answer=a("web.default.svc.", "10.96.1.10"), ns=[], extra=[]),
    Case("db.default.svc.", "A",
         answer=a("db.default.svc.", "10.244.2.1", "10.244.2.2", "10.244.2.3"), ns=[], extra=[]),
    Case("_http._tcp.web.default.svc.", "SRV",
         answer=["_http._tcp.web.default.svc. 5 IN SRV 0 100 80 *"], ns=[], extra=None),
    Case("web.default.svc.", "AAAA", answer=[], ns=[SVC_SOA], extra=[]),
    Case("nope.default.svc.", "A", rcode="NXDOMAIN", answer=[], ns=[SVC_SOA], extra=[]),

    # ---- the port mapping in CHAOS class (IN answers above are unaffected)
    Case("web." + D, "TXT", qclass="CH", aa=None, ordered=True, ns=None, extra=None, answer=ch(
        "web." + D,
        "http 80/TCP -> 8080 nodePort=30080 endpoints=2/3 ready: 10.244.1.1:8080 "
        "10.244.1.2:8080 not-ready: 10.244.1.3:8080",
        "https 443/TCP -> 8443 nodePort=30443 endpoints=2/3 ready: 10.244.1.1:8443 "
        "10.244.1.2:8443 not-ready: 10.244.1.3:8443")),
    Case("api." + D, "TXT", qclass="CH", aa=None, ns=None, extra=None, answer=ch(
        "api." + D,
        "http 80/TCP -> web nodePort=- endpoints=2/3 ready: 10.244.4.1:8080 10.244.4.2:9090 "
        "not-ready: 10.244.4.3:8080"), note="named targetPort, per-pod port"),
    Case("db." + D, "TXT", qclass="CH", aa=None, ns=None, extra=None, answer=ch(
        "db." + D,
        "mysql 3306/TCP -> 3306 nodePort=- endpoints=3/4 ready: 10.244.2.1:3306 "
        "10.244.2.2:3306 10.244.2.3:3306 not-ready: 10.244.2.4:3306")),
    Case("stateful." + D, "TXT", qclass="CH", aa=None, ns=None, extra=None, answer=ch(
        "stateful." + D,
        "peer 2380/TCP -> 2380 nodePort=- endpoints=3/3 ready: 10.244.3.1:2380 "
        "10.244.3.2:2380 10.244.3.3:2380")),
    Case("kube-dns.kube-system.svc.cluster.local.", "TXT", qclass="CH", aa=None, ns=None,
         extra=None, answer=ch(
             "kube-dns.kube-system.svc.cluster.local.",
             "dns 53/UDP -> 53 nodePort=- endpoints=0/0",
             "dns-tcp 53/TCP -> 53 nodePort=- endpoints=0/0",
             "metrics 9153/TCP -> 9153 nodePort=- endpoints=0/0")),
    Case("single." + D, "TXT", qclass="CH", aa=None, ns=None, extra=None, answer=ch(
        "single." + D, "- 8080/TCP -> 8080 nodePort=- endpoints=0/0")),
    Case("resolver." + D, "TXT", qclass="CH", aa=None, ns=None, extra=None, answer=ch(
        "resolver." + D,
        "dns 53/UDP -> 5353 nodePort=- endpoints=0/0",
        "dns-tcp 53/TCP -> 5353 nodePort=- endpoints=0/0",
        "assoc 9999/SCTP -> 9999 nodePort=- endpoints=0/0")),
    Case("mp." + D, "TXT", qclass="CH", aa=None, ns=None, extra=None, answer=ch(
        "mp." + D, "peer 7000/TCP -> 7000 nodePort=- endpoints=2/2 ready: 10.244.10.1:7001 "
        "10.244.10.2:7002"), note="per-slice ports"),
    Case("lb." + D, "TXT", qclass="CH", aa=None, ns=None, extra=None, answer=ch(
        "lb." + D, "http 80/TCP -> 8080 nodePort=31000 endpoints=0/0")),
    Case("multisel." + D, "TXT", qclass="CH", aa=None, ns=None, extra=None, answer=ch(
        "multisel." + D, "http 80/TCP -> 8080 nodePort=- endpoints=2/3 ready: "
        "10.244.11.1:8080 10.244.11.4:8080 not-ready: 10.244.11.3:8080"),
        note="two-pair selector; Pending pod not ready; Running without conditions ready"),
    Case("shop." + D, "TXT", qclass="CH", aa=None, ns=None, extra=None, answer=ch(
        "shop." + D, "http 8080/TCP -> 8080 nodePort=- endpoints=1/2 ready: 10.244.14.7:8080 "
        "not-ready: 10.244.14.8:8080"), note="terminating endpoint is not ready"),
    Case("dns-version.cluster.local.", "A", **NODATA),
]


EXPLICIT_IPS = {"10.96.0.10", "10.96.1.10", "10.96.1.20", "10.96.2.20", "10.96.2.40",
                "10.96.2.50", "10.96.2.60", "10.96.2.70", "10.96.2.80", "10.96.3.10"}


def allocated_ip(port):
    r = t.run_dig(port, "alloc." + D, "A")
    if r.rcode != "NOERROR" or len(r.answer) != 1:
        return "alloc A: %s" % r
    ip = r.answer[0].split()[-1]
    if not ipaddress.ip_address(ip) in ipaddress.ip_network("10.96.0.0/12"):
        return "allocated %s not in 10.96.0.0/12" % ip
    if ip in EXPLICIT_IPS:
        return "allocated %s, which another Service holds" % ip
    r = t.run_kdig(port, rev(ip), "PTR")
    if r.answer != ["%s 5 IN PTR alloc.%s" % (rev(ip), D)]:
        return "PTR of the allocated address: %s" % r.answer
    return ""


def allocated_node_port(port):
    r = t.run_dnspython(port, "np." + D, "TXT", "CH")
    texts = ["".join(x) for x in r.txt_strings]
    m = re.match(r"^http 80/TCP -> 8080 nodePort=(\d+) endpoints=0/0$", texts[0]) if texts else None
    if not m:
        return "CH TXT np: %s" % texts
    if not 30000 <= int(m.group(1)) <= 32767:
        return "allocated nodePort %s not in 30000-32767" % m.group(1)
    return ""


def body(tally):
    srv = t.Server(os.path.join(t.FIXTURES, "cluster")).start()
    t.run_table(tally, srv.port, CASES, ("dnspython-udp", "dig-udp", "kdig-tcp"))
    tally.run("allocated ClusterIP (clusterIP: \"\")", allocated_ip, srv.port)
    tally.run("allocated NodePort (type NodePort, no nodePort)", allocated_node_port, srv.port)
    # a few through the other transports too
    some = [c for c in CASES if c.qclass == "IN"][::7]
    t.run_table(tally, srv.port, some, ("dnspython-tcp", "dig-tcp", "kdig-udp"))


if __name__ == "__main__":
    t.main_guard(t.Tally("test_records"), body)
