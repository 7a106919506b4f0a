"""DNS over TLS to the upstream (--upstream tls://ADDR[:PORT]#SERVERNAME).

The upstream is Debian's unbound serving DNS over TLS on loopback with a
certificate this test makes (its own CA, openssl), answering local data. svcdns
reaches it through a small TCP relay written here, which counts connections
and sees every byte svcdns sends: the first bytes must be a TLS handshake and
no question name may pass in the clear. A UDP socket bound on the relay's port
number catches any plaintext datagram.

Covered: answers arrive over TLS (unbound's own TLS query counter), many
queries share one connection per thread (pipelined, answers matched by ID),
verification by name and by address, a wrong server name fails verification,
is logged, and fails over to the next upstream; a server whose certificate
does not verify (a CA file that did not sign it, or the system's CAs) is never
asked in plaintext; a connection the server closed when idle is followed by
one that resumes the TLS session; an unreadable --upstream-ca stops the
start.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_upstream as fu  # noqa: E402
import svcdns_testlib as t  # noqa: E402

import dns.message  # noqa: E402
import dns.query  # noqa: E402
import dns.rcode  # noqa: E402
import dns.rdatatype  # noqa: E402

NAME = "dot.test"  # the server certificate's name (and 127.0.0.1)
UNBOUND = shutil.which("unbound") or "/usr/sbin/unbound"
UNBOUND_CONTROL = shutil.which("unbound-control") or "/usr/sbin/unbound-control"


def make_certs(d):
    """A CA, and a server certificate it signs for NAME and 127.0.0.1."""
    def run(*args):
        subprocess.run(["openssl"] + list(args), cwd=d, check=True, capture_output=True,
                       timeout=30)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=svcdns test CA")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=" + NAME)
    t.write_file(os.path.join(d, "ext.cnf"),
                 "subjectAltName=DNS:%s,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n" % NAME)
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-set_serial", "7", "-days", "2", "-extfile", "ext.cnf", "-out", "server.pem")
    # a CA that signed nothing here: the server cannot verify against it
    run("req", "-x509", *ec, "-keyout", "other.key", "-out", "other.pem", "-days", "2",
        "-subj", "/CN=another CA")


class Unbound:
    """unbound serving DNS over TLS only (no UDP, no plain TCP) on 127.0.0.1."""

    def __init__(self, d, extra=""):
        self.dir = d
        self.port = t.free_port()
        self.conf = os.path.join(d, "unbound-%d.conf" % self.port)
        t.write_file(self.conf, """server:
  verbosity: 1
  interface: 127.0.0.1@{port}
  tls-port: {port}
  tls-service-key: "{d}/server.key"
  tls-service-pem: "{d}/server.pem"
  do-udp: no
  do-ip6: no
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "{d}"
  pidfile: ""
  use-syslog: no
  logfile: ""
  access-control: 127.0.0.0/8 allow
  module-config: "iterator"
  extended-statistics: yes
  local-zone: "{name}." static
  local-data: "www.{name}. 300 IN A 192.0.2.53"
  local-zone: "many.{name}." redirect
  local-data: "many.{name}. 300 IN A 192.0.2.54"
{extra}remote-control:
  control-enable: yes
  control-interface: "{d}/control-{port}.sock"
  control-use-cert: no
