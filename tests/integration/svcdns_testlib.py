"""Shared code for the svcdns integration tests.

Each tests/integration/test_*.py runs the real svcdns binary on 127.0.0.1 and
queries it with real clients: dnspython (raw sockets, exact structural checks),
dig (bind9-dnsutils) and kdig (knot-dnsutils, +json output). Run one file with

    SVCDNS_BIN=build/svcdns SVCDNS_FIXTURES=tests/fixtures \
        /usr/bin/python3 tests/integration/test_records.py

(both variables default to those paths under the repository root). The
environment variable SVCDNS_TEST_VERBOSE=1 prints every passing case too.

A test exits 0 when every check ran and passed, 1 when one failed, and 77
(ctest's SKIP_RETURN_CODE) when nothing failed but something could not run
here: the whole test (skip()) or a part of it (Tally.skip()). Either way the
reason is printed, so that a skip never reads as a pass.

Temporary directories (mkdtemp()) are removed when the test ends, whatever
the outcome; after a failure the tail of each server's log is printed first.

Expected answers are written the way CoreDNS writes its test cases: record
lines in master-file form ("name ttl class type rdata"). In an expected line a
token that is exactly "*" matches any one token of the actual record (used for
the SOA serial, which changes with every snapshot, and for details the
specification leaves open). A section given as None is not checked.
"""

import atexit
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.reversename

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("SVCDNS_SOURCE") or os.path.normpath(os.path.join(HERE, "..", ".."))
FIXTURES = os.environ.get("SVCDNS_FIXTURES") or os.path.join(SOURCE, "tests", "fixtures")
BIN = os.environ.get("SVCDNS_BIN") or os.path.join(SOURCE, "build", "svcdns")
VERBOSE = os.environ.get("SVCDNS_TEST_VERBOSE") == "1"

ZONE = "cluster.local."
# The cluster zone's SOA as the spec and DESIGN give it; the serial is "*".
SOA = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. * 7200 1800 86400 5"

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer",
                     "ERROR: ThreadSanitizer", "WARNING: ThreadSanitizer")


# --------------------------------------------------------------------------
# processes: every server started here is stopped by PID, also on failure.

_live_servers = []
_all_servers = []
_tmpdirs = []
_any_failure = [False]

SKIP_CODE = 77


def mkdtemp(prefix="svcdns-it-"):
    """A temporary directory, removed at exit whatever the outcome."""
    d = tempfile.mkdtemp(prefix=prefix)
    _tmpdirs.append(d)
    return d


def _cleanup():
    for srv in list(_live_servers):
        try:
            srv.kill()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
    if _any_failure[0]:
        # the logs go with their directories: show them while they exist
        for srv in _all_servers:
            text = srv.stderr_text()
            if text:
                print("# stderr of svcdns on port %d (last 40 lines):\n%s"
                      % (srv.port, srv.stderr_tail(40)))
    for d in _tmpdirs:
        shutil.rmtree(d, ignore_errors=True)


def skip(reason):
    """Ends the whole test as skipped (exit 77), saying why; servers already
    started are stopped and temporary directories removed (atexit)."""
    print("SKIP: %s" % reason, flush=True)
    # a failure seen before stays a failure
    sys.exit(1 if _any_failure[0] else SKIP_CODE)


atexit.register(_cleanup)


def _on_signal(signum, _frame):
    # ctest's timeout (and a user's Ctrl-C) end the test: make atexit run.
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


def _port_range():
    """This test's own block of ports. svcdns binds with SO_REUSEPORT, so two
    tests running side by side (ctest -j) that were handed the same free port
    would both bind it and answer each other's queries; ports from the kernel's
    ephemeral range can come round again. Each test file gets its own block,
    by its place among the test files, below the ephemeral range."""
    here = os.path.dirname(os.path.abspath(__file__))
    names = sorted(f for f in os.listdir(here) if f.startswith("test_") and f.endswith(".py"))
    me = os.path.basename(sys.argv[0])
    idx = names.index(me) if me in names else len(names) + os.getpid() % 50
    base = 20000 + (idx % 120) * 100
    return base, base + 100


