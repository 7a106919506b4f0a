"""The kernel datapath (--proxy=nftables) over IPv6, dual-stack and SCTP, with
real traffic, on the namespaces of test_nft_netns.py given IPv6 addresses too:

    client fd00:1::2 --- fd00:1::1 node fd00:2::1 --- fd00:2::2, fd00:2::3 backend
           10.0.1.2      10.0.1.1      10.0.2.1       10.0.2.2, 10.0.2.3

The backend answers TCP and UDP on every address with the address it was
reached on and the address the traffic came from. SCTP: where the kernel has
SCTP sockets, an association is made through the ClusterIP; where it has not
(no sctp module; conntrack and NAT still handle SCTP), the client sends an
SCTP INIT through a raw socket and the backend, with a raw socket, reports the
address and port it arrived at, with a checksum the DNAT rewrote correctly.

Needs what test_nft_netns.py needs; skipped (77) with the reason otherwise.
Every process it starts is stopped by PID; the namespaces go at the end.
"""

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import svcdns_testlib as t  # noqa: E402
import test_nft_netns as base  # noqa: E402
from test_nft_netns import NS, nsrun, run, ends, wait_for  # noqa: E402

CLIENT4, NODE_IN4, NODE_OUT4 = base.CLIENT, base.NODE_IN, base.NODE_OUT
EP41, EP42 = base.EP1, base.EP2
CLIENT6, NODE_IN6, NODE_OUT6 = "fd00:1::2", "fd00:1::1", "fd00:2::1"
EP61, EP62 = "fd00:2::2", "fd00:2::3"
SVC_CIDR6 = "fd00:96::/112"
CIP6_WEB, CIP6_EMPTY, CIP6_SOLO, CIP6_UNUSED = "fd00:96::10", "fd00:96::11", "fd00:96::12", "fd00:96::99"
CIP6_STICKY = "fd00:96::13"
CIP_DUAL4, CIP_DUAL6 = "10.96.77.20", "fd00:96::20"
CIP_SCTP4, CIP_SCTP6 = "10.96.77.21", "fd00:96::21"
# externalIPs of the dual-stack Service, outside every subnet: routed via the node.
EXT4, EXT6 = "10.0.9.20", "fd00:9::20"

BACKEND = r"""
import socket, struct, sys, threading
V4, V6 = sys.argv[1].split(","), sys.argv[2].split(",")
def fam(ip): return socket.AF_INET6 if ":" in ip else socket.AF_INET
def serve_tcp(ip):
    s = socket.socket(fam(ip)); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, 8080)); s.listen(64)
    while True:
        c, peer = s.accept()
        c.sendall(("%s %s\n" % (ip, peer[0])).encode()); c.close()
def serve_udp(ip):
    u = socket.socket(fam(ip), socket.SOCK_DGRAM); u.bind((ip, 5301))
    while True:
        d, a = u.recvfrom(2000); u.sendto(("%s %s" % (ip, a[0])).encode(), a)
def serve_sctp(ip):
    s = socket.socket(fam(ip), socket.SOCK_STREAM, socket.IPPROTO_SCTP)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, 9132)); s.listen(16)
    while True:
        c, peer = s.accept()
        c.sendall(("%s %s\n" % (ip, peer[0])).encode()); c.close()
""" + r"""
def crc32c(data):
    crc = 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 if crc & 1 else 0)
    return crc ^ 0xffffffff
def report(src, dst, pkt):
    sport, dport, vtag, ck = struct.unpack("!HHII", pkt[:12])
    zeroed = pkt[:8] + b"\0\0\0\0" + pkt[12:]
    good = struct.pack("<I", crc32c(zeroed)) == pkt[8:12]
    print("sctp %s %s %d %s" % (dst, src, dport, "crc-ok" if good else "crc-bad"), flush=True)
def raw_sctp4():
    r = socket.socket(socket.AF_INET, socket.SOCK_RAW, 132)
    while True:
        d, a = r.recvfrom(2000)
        hl = (d[0] & 15) * 4
        report(socket.inet_ntop(socket.AF_INET, d[12:16]),
               socket.inet_ntop(socket.AF_INET, d[16:20]), d[hl:])
def raw_sctp6():
    r = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 132)
    r.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
    while True:
        d, anc, _, a = r.recvmsg(2000, 256)
        dst = "?"
        for lvl, typ, data in anc:
            if lvl == socket.IPPROTO_IPV6 and typ == socket.IPV6_PKTINFO:
                dst = socket.inet_ntop(socket.AF_INET6, data[:16])
        report(a[0], dst, d)
try:
    socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP).close()
    sctp = "sockets"
except OSError as e:
    sctp = "raw (%s)" % e.strerror
for ip in V4 + V6:
    threading.Thread(target=serve_tcp, args=(ip,), daemon=True).start()
    threading.Thread(target=serve_udp, args=(ip,), daemon=True).start()
    if sctp == "sockets":
        threading.Thread(target=serve_sctp, args=(ip,), daemon=True).start()
if sctp != "sockets":
    threading.Thread(target=raw_sctp4, daemon=True).start()
    threading.Thread(target=raw_sctp6, daemon=True).start()
print("ready", sctp, flush=True)
threading.Event().wait()
"""

