"""The article's example exactly as written (tests/fixtures/article: a Service
without namespace or clusterIP, a Pod with only labels and a containerPort),
and the command-line options (--zone, --ttl, several --listen, --threads,
--log-level, --service-cidr, --pod-cidr, bad arguments)."""

import ipaddress
import os
import re
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import svcdns_testlib as t  # noqa: E402
from svcdns_testlib import Case, SOA  # noqa: E402

NAME = "my-service.default.svc.cluster.local."
CH_RE = re.compile(r"^- 80/TCP -> 8080 nodePort=- endpoints=1/1 ready: "
                   r"(10\.244\.\d{1,3}\.\d{1,3}):8080$")


def in_net(ip, net):
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(net)
    except ValueError:
        return False


def the_a(r, owner=NAME, ttl=5):
    """The one address of an A answer, or raises with what is wrong."""
    if r.rcode != "NOERROR":
        raise AssertionError("rcode %s" % r.rcode)
    if "aa" not in r.flags:
        raise AssertionError("AA clear")
    if len(r.answer) != 1:
        raise AssertionError("%d answers, want 1: %s" % (len(r.answer), r.answer))
    parts = r.answer[0].split()
    if parts[0] != owner or parts[1] != str(ttl) or parts[2:4] != ["IN", "A"]:
        raise AssertionError("answer %s, want %s %d IN A <ip>" % (r.answer[0], owner, ttl))
    return parts[4]


def article(tally):
    srv = t.Server(os.path.join(t.FIXTURES, "article")).start()
    port = srv.port

    ips = {}
    for via, fn in (("dnspython", lambda: t.run_dnspython(port, NAME, "A")),
                    ("dig", lambda: t.run_dig(port, NAME, "A")),
                    ("kdig", lambda: t.run_kdig(port, NAME, "A", opts=("+tcp",)))):
        def one(fn=fn, via=via):
            ip = the_a(fn())
            ips[via] = ip
            if not in_net(ip, "10.96.0.0/12"):
                return "ClusterIP %s not in 10.96.0.0/12" % ip
            return ""
        tally.run("[%s] my-service A: one address in 10.96.0.0/12" % via, one)
    tally.check(len(set(ips.values())) == 1 and len(ips) == 3,
                "the allocated ClusterIP is the same for every query", str(ips))
    cip = next(iter(ips.values()), None)

    pod_ip = [None]
    for via, fn in (("dnspython", lambda: t.run_dnspython(port, NAME, "TXT", "CH")),
                    ("dig", lambda: t.run_dig(port, NAME, "TXT", "CH")),
                    ("kdig", lambda: t.run_kdig(port, NAME, "TXT", "CH"))):
        def one(fn=fn):
            r = fn()
            texts = ["".join(s) for s in r.txt_strings]
            if r.rcode != "NOERROR" or len(texts) != 1:
                return "rcode %s, TXT %s" % (r.rcode, texts)
            m = CH_RE.match(texts[0])
            if not m:
                return ("TXT %r, want '- 80/TCP -> 8080 nodePort=- endpoints=1/1 ready: "
                        "10.244.x.y:8080'" % texts[0])
            if not in_net(m.group(1), "10.244.0.0/16"):
                return "pod IP %s not in 10.244.0.0/16" % m.group(1)
            pod_ip[0] = m.group(1)
            return ""
        tally.run("[%s] CH TXT my-service: the port mapping" % via, one)

    def short_form():
        d = []
        for via, r in (("dig", t.run_dig(port, "my-service.default.svc", "A")),
                       ("kdig", t.run_kdig(port, "my-service.default.svc", "A"))):
            try:
                ip = the_a(r, owner="my-service.default.svc.")
            except AssertionError as e:
                d.append("[%s] %s" % (via, e))
                continue
            if ip != cip:
                d.append("[%s] short form answers %s, full name %s" % (via, ip, cip))
        return d
    tally.run("dig my-service.default.svc: same address, authoritative", short_form)

    if cip:
        t.run_table(tally, port, [
            Case(t.rev(cip), "PTR", answer=["%s 5 IN PTR %s" % (t.rev(cip), NAME)], ns=[],
                 extra=[], note="allocated ClusterIP")], ("dnspython-udp", "dig-udp"))
    if pod_ip[0]:
        dashed = pod_ip[0].replace(".", "-") + ".default.pod.cluster.local."
        t.run_table(tally, port, [
            Case(dashed, "A", answer=["%s 5 IN A %s" % (dashed, pod_ip[0])], ns=[], extra=[],
                 note="the Pod's allocated IP")], ("dnspython-udp", "kdig-tcp"))
    t.run_table(tally, port, [
        Case("cluster.local.", "NS", answer=["cluster.local. 5 IN NS ns.dns.cluster.local."],
             ns=[], extra=["ns.dns.cluster.local. 5 IN A 127.0.0.1"],
             note="no kube-dns: glue is the first --listen address"),
        Case("default.svc.cluster.local.", "A", answer=[], ns=[SOA], extra=[]),
        Case("_http._tcp." + NAME, "SRV", rcode="NXDOMAIN", answer=[], ns=[SOA], extra=[],
             note="unnamed port: no SRV"),
        Case(NAME, "AAAA", answer=[], ns=[SOA], extra=[]),
    ], ("dnspython-udp", "dig-udp", "kdig-tcp"))