_next_port = [None]


def _bindable(port):
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1, from this test's own block
    (see _port_range); never the same twice in one test."""
    lo, hi = _port_range()
    if _next_port[0] is None:
        _next_port[0] = lo
    while _next_port[0] < hi:
        port = _next_port[0]
        _next_port[0] += 1
        if _bindable(port):
            return port
    # the block is used up (or taken by something else): the kernel's choice
    for _ in range(50):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
        finally:
            u.close()
        if _bindable(port):
            return port
    raise RuntimeError("no free port found")


def copy_fixture(name, tmp=None):
    """Copies tests/fixtures/NAME to a new temporary directory; returns its path."""
    base = tmp or mkdtemp()
    dst = os.path.join(base, name)
    shutil.copytree(os.path.join(FIXTURES, name), dst)
    return dst


class ServerError(Exception):
    pass


class Server:
    """One svcdns process on 127.0.0.1:<free port>."""

    def __init__(self, manifests, args=(), listen_extra=0, zone="cluster.local."):
        self.manifests = manifests
        self.port = free_port()
        self.extra_ports = [free_port() for _ in range(listen_extra)]
        self.args = list(args)
        self.zone = zone
        self.proc = None
        self.tmpdir = mkdtemp(prefix="svcdns-log-")
        self.log_path = os.path.join(self.tmpdir, "stderr.log")
        self.exit_code = None
        self.stopped = False
        _all_servers.append(self)

    def cmdline(self):
        cmd = [BIN, "--manifests", self.manifests, "--listen", "127.0.0.1:%d" % self.port]
        for p in self.extra_ports:
            cmd += ["--listen", "127.0.0.1:%d" % p]
        # Never forward to this machine's resolvers: a test names its upstreams.
        if "--upstream" not in self.args:
            cmd += ["--upstream", "none"]
        return cmd + self.args

    def start(self, wait=True):
        if not os.path.exists(BIN):
            raise ServerError("svcdns binary not found at %s (set SVCDNS_BIN)" % BIN)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.cmdline(), stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log)
        _live_servers.append(self)
        if wait:
            self.wait_ready()
        return self

    def http_port(self):
        """The port of --http HOST:PORT, or None."""
        if "--http" not in self.args:
            return None
        return int(self.args[self.args.index("--http") + 1].rsplit(":", 1)[1])

    def _http_listening(self):
        port = self.http_port()
        if port is None:
            return True
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def wait_ready(self, timeout=10.0):
        """Polls dns-version.<zone> TXT until it answers, and with --http
        until that port takes connections (it opens after the DNS
        listeners), up to `timeout` s."""
        deadline = time.monotonic() + timeout
        q = dns.message.make_query("dns-version." + self.zone, "TXT", use_edns=False)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError("svcdns exited with status %s before it was ready:\n%s"
                                  % (self.proc.returncode, self.stderr_tail()))
            wire = udp_exchange(self.port, q.to_wire(), timeout=0.2)
            if wire is not None:
                try:
                    r = dns.message.from_wire(wire)
                    if r.rcode() == dns.rcode.NOERROR and r.answer and self._http_listening():
                        return
                except Exception:  # noqa: BLE001 - keep polling
                    pass
            time.sleep(0.05)
        raise ServerError("svcdns not ready after %.0f s (dns-version.%s TXT%s):\n%s"
                          % (timeout, self.zone, ", --http" if self.http_port() else "",
                             self.stderr_tail()))

    def stderr_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stderr_tail(self, n=30):
        lines = self.stderr_text().splitlines()
        return "\n".join("    | " + l for l in lines[-n:])

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10.0):
        """SIGTERM, wait up to `timeout` s; returns a list of problems (empty: clean)."""
        problems = []
        if self.proc is None or self.stopped:
            return problems
        self.stopped = True
        if self.proc.poll() is not None:
            problems.append("svcdns had already exited with status %s before SIGTERM"
                            % self.proc.returncode)
        else:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                problems.append("svcdns did not exit within %.0f s of SIGTERM (killed)" % timeout)
                self.proc.kill()
                self.proc.wait()
        self.exit_code = self.proc.returncode
        if self.exit_code != 0 and not problems:
            problems.append("svcdns exited with status %s after SIGTERM (expected 0)"
                            % self.exit_code)
        try:
            self._log.close()
        except Exception:  # noqa: BLE001
            pass
        text = self.stderr_text()
        for marker in SANITIZER_MARKERS:
            if marker in text:
                problems.append("stderr contains %r" % marker)
        if problems:
            problems.append("stderr tail:\n" + self.stderr_tail(40))
        if self in _live_servers:
            _live_servers.remove(self)
        return problems

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self in _live_servers:
            _live_servers.remove(self)


# --------------------------------------------------------------------------
# raw transport

def udp_exchange(port, wire, timeout=2.0, host="127.0.0.1", want_id=None):
    """Sends one datagram, returns the first reply (bytes) or None on timeout."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.connect((host, port))
        s.send(wire)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            s.settimeout(left)
            try:
                data = s.recv(65535)
            except (socket.timeout, ConnectionRefusedError):
                return None
            if want_id is None or (len(data) >= 2 and struct.unpack("!H", data[:2])[0] == want_id):
                return data
    finally:
        s.close()


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return buf


