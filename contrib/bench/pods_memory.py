#!/usr/bin/python3
"""What `--pods verified` costs in memory: the resident set of svcdns synced
with a cluster of N Pods (150,000 by default, over 500 namespaces, a few of
them finished) through the fake API server (tests/fakeapi/fakeapi.py), with
`--pods verified` (which lists and watches the Pods) against the same cluster
served with `--pods insecure` (which never asks for them).

    contrib/bench/pods_memory.py [--pods 150000] [--bin build-rel/svcdns]

For each mode it starts svcdns, waits until the first full sync is done and a
Pod of the last list page answers (verified), reads VmRSS from /proc, checks a
sample of Pod names, times one Pod's deletion until its name answers NXDOMAIN
(verified), and stops svcdns by PID. It prints both figures and the
difference, per Pod too. Name a Release binary: a sanitizer build needs
several times the memory.
"""
import argparse
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time

import dns.message
import dns.rcode

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "fakeapi"))
import fakeapi  # noqa: E402
from benchnet import free_port  # noqa: E402


def ask(port, name, qtype="A", timeout=1.0):
    q = dns.message.make_query(name, qtype)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.sendto(q.to_wire(), ("127.0.0.1", port))
        r = dns.message.from_wire(s.recv(65535))
        return dns.rcode.to_text(r.rcode()), [a.to_text() for rr in r.answer for a in rr]
    except (socket.timeout, OSError):
        return None, []
    finally:
        s.close()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def make_pods(n, namespaces):
    """Pods as the API server holds them (a container, conditions, labels), one
    in a thousand Succeeded, which verified does not keep."""
    base = int(ipaddress.ip_address("10.128.0.1"))
    pods = []
    for i in range(n):
        ns = "ns-%d" % (i % namespaces)
        ip = str(ipaddress.ip_address(base + i))
        phase = "Succeeded" if i % 1000 == 999 else "Running"
        pods.append({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "app-%d-7d4b9c8f6-x%05d" % (i % 997, i), "namespace": ns,
                         "labels": {"app": "app-%d" % (i % 997),
                                    "pod-template-hash": "7d4b9c8f6"}},
            "spec": {"nodeName": "node-%d" % (i % 300),
                     "containers": [{"name": "main", "image": "registry.example/app:1.0",
                                     "ports": [{"containerPort": 8080, "name": "http"}]}]},
            "status": {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}],
                       "conditions": [{"type": "Ready", "status": "True"}]}})
    return pods


def dashed(ip):
    return ip.replace(".", "-")


def measure(binary, api, mode, pods, namespaces, timeout):
    port = free_port()
    cmd = [binary, "--api-server", api.url, "--listen", "127.0.0.1:%d" % port,
           "--upstream", "none", "--threads", "2", "--pods", mode, "--log-level", "warn"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    last = pods[-2]  # the last one is Succeeded when n is a multiple of 1000
    probe = "%s.%s.pod.cluster.local." % (dashed(last["status"]["podIP"]),
                                          last["metadata"]["namespace"])
    t0 = time.monotonic()
    try:
        while True:
            if proc.poll() is not None:
                sys.exit("svcdns exited: %s" % proc.stderr.read().decode()[-2000:])
            if time.monotonic() - t0 > timeout:
                sys.exit("svcdns did not sync within %d s" % timeout)
            rc, _ = ask(port, probe)
            if rc == "NOERROR":
                break
            time.sleep(0.2)
        synced = time.monotonic() - t0
        time.sleep(2)  # the last snapshots published, the old ones reclaimed
        rss = rss_kib(proc.pid)
        bad = 0
        for i in range(0, len(pods), max(1, len(pods) // 500)):
            p = pods[i]
            name = "%s.%s.pod.cluster.local." % (dashed(p["status"]["podIP"]),
                                                 p["metadata"]["namespace"])
            want = "NXDOMAIN" if mode == "verified" and p["status"]["phase"] == "Succeeded" \
                else "NOERROR"
            rc, _ = ask(port, name)
            bad += rc != want
            if mode == "verified":
                wrong_ns = "ns-%d" % ((i + 1) % namespaces)
                rc, _ = ask(port, "%s.%s.pod.cluster.local." % (dashed(p["status"]["podIP"]),
                                                                wrong_ns))
                bad += rc != "NXDOMAIN"
        if bad:
            sys.exit("%s: %d wrong answers" % (mode, bad))
        churn = None
        if mode == "verified":
            # one Pod deleted: how long until its name answers NXDOMAIN
            gone = pods[len(pods) // 2]
            name = "%s.%s.pod.cluster.local." % (dashed(gone["status"]["podIP"]),
                                                 gone["metadata"]["namespace"])
            t1 = time.monotonic()
            api.delete("Pod", gone["metadata"]["namespace"], gone["metadata"]["name"])
            while ask(port, name)[0] != "NXDOMAIN":
                if time.monotonic() - t1 > 30:
                    sys.exit("a deleted Pod still answers after 30 s")
                time.sleep(0.001)
            churn = (time.monotonic() - t1) * 1000
            api.apply(gone)
        return rss, synced, churn
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pods", type=int, default=150000)
    ap.add_argument("--namespaces", type=int, default=500)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build-rel", "svcdns"))
    ap.add_argument("--timeout", type=int, default=600)
    args = ap.parse_args()
    if not os.access(args.bin, os.X_OK):
        sys.exit("no svcdns binary at %s (build a Release one, or name it with --bin)"
                 % args.bin)
    api = fakeapi.FakeAPI().start()
    try:
        for i in range(args.namespaces):
            api.apply(fakeapi.namespace("ns-%d" % i))
        pods = make_pods(args.pods, args.namespaces)
        api.apply_many(pods, copy_obj=False)
        api.prebuild(500)
        results = {}
        for mode in ("insecure", "verified"):
            results[mode] = measure(args.bin, api, mode, pods, args.namespaces, args.timeout)
            print("%-8s VmRSS %8.1f MiB (answering %.1f s after start)%s"
                  % (mode, results[mode][0] / 1024.0, results[mode][1],
                     "; a deleted Pod answers NXDOMAIN %.0f ms later" % results[mode][2]
                     if results[mode][2] is not None else ""), flush=True)
        kept = sum(1 for p in pods if p["status"]["phase"] != "Succeeded")
        delta = (results["verified"][0] - results["insecure"][0]) * 1024
        print("SUMMARY pods=%d kept=%d namespaces=%d rss_delta_mib=%.1f bytes_per_pod=%.0f"
              % (args.pods, kept, args.namespaces, delta / 1048576.0, delta / max(kept, 1)))
    finally:
        api.stop()


if __name__ == "__main__":
    main()
