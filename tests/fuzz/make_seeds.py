#!/usr/bin/python3
"""Writes the generated part of the fuzz seed corpora: DNS queries made with
dnspython (real clients' bytes, plus the hostile shapes the RFCs name), and
copies of the demo and fixture manifests. Hand-written seeds live beside them
in tests/fuzz/corpus/ and are left alone. Rerun after adding a case:

    /usr/bin/python3 tests/fuzz/make_seeds.py
"""
import os
import shutil
import struct

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rdataclass
import dns.rdatatype
import dns.reversename

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")

Z = "cluster.local."
NS63 = "n23456789-123456789-123456789-123456789-123456789-123456789-123"
SVC63 = "s23456789-123456789-123456789-123456789-123456789-123456789-123"

# (file name, qname, qtype, qclass, EDNS payload or None); names and types
# mirror the fixture in fuzz_dns_query.c so that seeds reach real answers.
QUERIES = [
    ("a-clusterip", "web.shop.svc." + Z, "A", "IN", None),
    ("a-clusterip-mixedcase", "WeB.ShOp.SvC.CLUSTER.local.", "A", "IN", None),
    ("aaaa-clusterip-none", "web.shop.svc." + Z, "AAAA", "IN", None),
    ("a-dualstack", "dual.default.svc." + Z, "A", "IN", None),
    ("aaaa-dualstack", "dual.default.svc." + Z, "AAAA", "IN", 1232),
    ("any-dualstack", "dual.default.svc." + Z, "ANY", "IN", None),
    ("srv-named-port", "_http._tcp.web.shop.svc." + Z, "SRV", "IN", None),
    ("srv-udp-port", "_dns._udp.kube-dns.kube-system.svc." + Z, "SRV", "IN", 1232),
    ("srv-service", "web.shop.svc." + Z, "SRV", "IN", None),
    ("srv-nodeport-sctp", "_sip._sctp.frontend.default.svc." + Z, "SRV", "IN", None),
    ("a-headless", "db.shop.svc." + Z, "A", "IN", None),
    ("a-headless-hostname", "db-0.db.shop.svc." + Z, "A", "IN", None),
    ("a-headless-dashed", "10-244-2-22.db.shop.svc." + Z, "A", "IN", None),
    ("a-headless-notready", "db-2.db.shop.svc." + Z, "A", "IN", None),
    ("srv-headless", "_postgres._tcp.db.shop.svc." + Z, "SRV", "IN", 4096),
    ("aaaa-headless-v6", "six.v6.default.svc." + Z, "AAAA", "IN", None),
    ("a-headless-none-ready", "lonely.default.svc." + Z, "A", "IN", None),
    ("a-publish-not-ready", "pnr.default.svc." + Z, "A", "IN", None),
    ("a-externalname", "payments.shop.svc." + Z, "A", "IN", None),
    ("cname-externalname", "payments.shop.svc." + Z, "CNAME", "IN", None),
    ("ptr-clusterip", "10.10.96.10.in-addr.arpa.", "PTR", "IN", None),
    ("ptr-headless", "21.2.244.10.in-addr.arpa.", "PTR", "IN", None),
    ("ptr-v6", dns.reversename.from_address("fd00:10:96::50").to_text(), "PTR", "IN", None),
    ("ptr-unknown", "1.1.1.10.in-addr.arpa.", "PTR", "IN", None),
    ("a-pod", "10-244-1-11.shop.pod." + Z, "A", "IN", None),
    ("aaaa-pod-v6", "fd00-10-244--7.default.pod." + Z, "AAAA", "IN", None),
    ("a-pod-bad", "10-244-1-999.shop.pod." + Z, "A", "IN", None),
    ("txt-dns-version", "dns-version." + Z, "TXT", "IN", None),
    ("soa-apex", Z, "SOA", "IN", None),
    ("ns-apex", Z, "NS", "IN", 1232),
    ("nxdomain", "nothere.default.svc." + Z, "A", "IN", None),
    ("nodata-namespace", "shop.svc." + Z, "A", "IN", None),
    ("short-form", "web.shop.svc.", "A", "IN", None),
    ("short-form-srv", "_http._tcp.web.shop.svc.", "SRV", "IN", None),
    ("a-long-names", SVC63 + "." + NS63 + ".svc." + Z, "A", "IN", None),
    ("srv-long-names", "_abcdefghijklmno._tcp." + SVC63 + "." + NS63 + ".svc." + Z, "SRV",
     "IN", 1232),
    ("a-long-hostname", SVC63 + "." + SVC63 + "." + NS63 + ".svc." + Z, "A", "IN", None),
    ("chaos-port-map", "web.shop.svc." + Z, "TXT", "CH", None),
    ("chaos-nodeport", "frontend.default.svc." + Z, "TXT", "CH", 1232),
    ("chaos-version-bind", "version.bind.", "TXT", "CH", None),
    ("chaos-id-server", "id.server.", "TXT", "CH", None),
    ("chaos-hostname-bind", "hostname.bind.", "TXT", "CH", None),
    ("chaos-unknown", "nothing.", "TXT", "CH", None),
    ("class-any", "web.shop.svc." + Z, "A", "ANY", None),
    ("class-hs", "web.shop.svc." + Z, "A", "HS", None),
    ("big-udp-tc", "big.default.svc." + Z, "A", "IN", None),
    ("big-edns-1232", "big.default.svc." + Z, "A", "IN", 1232),
    ("big-edns-600", "big.default.svc." + Z, "A", "IN", 600),
    ("big-srv-edns-4096", "_postgres._tcp.big.default.svc." + Z, "SRV", "IN", 4096),
    ("axfr", Z, "AXFR", "IN", None),
    ("ixfr", Z, "IXFR", "IN", None),
    ("refused-outside", "www.example.com.", "A", "IN", None),
    ("root", ".", "NS", "IN", None),
    # the static zones
    ("static-a-apex", "example.test.", "A", "IN", None),
    ("static-mx", "example.test.", "MX", "IN", 1232),
    ("static-cname-chain", "alias.example.test.", "A", "IN", None),
    ("static-cname-external", "ext.example.test.", "A", "IN", None),
    ("static-cname-dangling", "dangling.example.test.", "A", "IN", None),
    ("static-cname-loop", "loop1.example.test.", "A", "IN", None),
    ("static-wildcard", "anything.wild.example.test.", "A", "IN", None),
    ("static-wildcard-txt", "x.y.wild.example.test.", "TXT", "IN", None),
    ("static-wildcard-cname", "foo.cw.example.test.", "AAAA", "IN", None),
    ("static-delegation", "host.sub.example.test.", "A", "IN", None),
    ("static-srv", "_sip._udp.example.test.", "SRV", "IN", None),
    ("static-txt", "txt.example.test.", "TXT", "IN", None),
    ("static-ent", "b.c.example.test.", "A", "IN", None),
    ("static-ptr", "10.2.0.192.in-addr.arpa.", "PTR", "IN", None),
    ("static-ds", "sub.example.test.", "DS", "IN", None),
]