def tcp_exchange(port, wires, timeout=3.0, host="127.0.0.1"):
    """Sends the length-prefixed messages back to back on one connection and
    reads as many responses. Returns the list of response wires."""
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.sendall(b"".join(struct.pack("!H", len(w)) + w for w in wires))
        out = []
        for _ in wires:
            (n,) = struct.unpack("!H", recv_exact(s, 2))
            out.append(recv_exact(s, n))
        return out
    finally:
        s.close()


def make_query(qname, qtype="A", qclass="IN", edns=True, payload=1232, rd=False, qid=None):
    q = dns.message.make_query(qname, qtype, qclass, use_edns=0 if edns else False,
                               payload=payload if edns else None,
                               flags=dns.flags.RD if rd else 0)
    if qid is not None:
        q.id = qid
    return q


def parse(wire):
    return dns.message.from_wire(wire, one_rr_per_rrset=True)


def query(port, qname, qtype="A", qclass="IN", tcp=False, edns=True, payload=1232, rd=False,
          timeout=2.0):
    """dnspython query; returns (Message, wire) or raises on timeout."""
    q = make_query(qname, qtype, qclass, edns=edns, payload=payload, rd=rd)
    if tcp:
        wire = tcp_exchange(port, [q.to_wire()], timeout=timeout)[0]
    else:
        wire = udp_exchange(port, q.to_wire(), timeout=timeout, want_id=q.id)
        if wire is None:
            raise TimeoutError("no answer over UDP within %.1f s" % timeout)
    return parse(wire), wire


# --------------------------------------------------------------------------
# results: one normalized shape for dnspython, dig and kdig

class Result:
    def __init__(self):
        self.rcode = None       # "NOERROR", ...
        self.opcode = "QUERY"
        self.flags = set()      # {"qr", "aa", ...}
        self.question = []      # [(name as printed, class, type)]
        self.answer = []        # normalized record lines
        self.authority = []
        self.additional = []    # without OPT
        self.has_opt = False
        self.opt_payload = None
        self.txt_strings = []   # answer TXT records: list of lists of strings (in order)
        self.wire_len = None
        self.raw = None
        # kdig lowercases the name it sends, so its echo can only be compared
        # without regard to case
        self.question_case_kept = True

    def __repr__(self):
        return "<%s %s ans=%s auth=%s add=%s>" % (self.rcode, sorted(self.flags), self.answer,
                                                  self.authority, self.additional)


def norm_rr(owner, ttl, rdclass, rdtype, rdata_text):
    owner = owner.lower()
    if not owner.endswith("."):
        owner += "."
    rdclass = rdclass.upper()
    rdtype = rdtype.upper()
    try:
        rd = dns.rdata.from_text(rdclass, rdtype, rdata_text, origin=dns.name.root,
                                 relativize=False)
        text = rd.to_text()
    except Exception:  # noqa: BLE001 - keep whatever the client printed
        text = " ".join(rdata_text.split())
    if rdtype != "TXT":
        text = text.lower()
    return "%s %d %s %s %s" % (owner, int(ttl), rdclass, rdtype, text)


