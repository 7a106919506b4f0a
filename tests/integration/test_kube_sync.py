"""The Kubernetes API source against the fake API server (tests/fakeapi):
the same objects served from the API and from a manifest directory give the
same answers; the first list comes in several pages; SERVFAIL until the first
full sync; ADDED/MODIFIED/DELETED of Services, EndpointSlices and Namespaces
show in the answers; a headless Service's endpoints move between slices;
bookmarks move the resume point; --namespaces and --labels filter."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakeapi"))
import kubetest as k  # noqa: E402
import fakeapi  # noqa: E402

t = k.t
CLUSTER = os.path.join(k.KUBE_FIXTURES, "cluster")

# Every kind of name and record the fixture cluster has.
QUERIES = [
    ("web.shop.svc.cluster.local.", "A", "IN"), ("web.shop.svc.cluster.local.", "AAAA", "IN"),
    ("web.shop.svc.cluster.local.", "SRV", "IN"),
    ("_http._tcp.web.shop.svc.cluster.local.", "SRV", "IN"),
    ("_metrics._tcp.web.shop.svc.cluster.local.", "SRV", "IN"),
    ("web.shop.svc.cluster.local.", "TXT", "CH"),
    ("db.shop.svc.cluster.local.", "A", "IN"), ("db-0.db.shop.svc.cluster.local.", "A", "IN"),
    ("db-2.db.shop.svc.cluster.local.", "A", "IN"),
    ("_postgres._tcp.db.shop.svc.cluster.local.", "SRV", "IN"),
    ("payments.shop.svc.cluster.local.", "A", "IN"),
    ("payments.shop.svc.cluster.local.", "CNAME", "IN"),
    ("api.prod.svc.cluster.local.", "A", "IN"), ("api.prod.svc.cluster.local.", "AAAA", "IN"),
    ("_grpc._tcp.api.prod.svc.cluster.local.", "SRV", "IN"),
    ("api.prod.svc.cluster.local.", "TXT", "CH"),
    ("frontend.prod.svc.cluster.local.", "A", "IN"),
    ("frontend.prod.svc.cluster.local.", "TXT", "CH"),
    ("kube-dns.kube-system.svc.cluster.local.", "A", "IN"),
    ("_dns._udp.kube-dns.kube-system.svc.cluster.local.", "SRV", "IN"),
    ("cluster.local.", "SOA", "IN"), ("cluster.local.", "NS", "IN"),
    ("ns.dns.cluster.local.", "A", "IN"),
    (t.rev("10.96.10.10"), "PTR", "IN"), (t.rev("10.244.2.21"), "PTR", "IN"),
    (t.rev("fd00:10:96::20"), "PTR", "IN"), (t.rev("10.96.0.10"), "PTR", "IN"),
    ("empty.svc.cluster.local.", "A", "IN"), ("nothere.svc.cluster.local.", "A", "IN"),
    ("nothere.shop.svc.cluster.local.", "A", "IN"),
    ("web.shop.svc.", "A", "IN"), ("10-244-1-11.shop.pod.cluster.local.", "A", "IN"),
    ("dns-version.cluster.local.", "TXT", "IN"),
]


def normalized(port, qname, qtype, qclass):
    r = t.run_dnspython(port, qname, qtype, qclass)

    def mask(recs):
        out = []
        for rec in recs:
            p = rec.split()
            if len(p) > 6 and p[3] == "SOA":
                p[6] = "SERIAL"
            out.append(" ".join(p))
        return sorted(out)
    return (r.rcode, "aa" in r.flags, mask(r.answer), mask(r.authority), mask(r.additional))


def test_same_as_manifests(tally):
    api = fakeapi.FakeAPI().start()
    try:
        api.apply_many(fakeapi.load_dir(CLUSTER))
        from_api = k.KubeServer(["--api-server", api.url] + k.FAST).start()
        from_dir = k.KubeServer([], manifests=CLUSTER).start()
        for q in QUERIES:
            a = normalized(from_api.port, *q)
            b = normalized(from_dir.port, *q)
            tally.check(a == b, "same answer from the API and from manifests: %s %s %s" % q,
                        "\n      api:       %s\n      manifests: %s" % (a, b))
        tally.server_stopped(from_dir, "manifest server exits cleanly")
        tally.server_stopped(from_api)
    finally:
        api.stop()


def test_pages_and_sync(tally):
    """Several pages per list; SERVFAIL until all three resources are listed."""
    api = fakeapi.FakeAPI().start()
    try:
        api.apply_many(fakeapi.load_dir(CLUSTER))
        # namespaces fail three times: the zone must stay SERVFAIL meanwhile
        api.fault("namespaces", "list", "status", count=3, code=500)
        t0 = time.monotonic()
        srv = k.KubeServer(["--api-server", api.url, "--api-page-size", "2"] + k.FAST)
        srv.start(wait=False)
        seen = set()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            rc = srv.rcode("web.shop.svc.cluster.local.", "A")
            if rc:
                seen.add(rc)
            if rc == "NOERROR":
                break
            time.sleep(0.02)
        tally.check("SERVFAIL" in seen, "cluster names are SERVFAIL before the first sync",
                    "saw %s" % sorted(seen))
        tally.check("NXDOMAIN" not in seen, "never NXDOMAIN for an existing name during sync",
                    "saw %s" % sorted(seen))
        k.expect(tally, "answers after the first sync", srv.port, "web.shop.svc.cluster.local.",
                 "NOERROR", ["10.96.10.10"])
        # the watches are asked for right after the last page, maybe a moment
        # after the first answers
        api.wait_watching()
        for res, n in (("services", 6), ("endpointslices", 6), ("namespaces", 5)):
            # (a list of one Namespace is the contact probe, not a page)
            lists = [r for r in api.requests_since(t0, res, "list") if r["status"] == 200 and
                     r["query"].get("limit") != "1"]
            conts = [r for r in lists if r["query"].get("continue")]
            tally.check(len(lists) >= (n + 1) // 2 and all(r["query"].get("limit") == "2"
                                                            for r in lists),
                        "%s listed in pages of 2 (%d objects)" % (res, n),
                        "%d list requests: %s" % (len(lists), [r["query"] for r in lists]))
            tally.check(len(conts) >= 1, "%s pages follow the continue token" % res)
            watches = api.requests_since(t0, res, "watch")
            w = watches[0]["query"] if watches else {}
            tally.check(w.get("allowWatchBookmarks") == "true" and w.get("resourceVersion"),
                        "%s watched with bookmarks from the list's resourceVersion" % res,
                        "watch query %s" % w)
        # the server outside the cluster zone answered even before the sync
        tally.check(srv.log_has("first full sync"), "the first full sync is logged")
        # every object made it: one per kind
        for name, want in (("db.shop.svc.cluster.local.", ["10.244.2.21", "10.244.2.22"]),
                           ("api.prod.svc.cluster.local.", ["10.96.20.20"]),
                           ("kube-dns.kube-system.svc.cluster.local.", ["10.96.0.10"])):
            k.expect(tally, "paged list holds %s" % name, srv.port, name, "NOERROR", want)
        tally.server_stopped(srv)
    finally:
        api.stop()


def test_events(tally):
    api = fakeapi.FakeAPI(bookmark_interval=0.3).start()
    try:
        api.apply_many(fakeapi.load_dir(CLUSTER))
        srv = k.KubeServer(["--api-server", api.url] + k.FAST).start()
        p = srv.port
        api.wait_watching()
        N = "shop.svc.cluster.local."
        # Service ADDED / MODIFIED / DELETED
        api.apply(fakeapi.service("cart", "shop", "10.96.30.1"))
        k.expect(tally, "Service ADDED is served", p, "cart." + N, "NOERROR", ["10.96.30.1"])
        api.apply(fakeapi.service("cart", "shop", "10.96.30.2"))
        k.expect(tally, "Service MODIFIED is served", p, "cart." + N, "NOERROR", ["10.96.30.2"])
        api.apply(fakeapi.service("cart", "shop", "10.96.30.2",
                                  ports=(("http", 80, 8080), ("grpc", 9000, 9000))))
        k.expect(tally, "Service MODIFIED: new named port has an SRV", p,
                 "_grpc._tcp.cart." + N, "NOERROR", ["0 100 9000 cart.shop.svc.cluster.local."],
                 qtype="SRV")
        api.delete("Service", "shop", "cart")
        k.expect(tally, "Service DELETED is NXDOMAIN", p, "cart." + N, "NXDOMAIN", [])
        # EndpointSlice ADDED / MODIFIED / DELETED (headless, so the A records show it)
        api.apply(fakeapi.service("cache", "shop", "None"))
        k.expect(tally, "headless Service without endpoints is NXDOMAIN", p, "cache." + N,
                 "NXDOMAIN", [])
        api.apply(fakeapi.slice_("cache-a", "shop", "cache", ["10.244.5.1", "10.244.5.2"]))
        k.expect(tally, "EndpointSlice ADDED is served", p, "cache." + N, "NOERROR",
                 ["10.244.5.1", "10.244.5.2"])
        api.apply(fakeapi.slice_("cache-a", "shop", "cache", ["10.244.5.1", "10.244.5.3"]))
        k.expect(tally, "EndpointSlice MODIFIED is served", p, "cache." + N, "NOERROR",
                 ["10.244.5.1", "10.244.5.3"])
        api.apply(fakeapi.slice_("cache-a", "shop", "cache", ["10.244.5.1", "10.244.5.3"],
                                 ready=False))
        k.expect(tally, "EndpointSlice MODIFIED to not ready: NXDOMAIN", p, "cache." + N,
                 "NXDOMAIN", [])
        api.apply(fakeapi.slice_("cache-a", "shop", "cache", ["10.244.5.4"]))
        api.delete("EndpointSlice", "shop", "cache-a")
        k.expect(tally, "EndpointSlice DELETED is gone from the answer", p, "cache." + N,
                 "NXDOMAIN", [])
        # Namespace ADDED / DELETED
        api.apply(fakeapi.namespace("fresh"))
        k.expect(tally, "Namespace ADDED: its name exists", p, "fresh.svc.cluster.local.",
                 "NOERROR", [])
        api.apply({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": "fresh", "labels": {"x": "y"}},
                   "status": {"phase": "Terminating"}})
        k.expect(tally, "Namespace MODIFIED: still there", p, "fresh.svc.cluster.local.",
                 "NOERROR", [])
        api.delete("Namespace", "", "fresh")
        k.expect(tally, "Namespace DELETED: NXDOMAIN", p, "fresh.svc.cluster.local.",
                 "NXDOMAIN", [])
        # an object with fields nobody knows yet is still read
        svc = fakeapi.service("future", "shop", "10.96.30.9")
        svc["spec"]["trafficDistribution"] = "PreferClose"
        svc["spec"]["newThing"] = {"a": [1, {"b": None}]}
        svc["metadata"]["managedFields"] = [{"manager": "x", "fieldsV1": {"f:spec": {}}}]
        svc["status"] = {"loadBalancer": {}, "conditions": [{"type": "Whatever"}]}
        api.apply(svc)
        k.expect(tally, "unknown fields are ignored", p, "future." + N, "NOERROR",
                 ["10.96.30.9"])
        # A version we cannot use (the real server would not have accepted
        # this one; a newer server might accept what we cannot read) is
        # logged, and replaces the previous one: the cluster no longer holds
        # what that said, and a fresh start would not serve it either.
        bad = fakeapi.service("future", "shop", "10.96.30.9")
        bad["spec"]["ports"][0]["port"] = 70000
        api.apply(bad)
        tally.check(srv.wait_log("future"), "an invalid object is logged with its name")
        # a later event of the same watch is served: the invalid one was handled
        api.apply(fakeapi.service("after-invalid", "shop", "10.96.30.10"))
        k.expect(tally, "an event after the invalid one is served", p, "after-invalid." + N,
                 "NOERROR", ["10.96.30.10"])
        k.expect(tally, "an unusable update replaces the previous version", p, "future." + N,
                 "NXDOMAIN", [])
        api.apply(svc)
        k.expect(tally, "a usable version is served again", p, "future." + N, "NOERROR",
                 ["10.96.30.9"])
        tally.check(not srv.log_has("Bearer"), "no credentials in the log")
        tally.server_stopped(srv)
    finally:
        api.stop()


def test_headless_moves(tally):
    """Endpoints of a headless Service move from one slice to another, in
    either order of the two events: the names stay answered."""
    api = fakeapi.FakeAPI().start()
    try:
        api.apply_many(fakeapi.load_dir(CLUSTER))
        api.apply(fakeapi.service("kv", "shop", "None", ports=(("client", 2379, 2379),)))
        api.apply(fakeapi.slice_("kv-a", "shop", "kv", ["10.244.6.1", "10.244.6.2"],
                                 port_name="client", port=2379, hostnames=["kv-0", "kv-1"]))
        api.apply(fakeapi.slice_("kv-b", "shop", "kv", ["10.244.6.3"], port_name="client",
                                 port=2379, hostnames=["kv-2"]))
        srv = k.KubeServer(["--api-server", api.url] + k.FAST).start()
        p = srv.port
        N = "kv.shop.svc.cluster.local."
        k.expect(tally, "headless: both slices served", p, N, "NOERROR",
                 ["10.244.6.1", "10.244.6.2", "10.244.6.3"])
        api.wait_watching()
        # kv-1 moves to kv-b: added there first, then removed from kv-a
        api.apply(fakeapi.slice_("kv-b", "shop", "kv", ["10.244.6.3", "10.244.6.2"],
                                 port_name="client", port=2379, hostnames=["kv-2", "kv-1"]))
        api.apply(fakeapi.slice_("kv-a", "shop", "kv", ["10.244.6.1"], port_name="client",
                                 port=2379, hostnames=["kv-0"]))
        k.expect(tally, "headless: endpoint moved between slices, all still served", p, N,
                 "NOERROR", ["10.244.6.1", "10.244.6.2", "10.244.6.3"])
        k.expect(tally, "headless: moved endpoint keeps its hostname", p,
                 "kv-1." + N, "NOERROR", ["10.244.6.2"])
        k.expect(tally, "headless: SRV lists every endpoint after the move", p,
                 "_client._tcp." + N, "NOERROR",
                 ["0 33 2379 kv-0.kv.shop.svc.cluster.local.",
                  "0 33 2379 kv-1.kv.shop.svc.cluster.local.",
                  "0 33 2379 kv-2.kv.shop.svc.cluster.local."], qtype="SRV")
        # kv-0 moves the other way: removed from kv-a (slice now empty) before added
        api.apply(fakeapi.slice_("kv-a", "shop", "kv", [], port_name="client", port=2379))
        k.expect(tally, "headless: removed from its old slice first: gone meanwhile", p,
                 "kv-0." + N, "NXDOMAIN", [])
        api.apply(fakeapi.slice_("kv-b", "shop", "kv", ["10.244.6.3", "10.244.6.2",
                                                        "10.244.6.1"],
                                 port_name="client", port=2379, hostnames=["kv-2", "kv-1",
                                                                           "kv-0"]))
        k.expect(tally, "headless: ... and back once the new slice has it", p, "kv-0." + N,
                 "NOERROR", ["10.244.6.1"])
        api.delete("EndpointSlice", "shop", "kv-a")
        k.expect(tally, "headless: deleting the emptied slice changes nothing", p, N, "NOERROR",
                 ["10.244.6.1", "10.244.6.2", "10.244.6.3"])
        tally.server_stopped(srv)
    finally:
        api.stop()


def test_bookmarks(tally):
    """Bookmarks move the resume point: after a compaction that would make the
    last event's resourceVersion too old, a resumed watch needs no relist."""
    # bookmarks on every interval (as some clusters send them): what matters
    # here is that the client resumes from one
    api = fakeapi.FakeAPI(bookmark_interval=0.2, always_bookmark=True).start()
    try:
        api.apply_many(fakeapi.load_dir(CLUSTER))
        srv = k.KubeServer(["--api-server", api.url] + k.FAST).start()
        api.wait_watching()
        # changes to namespaces only: the services watch hears of them by bookmark
        for i in range(20):
            api.apply(fakeapi.namespace("busy-%d" % i))
        latest = api.rv
        time.sleep(0.8)  # a few bookmark intervals
        api.compact()
        t0 = time.monotonic()
        api.cut_watches()
        # a relist, if any, would come before the new watch: none can follow
        api.wait_watching()
        watches = api.requests_since(t0, "services", "watch")
        rvs = [int(w["query"].get("resourceVersion") or 0) for w in watches]
        tally.check(rvs and rvs[0] >= latest,
                    "services watch resumes from the bookmark's resourceVersion",
                    "resumed from %s, latest %d" % (rvs, latest))
        lists = api.requests_since(t0, "services", "list")
        tally.check(not lists, "no relist of services after a bookmark",
                    "%d list requests" % len(lists))
        api.apply(fakeapi.service("after-bookmark", "shop", "10.96.31.1"))
        k.expect(tally, "events after the resumed watch are served", srv.port,
                 "after-bookmark.shop.svc.cluster.local.", "NOERROR", ["10.96.31.1"])
        tally.server_stopped(srv)
    finally:
        api.stop()


