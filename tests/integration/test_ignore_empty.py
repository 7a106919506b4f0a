"""--ignore-empty-service, as CoreDNS's `ignore empty_service`: a ClusterIP
Service with no ready endpoint answers NXDOMAIN (so that a client's search
list goes on), its SRV names too, while its PTR stays; it answers again as soon
as an endpoint is ready (the snapshot built incrementally both ways). Without
the flag the Service answers whatever its endpoints."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakeapi"))
import kubetest as k  # noqa: E402

t = k.t
NAME = "api.ie.svc.cluster.local."


def write(d, ready):
    objs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ie"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "ie"},
         "spec": {"clusterIP": "10.96.77.7", "ports": [{"name": "http", "port": 80}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "api-1", "namespace": "ie",
                      "labels": {"kubernetes.io/service-name": "api"}},
         "addressType": "IPv4", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
         "endpoints": [{"addresses": ["10.253.0.1"], "conditions": {"ready": ready}}]},
        # another Service with a ready endpoint: unaffected
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "up", "namespace": "ie"},
         "spec": {"clusterIP": "10.96.77.8", "ports": [{"name": "http", "port": 80}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "up-1", "namespace": "ie",
                      "labels": {"kubernetes.io/service-name": "up"}},
         "addressType": "IPv4", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
         "endpoints": [{"addresses": ["10.253.0.2"], "conditions": {"ready": True}}]},
    ]
    t.write_atomic(os.path.join(d, "ie.json"),
                   json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))


def main(tally):
    d = t.mkdtemp()
    write(d, False)
    srv = t.Server(d, ["--ignore-empty-service"]).start()
    plain = t.Server(d).start()
    try:
        p = srv.port
        k.expect(tally, "no ready endpoint: NXDOMAIN", p, NAME, "NXDOMAIN", [])
        k.expect(tally, "its SRV name too", p, "_http._tcp." + NAME, "NXDOMAIN", [], qtype="SRV")
        k.expect(tally, "the short form too", p, "api.ie.svc.", "NXDOMAIN", [])
        k.expect(tally, "its PTR stays", p, "7.77.96.10.in-addr.arpa.", "NOERROR", [NAME],
                 qtype="PTR")
        k.expect(tally, "a Service with a ready endpoint answers", p, "up.ie.svc.cluster.local.",
                 "NOERROR", ["10.96.77.8"])
        k.expect(tally, "without the flag the empty Service answers", plain.port, NAME,
                 "NOERROR", ["10.96.77.7"])
        write(d, True)
        k.expect(tally, "an endpoint turns ready: it answers", p, NAME, "NOERROR", ["10.96.77.7"])
        k.expect(tally, "and its SRV", p, "_http._tcp." + NAME, "NOERROR",
                 ["0 100 80 " + NAME], qtype="SRV")
        write(d, False)
        k.expect(tally, "not ready again: NXDOMAIN again", p, NAME, "NXDOMAIN", [])
    finally:
        tally.server_stopped(srv)
        tally.server_stopped(plain)


if __name__ == "__main__":
    t.main_guard(t.Tally("ignore-empty"), main)
