"""Zone transfer: AXFR of the cluster zone and of a static zone to allowed
clients (dig), REFUSED to others, IXFR of a client already up to date, and a
real Knot DNS secondary that transfers the cluster zone, serves it, and picks
up a change after svcdns's NOTIFY."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import svcdns_testlib as lib  # noqa: E402

SVC = """apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: %s
  ports: [{name: http, port: 80}]
"""


def dig(port, *args):
    out = subprocess.run(["dig", "-r", "@127.0.0.1", "-p", str(port), "+tries=1", "+time=3"]
                         + list(args), capture_output=True, text=True, timeout=30)
    return out.stdout


def records(text):
    return [line.split() for line in text.splitlines() if line and not line.startswith(";")]


def knot_conf(tmp, port, master_port):
    return """server:
    listen: 127.0.0.1@%d
    rundir: "%s"
    user: root:root
database:
    storage: "%s"
log:
  - target: stderr
    any: info
remote:
  - id: svcdns
    address: 127.0.0.1@%d
acl:
  - id: notify_from_svcdns
    address: 127.0.0.0/8
    action: notify
template:
  - id: default
    storage: "%s"
    zonefile-sync: -1
    zonefile-load: none
    journal-content: none
zone:
  - domain: cluster.local
    master: svcdns
    acl: notify_from_svcdns