def norm_line(line):
    """Normalizes an expected (or printed) record line 'owner ttl class type rdata'."""
    parts = line.split(None, 4)
    if len(parts) < 5:
        raise ValueError("bad record line: %r" % line)
    toks = line.split()
    if "*" in toks:
        txt = parts[3].upper() == "TXT"
        out = [toks[0] if toks[0] == "*" else toks[0].lower(), toks[1],
               toks[2].upper(), toks[3].upper()]
        out += [tk if tk == "*" or txt else tk.lower() for tk in toks[4:]]
        return " ".join(out)
    return norm_rr(*parts)


def _txt_strings(rd):
    return [s.decode("utf-8", "replace") for s in rd.strings]


def result_from_message(msg, wire=None):
    r = Result()
    r.raw = msg
    r.rcode = dns.rcode.to_text(msg.rcode())
    r.opcode = dns.opcode.to_text(msg.opcode())
    r.flags = set(dns.flags.to_text(msg.flags).lower().split())
    r.question = [(q.to_text().split()[0], dns.rdataclass.to_text(q.rdclass),
                   dns.rdatatype.to_text(q.rdtype)) for q in msg.question]
    for sec, out in ((msg.answer, r.answer), (msg.authority, r.authority),
                     (msg.additional, r.additional)):
        for rrset in sec:
            for rd in rrset:
                out.append(norm_rr(rrset.name.to_text(), rrset.ttl,
                                   dns.rdataclass.to_text(rrset.rdclass),
                                   dns.rdatatype.to_text(rrset.rdtype), rd.to_text()))
                if sec is msg.answer and rrset.rdtype == dns.rdatatype.TXT:
                    r.txt_strings.append(_txt_strings(rd))
    r.has_opt = msg.edns >= 0
    r.opt_payload = msg.payload if r.has_opt else None
    r.wire_len = len(wire) if wire is not None else None
    return r


def run_dnspython(port, qname, qtype, qclass="IN", tcp=False, edns=True, payload=1232, rd=False):
    msg, wire = query(port, qname, qtype, qclass, tcp=tcp, edns=edns, payload=payload, rd=rd)
    return result_from_message(msg, wire)


def _run(cmd, timeout=20):
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


DIG_SECTIONS = {"ANSWER": "answer", "AUTHORITY": "authority", "ADDITIONAL": "additional"}


def parse_dig(text):
    """Parses dig's default output (header, flags, OPT, sections)."""
    r = Result()
    r.raw = text
    section = None
    got_header = False
    for line in text.splitlines():
        m = re.match(r";; ->>HEADER<<- opcode: (\w+), status: (\w+), id: (\d+)", line)
        if m:
            if got_header:
                # a second answer (e.g. after a TC retry with +ignore off): keep the last
                r = Result()
                r.raw = text
            got_header = True
            r.opcode, r.rcode = m.group(1), m.group(2)
            section = None
            continue
        m = re.match(r";; flags:([a-z ]*);", line)
        if m:
            r.flags = set(m.group(1).split())
            continue
        if line.startswith(";; OPT PSEUDOSECTION"):
            r.has_opt = True
            section = "opt"
            continue
        m = re.match(r"; EDNS: version: \d+, flags:[^;]*; udp: (\d+)", line)
        if m:
            r.opt_payload = int(m.group(1))
            continue
        m = re.match(r";; (QUESTION|ANSWER|AUTHORITY|ADDITIONAL) SECTION:", line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r";; MSG SIZE\s+rcvd: (\d+)", line)
        if m:
            r.wire_len = int(m.group(1))
            continue
        if not line.strip():
            continue
        if line.startswith(";;"):
            section = None
            continue
        if section == "QUESTION" and line.startswith(";"):
            parts = line[1:].split()
            if len(parts) >= 3:
                r.question.append((parts[0], parts[1], parts[2]))
            continue
        if line.startswith(";"):
            continue
        if section in DIG_SECTIONS:
            parts = line.split(None, 4)
            if len(parts) == 5:
                rec = norm_rr(*parts)
                getattr(r, DIG_SECTIONS[section]).append(rec)
                if section == "ANSWER" and parts[3].upper() == "TXT":
                    r.txt_strings.append(_split_txt(parts[4]))
    if not got_header:
        raise RuntimeError("dig printed no answer:\n" + text)
    return r


