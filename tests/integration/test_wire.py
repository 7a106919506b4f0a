"""The wire: case, EDNS, truncation and TCP retry, several queries on one TCP
connection, FORMERR/NOTIMP/REFUSED, CHAOS, garbage that must not kill the
server, and the answer's source address on a wildcard listener."""

import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dns.edns  # noqa: E402
import dns.flags  # noqa: E402
import dns.message  # noqa: E402
import dns.opcode  # noqa: E402
import dns.rcode  # noqa: E402
import dns.rdatatype  # noqa: E402

import svcdns_testlib as t  # noqa: E402
from svcdns_testlib import Case, SOA  # noqa: E402

D = "default.svc.cluster.local."
BIG = 300   # endpoints of "big": far over any UDP limit
MID = 40    # endpoints of "mid": over 512 bytes, under 1232


def header(qid, flags=0, qd=1, an=0, ns=0, ar=0):
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


def qname_wire(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def question(name, qtype=1, qclass=1):
    return qname_wire(name) + struct.pack("!HH", qtype, qclass)


def rcode_of(wire):
    return struct.unpack("!H", wire[2:4])[0] & 0xF


def flags_of(wire):
    return struct.unpack("!H", wire[2:4])[0]


def id_of(wire):
    return struct.unpack("!H", wire[:2])[0]


def alive(port):
    """The server still answers a normal query (UDP and TCP)."""
    try:
        r = t.run_dnspython(port, "web." + D, "A")
        if r.answer != ["web.%s 5 IN A 10.96.1.10" % D]:
            return "UDP answer after garbage: %s" % r
        r = t.run_dnspython(port, "web." + D, "A", tcp=True)
        if r.answer != ["web.%s 5 IN A 10.96.1.10" % D]:
            return "TCP answer after garbage: %s" % r
    except Exception as e:  # noqa: BLE001
        return "server no longer answers: %s: %s" % (type(e).__name__, e)
    return ""


def expect_rcode(port, wire, want, tcp=False, want_opcode=0):
    if tcp:
        resp = t.tcp_exchange(port, [wire])[0]
    else:
        resp = t.udp_exchange(port, wire, timeout=2.0)
    if resp is None:
        return "no answer (want %s)" % dns.rcode.to_text(want)
    d = []
    if len(resp) < 12:
        return "answer shorter than a header: %r" % resp
    if id_of(resp) != id_of(wire):
        d.append("ID %d, want %d" % (id_of(resp), id_of(wire)))
    if not flags_of(resp) & 0x8000:
        d.append("QR clear")
    if rcode_of(resp) != want:
        d.append("rcode %s, want %s" % (dns.rcode.to_text(rcode_of(resp)),
                                        dns.rcode.to_text(want)))
    opcode = (flags_of(resp) >> 11) & 0xF
    if opcode != want_opcode:
        d.append("opcode %d, want %d (echoed)" % (opcode, want_opcode))
    if flags_of(resp) & 0x0080:
        d.append("RA set")
    return d


# ---------------------------------------------------------------------------

def test_case_preserved(tally, port):
    for qn, qt, ans in (
            ("WeB.DeFault.SVC.Cluster.Local.", "A", ["web.%s 5 IN A 10.96.1.10" % D]),
            ("My-Service.DEFAULT.svc.Cluster.Local.", "A", None),
            ("_HTTP._Tcp.WEB.default.svc.CLUSTER.local.", "SRV",
             ["_http._tcp.web.%s 5 IN SRV 0 100 80 web.%s" % (D, D)]),
            ("DNS-VERSION.Cluster.Local.", "TXT", ['dns-version.cluster.local. 5 IN TXT "1.1.0"']),
            ("Web.Default.Svc.", "A", ["web.default.svc. 5 IN A 10.96.1.10"])):
        if ans is None:
            c = Case(qn, qt, rcode="NXDOMAIN", answer=[], ns=[SOA], extra=[],
                     note="mixed case, absent")
        else:
            c = Case(qn, qt, answer=ans, ns=[], extra=None, note="mixed case")
        for via in ("dnspython-udp", "dig-udp", "kdig-tcp"):
            t.run_case(tally, port, c, via)

    def raw_question_bytes():
        q = t.make_query("WeB.DeFault.SVC.Cluster.Local.", "A", edns=False)
        wire = q.to_wire()
        resp = t.udp_exchange(port, wire, want_id=q.id)
        if resp is None:
            return "no answer"
        qlen = len(qname_wire("WeB.DeFault.SVC.Cluster.Local.")) + 4
        if resp[12:12 + qlen] != wire[12:12 + qlen]:
            return "question bytes %r, want %r" % (resp[12:12 + qlen], wire[12:12 + qlen])
        return ""
    tally.run("question echoed byte for byte", raw_question_bytes)


def test_edns(tally, port):
    def opt_present(edns, want):
        r = t.run_dnspython(port, "web." + D, "A", edns=edns, payload=4096)
        if r.has_opt != want:
            return "OPT %s, want %s" % ("present" if r.has_opt else "absent",
                                        "present" if want else "absent")
        if want and r.raw.edns != 0:
            return "EDNS version %d, want 0" % r.raw.edns
        return ""
    tally.run("[dnspython] EDNS query gets OPT", opt_present, True, True)
    tally.run("[dnspython] plain query gets no OPT", opt_present, False, False)

    for name, fn, want in (
            ("[dig +bufsize=4096] OPT echoed", lambda: t.run_dig(port, "web." + D, "A",
                                                                 opts=("+bufsize=4096",)), True),
            ("[dig +noedns] no OPT", lambda: t.run_dig(port, "web." + D, "A",
                                                       opts=("+noedns",)), False),
            ("[kdig +edns] OPT echoed", lambda: t.run_kdig(port, "web." + D, "A",
                                                           opts=("+edns",)), True),
            ("[kdig] no OPT", lambda: t.run_kdig(port, "web." + D, "A"), False),
            ("[dig +nocookie +bufsize=1232 +tcp] OPT echoed over TCP",
             lambda: t.run_dig(port, "web." + D, "A",
                               opts=("+nocookie", "+bufsize=1232", "+tcp")), True)):
        def check(fn=fn, want=want):
            r = fn()
            d = []
            if r.has_opt != want:
                d.append("OPT %s, want %s" % ("present" if r.has_opt else "absent",
                                              "present" if want else "absent"))
            if r.rcode != "NOERROR" or r.answer != ["web.%s 5 IN A 10.96.1.10" % D]:
                d.append("answer %s" % r)
            return d
        tally.run(name, check)

    def badvers():
        q = t.make_query("web." + D, "A")
        q.use_edns(1, 0, 1232)
        resp = t.udp_exchange(port, q.to_wire(), want_id=q.id)
        if resp is None:
            return "no answer"
        m = t.parse(resp)
        if m.rcode() != dns.rcode.BADVERS:
            return "rcode %s, want BADVERS (RFC 6891 6.1.3)" % dns.rcode.to_text(m.rcode())
        if m.edns != 0:
            return "OPT version %s in BADVERS, want 0" % m.edns
        return ""
    tally.run("EDNS version 1 -> BADVERS", badvers)

    def unknown_option():
        q = t.make_query("web." + D, "A")
        q.use_edns(0, 0, 1232, options=[dns.edns.GenericOption(65001, b"\x01\x02\x03")])
        r = t.parse(t.udp_exchange(port, q.to_wire(), want_id=q.id))
        if r.rcode() != 0 or len(r.answer) != 1 or r.edns != 0:
            return "got %s" % r
        return ""
    tally.run("EDNS with an unknown option is answered", unknown_option)

    def flags_rd(via_opts, want_rd):
        r = t.run_dig(port, "web." + D, "A", opts=via_opts)
        d = []
        if ("rd" in r.flags) != want_rd:
            d.append("RD %s, want %s (echoed)" % ("rd" in r.flags, want_rd))
        if "ra" in r.flags:
            d.append("RA set")
        if "aa" not in r.flags:
            d.append("AA clear")
        return d
    def cd_ad():
        q = t.make_query("web." + D, "A")
        q.flags |= dns.flags.CD | dns.flags.AD
        m = t.parse(t.udp_exchange(port, q.to_wire(), want_id=q.id))
        d = []
        if not m.flags & dns.flags.CD:
            d.append("CD not echoed (RFC 4035 3.1.6)")
        if m.flags & dns.flags.AD:
            d.append("AD set on unsigned data")
        return d
    tally.run("CD echoed, AD clear", cd_ad)
    tally.run("[dig] RD echoed, RA clear", flags_rd, (), True)
    tally.run("[dig +norec] RD clear, RA clear", flags_rd, ("+norec",), False)


def test_truncation(tally, port):
    big = "big." + D
    mid = "mid." + D

    def udp(name, edns, payload, want_tc, limit, want_n=None):
        q = t.make_query(name, "A", edns=edns, payload=payload)
        wire = t.udp_exchange(port, q.to_wire(), want_id=q.id)
        if wire is None:
            return "no answer"
        d = []
        if len(wire) > limit:
            d.append("UDP answer is %d bytes, limit %d" % (len(wire), limit))
        m = t.parse(wire)
        tc = bool(m.flags & dns.flags.TC)
        if tc != want_tc:
            d.append("TC %s, want %s (%d bytes)" % (tc, want_tc, len(wire)))
        if m.rcode() != 0:
            d.append("rcode %s" % dns.rcode.to_text(m.rcode()))
        if edns and m.edns < 0:
            d.append("no OPT in the answer to an EDNS query")
        if not edns and m.edns >= 0:
            d.append("OPT in the answer to a query without EDNS")
        if want_n is not None and not tc:
            n = sum(len(rr) for rr in m.answer)
            if n != want_n:
                d.append("%d A records, want %d" % (n, want_n))
        return d

    tally.run("UDP no EDNS, 300 A -> TC, <= 512 bytes", udp, big, False, None, True, 512)
    tally.run("UDP EDNS 4096, 300 A -> TC, <= 1232 bytes", udp, big, True, 4096, True, 1232)
    tally.run("UDP EDNS 1232, 300 A -> TC", udp, big, True, 1232, True, 1232)
    tally.run("UDP no EDNS, 40 A -> TC, <= 512 bytes", udp, mid, False, None, True, 512)
    tally.run("UDP EDNS 1232, 40 A -> whole answer", udp, mid, True, 1232, False, 1232, MID)
    tally.run("UDP EDNS 4096, 40 A -> whole answer", udp, mid, True, 4096, False, 1232, MID)
    tally.run("UDP EDNS 600, 40 A -> TC, <= 600 bytes", udp, mid, True, 600, True, 600)
    tally.run("UDP EDNS 100 (taken as 512), 40 A -> TC, <= 512 bytes", udp, mid, True, 100,
              True, 512)

    want_big = ["%s 5 IN A 10.250.%d.%d" % (big, i // 250, i % 250 + 1) for i in range(BIG)]

    def full(r, name="big", want=None):
        want = want or want_big
        d = []
        if r.rcode != "NOERROR":
            d.append("rcode %s" % r.rcode)
        if "tc" in r.flags:
            d.append("TC set")
        missing, unexpected = t.compare_records(want, r.answer)
        if missing or unexpected:
            d.append("%d A records (want %d): %d missing, %d unexpected, e.g. %s"
                     % (len(r.answer), len(want), len(missing), len(unexpected),
                        (missing + unexpected)[:2]))
        return d

    def tcp_dnspython():
        return full(t.run_dnspython(port, big, "A", tcp=True, edns=False))
    tally.run("[dnspython TCP] 300 A", tcp_dnspython)

    def dig_ignore():
        r = t.run_dig(port, big, "A", opts=("+ignore", "+notcp", "+bufsize=4096"))
        return [] if "tc" in r.flags else ["dig +ignore +notcp: flags %s, want tc" % r.flags]
    tally.run("[dig +ignore +notcp] tc flag", dig_ignore)
    tally.run("[dig +tcp] 300 A", lambda: full(t.run_dig(port, big, "A", opts=("+tcp",))))
    tally.run("[dig default: UDP, TC, TCP retry] 300 A", lambda: full(t.run_dig(port, big, "A")))
    tally.run("[kdig +tcp] 300 A", lambda: full(t.run_kdig(port, big, "A", opts=("+tcp",))))
    tally.run("[kdig default: UDP, TC, TCP retry] 300 A",
              lambda: full(t.run_kdig(port, big, "A")))

    def big_srv():
        r = t.run_dnspython(port, "_http._tcp." + big, "SRV", tcp=True, edns=False)
        targets = ["10-250-%d-%d.%s" % (i // 250, i % 250 + 1, big) for i in range(BIG)]
        want = ["_http._tcp.%s 5 IN SRV 0 * 80 %s" % (big, tg) for tg in targets]
        want_extra = ["%s 5 IN A 10.250.%d.%d" % (tg, i // 250, i % 250 + 1)
                      for i, tg in enumerate(targets)]
        d = []
        m, u = t.compare_records(want, r.answer)
        if m or u:
            d.append("SRV: %d records, %d missing, %d unexpected, e.g. %s"
                     % (len(r.answer), len(m), len(u), (m + u)[:2]))
        m, u = t.compare_records(want_extra, r.additional)
        if m or u:
            d.append("additional: %d records, %d missing, %d unexpected, e.g. %s"
                     % (len(r.additional), len(m), len(u), (m + u)[:2]))
        return d
    tally.run("[dnspython TCP] 300 SRV + 300 A additional", big_srv)

    def big_ch():
        want = ("http 80/TCP -> 80 nodePort=- endpoints=%d/%d ready: " % (BIG, BIG)
                + " ".join("10.250.%d.%d:80" % (i // 250, i % 250 + 1) for i in range(BIG)))
        msg, wire = t.query(port, big, "TXT", "CH", tcp=True, edns=False)
        rds = [rd for rrset in msg.answer for rd in rrset]
        if msg.rcode() != 0 or len(rds) != 1:
            return "rcode %s, %d TXT records, want 1" % (dns.rcode.to_text(msg.rcode()), len(rds))
        strings = rds[0].strings
        got = b"".join(strings).decode()
        d = []
        if got != want:
            d.append("TXT text differs: got %r... want %r..." % (got[:90], want[:90]))
        if any(len(x) > 255 for x in strings):
            d.append("a character-string longer than 255")
        r = t.run_dig(port, big, "TXT", "CH", opts=("+ignore", "+notcp"))
        if "tc" not in r.flags:
            d.append("over UDP: flags %s, want tc" % sorted(r.flags))
        r = t.run_kdig(port, big, "TXT", "CH", opts=("+tcp",))
        if len(r.txt_strings) != 1 or "".join(r.txt_strings[0]) != want:
            d.append("kdig +tcp: %d TXT, text %r..." % (len(r.txt_strings),
                                                         "".join(sum(r.txt_strings, []))[:60]))
        return d
    tally.run("CH TXT of 300 endpoints: split into strings, whole over TCP", big_ch)


def test_tcp_pipelining(tally, port):
    qs = [t.make_query("web." + D, "A", edns=False, qid=1001),
          t.make_query("db." + D, "A", edns=False, qid=1002),
          t.make_query("nope." + D, "A", edns=False, qid=1003)]
    want = {1001: ("NOERROR", ["web.%s 5 IN A 10.96.1.10" % D]),
            1002: ("NOERROR", ["db.%s 5 IN A 10.244.2.%d" % (D, i) for i in (1, 2, 3)]),
            1003: ("NXDOMAIN", [])}

    def check(resps):
        d = []
        ids = sorted(id_of(w) for w in resps)
        if ids != [1001, 1002, 1003]:
            return ["answer IDs %s, want 1001 1002 1003" % ids]
        for w in resps:
            r = t.result_from_message(t.parse(w), w)
            rc, ans = want[id_of(w)]
            m, u = t.compare_records(ans, r.answer)
            if r.rcode != rc or m or u:
                d.append("id %d: %s %s, want %s %s" % (id_of(w), r.rcode, r.answer, rc, ans))
        return d

    tally.run("TCP: 3 queries back to back, 3 answers",
              lambda: check(t.tcp_exchange(port, [q.to_wire() for q in qs])))

    def one_by_one():
        s = socket.create_connection(("127.0.0.1", port), timeout=3)
        try:
            out = []
            for q in qs:
                w = q.to_wire()
                s.sendall(struct.pack("!H", len(w)) + w)
                (n,) = struct.unpack("!H", t.recv_exact(s, 2))
                out.append(t.recv_exact(s, n))
            return check(out)
        finally:
            s.close()
    tally.run("TCP: 3 queries one after another on one connection", one_by_one)

    def split_writes():
        s = socket.create_connection(("127.0.0.1", port), timeout=3)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            w = qs[0].to_wire()
            msg = struct.pack("!H", len(w)) + w
            for i in range(0, len(msg), 5):   # dribble 5 bytes at a time
                s.sendall(msg[i:i + 5])
                time.sleep(0.01)
            (n,) = struct.unpack("!H", t.recv_exact(s, 2))
            return check([t.recv_exact(s, n)] + [
                t.tcp_exchange(port, [q.to_wire()])[0] for q in qs[1:]])
        finally:
            s.close()
    tally.run("TCP: a query written 5 bytes at a time", split_writes)

    def idle_connection_does_not_block():
        idle = socket.create_connection(("127.0.0.1", port), timeout=3)
        half = socket.create_connection(("127.0.0.1", port), timeout=3)
        try:
            half.sendall(b"\x00\x40\x12")   # a length and one byte, then silence
            t0 = time.monotonic()
            r = t.run_dnspython(port, "web." + D, "A", tcp=True)
            r2 = t.run_dnspython(port, "web." + D, "A")
            dt = time.monotonic() - t0
            if r.rcode != "NOERROR" or r2.rcode != "NOERROR":
                return "answers %s %s" % (r, r2)
            if dt > 2.5:
                return "answers took %.1f s with idle connections open" % dt
            return ""
        finally:
            idle.close()
            half.close()
    def half_close():
        s = socket.create_connection(("127.0.0.1", port), timeout=3)
        try:
            w = qs[0].to_wire()
            s.sendall(struct.pack("!H", len(w)) + w)
            s.shutdown(socket.SHUT_WR)
            (n,) = struct.unpack("!H", t.recv_exact(s, 2))
            return check([t.recv_exact(s, n)] + [
                t.tcp_exchange(port, [q.to_wire()])[0] for q in qs[1:]])
        finally:
            s.close()
    tally.run("TCP: query then half-close (SHUT_WR) still gets its answer", half_close)

    tally.run("TCP: idle and half-sent connections do not block others",
              idle_connection_does_not_block)


def test_load(tally, port):
    names = [("web." + D, "A", ["web.%s 5 IN A 10.96.1.10" % D]),
             ("db." + D, "A", ["db.%s 5 IN A 10.244.2.%d" % (D, i) for i in (1, 2, 3)]),
             ("_http._tcp.web." + D, "SRV", ["_http._tcp.web.%s 5 IN SRV 0 100 80 web.%s"
                                             % (D, D)]),
             ("nope." + D, "A", [])]

    def udp_worker(n, bad):
        for i in range(n):
            qn, qt, want = names[i % len(names)]
            try:
                r = t.run_dnspython(port, qn, qt)
                m, u = t.compare_records(want, r.answer)
                if m or u:
                    bad.append("%s %s: %s" % (qn, qt, r.answer))
            except Exception as e:  # noqa: BLE001
                bad.append("%s %s: %s" % (qn, qt, e))

    def tcp_worker(n, bad):
        for _ in range(n):
            qs = [t.make_query(qn, qt, edns=False) for qn, qt, _ in names]
            # distinct IDs on one connection: answers are matched by ID, and
            # two random IDs collide often enough over a few hundred runs
            base = qs[0].id
            for k, q in enumerate(qs):
                q.id = (base + k) & 0xFFFF
            try:
                resps = t.tcp_exchange(port, [q.to_wire() for q in qs])
                byid = {id_of(w): w for w in resps}
                for q, (qn, qt, want) in zip(qs, names):
                    r = t.result_from_message(t.parse(byid[q.id]))
                    m, u = t.compare_records(want, r.answer)
                    if m or u:
                        bad.append("TCP %s %s: %s" % (qn, qt, r.answer))
            except Exception as e:  # noqa: BLE001
                bad.append("TCP: %s: %s" % (type(e).__name__, e))

    def run(worker, nthreads, n):
        bad = []
        ths = [threading.Thread(target=worker, args=(n, bad)) for _ in range(nthreads)]
        t0 = time.monotonic()
        for th in ths:
            th.start()
        for th in ths:
            th.join(60)
        dt = time.monotonic() - t0
        print("# load: %d threads x %d in %.2f s" % (nthreads, n, dt), flush=True)
        return bad[:5] + (["... %d more" % (len(bad) - 5)] if len(bad) > 5 else [])
    tally.run("load: 8 threads x 150 UDP queries, all correct", run, udp_worker, 8, 150)
    tally.run("load: 20 threads x 5 TCP connections x 4 pipelined queries", run, tcp_worker,
              20, 5)


def test_errors(tally, port):
    # FORMERR
    tally.run("FORMERR: no question (QDCOUNT 0)", expect_rcode, port,
              header(0x1111, 0x0100, qd=0), dns.rcode.FORMERR)
    tally.run("FORMERR: two questions", expect_rcode, port,
              header(0x2222, 0x0100, qd=2) + question("web." + D) + question("db." + D),
              dns.rcode.FORMERR)
    tally.run("FORMERR: label runs past the end", expect_rcode, port,
              header(0x3333, 0x0100) + b"\x03web\x14default", dns.rcode.FORMERR)
    tally.run("FORMERR: label runs past the end (TCP)", expect_rcode, port,
              header(0x3334, 0x0100) + b"\x03web\x14default", dns.rcode.FORMERR, True)
    tally.run("FORMERR: question without type/class", expect_rcode, port,
              header(0x3335, 0x0100) + qname_wire("web." + D), dns.rcode.FORMERR)
    tally.run("FORMERR: two questions (TCP)", expect_rcode, port,
              header(0x2223, 0x0100, qd=2) + question("web." + D) + question("db." + D),
              dns.rcode.FORMERR, True)

    # NOTIMP, opcode echoed
    for opcode, name in ((2, "STATUS"), (5, "UPDATE")):
        wire = header(0x4400 + opcode, opcode << 11) + question("cluster.local.", 6)
        tally.run("NOTIMP: opcode %s" % name, expect_rcode, port, wire, dns.rcode.NOTIMP,
                  False, opcode)
    tally.run("NOTIMP: opcode UPDATE (TCP)", expect_rcode, port,
              header(0x4505, 5 << 11) + question("cluster.local.", 6), dns.rcode.NOTIMP,
              True, 5)

    tally.run("NOTIMP: opcode IQUERY (1)", expect_rcode, port,
              header(0x4401, 1 << 11) + question("web." + D), dns.rcode.NOTIMP, False, 1)
    tally.run("NOTIMP: unassigned opcode 15", expect_rcode, port,
              header(0x440f, 15 << 11) + question("web." + D), dns.rcode.NOTIMP, False, 15)

    def two_opts():
        q = t.make_query("web." + D, "A")
        w = bytearray(q.to_wire())
        w += w[-11:]            # a second, identical OPT record
        w[11] = 2               # ARCOUNT 2
        return expect_rcode(port, bytes(w), dns.rcode.FORMERR)
    tally.run("FORMERR: two OPT records (RFC 6891 6.1.1)", two_opts)

    def xfr(qtype, tcp):
        r = t.run_dnspython(port, "cluster.local.", qtype, tcp=tcp)
        if r.rcode not in ("REFUSED", "NOTIMP") or r.answer:
            return "%s: %s %s, want REFUSED or NOTIMP and no records" % (qtype, r.rcode,
                                                                          r.answer[:3])
        return ""
    tally.run("AXFR over TCP is refused", xfr, "AXFR", True)
    tally.run("IXFR over UDP is refused", xfr, "IXFR", False)

    # REFUSED outside every zone
    for qn, qt in (("example.com.", "A"), ("com.", "NS"), (".", "SOA"),
                   ("local.", "SOA"), ("xcluster.local.", "A")):
        c = Case(qn, qt, rcode="REFUSED", answer=[], ns=[], extra=[], aa=False)
        for via in ("dnspython-udp", "dig-udp", "kdig-tcp"):
            t.run_case(tally, port, c, via)

    # QR=1: no answer at all
    def qr_set():
        q = t.make_query("web." + D, "A", edns=False)
        wire = bytearray(q.to_wire())
        wire[2] |= 0x80
        resp = t.udp_exchange(port, bytes(wire), timeout=0.5)
        if resp is not None:
            return "answered a message with QR=1: %r" % resp[:16]
        return alive(port)
    tally.run("QR=1 message gets no answer", qr_set)


def test_chaos(tally, port):
    host = socket.gethostname()

    def check(qn, pred, what):
        d = []
        for via, fn in (("dnspython", lambda: t.run_dnspython(port, qn, "TXT", "CH")),
                        ("dig", lambda: t.run_dig(port, qn, "TXT", "CH")),
                        ("kdig", lambda: t.run_kdig(port, qn, "TXT", "CH"))):
            r = fn()
            texts = ["".join(s) for s in r.txt_strings]
            if r.rcode != "NOERROR" or len(r.answer) != 1 or not pred(texts[0]):
                d.append("[%s] %s %s, want one TXT %s" % (via, r.rcode, r.answer, what))
            elif " CH TXT " not in r.answer[0]:
                d.append("[%s] answer not in class CH: %s" % (via, r.answer[0]))
        return d

    for qn in ("version.bind.", "version.server.", "VERSION.BIND."):
        tally.run("CH TXT %s" % qn, check, qn, lambda s: s.startswith("svcdns"),
                  "starting with 'svcdns'")
    for qn in ("id.server.", "hostname.bind."):
        tally.run("CH TXT %s" % qn, check, qn, lambda s: s == host, "= %r" % host)


def test_garbage(tally, port):
    r = t.rng(20240101)
    formerr = [
        ("header only, QDCOUNT 1", header(0x5001, 0x0100)),
        ("labels of 63 bytes, name longer than 255",
         header(0x5002, 0x0100) + (b"\x3f" + b"a" * 63) * 5 + b"\x00\x00\x01\x00\x01"),
        ("first byte 0xff (pointer far past the end)", header(0x5003, 0x0100) + b"\xff" + b"x" * 40),
        ("compression pointer to itself", header(0x5004, 0x0100) + b"\xc0\x0c\x00\x01\x00\x01"),
        ("two pointers in a loop",
         header(0x5005, 0x0100) + b"\x01a\xc0\x10\x01b\xc0\x0c\x00\x01\x00\x01"),
        ("pointer forward past the end", header(0x5006, 0x0100) + b"\xc3\xff\x00\x01\x00\x01"),
        ("reserved label type 0x40", header(0x5008, 0x0100) + b"\x41abc\x00\x00\x01\x00\x01"),
        ("reserved label type 0x80", header(0x5009, 0x0100) + b"\x81abc\x00\x00\x01\x00\x01"),
    ]
    for name, wire in formerr:
        def one(wire=wire):
            resp = t.udp_exchange(port, wire, timeout=1.0)
            d = []
            if resp is not None:
                if len(resp) < 12 or id_of(resp) != id_of(wire):
                    d.append("malformed answer %r" % resp[:16])
                elif rcode_of(resp) != dns.rcode.FORMERR:
                    d.append("rcode %s, want FORMERR" % dns.rcode.to_text(rcode_of(resp)))
            else:
                d.append("no answer, want FORMERR")
            a = alive(port)
            if a:
                d.append(a)
            return d
        tally.run("garbage: %s -> FORMERR, server alive" % name, one)

    silent = [("empty datagram", b""), ("1 byte", b"\x00"), ("11 bytes", bytes(range(11))),
              ("QR=1 header only", header(0x6001, 0x8000)),
              # legal but odd: the name is read from the header's bytes
              ("pointer into the header", header(0x6002, 0x0100) + b"\xc0\x02\x00\x01\x00\x01")]
    for i in range(5):
        silent.append(("random %d bytes #%d" % (20 + i * 50, i),
                       bytes(r.getrandbits(8) for _ in range(20 + i * 50))))
    for name, wire in silent:
        def one(wire=wire):
            resp = t.udp_exchange(port, wire, timeout=0.3)
            d = []
            if resp is not None and (len(resp) < 12 or (len(wire) >= 2
                                                         and id_of(resp) != id_of(wire))):
                d.append("malformed answer %r" % resp[:16])
            if resp is not None and len(wire) >= 3 and wire[2] & 0x80:
                d.append("answered a message with QR=1")
            a = alive(port)
            if a:
                d.append(a)
            return d
        tally.run("garbage: %s, server alive" % name, one)

    def burst():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for i in range(2000):
                n = r.choice((1, 5, 12, 17, 40, 300, 1500))
                pkt = bytearray(r.getrandbits(8) for _ in range(n))
                if n >= 12 and i % 2:
                    pkt[2] &= 0x7F   # a query, so that many get parsed further
                    pkt[4:6] = b"\x00\x01"
                s.sendto(bytes(pkt), ("127.0.0.1", port))
        finally:
            s.close()
        time.sleep(0.2)
        return alive(port)
    tally.run("garbage: 2000 random datagrams, server alive", burst)

    def mutated():
        """Mutations of valid queries (bytes changed, cut, inserted, compression
        pointers planted): 5000 over UDP, 200 over TCP; the server must live on
        (and ASan, when built in, must stay quiet: checked at shutdown)."""
        seeds = [t.make_query(n, q, edns=e).to_wire() for n, q in (
            ("web." + D, "A"), ("_http._tcp.db." + D, "SRV"), (t.rev("10.96.1.10"), "PTR"),
            ("web.default.svc.", "AAAA"), ("10-1-2-3.default.pod.cluster.local.", "A"))
            for e in (True, False)] + [t.make_query("version.bind.", "TXT", "CH").to_wire()]

        def mutate(w):
            w = bytearray(w)
            for _ in range(r.choice((1, 1, 2, 3, 5))):
                op = r.random()
                if op < 0.5 and w:
                    w[r.randrange(len(w))] = r.getrandbits(8)
                elif op < 0.7 and w:
                    p = r.randrange(len(w))
                    del w[p:p + 1 + r.randrange(4)]
                elif op < 0.85:
                    p = r.randrange(len(w) + 1)
                    w[p:p] = bytes(r.getrandbits(8) for _ in range(r.randrange(1, 6)))
                elif len(w) > 2:
                    p = r.randrange(len(w) - 1)
                    w[p:p + 2] = bytes([0xC0 | r.getrandbits(6), r.getrandbits(8)])
            if len(w) > 2:
                w[2] &= 0x7F
            return bytes(w)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
        try:
            for i in range(5000):
                try:
                    s.sendto(mutate(r.choice(seeds)), ("127.0.0.1", port))
                except BlockingIOError:
                    time.sleep(0.001)
                try:
                    while True:
                        s.recv(65535)
                except BlockingIOError:
                    pass
        finally:
            s.close()
        for _ in range(200):
            c = socket.create_connection(("127.0.0.1", port), timeout=2)
            try:
                w = mutate(r.choice(seeds))
                c.sendall(struct.pack("!H", len(w)) + w)
                c.settimeout(0.05)
                try:
                    c.recv(65535)
                except (socket.timeout, ConnectionError):
                    pass
            finally:
                c.close()
        time.sleep(0.2)
        return alive(port)
    tally.run("garbage: 5000 mutated queries over UDP, 200 over TCP, server alive", mutated)

    def tcp_garbage():
        d = []
        # zero-length message, then a real one on the same connection may or may
        # not be served; the server must just survive
        for payload in (b"\x00\x00", b"\x9c\x40" + b"x" * 10, b"\x00\x05\x01\x02\x03\x04\x05",
                        bytes(r.getrandbits(8) for _ in range(200)),
                        b"\x00\x0c" + header(0x7001, 0x0100)):
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            try:
                s.sendall(payload)
                s.settimeout(0.3)
                try:
                    s.recv(4096)
                except (socket.timeout, ConnectionError):
                    pass
            finally:
                s.close()
        # connect and close at once
        for _ in range(20):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        a = alive(port)
        if a:
            d.append(a)
        return d
    tally.run("garbage over TCP, server alive", tcp_garbage)


def test_wildcard_source(tally, root):
    """A wildcard listener answers from the address each query came to
    (IP_PKTINFO), also when one worker reads it in turn with a listener that
    needs no control data: bursts go to the two alternately, so that each
    batch follows one of the other socket's."""
    wport = t.free_port()
    srv = t.Server(root, args=["--threads", "1", "--listen", "0.0.0.0:%d" % wport]).start()
    bad = []
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    try:
        for burst in range(40):
            dest = ("127.0.0.2", wport) if burst % 2 == 0 else ("127.0.0.1", srv.port)
            ids = set()
            for k in range(1 + burst % 5):
                qid = (burst * 8 + k) & 0xFFFF
                ids.add(qid)
                s.sendto(header(qid) + question("web." + D), dest)
            while ids:
                wire, src = s.recvfrom(4096)
                if src != dest:
                    bad.append("burst %d: answer from %s:%d, asked %s:%d"
                               % (burst, src[0], src[1], dest[0], dest[1]))
                if rcode_of(wire) != 0 or id_of(wire) not in ids:
                    bad.append("burst %d: id %d rcode %d" % (burst, id_of(wire), rcode_of(wire)))
                ids.discard(id_of(wire))
    except socket.timeout:
        bad.append("no answer within 3 s")
    finally:
        s.close()
    tally.check(not bad, "wildcard listener answers from the address asked, beside another",
                "\n    ".join(bad[:5]) + "\n" + srv.stderr_tail(5))
    tally.server_stopped(srv)


def body(tally):
    root = t.copy_fixture("cluster")
    t.write_file(os.path.join(root, "big.json"), t.headless_manifest("big", "default", BIG))
    t.write_file(os.path.join(root, "mid.json"),
                 t.headless_manifest("mid", "default", MID, base="10.251"))
    srv = t.Server(root).start()
    port = srv.port
    test_case_preserved(tally, port)
    test_edns(tally, port)
    test_truncation(tally, port)
    test_tcp_pipelining(tally, port)
    test_load(tally, port)
    test_errors(tally, port)
    test_chaos(tally, port)
    test_garbage(tally, port)
    tally.check(srv.alive(), "server still running at the end", srv.stderr_tail())
    test_wildcard_source(tally, root)


if __name__ == "__main__":
    t.main_guard(t.Tally("test_wire"), body)