""" % (port, tmp, tmp, master_port, tmp)


def main():
    t = lib.Tally("xfr")
    tmp = lib.mkdtemp(prefix="svcdns-xfr-")
    mdir = os.path.join(tmp, "manifests")
    os.makedirs(mdir)
    lib.write_file(os.path.join(mdir, "web.yaml"), SVC % "10.96.0.10")
    zonefile = os.path.join(lib.FIXTURES, "zones", "example.org.zone")
    knot_port = lib.free_port()
    srv = lib.Server(mdir, args=["--allow-transfer", "127.0.0.0/8",
                                 "--notify", "127.0.0.1:%d" % knot_port,
                                 "--zone-file", "example.org=" + zonefile]).start()
    knot = None
    try:
        # AXFR of the cluster zone: SOA first and last, the Service inside
        out = dig(srv.port, "cluster.local", "AXFR")
        rr = records(out)
        t.check(len(rr) > 3 and rr[0][3] == "SOA" and rr[-1][3] == "SOA",
                "AXFR cluster.local starts and ends with the SOA", out[-2000:])
        t.check(["web.shop.svc.cluster.local.", "5", "IN", "A", "10.96.0.10"] in rr,
                "AXFR cluster.local holds the Service's A record", out[-2000:])
        t.check(any(r[3] == "SRV" and r[0].startswith("_http._tcp.web.") for r in rr),
                "AXFR cluster.local holds the SRV record", out[-2000:])
        t.check(any(r[0] == "dns-version.cluster.local." for r in rr),
                "AXFR cluster.local holds dns-version", out[-2000:])
        # the static zone
        out = dig(srv.port, "example.org", "AXFR")
        rr = records(out)
        t.check(len(rr) > 5 and rr[0][3] == "SOA" and rr[-1][3] == "SOA"
                and any(r[0] == "www.example.org." for r in rr),
                "AXFR of a static zone", out[-1500:])
        # not a zone apex
        out = dig(srv.port, "shop.svc.cluster.local", "AXFR")
        t.check("Transfer failed" in out or "NOTAUTH" in out or "REFUSED" in out,
                "AXFR of a name that is no zone apex fails", out[-500:])
        # IXFR from a client already at our serial: our SOA alone
        serial = int(records(dig(srv.port, "cluster.local", "SOA", "+noall", "+answer"))[0][6])
        out = dig(srv.port, "cluster.local", "IXFR=%d" % serial)
        rr = records(out)
        t.check(len(rr) == 1 and rr[0][3] == "SOA", "IXFR at the current serial: SOA alone",
                out[-1000:])
        out = dig(srv.port, "cluster.local", "IXFR=%d" % (serial - 5))
        rr = records(out)
        t.check(len(rr) > 3 and rr[-1][3] == "SOA" and any(r[3] == "TXT" for r in rr),
                "IXFR from a serial the journal does not know: the whole zone", out[-1000:])
        # a change: IXFR from the old serial gets just the difference
        lib.write_atomic(os.path.join(mdir, "web.yaml"), SVC % "10.96.0.12")
        lib.poll(lambda: "10.96.0.12" in dig(srv.port, "web.shop.svc.cluster.local", "A"),
                 timeout=5.0, interval=0.05)
        new_serial = int(records(dig(srv.port, "cluster.local", "SOA", "+noall",
                                     "+answer"))[0][6])
        out = dig(srv.port, "cluster.local", "IXFR=%d" % serial)
        rr = records(out)
        soas = [r for r in rr if r[3] == "SOA"]
        t.check(len(soas) == 4 and int(soas[0][6]) == new_serial and int(soas[1][6]) == serial
                and int(soas[-1][6]) == new_serial,
                "IXFR after a change: SOA new, SOA old, ..., SOA new, ..., SOA new", out[-2000:])
        pos = [i for i, r in enumerate(rr) if r[3] == "SOA"]
        old_a = ["web.shop.svc.cluster.local.", "5", "IN", "A", "10.96.0.10"]
        new_a = ["web.shop.svc.cluster.local.", "5", "IN", "A", "10.96.0.12"]
        t.check(len(pos) == 4 and old_a in rr[pos[1]:pos[2]] and new_a in rr[pos[2]:pos[3]],
                "IXFR after a change: the old address deleted, the new one added", out[-2000:])
        t.check(not any(r[3] == "TXT" for r in rr),
                "IXFR after a change carries only the difference", out[-2000:])
        lib.write_atomic(os.path.join(mdir, "web.yaml"), SVC % "10.96.0.10")
        lib.poll(lambda: "10.96.0.10" in dig(srv.port, "web.shop.svc.cluster.local", "A"),
                 timeout=5.0, interval=0.05)
    finally:
        t.server_stopped(srv)

    # transfers refused to clients outside --allow-transfer (and by default)
    srv2 = lib.Server(mdir, args=["--allow-transfer", "10.0.0.0/8"]).start()
    try:
        out = dig(srv2.port, "cluster.local", "AXFR")
        t.check("Transfer failed" in out and not any(r[3] == "A" for r in records(out)),
                "AXFR refused to a client outside --allow-transfer", out[-500:])
    finally:
        t.server_stopped(srv2)
    srv3 = lib.Server(mdir).start()
    try:
        out = dig(srv3.port, "cluster.local", "AXFR")
        t.check("Transfer failed" in out, "AXFR refused by default", out[-500:])
    finally:
        t.server_stopped(srv3)

    # a real secondary: Knot DNS
    if not shutil.which("knotd"):
        t.fail("knotd", "knotd is not installed (contrib/quickstart.sh installs knot)")
        t.finish()
    srv = lib.Server(mdir, args=["--allow-transfer", "127.0.0.0/8",
                                 "--notify", "127.0.0.1:%d" % knot_port]).start()
    kdir = tempfile.mkdtemp(prefix="svcdns-knot-", dir=tmp)
    conf = os.path.join(kdir, "knot.conf")
    with open(conf, "w") as f:
        f.write(knot_conf(kdir, knot_port, srv.port))
    klog = open(os.path.join(kdir, "knot.log"), "w")
    try:
        knot = subprocess.Popen(["knotd", "-c", conf], stdout=klog, stderr=klog,
                                stdin=subprocess.DEVNULL)

        def knot_answer(want):
            out = dig(knot_port, "web.shop.svc.cluster.local", "A", "+noall", "+answer",
                      "+norec")
            return want in out

        t.check(lib.poll(lambda: knot_answer("10.96.0.10"), timeout=20.0, interval=0.2)[0],
                "Knot secondary serves the transferred cluster zone",
                open(os.path.join(kdir, "knot.log")).read()[-2000:])
        # a change: svcdns notifies, Knot transfers again
        lib.write_atomic(os.path.join(mdir, "web.yaml"), SVC % "10.96.0.11")
        t.check(lib.poll(lambda: knot_answer("10.96.0.11"), timeout=20.0, interval=0.2)[0],
                "after a change and NOTIFY, Knot serves the new address",
                open(os.path.join(kdir, "knot.log")).read()[-2000:])
    finally:
        if knot:
            knot.terminate()
            try:
                knot.wait(10)
            except subprocess.TimeoutExpired:
                knot.kill()
                knot.wait()
        klog.close()
        t.server_stopped(srv)
    t.finish()


if __name__ == "__main__":
    main()
