"""The HTTP endpoint's /metrics and /debug/model, read with urllib after known
traffic from dnspython: exact request and response counts per zone, type,
protocol and rcode, sizes and durations, the CoreDNS names with
--metrics-compat coredns, snapshot and model metrics that follow a manifest
edit, forwarder and cache counters against a fake upstream, the query log,
and the HTTP server's limits (unknown paths, methods, oversized and slow
requests, too many connections)."""

import json
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_upstream as fu  # noqa: E402
import svcdns_testlib as t  # noqa: E402

OPS = os.path.join(t.FIXTURES, "ops")


def start(args=(), manifests=None):
    http = t.free_port()
    # no lameduck: these tests do not look at shutdown (test_ops.py does)
    srv = t.Server(manifests or os.path.join(OPS, "cluster"),
                   ["--http", "127.0.0.1:%d" % http, "--lameduck", "0"] + list(args)).start()
    srv.http = http
    return srv


def delta(before, after, name, **labels):
    a = t.metric(after, name, **labels) or 0
    b = t.metric(before, name, **labels) or 0
    return a - b


def well_formed(parsed):
    """Every sample belongs to a declared family; histograms are cumulative
    and end with +Inf equal to _count."""
    problems = []
    fams = parsed["types"]
    hist = {}
    for name, labels, v in parsed["samples"]:
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if name not in fams and not (base in fams and fams[base] == "histogram"):
            problems.append("sample %s has no # TYPE" % name)
        if base in fams and fams[base] == "histogram":
            key = (base, tuple(sorted((k, w) for k, w in labels.items() if k != "le")))
            h = hist.setdefault(key, {"buckets": [], "count": None})
            if name.endswith("_bucket"):
                h["buckets"].append((labels["le"], v))
            elif name.endswith("_count"):
                h["count"] = v
    for key, h in hist.items():
        vals = [v for _, v in h["buckets"]]
        if vals != sorted(vals):
            problems.append("%s buckets not cumulative: %s" % (key, vals))
        if not h["buckets"] or h["buckets"][-1][0] != "+Inf" or h["buckets"][-1][1] != h["count"]:
            problems.append("%s: +Inf bucket %s, count %s" % (key, h["buckets"][-1:], h["count"]))
    return problems