""".format(port=self.port, d=d, name=NAME, extra=extra))
        self.log_path = os.path.join(d, "unbound-%d.log" % self.port)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([UNBOUND, "-d", "-c", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)
        ok, _ = t.poll(self._listening, timeout=15, interval=0.05)
        if not ok:
            self.stop()
            raise t.ServerError("unbound did not start:\n" + self.log_text())

    def _listening(self):
        if self.proc.poll() is not None:
            raise t.ServerError("unbound exited (%s):\n%s" % (self.proc.returncode,
                                                               self.log_text()))
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()[-3000:]

    def stats(self):
        p = subprocess.run([UNBOUND_CONTROL, "-c", self.conf, "stats_noreset"],
                           capture_output=True, text=True, timeout=10)
        out = {}
        for line in p.stdout.splitlines():
            k, _, v = line.partition("=")
            out[k] = v
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


class Relay:
    """A TCP relay from a port of its own to the upstream: counts connections
    and keeps every byte sent towards the upstream. A UDP socket bound on the
    same port number records any datagram sent there."""

    def __init__(self, target_port):
        self.target = target_port
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.port = t.free_port()
        self.lsock.bind(("127.0.0.1", self.port))
        self.lsock.listen(16)
        self.lsock.settimeout(0.1)
        self.trap = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.trap.bind(("127.0.0.1", self.port))
        self.trap.settimeout(0.1)
        self.connections = 0
        self.streams = []  # bytes each connection sent towards the upstream
        self.datagrams = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True),
                        threading.Thread(target=self._trap, daemon=True)]
        for th in self.threads:
            th.start()

    def _trap(self):
        while not self.stopping.is_set():
            try:
                data, _ = self.trap.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.datagrams.append(data)

    def _accept(self):
        while not self.stopping.is_set():
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.connections += 1
                self.streams.append(bytearray())
                idx = len(self.streams) - 1
            for a, b, rec in ((c, u, idx), (u, c, None)):
                th = threading.Thread(target=self._pump, args=(a, b, rec), daemon=True)
                th.start()
                self.threads.append(th)

    def _pump(self, src, dst, rec):
        src.settimeout(0.1)
        try:
            while not self.stopping.is_set():
                try:
                    data = src.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    break
                if rec is not None:
                    with self.lock:
                        self.streams[rec] += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def snapshot(self):
        with self.lock:
            return self.connections, [bytes(s) for s in self.streams], list(self.datagrams)

    def close(self):
        self.stopping.set()
        for th in self.threads:
            th.join(5)
        self.lsock.close()
        self.trap.close()


def wire_name(text):
    """A name as it would travel in a plaintext DNS message."""
    return b"".join(bytes([len(lab)]) + lab.encode() for lab in text.split("."))


def plaintext_problems(relay, names):
    """Why the bytes svcdns sent were not all TLS: [] when they were."""
    out = []
    _, streams, datagrams = relay.snapshot()
    if datagrams:
        out.append("%d plaintext datagram(s) sent to the TLS port" % len(datagrams))
    for i, s in enumerate(streams):
        if s and not (s[0] == 0x16 and s[1] == 0x03):
            out.append("connection %d does not start with a TLS handshake: %r" % (i, s[:8]))
        for n in names:
            if wire_name(n) in s:
                out.append("connection %d carries %s in the clear" % (i, n))
    return out


def ask(port, name, qtype="A", timeout=6.0):
    msg, _ = t.query(port, name, qtype, rd=True, timeout=timeout)
    return msg


def a_records(msg):
    return sorted(rd.to_text() for rrset in msg.answer for rd in rrset
                  if rrset.rdtype == dns.rdatatype.A)


def many_queries(port, names):
    """Sends every query at once over UDP, then reads the answers: they are
    in flight together, so the upstream connection carries them pipelined."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(8)
    want = {}
    for i, n in enumerate(names):
        q = dns.message.make_query(n, "A")
        q.id = 1000 + i  # random IDs could repeat among 60
        want[q.id] = n
        s.sendto(q.to_wire(), ("127.0.0.1", port))
    got = {}
    try:
        while len(got) < len(want):
            data, _ = s.recvfrom(65535)
            m = dns.message.from_wire(data)
            if m.id in want:
                got[want[m.id]] = a_records(m)
    except socket.timeout:
        pass
    finally:
        s.close()
    return got


def http_args():
    return ["--http", "127.0.0.1:%d" % t.free_port()]


def upstream_counts(fwd, to):
    """The forward counters of upstream `to`: requests by transport (udp is
    what neither tcp nor tls counted) and TLS handshakes by outcome."""
    m = t.scrape(fwd.http_port())
    out = {}
    for k in ("requests", "tcp_requests", "tls_requests"):
        out[k] = int(t.metric(m, "svcdns_forward_%s_total" % k, to=to) or 0)
    out["udp_requests"] = out["requests"] - out["tcp_requests"] - out["tls_requests"]
    for o in ("ok", "resumed", "verify_failed", "error"):
        v = t.metric(m, "svcdns_forward_tls_handshakes_total", to=to, outcome=o)
        out[o] = None if v is None else int(v)
    return out


