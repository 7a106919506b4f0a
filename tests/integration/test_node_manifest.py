"""contrib/kubernetes/svcdns-node.yaml: the node DaemonSet runs the kernel
datapath with exactly the capabilities it needs.

First what the manifest says: host network, --proxy=nftables, every
capability dropped and NET_ADMIN and NET_BIND_SERVICE added (nothing else, no
privileged mode), the init container with NET_ADMIN alone, probes and ports
on the --http address. Then what it does, in a network namespace standing for
the node: the init container's script runs as written with NET_ADMIN only, and
svcdns runs with the container's arguments (the API server's replaced by a
manifest directory) and, like a container runtime gives it, a capability
bounding set of the added capabilities alone: it programs its table, answers
DNS on both --listen addresses and /ready on the probe's address. Without
NET_ADMIN it says it needs it (and serves DNS only); without NET_BIND_SERVICE
it cannot bind port 53.

The run needs root, iproute2, nft, setpriv and dig; without them that part is
skipped (77) with the reason. Every process is stopped by PID, the namespace
deleted at the end.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import svcdns_testlib as t  # noqa: E402
import test_nft_netns as base  # noqa: E402
from test_nft_netns import NS, nsrun, run  # noqa: E402

MANIFEST = os.path.join(t.SOURCE, "contrib", "kubernetes", "svcdns-node.yaml")
API_ARGS = ("--api-server=", "--token-file=", "--ca-file=")


def load():
    with open(MANIFEST) as f:
        doc = yaml.safe_load(f)
    pod = doc["spec"]["template"]["spec"]
    main = [c for c in pod["containers"] if c["name"] == "svcdns"][0]
    return doc, pod, main, pod.get("initContainers", [])


def arg_value(args, name):
    for a in args:
        if a.split("#")[0].strip().startswith(name + "="):
            return a.split("=", 1)[1].strip()
    return None


def check_static():
    doc, pod, main, inits = load()
    errs = []
    if doc["kind"] != "DaemonSet":
        errs.append("kind %s, want DaemonSet" % doc["kind"])
    if pod.get("hostNetwork") is not True:
        errs.append("hostNetwork is not true: the table and the listeners are the node's")
    args = main["args"]
    if "--proxy=nftables" not in args:
        errs.append("svcdns does not run --proxy=nftables: %s" % args)
    sc = main.get("securityContext", {})
    caps = sc.get("capabilities", {})
    if caps.get("drop") != ["ALL"]:
        errs.append("svcdns does not drop every capability: %s" % caps)
    if sorted(caps.get("add", [])) != ["NET_ADMIN", "NET_BIND_SERVICE"]:
        errs.append("svcdns adds %s, want exactly NET_ADMIN and NET_BIND_SERVICE"
                    % caps.get("add"))
    if sc.get("privileged") or sc.get("allowPrivilegeEscalation") is not False:
        errs.append("svcdns may be privileged or escalate: %s" % sc)
    if sc.get("runAsUser") != 0:
        errs.append("added capabilities are given to uid 0 only; runAsUser is %s"
                    % sc.get("runAsUser"))
    for ic in inits:
        icaps = ic.get("securityContext", {}).get("capabilities", {})
        if icaps.get("drop") != ["ALL"] or icaps.get("add") != ["NET_ADMIN"]:
            errs.append("init container %s: capabilities %s, want NET_ADMIN alone"
                        % (ic["name"], icaps))
    host, port = arg_value(args, "--http").rsplit(":", 1)
    # On the host network a container's ports are host ports, and the
    # scheduler would keep the surge pod of an update off the node.
    if main.get("ports"):
        errs.append("ports %s: host ports on the host network keep the update's new pod "
                    "off the node" % main["ports"])
    if not arg_value(args, "--handover-socket"):
        errs.append("no --handover-socket: an update would lose queries")
    for probe in ("readinessProbe", "livenessProbe"):
        g = main.get(probe, {}).get("httpGet", {})
        if (g.get("host"), g.get("port")) != (host, int(port)):
            errs.append("%s asks %s:%s, svcdns serves HTTP on %s:%s"
                        % (probe, g.get("host"), g.get("port"), host, port))
    with open(os.path.join(t.SOURCE, "doc", "datapath.md")) as f:
        doc_text = f.read()
    for word in ("svcdns-node.yaml", "NET_ADMIN", "NET_BIND_SERVICE", "hostNetwork"):
        if word not in doc_text:
            errs.append("doc/datapath.md does not mention %s" % word)
    return errs


def cluster_manifests(d, kube_dns):
    items = [{"apiVersion": "v1", "kind": "Service",
              "metadata": {"name": "kube-dns", "namespace": "kube-system"},
              "spec": {"clusterIP": kube_dns,
                       "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                                 {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}},
             {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
              "metadata": {"name": "kube-dns-1", "namespace": "kube-system",
                           "labels": {"kubernetes.io/service-name": "kube-dns"}},
              "addressType": "IPv4",
              "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                        {"name": "dns-tcp", "port": 53, "protocol": "TCP"}],
              "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": True}}]}]
    with open(os.path.join(d, "cluster.json"), "w") as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": items}, f)


def setpriv(caps):
    """The bounding set a container runtime gives a container that drops ALL
    and adds `caps` (uid 0: its permitted set is the bounding set)."""
    return ["setpriv", "--inh-caps=-all",
            "--bounding-set=-all" + "".join(",+" + c.lower() for c in caps)]


class CappedServer(t.Server):
    caps = ()

    def cmdline(self):
        return ["ip", "netns", "exec", NS["node"]] + setpriv(self.caps) + super().cmdline()

    wait_ready = base.NodeServer.wait_ready


def node_args(main):
    """The container's arguments, the API server's replaced (no cluster here)."""
    return [a.split(" #")[0].strip() for a in main["args"] if not a.startswith(API_ARGS)]


def body(tally):
    tally.diffs("the manifest: host network, --proxy=nftables, exactly NET_ADMIN and "
                "NET_BIND_SERVICE, probes on --http, documented", check_static())
    why = live_unavailable()
    if why:
        tally.skip("the DaemonSet's container run with its capabilities", why)
        return
    doc, pod, main, inits = load()
    args = node_args(main)
    listens = [a.split("=", 1)[1].rsplit(":", 1)[0] for a in args if a.startswith("--listen=")]
    kube_dns = listens[1]
    http = arg_value(args, "--http")
    d = t.mkdtemp(prefix="svcdns-node-")
    # the hand-over socket's hostPath directory is the node's; here, the test's
    args = [a if not a.startswith("--handover-socket") else
            "--handover-socket=" + os.path.join(d, "handover.sock") for a in args]
    cluster_manifests(d, kube_dns)
    why = setup_node(inits)
    if why:
        tally.fail("the init container's script, with NET_ADMIN alone", why)
        return
    tally.ok("the init container's script runs with NET_ADMIN alone")

    def full_caps():
        CappedServer.caps = ("NET_ADMIN", "NET_BIND_SERVICE")
        srv = CappedServer(d, args=args).start()
        try:
            rc, table = base.nft("list", "table", "inet", "svcdns")
            if rc != 0 or "dnat" not in table:
                return "no table programmed with NET_ADMIN: %s\n%s" % (table[:300],
                                                                       srv.stderr_tail())
            for a in listens:
                if "ip daddr %s udp dport 53 notrack" % a not in table:
                    return "no NOTRACK rule for %s:53" % a
                rc, out = nsrun("node", "dig", "@" + a, "+short", "+time=2", "+tries=1",
                                "kube-dns.kube-system.svc.cluster.local")
                if out != kube_dns:
                    return "DNS on %s:53 gave %r" % (a, out)
            rc, out = nsrun("node", "/usr/bin/python3", "-c",
                            "import urllib.request; print(urllib.request.urlopen("
                            "'http://%s/ready', timeout=5).status)" % http)
            if out != "200":
                return "the readiness probe's http://%s/ready gave %r" % (http, out)
            return ""
        finally:
            problems = srv.stop()
            if problems:
                tally.fail("svcdns with the manifest's capabilities exits cleanly",
                           "; ".join(problems))
    tally.run("with NET_ADMIN and NET_BIND_SERVICE only: the table is programmed, DNS "
              "answered on both listeners, /ready on the probe's address", full_caps)
    base.nft("delete", "table", "inet", "svcdns")

    def without_net_admin():
        CappedServer.caps = ("NET_BIND_SERVICE",)
        srv = CappedServer(d, args=args).start()
        try:
            if "svcdns needs CAP_NET_ADMIN for --proxy=nftables" not in srv.stderr_text():
                return "no clear error without NET_ADMIN:\n%s" % srv.stderr_tail()
            rc, out = base.nft("list", "tables")
            if "svcdns" in out:
                return "a table was made without NET_ADMIN"
            return ""
        finally:
            srv.stop()
    tally.run("without NET_ADMIN: a clear error, no table (DNS only)", without_net_admin)

    def without_bind():
        cmd = (["ip", "netns", "exec", NS["node"]] + setpriv(("NET_ADMIN",))
               + [t.BIN, "--manifests", d, "--upstream", "none"] + args)
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        out = p.stdout.decode(errors="replace")
        if p.returncode == 0 or not re.search(r"listen \S+:53 \(udp\): Permission denied", out):
            return "without NET_BIND_SERVICE svcdns exited %d:\n%s" % (p.returncode, out[-800:])
        return ""
    tally.run("without NET_BIND_SERVICE: port 53 cannot be bound", without_bind)


def setup_node(inits):
    for cmd in (["ip", "netns", "add", NS["node"]],
                ["ip", "-n", NS["node"], "link", "set", "lo", "up"]):
        rc, out = run(*cmd)
        if rc != 0:
            return "%s: %s" % (" ".join(cmd), out)
    for ic in inits:
        script = ic["command"][-1]
        rc, out = run("ip", "netns", "exec", NS["node"], *setpriv(("NET_ADMIN",)), "sh", "-ec",
                      script)
        if rc != 0:
            return "init container %s failed: %s" % (ic["name"], out)
    return None


def live_unavailable():
    if os.geteuid() != 0:
        return "needs root to make a network namespace and drop capabilities"
    for prog in ("ip", "nft", "setpriv", "dig", "sh"):
        if shutil.which(prog) is None:
            return "the %s program is not installed" % prog
    return base.unavailable()


def main():
    try:
        t.main_guard(t.Tally("the node DaemonSet's manifest and its capabilities"), body)
    finally:
        run("ip", "netns", "del", NS["node"])


if __name__ == "__main__":
    main()