def test_counts(tally):
    srv = start(["--metrics-compat", "coredns", "--threads", "2", "--log-queries"])
    try:
        status, headers, body = t.http_get(srv.http, "/metrics")
        tally.check(status == 200 and headers.get("content-type", "").startswith(
            "text/plain; version=0.0.4"), "/metrics is Prometheus text",
            "%s %s" % (status, headers.get("content-type")))
        before = t.parse_metrics(body)
        sizes = {"udp-req": 0, "udp-resp": 0, "tcp-req": 0, "tcp-resp": 0}

        def ask(name, qtype, tcp=False, want="NOERROR"):
            q = t.make_query(name, qtype, edns=not tcp)
            if tcp:
                wire = t.tcp_exchange(srv.port, [q.to_wire()])[0]
            else:
                wire = t.udp_exchange(srv.port, q.to_wire(), want_id=q.id)
            r = t.parse(wire)
            if dns.rcode.to_text(r.rcode()) != want:
                raise AssertionError("%s %s: %s, want %s" % (name, qtype,
                                                             dns.rcode.to_text(r.rcode()), want))
            return len(q.to_wire()), len(wire)

        import dns.rcode  # noqa: F401  (used in ask)
        for _ in range(7):
            a, b = ask("web.shop.svc.cluster.local.", "A")
            sizes["udp-req"] += a
            sizes["udp-resp"] += b
        for _ in range(4):
            a, b = ask("_http._tcp.web.shop.svc.cluster.local.", "SRV")
            sizes["udp-req"] += a
            sizes["udp-resp"] += b
        for _ in range(3):
            a, b = ask("nothere.shop.svc.cluster.local.", "AAAA", tcp=True, want="NXDOMAIN")
            sizes["tcp-req"] += a
            sizes["tcp-resp"] += b
        for _ in range(2):
            ask("www.example.org.", "A", want="REFUSED")
        after = t.scrape(srv.http)
        Z = "cluster.local."
        cases = [
            ("svcdns_dns_requests_total", dict(zone=Z, proto="udp", family="ipv4", type="A"), 7),
            ("svcdns_dns_requests_total", dict(zone=Z, proto="udp", type="SRV"), 4),
            ("svcdns_dns_requests_total", dict(zone=Z, proto="tcp", type="AAAA"), 3),
            ("svcdns_dns_requests_total", dict(zone=".", proto="udp", type="A"), 2),
            ("svcdns_dns_responses_total", dict(zone=Z, proto="udp", type="A", rcode="NOERROR"),
             7),
            ("svcdns_dns_responses_total", dict(zone=Z, proto="tcp", type="AAAA",
                                                rcode="NXDOMAIN"), 3),
            ("svcdns_dns_responses_total", dict(zone=".", rcode="REFUSED"), 2),
            ("svcdns_dns_responses_total", dict(zone=Z, rcode="SERVFAIL"), 0),
            ("svcdns_dns_request_duration_seconds_count", dict(zone=Z, type="A"), 7),
            ("svcdns_dns_request_duration_seconds_count", dict(zone=Z, type="AAAA"), 3),
            ("svcdns_dns_request_size_bytes_sum", dict(zone=Z, proto="udp"), sizes["udp-req"]),
            ("svcdns_dns_request_size_bytes_sum", dict(zone=Z, proto="tcp"), sizes["tcp-req"]),
            ("svcdns_dns_response_size_bytes_sum", dict(zone=Z, proto="udp"), sizes["udp-resp"]),
            ("svcdns_dns_response_size_bytes_sum", dict(zone=Z, proto="tcp"), sizes["tcp-resp"]),
            ("svcdns_dns_response_size_bytes_count", dict(zone=Z, proto="udp"), 11),
            ("coredns_dns_requests_total", dict(server="dns://:%d" % srv.port, zone=Z,
                                                proto="udp", family="1", type="A"), 7),
            ("coredns_dns_responses_total", dict(zone=Z, rcode="NXDOMAIN", plugin="kubernetes"),
             3),
            ("coredns_dns_responses_total", dict(zone=".", rcode="REFUSED"), 2),
            ("coredns_dns_request_duration_seconds_count", dict(zone=Z, type="SRV"), 4),
            ("coredns_dns_response_size_bytes_sum", dict(zone=Z, proto="tcp"), sizes["tcp-resp"]),
        ]
        for name, labels, want in cases:
            got = delta(before, after, name, **labels)
            tally.check(got == want, "%s%s +%d" % (name, labels, want), "got +%s" % got)
        tally.check(after["types"].get("svcdns_dns_request_duration_seconds") == "histogram"
                    and after["types"].get("svcdns_dns_requests_total") == "counter",
                    "families declare their types", str(after["types"])[:300])
        tally.diffs("every family well formed", well_formed(after))
        fast = delta(before, after, "svcdns_dns_request_duration_seconds_bucket", zone=Z,
                     type="A", le="1")
        tally.check(fast == 7, "answers from the snapshot take under a second", "%s" % fast)

        # the query log: one line per query, CoreDNS's format
        def logged():
            text = srv.stderr_text()
            return (len(re.findall(r'"A IN web\.shop\.svc\.cluster\.local\. udp \d+ false 1232" '
                                   r'NOERROR qr,aa \d+ \d+\.\d+s', text)) == 7 and
                    len(re.findall(r'"AAAA IN nothere\.shop\.svc\.cluster\.local\. tcp \d+ '
                                   r'false \d+" NXDOMAIN qr,aa', text)) == 3)
        ok, _ = t.poll(logged, timeout=3)
        tally.check(ok, "--log-queries logs every query", srv.stderr_tail(12))
    finally:
        tally.server_stopped(srv)


