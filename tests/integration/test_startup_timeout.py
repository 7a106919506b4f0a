"""--startup-timeout: while the first sync with the Kubernetes API is under
way, names of the cluster get no answer at all (over UDP and TCP: the client
asks again and then finds the data) until the timeout, then SERVFAIL until the
sync ends; names outside the cluster are answered meanwhile. /ready names the
resources not listed yet. A sync that ends within the timeout is never seen
as SERVFAIL; --startup-timeout 0 answers SERVFAIL at once, as before.

The fake API server holds the first list of EndpointSlices (a hung request,
as an overloaded API server gives) until the test lets it go."""

import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakeapi"))
import kubetest as k  # noqa: E402
import fakeapi  # noqa: E402

t = k.t
CLUSTER = os.path.join(k.KUBE_FIXTURES, "cluster")
WEB = "web.shop.svc.cluster.local."
HOLD_S = 3


def listening(srv):
    """CH TXT version.bind answers: the listeners are open (it is never held)."""
    wire = t.udp_exchange(srv.port, t.make_query("version.bind.", "TXT", "CH").to_wire(),
                          timeout=0.2)
    return wire is not None


def tcp_answer(port, qname):
    """An answer over TCP, or None when the connection ends without one."""
    try:
        return t.tcp_exchange(port, [t.make_query(qname).to_wire()], timeout=2)[0]
    except (OSError, EOFError, ConnectionError, socket.timeout, ValueError):
        return None
    except Exception:  # noqa: BLE001 - recv_exact's "closed early"
        return None


def ready_body(http):
    try:
        return t.http_get(http, "/ready", timeout=1)
    except OSError:
        return None


def held(tally, api):
    api.fault("endpointslices", "list", "hang", count=None)
    http = t.free_port()
    t0 = time.monotonic()
    srv = k.KubeServer(["--api-server", api.url] + k.FAST,
                       args=["--http", "127.0.0.1:%d" % http,
                             "--startup-timeout", "%ds" % HOLD_S])
    srv.start(wait=False)
    try:
        ok, _ = t.poll(lambda: listening(srv), timeout=10, interval=0.05)
        tally.check(bool(ok), "the listeners answer CHAOS names during the sync")
        if time.monotonic() - t0 < HOLD_S - 1.2:
            wire = t.udp_exchange(srv.port, t.make_query(WEB).to_wire(), timeout=0.5)
            tally.check(wire is None, "within the timeout a cluster name gets no answer (UDP)",
                        "got %r" % (wire and t.parse(wire)))
            tally.check(tcp_answer(srv.port, WEB) is None,
                        "and none over TCP (the connection ends)")
            rc = srv.rcode("example.org.", "A")
            tally.check(rc == "REFUSED", "a name outside the cluster is answered meanwhile",
                        "rcode %r" % rc)
        else:
            tally.skip("dropped within the timeout",
                       "svcdns took %.1f s to listen, past the window to check"
                       % (time.monotonic() - t0))

        def waiting():
            r = ready_body(http)
            return r if r and r[0] == 503 and "not yet listed: endpointslices)" in r[2] else None
        r, _ = t.poll(waiting, timeout=10, interval=0.05)
        tally.check(bool(r), "/ready names the resource not listed yet, and only that one",
                    repr(ready_body(http)))

        rc, _ = t.poll(lambda: srv.rcode() == "SERVFAIL", timeout=HOLD_S + 10, interval=0.1)
        elapsed = time.monotonic() - t0
        tally.check(bool(rc), "after the timeout: SERVFAIL until synced")
        tally.check(elapsed >= HOLD_S, "not before the timeout",
                    "SERVFAIL %.2f s after start" % elapsed)
        tally.check(srv.log_has("--startup-timeout 3000 ms passed before the first full sync"),
                    "the end of the wait is logged")
        tally.check(re.search(r"\(([1-9]\d*) queries went unanswered meanwhile\)",
                              srv.stderr_text()) is not None,
                    "with how many queries went unanswered")

        api.clear_faults()  # the hung list times out (--api-timeout) and is retried
        srv.wait_synced(timeout=20)
        tally.ok("the retried list syncs: the name answers")
        ok, _ = t.poll(lambda: (ready_body(http) or (0,))[0] == 200, timeout=5)
        tally.check(bool(ok), "/ready is 200 once synced", repr(ready_body(http)))
    finally:
        api.clear_faults()
        tally.server_stopped(srv)


def in_time(tally, api):
    """A sync within the timeout: a client that asks again finds the data and
    never sees SERVFAIL."""
    srv = k.KubeServer(["--api-server", api.url] + k.FAST, args=["--startup-timeout", "20s"])
    srv.start(wait=False)
    seen = set()
    try:
        def answered():
            rc = srv.rcode(WEB, "A")
            seen.add(rc)
            return rc == "NOERROR"
        ok, _ = t.poll(answered, timeout=15, interval=0.02)
        tally.check(bool(ok) and "SERVFAIL" not in seen,
                    "synced within the timeout: no answer, then the data, never SERVFAIL",
                    "rcodes seen: %r" % seen)
    finally:
        tally.server_stopped(srv)


def at_once(tally, api):
    api.fault("endpointslices", "list", "hang", count=None)
    srv = k.KubeServer(["--api-server", api.url] + k.FAST, args=["--startup-timeout", "0"])
    srv.start(wait=False)
    try:
        ok, _ = t.poll(lambda: listening(srv), timeout=10, interval=0.05)
        rc = srv.rcode(WEB, "A")
        tally.check(bool(ok) and rc == "SERVFAIL", "--startup-timeout 0: SERVFAIL at once",
                    "rcode %r" % rc)
    finally:
        api.clear_faults()
        tally.server_stopped(srv)


def main(tally):
    api = fakeapi.FakeAPI().start()
    try:
        api.apply_many(fakeapi.load_dir(CLUSTER))
        held(tally, api)
        in_time(tally, api)
        at_once(tally, api)
    finally:
        api.stop()


if __name__ == "__main__":
    t.main_guard(t.Tally("startup-timeout"), main)
