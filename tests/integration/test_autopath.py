"""The search-path fast path (--autopath), and what it saves a real client.

Pods resolve with `search <ns>.svc.cluster.local svc.cluster.local
cluster.local` and `ndots:5`, so `google.com` is first asked as
`google.com.<ns>.svc.cluster.local`. With --autopath svcdns answers that
question with a CNAME to `google.com.` plus google.com's records, when nothing
in the cluster could match; the client stops there.

Part 1 checks the answer's shape with dnspython and dig against svcdns and a
real upstream (svcdns serving tests/fixtures/forward zone files).

Part 2 measures a real glibc client: this file runs itself again under
`unshare -mn` (a private network namespace, so svcdns can listen on
127.0.0.1:53 where resolv.conf points, and a private mount namespace, so that a
temporary resolv.conf is bind-mounted over /etc/resolv.conf). `getent ahosts
google.com` (getaddrinfo: A and AAAA) runs once without and once with
--autopath; the queries it sent are counted in svcdns's debug query log. The
forwarder there reads its upstream from --resolv-conf, which also lists
svcdns's own address (skipped, with a warning).
"""

import fcntl
import json
import os
import re
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_upstream as fu  # noqa: E402
import svcdns_testlib as t  # noqa: E402

import dns.flags  # noqa: E402
import dns.rcode  # noqa: E402
import dns.rdatatype  # noqa: E402

CLUSTER = fu.CLUSTER


def records(msg):
    return [("%s %s %s" % (rrset.name.to_text().lower(), dns.rdatatype.to_text(rrset.rdtype),
                           rd.to_text())) for rrset in msg.answer for rd in rrset]


def upstream_sent(fwd):
    return [x.name for x in fu.sent_upstream(fwd)]


def shape(tally):
    up = fu.zone_upstream("google.com", "example.test")
    ap = t.Server(CLUSTER, args=["--threads", "1", "--log-level", "debug", "--autopath",
                                 "--upstream", "127.0.0.1:%d" % up.port]).start()
    plain = t.Server(CLUSTER, args=["--threads", "1", "--upstream",
                                    "127.0.0.1:%d" % up.port]).start()
    ok_cases = [
        ("google.com.default.svc.cluster.local", "A",
         ["google.com.default.svc.cluster.local. CNAME google.com.", "google.com. A 192.0.2.142"]),
        ("Google.Com.shop.svc.cluster.local", "AAAA",
         ["google.com.shop.svc.cluster.local. CNAME google.com.",
          "google.com. AAAA 2001:db8::142"]),
        ("www.example.test.default.svc.cluster.local", "A",
         ["www.example.test.default.svc.cluster.local. CNAME www.example.test.",
          "www.example.test. A 192.0.2.80"]),
    ]
    for name, qtype, want in ok_cases:
        for tcp in (False, True):
            def check():
                msg, _ = t.query(ap.port, name, qtype, rd=True, tcp=tcp)
                d = []
                if msg.rcode() != dns.rcode.NOERROR:
                    d.append("rcode %s" % dns.rcode.to_text(msg.rcode()))
                if records(msg) != want:
                    d.append("answer %s, want %s (in this order)" % (records(msg), want))
                if msg.question[0].name.to_text() != name + ".":
                    d.append("question echoed as %s" % msg.question[0].name)
                if not msg.flags & dns.flags.RA or msg.flags & dns.flags.AA:
                    d.append("flags %s: want RA, no AA" % dns.flags.to_text(msg.flags))
                return d
            tally.run("autopath %s %s (%s): CNAME to the bare name plus its answer"
                      % (name, qtype, "TCP" if tcp else "UDP"), check)

    # Left to the client's own search list: the answer is the cluster's.
    n0 = len(upstream_sent(ap))
    for name, why in (("web.shop.default.svc.cluster.local", "web.shop.svc.<zone> exists"),
                      ("shop.default.svc.cluster.local", "shop is a namespace"),
                      ("google.com.nons.svc.cluster.local", "nons is not a namespace")):
        tally.run("no autopath for %s (%s): NXDOMAIN" % (name, why),
                  lambda: [] if t.query(ap.port, name, "A", rd=True)[0].rcode()
                  == dns.rcode.NXDOMAIN else ["not NXDOMAIN"])
    tally.check(len(upstream_sent(ap)) == n0, "nothing forwarded for them",
                str(upstream_sent(ap)[n0:]))
    # The bare name fails upstream (REFUSED there): the cluster's NXDOMAIN stands.
    msg, _ = t.query(ap.port, "nothere.default.svc.cluster.local", "A", rd=True)
    tally.check(msg.rcode() == dns.rcode.NXDOMAIN and not msg.answer,
                "bare name unanswerable upstream: the NXDOMAIN stands", str(msg))
    msg, _ = t.query(plain.port, "google.com.default.svc.cluster.local", "A", rd=True)
    tally.check(msg.rcode() == dns.rcode.NXDOMAIN, "without --autopath: NXDOMAIN", str(msg))
    rc, out, err = t._run(t.dig_cmd(ap.port, "google.com.default.svc.cluster.local", "A",
                                    opts=["+noall", "+answer"]))
    tally.check("CNAME\tgoogle.com." in out.replace(" ", "\t") and "192.0.2.142" in out,
                "dig shows the CNAME and the address", out)
    for s in (ap, plain, up):
        tally.server_stopped(s)


