"""--namespace-labels SELECTOR, as CoreDNS's `namespace_labels`: only the
namespaces whose Namespace object's labels match are served (their Services,
`<ns>.svc` names and PTRs); the others answer NXDOMAIN. A namespace whose
labels move in or out of the selector brings or takes its Services without a
restart, from manifests and from the API. A namespace without a Namespace
object has no labels. A bad selector stops the start (exit status 2) and a
reload, with the parser's reason."""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakeapi"))
import fakeapi  # noqa: E402
import kubetest as k  # noqa: E402

t = k.t
SELECTOR = "team in (a, b),env!=test"
IPS = {"prod": "10.96.70.1", "dev": "10.96.70.2", "qa": "10.96.70.3", "bare": "10.96.70.4",
       "other": "10.96.70.5"}


def ns_obj(name, labels):
    meta = {"name": name}
    if labels is not None:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def svc(ns):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
            "spec": {"clusterIP": IPS[ns], "ports": [{"name": "http", "port": 80}]}}


def name(ns):
    return "web.%s.svc.cluster.local." % ns


NS_LABELS = {"prod": {"team": "a", "env": "prod"},
             "dev": {"team": "b"},
             "qa": {"team": "a", "env": "test"},  # env!=test excludes it
             "other": {"team": "c"}}               # "bare" has no Namespace object


def served(tally, where, port, ns, yes):
    k.expect(tally, "%s: %s %s" % (where, ns, "served" if yes else "not served: NXDOMAIN"),
             port, name(ns), "NOERROR" if yes else "NXDOMAIN", [IPS[ns]] if yes else [])


def check_initial(tally, where, port):
    for ns, yes in (("prod", True), ("dev", True), ("qa", False), ("bare", False),
                    ("other", False)):
        served(tally, where, port, ns, yes)
    k.expect(tally, where + ": the namespace name of a served one exists (NODATA)", port,
             "prod.svc.cluster.local.", "NOERROR", [])
    k.expect(tally, where + ": that of another does not", port, "other.svc.cluster.local.",
             "NXDOMAIN", [])
    k.expect(tally, where + ": PTR of a served Service", port, t.rev(IPS["prod"]), "NOERROR",
             [name("prod")], qtype="PTR")
    k.expect(tally, where + ": no PTR for a Service of another namespace", port,
             t.rev(IPS["other"]), "NXDOMAIN", [], qtype="PTR")


def write_manifests(d, labels):
    objs = [ns_obj(ns, lab) for ns, lab in sorted(labels.items())]
    objs += [svc(ns) for ns in sorted(IPS)]
    t.write_atomic(os.path.join(d, "cluster.json"),
                   json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))


def from_manifests(tally):
    d = t.mkdtemp()
    labels = {ns: dict(v) for ns, v in NS_LABELS.items()}
    write_manifests(d, labels)
    srv = t.Server(d, ["--namespace-labels", SELECTOR]).start()
    neg = t.Server(d, ["--namespace-labels", "!team"]).start()
    plain = t.Server(d).start()
    try:
        check_initial(tally, "manifests", srv.port)
        served(tally, "manifests !team", neg.port, "bare", True)
        served(tally, "manifests !team", neg.port, "prod", False)
        for ns in IPS:
            served(tally, "manifests without the option", plain.port, ns, True)
        # labels change: other comes in, prod goes out, without a restart
        labels["other"] = {"team": "b"}
        labels["prod"] = {"team": "z"}
        write_manifests(d, labels)
        served(tally, "manifests, other relabelled team=b", srv.port, "other", True)
        served(tally, "manifests, prod relabelled team=z", srv.port, "prod", False)
        k.expect(tally, "manifests: its PTR goes too", srv.port, t.rev(IPS["prod"]),
                 "NXDOMAIN", [], qtype="PTR")
        served(tally, "manifests, dev untouched", srv.port, "dev", True)
        # a Namespace object appears for bare: it is selected by its labels
        labels["bare"] = {"team": "a"}
        write_manifests(d, labels)
        served(tally, "manifests, a Namespace object for bare", srv.port, "bare", True)
        served(tally, "manifests !team: bare has a team now", neg.port, "bare", False)
    finally:
        for s in (srv, neg, plain):
            tally.server_stopped(s)