def test_snapshot_and_model(tally):
    d = t.copy_fixture("ops")
    srv = start(manifests=os.path.join(d, "cluster"))
    try:
        m = t.scrape(srv.http)
        tally.check(t.metric(m, "coredns_dns_requests_total") is None,
                    "no CoreDNS names without --metrics-compat")
        r = t.run_dig(srv.port, "generation.cluster.local", "TXT", "CH")
        txt = dict(s.split("=", 1) for s in (r.txt_strings[0] if r.txt_strings else []))
        gen = int(txt.get("generation", "0"))
        tally.check(gen >= 1 and t.metric(m, "svcdns_snapshot_generation") == gen,
                    "CH TXT generation.cluster.local and the metric agree",
                    "%s vs %s" % (txt, t.metric(m, "svcdns_snapshot_generation")))
        tally.check(txt.get("stale") == "no" and txt.get("source") == "manifests" and
                    int(txt.get("serial", 0)) == t.metric(m, "svcdns_snapshot_serial"),
                    "generation answer: serial, source, not stale", str(txt))
        for kind, want in (("ClusterIP", 1), ("NodePort", 1), ("ExternalName", 1),
                           ("Headless", 1), ("LoadBalancer", 0)):
            got = t.metric(m, "svcdns_model_services", type=kind)
            tally.check(got == want, "model: %d %s Service" % (want, kind), "got %s" % got)
        status, headers, body = t.http_get(srv.http, "/debug/model")
        model = json.loads(body)
        tally.check(status == 200 and headers.get("content-type") == "application/json" and
                    model["generation"] == gen, "/debug/model is JSON of the served snapshot",
                    "%s %s" % (status, body[:200]))
        ready = sum(1 for s in model["services"] for e in s["endpoints"] if e["ready"])
        not_ready = sum(1 for s in model["services"] for e in s["endpoints"] if not e["ready"])
        tally.check(t.metric(m, "svcdns_model_endpoints", ready="true") == ready and
                    t.metric(m, "svcdns_model_endpoints", ready="false") == not_ready,
                    "endpoint counts agree with /debug/model", "%d/%d" % (ready, not_ready))
        web = [s for s in model["services"] if s["namespace"] == "shop" and s["name"] == "web"]
        want_ports = [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http",
                       "nodePort": None},
                      {"name": "metrics", "port": 9110, "protocol": "TCP", "targetPort": 9110,
                       "nodePort": None}]
        tally.check(len(web) == 1 and web[0]["ports"] == want_ports and
                    web[0]["clusterIPs"] == ["10.96.10.10"],
                    "/debug/model: web's ports and targetPorts", json.dumps(web)[:600])
        eps = {e["address"]: (e["ready"], [p["targetPort"] for p in e["ports"]])
               for e in (web[0]["endpoints"] if web else [])}
        tally.check(eps == {"10.244.1.11": (True, [8080, 9110]),
                            "10.244.1.12": (True, [8081, 9110]),
                            "10.244.1.13": (False, [8081, 9110])},
                    "/debug/model: web's endpoints, readiness and per-Pod targetPorts", str(eps))
        db = [s for s in model["services"] if s["name"] == "db"]
        tally.check(db and db[0]["headless"] and db[0]["endpointsFrom"] == "EndpointSlices" and
                    "db-0" in [e["hostname"] for e in db[0]["endpoints"]],
                    "/debug/model: the headless Service and its slice", json.dumps(db)[:400])

        # a change: a new snapshot, one more build, a change-to-serve sample
        t.write_atomic(os.path.join(d, "cluster", "extra.json"), json.dumps({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "extra", "namespace": "shop"},
            "spec": {"clusterIP": "10.96.77.77", "ports": [{"port": 80}]}}))
        ok, _ = t.poll(lambda: t.query(srv.port, "extra.shop.svc.cluster.local.", "A")[0].answer,
                       timeout=5)
        tally.check(bool(ok), "the new Service is served")
        m2 = t.scrape(srv.http)
        tally.check(t.metric(m2, "svcdns_snapshot_generation") > gen and
                    delta(m, m2, "svcdns_snapshot_builds_total") >= 1 and
                    delta(m, m2, "svcdns_data_change_to_serve_seconds_count") >= 1 and
                    t.metric(m2, "svcdns_model_services", type="ClusterIP") == 2,
                    "a change moves generation, builds, change-to-serve and the model",
                    "gen %s builds +%s serve +%s" % (
                        t.metric(m2, "svcdns_snapshot_generation"),
                        delta(m, m2, "svcdns_snapshot_builds_total"),
                        delta(m, m2, "svcdns_data_change_to_serve_seconds_count")))
        tally.check(t.metric(m2, "svcdns_snapshot_serial") == t.soa_serial(srv.port),
                    "svcdns_snapshot_serial is the SOA serial served")
        tally.check(t.metric(m2, "svcdns_ready") == 1 and
                    t.metric(m2, "svcdns_data_stale") == 0 and
                    t.metric(m2, "process_resident_memory_bytes") > 0,
                    "ready, fresh, process metrics")
        tally.check(all(t.metric(m2, "svcdns_pipeline_failures_total", stage=st) == 0
                        for st in ("view", "snapshot", "datapath")),
                    "svcdns_pipeline_failures_total: one sample per stage, none failed")
    finally:
        tally.server_stopped(srv)


