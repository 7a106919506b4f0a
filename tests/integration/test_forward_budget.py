"""The upstream budgets, against the real binary and a counting fake upstream.

--upstream-max-qps: clients offer ten times the budget, half of it a few
popular names, half names never asked before, spread over two DNS workers
(which share each upstream's budget). The fake upstream (fake_upstream.py)
records when each query arrives: no one-second window holds more than the
budget (a generous margin for the arrival times this process measures, not
svcdns's send times, which the unit test test_forward_budget checks to the
millisecond), every client gets an answer, the popular names keep resolving
(fresh, or stale with EDE 3 once their TTL has run out), and /metrics counts
the waits, refusals and stale answers.

--upstream-max-tries: four upstreams that never answer, and a question
costs exactly N packets in all, failover included.
"""

import os
import select
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_upstream as fu  # noqa: E402
import svcdns_testlib as t  # noqa: E402

import dns.edns  # noqa: E402
import dns.message  # noqa: E402
import dns.rcode  # noqa: E402

BUDGET = 20
OFFERED = 200  # queries per second: ten times the budget
SECONDS = 4
POPULAR = ["popular%d.example.test" % i for i in range(5)]


def offer_load(port):
    """Sends OFFERED queries a second for SECONDS from four sockets, and
    collects every answer for up to three seconds more. Returns
    {qid: (name, message or None)}."""
    socks = []
    for _ in range(4):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        socks.append(s)
    asked, got = {}, {}

    def drain(wait):
        ready, _, _ = select.select(socks, [], [], wait)
        for s in ready:
            while True:
                try:
                    wire = s.recv(65535)
                except BlockingIOError:
                    break
                try:
                    m = dns.message.from_wire(wire)
                except Exception:  # noqa: BLE001 - counted as unanswered
                    continue
                got[m.id] = m

    try:
        start = time.monotonic()
        n = OFFERED * SECONDS
        for i in range(n):
            name = POPULAR[(i // 2) % len(POPULAR)] if i % 2 == 0 else "u%d.example.test" % i
            q = t.make_query(name, "A", rd=True, qid=i)
            asked[i] = name
            socks[i % len(socks)].sendto(q.to_wire(), ("127.0.0.1", port))
            due = start + (i + 1) / OFFERED
            while time.monotonic() < due:
                drain(max(0.0, due - time.monotonic()))
        end = time.monotonic() + 3.0
        while len(got) < n and time.monotonic() < end:
            drain(0.05)
    finally:
        for s in socks:
            s.close()
    return {qid: (name, got.get(qid)) for qid, name in asked.items()}


def has_ede(msg, code):
    return any(isinstance(o, dns.edns.EDEOption) and o.code == code for o in msg.options)


def budget(tally):
    up = fu.FakeUpstream(ttl=1)
    http = t.free_port()
    fwd = fu.forwarder([fu.addr(up)], threads=2,
                       args=["--upstream-max-qps", str(BUDGET), "--serve-stale", "60",
                             "--http", "127.0.0.1:%d" % http, "--log-level", "info"])
    try:
        t0 = time.monotonic()
        results = offer_load(fwd.port)
        elapsed = time.monotonic() - t0
        busiest = up.busiest_second()
        total = len(up.seen)
        tally.check(busiest <= BUDGET * 3 // 2,
                    "--upstream-max-qps %d: no second of upstream arrivals holds much more"
                    % BUDGET, "busiest second: %d queries" % busiest)
        tally.check(total <= BUDGET * (elapsed + 1),
                    "the upstream gets the budget, not the offered load",
                    "%d queries in %.1f s" % (total, elapsed))
        lost = [q for q, (_, m) in results.items() if m is None]
        tally.check(not lost, "every client question gets an answer",
                    "%d of %d unanswered" % (len(lost), len(results)))
        pop = [m for name, m in results.values() if name in POPULAR]
        ok = [m for m in pop if m is not None and m.rcode() == dns.rcode.NOERROR and m.answer]
        tally.check(len(ok) >= len(pop) * 95 // 100, "the popular names keep resolving",
                    "%d of %d answered with an address" % (len(ok), len(pop)))
        stale = [m for m in ok if has_ede(m, 3)]
        tally.check(stale and all(rr.ttl == 30 for m in stale for rr in m.answer),
                    "expired popular names are answered stale: EDE 3, TTL 30",
                    "%d stale answers" % len(stale))
        uniq = [m for name, m in results.values() if name not in POPULAR]
        refused = [m for m in uniq if m is not None and m.rcode() == dns.rcode.SERVFAIL]
        tally.check(refused, "new names beyond the budget get SERVFAIL, not a packet",
                    "%d SERVFAIL of %d" % (len(refused), len(uniq)))
        print("offered %d queries in %.1f s; upstream got %d, busiest second %d; popular "
              "%d/%d answered (%d stale); new names %d SERVFAIL of %d"
              % (len(results), elapsed, total, busiest, len(ok), len(pop), len(stale),
                 len(refused), len(uniq)))
        m = t.scrape(http)
        for name in ("svcdns_forward_budget_waits_total", "svcdns_forward_budget_refused_total",
                     "svcdns_forward_budget_stale_total"):
            v = t.metric(m, name)
            tally.check(v is not None and v > 0, "/metrics: %s counts" % name, str(v))
        v = t.metric(m, "svcdns_forward_budget_held_total", to=fu.addr(up))
        tally.check(v is not None and v > 0, "/metrics: held-back sends per upstream", str(v))
        v = t.metric(m, "svcdns_forward_upstream_packets_total", to=fu.addr(up),
                     outcome="answered")
        tally.check(v is not None and 0 < v <= total,
                    "/metrics: upstream packets by upstream and outcome", str(v))
    finally:
        tally.server_stopped(fwd)
        up.close()


def tries(tally):
    ups = [fu.FakeUpstream(delay=None) for _ in range(4)]
    fwd = fu.forwarder([fu.addr(u) for u in ups],
                       args=["--upstream-max-tries", "2", "--upstream-timeout", "300"])
    try:
        msg, _ = t.query(fwd.port, "nobody.example.test", "A", rd=True, timeout=5)
        tally.check(msg.rcode() == dns.rcode.SERVFAIL, "no answer from any: SERVFAIL",
                    dns.rcode.to_text(msg.rcode()))
        seen = sum(len(u.queries("nobody.example.test.")) for u in ups)
        tally.check(seen == 2, "--upstream-max-tries 2: two packets in all, four upstreams",
                    "%d packets" % seen)
    finally:
        tally.server_stopped(fwd)
        for u in ups:
            u.close()


def main(tally):
    budget(tally)
    tries(tally)


if __name__ == "__main__":
    t.main_guard(t.Tally("forward-budget"), main)