def _split_txt(text):
    rd = dns.rdata.from_text("IN", "TXT", text)
    return _txt_strings(rd)


def dig_cmd(port, qname, qtype="A", qclass="IN", opts=()):
    # -r: ignore ~/.digrc, whose options would change the output parsed here
    return (["dig", "-r", "@127.0.0.1", "-p", str(port), "+tries=1", "+time=2"] + list(opts)
            + ["-c", qclass, "-t", qtype, "-q", qname])


def run_dig(port, qname, qtype="A", qclass="IN", opts=()):
    rc, out, err = _run(dig_cmd(port, qname, qtype, qclass, opts))
    if rc != 0 and ";; ->>HEADER<<-" not in out:
        raise RuntimeError("dig exit %d: %s %s" % (rc, out.strip()[-400:], err.strip()[-400:]))
    return parse_dig(out)


RCODE_NAMES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP",
               5: "REFUSED"}


def parse_kdig_json(text):
    """Parses `kdig +json` (RFC 8427) output."""
    d = json.loads(text)
    r = Result()
    r.raw = d
    r.rcode = RCODE_NAMES.get(d.get("RCODE"), str(d.get("RCODE")))
    r.question_case_kept = False
    r.opcode = dns.opcode.to_text(d.get("Opcode", 0))
    for f in ("QR", "AA", "TC", "RD", "RA", "AD", "CD"):
        if d.get(f):
            r.flags.add(f.lower())
    if "QNAME" in d:
        r.question.append((d["QNAME"], d.get("QCLASSname", str(d.get("QCLASS"))),
                           d.get("QTYPEname", str(d.get("QTYPE")))))
    r.wire_len = d.get("msgLength")
    for key, out in (("answerRRs", r.answer), ("authorityRRs", r.authority),
                     ("additionalRRs", r.additional)):
        for rr in d.get(key, []):
            if rr.get("TYPE") == 41:
                r.has_opt = True
                r.opt_payload = rr.get("CLASS")
                continue
            tname = rr.get("TYPEname") or "TYPE%d" % rr["TYPE"]
            cname = rr.get("CLASSname") or "CLASS%d" % rr["CLASS"]
            text = rr.get("rdata" + tname)
            if text is None:
                # no text form: decode the hex RDATA
                rd = dns.rdata.from_wire(rr["CLASS"], rr["TYPE"],
                                         bytes.fromhex(rr.get("RDATAHEX", "")), 0,
                                         rr.get("RDLENGTH", 0))
                text = rd.to_text()
            out.append(norm_rr(rr["NAME"], rr["TTL"], cname, tname, text))
            if out is r.answer and tname == "TXT":
                r.txt_strings.append(_split_txt(text))
    return r


def kdig_cmd(port, qname, qtype="A", qclass="IN", opts=()):
    return (["kdig", "@127.0.0.1", "-p", str(port), "+json", "+timeout=2", "+retry=0"]
            + list(opts) + ["-c", qclass, "-t", qtype, "-q", qname])


def run_kdig(port, qname, qtype="A", qclass="IN", opts=()):
    rc, out, err = _run(kdig_cmd(port, qname, qtype, qclass, opts))
    start = out.find("{")
    if start < 0:
        raise RuntimeError("kdig exit %d, no JSON: %s %s" % (rc, out.strip()[-400:],
                                                           err.strip()[-400:]))
    return parse_kdig_json(out[start:])


