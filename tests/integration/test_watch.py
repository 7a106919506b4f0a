"""The manifest directory is watched: adding, editing, replacing and removing
files changes the answers (each change is polled for, bounded at 5 s, and its
observed delay printed), the SOA serial grows, and a file that turns broken
(invalid YAML, an invalid object) keeps its previous objects served and logs
one line naming the file.

Where a change must change nothing (an ignored file, a broken file), the test
does not wait and look: it writes a barrier file after it and waits until
that is served. Each pass reads the whole directory, so by then the change
was read, and its effect, or its lack, is there to check."""

import os
import re
import shutil
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import svcdns_testlib as t  # noqa: E402

D = "default.svc.cluster.local."
BOUND = 5.0   # generous: the design promises 100 ms
delays = []


def svc_yaml(name, ip, port=80, extra_spec="", ns="default"):
    return """apiVersion: v1
kind: Service
metadata:
  name: %s
  namespace: %s
spec:
  clusterIP: %s
%s  ports:
    - name: http
      port: %d
      protocol: TCP
""" % (name, ns, ip, extra_spec, port)


def answer_of(port, name, qtype="A"):
    r = t.run_dnspython(port, name, qtype)
    return r.rcode, sorted(a.split()[-1] for a in r.answer)


def wait_for(tally, label, port, name, want_rcode, want_addrs, qtype="A"):
    """Polls until name answers (want_rcode, want_addrs); records the delay."""
    want = (want_rcode, sorted(want_addrs))
    last = [None]

    def probe():
        got = answer_of(port, name, qtype)
        last[0] = got
        return got == want
    ok, dt = t.poll(probe, timeout=BOUND, interval=0.005)
    delays.append((label, dt, bool(ok)))
    print("# delay %-40s %6.0f ms%s" % (label, dt * 1000, "" if ok else " (timed out)"),
          flush=True)
    tally.check(ok, "watch: %s" % label,
                "after %.1f s %s %s answers %s, want %s" % (dt, name, qtype, last[0], want))
    return ok


_barriers = [0]


def barrier(root, port):
    """Rewrites zz-barrier.yaml with a new ClusterIP and waits until it is
    served: every change written before it has been read by then. Returns
    whether it was served within BOUND."""
    _barriers[0] += 1
    ip = "10.96.6.%d" % _barriers[0]
    t.write_file(os.path.join(root, "zz-barrier.yaml"), svc_yaml("barrier", ip))
    ok, _ = t.poll(lambda: answer_of(port, "barrier." + D) == ("NOERROR", [ip]), BOUND)
    return bool(ok)


def stays(tally, label, root, port, name, want_rcode, want_addrs):
    """After every change written so far has been read (barrier), the
    answer is still what it was."""
    want = (want_rcode, sorted(want_addrs))
    if not barrier(root, port):
        tally.fail("watch: %s" % label, "the barrier file was not served within %.0f s"
                   % BOUND)
        return False
    got = answer_of(port, name)
    return tally.check(got == want, "watch: %s" % label,
                       "%s answers %s, want %s" % (name, got, want))


def problem_lines(srv, fname, start=0):
    """[warn]/[error] lines of stderr (from byte offset `start`) naming fname."""
    text = srv.stderr_text()[start:]
    return [l for l in text.splitlines()
            if fname in l and re.search(r"\[(warn|error)\]", l)]


def expect_logged(tally, label, srv, root, fname, start, reason_re=None):
    """Exactly one problem line names fname: waits for it, then for a barrier
    (a later pass over the directory, which must not log it again)."""
    lines, dt = t.poll(lambda: problem_lines(srv, fname, start), timeout=BOUND)
    if not lines:
        tally.fail("log: %s" % label, "no [warn]/[error] line naming %s within %.0f s; "
                   "stderr tail:\n%s" % (fname, BOUND, srv.stderr_tail(10)))
        return
    if not barrier(root, srv.port):
        tally.fail("log: %s" % label, "the barrier file was not served within %.0f s" % BOUND)
        return
    lines = problem_lines(srv, fname, start)
    d = []
    if len(lines) != 1:
        d.append("%d lines name %s, want 1:\n      %s" % (len(lines), fname,
                                                        "\n      ".join(lines)))
    if reason_re and not any(re.search(reason_re, l, re.I) for l in lines):
        d.append("no line gives the reason (/%s/): %s" % (reason_re, lines))
    tally.diffs("log: %s" % label, d)


