"""The Multi-Cluster Services zone clusterset.local (KEP-1645's DNS
specification, schema 1.0.0), from manifests and from the fake API server:
the schema version, ClusterSetIP imports (dual-stack, SRV per named port, PTR
unless a local Service has one, no per-cluster name), headless imports (every
ready endpoint of every cluster, `<hostname>.<clusterid>.<svc>...`, SRV per
ready endpoint and named port, PTR), NXDOMAIN and NODATA with the zone's SOA,
over UDP, TCP and EDNS; then a cluster's slices removed and an import removed;
the ServiceImport resource absent from the API server (one log line, ready all
the same) and installed; --clusterset-zone on and off."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakeapi"))
import kubetest as k  # noqa: E402
import fakeapi  # noqa: E402

t = k.t
Z = "clusterset.local."
SOA = Z + " 5 IN SOA ns.dns.cluster.local. hostmaster.clusterset.local. * 7200 1800 86400 5"
MCS_API = "multicluster.x-k8s.io/v1alpha1"
VIAS = ("dnspython-udp", "dnspython-tcp", "dig-udp", "kdig-tcp")


def svc_import(name, typ, ips=(), ports=(("http", 80, "TCP"),)):
    return {"apiVersion": MCS_API, "kind": "ServiceImport",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"type": typ, "ips": list(ips),
                     "ports": [{"name": n, "port": p, "protocol": pr} for n, p, pr in ports]}}


def mc_slice(name, svc, cluster, family, eps, port=8080):
    """eps: (address, hostname or None, ready)."""
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "shop",
                         "labels": {"multicluster.kubernetes.io/service-name": svc,
                                    "multicluster.kubernetes.io/source-cluster": cluster}},
            "addressType": family,
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
            "endpoints": [dict({"addresses": [a], "conditions": {"ready": r}},
                               **({"hostname": h} if h else {})) for a, h, r in eps]}


def cluster_objects(with_b=True, with_db=True):
    objs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
        # the exported Service as this cluster has it: its PTR wins over the
        # import's for the address they share
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "pay", "namespace": "shop"},
         "spec": {"clusterIP": "10.96.50.2", "ports": [{"name": "http", "port": 80}]}},
        svc_import("web", "ClusterSetIP", ["10.42.0.1", "fd00:42::1"],
                   [("http", 80, "TCP"), ("dns", 53, "UDP"), ("", 9000, "TCP")]),
        svc_import("pay", "ClusterSetIP", ["10.96.50.2"]),
        svc_import("idle", "Headless"),
        mc_slice("idle-a", "idle", "cluster-a", "IPv4", [("10.1.9.1", "i-0", False)]),
        # a ClusterSetIP import's slices give it no names of its own
        mc_slice("web-a", "web", "cluster-a", "IPv4", [("10.1.7.1", "w-0", True)]),
    ]
    if with_db:
        objs += [svc_import("db", "Headless"),
                 mc_slice("db-a", "db", "cluster-a", "IPv4",
                          [("10.1.0.5", "db-0", True), ("10.1.0.6", "db-1", True),
                           ("10.1.0.7", "db-2", False)]),
                 mc_slice("db-a6", "db", "cluster-a", "IPv6", [("fd00:1::5", "db-0", True)])]
        if with_b:
            objs.append(mc_slice("db-b", "db", "cluster-b", "IPv4",
                                 [("10.2.0.5", "db-0", True), ("10.2.0.9", None, True)]))
    return objs


def cases():
    C = t.Case
    web, db = "web.shop.svc." + Z, "db.shop.svc." + Z
    return [
        C("dns-version." + Z, "TXT", answer=['dns-version.clusterset.local. 5 IN TXT "1.0.0"']),
        C(Z, "SOA", answer=[SOA]),
        C(Z, "NS", answer=[Z + " 5 IN NS ns.dns.cluster.local."], extra=None),
        # 2.3.1: A and AAAA of a dual-stack ClusterSetIP import
        C(web, "A", answer=[web + " 5 IN A 10.42.0.1"]),
        C(web, "AAAA", answer=[web + " 5 IN AAAA fd00:42::1"]),
        # 2.3.2: SRV per named port, target the import's name; none unnamed
        C("_http._tcp." + web, "SRV", answer=["_http._tcp." + web + " 5 IN SRV 0 100 80 " + web],
          extra=None),
        C("_dns._udp." + web, "SRV", answer=["_dns._udp." + web + " 5 IN SRV 0 100 53 " + web],
          extra=None),
        C("_http._udp." + web, "SRV", "NXDOMAIN", ns=[SOA]),
        # 2.3.3: PTR of the clusterset IPs; a local PTR is kept
        C("1.0.42.10.in-addr.arpa.", "PTR", answer=["1.0.42.10.in-addr.arpa. 5 IN PTR " + web]),
        C(t.rev("fd00:42::1"), "PTR", answer=[t.rev("fd00:42::1") + " 5 IN PTR " + web]),
        C("2.50.96.10.in-addr.arpa.", "PTR",
          answer=["2.50.96.10.in-addr.arpa. 5 IN PTR pay.shop.svc.cluster.local."]),
        C("pay.shop.svc." + Z, "A", answer=["pay.shop.svc." + Z + " 5 IN A 10.96.50.2"]),
        # 2.3.4: no name per cluster for a ClusterSetIP import
        C("cluster-a.web.shop.svc." + Z, "A", "NXDOMAIN", ns=[SOA]),
        C("w-0.cluster-a.web.shop.svc." + Z, "A", "NXDOMAIN", ns=[SOA]),
        # 2.4.1: every ready endpoint of every cluster
        C(db, "A", answer=[db + " 5 IN A 10.1.0.5", db + " 5 IN A 10.1.0.6",
                           db + " 5 IN A 10.2.0.5", db + " 5 IN A 10.2.0.9"]),
        C(db, "AAAA", answer=[db + " 5 IN AAAA fd00:1::5"]),
        C("db-0.cluster-a." + db, "A", answer=["db-0.cluster-a." + db + " 5 IN A 10.1.0.5"]),
        C("db-0.cluster-a." + db, "AAAA",
          answer=["db-0.cluster-a." + db + " 5 IN AAAA fd00:1::5"]),
        C("db-0.cluster-b." + db, "A", answer=["db-0.cluster-b." + db + " 5 IN A 10.2.0.5"]),
        # no hostname: the system-assigned one, the dashed address
        C("10-2-0-9.cluster-b." + db, "A", answer=["10-2-0-9.cluster-b." + db + " 5 IN A 10.2.0.9"]),
        C("db-2.cluster-a." + db, "A", "NXDOMAIN", ns=[SOA], note="not ready"),
        # 2.4.2: an SRV per ready endpoint and named port, the endpoint's port
        C("_http._tcp." + db, "SRV", extra=None, answer=[
            "_http._tcp." + db + " 5 IN SRV 0 * 8080 db-0.cluster-a." + db,
            "_http._tcp." + db + " 5 IN SRV 0 * 8080 db-1.cluster-a." + db,
            "_http._tcp." + db + " 5 IN SRV 0 * 8080 db-0.cluster-b." + db,
            "_http._tcp." + db + " 5 IN SRV 0 * 8080 10-2-0-9.cluster-b." + db]),
        # 2.4.3: PTR of a ready endpoint
        C("5.0.1.10.in-addr.arpa.", "PTR",
          answer=["5.0.1.10.in-addr.arpa. 5 IN PTR db-0.cluster-a." + db]),
        C(t.rev("fd00:1::5"), "PTR", answer=[t.rev("fd00:1::5") + " 5 IN PTR db-0.cluster-a." + db]),
        C("7.0.1.10.in-addr.arpa.", "PTR", "NXDOMAIN", ns=None, note="not ready"),
        # 2.4.4: no record for a cluster alone (an empty non-terminal: NODATA)
        C("cluster-a." + db, "A", ns=[SOA]),
        # a headless import with no ready endpoint: NXDOMAIN
        C("idle.shop.svc." + Z, "A", "NXDOMAIN", ns=[SOA]),
        # NODATA and NXDOMAIN carry the zone's SOA, as the cluster zone's do
        C(web, "TXT", ns=[SOA]),
        C(db, "MX", ns=[SOA]),
        C("shop.svc." + Z, "A", ns=[SOA]),
        C("svc." + Z, "A", ns=[SOA]),
        C("nope.shop.svc." + Z, "A", "NXDOMAIN", ns=[SOA]),
        C("nope." + Z, "AAAA", "NXDOMAIN", ns=[SOA]),
        C("WEB.Shop.SVC.ClusterSet.Local.", "A", answer=["WEB.Shop.SVC.ClusterSet.Local. 5 IN A 10.42.0.1"]),
    ]


def write(d, objs):
    t.write_atomic(os.path.join(d, "mcs.json"),
                   json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))


def changes(tally, port, apply_objs, where):
    """A cluster's slices removed, then the headless import removed."""
    db = "db.shop.svc." + Z
    apply_objs(cluster_objects(with_b=False))
    k.expect(tally, where + ": cluster-b's slices removed: its endpoints leave the A set", port,
             db, "NOERROR", ["10.1.0.5", "10.1.0.6"])
    k.expect(tally, where + ": and its names are NXDOMAIN", port, "db-0.cluster-b." + db,
             "NXDOMAIN", [])
    k.expect(tally, where + ": and its PTR", port, "5.0.2.10.in-addr.arpa.", "NXDOMAIN", [],
             qtype="PTR")
    k.expect(tally, where + ": cluster-a's names stay", port, "db-0.cluster-a." + db, "NOERROR",
             ["10.1.0.5"])
    apply_objs(cluster_objects(with_b=False, with_db=False))
    k.expect(tally, where + ": the ServiceImport removed: NXDOMAIN", port, db, "NXDOMAIN", [])
    k.expect(tally, where + ": its endpoints' names too", port, "db-0.cluster-a." + db,
             "NXDOMAIN", [])
    k.expect(tally, where + ": its SRV too", port, "_http._tcp." + db, "NXDOMAIN", [],
             qtype="SRV")
    k.expect(tally, where + ": the other imports stay", port, "web.shop.svc." + Z, "NOERROR",
             ["10.42.0.1"])


