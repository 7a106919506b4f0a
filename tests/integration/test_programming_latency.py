"""The DNS programming latency SLI: from an EndpointSlice's
endpoints.kubernetes.io/last-change-trigger-time (written by the fake API
server as the EndpointSlice controller does, or by the test) to the snapshot
holding the change being served, split by kind of Service, under
svcdns_dns_programming_duration_seconds and, with --metrics-compat coredns,
coredns_kubernetes_dns_programming_duration_seconds. Observed once per new
annotation: not for the first list, not again when an update or a relist
repeats it, never for a slice without one; an annotation ahead of svcdns's
clock counts as 0. svcdns's own svcdns_data_change_to_serve_seconds stays."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakeapi"))
import kubetest as k  # noqa: E402

t = k.t
fakeapi = k.fakeapi

NS = "pl"
SLI = "svcdns_dns_programming_duration_seconds"
COMPAT = "coredns_kubernetes_dns_programming_duration_seconds"
KINDS = ("cluster_ip", "headless_with_selector", "headless_without_selector")


def name(svc):
    return "%s.%s.svc.cluster.local." % (svc, NS)


def services():
    sel = {"selector": {"app": "x"}}
    return [fakeapi.service("cip", NS, "10.96.40.1", extra_spec=sel),
            fakeapi.service("hl", NS, "None", extra_spec=sel),
            fakeapi.service("raw", NS, "None")]


def raw_slice(addrs, trigger=None):
    """A slice written by someone else than the controller (the Service has
    no selector): the fake stamps nothing, the test may."""
    s = fakeapi.slice_("raw-1", NS, "raw", addrs,
                       labels={"endpointslice.kubernetes.io/managed-by": "someone-else"})
    if trigger is not None:
        s["metadata"]["annotations"] = {fakeapi.TRIGGER_TIME: trigger}
    return s


def counts(http, fam=SLI):
    m = t.scrape(http)
    return {kd: t.metric(m, fam + "_count", service_kind=kd) for kd in KINDS}, m


def wait_counts(http, want, timeout=10.0):
    last = [None]

    def probe():
        last[0] = counts(http)[0]
        return last[0] == want
    ok, _ = t.poll(probe, timeout=timeout, interval=0.05)
    return bool(ok), last[0]


def main(tally):
    api = fakeapi.FakeAPI(trigger_times=True).start()
    srv = None
    http = t.free_port()
    try:
        api.apply(fakeapi.namespace(NS))
        for o in services():
            api.apply(o)
        api.apply(fakeapi.slice_("cip-1", NS, "cip", ["10.252.0.1"]))
        api.apply(fakeapi.slice_("hl-1", NS, "hl", ["10.252.1.1"]))
        api.apply(raw_slice(["10.252.2.1"]))
        tally.check(fakeapi.TRIGGER_TIME in api.get("EndpointSlice", NS, "hl-1")["metadata"]
                    .get("annotations", {}), "the fake stamps the controller's slices")
        tally.check("annotations" not in api.get("EndpointSlice", NS, "raw-1")["metadata"],
                    "and only those")
        srv = k.KubeServer(["--api-server", api.url] + k.FAST,
                           ["--http", "127.0.0.1:%d" % http, "--metrics-compat", "coredns"]).start()
        p = srv.port
        k.expect(tally, "synced", p, name("hl"), "NOERROR", ["10.252.1.1"])
        zero = {kd: 0.0 for kd in KINDS}
        c, m = counts(http)
        tally.check(c == zero, "the first list is not observed", str(c))
        tally.check(t.metric(m, COMPAT + "_count", service_kind="all") is None,
                    "no service_kind=\"all\" any more")
        tally.check(t.metric(m, "svcdns_data_change_to_serve_seconds_count") is not None,
                    "svcdns's own change-to-serve histogram stays")

        # a ClusterIP Service's slice changes (the fake stamps the time)
        api.apply(fakeapi.slice_("cip-1", NS, "cip", ["10.252.0.1", "10.252.0.2"]))
        ok, c = wait_counts(http, dict(zero, cluster_ip=1.0))
        tally.check(ok, "cluster_ip: one observation", str(c))
        # a headless Service with a selector
        api.apply(fakeapi.slice_("hl-1", NS, "hl", ["10.252.1.1", "10.252.1.2"]))
        k.expect(tally, "headless change served", p, name("hl"), "NOERROR",
                 ["10.252.1.1", "10.252.1.2"])
        ok, c = wait_counts(http, dict(zero, cluster_ip=1.0, headless_with_selector=1.0))
        tally.check(ok, "headless_with_selector: one observation", str(c))
        _, m = counts(http)
        s = t.metric(m, SLI + "_sum", service_kind="headless_with_selector")
        tally.check(s is not None and 0 <= s < 10, "measured from the stamp: seconds at most",
                    str(s))

        # a headless Service without selector, its slice annotated 3 s ago
        api.apply(raw_slice(["10.252.2.1", "10.252.2.2"], fakeapi.rfc3339(time.time() - 3)))
        want = dict(zero, cluster_ip=1.0, headless_with_selector=1.0,
                    headless_without_selector=1.0)
        ok, c = wait_counts(http, want)
        tally.check(ok, "headless_without_selector: one observation", str(c))
        _, m = counts(http)
        s = t.metric(m, SLI + "_sum", service_kind="headless_without_selector")
        tally.check(s is not None and 3.0 <= s < 30, "from the annotation's time: >= 3 s",
                    str(s))

        # the same annotation again with other endpoints: no new observation
        same = api.get("EndpointSlice", NS, "raw-1")["metadata"]["annotations"]
        api.apply(raw_slice(["10.252.2.3"], same[fakeapi.TRIGGER_TIME]))
        k.expect(tally, "update with a repeated annotation served", p, name("raw"), "NOERROR",
                 ["10.252.2.3"])
        # and a slice without the annotation at all
        api.apply(raw_slice(["10.252.2.4"]))
        k.expect(tally, "update without annotation served", p, name("raw"), "NOERROR",
                 ["10.252.2.4"])
        tally.check(counts(http)[0] == want, "neither is observed", str(counts(http)[0]))

        # clock skew: an annotation an hour ahead of svcdns's clock counts as 0
        before, m = counts(http)
        b0 = t.metric(m, SLI + "_bucket", service_kind="headless_with_selector", le="0.001")
        s0 = t.metric(m, SLI + "_sum", service_kind="headless_with_selector")
        fut = fakeapi.slice_("hl-1", NS, "hl", ["10.252.1.3"])
        fut["metadata"]["annotations"] = {fakeapi.TRIGGER_TIME: fakeapi.rfc3339(time.time() +
                                                                                3600)}
        api.apply(fut)
        want = dict(want, headless_with_selector=2.0)
        ok, c = wait_counts(http, want)
        _, m = counts(http)
        b1 = t.metric(m, SLI + "_bucket", service_kind="headless_with_selector", le="0.001")
        s1 = t.metric(m, SLI + "_sum", service_kind="headless_with_selector")
        tally.check(ok and b1 == b0 + 1 and s1 == s0,
                    "an annotation from the future counts as 0 s",
                    "counts %s bucket %s -> %s sum %s -> %s" % (c, b0, b1, s0, s1))

        # a relist (410 after compaction) repeats every annotation: none observed
        rel0 = t.metric(t.scrape(http), "svcdns_kubernetes_relists_total",
                        resource="endpointslices")
        api.apply(fakeapi.namespace("pl-other"))  # compaction passes the slices' version
        api.compact()
        api.cut_watches()
        v, _ = t.poll(lambda: t.metric(t.scrape(http), "svcdns_kubernetes_relists_total",
                                       resource="endpointslices") > rel0, timeout=15)
        tally.check(bool(v), "the slices were listed again")
        tally.check(api.wait_watching(("endpointslices",)), "and are watched again")
        tally.check(counts(http)[0] == want, "a relist observes nothing again",
                    str(counts(http)[0]))
        # a change after the relist is observed as usual
        api.apply(fakeapi.slice_("cip-1", NS, "cip", ["10.252.0.3"]))
        ok, c = wait_counts(http, dict(want, cluster_ip=2.0))
        tally.check(ok, "a change after the relist is observed", str(c))
        c2, _ = counts(http, COMPAT)
        tally.check(c2 == counts(http)[0], "--metrics-compat coredns: the same figures under "
                    "CoreDNS's name", str(c2))
    finally:
        if srv:
            tally.server_stopped(srv)
        api.stop()


if __name__ == "__main__":
    t.main_guard(t.Tally("programming-latency"), main)
