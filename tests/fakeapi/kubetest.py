"""Helpers for the tests of the Kubernetes API source: svcdns pointed at the
fake API server (fakeapi.py), and polling DNS answers until they change.

Builds on tests/integration/svcdns_testlib.py (Server, Tally, queries)."""

import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import svcdns_testlib as t  # noqa: E402
import fakeapi  # noqa: E402

KUBE_FIXTURES = os.path.join(t.FIXTURES, "kube")
# Short timeouts so that failures and retries happen within a test's time.
FAST = ["--api-timeout", "2000", "--api-backoff-max", "1000"]


class KubeServer(t.Server):
    """svcdns with the API source: `source` is the list of flags naming it
    (--api-server URL, --kubeconfig FILE, ...); env adds variables."""

    def __init__(self, source, args=(), env=None, manifests=None):
        super().__init__(manifests, args)
        self.source = list(source)
        self.env = env

    def cmdline(self):
        cmd = [t.BIN, "--listen", "127.0.0.1:%d" % self.port]
        if self.manifests:
            cmd += ["--manifests", self.manifests]
        # Never forward to this machine's resolvers: a test names its upstreams.
        if "--upstream" not in self.args:
            cmd += ["--upstream", "none"]
        # Before the first sync, SERVFAIL at once: what these tests read;
        # test_startup_timeout tests the hold that is the default.
        if "--startup-timeout" not in self.args:
            cmd += ["--startup-timeout", "0"]
        # The paged lists these tests count and break; test_watchlist tests
        # the streamed ones.
        if "--api-list-mode" not in self.args:
            cmd += ["--api-list-mode", "paged"]
        return cmd + self.source + self.args

    def start(self, wait=True, timeout=15.0):
        if not os.path.exists(t.BIN):
            raise t.ServerError("svcdns binary not found at %s (set SVCDNS_BIN)" % t.BIN)
        env = dict(os.environ)
        env.update(self.env or {})
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.cmdline(), stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, env=env)
        t._live_servers.append(self)
        if wait:
            self.wait_synced(timeout)
        return self

    def rcode(self, qname="dns-version.cluster.local.", qtype="TXT"):
        wire = t.udp_exchange(self.port, t.make_query(qname, qtype).to_wire(), timeout=0.3)
        if wire is None:
            return None
        import dns.message
        import dns.rcode
        return dns.rcode.to_text(dns.message.from_wire(wire).rcode())

    def wait_synced(self, timeout=15.0):
        """Until the cluster zone answers (the first full sync is done)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise t.ServerError("svcdns exited with status %s:\n%s"
                                    % (self.proc.returncode, self.stderr_tail()))
            if self.rcode() == "NOERROR":
                return time.monotonic()
            time.sleep(0.02)
        raise t.ServerError("svcdns not synced after %.0f s:\n%s"
                            % (timeout, self.stderr_tail()))

    def log_has(self, text):
        return text in self.stderr_text()

    def wait_log(self, text, timeout=10.0):
        v, _ = t.poll(lambda: self.log_has(text), timeout=timeout, interval=0.05)
        return bool(v)


def answer(port, name, qtype="A"):
    """(rcode, sorted rdata) of a query, via dnspython over UDP."""
    r = t.run_dnspython(port, name, qtype)
    return r.rcode, sorted(a.split(None, 4)[-1] for a in r.answer)


def wait_answer(port, name, want_rcode, want, qtype="A", timeout=10.0):
    """Polls until name answers (want_rcode, sorted(want)). Returns
    (ok, seconds, last answer)."""
    want_t = (want_rcode, sorted(want))
    last = [None]

    def probe():
        last[0] = answer(port, name, qtype)
        return last[0] == want_t
    ok, dt = t.poll(probe, timeout=timeout, interval=0.005)
    return bool(ok), dt, last[0]


def expect(tally, label, port, name, want_rcode, want, qtype="A", timeout=10.0):
    ok, dt, last = wait_answer(port, name, want_rcode, want, qtype, timeout)
    tally.check(ok, label, "after %.1f s %s %s answers %s, want %s"
                % (dt, name, qtype, last, (want_rcode, sorted(want))))
    return ok


def still(tally, label, port, name, want_rcode, want, qtype="A", seconds=1.0):
    """The answer stays as it is for `seconds` (sampled)."""
    want_t = (want_rcode, sorted(want))
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        got = answer(port, name, qtype)
        if got != want_t:
            tally.fail(label, "%s %s answered %s, want %s" % (name, qtype, got, want_t))
            return False
        time.sleep(0.05)
    tally.ok(label)
    return True


def write_kubeconfig(path, server, ca=None, ca_data=None, token=None, token_file=None,
                     cert=None, key=None, insecure=False, extra_contexts=True):
    """A kubeconfig with context "test" (current) and a decoy context."""
    cluster = ["    server: %s" % server]
    if ca:
        cluster.append("    certificate-authority: %s" % ca)
    if ca_data:
        cluster.append("    certificate-authority-data: %s" % ca_data)
    if insecure:
        cluster.append("    insecure-skip-tls-verify: true")
    user = []
    if token:
        user.append("    token: %s" % token)
    if token_file:
        user.append("    tokenFile: %s" % token_file)
    if cert:
        user.append("    client-certificate: %s" % cert)
    if key:
        user.append("    client-key: %s" % key)
    text = """apiVersion: v1
kind: Config
current-context: test
clusters:
- name: test-cluster
  cluster:
%s
- name: decoy-cluster
  cluster:
    server: https://192.0.2.1:6443
contexts:
- name: decoy
  context:
    cluster: decoy-cluster
    user: test-user
- name: test
  context:
    cluster: test-cluster
    user: test-user
    namespace: default
users:
- name: test-user
  user:
%s
""" % ("\n".join(cluster), "\n".join(user) if user else "    {}")
    with open(path, "w") as f:
        f.write(text)
    return path


def tmpdir():
    return tempfile.mkdtemp(prefix="svcdns-kube-")
