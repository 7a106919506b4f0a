#!/usr/bin/python3
"""Memory of the Kubernetes API source: the peak of the first sync and of a
relist against the steady resident set, through the fake API server
(tests/fakeapi/fakeapi.py) serving gen.py's cluster (100,000 Services and
500,000 endpoints by default).

    contrib/bench/api_memory.py [--services 20000] [--bin build-rel/svcdns]
                                [--list-mode auto|watchlist|paged] [--threads 2]

It generates the cluster (gen.py --no-zones, kept in --work for the next run),
starts the fake with it (every list page serialised beforehand, so that it
streams as fast as svcdns takes it in), starts svcdns with --api-server and
waits until the last Service answers and the snapshot that holds it is
published. Then it reads from /proc: VmHWM, the first sync's peak, and VmRSS a
few seconds later, the steady resident set. It resets the peak (clear_refs 5),
has the fake restart with its history compacted, so that every resource lists
again (410 Gone), waits until the three are listed again (nothing changed, so
no snapshot is built: the relist alone), and reads the relist's peak and the
resident set after it.
Ratios are to the steady resident set. Name a Release binary: a sanitizer build
needs several times the memory. The processes it starts are stopped by PID;
the temporary directory is removed unless --work names one.
"""
import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import dns.message

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import gen  # noqa: E402
from benchnet import free_port  # noqa: E402


def answers(port, name, qtype, want):
    q = dns.message.make_query(name, qtype)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    try:
        s.sendto(q.to_wire(), ("127.0.0.1", port))
        r = dns.message.from_wire(s.recv(65535))
        return any(rd.to_text() == want for rrset in r.answer for rd in rrset)
    except (socket.timeout, OSError):
        return False
    finally:
        s.close()


def status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) / 1024.0  # MiB
    return out


def wait(cond, limit, proc, what):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if proc.poll() is not None:
            sys.exit("api_memory.py: svcdns exited while waiting for %s" % what)
        if cond():
            return time.monotonic() - t0
        time.sleep(0.1)
    sys.exit("api_memory.py: no %s after %d s" % (what, limit))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--services", type=int, default=100000)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build-rel", "svcdns"))
    ap.add_argument("--list-mode", default="auto", choices=("auto", "watchlist", "paged"))
    ap.add_argument("--page-size", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--settle", type=float, default=5.0,
                    help="seconds after a sync before the steady resident set is read")
    ap.add_argument("--work", help="keep the generated cluster here (reused across runs)")
    ap.add_argument("--log", help="copy svcdns's log here")
    a = ap.parse_args()
    if not os.access(a.bin, os.X_OK):
        sys.exit("api_memory.py: no svcdns binary at %s (build-rel: cmake -S . -B build-rel "
                 "-DCMAKE_BUILD_TYPE=Release && cmake --build build-rel --target svcdns)" % a.bin)
    tmp = None if a.work else tempfile.TemporaryDirectory(prefix="svcdns-apimem-")
    work = a.work or tmp.name
    c = gen.Cluster(a.services)
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
    last = next(s for s in reversed(c.services) if s["kind"] == "clusterip")
    api_port, dns_port = free_port(), free_port()
    url = "http://127.0.0.1:%d" % api_port
    fake = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "fakeapi", "fakeapi.py"),
                             "--port", str(api_port), "--load", os.path.join(work, "manifests"),
                             "--namespaces-of-objects", "--prebuild", str(a.page_size)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    srv = None
    log = tempfile.TemporaryFile()
    try:
        if not fake.stdout.readline().startswith("fakeapi: serving"):
            sys.exit("api_memory.py: the fake API server did not start")
        srv = subprocess.Popen([a.bin, "--api-server", url, "--listen",
                                "127.0.0.1:%d" % dns_port, "--upstream", "none",
                                "--threads", str(a.threads), "--api-list-mode", a.list_mode,
                                "--api-page-size", str(a.page_size), "--startup-timeout", "0"],
                               stdin=subprocess.DEVNULL, stdout=log, stderr=log)

        def log_text():
            log.seek(0)
            return log.read().decode(errors="replace")

        def published_after(marker):
            text = log_text()
            i = text.rfind(marker)
            return i >= 0 and " published: " in text[i:]
        name = gen.fqdn(last)
        t_sync = wait(lambda: answers(dns_port, name, "A", str(last["ip"])), 1800, srv,
                      "first sync")
        wait(lambda: published_after("api: first full sync"), 60, srv, "first snapshot")
        first_peak = status(srv.pid)["VmHWM"]
        time.sleep(a.settle)
        steady = status(srv.pid)["VmRSS"]
        print("first sync: %.1f s; peak %.0f MiB; steady %.0f MiB (%.2fx)"
              % (t_sync, first_peak, steady, first_peak / steady), flush=True)

        with open("/proc/%d/clear_refs" % srv.pid, "w") as f:
            f.write("5")  # VmHWM starts again from the current resident set
        req = urllib.request.Request(url + "/fake/restart?down=1&compact=1", data=b"",
                                     method="POST")
        try:
            urllib.request.urlopen(req).read()
        except (OSError, http.client.HTTPException):
            pass  # the fake may cut this very connection as it goes away
        n0 = log_text().count("listed again")
        t0 = time.monotonic()
        wait(lambda: log_text().count("listed again") >= n0 + 3, 1800, srv, "relist")
        t_relist = time.monotonic() - t0
        relist_peak = status(srv.pid)["VmHWM"]
        time.sleep(a.settle)
        after = status(srv.pid)["VmRSS"]
        mode = "streamed" if "objects streamed" in log_text() else "paged"
        print("relist (%s): %.1f s; peak %.0f MiB (%.2fx steady); after it %.0f MiB"
              % (mode, t_relist, relist_peak, relist_peak / steady, after), flush=True)
        print("SUMMARY services=%d list=%s steady=%.0fMiB first_peak=%.0fMiB (%.2fx) "
              "relist_peak=%.0fMiB (%.2fx)" % (len(c.services), mode, steady, first_peak,
                                                first_peak / steady, relist_peak,
                                                relist_peak / steady))
    finally:
        if srv:
            srv.terminate()
            srv.wait()
            if a.log:
                log.seek(0)
                with open(a.log, "wb") as f:
                    f.write(log.read())
        log.close()
        fake.terminate()
        fake.wait()
        if tmp:
            tmp.cleanup()


if __name__ == "__main__":
    main()