def configmap_swap():
    d = []
    cm = t.mkdtemp(prefix="svcdns-cm-")
    srv = t.Server(cm)
    try:
        os.mkdir(os.path.join(cm, "..2024_05_01_10_00_00.1"))
        t.write_file(os.path.join(cm, "..2024_05_01_10_00_00.1", "cm.yaml"),
                     svc_yaml("cm", "10.96.9.50"))
        os.symlink("..2024_05_01_10_00_00.1", os.path.join(cm, "..data"))
        os.symlink("..data/cm.yaml", os.path.join(cm, "cm.yaml"))
        srv.start()
        if answer_of(srv.port, "cm." + D) != ("NOERROR", ["10.96.9.50"]):
            return "before the swap: %s" % (answer_of(srv.port, "cm." + D),)
        os.mkdir(os.path.join(cm, "..2024_05_01_10_05_00.2"))
        t.write_file(os.path.join(cm, "..2024_05_01_10_05_00.2", "cm.yaml"),
                     svc_yaml("cm", "10.96.9.51"))
        os.symlink("..2024_05_01_10_05_00.2", os.path.join(cm, "..data_tmp"))
        os.rename(os.path.join(cm, "..data_tmp"), os.path.join(cm, "..data"))
        shutil.rmtree(os.path.join(cm, "..2024_05_01_10_00_00.1"))
        ok, dt = t.poll(lambda: answer_of(srv.port, "cm." + D) == ("NOERROR", ["10.96.9.51"]),
                        BOUND)
        print("# delay %-40s %6.0f ms" % ("ConfigMap ..data swap", dt * 1000), flush=True)
        if not ok:
            d.append("after the swap: %s, want 10.96.9.51" % (answer_of(srv.port, "cm." + D),))
    finally:
        d += srv.stop()
    return d


def churn(root, port):
    """4 threads query (UDP and TCP) while flip.yaml is rewritten 30 times; every
    answer must be one of the two valid versions, and base never changes."""
    f = os.path.join(root, "flip.yaml")
    ips = ["10.96.7.51", "10.96.7.52"]
    t.write_file(f, svc_yaml("flip", ips[0]))
    ok, _ = t.poll(lambda: answer_of(port, "flip." + D) == ("NOERROR", [ips[0]]), BOUND)
    if not ok:
        return "flip.yaml never served"
    stop = threading.Event()
    bad = []
    counts = [0]

    def hammer(tcp):
        while not stop.is_set():
            try:
                r = t.run_dnspython(port, "flip." + D, "A", tcp=tcp)
                got = [x.split()[-1] for x in r.answer]
                if r.rcode != "NOERROR" or len(got) != 1 or got[0] not in ips:
                    bad.append("flip: %s %s" % (r.rcode, r.answer))
                r = t.run_dnspython(port, "base." + D, "A", tcp=tcp)
                if r.rcode != "NOERROR" or r.answer != ["base.%s 5 IN A 10.96.7.1" % D]:
                    bad.append("base: %s %s" % (r.rcode, r.answer))
                counts[0] += 2
            except Exception as e:  # noqa: BLE001
                bad.append("%s: %s" % (type(e).__name__, e))
    threads = [threading.Thread(target=hammer, args=(i % 2 == 1,)) for i in range(4)]
    for th in threads:
        th.start()
    try:
        for i in range(30):
            if i % 2:
                t.write_file(f, svc_yaml("flip", ips[i % 2]))
            else:
                t.write_atomic(f, svc_yaml("flip", ips[i % 2]))
            time.sleep(0.03)
    finally:
        stop.set()
        for th in threads:
            th.join(10)
    last = ips[29 % 2]
    ok, _ = t.poll(lambda: answer_of(port, "flip." + D) == ("NOERROR", [last]), BOUND)
    print("# churn: %d queries during 30 rewrites, %d bad" % (counts[0], len(bad)), flush=True)
    d = bad[:5] + (["... %d more" % (len(bad) - 5)] if len(bad) > 5 else [])
    if not ok:
        d.append("final version (%s) not served" % last)
    if counts[0] < 20:
        d.append("only %d queries answered" % counts[0])
    os.unlink(f)
    return d


