"""Upstream resolvers for the tests that forward, in one place.

Two kinds, both real DNS servers on real loopback sockets:

- zone_upstream(): svcdns itself serving zone files from
  tests/fixtures/forward (and forwarding nothing): the upstream that answers
  correctly, with real SOA, NXDOMAIN, CNAME, wildcard and TC behaviour.
- FakeUpstream: a small server written with dnspython, over UDP and TCP, for
  what no real server does on demand: answer late or never, or send the
  answers a resolver must refuse (wrong ID, wrong question, from another
  port) before the right one. It records every query it gets.

Also here: forwarder() starts the svcdns under test with debug logging, and
sent_upstream() reads from that log which queries it really sent upstream
("upstream ADDR: query NAME type N id N [tcp] [prefetch]").
"""

import collections
import os
import re
import select
import socket
import struct
import threading
import time

import svcdns_testlib as t

import dns.flags
import dns.message
import dns.name
import dns.rdatatype
import dns.rrset

FORWARD_FIXTURES = os.path.join(t.FIXTURES, "forward")
CLUSTER = os.path.join(FORWARD_FIXTURES, "manifests")

_empty = []


def empty_manifests():
    """A manifest directory with nothing in it (removed at exit)."""
    if not _empty:
        _empty.append(t.mkdtemp(prefix="svcdns-empty-"))
    return _empty[0]


def addr(srv):
    """host:port of a server listening on 127.0.0.1."""
    return "127.0.0.1:%d" % srv.port


def zone_upstream(*zones, args=(), port=None):
    """svcdns serving tests/fixtures/forward/<zone>.zone for each zone, on
    127.0.0.1 (on `port` when given: to come back where it was)."""
    a = ["--threads", "1"]
    for z in zones:
        a += ["--zone-file", "%s=%s" % (z, os.path.join(FORWARD_FIXTURES, z + ".zone"))]
    srv = t.Server(empty_manifests(), args=a + list(args))
    if port:
        srv.port = port
    return srv.start()


def forwarder(upstreams, args=(), manifests=None, threads=1, start=True):
    """The svcdns under test, forwarding to `upstreams` ("host:port" strings),
    with the debug log sent_upstream() reads. manifests: the cluster it
    serves (default: none)."""
    a = ["--threads", str(threads), "--log-level", "debug"]
    for u in upstreams:
        a += ["--upstream", u]
    srv = t.Server(manifests or empty_manifests(), args=a + list(args))
    return srv.start() if start else srv


Sent = collections.namedtuple("Sent", "upstream name tcp prefetch")

_SENT_RE = re.compile(r"upstream (\S+): query (\S+) type \d+ id \d+( tcp)?( prefetch)?")


def sent_upstream(fwd, name=None, tcp=None, prefetch=None):
    """The queries the forwarder sent upstream, in order, as Sent tuples;
    name, tcp and prefetch filter them when given."""
    out = []
    for m in _SENT_RE.finditer(fwd.stderr_text()):
        s = Sent(m.group(1), m.group(2), bool(m.group(3)), bool(m.group(4)))
        if name is not None and s.name.lower() != name.lower():
            continue
        if tcp is not None and s.tcp != tcp:
            continue
        if prefetch is not None and s.prefetch != prefetch:
            continue
        out.append(s)
    return out


Query = collections.namedtuple("Query", "port id name type tcp")


