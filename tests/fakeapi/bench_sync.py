"""Measures the Kubernetes API source against the fake API server, on the
cluster of contrib/bench/gen.py (85% ClusterIP with named ports, 10% headless
with 5 hostnamed endpoints, 5% ExternalName, N/100 namespaces):

  * the fake's own share: how long it takes to stream every list page of the
    three resources to a plain client (keep-alive, the resources in parallel),
    so that what svcdns adds is known;
  * first sync: from svcdns's start until the last Service of the cluster
    answers, split from svcdns's log into receiving+parsing+storing the lists
    (start to "first full sync") and the snapshot build that follows;
  * watch event to served answer: from the moment the fake writes a MODIFIED
    event (a Service's new ClusterIP, or an EndpointSlice's new endpoint
    address) until a tight UDP query loop sees the new answer; median and worst
    per resource.

    SVCDNS_BIN=build-rel/svcdns /usr/bin/python3 tests/fakeapi/bench_sync.py --services 100000

Each figure ends in one "SUMMARY" line. Use an optimised build: the numbers of
a sanitizer build say little."""

import argparse
import http.client
import ipaddress
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "contrib", "bench"))
import kubetest as k  # noqa: E402
import gen  # noqa: E402

import dns.message  # noqa: E402

t = k.t

LISTS = {"services": "/api/v1/services",
         "endpointslices": "/apis/discovery.k8s.io/v1/endpointslices",
         "namespaces": "/api/v1/namespaces"}


def say(*a):
    print(*a, flush=True)


def prepare(n, work):
    """The generated cluster (reused when work already holds one of size n)."""
    c = gen.Cluster(n)
    meta_path = os.path.join(work, "meta.json")
    try:
        with open(meta_path) as f:
            fresh = json.load(f).get("services") != len(c.services)
    except (OSError, ValueError):
        fresh = True
    if fresh:
        os.makedirs(work, exist_ok=True)
        gen.write_manifests(c, work)
        with open(meta_path, "w") as f:
            json.dump({"services": len(c.services)}, f)
    return c


def stream_lists(port, limit):
    """Reads every page of the three lists as a client with keep-alive would
    (resources in parallel). -> (seconds, pages, bytes)."""
    def one(path):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        cont, pages, size = None, 0, 0
        while True:
            q = "%s?limit=%d" % (path, limit)
            if cont:
                q += "&continue=" + urllib.parse.quote(cont, safe="")
            conn.request("GET", q)
            r = conn.getresponse()
            body = r.read()
            if r.status != 200:
                raise RuntimeError("%s: HTTP %d" % (q, r.status))
            pages += 1
            size += len(body)
            # metadata comes before the items: no need to parse the page
            m = re.search(rb'"continue": ?"([^"]*)"', body[:4096])
            cont = m.group(1).decode() if m else None
            if not cont:
                conn.close()
                return pages, size

    t0 = time.monotonic()
    with ThreadPoolExecutor(len(LISTS)) as ex:
        got = list(ex.map(one, LISTS.values()))
    return time.monotonic() - t0, sum(g[0] for g in got), sum(g[1] for g in got)


class Poller:
    """A tight UDP query loop for one name: a datagram out, the reply in, no
    sleeping but `gap` seconds between queries."""

    def __init__(self, port, gap):
        self.addr = ("127.0.0.1", port)
        self.gap = gap
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(0.05)
        self.qid = 0
        self.queries = 0

    def close(self):
        self.sock.close()

    def wait(self, name, addr, timeout):
        """Until name's A answer holds addr; -> monotonic time of that reply,
        or None."""
        wire = bytearray(dns.message.make_query(name, "A", use_edns=0).to_wire())
        want = ipaddress.ip_address(addr).packed
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.qid = (self.qid + 1) & 0xFFFF
            wire[0], wire[1] = self.qid >> 8, self.qid & 0xFF
            self.sock.sendto(wire, self.addr)
            self.queries += 1
            try:
                while True:
                    resp = self.sock.recv(4096)
                    if resp[:2] == wire[:2]:
                        break  # an older reply that came late is skipped
            except socket.timeout:
                continue
            now = time.monotonic()
            if want in resp:
                m = dns.message.from_wire(resp)
                if any(rr.to_text() == addr for rrs in m.answer for rr in rrs):
                    return now
            if self.gap:
                time.sleep(self.gap)
        return None