# One exchange per argument, "tcp,IP,PORT[,SOURCE]", "udp,IP,PORT[,SOURCEPORT]"
# or "sctp,IP,PORT"; prints the server's greeting, "sent" for a raw SCTP INIT, or "error: ...".
CLIENT_PROG = r"""
import os, socket, struct, sys
def crc32c(data):
    crc = 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 if crc & 1 else 0)
    return crc ^ 0xffffffff
def sctp_init(fam, ip, port):
    # An INIT chunk: tag, a_rwnd, streams out and in, initial TSN.
    chunk = struct.pack("!BBHIIHHI", 1, 0, 20, 0x5ad1ce, 65536, 1, 1, 1)
    pkt = struct.pack("!HHII", 40000 + os.getpid() % 20000, port, 0, 0) + chunk
    pkt = pkt[:8] + struct.pack("<I", crc32c(pkt)) + pkt[12:]
    r = socket.socket(fam, socket.SOCK_RAW, 132)
    r.sendto(pkt, (ip, 0)); r.close()
    return "sent"
for spec in sys.argv[1:]:
    proto, ip, port = spec.split(",")[:3]; port = int(port)
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    try:
        if proto == "tcp":
            s = socket.socket(fam); s.settimeout(5)
            if spec.count(",") == 3:
                s.bind((spec.split(",")[3], 0))
            s.connect((ip, port))
            print(s.makefile().readline().strip()); s.close()
        elif proto == "udp":
            u = socket.socket(fam, socket.SOCK_DGRAM); u.settimeout(5)
            u.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if spec.count(",") == 3:
                u.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", int(spec.split(",")[3])))
            u.sendto(b"hi", (ip, port)); d, a = u.recvfrom(2000); u.close()
            print("%s via %s,%d" % (d.decode(), a[0], a[1]))
        else:
            try:
                s = socket.socket(fam, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
            except OSError:
                print(sctp_init(fam, ip, port)); continue
            s.settimeout(5); s.connect((ip, port))
            print(s.makefile().readline().strip()); s.close()
    except OSError as e:
        print("error:", e.__class__.__name__)
"""


def exchanges(ns, *specs):
    return nsrun(ns, "/usr/bin/python3", "-c", CLIENT_PROG, *specs, timeout=60)[1].splitlines()


def eslice(svc, eps, ports, family="IPv4", suffix="1"):
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "%s-%s" % (svc, suffix), "namespace": "default",
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": family, "ports": ports,
            "endpoints": [{"addresses": [a], "conditions": {"ready": True, "serving": True,
                                                            "terminating": False}}
                          for a in eps]}


def service(name, cips, ports, typ="ClusterIP"):
    obj = base.service(name, cips[0], ports, typ)
    spec = obj["spec"]
    spec["clusterIPs"] = list(cips)
    spec["ipFamilies"] = ["IPv6" if ":" in a else "IPv4" for a in cips]
    spec["ipFamilyPolicy"] = "RequireDualStack" if len(cips) == 2 else "SingleStack"
    return obj


WEB_PORTS = [{"name": "http", "port": 80, "targetPort": 8080},
             {"name": "dns", "port": 53, "targetPort": 5301, "protocol": "UDP"}]
WEB_SLICE_PORTS = [{"name": "http", "port": 8080, "protocol": "TCP"},
                   {"name": "dns", "port": 5301, "protocol": "UDP"}]