def body(tally):
    root = t.copy_fixture("watch")
    srv = t.Server(root).start()
    port = srv.port
    f_live = os.path.join(root, "live.yaml")

    # ---- add / edit / replace / remove
    tally.check(answer_of(port, "live." + D) == ("NXDOMAIN", []), "watch: live absent at start",
                str(answer_of(port, "live." + D)))
    s0 = t.soa_serial(port)
    t.write_file(f_live, svc_yaml("live", "10.96.7.10"))
    wait_for(tally, "new file -> new service", port, "live." + D, "NOERROR", ["10.96.7.10"])
    s1 = t.soa_serial(port)
    tally.check(s0 is not None and s1 is not None and s1 > s0, "serial grows after add",
                "serial %s -> %s" % (s0, s1))

    t.write_file(f_live, svc_yaml("live", "10.96.7.11"))
    wait_for(tally, "edit in place -> new ClusterIP", port, "live." + D, "NOERROR",
             ["10.96.7.11"])
    s2 = t.soa_serial(port)
    tally.check(s2 is not None and s1 is not None and s2 > s1, "serial grows after edit",
                "serial %s -> %s" % (s1, s2))

    t.write_atomic(f_live, svc_yaml("live", "10.96.7.12"))
    wait_for(tally, "rename over -> new ClusterIP", port, "live." + D, "NOERROR",
             ["10.96.7.12"])
    wait_for(tally, "PTR follows the edit", port, t.rev("10.96.7.12"), "NOERROR",
             ["live.default.svc.cluster.local."], qtype="PTR")

    os.unlink(f_live)
    wait_for(tally, "remove file -> NXDOMAIN", port, "live." + D, "NXDOMAIN", [])
    s3 = t.soa_serial(port)
    tally.check(s3 is not None and s2 is not None and s3 > s2, "serial grows after remove",
                "serial %s -> %s" % (s2, s3))
    wait_for(tally, "PTR gone after remove", port, t.rev("10.96.7.12"), "NXDOMAIN", [],
             qtype="PTR")

    # a .yml file, then a file that is not a manifest (ignored)
    f_yml = os.path.join(root, "other.yml")
    t.write_file(f_yml, svc_yaml("other", "10.96.7.20"))
    wait_for(tally, ".yml file added", port, "other." + D, "NOERROR", ["10.96.7.20"])
    os.unlink(f_yml)
    wait_for(tally, ".yml file removed", port, "other." + D, "NXDOMAIN", [])
    t.write_file(os.path.join(root, "notes.txt"), svc_yaml("txt", "10.96.7.30"))
    stays(tally, ".txt file is not read", root, port, "txt." + D, "NXDOMAIN", [])

    # a file with two objects loses one
    f_two = os.path.join(root, "two.json")
    two = '{"apiVersion":"v1","kind":"List","items":[%s]}'
    svc_json = ('{"apiVersion":"v1","kind":"Service","metadata":{"name":"%s","namespace":'
                '"default"},"spec":{"clusterIP":"%s","ports":[{"port":80}]}}')
    t.write_file(f_two, two % ",".join([svc_json % ("one", "10.96.7.41"),
                                        svc_json % ("two", "10.96.7.42")]))
    wait_for(tally, "List file: first service", port, "one." + D, "NOERROR", ["10.96.7.41"])
    wait_for(tally, "List file: second service", port, "two." + D, "NOERROR", ["10.96.7.42"])
    t.write_file(f_two, two % (svc_json % ("one", "10.96.7.41")))
    wait_for(tally, "List file loses an item -> NXDOMAIN", port, "two." + D, "NXDOMAIN", [])
    stays(tally, "List file: remaining item stays", root, port, "one." + D, "NOERROR",
          ["10.96.7.41"])

    # endpoints change: a headless service whose slice is edited, pods added
    f_hl = os.path.join(root, "hl.yaml")
    hl = svc_yaml("hl", "None") + """---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: hl-1
  namespace: default
  labels: {kubernetes.io/service-name: hl}
addressType: IPv4
ports: [{name: http, port: 80, protocol: TCP}]
endpoints:
  - addresses: [10.244.9.1]
    conditions: {ready: true}
  - addresses: [10.244.9.2]
    conditions: {ready: %s}
"""
    t.write_file(f_hl, hl % "true")
    wait_for(tally, "headless: two ready endpoints", port, "hl." + D, "NOERROR",
             ["10.244.9.1", "10.244.9.2"])
    t.write_file(f_hl, hl % "false")
    wait_for(tally, "headless: endpoint turns not ready", port, "hl." + D, "NOERROR",
             ["10.244.9.1"])

    f_pod = os.path.join(root, "pod2.yaml")
    t.write_file(f_pod, """apiVersion: v1
kind: Pod
metadata: {name: base-2, namespace: default, labels: {app: base}}
spec:
  containers: [{name: main, image: x, ports: [{containerPort: 8080}]}]
status:
  phase: Running
  podIP: 10.244.8.2
  conditions: [{type: Ready, status: "True"}]
""")

    def ch_base():
        r = t.run_dnspython(port, "base." + D, "TXT", "CH")
        return ["".join(s) for s in r.txt_strings]
    want_ch = ["http 80/TCP -> 8080 nodePort=- endpoints=2/2 ready: 10.244.8.1:8080 "
               "10.244.8.2:8080"]
    got, dt = t.poll(lambda: ch_base() == want_ch, timeout=BOUND)
    print("# delay %-40s %6.0f ms" % ("new Pod -> CH TXT endpoints", dt * 1000), flush=True)
    tally.check(got, "watch: new Pod joins the Service's endpoints",
                "CH TXT base: %s, want %s" % (ch_base(), want_ch))

    # a ConfigMap volume: files are symlinks through ..data, which the kubelet
    # swaps atomically to a new timestamped directory
    tally.run("ConfigMap-style ..data symlink swap is picked up", configmap_swap)
    tally.run("manifest directory removed and recreated: kept while gone, new content "
              "served when back", dir_removed_and_recreated)

    # ---- answers stay consistent while files change under load
    tally.run("queries under load during 30 rewrites: always a valid answer",
              churn, root, port)

    # moving files in and out of the directory
    outside = os.path.join(os.path.dirname(root), "moved-out.yaml")
    t.write_file(outside, svc_yaml("moved", "10.96.7.60"))
    os.rename(outside, os.path.join(root, "moved.yaml"))
    wait_for(tally, "file moved into the directory", port, "moved." + D, "NOERROR",
             ["10.96.7.60"])
    os.rename(os.path.join(root, "moved.yaml"), outside)
    wait_for(tally, "file moved out of the directory", port, "moved." + D, "NXDOMAIN", [])

    # a duplicate Service in a second file: the first holder keeps the name
    mark = len(srv.stderr_text())
    t.write_file(os.path.join(root, "zz-dup.yaml"), svc_yaml("base", "10.96.7.99"))
    expect_logged(tally, "duplicate Service names zz-dup.yaml", srv, root, "zz-dup.yaml", mark)
    stays(tally, "duplicate Service: first file keeps the name", root, port, "base." + D,
          "NOERROR", ["10.96.7.1"])
    os.unlink(os.path.join(root, "zz-dup.yaml"))

    # ---- broken files keep their previous objects
    f_keep = os.path.join(root, "keep.yaml")
    t.write_file(f_keep, svc_yaml("keep", "10.96.8.1"))
    wait_for(tally, "keep.yaml served", port, "keep." + D, "NOERROR", ["10.96.8.1"])

    mark = len(srv.stderr_text())
    t.write_file(f_keep, "apiVersion: v1\nkind: Service\nmetadata: {name: keep\n  : [\n")
    expect_logged(tally, "invalid YAML names keep.yaml", srv, root, "keep.yaml", mark)
    stays(tally, "invalid YAML: old answer stays", root, port, "keep." + D, "NOERROR",
          ["10.96.8.1"])
    stays(tally, "invalid YAML: other files unaffected", root, port, "base." + D, "NOERROR",
          ["10.96.7.1"])

    t.write_file(f_keep, svc_yaml("keep", "10.96.8.2"))
    wait_for(tally, "keep.yaml fixed -> new answer", port, "keep." + D, "NOERROR", ["10.96.8.2"])

    mark = len(srv.stderr_text())
    t.write_file(f_keep, svc_yaml("keep", "10.96.8.3",
                                  extra_spec="  selector:\n    app: [a, b]\n"))
    expect_logged(tally, "selector app: [a, b] names keep.yaml", srv, root, "keep.yaml", mark,
                  reason_re=r"selector")
    stays(tally, "invalid selector: old answer stays", root, port, "keep." + D, "NOERROR",
          ["10.96.8.2"])

    f_port = os.path.join(root, "port.yaml")
    t.write_file(f_port, svc_yaml("portsvc", "10.96.8.10"))
    wait_for(tally, "port.yaml served", port, "portsvc." + D, "NOERROR", ["10.96.8.10"])
    mark = len(srv.stderr_text())
    t.write_file(f_port, svc_yaml("portsvc", "10.96.8.11", port=70000))
    expect_logged(tally, "port 70000 names port.yaml", srv, root, "port.yaml", mark,
                  reason_re=r"port")
    stays(tally, "port 70000: old answer stays", root, port, "portsvc." + D, "NOERROR",
          ["10.96.8.10"])

    # one bad object among good ones: the good one is updated, the bad one kept
    f_pair = os.path.join(root, "pair.yaml")
    t.write_file(f_pair, svc_yaml("p1", "10.96.9.1") + "---\n" + svc_yaml("p2", "10.96.9.2"))
    wait_for(tally, "pair.yaml: p1", port, "p1." + D, "NOERROR", ["10.96.9.1"])
    wait_for(tally, "pair.yaml: p2", port, "p2." + D, "NOERROR", ["10.96.9.2"])
    mark = len(srv.stderr_text())
    t.write_file(f_pair, svc_yaml("p1", "10.96.9.11") + "---\n"
                 + svc_yaml("p2", "10.96.9.12", port=70000))
    wait_for(tally, "pair.yaml: valid p1 updated", port, "p1." + D, "NOERROR", ["10.96.9.11"])
    expect_logged(tally, "pair.yaml: invalid p2 logged", srv, root, "pair.yaml", mark)
    stays(tally, "pair.yaml: invalid p2 keeps its old answer", root, port, "p2." + D, "NOERROR",
          ["10.96.9.2"])

    # a file over 16 MiB, and a file holding a NUL byte, are refused; the
    # objects they held stay. Both are renamed into place, so that the server
    # never sees them half-written.
    f_big = os.path.join(root, "huge.yaml")
    t.write_file(f_big, svc_yaml("huge", "10.96.9.20"))
    wait_for(tally, "huge.yaml served", port, "huge." + D, "NOERROR", ["10.96.9.20"])
    mark = len(srv.stderr_text())
    t.write_atomic(f_big, svc_yaml("huge", "10.96.9.21") + ("# " + "x" * 1000 + "\n") * 17000)
    expect_logged(tally, "file over 16 MiB names huge.yaml", srv, root, "huge.yaml", mark,
                  reason_re=r"larger than \d+ bytes")
    stays(tally, "file over 16 MiB: old answer stays", root, port, "huge." + D, "NOERROR",
          ["10.96.9.20"])
    mark = len(srv.stderr_text())
    t.write_atomic(f_big, svc_yaml("huge", "10.96.9.22") + "# nul \0 byte\n")
    expect_logged(tally, "NUL byte names huge.yaml", srv, root, "huge.yaml", mark,
                  reason_re=r"NUL byte")
    stays(tally, "NUL byte: old answer stays", root, port, "huge." + D, "NOERROR", ["10.96.9.20"])
    os.unlink(f_big)
    wait_for(tally, "huge.yaml removed", port, "huge." + D, "NXDOMAIN", [])

    # a Namespace object alone makes <ns>.svc exist; removing it, not
    f_ns = os.path.join(root, "ns.yaml")
    t.write_file(f_ns, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: tmpns\n")
    wait_for(tally, "Namespace added -> <ns>.svc NODATA", port, "tmpns.svc.cluster.local.",
             "NOERROR", [])
    os.unlink(f_ns)
    wait_for(tally, "Namespace removed -> NXDOMAIN", port, "tmpns.svc.cluster.local.",
             "NXDOMAIN", [])

    # a file broken from the start, then removed
    mark = len(srv.stderr_text())
    f_new = os.path.join(root, "new-broken.json")
    t.write_file(f_new, '{"apiVersion": "v1", "kind": "Service", "metadata": {')
    expect_logged(tally, "new broken file names new-broken.json", srv, root, "new-broken.json",
                  mark)
    stays(tally, "new broken file: others unaffected", root, port, "base." + D, "NOERROR",
          ["10.96.7.1"])
    os.unlink(f_new)

    # removing a broken file removes what it held
    os.unlink(f_keep)
    wait_for(tally, "broken keep.yaml removed -> NXDOMAIN", port, "keep." + D, "NXDOMAIN", [])

    tally.check(srv.alive(), "server still running", srv.stderr_tail())
    slow = [(l, dt) for l, dt, ok in delays if ok and dt > 0.1]
    if slow:
        print("# note: changes slower than the designed 100 ms: %s"
              % ", ".join("%s %.0f ms" % (l, dt * 1000) for l, dt in slow))


def dir_removed_and_recreated():
    """The whole directory goes away (renamed away in one step, as when a
    volume is swapped, then deleted) and comes back with other files: what was
    served stays served while it is gone, with one log line; when it is back,
    its new files are served, the old ones' Services go, and the new directory
    is watched. Then `rm -rf` and a new directory again."""
    d = []
    root = os.path.join(t.mkdtemp(prefix="svcdns-dir-"), "manifests")
    os.mkdir(root)
    t.write_file(os.path.join(root, "gone.yaml"), svc_yaml("gone", "10.96.9.70"))
    srv = t.Server(root)
    try:
        srv.start()
        port = srv.port
        if answer_of(port, "gone." + D) != ("NOERROR", ["10.96.9.70"]):
            return "before: %s" % (answer_of(port, "gone." + D),)
        os.rename(root, root + ".old")
        shutil.rmtree(root + ".old")
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.5:  # past two rescans
            got = answer_of(port, "gone." + D)
            if got != ("NOERROR", ["10.96.9.70"]):
                d.append("while the directory is gone, gone.%s answers %s" % (D, got))
                break
            time.sleep(0.05)
        missing = [l for l in srv.stderr_text().splitlines() if "cannot be read" in l]
        if len(missing) != 1:
            d.append("%d log lines about the missing directory, want 1: %s"
                     % (len(missing), missing[:3]))
        os.mkdir(root)
        t.write_file(os.path.join(root, "back.yaml"), svc_yaml("back", "10.96.9.71"))
        for name, want in (("back", ("NOERROR", ["10.96.9.71"])), ("gone", ("NXDOMAIN", []))):
            ok, dt = t.poll(lambda: answer_of(port, name + "." + D) == want, BOUND)
            print("# delay %-40s %6.0f ms" % ("recreated dir: " + name, dt * 1000), flush=True)
            if not ok:
                d.append("directory back: %s answers %s, want %s"
                         % (name, answer_of(port, name + "." + D), want))
        t.write_file(os.path.join(root, "back.yaml"), svc_yaml("back", "10.96.9.72"))
        ok, _ = t.poll(lambda: answer_of(port, "back." + D) == ("NOERROR", ["10.96.9.72"]),
                       BOUND)
        if not ok:
            d.append("an edit in the recreated directory is not served")
        shutil.rmtree(root)  # files first, then the directory
        time.sleep(0.3)
        os.mkdir(root)
        t.write_file(os.path.join(root, "again.yaml"), svc_yaml("again", "10.96.9.73"))
        ok, _ = t.poll(lambda: answer_of(port, "again." + D) == ("NOERROR", ["10.96.9.73"]),
                       BOUND)
        if not ok:
            d.append("after rm -rf and a new directory: again.%s answers %s"
                     % (D, answer_of(port, "again." + D)))
    finally:
        d += srv.stop()
    return d


if __name__ == "__main__":
    t.main_guard(t.Tally("test_watch"), body)