def proc_cpu(pid):
    """CPU seconds (user + system, every thread) a process has used so far:
    on a shared machine, the figure that other load does not change."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def log_times(text):
    """(wall clock seconds, message) of each line of svcdns's log."""
    out = []
    for m in re.finditer(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z \[\w+\] (.*)$", text, re.M):
        ts = time.mktime(time.strptime(m.group(1)[:19], "%Y-%m-%dT%H:%M:%S"))
        ts = ts - time.timezone + int(m.group(1)[20:]) / 1000.0
        out.append((ts, m.group(2)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=20, help="watch events, half of each kind")
    ap.add_argument("--page-size", type=int, default=500)
    ap.add_argument("--poll-gap-us", type=float, default=100,
                    help="pause between the queries of the event loop (default 100 us)")
    ap.add_argument("--work", help="keep the generated cluster here (reused across runs)")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--log", help="copy svcdns's log here")
    args = ap.parse_args()
    if args.services < 20:
        sys.exit("bench_sync.py: --services must be at least 20")
    fig = {"services": args.services}

    tmp = None if args.work else tempfile.TemporaryDirectory(prefix="svcdns-sync-")
    work = args.work or tmp.name
    t0 = time.monotonic()
    c = prepare(args.services, work)
    say("cluster: %d Services, %d endpoints, %d namespaces (gen.py, %.1f s) in %s"
        % (len(c.services), c.n_endpoints, len(c.namespaces) + 2, time.monotonic() - t0, work))

    # The fake runs in a process of its own, so that this one's polling does
    # not share its interpreter lock.
    port = t.free_port()
    url = "http://127.0.0.1:%d" % port
    t0 = time.monotonic()
    fake = subprocess.Popen([sys.executable, os.path.join(HERE, "fakeapi.py"), "--port",
                             str(port), "--load", os.path.join(work, "manifests"),
                             "--namespaces-of-objects", "--prebuild", str(args.page_size)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    srv = None
    poller = None
    try:
        if not fake.stdout.readline().startswith("fakeapi: serving"):
            sys.exit("bench_sync.py: the fake API server did not start")
        say("fake API server (pid %d) loaded and serialised its pages in %.1f s"
            % (fake.pid, time.monotonic() - t0))
        dt, pages, size = stream_lists(port, args.page_size)
        fig["fake_stream_s"] = dt
        say("SUMMARY fake alone: %.2f s to stream all %d list pages (%.0f MB, limit %d, "
            "3 resources in parallel, keep-alive)" % (dt, pages, size / 1e6, args.page_size))

        def control(path, obj=None):
            data = json.dumps(obj).encode() if obj is not None else None
            req = urllib.request.Request(url + path, data=data,
                                         method="POST" if data else "GET")
            with urllib.request.urlopen(req) as r:
                return json.load(r)

        srv = k.KubeServer(["--api-server", url, "--api-page-size", str(args.page_size),
                            "--threads", "1", "--log-level", "debug"])
        poller = Poller(srv.port, 0.005)
        last = c.services[-1]
        ready = (str(last["ip"]) if last["kind"] == "clusterip" else str(last["eps"][0][0]))
        wall0 = time.time()
        t_start = time.monotonic()
        srv.start(wait=False)
        t_ready = poller.wait(gen.fqdn(last), ready, timeout=600)
        if t_ready is None:
            sys.exit("bench_sync.py: %s never answered %s:\n%s"
                     % (gen.fqdn(last), ready, srv.stderr_tail()))
        total = t_ready - t_start
        cpu = proc_cpu(srv.proc.pid)
        # The answer comes before the build's log line is written.
        t.poll(lambda: re.search(r"published: serial \d+, [1-9]\d* services", srv.stderr_text()),
               timeout=30, interval=0.05)
        lines = log_times(srv.stderr_text())
        t_synced = next((ts for ts, m in lines if m.startswith("api: first full sync")), None)
        build = None
        for _, m in lines:
            b = re.match(r"snapshot \d+ published: .*?, (\d+) services,.*?([\d.]+) ms "
                         r"\(view ([\d.]+) ms, zones ([\d.]+) ms", m)
            if b and int(b.group(1)) > 0:
                build = [float(x) for x in b.groups()[1:]]
                break
        for _, m in lines:
            if re.match(r"api \w+: listed at", m):
                say("  " + m)
        fig["first_sync_s"] = total
        split = ""
        if t_synced is not None:
            fig["lists_stored_s"] = t_synced - wall0
            split = "receive+parse+store %.2f s" % (t_synced - wall0)
        if build:
            fig["final_build_ms"], fig["final_view_ms"], fig["final_zones_ms"] = build
            split += ", final build %.0f ms (view %.0f, zones %.0f)" % tuple(build)
        fig["first_sync_cpu_s"] = cpu
        say("SUMMARY first sync: %.2f s from start to the last Service answering (%s; the "
            "log has millisecond times); svcdns used %.2f s of CPU by then, all threads"
            % (total, split, cpu))
        with open("/proc/%d/status" % srv.proc.pid) as f:
            rss = [ln.split()[1] for ln in f if ln.startswith("VmRSS")]
        fig["rss_mib"] = int(rss[0]) / 1024
        say("resident memory after the first sync: %.0f MiB" % fig["rss_mib"])

        # The events must reach open watches, not the replay of a new one.
        for res in LISTS:
            if not srv.wait_log("api %s: GET %s?watch=1" % (res, LISTS[res]), timeout=30):
                sys.exit("bench_sync.py: svcdns did not start watching %s" % res)
        time.sleep(0.2)

        poller.gap = args.poll_gap_us / 1e6
        cips = [s for s in c.services if s["kind"] == "clusterip" and s["name"] != "kubernetes"
                and s["ns"] != "kube-system"]
        heads = [s for s in c.services if s["kind"] == "headless"]
        lat = {"Service": [], "EndpointSlice": []}
        fake_lag = []
        sent = []  # (kind, store key, rv, wall clock time the fake wrote the event)
        mono_to_wall = time.time() - time.monotonic()
        svc_base = int(ipaddress.ip_address("10.110.0.1"))
        pod_base = int(ipaddress.ip_address("10.250.0.1"))
        for i in range(args.rounds):
            if i % 2 == 0:
                s = cips[(i * 7919) % len(cips)]
                obj = gen.manifest_objects(s)[0]
                addr = str(ipaddress.ip_address(svc_base + i))
                obj["spec"]["clusterIP"] = addr
                kind, res, qname = "Service", "services", gen.fqdn(s)
            else:
                s = heads[(i * 7919) % len(heads)]
                obj = gen.manifest_objects(s)[1]
                addr = str(ipaddress.ip_address(pod_base + i))
                obj["endpoints"][0]["addresses"] = [addr]
                kind, res = "EndpointSlice", "endpointslices"
                qname = "%s.%s" % (obj["endpoints"][0]["hostname"], gen.fqdn(s))
            t_apply = time.monotonic()
            rv = control("/fake/apply", obj)["resourceVersions"][0]
            t_ans = poller.wait(qname, addr, timeout=60)
            t_sent = control("/fake/sent?resource=%s&rv=%d" % (res, rv))["t"]
            if t_ans is None or t_sent is None:
                say("round %d (%s %s): %s" % (i, kind, qname, "never served" if t_ans is None
                                               else "the fake never sent the event"))
                continue
            lat[kind].append((t_ans - t_sent) * 1000)
            sent.append((kind, "api:%s/%s/%s" % (kind, s["ns"], obj["metadata"]["name"]), rv,
                         t_sent + mono_to_wall))
            fake_lag.append((t_sent - t_apply) * 1000)
            time.sleep(0.05)
        # Where the time goes, from svcdns's log (millisecond times): the
        # event stored, then the build that follows it published.
        lines = log_times(srv.stderr_text())
        split = {"Service": ([], []), "EndpointSlice": ([], [])}
        for kind, key, rv, t_w in sent:
            mark = "MODIFIED %s rv %d" % (key, rv)
            for j, (ts, m) in enumerate(lines):
                if m.endswith(mark):
                    split[kind][0].append((ts - t_w) * 1000)
                    pub = next((ts2 for ts2, m2 in lines[j:] if " published: " in m2), None)
                    if pub is not None:
                        split[kind][1].append((pub - ts) * 1000)
                    break
        for kind, v in lat.items():
            if not v:
                continue
            key = "event_%s" % kind.lower()
            fig[key + "_median_ms"] = statistics.median(v)
            fig[key + "_worst_ms"] = max(v)
            say("SUMMARY %s event -> served answer: median %.1f ms, worst %.1f ms over %d "
                "events (from the fake writing the event to the first reply with the new "
                "address)" % (kind, statistics.median(v), max(v), len(v)))
            st, pub = split[kind]
            if st and pub:
                say("  of which: event written -> stored, median %.0f ms; stored -> snapshot "
                    "published, median %.0f ms (log times, 1 ms steps)"
                    % (max(0.0, statistics.median(st)), statistics.median(pub)))
        if fake_lag:
            say("  (the fake's own lag from the apply request to writing the event: median "
                "%.1f ms; %d queries sent)" % (statistics.median(fake_lag), poller.queries))
        builds = [float(x) for x in re.findall(r"snapshot \d+ published: .*?, ([\d.]+) ms",
                                               srv.stderr_text())][-args.rounds:]
        if builds:
            say("  snapshot builds after the events: median %.1f ms, max %.1f ms"
                % (statistics.median(builds), max(builds)))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(fig, f, indent=1)
    finally:
        if poller:
            poller.close()
        if srv:
            if args.log:
                with open(args.log, "w") as f:
                    f.write(srv.stderr_text())
            problems = srv.stop()
            if problems:
                say("\n".join(problems))
        fake.terminate()
        fake.wait()
        if tmp:
            tmp.cleanup()


if __name__ == "__main__":
    main()
