"""Response rate limiting (--rrl N --rrl-slip 2), as Knot DNS and BIND do it,
checked with dnspython: a burst of identical queries from one client gets N
answers in its first second, then every second limited answer is dropped and
every other one comes back truncated (TC, no records), so that dnspython's
UDP-with-TCP-fallback still gets the real answer; another /24 is untouched
while one address of the same /24 shares the limit; random nonexistent names
share one NXDOMAIN budget; TCP is never limited; a quiet second refills the
budget; without --rrl nothing is limited. The limit is logged once, not per
dropped answer, and every limited answer is counted in /metrics
(svcdns_dns_limit_hits_total, limit rrl_drop and rrl_slip)."""

import os
import select
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dns.exception  # noqa: E402
import dns.flags  # noqa: E402
import dns.message  # noqa: E402
import dns.query  # noqa: E402
import dns.rcode  # noqa: E402

import svcdns_testlib as t  # noqa: E402

RATE = 20
WEB = "web.shop.svc.cluster.local."


def bursts(port, plan, window=1.5):
    """plan: [(source address, [names])]. Sends every query of every source
    (one after the other, as fast as a loop can), then collects the replies
    for `window` s. Returns one (normal, truncated, lost, seconds the sending
    took) per source."""
    socks, wires = [], []
    for src, names in plan:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((src, 0))
        s.connect(("127.0.0.1", port))
        socks.append(s)
        qs = []
        for i, name in enumerate(names):
            q = dns.message.make_query(name, "A")
            q.id = i
            qs.append(q.to_wire())
        wires.append(qs)
    took = []
    for s, qs in zip(socks, wires):
        t0 = time.monotonic()
        for w in qs:
            s.send(w)
        took.append(time.monotonic() - t0)
    pending = [set(range(len(qs))) for qs in wires]
    counts = [[0, 0] for _ in socks]  # normal, truncated
    deadline = time.monotonic() + window
    while any(pending):
        left = deadline - time.monotonic()
        ready, _, _ = select.select(socks, [], [], max(left, 0))
        if not ready:
            break
        for s in ready:
            i = socks.index(s)
            r = dns.message.from_wire(s.recv(4096))
            if r.id not in pending[i]:
                continue
            pending[i].discard(r.id)
            if r.flags & dns.flags.TC:
                if r.answer or r.authority or r.additional:
                    counts[i][0] += 1000  # a slipped answer must be empty: fail loudly
                counts[i][1] += 1
            else:
                counts[i][0] += 1
    for s in socks:
        s.close()
    return [(c[0], c[1], len(p), dt) for c, p, dt in zip(counts, pending, took)]


def burst(port, src, names, window=1.5):
    return bursts(port, [(src, names)], window)[0]


def fallback(port, src, name=WEB):
    q = dns.message.make_query(name, "A")
    r, tcp = dns.query.udp_with_fallback(q, "127.0.0.1", port=port, timeout=0.3, source=src)
    return r, tcp