# The transports a table runs through.
VIAS = {
    # dnspython over UDP with EDNS (payload 1232), RD clear
    "dnspython-udp": lambda port, c: run_dnspython(port, c.qname, c.qtype, c.qclass),
    # dnspython over TCP, no EDNS, RD set
    "dnspython-tcp": lambda port, c: run_dnspython(port, c.qname, c.qtype, c.qclass, tcp=True,
                                                   edns=False, rd=True),
    # dig as a person runs it: UDP, EDNS with a cookie, RD set
    "dig-udp": lambda port, c: run_dig(port, c.qname, c.qtype, c.qclass),
    # kdig over TCP, RD clear, no EDNS
    "kdig-tcp": lambda port, c: run_kdig(port, c.qname, c.qtype, c.qclass, ("+tcp", "+norec")),
    # kdig over UDP with EDNS
    "kdig-udp": lambda port, c: run_kdig(port, c.qname, c.qtype, c.qclass, ("+edns",)),
    # dig over TCP without EDNS
    "dig-tcp": lambda port, c: run_dig(port, c.qname, c.qtype, c.qclass, ("+tcp", "+noedns",
                                                                         "+norec")),
}


# --------------------------------------------------------------------------
# cases and comparison

class Case:
    """One query and the answer it must get (CoreDNS's test.Case shape).

    answer/ns/extra: lists of record lines ("*" tokens match anything), or None
    to leave that section unchecked. aa: required AA flag value, or None.
    ordered: the answer must come in exactly this order (TXT port lists).
    """

    def __init__(self, qname, qtype="A", rcode="NOERROR", answer=(), ns=(), extra=(),
                 qclass="IN", aa=True, tc=False, ordered=False, note=""):
        self.qname = qname
        self.qtype = qtype
        self.qclass = qclass
        self.rcode = rcode
        self.answer = None if answer is None else list(answer)
        self.ns = None if ns is None else list(ns)
        self.extra = None if extra is None else list(extra)
        # AA is required on authoritative answers; on REFUSED/FORMERR/... it is
        # only checked when the case says so explicitly (aa=False).
        if rcode in ("NOERROR", "NXDOMAIN"):
            self.aa = aa
        else:
            self.aa = None if aa is True else aa
        self.tc = tc
        self.ordered = ordered
        self.note = note

    def label(self):
        return "%s %s %s" % (self.qname, self.qclass, self.qtype)


def _tok_match(exp, act):
    et, at = exp.split(), act.split()
    if len(et) != len(at):
        return False
    return all(e == "*" or e == a for e, a in zip(et, at))


def compare_records(expected, actual):
    """Multiset comparison with '*' tokens. Returns (missing, unexpected)."""
    exp = [norm_line(e) for e in expected]
    # exact lines first, then the ones with wildcards
    exp.sort(key=lambda e: e.split().count("*"))
    left = list(actual)
    missing = []
    for e in exp:
        for i, a in enumerate(left):
            if _tok_match(e, a):
                del left[i]
                break
        else:
            missing.append(e)
    return missing, left


def diff_result(case, r):
    """Differences between what `case` expects and Result r (list of strings)."""
    d = []
    if r.rcode != case.rcode:
        d.append("rcode %s, want %s" % (r.rcode, case.rcode))
    if "qr" not in r.flags:
        d.append("QR not set")
    if "ra" in r.flags:
        d.append("RA set (svcdns does not recurse)")
    if case.aa is not None and (("aa" in r.flags) != case.aa):
        d.append("AA %s, want %s" % ("set" if "aa" in r.flags else "clear",
                                     "set" if case.aa else "clear"))
    if case.tc is not None and (("tc" in r.flags) != case.tc):
        d.append("TC %s, want %s" % ("set" if "tc" in r.flags else "clear",
                                     "set" if case.tc else "clear"))
    if len(r.question) != 1:
        d.append("question section has %d entries, want 1" % len(r.question))
    else:
        qn, qc, qt = r.question[0]
        want_qn = case.qname if case.qname.endswith(".") else case.qname + "."
        if not r.question_case_kept:
            qn, want_qn = qn.lower(), want_qn.lower()
        if qn != want_qn or qc.upper() != case.qclass.upper() or qt.upper() != case.qtype.upper():
            d.append("question echoed as %s %s %s, want %s %s %s"
                     % (qn, qc, qt, want_qn, case.qclass, case.qtype))
    for name, exp, act in (("answer", case.answer, r.answer), ("authority", case.ns, r.authority),
                           ("additional", case.extra, r.additional)):
        if exp is None:
            continue
        missing, unexpected = compare_records(exp, act)
        if missing or unexpected:
            msg = "%s differs:" % name
            for m in missing:
                msg += "\n      missing:    " + m
            for u in unexpected:
                msg += "\n      unexpected: " + u
            d.append(msg)
        elif name == "answer" and case.ordered:
            exp_n = [norm_line(e) for e in exp]
            if not all(_tok_match(e, a) for e, a in zip(exp_n, act)):
                d.append("answer order differs:\n      got:  %s\n      want: %s"
                         % ("\n            ".join(act), "\n            ".join(exp_n)))
    return d


