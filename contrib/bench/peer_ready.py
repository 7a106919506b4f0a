#!/usr/bin/python3
"""Peers that resolve the moment they are ready, measured through a cache.

A headless Service of N endpoints (default 1,000, in EndpointSlices of 100 as
the controller cuts them) on the fake API server (tests/fakeapi/fakeapi.py, its
own process); svcdns watches it; Unbound (Debian's) forwards cluster.local to
svcdns and caches, as a node-local cache does. The endpoints turn ready one by
one (one every --interval ms). Each endpoint has a client that asks Unbound for
its name every 100 ms from --lead seconds before the endpoint turns ready until
the name answers its address; the figure is the time from the update of the
EndpointSlice to the first answer with the address: p50, p99 and max over all
endpoints, and the same for the first and the last tenth.

Two modes, one run each:
  coming  the endpoint is in the slice, not ready, and turns ready: svcdns
          answers its name NXDOMAIN with a 1 s negative TTL meanwhile;
  absent  the endpoint is added to the slice when ready (a name nothing
          announced): the zone's normal negative TTL (--ttl) holds in the cache.

    contrib/bench/peer_ready.py                      # builds nothing: uses build-rel/svcdns
    SVCDNS_BIN=build-h/svcdns contrib/bench/peer_ready.py --endpoints 200

Prints one SUMMARY line per mode."""

import argparse
import http.client
import json
import os
import random
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from benchnet import free_port  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
FAKEAPI = os.path.join(ROOT, "tests", "fakeapi", "fakeapi.py")
NS = "peers"
SVC = "workers"
PER_SLICE = 100


def host(i):
    return "w-%d" % i


def addr(i):
    return "10.210.%d.%d" % (i // 250, i % 250 + 1)


def eps_slice(k, n, ready_upto, mode):
    """Slice k (endpoints k*100 ..): endpoints below ready_upto are ready; the
    others are not ready (coming) or not there (absent)."""
    eps = []
    for i in range(k * PER_SLICE, min(n, (k + 1) * PER_SLICE)):
        ready = i < ready_upto
        if not ready and mode == "absent":
            continue
        eps.append({"addresses": [addr(i)], "hostname": host(i),
                    "conditions": {"ready": ready}})
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "%s-%d" % (SVC, k), "namespace": NS,
                         "labels": {"kubernetes.io/service-name": SVC}},
            "addressType": "IPv4", "ports": [{"name": "mpi", "port": 2222, "protocol": "TCP"}],
            "endpoints": eps}


class Api:
    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def apply(self, obj):
        self.conn.request("POST", "/fake/apply", body=json.dumps(obj).encode(),
                          headers={"Content-Type": "application/json"})
        r = self.conn.getresponse()
        r.read()
        if r.status // 100 != 2:
            raise RuntimeError("fake API: apply answered %d" % r.status)


def query(qid, name):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack(">HH", 1, 1)


def wait_port(port, udp_name=None, timeout=20.0):
    """Until a DNS server on port answers udp_name with NOERROR, or TCP port opens."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if udp_name is None:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(0.3)
                s.sendto(query(7, udp_name), ("127.0.0.1", port))
                r = s.recv(4096)
                if r[3] & 15 == 0 and struct.unpack(">H", r[6:8])[0] > 0:
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def unbound_conf(d, port, upstream):
    return """server:
    interface: 127.0.0.1@%d
    port: %d
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    username: ""
    chroot: ""
    directory: "%s"
    pidfile: "%s/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 0
    num-threads: 1
    module-config: "iterator"
    do-ip6: no
    qname-minimisation: no
    domain-insecure: "cluster.local."
    local-zone: "cluster.local." transparent
forward-zone:
    name: "cluster.local."
    forward-addr: 127.0.0.1@%d
remote-control:
    control-enable: no