def body(tally):
    demo = os.path.join(t.SOURCE, "contrib", "demo")
    http = t.free_port()
    srv = t.Server(demo, ["--threads", "1", "--rrl", str(RATE), "--rrl-slip", "2",
                          "--http", "127.0.0.1:%d" % http, "--lameduck", "0"]).start()
    port = srv.port
    time.sleep(1.1)  # the readiness probes used the local budget: let it refill
    m0 = t.scrape(http)

    # 150 from one address, then (within the same second) 10 from another
    # address of its /24 and 20 from another /24
    n = 150
    (normal, tc, lost, dt), (normal3, tc3, lost3, _), (normal2, tc2, lost2, _) = bursts(
        port, [("127.0.0.2", [WEB] * n), ("127.0.0.3", [WEB] * 10), ("127.0.1.2", [WEB] * RATE)])
    print("# %d identical queries in %.3f s from 127.0.0.2: %d answered, %d truncated, %d "
          "dropped" % (n, dt, normal, tc, lost), flush=True)
    most = RATE + RATE * dt + 2  # the burst, what refilled while sending, slack
    tally.check(RATE <= normal <= most, "--rrl %d: about %d answers in the first second"
                % (RATE, RATE), "%d answered, want %d..%.0f" % (normal, RATE, most))
    limited = n - normal
    tally.check(abs(tc - limited / 2) <= 2 and abs(lost - limited / 2) <= 2,
                "--rrl-slip 2: half the limited answers truncated, half dropped",
                "%d limited: %d truncated, %d dropped" % (limited, tc, lost))

    # the limit is per /24: another network is untouched, a neighbour is not
    tally.check(normal2 == RATE and tc2 == 0 and lost2 == 0,
                "--rrl: another /24 gets all its %d answers" % RATE,
                "%d answered, %d truncated, %d lost" % (normal2, tc2, lost2))
    tally.check(normal3 <= 2 and tc3 + lost3 >= 8,
                "--rrl: another address of the same /24 shares its budget",
                "%d answered, %d truncated, %d lost" % (normal3, tc3, lost3))

    # The counters: every truncated answer received was counted as slipped;
    # the server limited no more than the clients saw unanswered (a reply
    # can be lost, never invented); slipped and dropped alternate.
    m1 = t.scrape(http)
    slip = (t.metric(m1, "svcdns_dns_limit_hits_total", limit="rrl_slip") or 0) - (
        t.metric(m0, "svcdns_dns_limit_hits_total", limit="rrl_slip") or 0)
    drop = (t.metric(m1, "svcdns_dns_limit_hits_total", limit="rrl_drop") or 0) - (
        t.metric(m0, "svcdns_dns_limit_hits_total", limit="rrl_drop") or 0)
    seen_tc, unanswered = tc + tc3 + tc2, (n - normal) + (10 - normal3) + (RATE - normal2)
    tally.check(slip >= seen_tc and drop >= 1 and slip + drop <= unanswered
                and abs(slip - drop) <= 2,
                "--rrl: /metrics counts the dropped and the truncated answers",
                "rrl_slip +%d, rrl_drop +%d; the clients got %d truncated, %d without a "
                "normal answer" % (slip, drop, seen_tc, unanswered))

    # a real client behind the limit: the truncated answer sends it to TCP
    got = None
    for _ in range(6):  # the slip cadence may drop a try
        burst(port, "127.0.0.2", [WEB] * (2 * RATE), window=0)  # the budget is spent
        try:
            r, tcp = fallback(port, "127.0.0.2")
        except dns.exception.Timeout:
            continue
        if tcp:
            got = r
            break
    tally.check(got is not None and got.rcode() == dns.rcode.NOERROR and got.answer,
                "--rrl: dnspython's udp_with_fallback gets the answer over TCP",
                "no TCP fallback answer: %s" % got)

    # TCP is never limited
    answered = 0
    for _ in range(3 * RATE):
        msg, _ = t.query(port, WEB, tcp=True)
        answered += 1 if msg.answer else 0
    tally.check(answered == 3 * RATE, "--rrl: TCP answers are not limited",
                "%d of %d" % (answered, 3 * RATE))

    # random names: one NXDOMAIN budget per network, whatever the name
    names = ["r%d-nothere.default.svc.cluster.local." % i for i in range(100)]
    normal4, tc4, lost4, dt4 = burst(port, "127.0.2.9", names)
    tally.check(normal4 <= RATE + RATE * dt4 + 2 and tc4 + lost4 >= 100 - (RATE + RATE * dt4
                                                                             + 2),
                "--rrl: random nonexistent names share one NXDOMAIN budget",
                "%d answered, %d truncated, %d lost" % (normal4, tc4, lost4))

    # a quiet second refills the budget
    time.sleep(1.2)
    normal5, tc5, lost5, _ = burst(port, "127.0.0.2", [WEB] * (RATE // 2))
    tally.check(normal5 == RATE // 2, "--rrl: after a quiet second the client is answered "
                "again", "%d answered, %d truncated, %d lost" % (normal5, tc5, lost5))

    lines = [l for l in srv.stderr_text().splitlines()
             if "limits:" in l and "--rrl " in l]
    tally.check(len(lines) == 1, "--rrl: one log line so far, not one per dropped answer",
                "%d lines: %s" % (len(lines), lines[:3]))
    tally.check(any("--rrl-slip" in l for l in srv.stderr_text().splitlines()),
                "--rrl-slip: the slipped answers are logged")
    tally.server_stopped(srv)

    # without --rrl: nothing is limited
    plain = t.Server(demo, ["--threads", "1"]).start()
    normal6, tc6, lost6, _ = burst(plain.port, "127.0.0.2", [WEB] * n)
    tally.check(normal6 == n and tc6 == 0, "no --rrl: all %d answered" % n,
                "%d answered, %d truncated, %d lost" % (normal6, tc6, lost6))
    tally.server_stopped(plain)


if __name__ == "__main__":
    t.main_guard(t.Tally("test_rrl"), body)