# ---- part 2: a glibc client in its own namespaces ---------------------------

def lo_up():
    """ip link set lo up, without needing iproute2."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        ifr = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, 0x8913, ifr))[1]  # SIOCGIFFLAGS
        fcntl.ioctl(s, 0x8914, struct.pack("16sh", b"lo", flags | 1))  # SIOCSIFFLAGS, IFF_UP
    finally:
        s.close()


class ResolvConfServer(t.Server):
    """svcdns whose upstreams come from --resolv-conf (no --upstream at all)."""

    def cmdline(self):
        cmd = super().cmdline()
        i = cmd.index("--upstream")
        return cmd[:i] + cmd[i + 2:]


def inside(tmp):
    """Runs in the private namespaces; prints one JSON line of results."""
    res = {}
    lo_up()
    client_rc = os.path.join(tmp, "client-resolv.conf")
    t.write_file(client_rc, "nameserver 127.0.0.1\n"
                            "search default.svc.cluster.local svc.cluster.local cluster.local\n"
                            "options ndots:5 timeout:2 attempts:1\n")
    server_rc = os.path.join(tmp, "server-resolv.conf")
    t.write_file(server_rc, "# svcdns itself first: it must be skipped\n"
                            "nameserver 127.0.0.1\nnameserver 127.0.0.2\n")
    subprocess.run(["mount", "--bind", client_rc, "/etc/resolv.conf"], check=True)
    up = fu.zone_upstream("google.com", args=["--listen", "127.0.0.2:53"])
    try:
        for mode in ("plain", "autopath"):
            args = ["--threads", "1", "--log-level", "debug", "--listen", "127.0.0.1:53",
                    "--resolv-conf", server_rc]
            if mode == "autopath":
                args.append("--autopath")
            srv = ResolvConfServer(CLUSTER, args=args).start()
            try:
                before = len(srv.stderr_text().splitlines())
                t0 = time.monotonic()
                p = subprocess.run(["getent", "ahosts", "google.com"], capture_output=True,
                                   text=True, timeout=20)
                dt = time.monotonic() - t0
                # One worker logs in the order it reads: once a later query
                # of ours is in the log, every query getent sent is there.
                marker = "end-of-getent.%s.cluster.local" % mode
                t.query(53, marker, "TXT")
                t.poll(lambda: marker in srv.stderr_text(), timeout=10)
                lines = srv.stderr_text().splitlines()[before:]
                lines = lines[:next((i for i, l in enumerate(lines) if marker in l),
                                    len(lines))]
                queries = [re.search(r": (\S+) class 1 type (\d+)", l).groups()
                           for l in lines if "query from 127.0.0.1#" in l]
                res[mode] = {"queries": queries, "getent": p.stdout, "rc": p.returncode,
                             "ms": round(dt * 1000, 1)}
                log = srv.stderr_text()
                res[mode]["resolv_conf_upstream"] = "forwarding . to 127.0.0.2:53" in log
                res[mode]["own_skipped"] = "nameserver 127.0.0.1:53 is svcdns itself" in log
            finally:
                res[mode]["stop"] = srv.stop()
    finally:
        res["upstream_stop"] = up.stop()
    print("RESULT " + json.dumps(res), flush=True)


def namespaces_unavailable(flags):
    """None when `unshare FLAGS` works here, else what it said (a container
    may forbid new namespaces, or changing the mount propagation that a new
    mount namespace starts with)."""
    try:
        p = subprocess.run(["unshare", flags, "--", "true"], capture_output=True, text=True,
                           timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "unshare %s: %s" % (flags, e)
    if p.returncode == 0:
        return None
    return "unshare %s fails here: %s" % (flags, (p.stderr or p.stdout).strip()[-300:])


def glibc(tally):
    # As root: new mount and network namespaces; otherwise inside a user
    # namespace of our own too (where the kernel allows that).
    flags = "-mn" if os.geteuid() == 0 else "-rmn"
    why = namespaces_unavailable(flags)
    if why:
        tally.skip("glibc client through --autopath (part 2)", why)
        return
    tmp = t.mkdtemp(prefix="svcdns-ns-")
    try:
        p = subprocess.run(["unshare", flags, "--", "/usr/bin/python3", os.path.abspath(__file__),
                            "--inside", tmp], capture_output=True, text=True, timeout=50,
                           env=dict(os.environ))
    except subprocess.TimeoutExpired as e:
        tally.fail("glibc measurement", "timed out: %s" % (e.stdout or "")[-1000:])
        return
    m = re.search(r"^RESULT (.*)$", p.stdout, re.M)
    if not m:
        tally.fail("glibc measurement", "unshare %s failed: rc %d\n%s\n%s" % (flags,
                   p.returncode, p.stdout[-1500:], p.stderr[-1500:]))
        return
    res = json.loads(m.group(1))
    for mode in ("plain", "autopath"):
        r = res[mode]
        tally.check(r["rc"] == 0 and "192.0.2.142" in r["getent"] and "2001:db8::142" in
                    r["getent"], "getent ahosts google.com resolves (%s)" % mode,
                    "%s %s" % (r["rc"], r["getent"]))
        tally.check(not r["stop"], "svcdns stops cleanly (%s)" % mode, str(r["stop"]))
        print("# glibc getent ahosts google.com, %s: %d queries to svcdns, %.1f ms: %s"
              % (mode, len(r["queries"]), r["ms"],
                 " ".join("%s/%s" % (n, ty) for n, ty in r["queries"])))
    tally.check(res["plain"]["resolv_conf_upstream"], "--resolv-conf: its nameserver is used")
    tally.check(res["plain"]["own_skipped"], "--resolv-conf: svcdns's own address is skipped")
    plain, ap = len(res["plain"]["queries"]), len(res["autopath"]["queries"])
    tally.check(plain == 8, "without --autopath: 4 names x (A, AAAA) = 8 queries",
                "%d queries" % plain)
    tally.check(ap == 2, "with --autopath: 2 queries (A, AAAA of the first search name)",
                "%d queries" % ap)
    tally.check(not res["upstream_stop"], "the upstream stops cleanly", str(res["upstream_stop"]))


def main(tally):
    shape(tally)
    glibc(tally)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--inside":
        inside(sys.argv[2])
        sys.exit(0)
    t.main_guard(t.Tally("autopath"), main)
