"""Connecting to the Kubernetes API: --kubeconfig over TLS (CA file relative
to the kubeconfig, *-data fields, client certificates, --context,
insecure-skip-tls-verify, a wrong CA refused), the in-cluster service account,
--token-file rotation (the next request carries the new token), 401 logged
clearly and retried with backoff, 403 naming the missing permission."""

import base64
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakeapi"))
import kubetest as k  # noqa: E402
import fakeapi  # noqa: E402

t = k.t
CLUSTER = os.path.join(k.KUBE_FIXTURES, "cluster")
TLS = os.path.join(k.KUBE_FIXTURES, "tls")
WEB = "web.shop.svc.cluster.local."


def tls_api(**kw):
    api = fakeapi.FakeAPI(tls=(os.path.join(TLS, "server.crt"), os.path.join(TLS, "server.key"),
                               os.path.join(TLS, "ca.crt")), **kw)
    api.apply_many(fakeapi.load_dir(CLUSTER))
    return api.start()


def b64file(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


def write_token(path, token):
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(token + "\n")
    os.rename(tmp, path)


def test_kubeconfig_tls(tally):
    d = t.mkdtemp(prefix="svcdns-kube-")
    api = tls_api(tokens=["kc-token"], client_cns=["svcdns-test"])
    try:
        # CA as a path relative to the kubeconfig's directory, inline token
        shutil.copy(os.path.join(TLS, "ca.crt"), os.path.join(d, "ca.crt"))
        kc = k.write_kubeconfig(os.path.join(d, "config"), api.url, ca="ca.crt",
                                token="kc-token")
        srv = k.KubeServer(["--kubeconfig", kc] + k.FAST).start()
        k.expect(tally, "kubeconfig: TLS with a relative CA path and a token", srv.port, WEB,
                 "NOERROR", ["10.96.10.10"])
        tally.check(not srv.log_has("kc-token"), "kubeconfig: the token is never logged")
        tally.server_stopped(srv)

        # client certificate and key as *-data, CA as data
        kc = os.path.join(d, "config-data")
        with open(kc, "w") as f:
            f.write("""apiVersion: v1
kind: Config
current-context: certs
clusters:
- name: c
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: u
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: certs
  context: {cluster: c, user: u}
""" % (api.url, b64file(os.path.join(TLS, "ca.crt")), b64file(os.path.join(TLS, "client.crt")),
                b64file(os.path.join(TLS, "client.key"))))
        t0 = time.monotonic()
        srv = k.KubeServer(["--kubeconfig", kc] + k.FAST).start()
        k.expect(tally, "kubeconfig: client certificate from *-data fields", srv.port, WEB,
                 "NOERROR", ["10.96.10.10"])
        reqs = api.requests_since(t0, "services")
        tally.check(reqs and all(r["auth"] is None for r in reqs),
                    "kubeconfig: a client certificate, no token, was sent")
        tally.server_stopped(srv)

        # --context picks a context other than current-context (which would fail)
        kc = os.path.join(d, "config-ctx")
        with open(kc, "w") as f:
            f.write("""apiVersion: v1
kind: Config
current-context: broken
clusters:
- name: nowhere
  cluster: {server: "https://127.0.0.1:1"}
- name: good
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: u
  user: {token: kc-token}
contexts:
- name: broken
  context: {cluster: nowhere, user: u}
- name: other
  context: {cluster: good, user: u, namespace: shop}
""" % (api.url, os.path.join(TLS, "ca.crt")))
        srv = k.KubeServer(["--kubeconfig", kc, "--context", "other"] + k.FAST).start()
        k.expect(tally, "--context selects a context", srv.port, WEB, "NOERROR",
                 ["10.96.10.10"])
        tally.server_stopped(srv)
        srv = k.KubeServer(["--kubeconfig", kc, "--context", "missing"]).start(wait=False)
        try:
            srv.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001
            pass
        tally.check(srv.proc.returncode not in (None, 0) and srv.log_has('"missing"'),
                    "--context naming no context: refused with a reason", srv.stderr_tail(3))
        srv.kill()

        # insecure-skip-tls-verify: no CA needed
        kc = k.write_kubeconfig(os.path.join(d, "config-insecure"), api.url, token="kc-token",
                                insecure=True)
        srv = k.KubeServer(["--kubeconfig", kc] + k.FAST).start()
        k.expect(tally, "kubeconfig: insecure-skip-tls-verify", srv.port, WEB, "NOERROR",
                 ["10.96.10.10"])
        tally.server_stopped(srv)

        # a CA that did not sign the server's certificate: refused, never synced
        kc = k.write_kubeconfig(os.path.join(d, "config-wrong"), api.url,
                                ca=os.path.join(TLS, "other-ca.crt"), token="kc-token")
        srv = k.KubeServer(["--kubeconfig", kc] + k.FAST).start(wait=False)
        tally.check(srv.wait_log("retrying in"), "wrong CA: the failure is logged")
        tally.check(srv.rcode(WEB, "A") == "SERVFAIL", "wrong CA: cluster names stay SERVFAIL")
        text = srv.stderr_text()
        tally.check("certificate" in text.lower() or "SSL" in text,
                    "wrong CA: the log says it is about the certificate", text[-400:])
        tally.server_stopped(srv)

        # a kubeconfig that cannot work is refused at start with a reason
        kc = os.path.join(d, "config-exec")
        with open(kc, "w") as f:
            f.write("apiVersion: v1\nkind: Config\ncurrent-context: x\nclusters:\n- name: c\n"
                    "  cluster: {server: 'https://127.0.0.1:1'}\nusers:\n- name: u\n  user:\n"
                    "    exec: {command: aws, apiVersion: client.authentication.k8s.io/v1}\n"
                    "contexts:\n- name: x\n  context: {cluster: c, user: u}\n")
        srv = k.KubeServer(["--kubeconfig", kc]).start(wait=False)
        try:
            srv.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001
            pass
        tally.check(srv.proc.returncode not in (None, 0) and srv.log_has("exec"),
                    "kubeconfig with an exec plugin: refused with a reason",
                    "status %s: %s" % (srv.proc.returncode, srv.stderr_tail()))
        srv.kill()
    finally:
        api.stop()


def test_in_cluster(tally):
    sa = t.mkdtemp(prefix="svcdns-kube-")
    api = tls_api(tokens=["sa-token-1"])
    try:
        shutil.copy(os.path.join(TLS, "ca.crt"), os.path.join(sa, "ca.crt"))
        write_token(os.path.join(sa, "token"), "sa-token-1")
        with open(os.path.join(sa, "namespace"), "w") as f:
            f.write("kube-system")
        env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(api.port),
               "SVCDNS_SERVICEACCOUNT_DIR": sa}
        srv = k.KubeServer(k.FAST, env=env).start()
        k.expect(tally, "in-cluster: service account token and CA", srv.port, WEB, "NOERROR",
                 ["10.96.10.10"])
        tally.check(srv.log_has("in-cluster"), "in-cluster: the source is logged")
        tally.server_stopped(srv)
    finally:
        api.stop()


