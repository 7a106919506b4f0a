"""A ClusterIP is published by DNS only once its rules are in: a Service whose
nftables rules the kernel refuses is withheld from DNS (NXDOMAIN) while the
others are answered, shown as refused in its CHAOS port view and in /metrics,
and published once the cause is gone.

The refusal is real: on the namespaces of test_nft_netns.py, after svcdns
has read its table, the test puts an element of its own in svcdns's
ClusterIP map under the key the new Service needs (with another verdict), as
a second program writing into the table would; the kernel then refuses
svcdns's element ("File exists"). Deleting that element is the cure.

Needs what test_nft_netns.py needs; skipped (77) with the reason otherwise.
"""

import json
import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import svcdns_testlib as t  # noqa: E402
import test_nft_netns as base  # noqa: E402
from test_nft_netns import NS, nsrun, run, ends, wait_for  # noqa: E402

CIP_WEB, CIP_BLOCKED = "10.96.77.10", "10.96.77.40"
BLOCKING = "{ %s . 6 . 80 : drop }" % CIP_BLOCKED
PORTS = [{"name": "http", "port": 80, "targetPort": 8080}]
SLICE_PORTS = [{"name": "http", "port": 8080, "protocol": "TCP"}]


def write_manifests(d, names):
    items = []
    for name, cip in (("web", CIP_WEB), ("blocked", CIP_BLOCKED)):
        if name in names:
            items += [base.service(name, cip, PORTS),
                      base.eslice(name, [(base.EP1, True, True, False)], SLICE_PORTS)]
    tmp = os.path.join(d, ".svcs.json.tmp")
    with open(tmp, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": items}, f)
    os.rename(tmp, os.path.join(d, "svcs.json"))


def dig(name, qtype="A", qclass="IN"):
    """(status, answer lines) from the client, through the node's listener."""
    rc, out = nsrun("client", "dig", "@" + base.NODE_IN, "+time=2", "+tries=1", "+noall",
                    "+comments", "+answer", name + ".default.svc.cluster.local", qclass,
                    qtype)
    m = re.search(r"status: (\w+)", out)
    answers = [l for l in out.splitlines() if l and not l.startswith(";")]
    return (m.group(1) if m else "no answer: " + out), answers


def axfr_names():
    """The owner names of an AXFR of the cluster zone, from the client."""
    rc, out = nsrun("client", "dig", "@" + base.NODE_IN, "+time=3", "+tries=1", "+noall",
                    "+answer", "cluster.local", "AXFR")
    return {l.split()[0] for l in out.splitlines() if l and not l.startswith(";")}


def metrics(http):
    return nsrun("node", "/usr/bin/python3", "-c",
                 "import urllib.request,sys; sys.stdout.write(urllib.request."
                 "urlopen('http://%s/metrics', timeout=5).read().decode())" % http)[1]


def body(tally):
    d = t.mkdtemp(prefix="svcdns-nftref-")
    write_manifests(d, {"web"})
    backend = subprocess.Popen(["ip", "netns", "exec", NS["backend"], "/usr/bin/python3", "-c",
                                base.BACKEND], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL)
    try:
        if backend.stdout.readline().strip() != b"ready":
            tally.fail("backend", "the backend servers did not start")
            return
        http = "127.0.0.1:%d" % t.free_port()
        srv = base.NodeServer(d, args=["--proxy=nftables", "--listen", base.NODE_IN + ":53",
                                       "--http", http, "--allow-transfer",
                                       base.CLIENT + "/32"]).start()
        rc, out = base.nft("add", "element", "inet", "svcdns", "service-ips4", BLOCKING)
        if not tally.check(rc == 0, "a conflicting element put in the table", out):
            return
        write_manifests(d, {"web", "blocked"})

        def refused():
            if not wait_for(lambda: "Service default/blocked: the kernel refused" in
                            srv.stderr_text(), timeout=15):
                return "no refusal logged for default/blocked:\n%s" % srv.stderr_tail()
            # The CHAOS view reads the published snapshot's view: once it
            # lists blocked, the snapshot that holds it is the one served.
            chaos = wait_for(lambda: [l for l in dig("blocked", "TXT", "CH")[1]
                                      if "nftables=" in l])
            if not chaos or "nftables=refused(" not in chaos[0] or \
                    "File exists" not in chaos[0]:
                return "the CHAOS view of blocked: %s" % dig("blocked", "TXT", "CH")[1]
            status, ans = dig("blocked")
            if status != "NXDOMAIN":
                return "blocked, whose rules were refused, is answered: %s %s" % (status, ans)
            status, ans = dig("web")
            if status != "NOERROR" or not ans or not ans[0].endswith(CIP_WEB):
                return "web is not answered while blocked is withheld: %s %s" % (status, ans)
            chaos = [l for l in dig("web", "TXT", "CH")[1] if "nftables=" in l]
            if not chaos or '"http 80/TCP nftables=programmed"' not in chaos[0]:
                return "the CHAOS view of web: %s" % chaos
            if ends(base.exchanges("client", "tcp:%s:80" % CIP_WEB)) != {base.EP1}:
                return "web's traffic does not flow"
            text = metrics(http)
            for want in (r"svcdns_nftables_services_refused 1\b",
                         r"svcdns_nftables_sync_failures_total [1-9]",
                         r"svcdns_pipeline_withheld_services 1\b",
                         r"svcdns_pipeline_withheld_total [1-9]"):
                if not re.search(want, text):
                    return "/metrics lacks %s:\n%s" % (want, "\n".join(
                        l for l in text.splitlines() if "nftables" in l))
            names = axfr_names()
            if "web.default.svc.cluster.local." not in names or \
                    "blocked.default.svc.cluster.local." in names:
                return "AXFR: want web and not blocked, got %s" % sorted(names)
            if "withheld from DNS" not in srv.stderr_text():
                return "the pipeline did not log the withheld Service"
            return ""
        tally.run("rules refused by the kernel: the Service is NXDOMAIN and not in AXFR, "
                  "logged, refused in CHAOS and /metrics; the others are served", refused)

        def cured():
            rc, out = base.nft("delete", "element", "inet", "svcdns", "service-ips4",
                               "{ %s . 6 . 80 }" % CIP_BLOCKED)
            if rc != 0:
                return "cannot delete the conflicting element: %s" % out
            # No change to the cluster: the pipeline's retry brings it in.
            got = wait_for(lambda: dig("blocked")[1], timeout=40)
            if not got or not got[0].endswith(CIP_BLOCKED):
                return "blocked was not published once its rules could go in: %s\n%s" % (
                    dig("blocked"), srv.stderr_tail())
            if ends(base.exchanges("client", "tcp:%s:80" % CIP_BLOCKED)) != {base.EP1}:
                return "blocked is answered but its traffic does not flow"
            chaos = [l for l in dig("blocked", "TXT", "CH")[1] if "nftables=" in l]
            if not chaos or "nftables=programmed" not in chaos[0]:
                return "the CHAOS view of blocked after the cure: %s" % chaos
            text = metrics(http)
            if not re.search(r"svcdns_nftables_services_refused 0\b", text) or \
                    not re.search(r"svcdns_pipeline_withheld_services 0\b", text):
                return "/metrics still counts a refused or withheld Service"
            if "blocked.default.svc.cluster.local." not in axfr_names():
                return "AXFR lacks blocked after the cure"
            if "Service default/blocked: its rules are in now" not in srv.stderr_text():
                return "the recovery was not logged"
            return ""
        tally.run("the cause gone: the retry puts the rules in and the Service is answered",
                  cured)
        tally.server_stopped(srv)
    finally:
        backend.send_signal(signal.SIGTERM)
        try:
            backend.wait(timeout=5)
        except subprocess.TimeoutExpired:
            backend.kill()
            backend.wait()


def main():
    why = base.unavailable()
    if why:
        for ns in NS.values():
            run("ip", "netns", "del", ns)
        t.skip(why)
    try:
        why = base.setup_network()
        if why:
            t.skip(why)
        t.main_guard(t.Tally("a Service whose nftables rules are refused is withheld from DNS"),
                     body)
    finally:
        for ns in NS.values():
            run("ip", "netns", "del", ns)


if __name__ == "__main__":
    main()