def options(tally):
    # another zone, TTL, service/pod CIDRs, two listeners, threads, log level
    srv = t.Server(os.path.join(t.FIXTURES, "article"), listen_extra=1, zone="example.local.",
                   args=["--zone", "example.local", "--ttl", "30", "--threads", "3",
                         "--service-cidr", "10.100.0.0/16", "--pod-cidr", "10.200.0.0/16",
                         "--log-level", "debug"]).start()
    name = "my-service.default.svc.example.local."

    for port in [srv.port] + srv.extra_ports:
        def one(port=port):
            ip = the_a(t.run_dig(port, name, "A"), owner=name, ttl=30)
            return "" if in_net(ip, "10.100.0.0/16") else \
                "ClusterIP %s not in --service-cidr 10.100.0.0/16" % ip
        tally.run("--zone example.local --ttl 30 --service-cidr: answer on port %d" % port, one)

    def pod_cidr():
        r = t.run_dnspython(srv.port, name, "TXT", "CH")
        texts = ["".join(s) for s in r.txt_strings]
        m = re.search(r"ready: (\S+):8080", texts[0]) if texts else None
        if not m or not in_net(m.group(1), "10.200.0.0/16"):
            return "CH TXT %s: pod IP not in --pod-cidr 10.200.0.0/16" % texts
        return ""
    tally.run("--pod-cidr: the Pod's IP comes from it", pod_cidr)

    soa = "example.local. 30 IN SOA ns.dns.example.local. hostmaster.example.local. * 7200 1800 86400 *"
    t.run_table(tally, srv.port, [
        Case("dns-version.example.local.", "TXT",
             answer=['dns-version.example.local. 30 IN TXT "1.1.0"'], ns=[], extra=[]),
        Case("nope.default.svc.example.local.", "A", rcode="NXDOMAIN", answer=[], ns=[soa],
             extra=[]),
        Case("example.local.", "NS", answer=["example.local. 30 IN NS ns.dns.example.local."],
             ns=[], extra=["ns.dns.example.local. 30 IN A 127.0.0.1"]),
        Case(NAME, "A", rcode="REFUSED", answer=[], ns=[], extra=[], aa=False,
             note="cluster.local is not served with --zone example.local"),
    ], ("dnspython-udp", "kdig-tcp"))
    tally.check(srv.stderr_text().strip() != "", "--log-level debug logs something")

    def version():
        p = subprocess.run([t.BIN, "--version"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
        out = (p.stdout + p.stderr).decode("utf-8", "replace")
        if p.returncode != 0 or "svcdns" not in out:
            return "exit %d, output %r" % (p.returncode, out[:200])
        return ""
    tally.run("--version prints the name and exits 0", version)

    idle_srv = t.Server(os.path.join(t.FIXTURES, "article"),
                        args=["--tcp-idle-timeout", "300"]).start()

    def idle_closed():
        s = socket.create_connection(("127.0.0.1", idle_srv.port), timeout=5)
        try:
            w = t.make_query(NAME, "A", edns=False).to_wire()
            s.sendall(struct.pack("!H", len(w)) + w)
            (n,) = struct.unpack("!H", t.recv_exact(s, 2))
            t.recv_exact(s, n)
            t0 = time.monotonic()
            try:
                data = s.recv(10)
            except socket.timeout:
                return "idle connection still open after 5 s (--tcp-idle-timeout 300)"
            except ConnectionResetError:
                data = b""
            dt = time.monotonic() - t0
            print("# idle TCP connection closed after %.2f s" % dt, flush=True)
            if data:
                return "unexpected data %r" % data
            if dt < 0.1:
                return "closed after %.2f s, before the 300 ms idle timeout" % dt
            return ""
        finally:
            s.close()
    tally.run("--tcp-idle-timeout 300: an idle TCP connection is closed", idle_closed)
    tally.server_stopped(idle_srv, "server with --tcp-idle-timeout exits cleanly")

    # bad command lines: refused at once with a message, never served
    for args, why in ((["--manifests", os.path.join(t.FIXTURES, "article"), "--bogus"],
                       "unknown option"),
                      (["--manifests", os.path.join(t.FIXTURES, "article"),
                        "--listen", "127.0.0.1:99999"], "port out of range"),
                      (["--manifests", os.path.join(t.FIXTURES, "article"),
                        "--listen", "127.0.0.1:%d" % t.free_port(), "--ttl", "abc"],
                       "TTL not a number"),
                      (["--manifests", "/nonexistent/dir/for/svcdns",
                        "--listen", "127.0.0.1:%d" % t.free_port()], "missing manifest dir"),
                      (["--manifests", os.path.join(t.FIXTURES, "article"),
                        "--listen", "127.0.0.1:%d" % t.free_port(),
                        "--zone-file", "example.org=/nonexistent.zone"], "missing zone file")):
        def bad(args=args):
            try:
                p = subprocess.run([t.BIN] + args, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
            except subprocess.TimeoutExpired:
                return "still running after 10 s (killed)"
            err = p.stderr.decode("utf-8", "replace")
            d = []
            if p.returncode == 0:
                d.append("exit status 0, want non-zero")
            if not err.strip():
                d.append("nothing on stderr")
            for marker in t.SANITIZER_MARKERS:
                if marker in err:
                    d.append("stderr contains %r" % marker)
            return d
        tally.run("bad command line (%s) -> exits non-zero with a message" % why, bad)


def body(tally):
    article(tally)
    options(tally)


if __name__ == "__main__":
    t.main_guard(t.Tally("test_article"), body)