""" % (port, port, d, d, upstream)


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))] if v else float("nan")


def run_mode(args, mode, tmp):
    procs = []
    api_port, dns_port, ub_port = free_port(), free_port(), free_port()
    try:
        procs.append(subprocess.Popen([sys.executable, FAKEAPI, "--port", str(api_port)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        if not wait_port(api_port):
            raise RuntimeError("the fake API server did not start")
        api = Api(api_port)
        api.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        api.apply({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": SVC, "namespace": NS},
                   "spec": {"clusterIP": "None", "ports": [{"name": "mpi", "port": 2222}]}})
        # One ready endpoint beyond the measured ones, so that the Service
        # answers from the start (it is how svcdns tells it has synced).
        api.apply({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                   "metadata": {"name": SVC + "-launcher", "namespace": NS,
                                "labels": {"kubernetes.io/service-name": SVC}},
                   "addressType": "IPv4",
                   "ports": [{"name": "mpi", "port": 2222, "protocol": "TCP"}],
                   "endpoints": [{"addresses": ["10.211.0.1"], "hostname": "launcher",
                                  "conditions": {"ready": True}}]})
        n = args.endpoints
        n_slices = (n + PER_SLICE - 1) // PER_SLICE
        for k in range(n_slices):
            api.apply(eps_slice(k, n, 0, mode))
        log = open(os.path.join(tmp, "svcdns-%s.log" % mode), "wb")
        procs.append(subprocess.Popen(
            [args.svcdns, "--api-server", "http://127.0.0.1:%d" % api_port,
             "--listen", "127.0.0.1:%d" % dns_port, "--upstream", "none",
             "--ttl", str(args.ttl), "--not-ready-ttl", str(args.not_ready_ttl),
             "--threads", "1"],
            stdout=log, stderr=log))
        if not wait_port(dns_port, "launcher.%s.%s.svc.cluster.local" % (SVC, NS)):
            raise RuntimeError("svcdns did not sync")
        ud = os.path.join(tmp, "unbound-" + mode)
        os.mkdir(ud)
        with open(os.path.join(ud, "unbound.conf"), "w") as f:
            f.write(unbound_conf(ud, ub_port, dns_port))
        procs.append(subprocess.Popen([args.unbound, "-d", "-c",
                                       os.path.join(ud, "unbound.conf")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        if not wait_port(ub_port, "launcher.%s.%s.svc.cluster.local" % (SVC, NS)):
            raise RuntimeError("unbound did not answer")
        return measure(args, mode, api, dns_port if args.direct else ub_port)
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def measure(args, mode, api, ub_port):
    """Turns the endpoints ready one by one while their clients ask; returns
    the latency of each endpoint (s), in endpoint order."""
    n = args.endpoints
    interval = args.interval / 1000.0
    lead = args.lead
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    rnd = random.Random(7)
    t0 = time.monotonic() + lead
    ready_at = [None] * n     # when the slice update was sent
    done = [None] * n         # first answer with the address
    next_ask = [t0 + i * interval - lead + rnd.random() * 0.1 for i in range(n)]
    inflight = {}
    names = ["%s.%s.%s.svc.cluster.local" % (host(i), SVC, NS) for i in range(n)]
    turned = 0
    qid = 0
    last_rcode = [None] * n
    while any(d is None for d in done):
        now = time.monotonic()
        # The next endpoint turns ready: its slice is updated (one at a
        # time between reading answers, should the updates fall behind).
        if turned < n and now >= t0 + turned * interval:
            ready_at[turned] = time.monotonic()
            api.apply(eps_slice(turned // PER_SLICE, n, turned + 1, mode))
            turned += 1
            now = time.monotonic()
        for i in range(n):
            if done[i] is None and next_ask[i] <= now:
                qid = (qid + 1) & 0xFFFF
                inflight[qid] = i
                sock.sendto(query(qid, names[i]), ("127.0.0.1", ub_port))
                next_ask[i] += 0.1
        if now > t0 + n * interval + args.give_up:
            break
        wake = min([next_ask[i] for i in range(n) if done[i] is None] +
                   [t0 + turned * interval if turned < n else now + 0.1])
        for _key, _ev in sel.select(max(0.0, min(0.01, wake - time.monotonic()))):
            while True:
                try:
                    r = sock.recv(4096)
                except BlockingIOError:
                    break
                i = inflight.pop(struct.unpack(">H", r[:2])[0], None)
                if i is None or done[i] is not None:
                    continue
                last_rcode[i] = r[3] & 15
                if r[3] & 15 == 0 and struct.unpack(">H", r[6:8])[0] > 0 and ready_at[i]:
                    done[i] = time.monotonic()
    sock.close()
    missed = [i for i in range(n) if done[i] is None]
    if missed:
        hist = {}
        for i in missed:
            hist[last_rcode[i]] = hist.get(last_rcode[i], 0) + 1
        print("unresolved: %d, last rcode of each: %s, first %s" % (len(missed), hist,
                                                                     missed[:5]), flush=True)
    lat = [(d - r) if d is not None and r is not None else None
           for d, r in zip(done, ready_at)]
    spread = [r for r in ready_at if r is not None]
    rate = (len(spread) - 1) / (spread[-1] - spread[0]) if len(spread) > 1 else 0.0
    return lat, rate


def summary(mode, res, args):
    lat, rate = res
    got = [v for v in lat if v is not None]
    tenth = max(1, len(lat) // 10)
    first = [v for v in lat[:tenth] if v is not None]
    last = [v for v in lat[-tenth:] if v is not None]
    print("SUMMARY peer_ready mode=%s via=%s not-ready-ttl=%d ttl=%d endpoints=%d "
          "ready-rate=%.1f/s resolved=%d p50=%.3fs p99=%.3fs max=%.3fs "
          "first-tenth p50=%.3fs p99=%.3fs last-tenth p50=%.3fs p99=%.3fs"
          % (mode, "svcdns" if args.direct else "unbound", args.not_ready_ttl, args.ttl,
             len(lat), rate, len(got), pct(got, 50), pct(got, 99), max(got) if got else
             float("nan"), pct(first, 50), pct(first, 99), pct(last, 50), pct(last, 99)),
          flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoints", type=int, default=1000)
    ap.add_argument("--interval", type=float, default=100.0,
                    help="ms between two endpoints turning ready (default 100)")
    ap.add_argument("--lead", type=float, default=2.0,
                    help="s a client asks before its endpoint turns ready (default 2)")
    ap.add_argument("--ttl", type=int, default=30,
                    help="svcdns --ttl: the normal negative TTL (default 30, CoreDNS's)")
    ap.add_argument("--not-ready-ttl", type=int, default=0,
                    help="svcdns --not-ready-ttl (default 0, svcdns's)")
    ap.add_argument("--give-up", type=float, default=60.0,
                    help="s after the last endpoint turned ready to stop waiting")
    ap.add_argument("--modes", default="coming,absent")
    ap.add_argument("--direct", action="store_true",
                    help="clients ask svcdns itself, not Unbound (no cache on the path)")
    ap.add_argument("--svcdns", default=os.environ.get(
        "SVCDNS_BIN", os.path.join(ROOT, "build-rel", "svcdns")))
    ap.add_argument("--unbound", default=shutil.which("unbound") or "/usr/sbin/unbound")
    args = ap.parse_args()
    if not os.path.exists(args.svcdns):
        sys.exit("no svcdns at %s: build one (cmake -B build-rel -DCMAKE_BUILD_TYPE=Release) "
                 "or set SVCDNS_BIN" % args.svcdns)
    if not os.path.exists(args.unbound):
        sys.exit("no unbound: apt-get install unbound")
    tmp = tempfile.mkdtemp(prefix="svcdns-peer-ready-")
    try:
        for mode in args.modes.split(","):
            summary(mode, run_mode(args, mode, tmp), args)
    finally:
        if os.environ.get("PEER_READY_KEEP"):
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
