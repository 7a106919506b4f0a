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


# ---- tcp_stream: byte 0 = number of split sizes (low 3 bits, also seeding
# the pause pattern), the split sizes, then the stream.

def frame(w):
    return struct.pack(">H", len(w)) + w


def tcp_stream_seeds():
    a = query_wire("web.shop.svc." + Z, "A", "IN", None)
    b = query_wire("db.shop.svc." + Z, "SRV", "IN", 1232)
    big = query_wire("many.default.svc." + Z, "A", "IN", None)
    nx = query_wire("nothere.shop.svc." + Z, "AAAA", "IN", None)
    resp = bytearray(a)
    resp[2] |= 0x80
    yield "three-queries", b"\x00" + frame(a) + frame(b) + frame(nx)
    yield "three-queries-split", b"\x03\x01\x05\x11" + frame(a) + frame(b) + frame(nx)
    yield "pause-every-other", b"\xaa" + frame(a) + frame(b) + frame(a) + frame(b)
    yield "length-zero", b"\x00" + b"\x00\x00" + frame(a)
    yield "length-longer-than-rest", b"\x00" + frame(a) + b"\x01\x00" + a
    yield "prefix-only", b"\x01\x02" + b"\x00"
    yield "big-answer", b"\x02\x40\x07" + frame(big) + frame(big)
    yield "response-closes", b"\x00" + frame(a) + frame(bytes(resp)) + frame(b)
    yield "runt-closes", b"\x00" + frame(a[:7]) + frame(a)
    yield "garbage-message", b"\x00" + frame(b"\x00\x01" + b"\xff" * 30)
    yield "axfr", b"\x00" + frame(query_wire(Z, "AXFR", "IN", None)) + frame(a)
    yield "max-length-prefix", b"\x00" + b"\xff\xff" + a * 4


# ---- watch_stream: byte 0 = resource (low 2 bits: services, endpointslices,
# namespaces) and the number of chunk sizes (bits 2-4); the sizes; the body.