class Tally:
    def __init__(self, title):
        self.title = title
        self.passed = 0
        self.failed = 0
        self.skipped = []
        self.failures = []
        self.t0 = time.monotonic()

    def ok(self, name):
        self.passed += 1
        if VERBOSE:
            print("ok   %s" % name, flush=True)

    def fail(self, name, why):
        _any_failure[0] = True
        self.failed += 1
        self.failures.append(name)
        print("FAIL %s: %s" % (name, why), flush=True)

    def skip(self, name, why):
        """A part of the test that cannot run here: not a pass. The test
        then ends with SKIP_CODE unless something failed."""
        self.skipped.append(name)
        print("SKIP %s: %s" % (name, why), flush=True)

    def check(self, cond, name, why=""):
        if cond:
            self.ok(name)
        else:
            self.fail(name, why)
        return cond

    def diffs(self, name, diffs):
        if diffs:
            self.fail(name, "\n    " + "\n    ".join(diffs))
        else:
            self.ok(name)
        return not diffs

    def run(self, name, fn, *args, **kw):
        """Runs fn(); an exception or a returned non-empty list/str is a failure."""
        try:
            res = fn(*args, **kw)
        except Exception as e:  # noqa: BLE001 - every error is a test failure
            tb = traceback.format_exc(limit=3).strip().splitlines()
            self.fail(name, "%s: %s\n      %s" % (type(e).__name__, e, "\n      ".join(tb[-4:])))
            return None
        if isinstance(res, str) and res:
            self.fail(name, res)
        elif isinstance(res, list) and res:
            self.fail(name, "\n    " + "\n    ".join(res))
        else:
            self.ok(name)
        return res

    def server_stopped(self, srv, name="server exits cleanly on SIGTERM"):
        problems = srv.stop()
        if problems:
            self.fail(name, "\n    " + "\n    ".join(problems))
        else:
            self.ok(name)

    def finish(self):
        dt = time.monotonic() - self.t0
        print("# %s: %.1f s" % (self.title, dt))
        print("%d passed, %d failed, %d skipped" % (self.passed, self.failed,
                                                    len(self.skipped)), flush=True)
        if self.failed:
            sys.exit(1)
        if self.skipped:
            print("# not everything ran: %s" % "; ".join(self.skipped), flush=True)
            sys.exit(SKIP_CODE)
        sys.exit(0)


def run_case(tally, port, case, via):
    name = "[%s] %s%s" % (via, case.label(), (" (" + case.note + ")") if case.note else "")
    try:
        r = VIAS[via](port, case)
    except Exception as e:  # noqa: BLE001
        tally.fail(name, "%s: %s" % (type(e).__name__, e))
        return None
    tally.diffs(name, diff_result(case, r))
    return r


def run_table(tally, port, cases, vias):
    for case in cases:
        for via in vias:
            run_case(tally, port, case, via)


