"""The ClusterIP datapath (--proxy), end to end: svcdns reads Services and Pods
from a manifest directory, the test finds a Service with dig, connects to its
ClusterIP:port (or NodePort) and talks to real TCP and UDP servers that this
test runs on the Pods' addresses.

Every address is in 127.0.0.0/8, so nothing needs configuring: ClusterIPs are
127.77.N.1, Pod IPs 127.78.N.x, client addresses 127.79.N.x, N one per case
(no other test uses these ranges). Port 80 on the ClusterIPs, as the article
writes it, needs root or CAP_NET_BIND_SERVICE (CI runs as root); without it
the test is skipped (77), saying so.

The backends: a TCP backend sends "<name>\\n" when it accepts, then echoes
everything until the client half-closes, then closes its side; a UDP backend
answers each datagram with "<name> <datagram>".
"""

import hashlib
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import svcdns_testlib as t  # noqa: E402

ZONE = "cluster.local"


# --------------------------------------------------------------------------
# backends: real servers on the Pods' addresses

class TcpBackend:
    def __init__(self, name, ip, port, backlog=64):
        self.name = name
        self.addr = (ip, port)
        self.accepted = 0
        self.peers = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(self.addr)
        self.sock.listen(backlog)
        self.closed = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, peer = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                self.peers.append(peer)
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    def _echo(self, c):
        try:
            c.sendall(self.name.encode() + b"\n")
            while True:
                d = c.recv(262144)
                if not d:
                    break
                c.sendall(d)
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        if not self.closed:
            self.closed = True
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()


class UdpBackend:
    def __init__(self, name, ip, port):
        self.name = name
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, port))
        self.peers = set()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                d, peer = self.sock.recvfrom(65535)
            except OSError:
                return
            self.peers.add(peer)
            try:
                self.sock.sendto(self.name.encode() + b" " + d, peer)
            except OSError:
                pass

    def close(self):
        self.sock.close()


BACKENDS = []


def tcp_backend(name, ip, port, **kw):
    b = TcpBackend(name, ip, port, **kw)
    BACKENDS.append(b)
    return b


def udp_backend(name, ip, port):
    b = UdpBackend(name, ip, port)
    BACKENDS.append(b)
    return b


# --------------------------------------------------------------------------
# manifests

def service(name, cip, ports, selector=None, ns="default", **spec):
    s = {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": name, "namespace": ns},
         "spec": dict({"clusterIP": cip, "selector": selector or {"app": name},
                       "ports": ports}, **spec)}
    return s


def pod(name, ip, ports, labels=None, ready=True, ns="default"):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "spec": {"containers": [{"name": "c", "image": "x:1", "ports": ports}]},
            "status": {"phase": "Running", "podIP": ip,
                       "conditions": [{"type": "Ready",
                                       "status": "True" if ready else "False"}]}}


def write_manifest(d, fname, objs):
    t.write_atomic(os.path.join(d, fname),
                   json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}, indent=1))


# --------------------------------------------------------------------------
# clients

