"""Peers that resolve the moment they are ready: the name of an endpoint of a
headless Service that is not ready yet answers NXDOMAIN whose SOA (the zone's,
same serial) has TTL and MINIMUM --not-ready-ttl (default 0), with the Extended DNS Error
info-code 0 "endpoint not ready yet"; once the endpoint is ready the name
answers its address; every other NXDOMAIN keeps the zone's negative TTL and no
EDE. From EndpointSlices and Pods in manifests, and from the API (the fake API
server) as the endpoint turns ready; publishNotReadyAddresses serves the name."""

import json
import os
import sys

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakeapi"))
import kubetest as k  # noqa: E402
import fakeapi  # noqa: E402

t = k.t
NS = "pr"
TEXT = "endpoint not ready yet"
TTL = 30  # --ttl: the normal negative TTL is the zone's SOA minimum


def service(name, publish=False):
    spec = {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}
    if publish:
        spec["publishNotReadyAddresses"] = True
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": NS}, "spec": spec}


def eps_slice(svc, base, ready):
    """One endpoint per hostname in `ready` (name -> readiness)."""
    eps = [{"addresses": ["%s.%d" % (base, i + 1)], "hostname": h,
            "conditions": {"ready": r}} for i, (h, r) in enumerate(sorted(ready.items()))]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": svc + "-1", "namespace": NS,
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
            "endpoints": eps}


def pod(name, ip, ready, hostname, subdomain):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": {"app": "job"}},
            "spec": {"hostname": hostname, "subdomain": subdomain,
                     "containers": [{"name": "c", "ports": [{"containerPort": 80}]}]},
            "status": {"phase": "Running", "podIP": ip,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def fqdn(*labels):
    return ".".join(labels) + ".%s.svc.cluster.local." % NS


def ask(port, qname, qtype="A", edns=True):
    wire = t.udp_exchange(port, t.make_query(qname, qtype, edns=edns).to_wire())
    if wire is None:
        return None
    return dns.message.from_wire(wire)


def ede_texts(msg):
    return [(o.code, o.text) for o in msg.options if o.otype == dns.edns.EDE]


def soa_of(msg):
    for rrset in msg.authority:
        if rrset.rdtype == dns.rdatatype.SOA:
            return rrset
    return None


def zone_serial(port):
    m = ask(port, "cluster.local.", "SOA")
    return m.answer[0][0].serial if m and m.answer else None


def check_coming(tally, port, qname, label, qtype="A", ttl=0):
    """NXDOMAIN, the zone's SOA (this snapshot's serial) with TTL and
    MINIMUM `ttl`, and the EDE."""
    m = ask(port, qname, qtype)
    if m is None:
        tally.fail(label, "no answer to %s %s" % (qname, qtype))
        return
    soa = soa_of(m)
    problems = []
    if m.rcode() != dns.rcode.NXDOMAIN:
        problems.append("rcode %s" % dns.rcode.to_text(m.rcode()))
    if not m.flags & dns.flags.AA:
        problems.append("AA not set")
    if soa is None:
        problems.append("no SOA in authority")
    else:
        if soa.ttl != ttl or soa[0].minimum != ttl:
            problems.append("SOA TTL %d, MINIMUM %d (want %d)" % (soa.ttl, soa[0].minimum, ttl))
        if soa.name != dns.name.from_text("cluster.local."):
            problems.append("SOA owner %s" % soa.name)
        if soa[0].serial != zone_serial(port):
            problems.append("SOA serial %d is not the zone's %s"
                            % (soa[0].serial, zone_serial(port)))
        if (soa[0].refresh, soa[0].retry, soa[0].expire) != (7200, 1800, 86400):
            problems.append("SOA timers changed: %s" % soa[0])
    if ede_texts(m) != [(dns.edns.EDECode.OTHER, TEXT)]:
        problems.append("EDE %s" % ede_texts(m))
    if m.answer:
        problems.append("answer section %s" % m.answer)
    tally.check(not problems, label, "%s %s: %s" % (qname, qtype, "; ".join(problems)))


def check_plain_nx(tally, port, qname, label):
    """An NXDOMAIN with the zone's negative TTL and no EDE."""
    m = ask(port, qname)
    soa = soa_of(m) if m else None
    ok = (m is not None and m.rcode() == dns.rcode.NXDOMAIN and soa is not None and
          soa.ttl == TTL and soa[0].minimum == TTL and not ede_texts(m))
    tally.check(ok, label, "%s: %s" % (qname, m))


def wait_coming(port, qname):
    """Until qname carries the not-ready EDE (or 10 s)."""
    def probe():
        m = ask(port, qname)
        return m is not None and ede_texts(m) == [(dns.edns.EDECode.OTHER, TEXT)]
    ok, _ = t.poll(probe, timeout=10.0, interval=0.01)
    return bool(ok)


def write_manifests(d, objs):
    t.write_atomic(os.path.join(d, "pr.json"),
                   json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))


