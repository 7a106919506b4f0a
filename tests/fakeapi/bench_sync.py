"""Measures the Kubernetes API source against the fake API server:

  * first sync: from svcdns's start until the cluster zone answers, with N
    Services (each with an EndpointSlice of two endpoints) listed in pages;
  * watch event to served answer: a Service's ClusterIP is changed in the fake
    API server and the name is polled (UDP, every ~1 ms) until the new address
    is answered; repeated, median and worst reported. With --dig, one more
    round is timed with dig itself polling.

    SVCDNS_BIN=build-rel/svcdns /usr/bin/python3 tests/fakeapi/bench_sync.py --services 10000

Use an optimised build: the numbers of a sanitizer build say little."""

import argparse
import ipaddress
import json
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kubetest as k  # noqa: E402
import fakeapi  # noqa: E402

t = k.t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--page-size", type=int, default=500)
    ap.add_argument("--dig", action="store_true", help="also time one change with dig polling")
    args = ap.parse_args()

    # The fake runs in a process of its own, so that this one's polling does
    # not share its interpreter lock.
    port = t.free_port()
    url = "http://127.0.0.1:%d" % port
    fake = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "fakeapi.py"),
                             "--port", str(port), "--services", str(args.services)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    fake.stdout.readline()  # "fakeapi: serving ..." once loaded

    def apply(obj):
        req = urllib.request.Request(url + "/fake/apply", data=json.dumps(obj).encode(),
                                     method="POST")
        urllib.request.urlopen(req).read()

    print("fake API server (pid %d): %d Services + %d EndpointSlices" % (fake.pid, args.services,
                                                                        args.services))
    srv = k.KubeServer(["--api-server", url, "--api-page-size", str(args.page_size),
                        "--threads", "1"])
    try:
        t_start = time.monotonic()
        srv.start(wait=False)
        t_sync = srv.wait_synced(timeout=300)
        print("first sync: %.2f s from start to the cluster zone answering" % (t_sync - t_start))
        log = srv.stderr_text()
        m = re.findall(r"snapshot \d+ published: .*? (\d+) services.*?, ([\d.]+) ms", log)
        if m:
            print("  (last snapshot build: %s services, %s ms)" % m[-1])
        with open("/proc/%d/status" % srv.proc.pid) as f:
            rss = [l.split()[1] for l in f if l.startswith("VmRSS")]
        print("resident memory after the first sync: %.0f MiB" % (int(rss[0]) / 1024))
        time.sleep(0.5)  # watches open

        name = "svc-7.ns-7.svc.cluster.local."
        base = int(ipaddress.ip_address("10.110.0.1"))
        delays = []
        for i in range(args.rounds):
            ip = str(ipaddress.ip_address(base + i))
            svc = fakeapi.service("svc-7", "ns-7", ip)
            t1 = time.monotonic()
            apply(svc)
            ok, dt, last = k.wait_answer(srv.port, name, "NOERROR", [ip], timeout=30)
            if not ok:
                print("round %d: not served after %.1f s (%s)" % (i, dt, last))
                continue
            delays.append((time.monotonic() - t1) * 1000)
            time.sleep(0.05)
        if delays:
            print("watch event -> served answer over %d rounds: median %.1f ms, max %.1f ms"
                  % (len(delays), statistics.median(delays), max(delays)))
        if args.dig:
            ip = "10.111.0.1"
            apply(fakeapi.service("svc-7", "ns-7", ip))
            t1 = time.monotonic()
            n = 0
            while time.monotonic() - t1 < 30:
                out = subprocess.run(["dig", "@127.0.0.1", "-p", str(srv.port), "+short", name],
                                     capture_output=True, text=True).stdout
                n += 1
                if ip in out:
                    break
            print("with dig polling: served after %.0f ms (%d dig runs)"
                  % ((time.monotonic() - t1) * 1000, n))
        m = re.findall(r"snapshot \d+ published: .*?, ([\d.]+) ms", srv.stderr_text())
        if m:
            builds = sorted(float(x) for x in m[-args.rounds:])
            print("snapshot builds after events: median %.1f ms, max %.1f ms"
                  % (statistics.median(builds), builds[-1]))
    finally:
        problems = srv.stop()
        if problems:
            print("\n".join(problems))
        fake.terminate()
        fake.wait()


if __name__ == "__main__":
    main()