def connect(ip, port, src=None, timeout=3.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if src:
        s.bind((src, 0))
    s.connect((ip, port))
    return s


def read_line(s):
    buf = b""
    while not buf.endswith(b"\n"):
        d = s.recv(1)
        if not d:
            raise ConnectionError("closed after %r" % buf)
        buf += d
    return buf[:-1].decode()


def is_reset(ip, port, timeout=5):
    """Connects and reads: True when the connection is reset (the RST may
    even beat the end of connect()), a string saying what happened otherwise."""
    try:
        s = connect(ip, port, timeout=timeout)
    except ConnectionResetError:
        return True
    try:
        d = s.recv(10)
        return "read %r instead of a reset" % d
    except ConnectionResetError:
        return True
    except socket.timeout:
        return "no reset within %d s" % timeout
    finally:
        s.close()


def banner(ip, port, src=None):
    """Connects, returns the backend's name, closes."""
    s = connect(ip, port, src)
    try:
        return read_line(s)
    finally:
        s.close()


def a_record(srv, name):
    r = t.run_dig(srv.port, name, "A")
    return [rr.split()[4] for rr in r.answer if rr.split()[3] == "A"]


def chaos_lines(srv, name):
    r = t.run_dig(srv.port, name, "TXT", "CH")
    return ["".join(s) for s in r.txt_strings]


def proxy_line(srv, name, portproto):
    """The datapath's CHAOS line for one port ("80/TCP"), or None."""
    for line in chaos_lines(srv, name):
        if re.match(r"^\S+ %s proxy=" % re.escape(portproto), line):
            return line
    return None


def wait_for(fn, what, timeout=5.0):
    v, dt = t.poll(fn, timeout=timeout, interval=0.02)
    if not v:
        raise AssertionError("%s: not within %.0f s" % (what, timeout))
    return v


def wait_endpoints(srv, name, text):
    """Waits until the CHAOS mapping line of `name` contains `text`."""
    return wait_for(lambda: any(text in l for l in chaos_lines(srv, name)),
                    "%s CH TXT shows %r" % (name, text))


def fqdn(svc, ns="default"):
    return "%s.%s.svc.%s." % (svc, ns, ZONE)


# --------------------------------------------------------------------------
# the cases

def datapath_session():
    """The `$ kdig` commands of doc/datapath.md and what they print."""
    text = open(os.path.join(t.SOURCE, "doc", "datapath.md"), encoding="utf-8").read()
    cases = []
    for block in re.findall(r"```\n(.*?)```", text, flags=re.S):
        lines = block.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("$ kdig "):
                out = []
                for nxt in lines[i + 1:]:
                    if nxt.startswith("$ "):
                        break
                    out.append(nxt)
                cases.append((line[2:], out))
    return cases


def case_article(tally, srv, d):
    """The article's example (tests/fixtures/proxy): my-service port 80 ->
    targetPort 8080."""
    tcp_backend("my-app-pod", "127.78.0.1", 8080)
    shutil.copy(os.path.join(t.FIXTURES, "proxy", "article.yaml"), d)
    ips = wait_for(lambda: a_record(srv, fqdn("my-service")), "my-service A")

    def body():
        if ips != ["127.77.0.1"]:
            return "my-service A %s, want 127.77.0.1" % ips
        s = connect(ips[0], 80)
        try:
            if read_line(s) != "my-app-pod":
                return "not the Pod's 8080"
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            echo = b""
            while len(echo) < 18:
                echo += s.recv(100)
            if echo != b"GET / HTTP/1.0\r\n\r\n":
                return "echo %r" % echo
            line = wait_for(lambda: (lambda l: l if l and "conns=1" in l else None)(
                proxy_line(srv, fqdn("my-service"), "80/TCP")), "CH TXT conns=1")
            if line != "- 80/TCP proxy=listening conns=1":
                return "CH TXT %r" % line
        finally:
            s.close()
        wait_for(lambda: proxy_line(srv, fqdn("my-service"), "80/TCP") ==
                 "- 80/TCP proxy=listening conns=0", "CH TXT back to conns=0")
        lines = chaos_lines(srv, fqdn("my-service"))
        if lines[0] != "- 80/TCP -> 8080 nodePort=- endpoints=1/1 ready: 127.78.0.1:8080":
            return "CH TXT mapping line %r" % lines[0]
        return ""
    tally.run("article: my-service ClusterIP:80 reaches the Pod's 8080; CH TXT shows it", body)

    def page_session():
        cases = datapath_session()
        if len(cases) < 2:
            return "doc/datapath.md has %d kdig examples" % len(cases)
        for cmd, want in cases:
            real = cmd.replace("-p 5353", "-p %d" % srv.port)
            got = subprocess.run(["bash", "-c", real], capture_output=True, text=True,
                                 timeout=20).stdout.splitlines()
            if [" ".join(w.split()) for w in want] != [" ".join(g.split()) for g in got]:
                return "doc/datapath.md: %s\n      prints %s\n      the page says %s" % (
                    cmd, got, want)
        return ""
    tally.run("doc/datapath.md's session prints what the page says", page_session)

    def bulk():
        # 4 MiB each way, half-closed by the client: everything comes back.
        data = random.Random(5).randbytes(4 << 20)
        s = connect("127.77.0.1", 80, timeout=10)
        got = bytearray()
        try:
            read_line(s)
            done = threading.Event()

            def reader():
                while True:
                    x = s.recv(262144)
                    if not x:
                        break
                    got.extend(x)
                done.set()
            th = threading.Thread(target=reader, daemon=True)
            th.start()
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            if not done.wait(20):
                return "echo incomplete: %d of %d bytes" % (len(got), len(data))
        finally:
            s.close()
        if hashlib.sha256(got).digest() != hashlib.sha256(data).digest():
            return "echo differs (%d bytes back)" % len(got)
        return ""
    tally.run("article: 4 MiB echoed through the datapath, half-close passed on", bulk)
    tally.run("article: 30 half-closed transfers of 0 to 3 MiB, every byte and FIN back",
              many_transfers, "127.77.0.1", 80)


def echo_through(ip, port, data, timeout=20):
    """Sends data, half-closes, returns what came back after the banner."""
    s = connect(ip, port, timeout=timeout)
    got = bytearray()
    try:
        read_line(s)
        done = threading.Event()

        def reader():
            try:
                while True:
                    x = s.recv(262144)
                    if not x:
                        break
                    got.extend(x)
            except OSError:
                pass
            done.set()
        threading.Thread(target=reader, daemon=True).start()
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        if not done.wait(timeout):
            raise AssertionError("no EOF after %d of %d bytes" % (len(got), len(data)))
    finally:
        s.close()
    return bytes(got)


def many_transfers(ip, port):
    r = random.Random(11)
    blob = r.randbytes(3 << 20)
    for i in range(30):
        n = r.choice([0, 1, r.randint(2, 70000), r.randint(70000, 3 << 20)])
        if echo_through(ip, port, blob[:n]) != blob[:n]:
            return "transfer %d of %d bytes came back different" % (i, n)
    return ""


def case_multiport(tally, srv, d):
    """80 -> 8080 and 9110 -> 9110 on the same Pods."""
    objs = [service("multi", "127.77.1.1",
                    [{"name": "http", "port": 80, "targetPort": 8080},
                     {"name": "metrics", "port": 9110, "targetPort": 9110}])]
    for i in (1, 2):
        ip = "127.78.1.%d" % i
        tcp_backend("pod%d:8080" % i, ip, 8080)
        tcp_backend("pod%d:9110" % i, ip, 9110)
        objs.append(pod("multi-%d" % i, ip, [{"containerPort": 8080}, {"containerPort": 9110}],
                        {"app": "multi"}))
    write_manifest(d, "multi.json", objs)
    wait_endpoints(srv, fqdn("multi"), "endpoints=2/2")

    def body():
        seen = {80: set(), 9110: set()}
        for _ in range(4):
            for port in (80, 9110):
                seen[port].add(banner("127.77.1.1", port))
        if seen[80] != {"pod1:8080", "pod2:8080"}:
            return "port 80 reached %s" % sorted(seen[80])
        if seen[9110] != {"pod1:9110", "pod2:9110"}:
            return "port 9110 reached %s" % sorted(seen[9110])
        return ""
    tally.run("multi-port: 80 -> 8080 and 9110 -> 9110, both Pods each", body)


def case_named_target(tally, srv, d):
    """targetPort: http resolves to 8081 on one Pod and 8082 on the other."""
    tcp_backend("a:8081", "127.78.2.1", 8081)
    tcp_backend("b:8082", "127.78.2.2", 8082)
    write_manifest(d, "named.json", [
        service("named", "127.77.2.1", [{"name": "web", "port": 80, "targetPort": "http"}]),
        pod("named-a", "127.78.2.1", [{"name": "http", "containerPort": 8081}],
            {"app": "named"}),
        pod("named-b", "127.78.2.2", [{"name": "http", "containerPort": 8082}],
            {"app": "named"})])
    wait_endpoints(srv, fqdn("named"), "endpoints=2/2")
    tally.run("named targetPort: each Pod on its own port",
              lambda: (lambda s: "" if s == {"a:8081", "b:8082"} else "reached %s" % s)(
                  {banner("127.77.2.1", 80) for _ in range(6)}))


def case_round_robin(tally, srv, d):
    bs = [tcp_backend("rr%d" % i, "127.78.3.%d" % i, 8080) for i in (1, 2, 3)]
    write_manifest(d, "rr.json", [service("rr", "127.77.3.1", [{"port": 80,
                                                                 "targetPort": 8080}])] +
                   [pod("rr-%d" % i, "127.78.3.%d" % i, [{"containerPort": 8080}],
                        {"app": "rr"}) for i in (1, 2, 3)])
    wait_endpoints(srv, fqdn("rr"), "endpoints=3/3")

    def body():
        counts = {}
        for _ in range(30):
            n = banner("127.77.3.1", 80)
            counts[n] = counts.get(n, 0) + 1
        if counts != {"rr1": 10, "rr2": 10, "rr3": 10}:
            return "30 connections went %s, want 10 to each" % counts
        # The endpoint sees the datapath, not the client: no source-IP preservation.
        if any(p[0] == "127.77.3.1" for b in bs for p in b.peers):
            return "an endpoint saw the ClusterIP as its peer"
        return ""
    tally.run("round robin: 30 connections, 10 to each of three Pods", body)


def case_refusing(tally, srv, d):
    """The middle endpoint has no server: connections skip it."""
    tcp_backend("ok1", "127.78.4.1", 8080)
    tcp_backend("ok3", "127.78.4.3", 8080)
    write_manifest(d, "refuse.json", [service("refuse", "127.77.4.1", [{"port": 80,
                                                                         "targetPort": 8080}])] +
                   [pod("refuse-%d" % i, "127.78.4.%d" % i, [{"containerPort": 8080}],
                        {"app": "refuse"}) for i in (1, 2, 3)])
    wait_endpoints(srv, fqdn("refuse"), "endpoints=3/3")

    def body():
        got = [banner("127.77.4.1", 80) for _ in range(12)]
        if set(got) != {"ok1", "ok3"}:
            return "reached %s" % sorted(set(got))
        if "endpoint 127.78.4.2:8080: Connection refused" not in srv.stderr_text():
            return "no log line naming the refusing endpoint"
        return ""
    tally.run("a refusing endpoint is skipped: 12 of 12 connections answered", body)


def case_no_endpoints(tally, srv, d):
    write_manifest(d, "empty.json", [
        service("empty", "127.77.5.1", [{"port": 80, "targetPort": 8080}]),
        pod("empty-1", "127.78.5.1", [{"containerPort": 8080}], {"app": "empty"}, ready=False)])
    wait_endpoints(srv, fqdn("empty"), "endpoints=0/1")

    def body():
        t0 = time.monotonic()
        r = is_reset("127.77.5.1", 80)
        if r is not True:
            return r
        if time.monotonic() - t0 > 2:
            return "the reset took %.1f s" % (time.monotonic() - t0)
        return ""
    tally.run("no ready endpoint: the connection is reset at once", body)


def case_endpoint_removed(tally, srv, d):
    tcp_backend("churn1", "127.78.6.1", 8080)
    tcp_backend("churn2", "127.78.6.2", 8080)
    svc = service("churn", "127.77.6.1", [{"port": 80, "targetPort": 8080}])
    pods = {i: pod("churn-%d" % i, "127.78.6.%d" % i, [{"containerPort": 8080}],
                   {"app": "churn"}) for i in (1, 2)}
    write_manifest(d, "churn.json", [svc, pods[1], pods[2]])
    wait_endpoints(srv, fqdn("churn"), "endpoints=2/2")

    def body():
        s = connect("127.77.6.1", 80)
        try:
            first = read_line(s)
            gone = int(first[-1])
            keep = 3 - gone
            write_manifest(d, "churn.json", [svc, pods[keep]])
            wait_endpoints(srv, fqdn("churn"), "endpoints=1/1")
            s.sendall(b"still there?")
            if t.recv_exact(s, 12) != b"still there?":
                return "the open connection stopped echoing"
            after = {banner("127.77.6.1", 80) for _ in range(6)}
            if after != {"churn%d" % keep}:
                return "new connections reached %s after churn%d was removed" % (after, gone)
            s.sendall(b"and now?")
            if t.recv_exact(s, 8) != b"and now?":
                return "the open connection broke after new ones"
        finally:
            s.close()
        return ""
    tally.run("endpoint removed: its open connection goes on, new ones avoid it", body)


def case_udp(tally, srv, d):
    udp_backend("u1", "127.78.7.1", 5301)
    udp_backend("u2", "127.78.7.2", 5301)
    write_manifest(d, "udp.json", [
        service("uecho", "127.77.7.1", [{"name": "echo", "port": 5300, "targetPort": 5301,
                                         "protocol": "UDP"}])] +
        [pod("uecho-%d" % i, "127.78.7.%d" % i, [{"containerPort": 5301, "protocol": "UDP"}],
             {"app": "uecho"}) for i in (1, 2)])
    wait_endpoints(srv, fqdn("uecho"), "endpoints=2/2")

    def body():
        clients = []
        try:
            for i in range(4):
                c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                c.settimeout(3)
                c.bind(("127.79.7.%d" % (i + 1), 0))
                clients.append(c)
            seen = {}
            for rnd in range(3):
                for i, c in enumerate(clients):
                    msg = b"c%d-%d" % (i, rnd)
                    c.sendto(msg, ("127.77.7.1", 5300))
                    data, frm = c.recvfrom(2000)
                    if frm != ("127.77.7.1", 5300):
                        return "reply from %s, want the ClusterIP:port" % (frm,)
                    name, _, echo = data.partition(b" ")
                    if echo != msg:
                        return "echo %r for %r" % (echo, msg)
                    seen.setdefault(i, set()).add(name)
            if any(len(v) != 1 for v in seen.values()):
                return "a client's flow moved between endpoints: %s" % seen
            if set().union(*seen.values()) != {b"u1", b"u2"}:
                return "flows reached %s" % seen
            line = proxy_line(srv, fqdn("uecho"), "5300/UDP")
            if line != "echo 5300/UDP proxy=listening flows=4":
                return "CH TXT %r" % line
        finally:
            for c in clients:
                c.close()
        return ""
    tally.run("UDP: four clients, one flow each, replies from the ClusterIP:port", body)


def case_affinity(tally, srv, d):
    for i in (1, 2, 3):
        tcp_backend("s%d" % i, "127.78.8.%d" % i, 8080)
    write_manifest(d, "sticky.json", [
        service("sticky", "127.77.8.1", [{"port": 80, "targetPort": 8080}],
                sessionAffinity="ClientIP",
                sessionAffinityConfig={"clientIP": {"timeoutSeconds": 2}})] +
        [pod("sticky-%d" % i, "127.78.8.%d" % i, [{"containerPort": 8080}],
             {"app": "sticky"}) for i in (1, 2, 3)])
    wait_endpoints(srv, fqdn("sticky"), "endpoints=3/3")

    def body():
        a = {banner("127.77.8.1", 80, src="127.79.8.1") for _ in range(6)}
        b = {banner("127.77.8.1", 80, src="127.79.8.2") for _ in range(6)}
        if len(a) != 1 or len(b) != 1:
            return "a client moved between endpoints: %s, %s" % (a, b)
        if a == b:
            return "two clients on the same endpoint %s: round robin should differ" % a
        time.sleep(2.5)  # past timeoutSeconds: 2
        later = banner("127.77.8.1", 80, src="127.79.8.1")
        if later in a:
            return "still on %s after the affinity timeout" % later
        return ""
    tally.run("sessionAffinity ClientIP: a client keeps its Pod until the timeout", body)


def case_nodeport(tally, srv, d, node_port):
    tcp_backend("np", "127.78.9.1", 8080)
    write_manifest(d, "np.json", [
        service("np", "127.77.9.1", [{"name": "http", "port": 80, "targetPort": 8080,
                                      "nodePort": node_port}], type="NodePort"),
        pod("np-1", "127.78.9.1", [{"containerPort": 8080}], {"app": "np"})])
    wait_endpoints(srv, fqdn("np"), "nodePort=%d" % node_port)

    def body():
        if banner("127.0.0.1", node_port) != "np":
            return "NodePort did not reach the Pod"
        if banner("127.77.9.1", 80) != "np":
            return "ClusterIP did not reach the Pod"
        return ""
    tally.run("NodePort: --node-address 127.0.0.1:%d reaches the Pod" % node_port, body)


def case_service_deleted(tally, srv, d):
    tcp_backend("gone", "127.78.10.1", 8080)
    write_manifest(d, "gone.json", [
        service("gone", "127.77.10.1", [{"port": 80, "targetPort": 8080}]),
        pod("gone-1", "127.78.10.1", [{"containerPort": 8080}], {"app": "gone"})])
    wait_endpoints(srv, fqdn("gone"), "endpoints=1/1")

    def body():
        s = connect("127.77.10.1", 80)
        try:
            read_line(s)
            os.unlink(os.path.join(d, "gone.json"))

            def refused():
                try:
                    banner("127.77.10.1", 80)
                    return False
                except ConnectionRefusedError:
                    return True
            wait_for(refused, "connect refused after the Service was deleted")
            if a_record(srv, fqdn("gone")):
                return "the name still resolves"
            s.sendall(b"ping")
            if t.recv_exact(s, 4) != b"ping":
                return "the established connection was cut"
        finally:
            s.close()
        return ""
    tally.run("Service deleted: its listener closes, established connections stay", body)


def case_bind_conflict(tally, srv, d):
    """Someone else holds the ClusterIP:port: logged, shown, the rest works."""
    squat = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    squat.bind(("127.77.11.1", 80))
    squat.listen(1)
    try:
        tcp_backend("clash", "127.78.11.1", 8080)
        write_manifest(d, "clash.json", [
            service("clash", "127.77.11.1", [{"name": "web", "port": 80, "targetPort": 8080},
                                             {"name": "alt", "port": 81, "targetPort": 8080}]),
            pod("clash-1", "127.78.11.1", [{"containerPort": 8080}], {"app": "clash"})])
        wait_endpoints(srv, fqdn("clash"), "endpoints=1/1")

        def body():
            line = proxy_line(srv, fqdn("clash"), "80/TCP")
            if line != "web 80/TCP proxy=not-listening(0/1 bound: address in use) conns=0":
                return "CH TXT %r" % line
            if "Service default/clash: cannot listen on 127.77.11.1:80/TCP" not in \
                    srv.stderr_text():
                return "no log line naming the Service and the address"
            if banner("127.77.11.1", 81) != "clash":
                return "the other port of the Service does not work"
            m = t.scrape(srv.http_port())
            want = {("svcdns_proxy_listeners", "80"): 1, ("svcdns_proxy_listeners_bound", "80"): 0,
                    ("svcdns_proxy_listeners", "81"): 1, ("svcdns_proxy_listeners_bound", "81"): 1}
            got = {k: t.metric(m, k[0], namespace="default", service="clash", port=k[1],
                               protocol="TCP") for k in want}
            if got != want:
                return "/metrics: %s, want %s" % (got, want)
            return ""
        tally.run("a taken ClusterIP:port is logged, shown and counted in /metrics, the rest "
                  "keeps working", body)
    finally:
        squat.close()


# ---- a second server: small limits and the copy fallback ----------------------

def case_limits(tally, srv, d):
    tcp_backend("lim", "127.78.12.1", 8080)
    udp_backend("ulim", "127.78.12.1", 5301)
    write_manifest(d, "lim.json", [
        service("lim", "127.77.12.1", [{"name": "t", "port": 80, "targetPort": 8080},
                                       {"name": "u", "port": 5300, "targetPort": 5301,
                                        "protocol": "UDP"}]),
        pod("lim-1", "127.78.12.1", [{"containerPort": 8080},
                                     {"containerPort": 5301, "protocol": "UDP"}],
            {"app": "lim"})])
    wait_endpoints(srv, fqdn("lim"), "endpoints=1/1")

    def conns():
        held = [connect("127.77.12.1", 80) for _ in range(2)]
        try:
            for s in held:
                read_line(s)
            r = is_reset("127.77.12.1", 80)
            if r is not True:
                return "a third connection past --proxy-max-conns 2: %s" % r
        finally:
            for s in held:
                s.close()
        if "--proxy-max-conns limit" not in srv.stderr_text():
            return "the limit was not logged"
        wait_for(lambda: proxy_line(srv, fqdn("lim"), "80/TCP") ==
                 "t 80/TCP proxy=listening conns=0", "conns back to 0")
        if banner("127.77.12.1", 80) != "lim":
            return "no connection after the others closed"
        return ""
    tally.run("--proxy-max-conns 2: the third connection is reset, counted, logged", conns)

    def bulk_copy():
        data = random.Random(7).randbytes(1 << 20)
        s = connect("127.77.12.1", 80, timeout=10)
        try:
            read_line(s)
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            got = bytearray()
            while True:
                x = s.recv(65536)
                if not x:
                    break
                got.extend(x)
        finally:
            s.close()
        return "" if bytes(got) == data else "echo differs (%d bytes)" % len(got)
    tally.run("--proxy-no-splice: 1 MiB echoed through the read/write path", bulk_copy)

    def udp_idle():
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.settimeout(3)
        try:
            c.sendto(b"x", ("127.77.12.1", 5300))
            c.recvfrom(100)
            line = proxy_line(srv, fqdn("lim"), "5300/UDP")
            if line != "u 5300/UDP proxy=listening flows=1":
                return "CH TXT %r" % line
            wait_for(lambda: proxy_line(srv, fqdn("lim"), "5300/UDP") ==
                     "u 5300/UDP proxy=listening flows=0", "the idle flow expiring", 6)
            c.sendto(b"y", ("127.77.12.1", 5300))
            if c.recvfrom(100)[0] != b"ulim y":
                return "no answer on a new flow"
        finally:
            c.close()
        return ""
    tally.run("--udp-timeout 1: an idle flow is closed, the next datagram opens one", udp_idle)


def case_connect_timeout(tally, srv, d):
    """An endpoint whose accept queue is full drops SYNs: after
    --proxy-connect-timeout the next endpoint is tried."""
    hole = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    hole.bind(("127.78.13.1", 8080))
    hole.listen(0)
    fillers = []
    try:
        for _ in range(3):  # fill the queue; later SYNs get no answer
            f = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            f.setblocking(False)
            f.connect_ex(("127.78.13.1", 8080))
            fillers.append(f)
        tcp_backend("alive", "127.78.13.2", 8080)
        write_manifest(d, "slow.json", [
            service("slow", "127.77.13.1", [{"port": 80, "targetPort": 8080}])] +
            [pod("slow-%d" % i, "127.78.13.%d" % i, [{"containerPort": 8080}], {"app": "slow"})
             for i in (1, 2)])
        wait_endpoints(srv, fqdn("slow"), "endpoints=2/2")

        def body():
            got = []
            for _ in range(4):
                # This server allows 2 connections: let the last one finish.
                wait_for(lambda: proxy_line(srv, fqdn("slow"), "80/TCP") ==
                         "- 80/TCP proxy=listening conns=0", "slow's connections closed")
                got.append(banner("127.77.13.1", 80))
            if got != ["alive"] * 4:
                return "reached %s" % got
            if "endpoint 127.78.13.1:8080: no answer in time" not in srv.stderr_text():
                return "the silent endpoint was not logged"
            return ""
        tally.run("an endpoint that does not answer in time is skipped", body)
    finally:
        for f in fillers:
            f.close()
        hole.close()


def free_node_port():
    for _ in range(200):
        p = random.randint(30000, 32767)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", p))
            return p
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free NodePort")


def low_ports_unavailable():
    """None when this process may listen on port 80 (root, CAP_NET_BIND_SERVICE
    or a low net.ipv4.ip_unprivileged_port_start), else why not."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.77.255.1", 80))
        return None
    except PermissionError as e:
        return "listening on port 80 is not allowed here (%s): the test needs root" % e
    except OSError:
        return None  # taken or otherwise busy: allowed; the cases will tell
    finally:
        s.close()


def main(tally):
    why = low_ports_unavailable()
    if why:
        t.skip(why)
    tmp = tempfile.mkdtemp(prefix="svcdns-proxy-")
    try:
        d = os.path.join(tmp, "m")
        os.mkdir(d)
        http = t.free_port()
        srv = t.Server(d, args=["--proxy", "--node-address", "127.0.0.1", "--http",
                                "127.0.0.1:%d" % http, "--lameduck", "0"]).start()
        case_article(tally, srv, d)
        case_multiport(tally, srv, d)
        case_named_target(tally, srv, d)
        case_round_robin(tally, srv, d)
        case_refusing(tally, srv, d)
        case_no_endpoints(tally, srv, d)
        case_endpoint_removed(tally, srv, d)
        case_udp(tally, srv, d)
        case_affinity(tally, srv, d)
        case_nodeport(tally, srv, d, free_node_port())
        case_service_deleted(tally, srv, d)
        case_bind_conflict(tally, srv, d)
        tally.server_stopped(srv)

        d2 = os.path.join(tmp, "m2")
        os.mkdir(d2)
        srv2 = t.Server(d2, args=["--proxy", "--proxy-max-conns", "2", "--proxy-no-splice",
                                  "--udp-timeout", "1", "--proxy-connect-timeout", "300"]).start()
        case_limits(tally, srv2, d2)
        case_connect_timeout(tally, srv2, d2)
        tally.server_stopped(srv2)
    finally:
        for b in BACKENDS:
            b.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    t.main_guard(t.Tally("proxy"), main)