def from_api(tally):
    api = fakeapi.FakeAPI().start()
    srv = None
    try:
        for ns, lab in NS_LABELS.items():
            api.apply(ns_obj(ns, lab))
        for ns in IPS:
            api.apply(svc(ns))
        srv = k.KubeServer(["--api-server", api.url] + k.FAST,
                           ["--namespace-labels", SELECTOR]).start()
        check_initial(tally, "api", srv.port)
        api.apply(ns_obj("qa", {"team": "a", "env": "staging"}))
        served(tally, "api, qa's env label changed", srv.port, "qa", True)
        api.apply(ns_obj("dev", None))
        served(tally, "api, dev's labels removed", srv.port, "dev", False)
        k.expect(tally, "api: dev's namespace name goes too", srv.port,
                 "dev.svc.cluster.local.", "NXDOMAIN", [])
        api.delete("Namespace", "", "prod")
        served(tally, "api, prod's Namespace deleted", srv.port, "prod", False)
        api.apply(ns_obj("prod", {"team": "b"}))
        served(tally, "api, prod back with team=b", srv.port, "prod", True)
        # a Service added to a served namespace, and to one that is not
        api.apply(dict(svc("dev"), metadata={"name": "web", "namespace": "dev"}))
        served(tally, "api, still not dev", srv.port, "dev", False)
    finally:
        if srv:
            tally.server_stopped(srv)
        api.stop()


def bad_selectors(tally):
    d = t.mkdtemp()
    write_manifests(d, NS_LABELS)
    for sel, why in (("team in (a", "found the end, expected: ',' or ')'"),
                     ("team=a,", "a requirement after ','"),
                     ("Team/x=a", "'Team/x' is not a valid label key"),
                     ("team=-a", "is not a valid label value")):
        p = subprocess.run([t.BIN, "--manifests", d, "--listen", "127.0.0.1:%d" % t.free_port(),
                            "--namespace-labels", sel], capture_output=True, text=True,
                           timeout=20)
        tally.check(p.returncode == 2 and why in p.stderr,
                    "start with --namespace-labels %r: exit 2 with the reason" % sel,
                    "status %d: %s" % (p.returncode, p.stderr.strip()))
    # at a reload: rejected with the reason, the running selector stays
    conf = os.path.join(d, "svcdns.conf")
    t.write_file(conf, "namespace-labels team=a\n")
    srv = t.Server(d, ["--config", conf]).start()
    try:
        served(tally, "config file", srv.port, "prod", True)
        served(tally, "config file", srv.port, "dev", False)
        mark = len(srv.stderr_text())
        t.write_atomic(conf, "namespace-labels team in (a b)\n")
        line, _ = t.poll(lambda: "rejected" in srv.stderr_text()[mark:], timeout=10)
        text = srv.stderr_text()[mark:]
        tally.check(line and "found 'b'" in text and "namespace-labels" in text,
                    "a reload with a bad selector is rejected with the reason", text[-600:])
        served(tally, "after the rejected reload", srv.port, "prod", True)
        mark = len(srv.stderr_text())
        t.write_atomic(conf, "namespace-labels team=b\n")
        ok, _ = t.poll(lambda: "only at a restart: --namespace-labels"
                       in srv.stderr_text()[mark:], timeout=10)
        tally.check(ok, "a changed good selector is named as needing a restart",
                    srv.stderr_tail(5))
    finally:
        tally.server_stopped(srv)


def main(tally):
    from_manifests(tally)
    from_api(tally)
    bad_selectors(tally)


if __name__ == "__main__":
    t.main_guard(t.Tally("namespace-labels"), main)
