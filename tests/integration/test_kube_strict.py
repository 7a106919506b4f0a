"""The API source against a fake API server as strict as kube-apiserver, for
the defects that only a real one showed:

  1. a quiet, healthy cluster (no bookmark ever comes) is never stale and never
     unready, over many multiples of --stale-after; and when the server goes
     away, staleness still starts;
  2. an EndpointSlice whose kubernetes.io/service-name label is removed belongs
     to no Service any more: its addresses go, after a 410 relist too, and a
     long-running instance answers as a fresh one does;
  3. nodePorts outside 30000-32767 (the API server's range is its own) are
     served, and a Service updated to one serves its new ports;
  4. IPv4 addresses with leading zeros (stored by the API server) are served in
     canonical form, and never hide the neighbours of an endpoint;
  5. after an outage long enough for backoffs to grow, once one resource is
     served again the others follow within 2 s."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakeapi"))
import kubetest as k  # noqa: E402
import fakeapi  # noqa: E402

import dns.edns  # noqa: E402

t = k.t
CLUSTER = os.path.join(k.KUBE_FIXTURES, "cluster")
WEB = "web.shop.svc.cluster.local."


def ede_codes(port, name=WEB):
    msg, _ = t.query(port, name, "A", edns=True, timeout=1)
    return [o.code for o in msg.options if isinstance(o, dns.edns.EDEOption)]


def test_quiet_cluster(tally):
    api = fakeapi.FakeAPI().start()  # strict: no bookmark while nothing changes
    srv = None
    try:
        api.apply_many(fakeapi.load_dir(CLUSTER))
        http = t.free_port()
        srv = k.KubeServer(["--api-server", api.url] + k.FAST,
                           args=["--http", "127.0.0.1:%d" % http, "--stale-after", "3",
                                 "--unready-after", "3", "--lameduck", "0"]).start()
        api.wait_watching()
        ok, _ = t.poll(lambda: t.http_get(http, "/ready", timeout=1)[0] == 200, timeout=5)
        tally.check(bool(ok), "/ready is 200 after the sync")
        t0 = time.monotonic()
        bad = []
        samples = 0
        # Four multiples of --stale-after with not a single change in the
        # cluster, so not a single byte on the watches. (The thresholds leave
        # room for a loaded machine: contact is proven three times each.)
        while time.monotonic() - t0 < 12.0:
            st, _, body = t.http_get(http, "/ready", timeout=1)
            codes = ede_codes(srv.port)
            samples += 1
            if st != 200 or codes:
                bad.append((round(time.monotonic() - t0, 2), st, body.strip(), codes))
            time.sleep(0.2)
        events = [r for r in api.requests_since(t0, verb="watch")]
        tally.check(not bad and samples > 30,
                    "a quiet, healthy cluster is never stale and never unready "
                    "(4 x --stale-after)", "%d of %d samples failed: %s"
                    % (len(bad), samples, bad[:5]))
        tally.check(not events, "the watches stayed open all along",
                    "%d new watches" % len(events))
        m = t.scrape(http)
        tally.check(t.metric(m, "svcdns_data_stale") == 0 and
                    t.metric(m, "svcdns_kubernetes_seconds_since_contact") < 3.0,
                    "metrics: not stale, in contact",
                    str((t.metric(m, "svcdns_data_stale"),
                         t.metric(m, "svcdns_kubernetes_seconds_since_contact"))))
        tally.check(not srv.log_has("no proof of contact"), "no staleness warning in the log")
        probes = [r for r in api.requests_since(t0, "namespaces", "list")
                  if r["query"].get("limit") == "1"]
        tally.check(len(probes) >= 4, "contact is proven by a list of one namespace",
                    "%d probes in 12 s" % len(probes))

        # The proof fails: the server is gone. Staleness starts.
        api.stop()
        t1 = time.monotonic()
        ok, _ = t.poll(lambda: ede_codes(srv.port) == [3], timeout=10, interval=0.1)
        tally.check(bool(ok), "when the server goes away, answers turn stale",
                    "after %.1f s" % (time.monotonic() - t1))
        ok, _ = t.poll(lambda: t.http_get(http, "/ready", timeout=1)[0] == 503, timeout=10)
        tally.check(bool(ok), "and /ready turns 503")
        api.start()
        ok, _ = t.poll(lambda: ede_codes(srv.port) == [], timeout=15, interval=0.1)
        tally.check(bool(ok), "fresh again once the server is back")
    finally:
        if srv:
            tally.server_stopped(srv)
        api.stop()


def headless(name, ns):
    return fakeapi.service(name, ns, "None", ports=(("tcp", 80, 80),))


def mslice(label, addrs=("10.252.0.1",)):
    s = fakeapi.slice_("mv", "lbl", label or "x", addrs, port_name="tcp", port=80)
    if label is None:
        del s["metadata"]["labels"]["kubernetes.io/service-name"]
    return s


def test_slice_label(tally):
    api = fakeapi.FakeAPI().start()
    srv = fresh = None
    try:
        api.apply(fakeapi.namespace("lbl"))
        api.apply(headless("m1", "lbl"))
        api.apply(headless("m2", "lbl"))
        api.apply(mslice("m1"))
        srv = k.KubeServer(["--api-server", api.url] + k.FAST).start()
        p = srv.port
        m1, m2 = "m1.lbl.svc.cluster.local.", "m2.lbl.svc.cluster.local."
        k.expect(tally, "the slice serves m1", p, m1, "NOERROR", ["10.252.0.1"])
        api.apply(mslice("m2"))
        k.expect(tally, "relabelled: it serves m2", p, m2, "NOERROR", ["10.252.0.1"])
        k.expect(tally, "and m1 no longer", p, m1, "NXDOMAIN", [])
        # merge-patch the label to null: a valid update, the slice belongs
        # to no Service
        api.apply(mslice(None))
        k.expect(tally, "label removed: m2 no longer has the address", p, m2, "NXDOMAIN", [])
        k.expect(tally, "its endpoint name is gone", p,
                 "10-252-0-1.m2.lbl.svc.cluster.local.", "NXDOMAIN", [])
        k.expect(tally, "its PTR is gone", p, "1.0.252.10.in-addr.arpa.", "NXDOMAIN", [],
                 qtype="PTR")
        tally.check(not srv.log_has("service-name: required"),
                    "no complaint about the missing label")
        # A 410 relist ends in the same state.
        api.compact()
        api.cut_watches()
        ok, _ = t.poll(lambda: srv.log_has("listed again"), timeout=10)
        tally.check(bool(ok), "a relist happened after 410")
        k.still(tally, "after the relist m2 still has no address", p, m2, "NXDOMAIN", [],
                 seconds=0.5)
        fresh = k.KubeServer(["--api-server", api.url] + k.FAST).start()
        names = [(m1, "A"), (m2, "A"), ("1.0.252.10.in-addr.arpa.", "PTR"),
                 ("_tcp._tcp.m2.lbl.svc.cluster.local.", "SRV")]
        diff = [(n, q, k.answer(p, n, q), k.answer(fresh.port, n, q)) for n, q in names
                if k.answer(p, n, q) != k.answer(fresh.port, n, q)]
        tally.check(not diff, "the long-running instance answers as a fresh one", str(diff))
        # and the label put back brings the addresses back
        api.apply(mslice("m1"))
        k.expect(tally, "labelled again: m1 serves it", p, m1, "NOERROR", ["10.252.0.1"])
    finally:
        for s in (srv, fresh):
            if s:
                tally.server_stopped(s)
        api.stop()


def port_view(port, name):
    r = t.run_dig(port, name, "TXT", "CH")
    return " | ".join(" ".join(strings) for strings in r.txt_strings)


def test_node_ports_and_addresses(tally):
    api = fakeapi.FakeAPI().start()
    srv = None
    try:
        api.apply(fakeapi.namespace("np"))
        wide = fakeapi.service("wide", "np", "10.96.40.1",
                               ports=(("a", 80, 8080), ("b", 81, 8081)),
                               extra_spec={"type": "NodePort"})
        wide["spec"]["ports"][0]["nodePort"] = 35000
        wide["spec"]["ports"][1]["nodePort"] = 20001
        api.apply(wide)
        moved = fakeapi.service("moved", "np", "10.96.40.2", ports=(("a", 80, 8080),),
                                extra_spec={"type": "NodePort"})
        moved["spec"]["ports"][0]["nodePort"] = 30500
        api.apply(moved)
        # leading zeros, as the API server stores them
        api.apply(fakeapi.service("zero", "np", "10.96.05.77"))
        api.apply(fakeapi.service("zh", "np", "None", ports=(("http", 80, 8080),)))
        api.apply(fakeapi.slice_("zh-1", "np", "zh", ["10.244.07.5"]))
        zs = fakeapi.slice_("zh-2", "np", "zh", ["10.244.7.6"])
        zs["endpoints"].append({"addresses": ["10.244.007.008"], "conditions": {"ready": True}})
        api.apply(zs)
        srv = k.KubeServer(["--api-server", api.url] + k.FAST).start()
        p = srv.port
        k.expect(tally, "a Service with nodePorts 35000 and 20001 is served", p,
                 "wide.np.svc.cluster.local.", "NOERROR", ["10.96.40.1"])
        view = port_view(p, "wide.np.svc.cluster.local")
        tally.check("35000" in view and "20001" in view, "its port view shows both nodePorts",
                    view)
        moved["spec"]["ports"][0]["nodePort"] = 39999
        moved["spec"]["ports"][0]["name"] = "b"
        api.apply(moved)
        k.expect(tally, "updated to nodePort 39999: its new port is served", p,
                 "_b._tcp.moved.np.svc.cluster.local.", "NOERROR",
                 ["0 100 80 moved.np.svc.cluster.local."], qtype="SRV")
        ok, _ = t.poll(lambda: "39999" in port_view(p, "moved.np.svc.cluster.local"),
                       timeout=5)
        tally.check(bool(ok), "and its port view shows 39999",
                    port_view(p, "moved.np.svc.cluster.local"))
        k.expect(tally, "clusterIP 10.96.05.77 is served as 10.96.5.77", p,
                 "zero.np.svc.cluster.local.", "NOERROR", ["10.96.5.77"])
        k.expect(tally, "endpoints with leading zeros are served with their neighbours", p,
                 "zh.np.svc.cluster.local.", "NOERROR",
                 ["10.244.7.5", "10.244.7.6", "10.244.7.8"])
        k.expect(tally, "the PTR of the canonical address", p, "77.5.96.10.in-addr.arpa.",
                 "NOERROR", ["zero.np.svc.cluster.local."], qtype="PTR")
    finally:
        if srv:
            tally.server_stopped(srv)
        api.stop()


def test_recovery(tally):
    api = fakeapi.FakeAPI().start()
    srv = None
    try:
        api.apply_many(fakeapi.load_dir(CLUSTER))
        srv = k.KubeServer(["--api-server", api.url, "--api-timeout", "2000",
                            "--api-backoff-max", "30000"]).start()
        api.wait_watching()
        api.stop()
        # Refused connections: each resource's backoff doubles from 0.5 s;
        # after 14 s the next waits are several seconds and differ.
        time.sleep(14)
        api.start()
        t0 = time.monotonic()
        ok = api.wait_watching(timeout=40)
        tally.check(ok, "every resource watches again")
        first = {}
        for r in api.requests_since(t0):
            if r.get("status") == 200 and r["resource"] not in first:
                first[r["resource"]] = r["t"] - t0
        spread = max(first.values()) - min(first.values()) if len(first) == 3 else None
        tally.check(spread is not None and spread <= 2.0,
                    "once one resource is served again, the others follow within 2 s",
                    "first answered request per resource after the restart: %s" % first)
        tally.check(srv.log_has("the API server answers again; retrying now"),
                    "the log says why the others retry at once")
    finally:
        if srv:
            tally.server_stopped(srv)
        api.stop()


def main(tally):
    test_quiet_cluster(tally)
    test_slice_label(tally)
    test_node_ports_and_addresses(tally)
    test_recovery(tally)


if __name__ == "__main__":
    t.main_guard(t.Tally("kube-strict"), main)