def views(tally, port, hp):
    """The CHAOS port view and /debug/model show imports with their clusters."""
    r = t.run_dnspython(port, "db.shop.svc." + Z, "TXT", "CH")
    text = " ".join(r.answer)
    for want in ("http 80/TCP imported Headless endpoints=5/6", "ready: cluster-a/10.1.0.5:8080",
                 "cluster-b/10.2.0.5:8080", "cluster-a/[fd00:1::5]:8080",
                 "not-ready: cluster-a/10.1.0.7:8080"):
        tally.check(want in text, "CHAOS port view of an import: " + want, text)
    r = t.run_dnspython(port, "web.shop.svc." + Z, "TXT", "CH")
    tally.check(any("imported ClusterSetIP" in a for a in r.answer),
                "CHAOS port view of a ClusterSetIP import", str(r.answer))
    code, _, body = t.http_get(hp, "/debug/model")
    model = json.loads(body) if code == 200 else {}
    imps = {i["name"]: i for i in model.get("serviceImports", [])}
    tally.check(sorted(imps) == ["db", "idle", "pay", "web"], "/debug/model lists the imports",
                str(sorted(imps)))
    clusters = sorted({e.get("cluster") for e in imps.get("db", {}).get("endpoints", [])})
    tally.check(clusters == ["cluster-a", "cluster-b"], "/debug/model: an import's clusters",
                str(clusters))
    tally.check(imps.get("web", {}).get("clusterIPs") == ["10.42.0.1", "fd00:42::1"],
                "/debug/model: the clusterset IPs", str(imps.get("web")))
    m = t.scrape(hp)
    got = (t.metric(m, "svcdns_model_service_imports", type="ClusterSetIP"),
           t.metric(m, "svcdns_model_service_imports", type="Headless"),
           t.metric(m, "svcdns_model_service_import_endpoints"))
    tally.check(got == (2, 2, 8), "/metrics counts the imports and their endpoints", str(got))