HTTP_PORTS = [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30090}]
HTTP_SLICE_PORTS = [{"name": "http", "port": 8080, "protocol": "TCP"}]
SCTP_PORTS = [{"name": "assoc", "port": 132, "targetPort": 9132, "protocol": "SCTP"}]
SCTP_SLICE_PORTS = [{"name": "assoc", "port": 9132, "protocol": "SCTP"}]


def manifests(web_eps=(EP61, EP62)):
    dual = service("dual", [CIP_DUAL4, CIP_DUAL6], HTTP_PORTS, "NodePort")
    dual["spec"]["externalIPs"] = [EXT4, EXT6]
    sticky = service("sticky6", [CIP6_STICKY], [{"name": "http", "port": 80, "targetPort": 8080}])
    sticky["spec"]["sessionAffinity"] = "ClientIP"
    return [service("web6", [CIP6_WEB], WEB_PORTS),
            eslice("web6", list(web_eps), WEB_SLICE_PORTS, "IPv6"),
            sticky, eslice("sticky6", [EP61, EP62], HTTP_SLICE_PORTS, "IPv6"),
            service("empty6", [CIP6_EMPTY], [{"port": 80, "targetPort": 8080}]),
            service("solo6", [CIP6_SOLO], [{"name": "http", "port": 80, "targetPort": 8080}]),
            eslice("solo6", [EP61], HTTP_SLICE_PORTS, "IPv6"),
            dual,
            eslice("dual", [EP41], HTTP_SLICE_PORTS, "IPv4", "v4"),
            eslice("dual", [EP61], HTTP_SLICE_PORTS, "IPv6", "v6"),
            service("assoc", [CIP_SCTP4, CIP_SCTP6], SCTP_PORTS),
            eslice("assoc", [EP42], SCTP_SLICE_PORTS, "IPv4", "v4"),
            eslice("assoc", [EP62], SCTP_SLICE_PORTS, "IPv6", "v6")]