def test_token_rotation(tally):
    d = t.mkdtemp(prefix="svcdns-kube-")
    tf = os.path.join(d, "token")
    write_token(tf, "tok-1")
    api = fakeapi.FakeAPI(tokens=["tok-1"]).start()
    try:
        api.apply_many(fakeapi.load_dir(CLUSTER))
        srv = k.KubeServer(["--api-server", api.url, "--token-file", tf] + k.FAST).start()
        api.wait_watching()
        # the token rotates: the file changes, then the old one stops working
        write_token(tf, "tok-2")
        api.tokens = {"tok-2"}
        t0 = time.monotonic()
        api.cut_watches()
        api.wait_watching()
        reqs = api.requests_since(t0)
        tally.check(reqs and all(r["auth"] == "Bearer tok-2" for r in reqs),
                    "token file rotated: the next requests carry the new token",
                    "sent %s" % [(r["resource"], r["auth"], r["status"]) for r in reqs])
        api.apply(fakeapi.service("rotated", "shop", "10.96.50.1"))
        k.expect(tally, "token file rotated: events still arrive", srv.port,
                 "rotated.shop.svc.cluster.local.", "NOERROR", ["10.96.50.1"])
        tally.check(srv.log_has("new token read"), "token file rotated: logged (no value)")
        tally.check(not srv.log_has("tok-2") and not srv.log_has("tok-1"),
                    "tokens are never logged")
        # the file disappears for a moment (an atomic swap gone wrong): the
        # previous token keeps working (a Service added afterwards arrives over
        # the new watches), and nothing was dropped meanwhile
        os.unlink(tf)
        api.cut_watches()
        api.wait_watching()
        api.apply(fakeapi.service("no-token-file", "shop", "10.96.50.2"))
        k.expect(tally, "token file missing: the previous token still works", srv.port,
                 "no-token-file.shop.svc.cluster.local.", "NOERROR", ["10.96.50.2"])
        k.expect(tally, "token file missing: still served", srv.port, WEB, "NOERROR",
                 ["10.96.10.10"], timeout=0)
        write_token(tf, "tok-2")
        tally.server_stopped(srv)
    finally:
        api.stop()