def answers_over_tls(tally, d, ub):
    relay = Relay(ub.port)
    up = "tls://127.0.0.1:%d#%s" % (relay.port, NAME)
    fwd = fu.forwarder([up], args=["--upstream-ca", os.path.join(d, "ca.pem")] + http_args())
    try:
        m = ask(fwd.port, "www." + NAME)
        tally.check(a_records(m) == ["192.0.2.53"], "an answer over TLS", str(m))
        names = ["n%d.many.%s" % (i, NAME) for i in range(60)]
        got = many_queries(fwd.port, names)
        tally.check(len(got) == 60 and all(v == ["192.0.2.54"] for v in got.values()),
                    "60 queries at once all answered", "%d answered: %s" % (len(got), got))
        st = ub.stats()
        tls_q = int(st.get("num.query.tls", "0"))
        tally.check(tls_q >= 61, "unbound counted them as queries over TLS",
                    "num.query.tls=%s" % st.get("num.query.tls"))
        conns, _, _ = relay.snapshot()
        # One connection per loop that asked: the worker's, and the control
        # thread's for the start-up loop check.
        tally.check(1 <= conns <= 2, "one TLS connection carries the worker's queries",
                    "%d connections for %d queries" % (conns, tls_q))
        tally.diffs("nothing sent in plaintext",
                    plaintext_problems(relay, ["www." + NAME] + names))
        tally.check(re.search(r"upstream tls://\S+: query n5\.many\.dot\.test\.? type 1",
                              fwd.stderr_text()) is not None, "the log names the TLS upstream")
        c = upstream_counts(fwd, up)
        tally.check(c["tls_requests"] >= 61 and c["udp_requests"] == 0 and
                    c["tcp_requests"] == 0,
                    "the queries are counted under tls, none under udp or tcp", str(c))
        tally.check((c["ok"] or 0) >= 1 and c["verify_failed"] == 0 and c["error"] == 0,
                    "the handshakes are counted as ok", str(c))
    finally:
        tally.server_stopped(fwd)
        relay.close()

    # No server name: the certificate must show the address (it does).
    relay = Relay(ub.port)
    fwd = fu.forwarder(["tls://127.0.0.1:%d" % relay.port],
                       args=["--upstream-ca", os.path.join(d, "ca.pem")])
    try:
        m = ask(fwd.port, "www." + NAME)
        tally.check(a_records(m) == ["192.0.2.53"], "verified by address without a name", str(m))
    finally:
        tally.server_stopped(fwd)
        relay.close()


def verification_fails(tally, d, ub):
    # A wrong name first, the right one second: verification fails, the
    # failure is logged, and the second answers.
    relay = Relay(ub.port)
    wrong = "tls://127.0.0.1:%d#wrong.example" % relay.port
    right = "tls://127.0.0.1:%d#%s" % (relay.port, NAME)
    fwd = fu.forwarder([wrong, right],
                       args=["--upstream-ca", os.path.join(d, "ca.pem")] + http_args())
    try:
        m = ask(fwd.port, "www." + NAME)
        tally.check(a_records(m) == ["192.0.2.53"],
                    "wrong server name: failover to the next upstream", str(m))
        log = fwd.stderr_text()
        tally.check(re.search(r"upstream tls://127\.0\.0\.1:\d+#wrong\.example: TLS certificate "
                              r"verification failed: .*expected name wrong\.example", log)
                    is not None, "the verification failure is logged", fwd.stderr_tail())
        # Two loops fail to verify it: the control thread's loop check and
        # the worker's query. One log line for the run, not one per loop.
        c, _ = t.poll(lambda: (lambda c: c if (c["verify_failed"] or 0) >= 2 else None)(
            upstream_counts(fwd, wrong)), timeout=10, interval=0.1)
        ok = c is not None
        c = c or upstream_counts(fwd, wrong)
        tally.check(ok and c["ok"] == 0 and c["udp_requests"] == 0,
                    "verify_failed counted on both loops for the wrong name, no ok", str(c))
        n = fwd.stderr_text().count("#wrong.example: TLS certificate verification failed")
        tally.check(n == 1, "the run of verification failures is logged once across threads",
                    "%d log lines\n%s" % (n, fwd.stderr_tail()))
        c = upstream_counts(fwd, right)
        tally.check((c["ok"] or 0) >= 1 and c["verify_failed"] == 0 and c["tls_requests"] >= 1
                    and c["udp_requests"] == 0, "the right name: handshakes ok, requests tls",
                    str(c))
        tally.diffs("nothing sent in plaintext after the failure",
                    plaintext_problems(relay, ["www." + NAME]))
    finally:
        tally.server_stopped(fwd)
        relay.close()

    # The only upstream's certificate does not verify (a CA that did not
    # sign it): SERVFAIL, and still nothing in plaintext.
    relay = Relay(ub.port)
    before = int(ub.stats().get("num.query.tls", "0"))
    fwd = fu.forwarder(["tls://127.0.0.1:%d#%s" % (relay.port, NAME)],
                       args=["--upstream-ca", os.path.join(d, "other.pem")])
    try:
        m = ask(fwd.port, "www." + NAME)
        tally.check(m.rcode() == dns.rcode.SERVFAIL, "untrusted certificate: SERVFAIL", str(m))
        tally.check("certificate verification failed" in fwd.stderr_text(),
                    "and the failure is logged", fwd.stderr_tail())
        tally.diffs("and nothing was sent in plaintext",
                    plaintext_problems(relay, ["www." + NAME]))
        after = int(ub.stats().get("num.query.tls", "0"))
        tally.check(after == before, "the server never got the query", "%d -> %d" % (before,
                                                                                   after))
    finally:
        tally.server_stopped(fwd)
        relay.close()