def query_wire(name, qtype, qclass, payload, **kw):
    q = dns.message.make_query(name, qtype, qclass, use_edns=payload is not None,
                               payload=payload or 0, **kw)
    q.id = 0x5356
    return q.to_wire()


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def hostile():
    """Messages no client library would send: each RFC rule the query path
    enforces, broken once. The header is built by hand where dnspython
    would refuse."""
    a = query_wire("web.shop.svc." + Z, "A", "IN", None)
    e = query_wire("web.shop.svc." + Z, "A", "IN", 1232)
    hdr = lambda qd, an=0, ns=0, ar=0, flags=0x0100: struct.pack(
        ">HHHHHH", 0x5356, flags, qd, an, ns, ar)
    qname = a[12:-4]
    q = a[12:]
    opt = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
    yield "qdcount-0", hdr(0) + q
    yield "qdcount-2", hdr(2) + q + q
    yield "qdcount-lies", hdr(3) + q
    yield "ancount-set", hdr(1, an=1) + q + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x05\x00\x04\x0a\x60\x0a\x0a"
    yield "nscount-set", hdr(1, ns=1) + q
    yield "arcount-lies", hdr(1, ar=2) + q + opt
    yield "compression-in-question", hdr(1) + b"\x03web\xc0\x0c\x00\x01\x00\x01"
    yield "compression-loop", hdr(1) + b"\xc0\x0c\x00\x01\x00\x01"
    yield "pointer-forward", hdr(1) + b"\xc0\x20\x00\x01\x00\x01" + b"\x00" * 20
    yield "pointer-out-of-bounds", hdr(1) + b"\xc3\xff\x00\x01\x00\x01"
    yield "label-type-01", hdr(1) + b"\x41" + b"a" * 1 + b"\x00\x00\x01\x00\x01"
    yield "label-64", hdr(1) + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01"
    yield "label-63", hdr(1) + b"\x3f" + b"a" * 63 + b"\x00\x00\x01\x00\x01"
    long255 = (b"\x3f" + b"a" * 63) * 3 + b"\x3d" + b"b" * 61 + b"\x00"
    yield "name-255", hdr(1) + long255 + b"\x00\x01\x00\x01"
    long256 = (b"\x3f" + b"a" * 63) * 3 + b"\x3e" + b"b" * 62 + b"\x00"
    yield "name-256", hdr(1) + long256 + b"\x00\x01\x00\x01"
    yield "name-runs-past-end", hdr(1) + qname[:-3]
    yield "question-no-type", hdr(1) + qname
    yield "question-half-type", hdr(1) + qname + b"\x00\x01\x00"
    yield "header-only", hdr(1)
    yield "runt", a[:7]
    yield "response-qr", hdr(1, flags=0x8180) + q
    yield "opcode-notify", hdr(1, flags=0x2000) + q
    yield "opcode-status-no-question", hdr(0, flags=0x1000)
    yield "opcode-update", hdr(1, flags=0x2800) + q
    yield "qtype-opt", hdr(1) + qname + b"\x00\x29\x00\x01"
    # OPT: owner, type (2), payload (2), extended rcode, version, flags (2), rdlen (2)
    yield "edns-version-1", e[:-5] + b"\x01" + e[-4:]
    yield "edns-payload-0", e[:-8] + b"\x00\x00" + e[-6:]
    yield "edns-payload-65535", e[:-8] + b"\xff\xff" + e[-6:]
    yield "edns-do", e[:-4] + b"\x80" + e[-3:]
    yield "edns-truncated-opt", e[:-4]
    yield "edns-rdlen-lies", e[:-2] + b"\x00\x10"
    yield "edns-two-opts", e[:11] + b"\x02" + e[12:] + opt
    yield "edns-opt-not-root", hdr(1, ar=1) + q + b"\x01a\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
    yield "edns-cookie", query_wire("web.shop.svc." + Z, "A", "IN", 1232, options=[
        dns.edns.GenericOption(10, b"\x01\x02\x03\x04\x05\x06\x07\x08")])
    yield "additional-compressed-owner", hdr(1, ar=1) + q + b"\xc0\x0c\x00\x10\x00\x01\x00\x00\x00\x00\x00\x00"
    yield "cd-ad-flags", hdr(1, flags=0x0130) + q
    yield "trailing-garbage", a + b"\xde\xad\xbe\xef"


def copy_manifests():
    sources = [os.path.join(ROOT, "contrib", "demo")]
    fx = os.path.join(ROOT, "tests", "fixtures")
    sources += [os.path.join(fx, d) for d in sorted(os.listdir(fx)) if d != "zones"]
    for d in sources:
        for f in sorted(os.listdir(d)):
            if not f.endswith((".yaml", ".yml", ".json")):
                continue
            src = os.path.join(d, f)
            name = os.path.basename(d) + "-" + f
            targets = ["manifest_yaml"]
            targets += ["manifest_json"] if f.endswith(".json") else ["yaml2json"]
            for t in targets:
                os.makedirs(os.path.join(CORPUS, t), exist_ok=True)
                shutil.copyfile(src, os.path.join(CORPUS, t, name))


def main():
    for name, qname, qtype, qclass, payload in QUERIES:
        write("dns_query", name, query_wire(qname, qtype, qclass, payload))
    for name, data in hostile():
        write("dns_query", name, data)
    copy_manifests()


if __name__ == "__main__":
    main()