def test_401(tally):
    d = t.mkdtemp(prefix="svcdns-kube-")
    tf = os.path.join(d, "token")
    write_token(tf, "wrong")
    api = fakeapi.FakeAPI(tokens=["right"]).start()
    try:
        api.apply_many(fakeapi.load_dir(CLUSTER))
        t0 = time.monotonic()
        srv = k.KubeServer(["--api-server", api.url, "--token-file", tf] + k.FAST)
        srv.start(wait=False)
        time.sleep(4.0)
        tally.check(srv.alive(), "401: the server keeps running")
        tally.check(srv.log_has("401 Unauthorized") and srv.log_has(tf),
                    "401: logged clearly, naming the token file",
                    srv.stderr_tail(5))
        tally.check(srv.rcode(WEB, "A") == "SERVFAIL", "401: cluster names are SERVFAIL")
        n = len(api.requests_since(t0, "services"))
        # backoff: 0.25-0.5 s, then up to 1 s (--api-backoff-max 1000): about 5 in 4 s
        tally.check(3 <= n <= 12, "401: retried with backoff (%d tries in 4 s)" % n)
        times = [r["t"] for r in api.requests_since(t0, "services")]
        gaps = [b - a for a, b in zip(times, times[1:])]
        tally.check(gaps and min(gaps) >= 0.2 and max(gaps[-2:]) >= 0.45,
                    "401: retries wait and the wait grows", "gaps %s" % gaps)
        write_token(tf, "right")
        srv.wait_synced(10)
        k.expect(tally, "401: serves once the token is right", srv.port, WEB, "NOERROR",
                 ["10.96.10.10"])
        tally.server_stopped(srv)
    finally:
        api.stop()


def test_403(tally):
    api = fakeapi.FakeAPI().start()
    try:
        api.apply_many(fakeapi.load_dir(CLUSTER))
        api.forbidden.add("endpointslices")
        srv = k.KubeServer(["--api-server", api.url] + k.FAST).start(wait=False)
        tally.check(srv.wait_log("403 Forbidden"), "403: logged")
        tally.check(srv.log_has("endpointslices") and srv.log_has("ClusterRole"),
                    "403: names the resource and the RBAC to grant", srv.stderr_tail(3))
        tally.check(srv.rcode(WEB, "A") == "SERVFAIL",
                    "403: not synced without endpointslices")
        api.forbidden.clear()
        srv.wait_synced(10)
        k.expect(tally, "403: serves once allowed", srv.port, "db.shop.svc.cluster.local.",
                 "NOERROR", ["10.244.2.21", "10.244.2.22"])
        tally.server_stopped(srv)
    finally:
        api.stop()


def test_command_line(tally):
    for args, why in ((["--api-server", "ftp://x"], "--api-server needs http(s)"),
                      (["--token-file", "/nonexistent"], "--token-file alone"),
                      (["--kubeconfig", "/nonexistent/config"], "missing kubeconfig"),
                      (["--api-server", "http://127.0.0.1:1", "--namespaces", "Bad_NS"],
                       "bad --namespaces")):
        srv = k.KubeServer(args)
        srv.start(wait=False)
        try:
            srv.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001
            pass
        tally.check(srv.proc.returncode not in (None, 0) and srv.stderr_text().strip(),
                    "refused at start: %s" % why,
                    "status %s, stderr %r" % (srv.proc.returncode, srv.stderr_text()[-300:]))
        srv.kill()


def main(tally):
    test_kubeconfig_tls(tally)
    test_in_cluster(tally)
    test_token_rotation(tally)
    test_401(tally)
    test_403(tally)
    test_command_line(tally)


if __name__ == "__main__":
    t.main_guard(t.Tally("kube auth"), main)
