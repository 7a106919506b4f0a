"""Freshness against the fake Kubernetes API server: /ready fails with the
reason until the first full sync and succeeds after it; when the API server
goes away, cluster answers keep coming but carry Extended DNS Error 3 (Stale
Answer) for EDNS clients after --stale-after, /ready fails after
--unready-after, CH TXT generation.<zone> and the metrics say so; when the API
server is back, all of it clears."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakeapi"))
import kubetest as k  # noqa: E402
import fakeapi  # noqa: E402

import dns.edns  # noqa: E402

t = k.t
CLUSTER = os.path.join(k.KUBE_FIXTURES, "cluster")
WEB = "web.shop.svc.cluster.local."


def ede_codes(port, name=WEB, edns=True):
    """(rcode, answer count, EDE info-codes, has OPT) of a dnspython query."""
    msg, _ = t.query(port, name, "A", edns=edns, timeout=1)
    codes = [o.code for o in msg.options if isinstance(o, dns.edns.EDEOption)]
    return msg.rcode(), len(msg.answer), codes, msg.edns >= 0


def generation(port):
    r = t.run_dig(port, "generation.cluster.local", "TXT", "CH")
    return dict(s.split("=", 1) for s in (r.txt_strings[0] if r.txt_strings else []))


def main(tally):
    api = fakeapi.FakeAPI().start()
    srv = None
    try:
        api.apply_many(fakeapi.load_dir(CLUSTER))
        # The first list of EndpointSlices hangs until --api-timeout: the
        # sync waits, and /ready says why.
        api.fault("endpointslices", "list", "hang", count=1)
        http = t.free_port()
        srv = k.KubeServer(["--api-server", api.url] + k.FAST,
                           args=["--http", "127.0.0.1:%d" % http, "--stale-after", "2",
                                 "--unready-after", "4", "--lameduck", "0"])
        srv.start(wait=False)
        seen = []

        def unready():
            st, _, body = t.http_get(http, "/ready", timeout=1)
            seen.append((st, body))
            return st == 503 and "first full sync" in body
        ok, _ = t.poll(unready, timeout=5, interval=0.05)
        tally.check(bool(ok), "/ready is 503 with the reason before the first sync",
                    str(seen[-3:]))
        tally.check(srv.rcode() == "SERVFAIL", "the cluster zone answers SERVFAIL meanwhile")
        srv.wait_synced()
        ok, _ = t.poll(lambda: t.http_get(http, "/ready", timeout=1)[0] == 200, timeout=3)
        tally.check(bool(ok), "/ready is 200 after the sync", str(t.http_get(http, "/ready")))
        rc, n, codes, _ = ede_codes(srv.port)
        tally.check(rc == 0 and n == 1 and codes == [], "fresh answers carry no EDE",
                    "%s %s %s" % (rc, n, codes))
        m = t.scrape(http)
        tally.check(t.metric(m, "svcdns_kubernetes_synced") == 1 and
                    t.metric(m, "svcdns_data_stale") == 0 and
                    0 <= t.metric(m, "svcdns_kubernetes_seconds_since_contact") < 2 and
                    t.metric(m, "svcdns_kubernetes_watch_events_total",
                             resource="services") is not None,
                    "Kubernetes metrics: synced, in contact, fresh")
        gen = generation(srv.port)
        tally.check(gen.get("source") == "kubernetes" and gen.get("stale") == "no",
                    "generation.cluster.local: source kubernetes, not stale", str(gen))

        # the API server goes away
        api.stop()
        t0 = time.monotonic()
        # what freshness is built on: the source's own "last heard" clock
        ok, _ = t.poll(lambda: t.metric(t.scrape(http),
                                        "svcdns_kubernetes_seconds_since_contact") >= 2.5,
                       timeout=6, interval=0.2)
        tally.check(bool(ok), "kube_source_seconds_since_contact() grows while the API is gone",
                    "still %s s after %.1f s: refused connections must not count as contact"
                    % (t.metric(t.scrape(http), "svcdns_kubernetes_seconds_since_contact"),
                       time.monotonic() - t0))
        ok, dt = t.poll(lambda: ede_codes(srv.port)[2] == [3], timeout=10, interval=0.1)
        tally.check(bool(ok) and time.monotonic() - t0 > 1.5,
                    "after --stale-after 2 s, EDE 3 (Stale Answer)",
                    "after %.1f s: %s" % (time.monotonic() - t0, ede_codes(srv.port)))
        rc, n, codes, _ = ede_codes(srv.port)
        tally.check(rc == 0 and n == 1, "the stale answer is still the answer", str((rc, n)))
        rc, n, codes, has_opt = ede_codes(srv.port, edns=False)
        tally.check(rc == 0 and n == 1 and not has_opt and codes == [],
                    "no EDE to a client without EDNS")
        rc, n, codes, _ = ede_codes(srv.port, "nothere.shop.svc.cluster.local.")
        tally.check(rc == 3 and codes == [3], "NXDOMAIN from stale data carries EDE 3 too")
        p = subprocess.run(t.dig_cmd(srv.port, WEB, "A"), capture_output=True, text=True,
                           timeout=10)
        tally.check("EDE: 3 (Stale Answer)" in p.stdout and "10.96.10.10" in p.stdout,
                    "dig shows the Stale Answer EDE", p.stdout[-600:])
        gen = generation(srv.port)
        tally.check(gen.get("stale") == "yes" and
                    float(gen.get("source-age", "0s").rstrip("s")) >= 2,
                    "generation.cluster.local says stale, with the age", str(gen))
        m = t.scrape(http)
        tally.check(t.metric(m, "svcdns_data_stale") == 1 and
                    t.metric(m, "svcdns_data_source_age_seconds") >= 2 and
                    (t.metric(m, "svcdns_dns_stale_answers_total", zone="cluster.local.") or 0)
                    >= 3, "metrics: stale, its age, stale answers counted")
        ok, dt = t.poll(lambda: t.http_get(http, "/ready", timeout=1)[0] == 503, timeout=8)
        body = t.http_get(http, "/ready")[2]
        tally.check(bool(ok) and time.monotonic() - t0 > 3 and "no news" in body,
                    "/ready is 503 after --unready-after 4 s", "%.1f s: %r"
                    % (time.monotonic() - t0, body))

        # the API server is back: fresh and ready again
        api.start()
        ok, dt = t.poll(lambda: ede_codes(srv.port)[2] == [], timeout=15, interval=0.1)
        tally.check(bool(ok), "EDE 3 goes away once the API answers again",
                    "after %.1f s" % dt)
        ok, _ = t.poll(lambda: t.http_get(http, "/ready", timeout=1)[0] == 200, timeout=5)
        tally.check(bool(ok), "/ready is 200 again")
        tally.check(srv.wait_log("the Kubernetes API answers again"),
                    "the log says the data is fresh again")
    finally:
        if srv:
            tally.server_stopped(srv)
        api.stop()


if __name__ == "__main__":
    t.main_guard(t.Tally("ops-stale"), main)
