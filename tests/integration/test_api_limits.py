"""A polite API client: with --api-qps 1 --api-burst 1 the fake API server sees
svcdns's requests (three lists, three watches, probes) at most one a second
after the first, and svcdns still syncs (the in-flight bound is
test_kube_limit's; every API test runs with its default of 2); the requests, their durations, the time waited in the limiter,
bytes, list pages and watch restarts show in /metrics; after the API server
restarts with its history compacted, every resource lists again and serves
what changed meanwhile."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakeapi"))
import kubetest as k  # noqa: E402
import fakeapi  # noqa: E402

t = k.t


def token_requests(api, t0):
    """Requests that take a token (not a list's later pages), in order."""
    return [r for r in api.requests_since(t0) if r["resource"] and
            "continue" not in r["query"]]


def rate_limited(tally):
    api = fakeapi.FakeAPI().start()
    srv = None
    try:
        api.apply(fakeapi.namespace("lim"))
        api.apply(fakeapi.service("web", "lim", "10.96.7.1"))
        t0 = time.monotonic()
        http = t.free_port()
        srv = k.KubeServer(["--api-server", api.url],
                           ["--api-qps", "1", "--api-burst", "1", "--api-max-inflight", "1",
                            "--http", "127.0.0.1:%d" % http] + k.FAST).start(timeout=30)
        k.expect(tally, "qps 1: synced and serving", srv.port, "web.lim.svc.cluster.local.",
                 "NOERROR", ["10.96.7.1"])
        # the three watches are open once their lists are done
        ok, _ = t.poll(lambda: len([r for r in token_requests(api, t0)
                                    if r["verb"] == "watch"]) >= 3, timeout=20)
        reqs = token_requests(api, t0)
        starts = [r["t"] for r in reqs][:6]
        tally.check(bool(ok) and len(starts) == 6 and starts[-1] - starts[0] >= 4.5,
                    "qps 1, burst 1: six requests take at least 5 s",
                    "request times %s" % [round(s - t0, 2) for s in starts])
        m = t.scrape(http)
        for name, labels in (("svcdns_api_requests_total",
                              {"verb": "list", "resource": "services", "code": "200"}),
                             ("svcdns_api_request_duration_seconds_count",
                              {"verb": "list", "resource": "endpointslices", "code": "200"}),
                             ("svcdns_api_list_pages_total", {"resource": "namespaces"}),
                             ("svcdns_api_response_bytes_total",
                              {"verb": "list", "resource": "services"})):
            v = t.metric(m, name, **labels)
            tally.check(v is not None and v >= 1, "metric %s%s" % (name, labels), str(v))
        waited = t.metric(m, "svcdns_api_rate_limiter_wait_seconds_sum")
        tally.check(waited is not None and waited >= 3.0,
                    "the time waited in the limiter is counted", str(waited))
        # the API server restarts, its history compacted: relists, then the
        # change made meanwhile is served
        api.stop()

        def refused():
            v = t.metric(t.scrape(http), "svcdns_api_requests_total", code="none")
            return v is not None and v >= 1
        # away until a retry got no response, which is counted as code none
        ok, _ = t.poll(refused, timeout=30, interval=0.1)
        tally.check(bool(ok), "requests that got no response are counted as code none",
                    "no such request counted in 30 s")
        with api.cond:
            api.rv += 1
        api.compact()
        api.apply(fakeapi.service("late", "lim", "10.96.7.2"))
        api.start()
        k.expect(tally, "after the restart: the change is served", srv.port,
                 "late.lim.svc.cluster.local.", "NOERROR", ["10.96.7.2"], timeout=40)
        m = t.scrape(http)
        restarts = t.metric(m, "svcdns_api_watch_restarts_total")
        tally.check(restarts is not None and restarts >= 3,
                    "every resource's watch started again", str(restarts))
    finally:
        if srv:
            tally.server_stopped(srv)
        api.stop()


def short_outage(tally):
    """An outage of a few seconds that every resource runs into grows the
    shared backoff by the rounds of failures, not by the sum of every
    resource's failed requests: with a backoff ceiling of a minute, a change
    made during a 6 s outage is served within 12 s of the server's return,
    and no retry is put off by more than 20 s (summing over the four
    resources, delays reached the ceiling's half, 30 s, within the outage)."""
    api = fakeapi.FakeAPI().start()
    srv = None
    try:
        api.apply(fakeapi.namespace("out"))
        api.apply(fakeapi.service("web", "out", "10.96.8.1"))
        srv = k.KubeServer(["--api-server", api.url],
                           ["--api-timeout", "2000", "--api-backoff-max", "60000",
                            "--pods", "verified"]).start(timeout=30)
        k.expect(tally, "outage: synced", srv.port, "web.out.svc.cluster.local.", "NOERROR",
                 ["10.96.8.1"])
        api.stop()
        time.sleep(6)  # the outage itself: the retries run into it meanwhile
        with api.cond:
            api.rv += 1
        api.apply(fakeapi.service("late", "out", "10.96.8.2"))
        back = time.monotonic()
        api.start()
        ok = k.expect(tally, "outage: the change made meanwhile is served", srv.port,
                      "late.out.svc.cluster.local.", "NOERROR", ["10.96.8.2"], timeout=12)
        if ok:
            print("# served %.1f s after the server came back" % (time.monotonic() - back))
        delays = [float(x) for x in re.findall(r"retrying in ([0-9.]+) s", srv.stderr_text())]
        print("# retry delays during the outage: %s" % delays)
        tally.check(bool(delays) and max(delays) <= 20.0,
                    "outage: no retry was put off by more than 20 s",
                    "delays %s" % delays)
    finally:
        if srv:
            tally.server_stopped(srv)
        api.stop()


def main(tally):
    rate_limited(tally)
    short_outage(tally)


if __name__ == "__main__":
    t.main_guard(t.Tally("api-limits"), main)
