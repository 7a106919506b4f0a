"""The kernel datapath (--proxy=nftables) with real traffic, on a small network
of namespaces this test creates:

    client 10.0.1.2 --- 10.0.1.1 node 10.0.2.1 --- 10.0.2.2, 10.0.2.3 backend

svcdns runs in the node namespace and programs its table there; the backend
namespace holds two endpoint addresses, each answering TCP and UDP with the
address it was reached on and the address the connection came from. The
client reaches ClusterIPs (routed via the node) and the node's NodePort.

Needs root, iproute2, the nft and conntrack programs and nf_tables in the
kernel; where one is missing the test says which and is skipped (77). Every
process it starts is stopped by PID, and the namespaces (with the table in
them) are deleted at the end.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import svcdns_testlib as t  # noqa: E402

TAG = "%d" % os.getpid()
NS = {"client": "svcdns-nc-" + TAG, "node": "svcdns-nn-" + TAG, "backend": "svcdns-nb-" + TAG}
CIP_WEB, CIP_EMPTY, CIP_SOLO, CIP_UNUSED = "10.96.77.10", "10.96.77.11", "10.96.77.12", "10.96.77.99"
CIP_STICKY, CIP_DRAINING, CIP_LB = "10.96.77.13", "10.96.77.14", "10.96.77.15"
# Outside every subnet here: the client routes them to the node.
EXT_IP, LB_IP, NOT_LB_IP = "10.0.9.10", "10.0.9.11", "10.0.9.12"
# Traffic policies Local: EP1 is on this node (NODE_NAME), EP2 on another.
CIP_LOCAL, CIP_REMOTE, EXT_LOCAL, EXT_REMOTE = "10.96.77.16", "10.96.77.17", "10.0.9.13", "10.0.9.14"
NODE_NAME = "node-a"
EP1, EP2 = "10.0.2.2", "10.0.2.3"
NODE_IN, NODE_OUT, CLIENT = "10.0.1.1", "10.0.2.1", "10.0.1.2"
DNS_LOCAL = "169.254.20.10"

BACKEND = r"""
import socket, threading
def serve_tcp(ip):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, 8080)); s.listen(64)
    while True:
        c, peer = s.accept()
        threading.Thread(target=conn, args=(c, ip, peer), daemon=True).start()
def conn(c, ip, peer):
    f = c.makefile("rwb")
    f.write(("%s %s\n" % (ip, peer[0])).encode()); f.flush()
    for line in f:
        f.write(line); f.flush()
    c.close()
def serve_udp(ip):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind((ip, 5301))
    while True:
        d, a = u.recvfrom(2000); u.sendto(("%s %s" % (ip, a[0])).encode(), a)
