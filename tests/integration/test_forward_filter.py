"""--filter-aaaa and --filter-a against the real binary and a counting fake
upstream.

With `--filter-aaaa auto` and the default (IPv4) --service-cidr and
--pod-cidr, AAAA for an outside name is answered NOERROR with no record in
any section and EDE 17 (Filtered), and the upstream never sees it; A still
goes upstream; the cluster's own names are answered as always (NODATA with
the zone's SOA, no EDE); an ExternalName's CNAME stays, with EDE 17 in place
of the target's addresses; /metrics counts what was filtered. Then a client
that asks A and AAAA for every name, as glibc's getaddrinfo does, with the
filter and without: the upstream packets saved.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_upstream as fu  # noqa: E402
import svcdns_testlib as t  # noqa: E402

import dns.edns  # noqa: E402
import dns.rcode  # noqa: E402
import dns.rdatatype  # noqa: E402


def ask(port, name, qtype):
    msg, _ = t.query(port, name, qtype, rd=True, timeout=4)
    return msg


def ede(msg):
    return [o.code for o in msg.options if isinstance(o, dns.edns.EDEOption)]


def types_in(section):
    return sorted(dns.rdatatype.to_text(r.rdtype) for r in section)


def filtered(tally):
    up = fu.FakeUpstream()
    http = t.free_port()
    fwd = fu.forwarder([fu.addr(up)], manifests=fu.CLUSTER,
                       args=["--filter-aaaa", "auto", "--http", "127.0.0.1:%d" % http])
    try:
        m = ask(fwd.port, "www.example.test", "AAAA")
        tally.check(m.rcode() == dns.rcode.NOERROR and not m.answer and not m.authority
                    and ede(m) == [17],
                    "outside AAAA: NOERROR, empty, no SOA, EDE 17",
                    "%s %s %s %s" % (dns.rcode.to_text(m.rcode()), types_in(m.answer),
                                     types_in(m.authority), ede(m)))
        m = ask(fwd.port, "www.example.test", "A")
        tally.check(m.rcode() == dns.rcode.NOERROR and types_in(m.answer) == ["A"]
                    and not ede(m), "outside A: asked upstream and answered", str(m))
        tally.check([q.type for q in up.queries("www.example.test.")] == ["A"],
                    "the upstream saw the A question and never the AAAA",
                    str(up.queries("www.example.test.")))
        m = ask(fwd.port, "web.shop.svc.cluster.local", "AAAA")
        tally.check(m.rcode() == dns.rcode.NOERROR and not m.answer
                    and types_in(m.authority) == ["SOA"] and not ede(m),
                    "the cluster's own names are never filtered (NODATA with its SOA)", str(m))
        m = ask(fwd.port, "payments.shop.svc.cluster.local", "AAAA")
        tally.check(types_in(m.answer) == ["CNAME"] and ede(m) == [17]
                    and m.rcode() == dns.rcode.NOERROR,
                    "ExternalName: the cluster's CNAME stays, the target's AAAA is filtered",
                    str(m))
        tally.check(not up.queries("api.payments.example.com."),
                    "the ExternalName target's AAAA is not asked upstream")
        m = ask(fwd.port, "www.example.test", "MX")
        tally.check(m.rcode() == dns.rcode.NOERROR and up.queries("www.example.test.")[-1].type
                    == "MX", "other types go upstream")
        v = t.metric(t.scrape(http), "svcdns_forward_filtered_total", type="AAAA")
        tally.check(v == 2, "/metrics: svcdns_forward_filtered_total{type=AAAA}", str(v))
        v = t.metric(t.scrape(http), "svcdns_forward_filtered_total", type="A")
        tally.check(v == 0, "/metrics: nothing filtered for A", str(v))
    finally:
        tally.server_stopped(fwd)
        up.close()


def saved(tally):
    names = ["n%d.example.test" % i for i in range(20)]
    sent = {}
    for mode in ("off", "on"):
        up = fu.FakeUpstream()
        fwd = fu.forwarder([fu.addr(up)], args=["--filter-aaaa", mode])
        try:
            for n in names:
                ask(fwd.port, n, "A")
                ask(fwd.port, n, "AAAA")
            # the start-up loop check's probes are not the client's
            sent[mode] = len([q for q in up.seen if q.name.startswith("n")])
        finally:
            tally.server_stopped(fwd)
            up.close()
    print("A and AAAA for %d names: %d upstream packets without --filter-aaaa, %d with it"
          % (len(names), sent["off"], sent["on"]))
    tally.check(sent["off"] == 2 * len(names) and sent["on"] == len(names),
                "--filter-aaaa on halves the upstream packets of an A+AAAA client", str(sent))


def refused(tally):
    p = subprocess.run([t.BIN, "--manifests", fu.empty_manifests(), "--listen",
                        "127.0.0.1:%d" % t.free_port(), "--upstream", "none",
                        "--filter-aaaa", "sometimes"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=20)
    tally.check(p.returncode == 2 and "expected auto, on or off" in p.stderr,
                "--filter-aaaa takes auto, on or off", p.stderr[-500:])


def main(tally):
    filtered(tally)
    saved(tally)
    refused(tally)


if __name__ == "__main__":
    t.main_guard(t.Tally("forward-filter"), main)