def write_manifests(d, items):
    tmp = os.path.join(d, ".six.json.tmp")
    with open(tmp, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": items}, f)
    os.rename(tmp, os.path.join(d, "six.json"))


def dig(qname, qtype):
    return nsrun("client", "dig", "@" + NODE_IN4, "-p", "53", "+short", "+time=2",
                 "+tries=1", qname, qtype)[1]


class Backend:
    """The backend's servers; SCTP arrivals it reports go to a queue."""

    def __init__(self):
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", NS["backend"], "/usr/bin/python3", "-c", BACKEND,
             ",".join((EP41, EP42)), ",".join((EP61, EP62))],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        first = self.proc.stdout.readline().strip().split(" ", 1)
        self.ready = first[0] == "ready"
        self.sctp = first[-1]
        self.q = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.q.put(line.strip())

    def sctp_arrival(self, timeout=5.0):
        try:
            return self.q.get(timeout=timeout)
        except queue.Empty:
            return None

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def body(tally):
    d = t.mkdtemp(prefix="svcdns-nft6-")
    write_manifests(d, manifests())
    backend = Backend()
    try:
        if not backend.ready:
            tally.fail("backend", "the backend servers did not start")
            return
        args = ["--proxy=nftables", "--listen", NODE_IN4 + ":53", "--listen",
                "[%s]:53" % NODE_IN6, "--service-cidr", SVC_CIDR6]
        srv = base.NodeServer(d, args=args).start()

        def clusterip6():
            out = exchanges("client", *["tcp,%s,80" % CIP6_WEB] * 30)
            if ends(out) != {EP61, EP62}:
                return "30 connections to [%s]:80 reached %s, want both: %s\n%s" % (
                    CIP6_WEB, ends(out), out[:4], srv.stderr_tail())
            if any(l.split()[1] != CLIENT6 for l in out):
                return "the endpoint saw another source than the client: %s" % out[:4]
            udp = exchanges("client", "udp,%s,53" % CIP6_WEB)
            want = r"fd00:2::[23] %s via %s,53$" % (CLIENT6, CIP6_WEB)
            if not udp or not re.match(want, udp[0]):
                return "UDP to [%s]:53 gave %s" % (CIP6_WEB, udp)
            if dig("web6.default.svc.cluster.local", "AAAA") != CIP6_WEB:
                return "AAAA of web6: %r" % dig("web6.default.svc.cluster.local", "AAAA")
            return ""
        tally.run("IPv6 ClusterIP: TCP over both IPv6 endpoints with the client's address, "
                  "UDP answered from the ClusterIP", clusterip6)

        def dual_stack():
            out = exchanges("client", "tcp,%s,80" % CIP_DUAL4, "tcp,%s,80" % CIP_DUAL6)
            want = ["%s %s" % (EP41, CLIENT4), "%s %s" % (EP61, CLIENT6)]
            if out != want:
                return "dual-stack Service: got %s, want %s" % (out, want)
            a, aaaa = (dig("dual.default.svc.cluster.local", q) for q in ("A", "AAAA"))
            if (a, aaaa) != (CIP_DUAL4, CIP_DUAL6):
                return "dual-stack DNS: A %r AAAA %r" % (a, aaaa)
            return ""
        tally.run("dual-stack Service: each family to its own endpoints, A and AAAA",
                  dual_stack)

        def nodeport6():
            out = exchanges("client", "tcp,%s,30090" % NODE_IN6, "tcp,%s,30090" % NODE_IN4)
            want = ["%s %s" % (EP61, NODE_OUT6), "%s %s" % (EP41, NODE_OUT4)]
            if out != want:
                return "NodePort 30090 on [%s] and %s: got %s, want %s (masqueraded)" % (
                    NODE_IN6, NODE_IN4, out, want)
            return ""
        tally.run("NodePort over IPv6 (and IPv4) on the node's addresses, masqueraded",
                  nodeport6)

        def external6():
            out = exchanges("client", "tcp,%s,80" % EXT6, "tcp,%s,80" % EXT4)
            want = ["%s %s" % (EP61, NODE_OUT6), "%s %s" % (EP41, NODE_OUT4)]
            if out != want:
                return "externalIPs [%s] and %s: got %s, want %s (masqueraded)" % (
                    EXT6, EXT4, out, want)
            return ""
        tally.run("externalIPs of a dual-stack Service, IPv6 and IPv4, masqueraded", external6)

        def reject_drop_hairpin6():
            out = exchanges("client", "tcp,%s,80" % CIP6_EMPTY, "tcp,%s,80" % CIP6_UNUSED)
            if out != ["error: ConnectionRefusedError", "error: TimeoutError"]:
                return ("IPv6 Service with no endpoint / unused address of %s: got %s, want "
                        "refused / dropped" % (SVC_CIDR6, out))
            # From the endpoint's own address (the backend holds two).
            out = exchanges("backend", *["tcp,%s,80,%s" % (CIP6_SOLO, EP61)] * 2)
            if out != ["%s %s" % (EP61, NODE_OUT6)] * 2:
                return "an IPv6 Pod reaching its own Service gave %s, want masqueraded" % out
            return ""
        tally.run("IPv6: no endpoint refused, an unused ClusterIP dropped, hairpin "
                  "masqueraded", reject_drop_hairpin6)

        def sctp():
            rc, listing = base.nft("list", "map", "inet", "svcdns", "service-ips6")
            if "sctp . 132" not in listing and " . 132 . 132" not in listing:
                return "no SCTP element in service-ips6:\n%s" % listing
            results = []
            for cip, ep, client in ((CIP_SCTP4, EP42, CLIENT4), (CIP_SCTP6, EP62, CLIENT6)):
                out = exchanges("client", "sctp,%s,132" % cip)
                if backend.sctp == "sockets":
                    if out != ["%s %s" % (ep, client)]:
                        results.append("SCTP association to %s:132 gave %s" % (cip, out))
                    continue
                got = backend.sctp_arrival() if out == ["sent"] else None
                want = "sctp %s %s 9132 crc-ok" % (ep, client)
                if got != want:
                    results.append("SCTP INIT to %s port 132 (%s): the backend saw %r, want %r"
                                   % (cip, out, got, want))
            return "; ".join(results)
        tally.run("SCTP Service port, both families, DNATed to the endpoint's targetPort "
                  "(%s)" % ("associations" if backend.sctp == "sockets" else
                            "INIT chunks through raw sockets: SCTP sockets %s" % backend.sctp),
                  sctp)

        def affinity_notrack6():
            out = exchanges("client", *["tcp,%s,80" % CIP6_STICKY] * 12)
            if len(out) != 12 or len(ends(out)) != 1:
                return "sessionAffinity ClientIP over IPv6: 12 connections gave %s" % out
            rc, raw = base.nft("list", "chain", "inet", "svcdns", "raw-prerouting")
            if "ip6 daddr %s udp dport 53 notrack" % NODE_IN6 not in raw:
                return "no NOTRACK rule for [%s]:53:\n%s" % (NODE_IN6, raw)
            rc, ans = nsrun("client", "dig", "@" + NODE_IN6, "+short", "+time=2", "+tries=1",
                            "solo6.default.svc.cluster.local", "AAAA")
            if ans != CIP6_SOLO:
                return "DNS over IPv6 to [%s]: %r" % (NODE_IN6, ans)
            rc, ct = nsrun("node", "conntrack", "-L", "-f", "ipv6", "-p", "udp", "--dport", "53")
            if NODE_IN6 in ct:
                return "DNS to [%s] entered conntrack:\n%s" % (NODE_IN6, ct)
            return ""
        tally.run("IPv6: sessionAffinity keeps a client on one endpoint; DNS to the node's "
                  "IPv6 listener skips conntrack", affinity_notrack6)

        def stale_udp6():
            specs = ["udp,%s,53,%d" % (CIP6_WEB, 41000 + i) for i in range(16)]
            pinned = [s for s, l in zip(specs, exchanges("client", *specs))
                      if l.startswith(EP62 + " ")]
            if not pinned:
                return "no UDP flow of 16 went to %s" % EP62
            write_manifests(d, manifests(web_eps=(EP61,)))
            if not wait_for(lambda: ends(exchanges("client", *["tcp,%s,80" % CIP6_WEB] * 8))
                            == {EP61}):
                return "after %s left web6, connections still reach it" % EP62
            out = exchanges("client", *pinned)
            if ends(out) != {EP61}:
                return "IPv6 UDP flows pinned to %s still go there (stale conntrack): %s" % (
                    EP62, out)
            return ""
        tally.run("IPv6 endpoint removed: its UDP flows' conntrack entries go, they move",
                  stale_udp6)

        def restart6():
            before = base.chain_handles()
            problems = srv.stop()
            if problems:
                return problems
            srv2 = base.NodeServer(d, args=args).start()
            box.append(srv2)
            after = base.chain_handles()
            if after != before:
                return "a restart rewrote IPv6 or dual-stack chains: %s" % sorted(
                    k for k in set(before) | set(after) if before.get(k) != after.get(k))
            if exchanges("client", "tcp,%s,80" % CIP_DUAL6) != ["%s %s" % (EP61, CLIENT6)]:
                return "IPv6 traffic failed after the restart"
            return ""
        box = []
        tally.run("restart: IPv6 map elements read back as written, nothing rewritten",
                  restart6)
        for s in box:
            tally.server_stopped(s, "the restarted server exits cleanly")
    finally:
        backend.stop()


