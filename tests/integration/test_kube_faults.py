"""The Kubernetes API source survives every way the fake API server fails:
410 Gone on a watch (as an ERROR event and as the HTTP status) relists with
nothing lost in between; a stream cut mid-line resumes from the last
resourceVersion; the API server down for a while leaves the old answers
served, then everything catches up; garbage lines are skipped; a connection
that hangs is given up; 500s and 429 are retried; a list page that is not
JSON makes the list start again."""

import os
import sys
import re
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakeapi"))
import kubetest as k  # noqa: E402
import fakeapi  # noqa: E402

t = k.t
CLUSTER = os.path.join(k.KUBE_FIXTURES, "cluster")
WEB = "web.shop.svc.cluster.local."
DB = "db.shop.svc.cluster.local."


class Watcher:
    """Queries a few names in a loop (a background thread) and records every
    answer that differs from the expected one: nothing may disappear."""

    def __init__(self, port, expected):
        self.port = port
        self.expected = expected  # {name: (rcode, sorted rdata)}
        self.bad = []
        self.n = 0
        self.stop_ev = threading.Event()
        self.th = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop_ev.is_set():
            for name, want in self.expected.items():
                try:
                    got = k.answer(self.port, name)
                except Exception:  # noqa: BLE001 - a lost datagram under load
                    continue  # is not a changed answer
                self.n += 1
                if got != want and len(self.bad) < 5:
                    self.bad.append((name, got))
            time.sleep(0.01)

    def __enter__(self):
        self.th.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        self.th.join()


def stable(port):
    return {WEB: ("NOERROR", ["10.96.10.10"]), DB: ("NOERROR", ["10.244.2.21", "10.244.2.22"])}


def start(api, *extra):
    api.apply_many(fakeapi.load_dir(CLUSTER))
    srv = k.KubeServer(["--api-server", api.url] + k.FAST + list(extra)).start()
    api.wait_watching()
    return srv


def test_gone(tally, as_status):
    how = "HTTP status" if as_status else "ERROR event"
    api = fakeapi.FakeAPI(gone_as_status=as_status).start()
    try:
        srv = start(api)
        p = srv.port
        with Watcher(p, stable(p)) as w:
            # changes that the watch cannot deliver: the API server is away,
            # and the history is compacted before it comes back
            api.stop()
            api.apply(fakeapi.service("fresh", "shop", "10.96.40.1"))
            api.delete("Service", "prod", "frontend")
            api.apply(fakeapi.slice_("web-x8r2m", "shop", "web", ["10.244.1.11"]))
            api.compact()
            t0 = time.monotonic()
            api.start()
            k.expect(tally, "410 (%s): relist adds a new Service" % how, p,
                     "fresh.shop.svc.cluster.local.", "NOERROR", ["10.96.40.1"])
            k.expect(tally, "410 (%s): relist removes a deleted Service" % how, p,
                     "frontend.prod.svc.cluster.local.", "NXDOMAIN", [])
            time.sleep(0.3)
        tally.check(not w.bad and w.n > 10,
                    "410 (%s): no answer changed or went away during the relist" % how,
                    "%d queries, bad: %s" % (w.n, w.bad))
        lists = api.requests_since(t0, "services", "list")
        tally.check(len(lists) >= 1, "410 (%s): services listed again" % how)
        tally.check(srv.wait_log("listed again"), "410 (%s): the relist is logged" % how)
        k.expect(tally, "410 (%s): modified slice applied by the relist" % how, p,
                 "_http._tcp.web.shop.svc.cluster.local.", "NOERROR",
                 ["0 100 80 web.shop.svc.cluster.local."], qtype="SRV")
        api.apply(fakeapi.service("fresh2", "shop", "10.96.40.2"))
        k.expect(tally, "410 (%s): watching again after the relist" % how, p,
                 "fresh2.shop.svc.cluster.local.", "NOERROR", ["10.96.40.2"])
        # an ERROR 410 in the middle of a healthy watch
        if not as_status:
            api.fault("endpointslices", "watch", "error410")
            t0 = time.monotonic()
            api.cut_watches()
            ok, _ = t.poll(lambda: api.requests_since(t0, "endpointslices", "list"), timeout=10)
            tally.check(ok, "ERROR 410 event on a resumed watch: endpointslices relisted")
            api.apply(fakeapi.slice_("web-x8r2m", "shop", "web", ["10.244.1.11",
                                                                  "10.244.1.14"]))
            k.expect(tally, "ERROR 410 event: events flow again", p, WEB, "NOERROR",
                     ["10.96.10.10"])
        tally.server_stopped(srv)
    finally:
        api.stop()


