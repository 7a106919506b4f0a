"""An answer that does not fit in 64 KiB is reported once per change, naming
the name and what was trimmed: glue cut from the additional section (the
answer itself complete, which DNS allows) is information, a cut answer is a
warning; a full build (after a reload) does not repeat the report."""

import json
import os
import re

import svcdns_testlib as t

NAME = "big.trim.svc.cluster.local."


def write_big(d, n):
    """A headless Service with a named port and n endpoints, in slices of
    1000 (the API's limit)."""
    objs = [{"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": "big", "namespace": "trim"},
             "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}}]
    for k in range(0, n, 1000):
        objs.append({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "big-%d" % k, "namespace": "trim",
                         "labels": {"kubernetes.io/service-name": "big"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.250.%d.%d" % (i // 250, i % 250 + 1)]}
                          for i in range(k, min(n, k + 1000))]})
    t.write_atomic(os.path.join(d, "big.json"),
                   json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))


def reports(srv):
    return [ln for ln in srv.stderr_text().splitlines() if "fit in 64 KiB" in ln]


def main(tally):
    d = t.mkdtemp()
    cluster = os.path.join(d, "cluster")
    os.mkdir(cluster)
    conf = os.path.join(d, "svcdns.conf")
    t.write_file(conf, "ttl 5\n")
    write_big(cluster, 1000)
    srv = t.Server(cluster, ["--config", conf, "--lameduck", "0"]).start()
    try:
        r = t.run_dig(srv.port, "_http._tcp." + NAME, "SRV", opts=("+tcp",))
        tally.check(len(r.answer) == 1000, "the SRV answer holds all 1000 records",
                    "%d" % len(r.answer))
        ok, _ = t.poll(lambda: reports(srv), timeout=5)
        # (the Service name's own SRV answer lists the same records)
        lines = [ln for ln in reports(srv) if "_http._tcp." + NAME in ln]
        tally.check(len(lines) == 1 and
                    "additional" in lines[0] and "complete" in lines[0] and
                    "holds only" in lines[0] and "its 1000 targets" in lines[0] and "warn" not in lines[0].lower(),
                    "one line names the SRV name and says only glue was left out",
                    "\n".join(lines))
        # A full build renders every name again: no new report.
        mark = len(srv.stderr_text())
        t.write_atomic(conf, "ttl 6\n")
        ok, _ = t.poll(lambda: re.search(r"reload .*applied.*ttl=6", srv.stderr_text()[mark:]),
                       timeout=10)
        tally.check(bool(ok), "a reload rebuilt the zones in full")
        ok, _ = t.poll(lambda: t.run_dig(srv.port, NAME, "A").answer and
                       t.run_dig(srv.port, NAME, "A").answer[0].split()[1] == "6", timeout=5)
        n_reports = len(reports(srv))
        tally.check(n_reports == 2, "the full build does not repeat the report",
                    "\n".join(reports(srv)))
        # A change of the Service is reported again.
        write_big(cluster, 1050)
        ok, _ = t.poll(lambda: len(reports(srv)) == n_reports + 2, timeout=10)
        tally.check(bool(ok) and "its 1050 targets" in reports(srv)[-1],
                    "a change of what is trimmed is reported again", "\n".join(reports(srv)))
        # An SRV answer of 1200 endpoints does not fit: a warning.
        write_big(cluster, 1200)
        ok, _ = t.poll(lambda: any("answer section holds" in ln for ln in reports(srv)),
                       timeout=10)
        ln = [x for x in reports(srv) if "answer section holds" in x]
        tally.check(bool(ok) and NAME in ln[0] and "of 1200" in ln[0] and "[warn]" in ln[0],
                    "an answer cut short is a warning naming the name", "\n".join(reports(srv)))
    finally:
        tally.server_stopped(srv)


if __name__ == "__main__":
    t.main_guard(t.Tally("trim-log"), main)
