"""Streaming lists (KEP-3157 WatchList) against the fake API server: with
--api-list-mode auto svcdns lists every resource by a watch with
sendInitialEvents=true (no list page at all), the same stream goes on as the
watch; a stream cut before its closing bookmark is streamed again; after the
API server comes back with its history compacted (410 Gone), the relist is
streamed from resourceVersion "" and what was deleted meanwhile goes; servers
that refuse it (422: the feature gate off, or a 1.19-1.26 server) or ignore it
(a plain watch, no closing bookmark) are listed in pages; --api-list-mode
watchlist never falls back, and optional resources the server lacks are done
without; the metrics count list pages and watch restarts."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakeapi"))
import kubetest as k  # noqa: E402
import fakeapi  # noqa: E402

t = k.t
RES = ("services", "endpointslices", "namespaces")


def cluster(api):
    api.apply(fakeapi.namespace("wl"))
    api.apply(fakeapi.service("web", "wl", "10.96.8.1"))
    api.apply(fakeapi.slice_("web-a", "wl", "web", ["10.244.8.1", "10.244.8.2"]))
    api.apply(fakeapi.service("db", "wl", "None"))
    api.apply(fakeapi.slice_("db-a", "wl", "db", ["10.244.8.11"], hostnames=["db-0"]))
    api.apply(fakeapi.service("old", "wl", "10.96.8.9"))


def streamed(req):
    q = req["query"]
    return (req["verb"] == "watch" and q.get("sendInitialEvents") == "true" and
            q.get("resourceVersionMatch") == "NotOlderThan" and
            q.get("allowWatchBookmarks") == "true")


def start(api, mode, http, extra=()):
    return k.KubeServer(["--api-server", api.url],
                        ["--api-list-mode", mode, "--http", "127.0.0.1:%d" % http] +
                        list(extra) + k.FAST).start(timeout=30)


def streamed_sync(tally):
    api = fakeapi.FakeAPI().start()
    srv = None
    try:
        cluster(api)
        t0 = time.monotonic()
        # the first stream of Services is cut after one object: streamed again
        api.fault("services", "watch", "midline", after=1)
        http = t.free_port()
        srv = start(api, "auto", http)
        k.expect(tally, "streamed: a ClusterIP Service is served", srv.port,
                 "web.wl.svc.cluster.local.", "NOERROR", ["10.96.8.1"])
        k.expect(tally, "streamed: a headless endpoint is served", srv.port,
                 "db-0.db.wl.svc.cluster.local.", "NOERROR", ["10.244.8.11"])
        for res in ("services", "endpointslices"):
            reqs = api.requests_since(t0, res)
            lists = [r for r in reqs if r["verb"] == "list"]
            first = [r for r in reqs if r["verb"] == "watch"][:1]
            tally.check(not lists and first and streamed(first[0]) and
                        first[0]["query"].get("resourceVersion") == "",
                        "%s: listed by a streamed list from resourceVersion \"\", no page" % res,
                        "requests %s" % [(r["verb"], r["query"]) for r in reqs])
        tally.check(srv.log_has("objects streamed"), "the log says the list was streamed",
                    srv.stderr_tail())
        tally.check(srv.log_has("api services: streamed list ended before its bookmark"),
                    "a stream cut before its bookmark is streamed again", srv.stderr_tail())
        # the stream goes on as the watch: a change arrives on it
        api.wait_watching()
        n_watch = len(api.requests_since(t0, "services", "watch"))
        api.apply(fakeapi.service("late", "wl", "10.96.8.2"))
        k.expect(tally, "after the streamed list, the same stream carries changes", srv.port,
                 "late.wl.svc.cluster.local.", "NOERROR", ["10.96.8.2"])
        tally.check(len(api.requests_since(t0, "services", "watch")) == n_watch,
                    "no new watch was needed for the change")
        m = t.scrape(http)
        pages = t.metric(m, "svcdns_api_list_pages_total", resource="services")
        tally.check(pages == 0, "svcdns_api_list_pages_total{services} is 0", str(pages))
        restarts0 = t.metric(m, "svcdns_api_watch_restarts_total", resource="services")
        tally.check(restarts0 == 1, "the stream streamed again is one watch restart",
                    str(restarts0))

        # The API server goes away; meanwhile a Service and a slice are
        # deleted and one is added, and its history is compacted: the watch
        # from the old resourceVersion gets 410, and the relist is streamed.
        api.stop()
        t1 = time.monotonic()
        api.delete("Service", "wl", "old")
        api.delete("EndpointSlice", "wl", "db-a")
        api.apply(fakeapi.service("gap", "wl", "10.96.8.3"))
        with api.cond:
            api.rv += 1
        api.compact()
        api.start()
        k.expect(tally, "relist: a Service added during the gap is served", srv.port,
                 "gap.wl.svc.cluster.local.", "NOERROR", ["10.96.8.3"], timeout=30)
        k.expect(tally, "relist: a Service deleted during the gap is gone", srv.port,
                 "old.wl.svc.cluster.local.", "NXDOMAIN", [])
        k.expect(tally, "relist: a slice deleted during the gap takes its endpoint away",
                 srv.port, "db-0.db.wl.svc.cluster.local.", "NXDOMAIN", [])
        ok, _ = t.poll(lambda: srv.log_has("api endpointslices: listed again"), timeout=10)
        tally.check(bool(ok), "endpointslices listed again", srv.stderr_tail())
        reqs = api.requests_since(t1, "services")
        relist = [r for r in reqs if streamed(r) and r["query"].get("resourceVersion") == ""]
        tally.check(relist and not [r for r in reqs if r["verb"] == "list"],
                    "the relist after 410 is a streamed list from \"\", no page",
                    "requests %s" % [(r["verb"], r["query"]) for r in reqs])
        tally.check(srv.log_has("api services: listed again") and
                    "1 removed" in srv.stderr_text(),
                    "the relist removed what the gap deleted", srv.stderr_tail())
        m = t.scrape(http)
        for res in RES:
            v = t.metric(m, "svcdns_api_list_pages_total", resource=res)
            if res != "namespaces":  # the contact probe is a list of namespaces
                tally.check(v == 0, "%s: still no list page after the relist" % res, str(v))
            r = t.metric(m, "svcdns_api_watch_restarts_total", resource=res)
            tally.check(r is not None and r >= (restarts0 + 1 if res == "services" else 1),
                        "%s: the streamed relist counts as a watch restart" % res, str(r))
        relists = t.metric(m, "svcdns_kubernetes_relists_total", resource="services")
        tally.check(relists is not None and relists >= 1, "the relist is counted", str(relists))
    finally:
        if srv:
            tally.server_stopped(srv)
        api.stop()


def fallback(tally, mode):
    api = fakeapi.FakeAPI(watch_list=mode).start()
    srv = None
    try:
        cluster(api)
        t0 = time.monotonic()
        http = t.free_port()
        srv = start(api, "auto", http)
        k.expect(tally, "%s: served after the fallback to pages" % mode, srv.port,
                 "web.wl.svc.cluster.local.", "NOERROR", ["10.96.8.1"])
        reqs = api.requests_since(t0, "services")
        first = reqs[:1]
        pages = [r for r in reqs if r["verb"] == "list" and r["status"] == 200]
        want = 422 if mode in ("off", "legacy") else 200
        tally.check(first and streamed(first[0]) and first[0]["status"] == want and pages,
                    "%s: a streamed list first (HTTP %d), then pages" % (mode, want),
                    "requests %s" % [(r["verb"], r["status"], r["query"]) for r in reqs])
        tally.check(srv.log_has("api services: the API server does not stream lists"),
                    "%s: the log says why it lists in pages" % mode, srv.stderr_tail())
        if mode == "off":
            tally.check(srv.log_has("sendInitialEvents is forbidden for watch unless the "
                                    "WatchList feature gate is enabled"),
                        "off: the server's reason is in the log", srv.stderr_tail())
        m = t.scrape(http)
        v = t.metric(m, "svcdns_api_list_pages_total", resource="services")
        tally.check(v is not None and v >= 1, "%s: list pages are counted" % mode, str(v))
        # a relist after 410: refused lists ask again (the server may have
        # been upgraded), ignored ones do not
        api.wait_watching()
        t1 = time.monotonic()
        api.fault("services", "watch", "error410")
        api.cut_watches()
        api.apply(fakeapi.service("again", "wl", "10.96.8.4"))
        k.expect(tally, "%s: served after a relist" % mode, srv.port,
                 "again.wl.svc.cluster.local.", "NOERROR", ["10.96.8.4"], timeout=30)
        reqs = api.requests_since(t1, "services")
        tried = [r for r in reqs if streamed(r)]
        tally.check(bool(tried) == (mode != "ignore"),
                    "%s: the relist %s a streamed list" % (
                        mode, "does not try" if mode == "ignore" else "tries"),
                    "requests %s" % [(r["verb"], r["status"], r["query"]) for r in reqs])
    finally:
        if srv:
            tally.server_stopped(srv)
        api.stop()


def forced(tally):
    """--api-list-mode watchlist against a server that refuses it: it keeps
    asking (with backoff) and never lists in pages."""
    api = fakeapi.FakeAPI(watch_list="off").start()
    srv = None
    try:
        cluster(api)
        t0 = time.monotonic()
        http = t.free_port()
        srv = k.KubeServer(["--api-server", api.url],
                           ["--api-list-mode", "watchlist", "--http", "127.0.0.1:%d" % http] +
                           k.FAST).start(wait=False)
        ok, _ = t.poll(lambda: len([r for r in api.requests_since(t0, "services")
                                    if streamed(r) and r["status"] == 422]) >= 2, timeout=20)
        reqs = api.requests_since(t0, "services")
        tally.check(bool(ok) and not [r for r in reqs if r["verb"] == "list"],
                    "watchlist: refused streams are asked again, never a page",
                    "requests %s" % [(r["verb"], r["status"]) for r in reqs])
        tally.check(srv.rcode("web.wl.svc.cluster.local.", "A") == "SERVFAIL",
                    "watchlist: not synced while the server refuses")
    finally:
        if srv:
            tally.server_stopped(srv)
        api.stop()


def forced_syncs(tally):
    """--api-list-mode watchlist against a server that streams: synced, with
    the resources it does not have (ServiceCIDRs, ServiceImports: 404 to the
    stream) done without, and no list asked for but the contact probe's."""
    api = fakeapi.FakeAPI().start()
    srv = None
    try:
        cluster(api)
        t0 = time.monotonic()
        srv = start(api, "watchlist", t.free_port())
        k.expect(tally, "watchlist: synced and serving", srv.port, "web.wl.svc.cluster.local.",
                 "NOERROR", ["10.96.8.1"])
        lists = [(r["resource"], r["status"]) for r in api.requests_since(t0)
                 if r["verb"] == "list" and r["resource"] != "namespaces"]
        tally.check(not lists, "watchlist: the missing optional resources need no list",
                    "lists %s" % lists)
        tally.check(srv.log_has("api servicecidrs: not served by this API server"),
                    "watchlist: a 404 to a stream makes an optional resource absent",
                    srv.stderr_tail())
    finally:
        if srv:
            tally.server_stopped(srv)
        api.stop()


def main(tally):
    streamed_sync(tally)
    for mode in ("off", "legacy", "ignore"):
        fallback(tally, mode)
    forced(tally)
    forced_syncs(tally)


if __name__ == "__main__":
    t.main_guard(t.Tally("watchlist"), main)