def test_midline(tally):
    api = fakeapi.FakeAPI().start()
    try:
        srv = start(api)
        p = srv.port
        # the next services watch is cut in the middle of its first event
        api.fault("services", "watch", "midline", after=0)
        t0 = time.monotonic()
        api.cut_watches()
        api.wait_watching()
        ev_rv = api.apply(fakeapi.service("half", "shop", "10.96.41.1"))
        k.expect(tally, "stream cut mid-line: the event arrives on the resumed watch", p,
                 "half.shop.svc.cluster.local.", "NOERROR", ["10.96.41.1"])
        watches = api.requests_since(t0, "services", "watch")
        tally.check(len(watches) >= 2, "stream cut mid-line: watch resumed",
                    "%d watches" % len(watches))
        rvs = [int(w["query"].get("resourceVersion") or 0) for w in watches]
        # (a bookmark may have moved the resume point, but never past the event)
        tally.check(len(rvs) >= 2 and rvs[1] < ev_rv,
                    "stream cut mid-line: resumed from before the cut event (the partial "
                    "event was not taken)", "resourceVersions %s, event %d" % (rvs, ev_rv))
        tally.check(not api.requests_since(t0, "services", "list"),
                    "stream cut mid-line: no relist")
        tally.check(srv.wait_log("stream ended inside an event"),
                    "stream cut mid-line: logged")
        # cut after two whole events: both are kept, the third comes again
        api.fault("services", "watch", "midline", after=2)
        api.cut_watches()
        api.wait_watching()
        for i in range(3):
            api.apply(fakeapi.service("burst-%d" % i, "shop", "10.96.41.%d" % (10 + i)))
        for i in range(3):
            k.expect(tally, "cut after two events: event %d served" % i, p,
                     "burst-%d.shop.svc.cluster.local." % i, "NOERROR",
                     ["10.96.41.%d" % (10 + i)])
        tally.server_stopped(srv)
    finally:
        api.stop()


def test_down(tally):
    api = fakeapi.FakeAPI().start()
    try:
        srv = start(api)
        p = srv.port
        def services_retries():
            return len(re.findall(r"api services: .*retrying in", srv.stderr_text()))
        retries = services_retries()
        api.stop()
        api.apply(fakeapi.service("while-down", "shop", "10.96.42.1"))
        api.delete("Service", "shop", "payments")
        # Two failures of the services watch logged: the loss of the server,
        # and a try to reconnect, were handled; what is served now is what
        # the server kept through them.
        ok, _ = t.poll(lambda: services_retries() >= retries + 2, timeout=15.0, interval=0.05)
        tally.check(ok, "API server down: retries are logged", srv.stderr_tail(5))
        k.expect(tally, "API server down: old answers still served", p, WEB, "NOERROR",
                 ["10.96.10.10"], timeout=0)
        k.expect(tally, "API server down: the zone is not emptied", p, DB, "NOERROR",
                 ["10.244.2.21", "10.244.2.22"], timeout=0)
        t0 = time.monotonic()
        api.start()
        k.expect(tally, "API server back: a Service added meanwhile is served", p,
                 "while-down.shop.svc.cluster.local.", "NOERROR", ["10.96.42.1"])
        k.expect(tally, "API server back: a Service deleted meanwhile is gone", p,
                 "payments.shop.svc.cluster.local.", "NXDOMAIN", [])
        tally.check(not api.requests_since(t0, "services", "list"),
                    "API server back: the watch resumed without a relist")
        tally.server_stopped(srv)
    finally:
        api.stop()