def test_filters(tally):
    api = fakeapi.FakeAPI().start()
    try:
        api.apply_many(fakeapi.load_dir(CLUSTER))
        srv = k.KubeServer(["--api-server", api.url, "--namespaces", "shop,prod"] + k.FAST)
        srv.start()
        p = srv.port
        k.expect(tally, "--namespaces: a listed namespace is served", p,
                 "web.shop.svc.cluster.local.", "NOERROR", ["10.96.10.10"])
        k.expect(tally, "--namespaces: another namespace is not", p,
                 "kube-dns.kube-system.svc.cluster.local.", "NXDOMAIN", [])
        api.wait_watching()
        api.apply(fakeapi.service("late", "default", "10.96.32.1"))
        api.apply(fakeapi.service("late", "prod", "10.96.32.2"))
        k.expect(tally, "--namespaces: watch events of a listed namespace", p,
                 "late.prod.svc.cluster.local.", "NOERROR", ["10.96.32.2"])
        k.expect(tally, "--namespaces: watch events of others are dropped", p,
                 "late.default.svc.cluster.local.", "NXDOMAIN", [])
        tally.server_stopped(srv)

        t0 = time.monotonic()
        srv = k.KubeServer(["--api-server", api.url, "--labels", "app=web"] + k.FAST).start()
        p = srv.port
        sel = [r["query"].get("labelSelector") for r in api.requests_since(t0, "services")]
        tally.check(sel and all(s == "app=web" for s in sel),
                    "--labels is sent as labelSelector", "sent %s" % sel)
        k.expect(tally, "--labels: a matching Service is served", p,
                 "web.shop.svc.cluster.local.", "NOERROR", ["10.96.10.10"])
        k.expect(tally, "--labels: others are not", p, "api.prod.svc.cluster.local.",
                 "NXDOMAIN", [])
        api.wait_watching()
        svc = fakeapi.service("web", "shop", "10.96.10.10", labels={"app": "old-web"})
        api.apply(svc)
        k.expect(tally, "--labels: a Service that stops matching goes away", p,
                 "web.shop.svc.cluster.local.", "NXDOMAIN", [])
        tally.server_stopped(srv)
    finally:
        api.stop()


def main(tally):
    test_same_as_manifests(tally)
    test_pages_and_sync(tally)
    test_events(tally)
    test_headless_moves(tally)
    test_bookmarks(tally)
    test_filters(tally)


if __name__ == "__main__":
    t.main_guard(t.Tally("kube sync"), main)