class FakeUpstream:
    """A DNS server on `host` (UDP and TCP on one port) that answers every A
    question with `address` (TTL `ttl`) and any other with no records, after
    `delay` seconds, or never when delay is None. With `bogus`, each UDP A
    query first gets three answers that must be dropped (wrong ID, a wrong
    question, the right one from another port; all 6.6.6.x) and the right
    answer only after the delay. Every query lands in `seen` as a Query
    (client port, ID, lowercased name with its dot, type, over TCP), and its
    arrival time (time.monotonic()) in `arrivals`."""

    POLL = 0.02  # how often the serving thread looks at its clock

    def __init__(self, address="192.0.2.99", ttl=60, delay=0.0, bogus=False, host="127.0.0.1"):
        self.address, self.ttl, self.delay, self.bogus = address, ttl, delay, bogus
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.udp, self.tcp = self._bind(family, host)
        self.port = self.udp.getsockname()[1]
        self.other = socket.socket(family, socket.SOCK_DGRAM)
        self.other.bind((host, 0))
        self.seen = []
        self.arrivals = []
        self._conns = []
        self._bufs = {}  # a TCP connection's bytes not yet a whole message
        self._pending = []  # (when, query, reply-to): a UDP peer or a TCP socket
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @staticmethod
    def _bind(family, host):
        """A UDP and a TCP socket on the same free port."""
        for _ in range(50):
            u = socket.socket(family, socket.SOCK_DGRAM)
            u.bind((host, 0))
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, u.getsockname()[1]))
            except OSError:
                u.close()
                s.close()
                continue
            s.listen(16)
            return u, s
        raise RuntimeError("no port free for both UDP and TCP on %s" % host)

    def queries(self, name=None):
        """What it was asked, optionally for one name ("a.example.")."""
        return [q for q in self.seen if name is None or q.name == name.lower()]

    def busiest_second(self):
        """The most queries that arrived in any one-second window."""
        times, most, j = list(self.arrivals), 0, 0
        for i, t0 in enumerate(times):
            while j < len(times) and times[j] < t0 + 1.0:
                j += 1
            most = max(most, j - i)
        return most

    def close(self):
        self._stop.set()
        self._thread.join(5)
        for s in [self.udp, self.tcp, self.other] + self._conns:
            s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- the serving thread ----------------------------------------------

    def _reply(self, q, qname=None, qid=None, address=None):
        a = dns.message.make_response(q)
        a.flags |= dns.flags.RA
        if qid is not None:
            a.id = qid
        name = q.question[0].name
        if qname is not None:
            name = dns.name.from_text(qname)
            a.question[0].name = name
        if q.question[0].rdtype == dns.rdatatype.A:
            a.answer.append(dns.rrset.from_text(name, self.ttl, "IN", "A",
                                                address or self.address))
        return a.to_wire()

    def _take(self, wire, peer, conn):
        try:
            q = dns.message.from_wire(wire)
        except Exception:  # noqa: BLE001 - not a query: nothing to answer
            return
        if not q.question:
            return
        qq = q.question[0]
        self.arrivals.append(time.monotonic())
        self.seen.append(Query(peer[1], q.id, qq.name.to_text().lower(),
                               dns.rdatatype.to_text(qq.rdtype), conn is not None))
        if self.bogus and conn is None and qq.rdtype == dns.rdatatype.A:
            name = qq.name.to_text()
            self.udp.sendto(self._reply(q, qid=(q.id + 1) & 0xFFFF, address="6.6.6.1"), peer)
            self.udp.sendto(self._reply(q, qname="evil.example.", address="6.6.6.2"), peer)
            self.other.sendto(self._reply(q, qname=name, address="6.6.6.3"), peer)
        if self.delay is not None:
            self._pending.append((time.monotonic() + self.delay, q, conn or peer))

    def _send_due(self):
        now = time.monotonic()
        for item in [p for p in self._pending if p[0] <= now]:
            self._pending.remove(item)
            _, q, dest = item
            wire = self._reply(q)
            if isinstance(dest, socket.socket):
                try:
                    dest.sendall(struct.pack("!H", len(wire)) + wire)
                except OSError:
                    pass
            else:
                self.udp.sendto(wire, dest)

    def _read_tcp(self, conn):
        """Reads what one connection sent; False when it is closed."""
        try:
            data = conn.recv(65535)
        except OSError:
            data = b""
        if not data:
            return False
        buf = self._bufs.get(conn, b"") + data
        while len(buf) >= 2 and len(buf) >= 2 + struct.unpack("!H", buf[:2])[0]:
            n = struct.unpack("!H", buf[:2])[0]
            self._take(buf[2:2 + n], conn.getpeername(), conn)
            buf = buf[2 + n:]
        self._bufs[conn] = buf
        return True

    def _serve(self):
        while not self._stop.is_set():
            ready, _, _ = select.select([self.udp, self.tcp] + self._conns, [], [], self.POLL)
            for s in ready:
                if s is self.udp:
                    data, peer = self.udp.recvfrom(65535)
                    self._take(data, peer, None)
                elif s is self.tcp:
                    conn, _ = self.tcp.accept()
                    self._conns.append(conn)
                elif not self._read_tcp(s):
                    self._conns.remove(s)
                    self._bufs.pop(s, None)
                    self._pending = [p for p in self._pending if p[2] is not s]
                    s.close()
            self._send_due()
