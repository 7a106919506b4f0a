"""--endpoint-pod-names, as CoreDNS's endpoint_pod_names: an endpoint without a
hostname is named by its Pod's name (the EndpointSlice's targetRef, or the Pod
itself for endpoints derived from a selector) instead of its dashed address,
falling back to the address when there is no Pod or its name is not a DNS label
(longer than 63, or holding dots). A hostname still wins. The name is the same
in the endpoint's A record, the SRV target and the PTR."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakeapi"))
import kubetest as k  # noqa: E402

t = k.t

LONG = "p" * 64


def objects():
    def ep(addr, pod=None, hostname=None):
        e = {"addresses": [addr], "conditions": {"ready": True}}
        if pod:
            e["targetRef"] = {"kind": "Pod", "name": pod, "namespace": "pn"}
        if hostname:
            e["hostname"] = hostname
        return e
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "pn"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": "pn"},
         "spec": {"clusterIP": "None", "ports": [{"name": "sql", "port": 5432}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "db-1", "namespace": "pn",
                      "labels": {"kubernetes.io/service-name": "db"}},
         "addressType": "IPv4", "ports": [{"name": "sql", "port": 5432, "protocol": "TCP"}],
         "endpoints": [ep("10.252.1.1", pod="db-7f9c-x2x"), ep("10.252.1.2"),
                       ep("10.252.1.3", pod="has.dots"), ep("10.252.1.4", pod=LONG),
                       ep("10.252.1.5", pod="other-pod", hostname="primary")]},
        # endpoints derived from a selector: the Pod's own name
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "pn"},
         "spec": {"clusterIP": "None", "selector": {"app": "web"},
                  "ports": [{"name": "http", "port": 80}]}},
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": "web-abc12", "namespace": "pn", "labels": {"app": "web"}},
         "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80}]}]},
         "status": {"podIP": "10.252.2.1",
                    "conditions": [{"type": "Ready", "status": "True"}]}},
    ]


def fq(host, svc="db"):
    return "%s.%s.pn.svc.cluster.local." % (host, svc)


def main(tally):
    d = t.mkdtemp()
    with open(os.path.join(d, "pn.json"), "w") as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": objects()}, f)
    with_flag = t.Server(d, ["--endpoint-pod-names"]).start()
    without = t.Server(d).start()
    try:
        p = with_flag.port
        for host, addr in (("db-7f9c-x2x", "10.252.1.1"), ("10-252-1-2", "10.252.1.2"),
                           ("10-252-1-3", "10.252.1.3"), ("10-252-1-4", "10.252.1.4"),
                           ("primary", "10.252.1.5")):
            k.expect(tally, "with the flag: %s" % host, p, fq(host), "NOERROR", [addr])
        k.expect(tally, "with the flag: no name for the dashed form of a named endpoint", p,
                 fq("10-252-1-1"), "NXDOMAIN", [])
        k.expect(tally, "with the flag: the SRV targets carry the Pod names", p,
                 "_sql._tcp.db.pn.svc.cluster.local.", "NOERROR",
                 ["0 20 5432 " + fq(h) for h in ("db-7f9c-x2x", "10-252-1-2", "10-252-1-3",
                                                  "10-252-1-4", "primary")], qtype="SRV")
        k.expect(tally, "with the flag: the PTR names the Pod", p, "1.1.252.10.in-addr.arpa.",
                 "NOERROR", [fq("db-7f9c-x2x")], qtype="PTR")
        k.expect(tally, "with the flag: a Pod behind a selector is named by its name", p,
                 fq("web-abc12", "web"), "NOERROR", ["10.252.2.1"])
        q = without.port
        k.expect(tally, "without the flag: the dashed address", q, fq("10-252-1-1"), "NOERROR",
                 ["10.252.1.1"])
        k.expect(tally, "without the flag: no Pod name", q, fq("db-7f9c-x2x"), "NXDOMAIN", [])
        k.expect(tally, "without the flag: a hostname still wins", q, fq("primary"), "NOERROR",
                 ["10.252.1.5"])
    finally:
        tally.server_stopped(with_flag)
        tally.server_stopped(without)


if __name__ == "__main__":
    t.main_guard(t.Tally("endpoint-pod-names"), main)
