"""The datapath on a node-like network: in a network namespace this test
creates, svcdns listens on a ClusterIP of the real service CIDR (10.96.77.10)
before any route to it exists (IP_FREEBIND), and traffic flows once the
`local` route doc/datapath.md describes is added:

    ip route add local 10.96.0.0/12 dev lo

Needs iproute2 and root (CAP_SYS_ADMIN and CAP_NET_ADMIN) to create the
namespace; where either is missing, the test says which and is skipped (77). Every
process it starts runs inside the namespace and is stopped by PID; the
namespace is deleted at the end.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import svcdns_testlib as t  # noqa: E402

NS = "svcdns-px-%d" % os.getpid()
CIP = "10.96.77.10"

BACKEND = r"""
import socket, sys, threading
def tcp():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.5", 8080)); s.listen(16)
    while True:
        c, _ = s.accept(); c.sendall(b"pod-in-netns\n"); c.close()
def udp():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.5", 5301))
    while True:
        d, a = u.recvfrom(2000); u.sendto(b"udp-pod " + d, a)
threading.Thread(target=udp, daemon=True).start()
print("ready", flush=True)
tcp()
"""

CLIENT = r"""
import socket, sys
ip, port, proto = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    if proto == "tcp":
        s = socket.create_connection((ip, port), timeout=3)
        print(s.makefile().readline().strip())
    else:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(3)
        u.sendto(b"hi", (ip, port)); d, a = u.recvfrom(2000)
        print("%s from %s:%d" % (d.decode(), a[0], a[1]))
except OSError as e:
    print("error:", e.__class__.__name__)
"""


def nsexec(*cmd, timeout=10):
    p = subprocess.run(["ip", "netns", "exec", NS] + list(cmd), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace").strip()


def client(ip, port, proto="tcp"):
    return nsexec("/usr/bin/python3", "-c", CLIENT, ip, str(port), proto)[1]


class NsServer(t.Server):
    """svcdns inside the namespace (`ip netns exec` execs it: same PID)."""

    def cmdline(self):
        return ["ip", "netns", "exec", NS] + super().cmdline()

    def wait_ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise t.ServerError("svcdns exited with status %s:\n%s"
                                    % (self.proc.returncode, self.stderr_tail()))
            rc, out = nsexec("dig", "@127.0.0.1", "-p", str(self.port), "+short", "+time=1",
                             "+tries=1", "dns-version.cluster.local", "TXT")
            if rc == 0 and "1.1.0" in out:
                return
            time.sleep(0.1)
        raise t.ServerError("svcdns in %s not ready:\n%s" % (NS, self.stderr_tail()))

    def chaos(self, name):
        return nsexec("dig", "@127.0.0.1", "-p", str(self.port), "+short", "CH", "TXT",
                      name)[1].splitlines()


def body(tally):
    tmp = tempfile.mkdtemp(prefix="svcdns-netns-")
    backend = None
    try:
        d = os.path.join(tmp, "m")
        os.mkdir(d)
        svc = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "web", "namespace": "default"},
               "spec": {"clusterIP": CIP, "selector": {"app": "web"},
                        "ports": [{"name": "http", "port": 80, "targetPort": 8080},
                                  {"name": "dns", "port": 53, "targetPort": 5301,
                                   "protocol": "UDP"}]}}
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"}},
               "spec": {"containers": [{"name": "c", "image": "x",
                                        "ports": [{"containerPort": 8080},
                                                  {"containerPort": 5301,
                                                   "protocol": "UDP"}]}]},
               "status": {"phase": "Running", "podIP": "127.0.0.5",
                          "conditions": [{"type": "Ready", "status": "True"}]}}
        with open(os.path.join(d, "web.json"), "w") as f:
            json.dump({"apiVersion": "v1", "kind": "List", "items": [svc, pod]}, f)

        backend = subprocess.Popen(["ip", "netns", "exec", NS, "/usr/bin/python3", "-c",
                                    BACKEND], stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL)
        if backend.stdout.readline().strip() != b"ready":
            tally.fail("backend", "the backend in the namespace did not start")
            return
        srv = NsServer(d, args=["--proxy"]).start()
        name = "web.default.svc.cluster.local"

        def before_route():
            lines = srv.chaos(name)
            if '"http 80/TCP proxy=listening conns=0"' not in lines:
                return "not listening on %s:80 before the route exists: %s" % (CIP, lines)
            out = client(CIP, 80)
            if "error" not in out:
                return "reached %s without a route: %r" % (CIP, out)
            return ""
        tally.run("IP_FREEBIND: listening on %s:80 before any route to it" % CIP, before_route)

        rc, out = nsexec("ip", "route", "add", "local", "10.96.0.0/12", "dev", "lo")
        if not tally.check(rc == 0, "ip route add local 10.96.0.0/12 dev lo", out):
            return

        def after_route():
            out = client(CIP, 80)
            if out != "pod-in-netns":
                return "TCP to %s:80 gave %r" % (CIP, out)
            out = client(CIP, 53, "udp")
            if out != "udp-pod hi from %s:53" % CIP:
                return "UDP to %s:53 gave %r" % (CIP, out)
            out = client("10.96.77.11", 80)
            if out != "error: ConnectionRefusedError":
                return "an unused ClusterIP gave %r, want a refusal" % out
            return ""
        tally.run("with the local route: TCP and UDP reach the Pod, unused IPs refuse",
                  after_route)
        tally.server_stopped(srv)
    finally:
        if backend is not None:
            backend.send_signal(signal.SIGTERM)
            try:
                backend.wait(timeout=5)
            except subprocess.TimeoutExpired:
                backend.kill()
                backend.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def namespace_unavailable():
    """Creates the namespace; returns None, or the true reason it cannot be
    made on this machine."""
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    try:
        r = subprocess.run(["ip", "netns", "add", NS], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "ip netns add: %s" % e
    if r.returncode == 0:
        return None
    out = r.stdout.decode(errors="replace").strip()
    if os.geteuid() != 0:
        return "ip netns add failed (%s): it needs root" % out
    return ("ip netns add failed as root (%s): this machine does not let it create "
            "network namespaces (CAP_SYS_ADMIN and CAP_NET_ADMIN needed)" % out)


def main():
    why = namespace_unavailable()
    if why:
        t.skip(why)
    try:
        subprocess.run(["ip", "-n", NS, "link", "set", "lo", "up"], check=True)
        t.main_guard(t.Tally("proxy in a network namespace"), body)
    finally:
        subprocess.run(["ip", "netns", "del", NS], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
