"""The reverse zones follow the cluster's ServiceCIDRs (networking.k8s.io,
Kubernetes 1.31+): a reverse name inside a range the API server lists is the
cluster's (NXDOMAIN with the SOA, authoritative, never forwarded), one outside
goes upstream; a range added or removed in the cluster moves that line without
a restart, and a second family added to a range counts at once. The API's
ranges replace --service-cidr; --pod-cidr stays. A server that serves only
v1beta1 is followed there; one that serves neither (before 1.31), or RBAC
that forbids them, leaves --service-cidr in force, with one log line, and
svcdns is ready and fresh all the same."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakeapi"))
import kubetest as k  # noqa: E402
import fake_upstream as fu  # noqa: E402

t = k.t
fakeapi = k.fakeapi

import dns.flags  # noqa: E402
import dns.rcode  # noqa: E402
import dns.rdatatype  # noqa: E402

FLAG_CIDR = "10.150.0.0/16"  # --service-cidr: what the cluster does not use


def verdict(port, upstream, ip):
    """"cluster" (NXDOMAIN, AA, the SOA of the reverse zone, not forwarded),
    "forwarded" (the upstream was asked and its answer passed on), or what
    else was seen."""
    name = t.rev(ip)
    before = len(upstream.queries(name))
    msg, _ = t.query(port, name, "PTR", rd=True)
    asked = len(upstream.queries(name)) > before
    rcode = dns.rcode.to_text(msg.rcode())
    soa = [r for r in msg.authority if r.rdtype == dns.rdatatype.SOA]
    if (rcode == "NXDOMAIN" and msg.flags & dns.flags.AA and soa and not asked and
            soa[0].name.to_text() in ("in-addr.arpa.", "ip6.arpa.")):
        return "cluster"
    if asked and rcode == "NOERROR" and not msg.flags & dns.flags.AA:
        return "forwarded"
    return "%s aa=%s soa=%s asked=%s" % (rcode, bool(msg.flags & dns.flags.AA),
                                          [s.name.to_text() for s in soa], asked)


def expect(tally, label, port, upstream, ip, want, timeout=10.0):
    last = [None]

    def probe():
        last[0] = verdict(port, upstream, ip)
        return last[0] == want
    ok, dt = t.poll(probe, timeout=timeout, interval=0.05)
    tally.check(bool(ok), label, "after %.1f s %s is %s, want %s" % (dt, ip, last[0], want))


def start(api, upstream, http):
    return k.KubeServer(["--api-server", api.url] + k.FAST,
                        ["--upstream", "127.0.0.1:%d" % upstream.port,
                         "--service-cidr", FLAG_CIDR, "--http", "127.0.0.1:%d" % http]).start()


def served_metric(http):
    return t.metric(t.scrape(http), "svcdns_kubernetes_resource_served", resource="servicecidrs")


def follows_v1(tally):
    api = fakeapi.FakeAPI(service_cidrs="v1").start()
    up = fu.FakeUpstream()
    srv = None
    http = t.free_port()
    try:
        api.apply(fakeapi.namespace("default"))
        api.apply(fakeapi.service("dns", "default", "10.96.0.10"))
        api.apply(fakeapi.service_cidr("kubernetes", "10.96.0.0/12"))
        srv = start(api, up, http)
        p = srv.port
        k.expect(tally, "v1: a ClusterIP's PTR is answered", p, t.rev("10.96.0.10"), "NOERROR",
                 ["dns.default.svc.cluster.local."], qtype="PTR")
        expect(tally, "v1: a free address of the cluster's range is the cluster's", p, up,
               "10.96.0.5", "cluster")
        expect(tally, "v1: --service-cidr gives way to the cluster's ranges", p, up,
               "10.150.0.1", "forwarded")
        expect(tally, "v1: --pod-cidr stays the cluster's", p, up, "10.244.1.1", "cluster")
        expect(tally, "v1: outside every range: forwarded", p, up, "10.50.0.1", "forwarded")
        expect(tally, "v1: IPv6 before the range is dual-stack: forwarded", p, up,
               "fd00:10:96::5", "forwarded")

        api.apply(fakeapi.service_cidr("extra", "10.50.0.0/16"))
        expect(tally, "a ServiceCIDR added: its reverse names become the cluster's", p, up,
               "10.50.0.1", "cluster")
        expect(tally, "the other ranges stay as they were", p, up, "10.96.0.5", "cluster")
        tally.check(srv.wait_log("reverse zones: the cluster's ranges are 10.50.0.0/16, "
                                 "10.96.0.0/12, 10.244.0.0/16 (service ranges from its "
                                 "ServiceCIDRs)"), "the new ranges are said in the log",
                    srv.stderr_tail(10))
        api.apply(fakeapi.service_cidr("kubernetes", "10.96.0.0/12", "fd00:10:96::/108"))
        expect(tally, "a second family added to a ServiceCIDR: IPv6 is the cluster's", p, up,
               "fd00:10:96::5", "cluster")
        api.delete("ServiceCIDR", "", "extra")
        expect(tally, "the ServiceCIDR deleted: its reverse names are forwarded again", p, up,
               "10.50.0.1", "forwarded")
        expect(tally, "and the remaining range is still the cluster's", p, up, "10.96.0.5",
               "cluster")
        tally.check(t.http_get(http, "/ready")[0] == 200, "v1: ready")
        tally.check(served_metric(http) == 1, "v1: servicecidrs served (metric)",
                    str(served_metric(http)))
        asked = {r["path"] for r in api.requests_since(0, resource="servicecidrs")}
        tally.check(asked == {"/apis/networking.k8s.io/v1/servicecidrs"},
                    "v1: only the v1 path is asked", str(asked))
    finally:
        if srv:
            tally.server_stopped(srv)
        up.close()
        api.stop()


def follows_v1beta1(tally):
    api = fakeapi.FakeAPI(service_cidrs="v1beta1").start()
    up = fu.FakeUpstream()
    srv = None
    http = t.free_port()
    try:
        api.apply(fakeapi.service_cidr("kubernetes", "10.96.0.0/12"))
        srv = start(api, up, http)
        p = srv.port
        expect(tally, "v1beta1: the cluster's range is the cluster's", p, up, "10.96.0.5",
               "cluster")
        api.apply(fakeapi.service_cidr("extra", "10.50.0.0/16"))
        expect(tally, "v1beta1: a ServiceCIDR added is followed", p, up, "10.50.0.1", "cluster")
        api.delete("ServiceCIDR", "", "extra")
        expect(tally, "v1beta1: and its deletion", p, up, "10.50.0.1", "forwarded")
        paths = [r["path"] for r in api.requests_since(0, resource="servicecidrs")]
        v1 = [r["status"] for r in api.requests_since(0)
               if r["path"] == "/apis/networking.k8s.io/v1/servicecidrs"]
        tally.check(v1 == [404] and paths[:1] == ["/apis/networking.k8s.io/v1beta1/servicecidrs"],
                    "v1beta1: asked there after v1's 404", "%s %s" % (v1, paths))
        tally.check(api.wait_watching(("servicecidrs",)), "v1beta1: watched")
    finally:
        if srv:
            tally.server_stopped(srv)
        up.close()
        api.stop()


def older_server(tally):
    api = fakeapi.FakeAPI().start()
    up = fu.FakeUpstream()
    srv = None
    http = t.free_port()
    try:
        api.apply(fakeapi.namespace("default"))
        api.apply(fakeapi.service("dns", "default", "10.150.0.10"))
        api.apply(fakeapi.service_cidr("kubernetes", "10.96.0.0/12"))  # stored, never served
        srv = start(api, up, http)
        p = srv.port
        expect(tally, "no ServiceCIDR API: --service-cidr is the cluster's", p, up, "10.150.0.1",
               "cluster")
        expect(tally, "no ServiceCIDR API: other ranges are forwarded", p, up, "10.96.0.5",
               "forwarded")
        tally.check(srv.wait_log("reverse zones: the cluster's ranges are 10.150.0.0/16, "
                                 "10.244.0.0/16 (service ranges from --service-cidr)"),
                    "no ServiceCIDR API: the flag's ranges are said in the log",
                    srv.stderr_tail(10))
        ok = srv.wait_log("api servicecidrs: not served by this API server")
        tally.check(ok and srv.stderr_text().count("api servicecidrs: not served") == 1,
                    "no ServiceCIDR API: said once in the log", srv.stderr_tail(10))
        tally.check(t.http_get(http, "/ready")[0] == 200, "no ServiceCIDR API: ready anyway")
        m = t.scrape(http)
        since = t.metric(m, "svcdns_kubernetes_seconds_since_contact")
        tally.check(since is not None and 0 <= since < 30 and
                    t.metric(m, "svcdns_data_stale") == 0,
                    "no ServiceCIDR API: contact and freshness unaffected", str(since))
        tally.check(served_metric(http) == 0, "no ServiceCIDR API: servicecidrs not served "
                    "(metric)", str(served_metric(http)))
        codes = sorted({(r["path"], r["status"])
                        for r in api.requests_since(0, resource=None)
                        if "networking.k8s.io" in r["path"]})
        tally.check(codes == [("/apis/networking.k8s.io/v1/servicecidrs", 404),
                              ("/apis/networking.k8s.io/v1beta1/servicecidrs", 404)],
                    "no ServiceCIDR API: v1 then v1beta1 asked, both 404", str(codes))
    finally:
        if srv:
            tally.server_stopped(srv)
        up.close()
        api.stop()


def forbidden(tally):
    """A ClusterRole from before ServiceCIDRs (403): done without, as for 404,
    with a line that says which rule grants them."""
    api = fakeapi.FakeAPI(service_cidrs="v1").start()
    api.forbidden.add("servicecidrs")
    up = fu.FakeUpstream()
    srv = None
    http = t.free_port()
    try:
        api.apply(fakeapi.service_cidr("kubernetes", "10.96.0.0/12"))
        srv = start(api, up, http)
        expect(tally, "403: --service-cidr is the cluster's", srv.port, up, "10.150.0.1",
               "cluster")
        tally.check(srv.wait_log("api servicecidrs: forbidden (HTTP 403 for "),
                    "403: said in the log", srv.stderr_tail(10))
        tally.check(t.http_get(http, "/ready")[0] == 200, "403: ready anyway")
        tally.check(served_metric(http) == 0, "403: servicecidrs not served (metric)")
    finally:
        if srv:
            tally.server_stopped(srv)
        up.close()
        api.stop()


def invalid(tally):
    """The fake refuses what the API server refuses."""
    api = fakeapi.FakeAPI(service_cidrs="v1")
    bad = [("10.96.0.1/12",), ("10.96.0.0/12", "10.0.0.0/8"), (), ("10.0.0.0/8", "fd00::/64",
                                                                   "fd01::/64")]
    for cidrs in bad:
        try:
            api.apply(fakeapi.service_cidr("x", *cidrs))
            tally.fail("fake: %s refused" % (cidrs,), "accepted")
        except ValueError:
            tally.ok("fake: %s refused" % (cidrs,))


def main(tally):
    invalid(tally)
    follows_v1(tally)
    follows_v1beta1(tally)
    older_server(tally)
    forbidden(tally)


if __name__ == "__main__":
    t.main_guard(t.Tally("service-cidr"), main)
