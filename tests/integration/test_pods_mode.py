"""--pods disabled|insecure|verified, as CoreDNS's `pods`: names
<a-b-c-d>.<ns>.pod.<zone>. insecure (the default) answers any well-formed
name with its address; disabled answers NXDOMAIN; verified answers only the
address of a Pod of that namespace that is not Succeeded or Failed and has an
address, from the manifests' Pods and from a Pod watch of the API (listed in
pages, watched, resumed, relisted after 410), and follows Pods that come, go
or finish without a restart. The record's TTL is --ttl, as CoreDNS's ttl.
Without verified, svcdns never asks the API server for Pods."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakeapi"))
import fakeapi  # noqa: E402
import kubetest as k  # noqa: E402

t = k.t
Z = "pod.cluster.local."


def pod(name, ns, ips=(), phase="Running"):
    status = {"phase": phase}
    if ips:
        status["podIP"] = ips[0]
        status["podIPs"] = [{"ip": ip} for ip in ips]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"containers": [{"name": "c", "image": "registry.example/c:1"}]},
            "status": status}


def dashed(ip):
    return ip.replace(".", "-").replace(":", "-")


def pname(ip, ns):
    return "%s.%s.%s" % (dashed(ip), ns, Z)


PODS = [pod("web-0", "shop", ["10.244.5.5", "fd00::5"]),
        pod("done-0", "shop", ["10.244.5.6"], phase="Succeeded"),
        pod("crash-0", "shop", ["10.244.5.7"], phase="Failed"),
        pod("new-0", "shop", [], phase="Pending"),
        pod("api-0", "back", ["10.244.6.1"])]


def yes(tally, label, port, ip, ns, qtype="A"):
    k.expect(tally, label, port, pname(ip, ns), "NOERROR", [ip], qtype=qtype)


def nx(tally, label, port, name, qtype="A"):
    k.expect(tally, label, port, name, "NXDOMAIN", [], qtype=qtype)


def check_verified(tally, where, port):
    yes(tally, where + ": a running Pod's address", port, "10.244.5.5", "shop")
    yes(tally, where + ": its IPv6 address", port, "fd00::5", "shop", qtype="AAAA")
    yes(tally, where + ": a Pod of another namespace", port, "10.244.6.1", "back")
    k.expect(tally, where + ": the other family of a Pod's name: NODATA", port,
             pname("10.244.5.5", "shop"), "NOERROR", [], qtype="AAAA")
    nx(tally, where + ": a Succeeded Pod does not count", port, pname("10.244.5.6", "shop"))
    nx(tally, where + ": a Failed Pod does not count", port, pname("10.244.5.7", "shop"))
    nx(tally, where + ": an address no Pod has", port, pname("10.244.5.99", "shop"))
    nx(tally, where + ": a Pod's address in another namespace", port,
       pname("10.244.5.5", "back"))
    nx(tally, where + ": a namespace that does not exist", port,
       pname("10.244.5.5", "nosuch"))
    k.expect(tally, where + ": <ns>.pod of a namespace that exists: NODATA", port,
             "shop." + Z, "NOERROR", [])
    nx(tally, where + ": <ns>.pod of one that does not", port, "nosuch." + Z)
    # CoreDNS no longer serves wildcard queries: '*' is a name like another
    nx(tally, where + ": a wildcard Pod name", port, "*.shop." + Z)
    nx(tally, where + ": a wildcard namespace", port, "%s.*.%s" % (dashed("10.244.5.5"), Z))
    nx(tally, where + ": 'any' as the namespace", port, "%s.any.%s" % (dashed("10.244.5.5"), Z))


def ttl_of(port, name, qtype="A"):
    r = t.run_dnspython(port, name, qtype)
    return [int(a.split()[1]) for a in r.answer]


def write(d, pods):
    t.write_atomic(os.path.join(d, "pods.json"),
                   json.dumps({"apiVersion": "v1", "kind": "List", "items": pods}))


def from_manifests(tally):
    d = t.mkdtemp()
    pods = list(PODS)
    write(d, pods)
    ver = t.Server(d, ["--pods", "verified", "--ttl", "7"]).start()
    ins = t.Server(d, ["--ttl", "7"]).start()
    dis = t.Server(d, ["--pods", "disabled"]).start()
    try:
        check_verified(tally, "manifests verified", ver.port)
        tally.check(ttl_of(ver.port, pname("10.244.5.5", "shop")) == [7],
                    "manifests verified: the record's TTL is --ttl",
                    str(ttl_of(ver.port, pname("10.244.5.5", "shop"))))
        # insecure: any well-formed name, as before
        for ip, ns in (("10.244.5.6", "shop"), ("10.244.5.99", "shop"), ("1.2.3.4", "nosuch")):
            yes(tally, "manifests insecure: %s in %s answers" % (ip, ns), ins.port, ip, ns)
        tally.check(ttl_of(ins.port, pname("1.2.3.4", "nosuch")) == [7],
                    "manifests insecure: the record's TTL is --ttl")
        nx(tally, "manifests insecure: a name that is no address", ins.port, "web-0.shop." + Z)
        nx(tally, "manifests insecure: a wildcard Pod name", ins.port, "*.shop." + Z)
        # disabled: nothing under pod.<zone>
        for name in (pname("10.244.5.5", "shop"), pname("1.2.3.4", "nosuch"), "shop." + Z):
            nx(tally, "manifests disabled: %s" % name, dis.port, name)
        k.expect(tally, "manifests disabled: Services still answer", dis.port,
                 "dns-version.cluster.local.", "NOERROR", ['"1.1.0"'], qtype="TXT")

        # changes at run time
        pods = [p for p in pods if p["metadata"]["name"] != "web-0"]
        write(d, pods)
        nx(tally, "manifests verified: the Pod is deleted: NXDOMAIN", ver.port,
           pname("10.244.5.5", "shop"))
        nx(tally, "manifests verified: its IPv6 address too", ver.port, pname("fd00::5", "shop"),
           qtype="AAAA")
        pods = [p for p in pods if p["metadata"]["name"] != "new-0"]
        pods.append(pod("new-0", "shop", ["10.244.5.8"]))
        write(d, pods)
        yes(tally, "manifests verified: a pending Pod gets its address", ver.port,
            "10.244.5.8", "shop")
        pods = [p for p in pods if p["metadata"]["name"] != "api-0"]
        pods.append(pod("api-0", "back", ["10.244.6.1"], phase="Failed"))
        write(d, pods)
        nx(tally, "manifests verified: a Pod that failed goes", ver.port,
           pname("10.244.6.1", "back"))
    finally:
        for s in (ver, ins, dis):
            tally.server_stopped(s)


def from_api(tally):
    api = fakeapi.FakeAPI().start()
    srv = plain = None
    try:
        api.apply(fakeapi.namespace("shop"))
        api.apply(fakeapi.namespace("back"))
        for p in PODS:
            api.apply(p)
        for i in range(30):  # more than a page
            api.apply(pod("filler-%d" % i, "back", ["10.244.7.%d" % (i + 1)]))
        t0 = api.requests_since(0)[-1]["t"] if api.requests_since(0) else 0
        plain = k.KubeServer(["--api-server", api.url] + k.FAST).start()
        api.wait_watching()
        tally.check(not [r for r in api.requests_since(t0) if r["resource"] == "pods"],
                    "api insecure: the Pods are never asked for")
        srv = k.KubeServer(["--api-server", api.url, "--api-page-size", "7"] + k.FAST,
                           ["--pods", "verified", "--ttl", "9"]).start()
        api.wait_watching(("services", "endpointslices", "namespaces", "pods"))
        lists = [r for r in api.requests_since(t0, "pods", "list")]
        watches = [r for r in api.requests_since(t0, "pods", "watch")]
        tally.check(len(lists) >= 5 and all(r["query"].get("limit") == "7" for r in lists) and
                    any(r["query"].get("continue") for r in lists),
                    "api verified: the Pods are listed in pages (limit, continue)",
                    str([r["query"] for r in lists][:3]))
        tally.check(watches and all(r["query"].get("resourceVersion") for r in watches),
                    "api verified: then watched from the list's resourceVersion",
                    str([r["query"] for r in watches]))
        check_verified(tally, "api verified", srv.port)
        yes(tally, "api verified: a Pod from the last page", srv.port, "10.244.7.30", "back")
        tally.check(ttl_of(srv.port, pname("10.244.5.5", "shop")) == [9],
                    "api verified: the record's TTL is --ttl")
        # watch events
        api.delete("Pod", "shop", "web-0")
        nx(tally, "api verified: the Pod is deleted: NXDOMAIN", srv.port,
           pname("10.244.5.5", "shop"))
        api.apply(pod("new-0", "shop", ["10.244.5.8"]))
        yes(tally, "api verified: a pending Pod gets its address", srv.port, "10.244.5.8", "shop")
        api.apply(pod("new-0", "shop", ["10.244.5.8"], phase="Succeeded"))
        nx(tally, "api verified: the Pod succeeds: it goes", srv.port,
           pname("10.244.5.8", "shop"))
        # history compacted and the watch dropped: a relist catches up
        api.compact()
        api.delete("Pod", "back", "filler-0")
        api.apply(pod("late-0", "back", ["10.244.8.1"]))
        api.cut_watches()
        nx(tally, "api verified: a deletion seen through a relist after 410", srv.port,
           pname("10.244.7.1", "back"))
        yes(tally, "api verified: an addition seen through that relist", srv.port,
            "10.244.8.1", "back")
        yes(tally, "api insecure: answers any address", plain.port, "10.244.5.99", "shop")
    finally:
        for s in (srv, plain):
            if s:
                tally.server_stopped(s)
        api.stop()


def main(tally):
    from_manifests(tally)
    from_api(tally)


if __name__ == "__main__":
    t.main_guard(t.Tally("pods-mode"), main)
