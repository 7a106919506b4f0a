#!/usr/bin/python3
"""The scale run: svcdns against a 5,000-node cluster's objects, under churn,
through an API server restart.

The fake API server (tests/fakeapi/fakeapi.py, run by this script as its own
process) holds --pods Pods on --nodes nodes, --services Services (90% with a
ClusterIP, 10% headless) and one EndpointSlice of 5 endpoints per Service.
svcdns syncs with it (with `--pods verified`, so the Pods are listed and
watched too); then for --duration seconds the script changes --churn
EndpointSlices a second (one endpoint replaced, the controller's trigger time
stamped), a client process asks --qps queries a second (Services, headless
Services, Pods, names that do not exist), and half way through the API server
restarts: it goes away for --down seconds and comes back with its watch history
compacted, so svcdns must list everything again.

    contrib/bench/scale_run.py --bin build-rel/svcdns                     # 10,000 Services, 10 min
    contrib/bench/scale_run.py --bin build-rel/svcdns --duration 120
    contrib/bench/scale_run.py --bin build-rel/svcdns --services 100000

It reports:
  * RSS over time (sampled every --sample s): the peak of the first sync, the
    steady RSS (median before the restart), the peak after the restart (the
    relist), and the process's own high-water mark;
  * event -> served answer: every --probe-every-th change is made to a headless
    Service, whose A answer lists the endpoint addresses; from the moment the
    fake wrote the event to svcdns's watch (the fake's /fake/sent) to the first
    answer carrying the new address, p50, p99 and max; and the p99 bucket of
    svcdns's own svcdns_data_change_to_serve_seconds and programming latency;
  * the client's queries: sent, answered, by rcode, SERVFAIL and timeouts (2 s);
  * API requests: the lists and watches the fake served, and svcdns's
    svcdns_api_requests_total.

Every process it starts (the fake, svcdns, the client) is stopped by PID on any
exit. Name a Release binary for memory figures: a sanitizer build needs several
times the memory. --out DIR keeps the RSS samples, the probes and svcdns's log.
"""

import argparse
import http.client
import ipaddress
import json
import os
import random
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "fakeapi"))
import fakeapi  # noqa: E402
from benchnet import free_port  # noqa: E402

ENDPOINTS = 5
POD_BASE = int(ipaddress.ip_address("10.128.0.1"))
NEW_BASE = int(ipaddress.ip_address("10.64.0.1"))  # replacement endpoints of the churn
SVC_BASE = int(ipaddress.ip_address("10.96.0.10"))
MANAGED = "endpointslice-controller.k8s.io"


# ---- the cluster -------------------------------------------------------------