def setup_network():
    """The IPv4 network of test_nft_netns.py plus IPv6 addresses and routes."""
    why = base.setup_network()
    if why:
        return why
    steps = [
        ["ip", "-n", NS["node"], "addr", "add", NODE_IN6 + "/64", "dev", "n0", "nodad"],
        ["ip", "-n", NS["node"], "addr", "add", NODE_OUT6 + "/64", "dev", "n1", "nodad"],
        ["ip", "-n", NS["client"], "addr", "add", CLIENT6 + "/64", "dev", "c0", "nodad"],
        ["ip", "-n", NS["backend"], "addr", "add", EP61 + "/64", "dev", "b0", "nodad"],
        ["ip", "-n", NS["backend"], "addr", "add", EP62 + "/64", "dev", "b0", "nodad"],
        ["ip", "-n", NS["client"], "-6", "route", "add", "default", "via", NODE_IN6],
        ["ip", "-n", NS["backend"], "-6", "route", "add", "default", "via", NODE_OUT6],
        ["ip", "-n", NS["node"], "-6", "route", "add", "default", "via", "fd00:2::fe"],
        ["ip", "netns", "exec", NS["node"], "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"],
    ]
    for cmd in steps:
        rc, out = run(*cmd)
        if rc != 0:
            return "%s failed: %s" % (" ".join(cmd), out)
    return None


def main():
    why = base.unavailable()
    if why:
        for ns in NS.values():
            run("ip", "netns", "del", ns)
        t.skip(why)
    try:
        why = setup_network()
        if why:
            t.skip(why)
        t.main_guard(t.Tally("nftables datapath over IPv6, dual-stack and SCTP"), body)
    finally:
        for ns in NS.values():
            run("ip", "netns", "del", ns)


if __name__ == "__main__":
    main()
