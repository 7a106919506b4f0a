"""DNS specification 1.1.0, section 2.1: an endpoint counts as ready when its
Service carries the annotation
`service.alpha.kubernetes.io/tolerate-unready-endpoints: "true"`, whatever its
condition says: in the Service's A records, its hostname names, SRV and PTR;
from EndpointSlices and from Pods, from manifests and from the API. (CoreDNS
publishes only ready endpoints.)"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakeapi"))
import kubetest as k  # noqa: E402
import fakeapi  # noqa: E402

t = k.t
ANN = "service.alpha.kubernetes.io/tolerate-unready-endpoints"


def headless(name, value=None):
    meta = {"name": name, "namespace": "tu"}
    if value is not None:
        meta["annotations"] = {ANN: value}
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta,
            "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}}


def slice_of(svc, base):
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": svc + "-1", "namespace": "tu",
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
            "endpoints": [{"addresses": [base + ".1"], "hostname": "slow",
                           "conditions": {"ready": False}},
                          {"addresses": [base + ".2"], "hostname": "fast",
                           "conditions": {"ready": True}}]}


def name(svc, host=None):
    return "%s%s.tu.svc.cluster.local." % (host + "." if host else "", svc)


def ptr(addr):
    return ".".join(reversed(addr.split("."))) + ".in-addr.arpa."


def check_service(tally, port, svc, base, tolerated, where):
    both = [base + ".1", base + ".2"]
    k.expect(tally, "%s %s: A" % (where, svc), port, name(svc), "NOERROR",
             both if tolerated else [base + ".2"])
    k.expect(tally, "%s %s: the not-ready endpoint's hostname" % (where, svc), port,
             name(svc, "slow"), "NOERROR" if tolerated else "NXDOMAIN",
             [base + ".1"] if tolerated else [])
    k.expect(tally, "%s %s: SRV" % (where, svc), port, "_http._tcp." + name(svc), "NOERROR",
             sorted("0 %d 80 %s" % (100 // (2 if tolerated else 1), name(svc, h))
                    for h in (["slow", "fast"] if tolerated else ["fast"])), qtype="SRV")
    k.expect(tally, "%s %s: PTR of the not-ready endpoint" % (where, svc), port,
             ptr(base + ".1"), "NOERROR" if tolerated else "NXDOMAIN",
             [name(svc, "slow")] if tolerated else [], qtype="PTR")


def from_manifests(tally):
    d = t.mkdtemp()
    objs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tu"}},
            headless("tol", "true"), slice_of("tol", "10.251.1"),
            headless("plain"), slice_of("plain", "10.251.2"),
            headless("nope", "false"), slice_of("nope", "10.251.3"),
            # Pod-derived endpoints: a selector and a Pod that is not ready
            {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": "bypod", "namespace": "tu", "annotations": {ANN: "true"}},
             "spec": {"clusterIP": "None", "selector": {"app": "bypod"},
                      "ports": [{"name": "http", "port": 80}]}},
            {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": "bypod-0", "namespace": "tu", "labels": {"app": "bypod"}},
             "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80}]}]},
             "status": {"podIP": "10.251.4.1",
                        "conditions": [{"type": "Ready", "status": "False"}]}}]
    with open(os.path.join(d, "tu.json"), "w") as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": objs}, f)
    srv = t.Server(d).start()
    try:
        check_service(tally, srv.port, "tol", "10.251.1", True, "manifests")
        check_service(tally, srv.port, "plain", "10.251.2", False, "manifests")
        check_service(tally, srv.port, "nope", "10.251.3", False, "manifests")
        k.expect(tally, "manifests: a not-ready Pod behind an annotated Service is served",
                 srv.port, name("bypod"), "NOERROR", ["10.251.4.1"])
    finally:
        tally.server_stopped(srv)


def from_api(tally):
    api = fakeapi.FakeAPI().start()
    srv = None
    try:
        api.apply(fakeapi.namespace("tu"))
        for o in (headless("tol", "true"), slice_of("tol", "10.251.1"),
                  headless("plain"), slice_of("plain", "10.251.2")):
            api.apply(o)
        srv = k.KubeServer(["--api-server", api.url] + k.FAST).start()
        check_service(tally, srv.port, "tol", "10.251.1", True, "api")
        check_service(tally, srv.port, "plain", "10.251.2", False, "api")
        # the annotation added by an update takes effect
        api.apply(headless("plain", "true"))
        k.expect(tally, "api: annotating a Service publishes its not-ready endpoints",
                 srv.port, name("plain"), "NOERROR", ["10.251.2.1", "10.251.2.2"])
    finally:
        if srv:
            tally.server_stopped(srv)
        api.stop()


def main(tally):
    from_manifests(tally)
    from_api(tally)


if __name__ == "__main__":
    t.main_guard(t.Tally("tolerate-unready"), main)