def test_forwarder(tally):
    up = fu.FakeUpstream(address="192.0.2.1")
    to = "127.0.0.1:%d" % up.port
    srv = start(["--upstream", to, "--metrics-compat", "coredns", "--threads", "1"])
    try:
        for _ in range(3):
            msg, _ = t.query(srv.port, "www.example.com.", "A", rd=True)
            if [r.to_text() for rr in msg.answer for r in rr] != ["192.0.2.1"]:
                raise AssertionError("forwarded answer: %s" % msg)
        m = t.scrape(srv.http)
        cases = [
            ("svcdns_forward_requests_total", dict(to=to), 1),
            ("svcdns_forward_responses_total", dict(to=to, rcode="NOERROR"), 1),
            ("svcdns_forward_request_duration_seconds_count", dict(to=to), 1),
            ("svcdns_forward_upstream_healthy", dict(to=to), 1),
            ("svcdns_cache_hits_total", {}, 2),
            ("svcdns_cache_entries", {}, 1),
            ("coredns_forward_requests_total", dict(to=to), 1),
            ("coredns_cache_hits_total", dict(type="all"), 2),
            ("svcdns_dns_requests_total", dict(zone=".", type="A"), 3),
        ]
        for name, labels, want in cases:
            got = t.metric(m, name, **labels)
            tally.check(got == want, "%s%s = %d" % (name, labels, want), "got %s" % got)
        tally.check(len(up.queries("www.example.com.")) == 1, "the upstream was asked once",
                    "asked %s" % up.seen)
        tally.diffs("every family well formed", well_formed(m))
    finally:
        tally.server_stopped(srv)
        up.close()


def raw_http(port, data, timeout=5.0):
    """Sends raw bytes; returns what comes back until the server closes (or
    the timeout), and whether it closed."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                return out, False
            except ConnectionResetError:
                return out, True
            if not chunk:
                return out, True
            out += chunk
        return out, False
    finally:
        s.close()


def accept_queue(port):
    """Connections waiting to be accepted on the listening socket
    127.0.0.1:port (its rx_queue in /proc/net/tcp), or None."""
    want = "0100007F:%04X" % port
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == want and fields[3] == "0A":  # LISTEN
                return int(fields[4].split(":")[1], 16)
    return None


MARKER = """apiVersion: v1
kind: Service
metadata: {name: marker, namespace: shop}
spec:
  clusterIP: 10.96.10.99
  ports: [{port: 80}]