def n_namespaces(services):
    return max(1, services // 100)


def pod_ip(i):
    return str(ipaddress.ip_address(POD_BASE + i))


def headless(i):
    return i % 10 == 9


def svc_name(i, services):
    return "svc-%d" % i, "ns-%d" % (i % n_namespaces(services))


def make_pod(i, services, nodes):
    ns = "ns-%d" % (i % n_namespaces(services))
    ip = pod_ip(i)
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "app-%d-6f9c7d5b8-%05d" % (i % 997, i), "namespace": ns,
                         "labels": {"app": "app-%d" % (i % 997)}},
            "spec": {"nodeName": "node-%d" % (i % nodes),
                     "containers": [{"name": "main", "image": "registry.example/app:1.0",
                                     "ports": [{"containerPort": 8080, "name": "http"}]}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def make_service(i, services):
    name, ns = svc_name(i, services)
    ip = "None" if headless(i) else str(ipaddress.ip_address(SVC_BASE + i))
    return fakeapi.service(name, ns, ip, ports=(("http", 80, 8080),))


def make_slice(i, services, pods, nodes, addrs=None):
    name, ns = svc_name(i, services)
    if addrs is None:
        addrs = [pod_ip((i * ENDPOINTS + j) % pods) for j in range(ENDPOINTS)]
    s = fakeapi.slice_(name + "-x7k2p", ns, name, addrs)
    for j, ep in enumerate(s["endpoints"]):
        node = (i * ENDPOINTS + j) % nodes
        ep["nodeName"] = "node-%d" % node
        ep["zone"] = "zone-%d" % (node % 3)
        ep["conditions"] = {"ready": True, "serving": True, "terminating": False}
        ep["targetRef"] = {"kind": "Pod", "namespace": ns, "name": "app-%d" % j}
    return s


def serve_fake(args):
    """The fake API server process: the cluster, then serving until SIGTERM."""
    api = fakeapi.FakeAPI(port=args.port)
    objs = [fakeapi.namespace("ns-%d" % i) for i in range(n_namespaces(args.services))]
    api.apply_many(objs, copy_obj=False)
    for i in range(args.pods):
        api.apply(make_pod(i, args.services, args.nodes), copy_obj=False)
    for i in range(args.services):
        api.apply(make_service(i, args.services), copy_obj=False)
        api.apply(make_slice(i, args.services, args.pods, args.nodes), copy_obj=False)
    api.prebuild(500)
    import gc
    gc.freeze()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    api.start()
    print("ready %d" % api.port, flush=True)
    parent = os.getppid()
    while not stop.wait(1):
        if os.getppid() != parent:  # the driver died without stopping us
            break
    api.stop()


# ---- DNS ---------------------------------------------------------------------

def dns_query(qid, name, qtype=1):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack(">HH", qtype, 1)


def a_records(resp):
    """(rcode, [IPv4 addresses of the answer section]) of a response."""
    rcode = resp[3] & 15
    qd, an = struct.unpack(">HH", resp[4:8])
    off = 12
    for _ in range(qd):
        off = skip_name(resp, off) + 4
    addrs = []
    for _ in range(an):
        off = skip_name(resp, off)
        typ, _, _, rdlen = struct.unpack(">HHIH", resp[off:off + 10])
        off += 10
        if typ == 1 and rdlen == 4:
            addrs.append(socket.inet_ntoa(resp[off:off + 4]))
        off += rdlen
    return rcode, addrs


def skip_name(b, off):
    while True:
        n = b[off]
        if n == 0:
            return off + 1
        if n & 0xC0 == 0xC0:
            return off + 2
        off += n + 1


def client_names(services, pods, count=4096):
    """What the steady load asks: Services, headless Services, Pod names and
    names that do not exist (NXDOMAIN), drawn once."""
    rnd = random.Random(7)
    names = []
    for _ in range(count):
        k = rnd.random()
        i = rnd.randrange(services)
        name, ns = svc_name(i, services)
        if k < 0.6:
            names.append("%s.%s.svc.cluster.local" % (name, ns))
        elif k < 0.8:
            p = rnd.randrange(pods)
            names.append("%s.ns-%d.pod.cluster.local"
                         % (pod_ip(p).replace(".", "-"), p % n_namespaces(services)))
        else:
            names.append("nothere-%d.%s.svc.cluster.local" % (i, ns))
    return names


def load_client(args):
    """The steady client load, its own process: --qps queries a second until
    SIGTERM, then one JSON line of counts on stdout."""
    names = client_names(args.services, args.pods)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    dst = ("127.0.0.1", args.dns_port)
    pending = {}  # qid -> (sent time, second of the run)
    counts = {"sent": 0, "answered": 0, "timeouts": 0, "rcodes": {}, "send_errors": 0}
    bad_seconds = {}  # second -> SERVFAIL or timeouts in it
    t0 = time.monotonic()
    qid = 0
    i = 0
    tick = 0.01
    next_send = t0
    stop_at = None
    parent = os.getppid()
    while True:
        now = time.monotonic()
        if int(now * 10) % 10 == 0 and os.getppid() != parent:
            stop.set()  # the driver died without stopping us
        if stop.is_set():
            # what is in flight may still come back
            if stop_at is None:
                stop_at = now + 2.5
            if not pending or now > stop_at:
                break
        elif now >= next_send:
            per_tick = args.qps * tick
            n = int(per_tick) + (1 if random.random() < per_tick % 1 else 0)
            for _ in range(n):
                qid = (qid + 1) & 0xFFFF
                while qid in pending:
                    qid = (qid + 1) & 0xFFFF
                try:
                    s.sendto(dns_query(qid, names[i % len(names)]), dst)
                except OSError:
                    counts["send_errors"] += 1
                    continue
                i += 1
                counts["sent"] += 1
                pending[qid] = (now, int(now - t0))
            next_send += tick
        r, _, _ = select.select([s], [], [], max(0.0, min(tick, next_send - now)))
        while r:
            try:
                data = s.recv(4096)
            except BlockingIOError:
                break
            q = struct.unpack(">H", data[:2])[0]
            if q not in pending:
                continue
            _, sec = pending.pop(q)
            rc = data[3] & 15
            counts["answered"] += 1
            counts["rcodes"][str(rc)] = counts["rcodes"].get(str(rc), 0) + 1
            if rc == 2:
                bad_seconds[sec] = bad_seconds.get(sec, 0) + 1
        now = time.monotonic()
        for q, (ts, sec) in list(pending.items()):
            if now - ts > 2.0:
                del pending[q]
                counts["timeouts"] += 1
                bad_seconds[sec] = bad_seconds.get(sec, 0) + 1
    counts["timeouts"] += len(pending)
    counts["bad_seconds"] = sorted(bad_seconds.items())
    print(json.dumps(counts), flush=True)


# ---- the driver ----------------------------------------------------------------

def http_get(port, path, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def status_kib(pid):
    """(VmRSS, VmHWM) in KiB, or (0, 0) once the process is gone."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1])
    except OSError:
        pass
    return out.get("VmRSS", 0), out.get("VmHWM", 0)


def ask(port, name, timeout=0.5):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(dns_query(4242, name), ("127.0.0.1", port))
            return a_records(s.recv(4096))
        except OSError:
            return None, []


def metrics(port):
    """name{labels} -> value of svcdns's /metrics."""
    try:
        code, body = http_get(port, "/metrics", timeout=5)
    except OSError:
        return {}
    out = {}
    for line in body.decode(errors="replace").splitlines():
        if line and not line.startswith("#"):
            key, _, val = line.rpartition(" ")
            try:
                out[key] = float(val)
            except ValueError:
                pass
    return out


def hist_quantile(m, name, q, match=""):
    """The upper bound of the bucket holding quantile q of a histogram (all
    series whose labels contain `match` summed), or None when empty."""
    buckets = {}
    for k, v in m.items():
        if k.startswith(name + "_bucket{") and match in k:
            le = k.split('le="')[1].split('"')[0]
            buckets[le] = buckets.get(le, 0) + v
    if not buckets or buckets.get("+Inf", 0) == 0:
        return None
    total = buckets["+Inf"]
    for le in sorted((b for b in buckets if b != "+Inf"), key=float):
        if buckets[le] >= q * total:
            return float(le)
    return float("inf")


def pct(xs, q):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


class Sampler(threading.Thread):
    def __init__(self, pid, every):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.samples = []  # (monotonic, rss KiB)
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            rss, _ = status_kib(self.pid)
            if rss:
                self.samples.append((time.monotonic(), rss))
            self.halt.wait(self.every)

    def between(self, a, b):
        return [r for t, r in self.samples if a <= t < b]


class Churn:
    """Changes EndpointSlices through the fake's /fake/apply: one endpoint of a
    Service's slice replaced by a new address, the trigger time stamped."""

    def __init__(self, args, api_port):
        self.args, self.port = args, api_port
        self.rnd = random.Random(11)
        self.addrs = {}  # service index -> its endpoint addresses now
        self.fresh = 0
        self.conn = None
        self.applied = self.failed = 0

    def change(self, idx):
        """Changes the slices of the Services idx in one request (each its own
        write and watch event): [(resourceVersion, new address)], or None when
        the API server is away (the restart) and no change was made."""
        a = self.args
        objs, news = [], []
        for i in idx:
            addrs = self.addrs.get(i) or [pod_ip((i * ENDPOINTS + j) % a.pods)
                                          for j in range(ENDPOINTS)]
            new = str(ipaddress.ip_address(NEW_BASE + self.fresh % (1 << 22)))
            self.fresh += 1
            s = make_slice(i, a.services, a.pods, a.nodes, addrs[1:] + [new])
            s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] = MANAGED
            s["metadata"]["annotations"] = {fakeapi.TRIGGER_TIME: fakeapi.rfc3339(time.time())}
            objs.append(s)
            news.append((i, addrs[1:] + [new], new))
        body = json.dumps({"kind": "List", "items": objs}).encode()
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            self.conn.request("POST", "/fake/apply", body=body,
                              headers={"Content-Type": "application/json"})
            r = self.conn.getresponse()
            data = r.read()
            if r.status != 200:
                raise OSError("status %d" % r.status)
        except (OSError, http.client.HTTPException):
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            self.failed += len(idx)
            return None
        for i, addrs, _ in news:
            self.addrs[i] = addrs
        self.applied += len(idx)
        return list(zip(json.loads(data)["resourceVersions"], (n for _, _, n in news)))

    def pick(self, probe):
        n = self.args.services
        while True:
            i = self.rnd.randrange(n)
            if headless(i) == probe or n < 10:
                return i


def start_fake(args, tmp):
    port = free_port()
    log = open(os.path.join(tmp, "fakeapi.log"), "wb")
    p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve-fake",
                          "--port", str(port), "--services", str(args.services),
                          "--pods", str(args.pods), "--nodes", str(args.nodes)],
                         stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
    return p, port


def wait_line(p, prefix, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r, _, _ = select.select([p.stdout], [], [], 1.0)
        if r:
            line = p.stdout.readline().decode()
            if not line:
                return None
            if line.startswith(prefix):
                return line
        if p.poll() is not None:
            return None
    return None


def stop_all(procs):
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait_synced(args, dns_port, http_port, proc, t0):
    last = svc_name(args.services - 1, args.services)
    name = "%s.%s.svc.cluster.local" % last
    while True:
        if proc.poll() is not None:
            raise RuntimeError("svcdns exited (%d) before its first sync" % proc.returncode)
        if time.monotonic() - t0 > args.sync_timeout:
            raise RuntimeError("svcdns did not sync within %d s" % args.sync_timeout)
        try:
            ready = http_get(http_port, "/ready", timeout=2)[0] == 200
        except OSError:
            ready = False
        if ready and ask(dns_port, name)[0] == 0:
            return time.monotonic()
        time.sleep(0.1)


class Prober(threading.Thread):
    """Asks for every probed name, one socket for all of them, until its answer
    carries the new address: the churn never waits for a probe, and probes
    that take long (the relist) do not delay the others. A name is asked again
    at most every --probe-interval s; the time seen is when that answer came."""

    def __init__(self, port, interval, timeout):
        super().__init__(daemon=True)
        self.dst, self.interval, self.timeout = ("127.0.0.1", port), interval, timeout
        self.lock = threading.Lock()
        self.new = []
        self.done = []  # (rv, applied, seen or None, after the restart)
        self.halt = threading.Event()

    def add(self, name, want, rv, applied, after):
        with self.lock:
            self.new.append({"q": dns_query(0, name)[2:], "want": want, "rv": rv,
                             "applied": applied, "after": after, "asked": 0.0})

    def run(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
        live = {}  # qid -> probe
        qid = 0
        while not (self.halt.is_set() and not live and not self.new):
            with self.lock:
                for p in self.new:
                    qid = (qid + 1) & 0xFFFF
                    live[qid] = p
                self.new = []
            now = time.monotonic()
            for q, p in list(live.items()):
                if now - p["applied"] > self.timeout:
                    self.done.append((p["rv"], p["applied"], None, p["after"]))
                    del live[q]
                elif now - p["asked"] >= self.interval:
                    p["asked"] = now
                    try:
                        s.sendto(struct.pack(">H", q) + p["q"], self.dst)
                    except OSError:
                        pass
            if not select.select([s], [], [], self.interval)[0]:
                continue
            while True:
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    break
                t = time.monotonic()
                q = struct.unpack(">H", data[:2])[0]
                p = live.get(q)
                if p is not None and p["want"] in a_records(data)[1]:
                    self.done.append((p["rv"], p["applied"], t, p["after"]))
                    del live[q]
        s.close()


def run(args, tmp):
    """The run; true when every goal of correctness held (no failed query, no
    change left unserved) and svcdns exited cleanly."""
    procs = []
    ok = False
    try:
        ok = measure(args, tmp, procs)
    finally:
        stop_all(procs)
        if args.out:
            for name in ("svcdns.log", "fakeapi.log"):
                try:
                    shutil.copy(os.path.join(tmp, name), os.path.join(args.out, name))
                except OSError:
                    pass
    for p in procs:
        if p.args[0] == args.bin and p.returncode != 0:
            print("svcdns exited with status %d (see its log)" % p.returncode, flush=True)
            ok = False
    return ok


def measure(args, tmp, procs):
    fake, api_port = start_fake(args, tmp)
    procs.append(fake)
    t_gen = time.monotonic()
    if not wait_line(fake, "ready", args.sync_timeout):
        raise RuntimeError("the fake API server did not start (see its log)")
    print("fake API server: %d Pods, %d Services, %d EndpointSlices on %d nodes, "
          "ready in %.0f s" % (args.pods, args.services, args.services, args.nodes,
                               time.monotonic() - t_gen), flush=True)
    dns_port, http_port = free_port(), free_port()
    log = open(os.path.join(tmp, "svcdns.log"), "wb")
    cmd = [args.bin, "--api-server", "http://127.0.0.1:%d" % api_port,
           "--listen", "127.0.0.1:%d" % dns_port, "--http", "127.0.0.1:%d" % http_port,
           "--upstream", "none", "--pods", "verified", "--log-level", "warn",
           "--lameduck", "0"] + args.extra
    t0 = time.monotonic()
    svcdns = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    procs.insert(0, svcdns)
    sampler = Sampler(svcdns.pid, args.sample)
    sampler.start()
    t_sync = wait_synced(args, dns_port, http_port, svcdns, t0)
    hwm_sync = status_kib(svcdns.pid)[1]
    print("svcdns: first sync served after %.1f s, peak RSS %.1f MiB so far"
          % (t_sync - t0, hwm_sync / 1024.0), flush=True)
    time.sleep(args.settle)
    m0 = metrics(http_port)
    client = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--load-client", "--dns-port",
         str(dns_port), "--qps", str(args.qps), "--services", str(args.services),
         "--pods", str(args.pods)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    procs.insert(0, client)
    churn = Churn(args, api_port)
    prober = Prober(dns_port, args.probe_interval, args.probe_timeout)
    prober.start()
    t_start = time.monotonic()
    t_restart = t_start + args.restart_at
    restarted = None
    hwm_restart = 0
    n = 0
    while True:
        now = time.monotonic()
        if now - t_start >= args.duration:
            break
        if restarted is None and now >= t_restart:
            http_get_post(api_port, "/fake/restart?down=%g&compact=1" % args.down)
            restarted = time.monotonic()
            hwm_restart = status_kib(svcdns.pid)[1]
            print("API server restarted at %.0f s (away %g s, history compacted)"
                  % (restarted - t_start, args.down), flush=True)
        due = int((now - t_start) * args.churn) + 1 - n
        if due <= 0:
            time.sleep(min((n / float(args.churn)) - (now - t_start), 0.05))
            continue
        # what fell due since the last request, in one request (at most 50)
        batch = []
        for _ in range(min(due, 50)):
            n += 1
            is_probe = n % args.probe_every == 0
            batch.append((churn.pick(is_probe), is_probe))
        done = churn.change([i for i, _ in batch])
        t_applied = time.monotonic()
        for (i, is_probe), (rv, new) in zip(batch, done or []):
            if is_probe:
                name, ns = svc_name(i, args.services)
                prober.add("%s.%s.svc.cluster.local" % (name, ns), new, rv, t_applied,
                           restarted is not None)
    t_end = time.monotonic()
    prober.halt.set()
    prober.join()
    probes = prober.done
    client.send_signal(signal.SIGTERM)
    out, _ = client.communicate(timeout=30)
    load = json.loads(out.decode().strip().splitlines()[-1])
    m1 = metrics(http_port)
    rate = json.loads(http_get(api_port, "/fake/rate?since=%f" % t_start)[1])
    rate_all = json.loads(http_get(api_port, "/fake/rate?since=%f" % t0)[1])
    rss_now, hwm = status_kib(svcdns.pid)
    sampler.halt.set()
    lat, lost, listed = [], 0, []
    lat_after, lat_before = [], []
    conn = http.client.HTTPConnection("127.0.0.1", api_port, timeout=10)
    for rv, applied, seen, after in probes:
        if seen is None:
            lost += 1
            continue
        conn.request("GET", "/fake/sent?resource=endpointslices&rv=%d" % rv)
        sent = json.loads(conn.getresponse().read())["t"]
        if sent is None:
            # made while svcdns was listing again: it came with a list page,
            # not a watch event; timed from the change being made
            listed.append((seen - applied) * 1000)
            continue
        ms = max(0.0, (seen - sent) * 1000)
        lat.append(ms)
        (lat_after if after else lat_before).append(ms)
    # the high-water mark grew after the restart: the relist's peak, which
    # sampling may have missed
    relist_hwm = hwm if restarted and hwm > hwm_restart else 0
    report(args, sampler, t0, t_sync, t_start, restarted, t_end, hwm_sync, hwm, relist_hwm,
           rss_now, lat, lat_before, lat_after, lost, listed, load, rate, rate_all, m0, m1, churn)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "rss.tsv"), "w") as f:
            f.write("seconds\trss_kib\n")
            for t, r in sampler.samples:
                f.write("%.2f\t%d\n" % (t - t0, r))
        with open(os.path.join(args.out, "probes.tsv"), "w") as f:
            f.write("ms\n" + "".join("%.3f\n" % x for x in lat))
    return (load["timeouts"] == 0 and load["rcodes"].get("2", 0) == 0 and lost == 0 and
            not load["send_errors"])


def http_get_post(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("POST", path)
        c.getresponse().read()
    finally:
        c.close()


def report(args, sampler, t0, t_sync, t_start, restarted, t_end, hwm_sync, hwm, relist_hwm,
           rss_now, lat, lat_before, lat_after, lost, listed, load, rate, rate_all, m0, m1, churn):
    mib = 1024.0
    steady = sampler.between(t_start, restarted or t_end)
    steady_mid = pct(steady, 0.5) if steady else 0
    after = sampler.between(restarted, t_end) if restarted else []
    relist_peak = max(after + [relist_hwm]) if restarted else 0
    print("RSS over time (MiB, every %g s; one line per tenth of the run):" % args.sample)
    step = max(1, len(sampler.samples) // 10)
    for t, r in sampler.samples[::step]:
        print("  %7.1f s  %7.1f" % (t - t0, r / mib))
    api_req = {}
    for k, v in m1.items():
        if k.startswith("svcdns_api_requests_total{"):
            verb = k.split('verb="')[1].split('"')[0] if 'verb="' in k else "?"
            api_req[verb] = api_req.get(verb, 0) + v - m0.get(k, 0)
    lists = sum(s[1] for s in rate["seconds"])
    # streamed lists (WatchList) are watches to the server: svcdns counts its
    # relists itself, however they were made
    relists = sum(v - m0.get(k, 0) for k, v in m1.items()
                  if k.startswith("svcdns_kubernetes_relists_total"))
    watches = sum(s[2] for s in rate["seconds"])
    run_s = t_end - t_start
    serve_p99 = hist_quantile(m1, "svcdns_data_change_to_serve_seconds", 0.99)
    prog_p99 = hist_quantile(m1, "svcdns_dns_programming_duration_seconds", 0.99)
    bad = load["rcodes"].get("2", 0)
    print("first sync: %.1f s to serving, peak RSS %.1f MiB (%.2fx steady)"
          % (t_sync - t0, hwm_sync / mib, hwm_sync / float(steady_mid or 1)))
    print("steady RSS (median before the restart): %.1f MiB" % (steady_mid / mib))
    if restarted:
        print("after the restart: peak RSS %.1f MiB (%.2fx steady)"
              % (relist_peak / mib, relist_peak / float(steady_mid or 1)))
    print("high-water mark of the whole run: %.1f MiB; at the end %.1f MiB"
          % (hwm / mib, rss_now / mib))
    print("churn: %d EndpointSlice changes in %.0f s (%.1f/s, %.1f/s asked), %d not made while "
          "the API server was away" % (churn.applied, run_s, churn.applied / run_s,
                                       (churn.applied + churn.failed) / run_s, churn.failed))
    print("event -> served answer (the fake writing the event on svcdns's watch to the first "
          "answer carrying it): %d probes, p50 %.2f ms, p99 %.2f ms, max %.2f ms; not served "
          "within %g s: %d" % (len(lat), pct(lat, 0.5), pct(lat, 0.99),
                               max(lat) if lat else float("nan"), args.probe_timeout, lost))
    if lat_before:
        print("  of them before the restart: %d, p50 %.2f ms, p99 %.2f ms, max %.2f ms"
              % (len(lat_before), pct(lat_before, 0.5), pct(lat_before, 0.99),
                 max(lat_before)))
    if lat_after:
        print("  of them after the restart: %d, p50 %.2f ms, p99 %.2f ms, max %.2f ms"
              % (len(lat_after), pct(lat_after, 0.5), pct(lat_after, 0.99), max(lat_after)))
    if listed:
        print("changes made while svcdns listed again after the restart (no watch event): %d, "
              "served p50 %.0f ms, max %.0f ms after the change was made"
              % (len(listed), pct(listed, 0.5), max(listed)))
    print("svcdns's histograms, p99 bucket: data change to serve <= %s s, programming "
          "latency <= %s s" % (serve_p99, prog_p99))
    builds = {k: int(m1.get('svcdns_snapshot_builds_total{kind="%s"}' % k, 0) -
                     m0.get('svcdns_snapshot_builds_total{kind="%s"}' % k, 0))
              for k in ("full", "incremental")}
    print("snapshots built during the run: %d in full, %d incrementally; build time p99 bucket "
          "<= %s s" % (builds["full"], builds["incremental"],
                       hist_quantile(m1, "svcdns_snapshot_build_duration_seconds", 0.99)))
    print("client: %d queries sent, %d answered (rcodes %s), SERVFAIL %d, timeouts %d, "
          "send errors %d" % (load["sent"], load["answered"], load["rcodes"], bad,
                              load["timeouts"], load["send_errors"]))
    if load["bad_seconds"]:
        print("  seconds of the client's run with a failure: %s" % load["bad_seconds"][:20])
    print("API requests the fake served: %d lists (pages) and %d watches from svcdns's start "
          "(first sync included), %d and %d during the run; svcdns_api_requests_total by verb "
          "during the run: %s"
          % (sum(s[1] for s in rate_all["seconds"]), sum(s[2] for s in rate_all["seconds"]),
             lists, watches, {k: int(v) for k, v in sorted(api_req.items())}))
    print("SUMMARY scale_run services=%d pods=%d nodes=%d duration=%.0f churn=%.1f/s "
          "sync_s=%.1f sync_peak_mib=%.1f steady_mib=%.1f relist_peak_mib=%.1f "
          "hwm_mib=%.1f event_p50_ms=%.2f event_p99_ms=%.2f event_max_ms=%.2f unserved=%d "
          "queries=%d answered=%d servfail=%d timeouts=%d api_lists=%d api_watches=%d "
          "relists=%d"
          % (args.services, args.pods, args.nodes, run_s, churn.applied / run_s,
             t_sync - t0, hwm_sync / mib, steady_mid / mib,
             relist_peak / mib, hwm / mib, pct(lat, 0.5), pct(lat, 0.99),
             max(lat) if lat else float("nan"), lost, load["sent"], load["answered"], bad,
             load["timeouts"], lists, watches, relists), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--pods", type=int, default=150000)
    ap.add_argument("--nodes", type=int, default=5000)
    ap.add_argument("--duration", type=float, default=600, help="s of churn and load")
    ap.add_argument("--churn", type=float, default=100, help="EndpointSlice changes a second")
    ap.add_argument("--restart-at", type=float, help="s into the run (default: half way)")
    ap.add_argument("--down", type=float, default=3.0, help="s the API server is away")
    ap.add_argument("--qps", type=float, default=1000, help="the client's queries a second")
    ap.add_argument("--probe-every", type=int, default=10,
                    help="every Nth change is a headless Service's, timed to its answer")
    ap.add_argument("--probe-timeout", type=float, default=10.0)
    ap.add_argument("--probe-interval", type=float, default=0.0005,
                    help="s between two questions for one probed name")
    ap.add_argument("--sample", type=float, default=0.5, help="s between RSS samples")
    ap.add_argument("--settle", type=float, default=3.0, help="s after the first sync")
    ap.add_argument("--sync-timeout", type=int, default=900)
    ap.add_argument("--out", help="directory for rss.tsv, probes.tsv and the logs")
    ap.add_argument("--bin", default=os.environ.get(
        "SVCDNS_BIN", os.path.join(ROOT, "build-rel", "svcdns")))
    ap.add_argument("--extra", action="append", default=[], help="an extra svcdns argument")
    ap.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--load-client", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--dns-port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_fake:
        return serve_fake(args)
    if args.load_client:
        return load_client(args)
    if not os.access(args.bin, os.X_OK):
        sys.exit("no svcdns binary at %s (build a Release one, or name it with --bin)"
                 % args.bin)
    if args.restart_at is None:
        args.restart_at = args.duration / 2
    # SIGTERM ends the run as Ctrl-C does: every process started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = tempfile.mkdtemp(prefix="svcdns-scale-")
    ok = False
    try:
        ok = run(args, tmp)
    except RuntimeError as e:
        print("scale_run: %s" % e, file=sys.stderr)
        try:
            with open(os.path.join(tmp, "svcdns.log"), "rb") as f:
                sys.stderr.write(f.read()[-3000:].decode(errors="replace"))
        except OSError:
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