def from_manifests(tally):
    d = t.mkdtemp()
    write(d, cluster_objects())
    hp = t.free_port()
    srv = t.Server(d, ["--http", "127.0.0.1:%d" % hp]).start()
    off = t.Server(d, ["--clusterset-zone", "off"]).start()
    try:
        t.run_table(tally, srv.port, cases(), VIAS)
        views(tally, srv.port, hp)
        t.run_table(tally, off.port, [
            t.Case("web.shop.svc." + Z, "A", "REFUSED", aa=None, note="--clusterset-zone off")],
            ("dnspython-udp",))
        # the local cluster zone is untouched by the imports
        k.expect(tally, "manifests: the local Service keeps its name", srv.port,
                 "pay.shop.svc.cluster.local.", "NOERROR", ["10.96.50.2"])
        k.expect(tally, "manifests: an import adds no local name", srv.port,
                 "web.shop.svc.cluster.local.", "NXDOMAIN", [])
        changes(tally, srv.port, lambda objs: write(d, objs), "manifests")
    finally:
        tally.server_stopped(srv)
        tally.server_stopped(off)


def from_api(tally):
    # A server without the CRD: one log line, synced all the same, and the
    # zone is not served in auto mode (names go upstream, here REFUSED).
    api = fakeapi.FakeAPI().start()
    srv = on = None
    try:
        api.apply(fakeapi.namespace("shop"))
        hp = t.free_port()
        srv = k.KubeServer(["--api-server", api.url] + k.FAST,
                           ["--http", "127.0.0.1:%d" % hp]).start()
        on = k.KubeServer(["--api-server", api.url, "--clusterset-zone", "on"] + k.FAST).start()
        tally.check(srv.log_has("has no multicluster.x-k8s.io/v1alpha1"),
                    "api without the CRD: one log line", srv.stderr_tail())
        tally.check(srv.stderr_text().count("has no multicluster") == 1,
                    "api without the CRD: only one", srv.stderr_tail())
        ok, _ = t.poll(lambda: t.http_get(hp, "/ready")[0] == 200, timeout=10)
        tally.check(ok, "api without the CRD: ready", str(t.http_get(hp, "/ready")))
        ok, _ = t.poll(lambda: "stale" not in t.http_get(hp, "/health")[2], timeout=10)
        tally.check(t.http_get(hp, "/health")[0] == 200, "api without the CRD: healthy",
                    str(t.http_get(hp, "/health")))
        t.run_table(tally, srv.port, [t.Case("dns-version." + Z, "TXT", "REFUSED", aa=None)],
                    ("dnspython-udp",))
        t.run_table(tally, on.port, [t.Case("dns-version." + Z, "TXT", answer=[
            'dns-version.clusterset.local. 5 IN TXT "1.0.0"'])], ("dnspython-udp",))
        # the CRD installed later: found again (silently), the zone served
        # before any import exists, then the first import
        api.install_crd("serviceimports")
        k.expect(tally, "api: the CRD installed later: the zone is served", srv.port,
                 "dns-version." + Z, "NOERROR", ['"1.0.0"'], qtype="TXT")
        api.apply(svc_import("web", "ClusterSetIP", ["10.42.0.1"]))
        k.expect(tally, "api: then the first import", srv.port, "web.shop.svc." + Z, "NOERROR",
                 ["10.42.0.1"])
        tally.check(srv.stderr_text().count("has no multicluster") == 1,
                    "api: the absence was logged once in all", srv.stderr_tail())
    finally:
        for s in (srv, on):
            if s:
                tally.server_stopped(s)
        api.stop()

    # The CRD installed, but the ClusterRole does not grant it: one warning,
    # synced all the same, the zone not served in auto mode.
    api = fakeapi.FakeAPI(crds=("serviceimports",)).start()
    api.forbidden.add("serviceimports")
    srv = None
    try:
        api.apply(fakeapi.namespace("shop"))
        srv = k.KubeServer(["--api-server", api.url] + k.FAST).start()
        tally.check(srv.stderr_text().count("api serviceimports: forbidden") == 1,
                    "api, serviceimports forbidden: one warning", srv.stderr_tail())
        t.run_table(tally, srv.port, [t.Case("dns-version." + Z, "TXT", "REFUSED", aa=None,
                                             note="serviceimports forbidden")],
                    ("dnspython-udp",))
    finally:
        if srv:
            tally.server_stopped(srv)
        api.stop()

    api = fakeapi.FakeAPI(crds=("serviceimports",)).start()
    srv = None
    try:
        for o in cluster_objects():
            api.apply(o)
        srv = k.KubeServer(["--api-server", api.url] + k.FAST).start()
        tally.check(not srv.log_has("has no multicluster"), "api with the CRD: no absence logged",
                    srv.stderr_tail())
        k.expect(tally, "api: the imports are served", srv.port, "db.shop.svc." + Z, "NOERROR",
                 ["10.1.0.5", "10.1.0.6", "10.2.0.5", "10.2.0.9"])
        t.run_table(tally, srv.port, cases(), ("dnspython-udp", "kdig-tcp"))

        def apply_objs(objs):
            keep = {(o["kind"], o["metadata"]["name"]) for o in objs}
            for o in cluster_objects():
                if (o["kind"], o["metadata"]["name"]) not in keep:
                    api.delete(o["kind"], o["metadata"].get("namespace", ""),
                               o["metadata"]["name"])
        changes(tally, srv.port, apply_objs, "api")
        # the CRD deleted: its objects go, its watch ends and finds it absent;
        # the zone stays served (auto mode does not go back)
        api.remove_crd("serviceimports")
        k.expect(tally, "api: the CRD deleted: its imports are NXDOMAIN", srv.port,
                 "web.shop.svc." + Z, "NXDOMAIN", [])
        tally.check(srv.wait_log("has no multicluster"), "api: the CRD deleted: logged",
                    srv.stderr_tail())
        k.expect(tally, "api: the CRD deleted: the zone is still served", srv.port,
                 "dns-version." + Z, "NOERROR", ['"1.0.0"'], qtype="TXT")
        k.expect(tally, "api: the CRD deleted: the rest is served", srv.port,
                 "pay.shop.svc.cluster.local.", "NOERROR", ["10.96.50.2"])
    finally:
        if srv:
            tally.server_stopped(srv)
        api.stop()


def main(tally):
    from_manifests(tally)
    from_api(tally)


if __name__ == "__main__":
    t.main_guard(t.Tally("clusterset"), main)