"""


def test_http_limits(tally):
    root = t.copy_fixture(os.path.join("ops", "cluster"))
    srv = start(manifests=root)
    socks = []
    try:
        tally.check(t.http_get(srv.http, "/nothing")[0] == 404, "unknown path: 404")
        st, hd, _ = t.http_get(srv.http, "/metrics", method="POST")
        tally.check(st == 405 and "GET" in hd.get("allow", ""), "POST: 405 with Allow",
                    "%s %s" % (st, hd))
        st, _, body = t.http_get(srv.http, "/health", method="HEAD")
        tally.check(st == 200 and body == "", "HEAD /health: 200, no body", "%s %r" % (st, body))
        tally.check(t.http_get(srv.http, "/health")[2] == "OK\n", "/health says OK")

        big = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n"
        out, closed = raw_http(srv.http, big)
        status = out.split(b" ", 2)[1] if out.startswith(b"HTTP/1.1 ") else b""
        tally.check(closed and status in (b"413", b"414", b"431", b""),
                    "a request past 16 KiB of headers is refused", repr(out[:100]))

        # 64 connections at most: the next client waits in the listen
        # backlog (costing the server nothing) until a slot is free
        for _ in range(64):
            socks.append(socket.create_connection(("127.0.0.1", srv.http), timeout=5))
        all_in, _ = t.poll(lambda: accept_queue(srv.http) == 0, timeout=5.0)
        tally.check(all_in, "64 connections are accepted",
                    "%s still in the backlog" % accept_queue(srv.http))
        waiting = socket.create_connection(("127.0.0.1", srv.http), timeout=1)
        waiting.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        # The HTTP endpoint runs on the loop that also reads the manifests: a
        # change served afterwards means the loop has turned with the 65th
        # connection already waiting, and would have accepted it by then.
        t.write_file(os.path.join(root, "marker.yaml"), MARKER)
        served, _ = t.poll(lambda: t.query(srv.port, "marker.shop.svc.cluster.local.",
                                           "A")[0].answer, timeout=5.0)
        waiting.setblocking(False)
        try:
            early = waiting.recv(100)
        except BlockingIOError:
            early = None
        waiting.settimeout(1)
        tally.check(served and early is None and accept_queue(srv.http) == 1,
                    "a 65th connection is not served while 64 are open",
                    "marker %s, got %r, %s waiting to be accepted"
                    % ("served" if served else "never served", early,
                       accept_queue(srv.http)))
        tally.check(t.query(srv.port, "web.shop.svc.cluster.local.", "A")[0].answer,
                    "DNS answers while HTTP is saturated")
        for s in socks:
            s.close()
        socks = []
        waiting.settimeout(5)
        try:
            late = waiting.recv(100)
        except socket.timeout:
            late = b""
        waiting.close()
        tally.check(late.startswith(b"HTTP/1.1 200"), "it is served once a slot is free",
                    repr(late))

        # a client that never finishes its request is closed after 10 s
        t0 = time.monotonic()
        out, closed = raw_http(srv.http, b"GET /metrics HTTP/1.1\r\nHost: x\r\n", timeout=20)
        dt = time.monotonic() - t0
        tally.check(closed and 5 < dt < 19, "a slow client is timed out",
                    "closed=%s after %.1f s: %r" % (closed, dt, out[:80]))
    finally:
        for s in socks:
            s.close()
        tally.server_stopped(srv)


def main(tally):
    test_counts(tally)
    test_snapshot_and_model(tally)
    test_forwarder(tally)
    test_http_limits(tally)


if __name__ == "__main__":
    t.main_guard(t.Tally("metrics"), main)