def test_garbage(tally):
    api = fakeapi.FakeAPI().start()
    try:
        srv = start(api)
        p = srv.port
        t0 = time.monotonic()
        api.fault("services", "watch", "garbage", line=b"<html>502 Bad Gateway</html>\n")
        api.cut_watches()
        api.wait_watching()
        api.apply(fakeapi.service("after-garbage", "shop", "10.96.43.1"))
        k.expect(tally, "garbage line: later events still served", p,
                 "after-garbage.shop.svc.cluster.local.", "NOERROR", ["10.96.43.1"])
        tally.check(srv.wait_log("skipping a line that is not an event"),
                    "garbage line: logged")
        api.fault("services", "watch", "garbage",
                  line=b'{"type":"ADDED","object":"not an object"}\n{"type":"NOPE",'
                       b'"object":{}}\n{"object":{"metadata":{}}}\n')
        api.cut_watches()
        api.wait_watching()
        api.apply(fakeapi.service("after-garbage2", "shop", "10.96.43.2"))
        k.expect(tally, "malformed events: later events still served", p,
                 "after-garbage2.shop.svc.cluster.local.", "NOERROR", ["10.96.43.2"])
        tally.check(not api.requests_since(t0, "services", "list"), "garbage: no relist needed")
        k.expect(tally, "garbage: nothing lost", p, WEB, "NOERROR", ["10.96.10.10"])
        tally.server_stopped(srv)
    finally:
        api.stop()


def test_hang_and_errors(tally):
    api = fakeapi.FakeAPI().start()
    try:
        api.apply_many(fakeapi.load_dir(CLUSTER))
        # the first services list hangs; the second page of slices fails with
        # 500 and then 429 (Retry-After 1)
        api.fault("services", "list", "hang")
        srv = k.KubeServer(["--api-server", api.url, "--api-page-size", "4"] + k.FAST)
        api.fault("endpointslices", "list", "status", code=500)
        api.fault("endpointslices", "list", "status", code=429, retry_after=1)
        t0 = time.monotonic()
        srv.start(timeout=20)
        dt = time.monotonic() - t0
        tally.check(1.5 < dt < 15, "hanging list: given up after --api-timeout, then synced",
                    "synced after %.1f s" % dt)
        tally.check(srv.log_has("no response for 2000 ms"), "hanging list: logged")
        tally.check(srv.log_has("HTTP 500") and srv.log_has("HTTP 429"),
                    "500 and 429 are logged")
        k.expect(tally, "hang/500/429: everything served", srv.port, DB, "NOERROR",
                 ["10.244.2.21", "10.244.2.22"])
        # a watch that hangs before its headers
        api.wait_watching()
        api.fault("namespaces", "watch", "hang")
        api.cut_watches()
        time.sleep(0.2)
        api.apply(fakeapi.namespace("hung"))
        k.expect(tally, "hanging watch: given up and resumed", srv.port,
                 "hung.svc.cluster.local.", "NOERROR", [], timeout=15)
        tally.server_stopped(srv)
    finally:
        api.stop()


def test_bad_page(tally):
    """A list page that is not JSON, found while later pages are already on
    their way: the list starts again and nothing of the bad one is kept."""
    api = fakeapi.FakeAPI().start()
    try:
        api.apply_many(fakeapi.load_dir(CLUSTER))
        api.fault("endpointslices", "list", "badpage")
        srv = k.KubeServer(["--api-server", api.url, "--api-page-size", "2"] + k.FAST)
        t0 = time.monotonic()
        srv.start(timeout=20)
        firsts = [r for r in api.requests_since(t0, "endpointslices", "list")
                  if not r["query"].get("continue")]
        tally.check(len(firsts) >= 2, "bad page: the list starts again",
                    "%d lists from the start" % len(firsts))
        tally.check(srv.log_has("page 1 is not a EndpointSlice list"), "bad page: logged")
        k.expect(tally, "bad page: everything served", srv.port, DB, "NOERROR",
                 ["10.244.2.21", "10.244.2.22"])
        tally.server_stopped(srv)
    finally:
        api.stop()


def main(tally):
    test_gone(tally, as_status=False)
    test_gone(tally, as_status=True)
    test_midline(tally)
    test_down(tally)
    test_garbage(tally)
    test_hang_and_errors(tally)
    test_bad_page(tally)


if __name__ == "__main__":
    t.main_guard(t.Tally("kube faults"), main)
