#!/usr/bin/python3
"""A herd of DNS replicas against one API server, restarted mid-run.

Starts the fake API server (tests/fakeapi/fakeapi.py, its own process) with
--services synthetic Services, then --procs svcdns processes watching it. Once
every process has synced, the server restarts: it goes away for --down seconds
(connections cut and refused) with its watch history compacted, so every
process must list again; once it is back, a new Service is added and each
process is timed until it answers that Service's name (caught up). The fake
counts the requests it serves per second. Each mode is one run:

  limited     svcdns's defaults (--api-qps 5 --api-burst 10 --api-max-inflight 2)
  unlimited   --api-qps 0 --api-max-inflight 0 (no client-side limit)
  strict      --api-qps 1 --api-burst 3 --api-max-inflight 1

    contrib/bench/api_herd.py                         # 50 processes, 1,000 Services
    contrib/bench/api_herd.py --procs 20 --modes limited

Prints one SUMMARY line per mode: requests/s before the restart, the peak and
the mean over the --window seconds after the server came back, the requests of
that window, and how many processes caught up and when (p50, max)."""

import argparse
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import shutil
import time
from benchnet import free_port  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
FAKEAPI = os.path.join(ROOT, "tests", "fakeapi", "fakeapi.py")
MODES = {"limited": [], "unlimited": ["--api-qps", "0", "--api-max-inflight", "0"],
         "strict": ["--api-qps", "1", "--api-burst", "3", "--api-max-inflight", "1"]}


def query(qid, name):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack(">HH", 1, 1)


def answers(port, name, timeout=0.3):
    """Whether name A answers NOERROR with a record."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(query(9, name), ("127.0.0.1", port))
            r = s.recv(4096)
            return r[3] & 15 == 0 and struct.unpack(">H", r[6:8])[0] > 0
    except OSError:
        return False


def control(port, method, path, body=None, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=json.dumps(body).encode() if body is not None else None,
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        return r.status, json.loads(data) if data else None
    finally:
        c.close()


def wait_api(port, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if control(port, "GET", "/fake/rate?since=1e18", timeout=1)[0] == 200:
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def run_mode(args, mode, tmp):
    procs = []
    api_port = free_port()
    try:
        procs.append(subprocess.Popen(
            [sys.executable, FAKEAPI, "--port", str(api_port), "--services", str(args.services)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        if not wait_api(api_port):
            raise RuntimeError("the fake API server did not start")
        ports = []
        for i in range(args.procs):
            port = free_port()
            ports.append(port)
            log = open(os.path.join(tmp, "svcdns-%s-%d.log" % (mode, i)), "wb")
            procs.append(subprocess.Popen(
                [args.svcdns, "--api-server", "http://127.0.0.1:%d" % api_port,
                 "--listen", "127.0.0.1:%d" % port, "--upstream", "none", "--threads", "1"]
                + MODES[mode], stdout=log, stderr=log))
        first = "svc-%d.ns-%d.svc.cluster.local" % (args.services - 1, (args.services - 1) % 10)
        end = time.monotonic() + 120
        pending = set(range(args.procs))
        while pending and time.monotonic() < end:
            pending = {i for i in pending if not answers(ports[i], first)}
            time.sleep(0.1)
        if pending:
            raise RuntimeError("%d processes did not sync" % len(pending))
        # Steady state before the restart.
        time.sleep(args.settle)
        t_before = control(api_port, "GET", "/fake/rate?since=1e18")[1]["now"]
        time.sleep(args.steady)
        steady = control(api_port, "GET", "/fake/rate?since=%f" % t_before)[1]
        steady_rate = steady["total"] / args.steady
        control(api_port, "POST", "/fake/restart?down=%g&compact=1" % args.down)
        time.sleep(0.2)
        if not wait_api(api_port, args.down + 30):
            raise RuntimeError("the fake API server did not come back")
        t_back = control(api_port, "GET", "/fake/rate?since=1e18")[1]["now"]
        svc = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "late", "namespace": "ns-0"},
               "spec": {"clusterIP": "10.111.0.7", "ports": [{"name": "http", "port": 80}]}}
        control(api_port, "POST", "/fake/apply", svc)
        t_applied = time.monotonic()
        caught = {}
        end = t_applied + args.window + 60
        while len(caught) < args.procs and time.monotonic() < end:
            for i in range(args.procs):
                if i not in caught and answers(ports[i], "late.ns-0.svc.cluster.local", 0.1):
                    caught[i] = time.monotonic() - t_applied
            time.sleep(0.05)
        wait_left = t_back + args.window - time.monotonic()
        if wait_left > 0:
            time.sleep(wait_left)
        rate = control(api_port, "GET", "/fake/rate?since=%f" % t_back)[1]
        secs = [s for s in rate["seconds"] if s[0] < int(t_back) + args.window]
        per = [s[1] + s[2] for s in secs]
        window_total = sum(per)
        lat = sorted(caught.values())
        print("SUMMARY api_herd mode=%s procs=%d services=%d steady=%.1f/s "
              "after-restart peak=%d/s mean=%.1f/s requests=%d (lists %d, watches %d) in %ds "
              "caught-up=%d/%d p50=%.2fs max=%.2fs"
              % (mode, args.procs, args.services, steady_rate, max(per) if per else 0,
                 window_total / float(args.window), window_total, sum(s[1] for s in secs),
                 sum(s[2] for s in secs), args.window, len(caught), args.procs,
                 lat[len(lat) // 2] if lat else float("nan"), lat[-1] if lat else float("nan")),
              flush=True)
        if args.verbose:
            print("per second after the restart:", per, flush=True)
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--procs", type=int, default=50)
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--down", type=float, default=3.0, help="s the API server is away")
    ap.add_argument("--settle", type=float, default=3.0)
    ap.add_argument("--steady", type=float, default=10.0,
                    help="s of steady state measured before the restart")
    ap.add_argument("--window", type=int, default=20,
                    help="s after the server is back over which requests are counted")
    ap.add_argument("--modes", default="unlimited,limited,strict")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--svcdns", default=os.environ.get(
        "SVCDNS_BIN", os.path.join(ROOT, "build-rel", "svcdns")))
    args = ap.parse_args()
    if not os.path.exists(args.svcdns):
        sys.exit("no svcdns at %s: build one (cmake -B build-rel -DCMAKE_BUILD_TYPE=Release) "
                 "or set SVCDNS_BIN" % args.svcdns)
    tmp = tempfile.mkdtemp(prefix="svcdns-api-herd-")
    try:
        for mode in args.modes.split(","):
            run_mode(args, mode, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