def watch_seeds():
    import json
    import sys
    sys.path.insert(0, os.path.join(ROOT, "tests", "fakeapi"))
    import fakeapi

    def ev(typ, obj):
        return json.dumps({"type": typ, "object": obj}).encode() + b"\n"

    svc = fakeapi.service("web", "shop", "10.96.10.10", ports=(("http", 80, 8080),
                                                              ("metrics", 9110, 9110)))
    svc["metadata"]["resourceVersion"] = "1001"
    svc2 = json.loads(json.dumps(svc))
    svc2["spec"]["clusterIP"] = svc2["spec"]["clusterIPs"][0] = "10.96.10.11"
    svc2["metadata"]["resourceVersion"] = "1002"
    item = json.loads(json.dumps(svc))
    del item["kind"], item["apiVersion"]  # as list items and some events lack them
    sl = fakeapi.slice_("web-abcde", "shop", "web", ["10.244.1.11", "10.244.1.12"],
                        hostnames=["web-0", "web-1"])
    sl["metadata"]["resourceVersion"] = "1003"
    ns = fakeapi.namespace("shop")
    ns["metadata"]["resourceVersion"] = "1004"
    bookmark = {"kind": "Service", "apiVersion": "v1", "metadata": {"resourceVersion": "1010"}}
    gone = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "too old resource version: 900 (1000)", "reason": "Expired",
            "code": 410}
    services = (ev("ADDED", svc) + ev("MODIFIED", svc2) + ev("BOOKMARK", bookmark)
                + ev("ADDED", item) + ev("DELETED", svc2))
    yield "services-added-modified-deleted", b"\x00" + services
    yield "services-chunked", b"\x0c\x01\x10\x40" + services
    yield "endpointslices", b"\x01" + ev("ADDED", sl) + ev("MODIFIED", sl) + ev("DELETED", sl)
    yield "namespaces", b"\x02" + ev("ADDED", ns) + ev("DELETED", ns)
    yield "error-410", b"\x00" + ev("ADDED", svc) + ev("ERROR", gone)
    yield "crlf-lines", b"\x04\x07" + services.replace(b"\n", b"\r\n")
    yield "garbage-lines", (b"\x00<html>502 Bad Gateway</html>\n{\"type\":\"ADDED\",\"object\":"
                            b"\"not an object\"}\n{\"type\":\"NOPE\",\"object\":{}}\n\n\n"
                            + ev("ADDED", svc))
    yield "cut-mid-line", b"\x00" + services[:len(services) // 2]
    yield "line-too-long", b"\x08\x33\x61" + ev("ADDED", svc) + b"x" * 3000 + b"\n" + ev(
        "ADDED", svc2)
    yield "no-name", b"\x00" + ev("ADDED", {"metadata": {"namespace": "shop"}}) + ev(
        "ADDED", {"kind": "Service", "metadata": {"name": "x"}})


# ---- kubeconfig: byte 0 picks the context (fuzz_kubeconfig.c: 0 current,
# 1 test, 2 kind-kind, 3 minikube, 4 gke, 5 "", 6 decoy, 7 default).

KIND = """apiVersion: v1
kind: Config
current-context: kind-kind
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=
    server: https://127.0.0.1:40467
  name: kind-kind
contexts:
- context:
    cluster: kind-kind
    user: kind-kind
  name: kind-kind
users:
- name: kind-kind
  user:
    client-certificate-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUMKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=
    client-key-data: LS0tLS1CRUdJTiBFQyBQUklWQVRFIEtFWS0tLS0tCk1IYwotLS0tLUVORCBFQyBQUklWQVRFIEtFWS0tLS0tCg==
"""

MINIKUBE = """apiVersion: v1
clusters:
- cluster:
    certificate-authority: ca.crt
    extensions:
    - extension:
        last-update: Mon, 01 Jan 2024 00:00:00 UTC
        provider: minikube.sigs.k8s.io
        version: v1.32.0
      name: cluster_info
    server: https://192.168.49.2:8443
  name: minikube
contexts:
- context:
    cluster: minikube
    namespace: default
    user: minikube
  name: minikube
current-context: minikube
kind: Config
preferences: {}
users:
- name: minikube
  user:
    client-certificate: client.crt
    client-key: client.key
"""

GKE = """apiVersion: v1
kind: Config
current-context: gke
clusters:
- name: gke_proj_zone_c
  cluster:
    server: https://34.1.2.3
    certificate-authority-data: aGVsbG8gY2EK
contexts:
- name: gke
  context: {cluster: gke_proj_zone_c, user: gke}
users:
- name: gke
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: gke-gcloud-auth-plugin
      provideClusterInfo: true
"""

TOKENS = """apiVersion: v1
kind: Config
current-context: test
clusters:
- name: c
  cluster:
    server: http://127.0.0.1:8001///
    insecure-skip-tls-verify: true
    proxy-url: http://proxy:3128
- name: decoy-cluster
  cluster: {server: "https://192.0.2.1:6443"}
contexts:
- name: test
  context: {cluster: c, user: file, namespace: kube-system}
- name: decoy
  context: {cluster: decoy-cluster, user: inline}
- name: default
  context: {cluster: c}
users:
- name: file
  user: {tokenFile: token}
- name: inline
  user: {token: abc.def.ghi, tokenFile: empty-token}
"""

BAD = """apiVersion: v1
kind: Config
current-context: test
clusters:
- name: c
  cluster:
    server: https://x
    certificate-authority-data: "not base64!"
    tls-server-name: other
- name: half
  cluster: {server: "https://y", certificate-authority-data: "QUJD="}
contexts:
- {name: test, context: {cluster: c}}
- {name: decoy, context: {cluster: half, user: halfcert}}
- {name: gke, context: {cluster: nowhere}}
- {name: minikube, context: {cluster: half, user: nobody}}
users:
- name: halfcert
  user: {client-certificate: client.crt, username: admin, password: secret}
"""


def kubeconfig_seeds():
    yield "kind", b"\x02" + KIND.encode()
    yield "kind-current", b"\x00" + KIND.encode()
    yield "minikube-relative-paths", b"\x03" + MINIKUBE.encode()
    yield "gke-exec-plugin", b"\x04" + GKE.encode()
    yield "token-file", b"\x01" + TOKENS.encode()
    yield "token-inline-wins", b"\x06" + TOKENS.encode()
    yield "no-user", b"\x07" + TOKENS.encode()
    yield "bad-base64", b"\x01" + BAD.encode()
    yield "half-certificate", b"\x06" + BAD.encode()
    yield "no-cluster", b"\x04" + BAD.encode()
    yield "no-such-user", b"\x03" + BAD.encode()
    yield "empty-context-name", b"\x05" + KIND.encode()
    yield "json", b"\x00" + b'{"kind":"Config","current-context":"a","clusters":[{"name":"a",' \
        b'"cluster":{"server":"https://a"}}],"contexts":[{"name":"a","context":{"cluster":"a"}}]}'
    yield "anchors", b"\x00" + b"""kind: Config
current-context: a
clusters:
- name: a
  cluster: &c {server: "https://a", certificate-authority-data: aGk=}
- name: b
  cluster: *c
contexts:
- name: a
  context: {cluster: b}
"""
    yield "not-a-mapping", b"\x00- just\n- a list\n"
    yield "base64-padding", b"\x00QUJD\nREVG\r\nRw==\n"
    for name in sorted(os.listdir(os.path.join(ROOT, "tests", "fixtures", "kube", "kubeconfig"))):
        path = os.path.join(ROOT, "tests", "fixtures", "kube", "kubeconfig", name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                yield "fixture-" + name, b"\x00" + f.read()


# ---- upstream: a response as it comes back from a resolver.

def upstream_seeds():
    import dns.rrset
    import dns.tsig
    import dns.tsigkeyring

    def reply(qname, qtype, rcode=0, answer=(), authority=(), additional=(), edns=True,
              flags=0, qid=0x4242):
        q = dns.message.make_query(qname, qtype, use_edns=0 if edns else False)
        q.id = qid
        r = dns.message.make_response(q)
        r.set_rcode(rcode)
        r.flags |= flags
        for sec, rrs in ((r.answer, answer), (r.authority, authority),
                         (r.additional, additional)):
            for text in rrs:
                sec.append(dns.rrset.from_text(*text.split(None, 4)))
        return r.to_wire(max_size=65535)

    soa = "example.com. 900 IN SOA ns1.example.com. hostmaster.example.com. 1 7200 900 1209600 300"
    yield "a-compressed", reply("www.example.com.", "A", answer=[
        "www.example.com. 300 IN A 192.0.2.1", "www.example.com. 300 IN A 192.0.2.2"],
        authority=["example.com. 3600 IN NS ns1.example.com."],
        additional=["ns1.example.com. 3600 IN A 192.0.2.53"])
    yield "cname-chain", reply("www.example.com.", "A", answer=[
        "www.example.com. 60 IN CNAME edge.example.net.",
        "edge.example.net. 30 IN CNAME edge.cdn.example.org.",
        "edge.cdn.example.org. 20 IN A 198.51.100.7"])
    yield "nxdomain-soa", reply("nothere.example.com.", "A", rcode=3, authority=[soa])
    yield "nodata-soa", reply("www.example.com.", "AAAA", authority=[soa])
    yield "nodata-no-soa", reply("www.example.com.", "AAAA", edns=False)
    yield "servfail", reply("www.example.com.", "A", rcode=2)
    yield "truncated", reply("big.example.com.", "TXT", flags=dns.flags.TC)
    yield "mixed-case-echo", reply("WwW.ExAmPlE.CoM.", "A", answer=[
        "WwW.ExAmPlE.CoM. 300 IN A 192.0.2.1"])
    yield "mx-srv-names", reply("example.com.", "MX", answer=[
        "example.com. 300 IN MX 10 mail.example.com.",
        "example.com. 300 IN MX 20 mail2.example.net."],
        additional=["mail.example.com. 300 IN A 192.0.2.25",
                    "_sip._udp.example.com. 300 IN SRV 0 5 5060 sip.example.com."])
    yield "aaaa-txt-ptr", reply("1.2.0.192.in-addr.arpa.", "PTR", answer=[
        "1.2.0.192.in-addr.arpa. 86400 IN PTR host.example.com."],
        additional=["host.example.com. 60 IN AAAA 2001:db8::1",
                    "host.example.com. 60 IN TXT \"v=spf1 -all\" \"second\""])
    yield "ttl-top-bit", reply("www.example.com.", "A", answer=[
        "www.example.com. 2147483648 IN A 192.0.2.1"])
    yield "ds-rrsig-ad", reply("example.com.", "DS", flags=dns.flags.AD, answer=[
        "example.com. 3600 IN DS 12345 13 2 " + "ab" * 32])
    yield "many-records", reply("many.example.com.", "A", answer=[
        "many.example.com. 300 IN A 10.0.%d.%d" % (i // 250, i % 250 + 1) for i in range(120)])
    # OPT followed by a TSIG: both cut, only ours goes out
    q = dns.message.make_query("www.example.com.", "A", use_edns=0)
    q.id = 0x4242
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text("www.example.com.", 300, "IN", "A", "192.0.2.1"))
    r.use_tsig(dns.tsigkeyring.from_text({"k.": "c2VjcmV0c2VjcmV0c2VjcmV0"}), keyname="k.")
    yield "opt-then-tsig", r.to_wire()
    a = bytearray(reply("www.example.com.", "A", answer=["www.example.com. 300 IN A 192.0.2.1"]))
    yield "pointer-forward", bytes(a[:-16]) + b"\xc0\xff" + bytes(a[-14:])
    yield "counts-lie", bytes(a[:6]) + b"\x00\x09" + bytes(a[8:])
    yield "two-questions", bytes(a[:4]) + b"\x00\x02" + bytes(a[6:])
    yield "opcode-notify", bytes(a[:2]) + bytes([a[2] | 0x20]) + bytes(a[3:])


def main():
    for name, qname, qtype, qclass, payload in QUERIES:
        write("dns_query", name, query_wire(qname, qtype, qclass, payload))
    for name, data in hostile():
        write("dns_query", name, data)
    copy_manifests()
    for target, seeds in (("tcp_stream", tcp_stream_seeds), ("watch_stream", watch_seeds),
                          ("kubeconfig", kubeconfig_seeds), ("upstream", upstream_seeds)):
        for name, data in seeds():
            write(target, name, data)


if __name__ == "__main__":
    main()