def base_objects(ready_b):
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
            service("peers"), eps_slice("peers", "10.252.1", {"a": True, "b": ready_b}),
            service("open", publish=True), eps_slice("open", "10.252.2", {"c": False}),
            service("later"), eps_slice("later", "10.252.4", {"d": ready_b}),
            # an Indexed Job's Pods: hostname and subdomain, a selector
            {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": "workers", "namespace": NS},
             "spec": {"clusterIP": "None", "selector": {"app": "job"},
                      "ports": [{"name": "http", "port": 80}]}},
            pod("job-0", "10.252.3.1", True, "job-0", "workers"),
            pod("job-1", "10.252.3.2", ready_b, "job-1", "workers")]


def from_manifests(tally):
    d = t.mkdtemp()
    write_manifests(d, base_objects(False))
    srv = t.Server(d, ["--ttl", str(TTL)]).start()
    port = srv.port
    try:
        k.expect(tally, "manifests: the ready peer answers", port, fqdn("a", "peers"),
                 "NOERROR", ["10.252.1.1"])
        for qt in ("A", "AAAA", "SRV", "TXT"):
            check_coming(tally, port, fqdn("b", "peers"), "manifests: slice, not ready, " + qt,
                         qt)
        check_coming(tally, port, fqdn("job-1", "workers"),
                     "manifests: a Pod with that hostname and subdomain, not ready")
        check_coming(tally, port, fqdn("later"),
                     "manifests: a headless Service with no endpoint ready yet")
        check_plain_nx(tally, port, fqdn("_http", "_tcp", "later"),
                       "manifests: its SRV name keeps the normal negative TTL")
        check_plain_nx(tally, port, fqdn("zzz", "peers"),
                       "manifests: a name no endpoint has keeps the normal negative TTL")
        check_plain_nx(tally, port, fqdn("x", "b", "peers"),
                       "manifests: a name below a coming name keeps the normal negative TTL")
        check_plain_nx(tally, port, fqdn("nosuch"), "manifests: an unknown Service too")
        m = ask(port, fqdn("b", "peers"), edns=False)
        tally.check(m is not None and m.rcode() == dns.rcode.NXDOMAIN and
                    soa_of(m) is not None and soa_of(m).ttl == 0 and not m.options,
                    "manifests: without EDNS: the short TTL, no OPT", str(m))
        k.expect(tally, "manifests: publishNotReadyAddresses serves the name", port,
                 fqdn("c", "open"), "NOERROR", ["10.252.2.1"])
        # Ready: the names answer their addresses (an incremental build).
        write_manifests(d, base_objects(True))
        k.expect(tally, "manifests: the peer, once ready, answers", port, fqdn("b", "peers"),
                 "NOERROR", ["10.252.1.2"])
        k.expect(tally, "manifests: the Pod, once ready, answers", port, fqdn("job-1", "workers"),
                 "NOERROR", ["10.252.3.2"])
        k.expect(tally, "manifests: the Service, once an endpoint is ready, answers", port,
                 fqdn("later"), "NOERROR", ["10.252.4.1"])
        # Not ready again: coming again, with the new snapshot's serial.
        write_manifests(d, base_objects(False))
        tally.check(wait_coming(port, fqdn("b", "peers")),
                    "manifests: not ready again: coming again", "no EDE after 10 s")
        check_coming(tally, port, fqdn("b", "peers"),
                     "manifests: coming again, the SOA of the current snapshot")
    finally:
        tally.server_stopped(srv)


def from_api(tally):
    api = fakeapi.FakeAPI().start()
    srv = None
    try:
        api.apply(fakeapi.namespace(NS))
        api.apply(service("peers"))
        api.apply(eps_slice("peers", "10.252.1", {"a": True, "b": False}))
        srv = k.KubeServer(["--api-server", api.url],
                           ["--ttl", str(TTL), "--not-ready-ttl", "1"] + k.FAST).start()
        port = srv.port
        k.expect(tally, "api: the ready peer answers", port, fqdn("a", "peers"), "NOERROR",
                 ["10.252.1.1"])
        check_coming(tally, port, fqdn("b", "peers"), "api: the peer not ready yet, "
                     "--not-ready-ttl 1", ttl=1)
        check_plain_nx(tally, port, fqdn("zzz", "peers"),
                       "api: a name no endpoint has keeps the normal negative TTL")
        api.apply(eps_slice("peers", "10.252.1", {"a": True, "b": True}))
        k.expect(tally, "api: the peer answers once its endpoint is ready", port,
                 fqdn("b", "peers"), "NOERROR", ["10.252.1.2"])
        api.apply(eps_slice("peers", "10.252.1", {"a": True}))
        k.expect(tally, "api: an endpoint gone: plain NXDOMAIN", port, fqdn("b", "peers"),
                 "NXDOMAIN", [])
        check_plain_nx(tally, port, fqdn("b", "peers"),
                       "api: an endpoint gone keeps the normal negative TTL")
    finally:
        if srv:
            tally.server_stopped(srv)
        api.stop()


def main(tally):
    from_manifests(tally)
    from_api(tally)


if __name__ == "__main__":
    t.main_guard(t.Tally("peer-ready"), main)
