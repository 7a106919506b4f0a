"""What svcdns says about a manifest directory it cannot use as given: a
workload (Deployment, StatefulSet, ...) whose Pods it will never see gets one
log line per file saying so and what to write instead, and a --manifests
directory that cannot be read stops svcdns at start with one line and a
non-zero status."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import svcdns_testlib as t  # noqa: E402

WORKLOADS = """\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: web:1, ports: [{containerPort: 8080}]}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: db:1}]}
"""

# kubectl get -o json writes a List; its DaemonSet is a workload too
LISTED = """\
{"apiVersion": "v1", "kind": "List", "items": [
  {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
   "spec": {"selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                         "spec": {"containers": [{"name": "a", "image": "a:1"}]}}}},
  {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "agent"},
   "spec": {"selector": {"app": "agent"}, "ports": [{"port": 9100}]}}]}
"""

ADVICE = "write the Pods or EndpointSlices instead"


def warnings_for(srv, path):
    return [l for l in srv.stderr_text().splitlines()
            if "manifest %s:" % path in l and "not expanded into Pods" in l]


def chaos(srv, name):
    msg, _ = t.query(srv.port, name, "TXT", "CH")
    return [b"".join(rd.strings).decode() for rrset in msg.answer for rd in rrset]


def workloads(tally):
    d = t.mkdtemp()
    first = os.path.join(d, "web.yaml")
    t.write_file(first, WORKLOADS)
    srv = t.Server(d).start()

    def one_line_per_file():
        lines = warnings_for(srv, first)
        if len(lines) != 1:
            return "%d warning lines for %s, want 1:\n%s" % (len(lines), first, srv.stderr_tail())
        want = "Deployment shop/web and 1 more workload: not expanded into Pods"
        if "[warn]" not in lines[0] or want not in lines[0] or ADVICE not in lines[0]:
            return "the line does not say %r and %r: %s" % (want, ADVICE, lines[0])
        return ""
    tally.run("a file with a Deployment and a StatefulSet: one warning naming the first "
              "and what to write instead", one_line_per_file)

    tally.check(chaos(srv, "web.shop.svc.cluster.local.") ==
                ["http 80/TCP -> 8080 nodePort=- endpoints=0/0"],
                "the Deployment's Service is still served, with no endpoints",
                repr(chaos(srv, "web.shop.svc.cluster.local.")))

    second = os.path.join(d, "agent.json")
    t.write_atomic(second, LISTED)
    served, _ = t.poll(lambda: t.query(srv.port, "agent.default.svc.cluster.local.")[0].answer,
                       timeout=10)

    def listed():
        if not served:
            return "agent.default.svc never answered after agent.json was written"
        lines = warnings_for(srv, second)
        if len(lines) != 1 or "DaemonSet default/agent: not expanded" not in lines[0]:
            return "warning lines for %s: %r" % (second, lines)
        return ""
    tally.run("a List holding a DaemonSet is warned about too", listed)

    # agent.json being served means the directory was scanned again since
    # web.yaml was read: an unchanged file is not decoded, nor warned about, again
    tally.check(len(warnings_for(srv, first)) == 1,
                "an unchanged file is not warned about again",
                "%d lines" % len(warnings_for(srv, first)))
    tally.server_stopped(srv)


def unreadable(tally):
    not_dir = os.path.join(t.mkdtemp(), "web.yaml")
    t.write_file(not_dir, WORKLOADS)
    for path, reason in (("/nonexistent/svcdns-manifests", "No such file or directory"),
                         (not_dir, "Not a directory")):
        def body(path=path, reason=reason):
            try:
                p = subprocess.run([t.BIN, "--manifests", path, "--upstream", "none",
                                    "--listen", "127.0.0.1:%d" % t.free_port()],
                                   stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                   timeout=10)
            except subprocess.TimeoutExpired:
                return "still running after 10 s (killed)"
            bad = [l for l in p.stderr.splitlines() if "[error]" in l or "[warn]" in l]
            want = "manifest dir %s: cannot be read (%s); cannot start" % (path, reason)
            d = []
            if p.returncode == 0:
                d.append("exit status 0, want non-zero")
            if len(bad) != 1 or not bad[0].endswith(want):
                d.append("error lines %r, want one ending %r" % (bad, want))
            return d
        tally.run("--manifests %s: one line saying why, and a non-zero exit" % reason, body)


def body(tally):
    workloads(tally)
    unreadable(tally)


if __name__ == "__main__":
    t.main_guard(t.Tally("test_manifest_logs"), body)
