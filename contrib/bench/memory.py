#!/usr/bin/python3
"""How much memory svcdns needs for a large cluster: 100,000 Services and
500,000 endpoints by default (the cluster of gen.py: 85% ClusterIP, 10%
headless with 5 named endpoints each, 5% ExternalName, 5 endpoints per Service
in all, spread over 1,000 namespaces), served from a manifest directory.

    contrib/bench/memory.py [--services 100000] [--bin build-rel/svcdns] [--threads 2]

It generates the manifests (gen.py --no-zones), starts svcdns on them, waits
until the last Service is answered, reads the resident set (VmRSS) and its
peak (VmHWM) from /proc, asks 2,000 names of every kind and checks the
answers, then edits one manifest file (an incremental build: two snapshots
alive for a moment) and reads the figures again. Name a Release binary: a
sanitizer build needs several times the memory. The process it starts is
stopped by PID; the temporary directory is removed (--keep keeps it).
"""
import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import dns.message
import dns.rcode
from benchnet import free_port  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def ask(port, name, qtype, timeout=1.0):
    q = dns.message.make_query(name, qtype)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.sendto(q.to_wire(), ("127.0.0.1", port))
        while True:
            r = dns.message.from_wire(s.recv(65535))
            if r.id == q.id:
                return r
    except (socket.timeout, OSError):
        return None
    finally:
        s.close()


def status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) // 1024  # MiB
    return out


def rdata(r):
    return sorted(rd.to_text() for rrset in (r.answer if r else []) for rd in rrset)


def wait_answer(port, name, qtype, want, limit, proc):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if proc.poll() is not None:
            return None
        r = ask(port, name, qtype, timeout=0.5)
        if r is not None and want in rdata(r):
            return time.monotonic() - t0
        time.sleep(0.1)
    return None


def sample(manifests, n, rng):
    """(name, type, expected rdata or None) for n Services of the manifests."""
    files = sorted(f for f in os.listdir(manifests) if f.endswith(".json"))
    picked = []
    for f in rng.sample(files, min(len(files), 20)):
        with open(os.path.join(manifests, f)) as fh:
            items = json.load(fh)["items"]
        svcs = [o for o in items if o["kind"] == "Service"]
        for s in rng.sample(svcs, min(len(svcs), n // 20 + 1)):
            name = "%s.%s.svc.cluster.local." % (s["metadata"]["name"],
                                                 s["metadata"]["namespace"])
            spec = s["spec"]
            if spec.get("type") == "ExternalName":
                picked.append((name, "CNAME", spec["externalName"].rstrip(".") + "."))
            elif spec.get("clusterIP") == "None":
                picked.append((name, "A", None))  # its endpoints, from the slice
            else:
                picked.append((name, "A", spec["clusterIP"]))
    return picked[:n]


def edit_one(manifests):
    """Gives the first ClusterIP Service of one file a new ClusterIP (atomic
    rename, as kubectl or a config tool writes); returns (name, new IP)."""
    files = sorted(f for f in os.listdir(manifests) if f.endswith(".json"))
    path = os.path.join(manifests, files[len(files) // 2])
    with open(path) as fh:
        doc = json.load(fh)
    for o in doc["items"]:
        if o["kind"] == "Service" and o["spec"].get("clusterIP") not in (None, "None"):
            ip = "10.111.222.%d" % random.Random(7).randint(1, 250)
            o["spec"]["clusterIP"] = ip
            o["spec"]["clusterIPs"] = [ip]
            tmp = os.path.join(manifests, ".edit.tmp")
            with open(tmp, "w") as fh:
                json.dump(doc, fh)
            os.rename(tmp, path)
            return "%s.%s.svc.cluster.local." % (o["metadata"]["name"],
                                                 o["metadata"]["namespace"]), ip
    sys.exit("memory.py: no ClusterIP Service to edit in %s" % path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--services", type=int, default=100000)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build-rel", "svcdns"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=900, help="seconds to wait for the load")
    ap.add_argument("--keep", action="store_true", help="keep the generated directory")
    a = ap.parse_args()
    if not os.access(a.bin, os.X_OK):
        sys.exit("memory.py: no svcdns at %s (build a Release one, or give --bin)" % a.bin)

    work = tempfile.mkdtemp(prefix="svcdns-mem-")
    proc = None
    try:
        t0 = time.monotonic()
        subprocess.run(["/usr/bin/python3", os.path.join(HERE, "gen.py"), "--services",
                        str(a.services), "--out", work, "--no-zones"], check=True)
        with open(os.path.join(work, "meta.json")) as fh:
            meta = json.load(fh)
        manifests = os.path.join(work, "manifests")
        size = sum(os.path.getsize(os.path.join(manifests, f)) for f in os.listdir(manifests))
        print("memory.py: generated in %.0f s, %d files, %.0f MB of JSON"
              % (time.monotonic() - t0, len(os.listdir(manifests)), size / 1e6), flush=True)

        port = free_port()
        log = open(os.path.join(work, "svcdns.log"), "wb")
        t0 = time.monotonic()
        proc = subprocess.Popen([a.bin, "--manifests", manifests, "--listen",
                                 "127.0.0.1:%d" % port, "--upstream", "none", "--threads",
                                 str(a.threads)], stdout=log, stderr=log)
        dt = wait_answer(port, meta["ready_name"], meta["ready_type"], meta["ready_answer"],
                         a.timeout, proc)
        if dt is None:
            sys.exit("memory.py: %s not answered %s within %.0f s (svcdns log: %s)"
                     % (meta["ready_name"], meta["ready_answer"], a.timeout,
                        os.path.join(work, "svcdns.log")))
        loaded = status(proc.pid)

        rng = random.Random(1)
        names = sample(manifests, 2000, rng)
        ok = 0
        for name, qtype, want in names:
            r = ask(port, name, qtype)
            if r is not None and r.rcode() == dns.rcode.NOERROR and r.answer and (
                    want is None or want in rdata(r)):
                ok += 1
        served = status(proc.pid)

        name, ip = edit_one(manifests)
        t1 = time.monotonic()
        de = wait_answer(port, name, "A", ip, 120, proc)
        time.sleep(1.0)  # the older snapshot is freed once no worker holds it
        edited = status(proc.pid)

        print()
        print("svcdns %s, %d threads: %d Services, %d endpoints, %d namespaces"
              % (a.bin, a.threads, meta["services"], meta["endpoints"], meta["namespaces"]))
        print("  loaded and serving after %.1f s: RSS %d MiB (peak so far %d MiB)"
              % (dt, loaded["VmRSS"], loaded["VmHWM"]))
        print("  %d of %d sampled names answered as expected; RSS %d MiB"
              % (ok, len(names), served["VmRSS"]))
        print("  one file edited: served %s after %.2f s; RSS %d MiB, peak %d MiB"
              % (ip, de if de is not None else -1, edited["VmRSS"], edited["VmHWM"]))
        bad = ok != len(names) or de is None
        if bad:
            print("memory.py: FAILED (see %s)" % os.path.join(work, "svcdns.log"))
            a.keep = True
        return 1 if bad else 0
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if a.keep:
            print("memory.py: kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