def resumption(tally, d):
    # A server that closes idle connections after a second and issues session
    # tickets: the next connection resumes the session.
    with open(os.path.join(d, "ticket.key"), "wb") as f:
        f.write(os.urandom(80))
    ub = Unbound(d, '  tcp-idle-timeout: 1000\n  tls-session-ticket-keys: "%s/ticket.key"\n' % d)
    up = "tls://127.0.0.1:%d#%s" % (ub.port, NAME)
    fwd = fu.forwarder([up], args=["--upstream-ca", os.path.join(d, "ca.pem")] + http_args())
    try:
        m = ask(fwd.port, "r1.many." + NAME)
        tally.check(a_records(m) == ["192.0.2.54"], "an answer before the server closes", str(m))
        # Both connections (the worker's, and the control thread's for the
        # loop check) go idle; the worker's is the one that matters.
        t.poll(lambda: fwd.stderr_text().count("closed by the server") >= 2, timeout=8,
               interval=0.1)
        tally.check(fwd.stderr_text().count("closed by the server") >= 1,
                    "the server closed the idle connection", fwd.stderr_tail())
        m = ask(fwd.port, "r2.many." + NAME)
        tally.check(a_records(m) == ["192.0.2.54"], "an answer on a new connection", str(m))
        tally.check("session resumed" in fwd.stderr_text() and
                    int(ub.stats().get("num.query.tls.resume", "0")) >= 1,
                    "the new connection resumed the TLS session",
                    "num.query.tls.resume=%s\n%s" % (ub.stats().get("num.query.tls.resume"),
                                                      fwd.stderr_tail()))
        c = upstream_counts(fwd, up)
        tally.check((c["resumed"] or 0) >= 1 and (c["ok"] or 0) >= 1,
                    "the handshakes are counted as ok, then resumed", str(c))
    finally:
        tally.server_stopped(fwd)
        ub.stop()


def system_cas(tally, ub):
    # Without --upstream-ca the system's CAs decide: they never signed the
    # test's CA.
    fwd = fu.forwarder(["tls://127.0.0.1:%d#%s" % (ub.port, NAME)])
    try:
        m = ask(fwd.port, "www." + NAME)
        tally.check(m.rcode() == dns.rcode.SERVFAIL and
                    "certificate verification failed" in fwd.stderr_text(),
                    "the system's CAs do not trust the test's CA", fwd.stderr_tail())
    finally:
        tally.server_stopped(fwd)


def bad_options(tally, d):
    port = t.free_port()
    p = subprocess.run([t.BIN, "--manifests", fu.empty_manifests(), "--listen",
                        "127.0.0.1:%d" % port, "--upstream", "tls://127.0.0.1:853#" + NAME,
                        "--upstream-ca", os.path.join(d, "missing.pem")],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
    tally.check(p.returncode != 0 and "--upstream-ca" in p.stderr,
                "an unreadable --upstream-ca stops the start", p.stderr[-500:])
    p = subprocess.run([t.BIN, "--manifests", fu.empty_manifests(), "--listen",
                        "127.0.0.1:%d" % port, "--upstream", "tls://127.0.0.1:853#bad name"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
    tally.check(p.returncode != 0 and "tls://ADDR[:PORT][#SERVERNAME]" in p.stderr,
                "a server name with a space is refused", p.stderr[-500:])


def main(tally):
    for tool in (UNBOUND, UNBOUND_CONTROL):
        if not os.access(tool, os.X_OK):
            t.skip("%s not found: apt-get install unbound (contrib/quickstart.sh test "
                   "installs it)" % os.path.basename(tool))
    if not shutil.which("openssl"):
        t.skip("openssl not found: apt-get install openssl")
    d = t.mkdtemp(prefix="svcdns-dot-")
    make_certs(d)
    ub = Unbound(d)
    try:
        answers_over_tls(tally, d, ub)
        verification_fails(tally, d, ub)
        system_cas(tally, ub)
        resumption(tally, d)
        bad_options(tally, d)
    finally:
        ub.stop()


if __name__ == "__main__":
    t.main_guard(t.Tally("dot-upstream"), main)