for ip in ("10.0.2.2", "10.0.2.3"):
    threading.Thread(target=serve_tcp, args=(ip,), daemon=True).start()
    threading.Thread(target=serve_udp, args=(ip,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

# One exchange per argument: "tcp:IP:PORT" or "udp:IP:PORT[:SOURCEPORT]";
# prints one line each, the server's greeting or "error: <exception class>".
CLIENT_PROG = r"""
import socket, sys
for spec in sys.argv[1:]:
    proto, ip, port = spec.split(":")[:3]; port = int(port)
    try:
        if proto == "tcp":
            s = socket.create_connection((ip, port), timeout=2)
            print(s.makefile().readline().strip()); s.close()
        else:
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(2)
            u.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if spec.count(":") == 3:
                u.bind(("0.0.0.0", int(spec.split(":")[3])))
            u.sendto(b"hi", (ip, port)); d, a = u.recvfrom(2000); u.close()
            print("%s via %s:%d" % (d.decode(), a[0], a[1]))
    except OSError as e:
        print("error:", e.__class__.__name__)
"""

# A connection held open: greets, then echoes each line it reads from stdin.
HOLD_PROG = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
f = s.makefile("rwb")
print(f.readline().decode().strip(), flush=True)
for line in sys.stdin:
    try:
        f.write(line.encode()); f.flush()
        print(f.readline().decode().strip() or "closed", flush=True)
    except OSError as e:
        print("error:", e.__class__.__name__, flush=True)
"""


def run(*cmd, timeout=15):
    p = subprocess.run(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace").strip()


def nsrun(ns, *cmd, timeout=15):
    return run("ip", "netns", "exec", NS[ns], *cmd, timeout=timeout)


def exchanges(ns, *specs):
    return nsrun(ns, "/usr/bin/python3", "-c", CLIENT_PROG, *specs, timeout=60)[1].splitlines()


def nft(*args):
    return nsrun("node", "nft", *args)


def service(name, cip, ports, typ="ClusterIP", affinity=None, ext=None, ingress=None,
            local=False):
    spec = {"type": typ, "clusterIP": cip, "ports": ports}
    if local:
        spec["externalTrafficPolicy"] = spec["internalTrafficPolicy"] = "Local"
    if affinity:
        spec["sessionAffinity"] = "ClientIP"
        spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": affinity}}
    if ext:
        spec["externalIPs"] = ext
    obj = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": "default"}, "spec": spec}
    if ingress:
        obj["status"] = {"loadBalancer": {"ingress": [{"ip": a} for a in ingress]}}
    return obj


def eslice(svc, eps, ports):
    """eps: (address, ready, serving, terminating[, nodeName]) tuples."""
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": svc + "-1", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "ports": ports,
            "endpoints": [dict({"addresses": [e[0]],
                                "conditions": {"ready": e[1], "serving": e[2],
                                               "terminating": e[3]}},
                               **({"nodeName": e[4]} if len(e) > 4 else {}))
                          for e in eps]}


WEB_PORTS = [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080},
             {"name": "dns", "port": 53, "targetPort": 5301, "protocol": "UDP"}]
WEB_SLICE_PORTS = [{"name": "http", "port": 8080, "protocol": "TCP"},
                   {"name": "dns", "port": 5301, "protocol": "UDP"}]
SOLO_PORTS = [{"name": "http", "port": 80, "targetPort": 8080}]
SOLO_SLICE_PORTS = [{"name": "http", "port": 8080, "protocol": "TCP"}]


def write_manifests(d, web_eps, solo_eps=((EP1, True, True, False),), solo_affinity=None):
    items = [service("web", CIP_WEB, WEB_PORTS, "NodePort"),
             eslice("web", web_eps, WEB_SLICE_PORTS),
             service("empty", CIP_EMPTY, [{"port": 80, "targetPort": 8080}]),
             # An ingress IP on a ClusterIP Service is not forwarded.
             service("solo", CIP_SOLO, SOLO_PORTS, affinity=solo_affinity,
                     ingress=[NOT_LB_IP]),
             service("lb", CIP_LB, [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30081}],
                     "LoadBalancer", ext=[EXT_IP], ingress=[LB_IP]),
             eslice("lb", [(EP1, True, True, False), (EP2, True, True, False)],
                    SOLO_SLICE_PORTS),
             service("local", CIP_LOCAL, [{"name": "http", "port": 80, "targetPort": 8080,
                                           "nodePort": 30082}],
                     "NodePort", ext=[EXT_LOCAL], local=True),
             eslice("local", [(EP1, True, True, False, NODE_NAME),
                              (EP2, True, True, False, "node-b")], SOLO_SLICE_PORTS),
             service("remote", CIP_REMOTE, SOLO_PORTS, ext=[EXT_REMOTE], local=True),
             eslice("remote", [(EP1, True, True, False, "node-b"),
                               (EP2, True, True, False, "node-b")], SOLO_SLICE_PORTS),
             eslice("solo", solo_eps, SOLO_SLICE_PORTS),
             service("sticky", CIP_STICKY, SOLO_PORTS, affinity=60),
             eslice("sticky", [(EP1, True, True, False), (EP2, True, True, False)],
                    SOLO_SLICE_PORTS),
             # Both endpoints on their way out; one still serves.
             service("draining", CIP_DRAINING, SOLO_PORTS),
             eslice("draining", [(EP1, False, True, True), (EP2, False, False, True)],
                    SOLO_SLICE_PORTS)]
    tmp = os.path.join(d, ".web.json.tmp")
    with open(tmp, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": items}, f)
    os.rename(tmp, os.path.join(d, "web.json"))


class NodeServer(t.Server):
    """svcdns in the node namespace (`ip netns exec` execs it: same PID)."""

    def cmdline(self):
        return ["ip", "netns", "exec", NS["node"]] + super().cmdline()

    def wait_ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise t.ServerError("svcdns exited with status %s:\n%s"
                                    % (self.proc.returncode, self.stderr_tail()))
            rc, out = nsrun("node", "dig", "@127.0.0.1", "-p", str(self.port), "+short",
                            "+time=1", "+tries=1", "dns-version.cluster.local", "TXT")
            if rc == 0 and "1.1.0" in out:
                return
            time.sleep(0.1)
        raise t.ServerError("svcdns in the node namespace not ready:\n%s" % self.stderr_tail())


def chain_handles():
    """Service chain name -> handle: a chain rewritten or re-created gets a
    new handle."""
    rc, out = nft("-a", "list", "chains", "inet")
    return dict(re.findall(r"chain ((?:svc|sep|ext)-\S+) \{ # handle (\d+)", out))


def wait_for(fn, timeout=10.0):
    v, _ = t.poll(fn, timeout=timeout, interval=0.1)
    return v


def ends(lines):
    """The endpoint addresses a batch of greetings came from."""
    return {l.split()[0] for l in lines if not l.startswith("error")}


def body(tally):
    d = t.mkdtemp(prefix="svcdns-nft-")
    write_manifests(d, [(EP1, True, True, False), (EP2, True, True, False)])
    backend = subprocess.Popen(["ip", "netns", "exec", NS["backend"], "/usr/bin/python3", "-c",
                                BACKEND], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    hold = None
    try:
        if backend.stdout.readline().strip() != b"ready":
            tally.fail("backend", "the backend servers did not start")
            return
        http = "127.0.0.1:%d" % t.free_port()
        args = ["--proxy=nftables", "--listen", DNS_LOCAL + ":53", "--http", http,
                "--node-name", NODE_NAME]
        srv = NodeServer(d, args=args).start()
        first = chain_handles()
        tally.check(len(first) >= 6, "the table holds Service, endpoint and NodePort chains",
                    "chains: %s\n%s" % (first, srv.stderr_tail()))

        def clusterip():
            out = exchanges("client", *["tcp:%s:80" % CIP_WEB] * 40)
            if ends(out) != {EP1, EP2}:
                return "40 connections to %s:80 reached %s, want both endpoints: %s" % (
                    CIP_WEB, ends(out), out[:5])
            if any(l.split()[1] != CLIENT for l in out):
                return "the endpoint saw another source than the client: %s" % out[:5]
            udp = exchanges("client", "udp:%s:53" % CIP_WEB)
            if not udp or not re.match(r"10\.0\.2\.[23] %s via %s:53$" % (CLIENT, CIP_WEB),
                                       udp[0]):
                return "UDP to %s:53 gave %s" % (CIP_WEB, udp)
            return ""
        tally.run("ClusterIP: TCP spread over both endpoints at random, UDP answered "
                  "from the ClusterIP", clusterip)

        def nodeport():
            out = exchanges("client", *["tcp:%s:30080" % NODE_IN] * 10)
            if not ends(out) <= {EP1, EP2} or not ends(out):
                return "NodePort %s:30080 gave %s" % (NODE_IN, out)
            if any(l.split()[1] != NODE_OUT for l in out):
                return "NodePort traffic from outside was not masqueraded: %s" % out
            return ""
        tally.run("NodePort on the node's address, masqueraded", nodeport)

        def external():
            out = exchanges("client", *["tcp:%s:80" % a for a in (EXT_IP, LB_IP)] * 10)
            if ends(out) != {EP1, EP2} or len(out) != 20:
                return "externalIP %s and ingress IP %s gave %s" % (EXT_IP, LB_IP, out)
            if any(l.split()[1] != NODE_OUT for l in out):
                return "traffic from outside to an external address was not masqueraded: %s" % out
            out = exchanges("client", "tcp:%s:80" % CIP_LB, "tcp:%s:80" % NOT_LB_IP)
            if not out[0].endswith(" " + CLIENT):
                return "the LoadBalancer's ClusterIP gave %r, want the client's address" % out[0]
            if out[1] != "error: TimeoutError":
                return "the ingress IP of a ClusterIP Service was forwarded: %r" % out[1]
            return ""
        tally.run("externalIPs and a LoadBalancer's ingress IP forwarded, masqueraded; an "
                  "ingress IP on a ClusterIP Service is not", external)

        def local_policies():
            specs = (["tcp:%s:80" % EXT_LOCAL] * 10 + ["tcp:%s:30082" % NODE_IN] * 10
                     + ["tcp:%s:80" % CIP_LOCAL] * 10)
            out = exchanges("client", *specs)
            if out != ["%s %s" % (EP1, CLIENT)] * 30:
                return ("Local policies: externalIP, NodePort and ClusterIP should reach only "
                        "%s (this node's) with the client's address, got %s"
                        % (EP1, sorted(set(out))))
            out = exchanges("client", "tcp:%s:80" % CIP_REMOTE, "tcp:%s:80" % EXT_REMOTE)
            if out != ["error: TimeoutError"] * 2:
                return "a Service with no endpoint on this node: want drops, got %s" % out
            return ""
        tally.run("externalTrafficPolicy and internalTrafficPolicy Local: only this node's "
                  "endpoint, no masquerade; none on this node: dropped", local_policies)

        def reject_and_drop():
            out = exchanges("client", "tcp:%s:80" % CIP_EMPTY, "tcp:%s:80" % CIP_UNUSED)
            if out[0] != "error: ConnectionRefusedError":
                return "a Service with no endpoint gave %r, want a reset" % out[0]
            if out[1] != "error: TimeoutError":
                return "an unused address of the Service CIDR gave %r, want a drop" % out[1]
            return ""
        tally.run("no endpoint: reset; an unused ClusterIP: dropped", reject_and_drop)

        def hairpin():
            out = exchanges("backend", *["tcp:%s:80" % CIP_SOLO] * 3)
            if out != ["%s %s" % (EP1, NODE_OUT)] * 3:
                return "a Pod reaching its own Service gave %s, want it masqueraded" % out
            return ""
        tally.run("hairpin: a Pod reaching itself through its Service is masqueraded", hairpin)

        def affinity_and_draining():
            out = exchanges("client", *["tcp:%s:80" % CIP_STICKY] * 20)
            if len(ends(out)) != 1 or len(out) != 20:
                return "sessionAffinity ClientIP: 20 connections reached %s" % ends(out)
            out = exchanges("client", *["tcp:%s:80" % CIP_DRAINING] * 5)
            if ends(out) != {EP1} or len(out) != 5:
                return ("no ready endpoint: want the serving, terminating one (%s), got %s"
                        % (EP1, out))
            return ""
        tally.run("sessionAffinity ClientIP keeps a client on one endpoint; with none ready, "
                  "the serving terminating one takes the traffic", affinity_and_draining)

        def notrack():
            rc, out = nft("list", "chain", "inet", "svcdns", "raw-prerouting")
            want = "ip daddr %s udp dport 53 notrack" % DNS_LOCAL
            if want not in out or "ip saddr %s tcp sport 53 notrack" % DNS_LOCAL not in out:
                return "raw-prerouting lacks the NOTRACK rules for %s:\n%s" % (DNS_LOCAL, out)
            rc, dig = nsrun("client", "dig", "@" + DNS_LOCAL, "+short", "+time=2", "+tries=1",
                            "web.default.svc.cluster.local")
            if dig != CIP_WEB:
                return "DNS from the client to %s gave %r" % (DNS_LOCAL, dig)
            rc, ct = nsrun("node", "conntrack", "-L", "-p", "udp", "--dport", "53")
            if DNS_LOCAL in ct:
                return "DNS to %s entered conntrack:\n%s" % (DNS_LOCAL, ct)
            return ""
        tally.run("DNS to the node-local listener skips conntrack (NOTRACK)", notrack)

        hold = subprocess.Popen(["ip", "netns", "exec", NS["client"], "/usr/bin/python3", "-c",
                                 HOLD_PROG, CIP_SOLO, "80"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        greeting = hold.stdout.readline().strip()
        tally.check(greeting == "%s %s" % (EP1, CLIENT), "a connection held open to solo",
                    greeting)

        def ping():
            hold.stdin.write("ping\n")
            hold.stdin.flush()
            return hold.stdout.readline().strip()

        udp_specs = ["udp:%s:53:%d" % (CIP_WEB, 40000 + i) for i in range(16)]

        def incremental():
            before = chain_handles()
            pinned = [s for s, l in zip(udp_specs, exchanges("client", *udp_specs))
                      if l.startswith(EP2)]
            if not pinned:
                return "no UDP flow of 16 went to %s" % EP2
            write_manifests(d, [(EP1, True, True, False), (EP2, False, False, False)])
            if not wait_for(lambda: ends(exchanges("client", *["tcp:%s:80" % CIP_WEB] * 12))
                            == {EP1}):
                return "after %s became unready, connections still reach it" % EP2
            out = exchanges("client", *pinned)
            if ends(out) != {EP1}:
                return ("UDP flows that went to %s still go there (stale conntrack "
                        "entries): %s" % (EP2, out))
            after = chain_handles()
            solo = {k: v for k, v in before.items() if "/solo/" in k}
            if not solo or any(after.get(k) != v for k, v in solo.items()):
                return "solo's chains changed with web's endpoints: %s -> %s" % (solo, after)
            gone = [k for k in before if "/web/" in k and k.startswith("svc-") and k in after]
            if gone:
                return "web's old Service chains were not deleted: %s" % gone
            return ""
        tally.run("one endpoint unready: one transaction re-points web, its UDP flows' "
                  "conntrack entries go; solo untouched",
                  incremental)

        def metrics():
            rc, text = nsrun("node", "/usr/bin/python3", "-c",
                             "import urllib.request,sys; sys.stdout.write(urllib.request."
                             "urlopen('http://%s/metrics', timeout=5).read().decode())" % http)
            want = [r'svcdns_nftables_syncs_total\{kind="incremental"\} [1-9]',
                    r'svcdns_nftables_syncs_total\{kind="full"\} 1\b',
                    r'svcdns_nftables_chains [1-9]',
                    r'svcdns_nftables_sync_failures_total 0\b',
                    r'svcdns_nftables_conntrack_deleted_total [1-9]',
                    r'svcdns_nftables_sync_duration_seconds_count [2-9]']
            missing = [w for w in want if not re.search(w, text)]
            if missing:
                return "/metrics lacks %s:\n%s" % (missing, "\n".join(
                    l for l in text.splitlines() if "nftables" in l))
            return ""
        tally.run("/metrics: chains, syncs by kind, failures, conntrack deletions, durations",
                  metrics)

        def restart():
            before = chain_handles()
            problems = srv.stop()
            if problems:
                return problems
            if ping() != "ping":
                return "the held connection broke when svcdns stopped"
            if ends(exchanges("client", "tcp:%s:80" % CIP_SOLO)) != {EP1}:
                return "new connections failed while svcdns was stopped"
            srv2 = NodeServer(d, args=args).start()
            srv_box.append(srv2)
            after = chain_handles()
            if after != before:
                return "a restart rewrote chains: %s -> %s" % (before, after)
            if ping() != "ping":
                return "the held connection broke when svcdns started again"
            if not re.search(r"ready \([1-9]\d* Service chains", srv2.stderr_text()):
                return "the second start did not find the table's chains"
            return ""
        srv_box = []
        tally.run("restart: the held connection and the rules stay; nothing rewritten",
                  restart)
        for s in srv_box:
            tally.server_stopped(s, "the restarted server exits cleanly")

        def cleanup():
            rc, out = nsrun("node", t.BIN, "--proxy-cleanup")
            if rc != 0:
                return "--proxy-cleanup exited %d: %s" % (rc, out)
            rc, out = nft("list", "tables")
            if "svcdns" in out:
                return "the table is still there: %s" % out
            return ""
        tally.run("--proxy-cleanup removes the table", cleanup)
    finally:
        for p in (hold, backend):
            if p is None:
                continue
            if p.stdin:
                p.stdin.close()
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def setup_network():
    """The namespaces, links and addresses; None, or why it cannot be done."""
    steps = [
        ["ip", "netns", "add", NS["client"]],
        ["ip", "netns", "add", NS["node"]],
        ["ip", "netns", "add", NS["backend"]],
        ["ip", "-n", NS["node"], "link", "add", "n0", "type", "veth", "peer", "name", "c0",
         "netns", NS["client"]],
        ["ip", "-n", NS["node"], "link", "add", "n1", "type", "veth", "peer", "name", "b0",
         "netns", NS["backend"]],
        ["ip", "-n", NS["node"], "addr", "add", NODE_IN + "/24", "dev", "n0"],
        ["ip", "-n", NS["node"], "addr", "add", NODE_OUT + "/24", "dev", "n1"],
        ["ip", "-n", NS["node"], "addr", "add", DNS_LOCAL + "/32", "dev", "lo"],
        ["ip", "-n", NS["client"], "addr", "add", CLIENT + "/24", "dev", "c0"],
        ["ip", "-n", NS["backend"], "addr", "add", EP1 + "/24", "dev", "b0"],
        ["ip", "-n", NS["backend"], "addr", "add", EP2 + "/24", "dev", "b0"],
    ]
    for ns, links in (("client", ["lo", "c0"]), ("node", ["lo", "n0", "n1"]),
                      ("backend", ["lo", "b0"])):
        steps += [["ip", "-n", NS[ns], "link", "set", l, "up"] for l in links]
    steps += [
        ["ip", "-n", NS["client"], "route", "add", "default", "via", NODE_IN],
        ["ip", "-n", NS["backend"], "route", "add", "default", "via", NODE_OUT],
        # The node routes what it does not DNAT (as a real node's default
        # route would), so a Service CIDR address reaches the filter hooks.
        ["ip", "-n", NS["node"], "route", "add", "default", "via", "10.0.2.254"],
        ["ip", "netns", "exec", NS["node"], "sysctl", "-qw", "net.ipv4.ip_forward=1"],
    ]
    for cmd in steps:
        rc, out = run(*cmd)
        if rc != 0:
            return "%s failed: %s" % (" ".join(cmd), out)
    return None


def unavailable():
    if os.geteuid() != 0:
        return "needs root to create network namespaces and program nftables"
    for prog in ("ip", "nft", "conntrack", "dig"):
        if shutil.which(prog) is None:
            return "the %s program is not installed" % prog
    rc, out = run("ip", "netns", "add", NS["node"])
    if rc != 0:
        return "this machine does not let root create network namespaces: %s" % out
    rc, out = run("ip", "netns", "exec", NS["node"], "nft", "add", "table", "inet", "probe")
    if rc != 0:
        return "nf_tables is not available in this kernel: %s" % out
    run("ip", "netns", "del", NS["node"])
    return None


def main():
    why = unavailable()
    if why:
        for ns in NS.values():
            run("ip", "netns", "del", ns)
        t.skip(why)
    try:
        why = setup_network()
        if why:
            t.skip(why)
        t.main_guard(t.Tally("nftables datapath in network namespaces"), body)
    finally:
        for ns in NS.values():
            run("ip", "netns", "del", ns)


if __name__ == "__main__":
    main()