def main_guard(tally, body):
    """Runs body(tally); an unexpected exception counts as a failure. Always
    stops servers (atexit) and prints the tally."""
    try:
        body(tally)
    except ServerError as e:
        tally.fail("server", str(e))
    except Exception as e:  # noqa: BLE001
        tally.fail("test harness", "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc()))
    finally:
        for srv in list(_live_servers):
            tally.server_stopped(srv)
    tally.finish()


# --------------------------------------------------------------------------
# helpers for the tests

def rev(ip):
    return dns.reversename.from_address(ip).to_text()


def poll(fn, timeout=5.0, interval=0.01):
    """Calls fn() until it returns a truthy value; returns (value, seconds) or
    (None, seconds) on timeout."""
    t0 = time.monotonic()
    while True:
        try:
            v = fn()
        except Exception:  # noqa: BLE001 - a failed query just means "not yet"
            v = None
        dt = time.monotonic() - t0
        if v:
            return v, dt
        if dt > timeout:
            return None, dt
        time.sleep(interval)


def write_file(path, text):
    with open(path, "w") as f:
        f.write(text)


def write_atomic(path, text):
    tmp = os.path.join(os.path.dirname(path), ".tmp-" + os.path.basename(path) + ".swp")
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def soa_serial(port, zone="cluster.local."):
    msg, _ = query(port, zone, "SOA")
    for rrset in msg.answer:
        if rrset.rdtype == dns.rdatatype.SOA:
            return rrset[0].serial
    return None


def headless_manifest(name, ns, n, base="10.250", ready=True, port_name="http", port=80):
    """A headless Service with an EndpointSlice of n endpoints (JSON text)."""
    eps = []
    for i in range(n):
        eps.append({"addresses": ["%s.%d.%d" % (base, i // 250, i % 250 + 1)],
                    "conditions": {"ready": ready}})
    svc = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": ns},
           "spec": {"clusterIP": "None",
                    "ports": [{"name": port_name, "port": port, "protocol": "TCP",
                               "targetPort": port}]}}
    sl = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
          "metadata": {"name": name + "-slice", "namespace": ns,
                       "labels": {"kubernetes.io/service-name": name}},
          "addressType": "IPv4",
          "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
          "endpoints": eps}
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [svc, sl]}, indent=1)


def rng(seed=1234):
    return random.Random(seed)


# --------------------------------------------------------------------------
# the HTTP endpoint (--http): plain urllib, and the Prometheus text format

def http_get(port, path, method="GET", timeout=5.0, host="127.0.0.1"):
    """(status, headers dict with lowercased names, body text)."""
    import urllib.error
    import urllib.request
    req = urllib.request.Request("http://%s:%d%s" % (host, port, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return (r.status, {k.lower(): v for k, v in r.headers.items()},
                    r.read().decode("utf-8", "replace"))
    except urllib.error.HTTPError as e:
        return (e.code, {k.lower(): v for k, v in e.headers.items()},
                e.read().decode("utf-8", "replace"))


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse_metrics(text):
    """Prometheus text format to {"types": {family: type}, "samples": [(name,
    {label: value}, float)]}; raises ValueError on a line that is neither a
    comment nor a well-formed sample."""
    types, samples = {}, []
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# TYPE "):
            _, _, fam, typ = line.split(" ", 3)
            types[fam] = typ
            continue
        if line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise ValueError("bad metrics line: %r" % line)
        labels = {}
        body = m.group(3) or ""
        pos = 0
        while pos < len(body):
            lm = _LABEL.match(body, pos)
            if not lm:
                raise ValueError("bad labels: %r" % line)
            labels[lm.group(1)] = (lm.group(2).replace('\\"', '"').replace("\\n", "\n")
                                   .replace("\\\\", "\\"))
            pos = lm.end()
        samples.append((m.group(1), labels, float(m.group(4))))
    return {"types": types, "samples": samples}


def metric(parsed, name, **labels):
    """Sum of the samples of `name` whose labels include `labels` (None when
    there is no such sample)."""
    total, found = 0.0, False
    for n, l, v in parsed["samples"]:
        if n == name and all(l.get(k) == str(w) for k, w in labels.items()):
            total += v
            found = True
    return total if found else None


def scrape(port):
    status, _, body = http_get(port, "/metrics")
    if status != 200:
        raise RuntimeError("/metrics answered %d" % status)
    return parse_metrics(body)
