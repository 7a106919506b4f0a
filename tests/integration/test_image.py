"""The container image (contrib/Dockerfile), built with podman and checked
without running a container.

The base is a Debian root made by debootstrap (cached in the build directory,
made again after 30 days), imported into a podman store of the test's own, so
that no image registry is needed and the machine's images are not touched.
The image is built with `podman build --isolation chroot`, then:

  * its configuration: user 65532:65532, the entrypoint, the ports, one layer
    (nothing from a distribution under it), a size within CoreDNS's 50 MB;
  * its root, copied out of `podman image mount` with every attribute: no
    shell, the binary's file capability exactly cap_net_bind_service, the
    user's passwd line, CA certificates, the libraries' copyright files;
  * svcdns run in that root by chroot as user 65532: it binds port 53 through
    the file capability (a copy of the binary without it cannot), answers
    dig over UDP and TCP and /ready, holds no other capability, and exits 0 on
    SIGTERM; then, as in a pod, with no source named, it finds the service
    account in /var/run/secrets and syncs from a fake API server over TLS
    (libcurl, OpenSSL and their libraries, as shipped in the image).

Skipped (77) without root, podman, debootstrap, getcap or dig, or where the
kernel lets any user bind port 53 (the capability would prove nothing). It
takes about 4 minutes (2 with the Debian root cached), most of it debootstrap
and the build stage's apt-get and compiler. SVCDNS_DEBIAN_MIRROR names a Debian
mirror for debootstrap; the build stage uses the base's apt sources."""

import fnmatch
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "fakeapi"))
import svcdns_testlib as t  # noqa: E402
import fakeapi  # noqa: E402

BUILD = os.environ.get("SVCDNS_BUILD") or os.path.dirname(os.path.abspath(t.BIN))
CACHE = os.path.join(BUILD, "image-cache")
BASE_TAR = os.path.join(CACHE, "debian-bookworm-minbase.tar")
BASE_MAX_AGE_S = 30 * 86400
SIZE_BUDGET = 50 * 1000 * 1000
UID = 65532
CAP_NET_BIND_SERVICE = 10
KUBE = os.path.join(t.FIXTURES, "kube")
WEB = "web.shop.svc.cluster.local."
CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"


def skip(reason):
    print("SKIP: " + reason, flush=True)
    sys.exit(77)


def preconditions():
    if os.geteuid() != 0:
        skip("podman build and chroot need root")
    for tool, pkg in (("podman", "podman"), ("debootstrap", "debootstrap"),
                      ("getcap", "libcap2-bin"), ("dig", "bind9-dnsutils")):
        if not shutil.which(tool):
            skip("%s is not installed (Debian package %s)" % (tool, pkg))
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        start = int(f.read())
    if start <= 53:
        skip("net.ipv4.ip_unprivileged_port_start is %d: any user may bind port 53, so the "
             "file capability cannot be checked" % start)
    # The build context is the source tree: a build directory inside it must be
    # one that .dockerignore leaves out, or the context holds this test's store.
    rel = os.path.relpath(os.path.realpath(BUILD), os.path.realpath(t.SOURCE))
    if not rel.startswith(".."):
        top = rel.split(os.sep)[0]
        if not any(fnmatch.fnmatch(top, p) for p in ("build", "build-*", "build_*",
                                                      "cmake-build-*")):
            skip("the build directory %s is inside the source tree under a name that "
                 ".dockerignore does not exclude" % BUILD)


def run(cmd, timeout, env=None, log=None):
    """Runs cmd; returns (exit code, output). With log, output goes there."""
    if log:
        with open(log, "wb") as f:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                               timeout=timeout, env=env)
        with open(log, "rb") as f:
            return p.returncode, f.read().decode("utf-8", "replace")
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout, env=env)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def tail(text, n=25):
    return "\n".join("    | " + line for line in text.splitlines()[-n:])


def mounts_under(path):
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return sorted((m for m in points if m.startswith(path.rstrip("/") + "/")), reverse=True)


def remove_tree(path):
    """Removes a work directory, after unmounting what a tool (debootstrap,
    the store's driver) left mounted in it; never removes through a mount."""
    for m in mounts_under(path):
        subprocess.run(["umount", m], stdin=subprocess.DEVNULL, capture_output=True)
    if mounts_under(path):
        return "still mounted under %s: %s" % (path, mounts_under(path))
    shutil.rmtree(path, ignore_errors=True)
    return "" if not os.path.exists(path) else "%s could not be removed" % path


def base_root():
    """The cached debootstrap root as a tar file, made when missing or old."""
    if os.path.exists(BASE_TAR) and time.time() - os.path.getmtime(BASE_TAR) < BASE_MAX_AGE_S:
        return "cached"
    os.makedirs(CACHE, exist_ok=True)
    work = tempfile.mkdtemp(prefix="debootstrap-", dir=CACHE)
    try:
        root = os.path.join(work, "root")
        cmd = ["debootstrap", "--variant=minbase", "bookworm", root]
        if os.environ.get("SVCDNS_DEBIAN_MIRROR"):
            cmd.append(os.environ["SVCDNS_DEBIAN_MIRROR"])
        rc, out = run(cmd, 900, log=os.path.join(work, "debootstrap.log"))
        if rc != 0:
            print(tail(out))
            skip("debootstrap could not make a Debian root (exit %d; is a Debian mirror "
                 "reachable? SVCDNS_DEBIAN_MIRROR names one)" % rc)
        # The build stage runs apt-get update itself: the package cache and
        # lists only make the base larger.
        for d in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for name in os.listdir(os.path.join(root, d)):
                p = os.path.join(root, d, name)
                if os.path.isfile(p) and name != "lock":
                    os.unlink(p)
        partial = os.path.join(work, "root.tar")
        rc, out = run(["tar", "-C", root, "--numeric-owner", "-cf", partial, "."], 300)
        if rc != 0:
            raise RuntimeError("tar of the debootstrap root failed:\n" + tail(out))
        os.rename(partial, BASE_TAR)
        return "made"
    finally:
        remove_tree(work)


class Podman:
    """podman on a store of the test's own under `work`; remembers what it
    made, to remove it by ID."""

    def __init__(self, work):
        self.work = work
        self.tmp = os.path.join(work, "tmp")
        os.makedirs(self.tmp)
        # podman wants a short runroot (sockets are named under it): /run,
        # a tmpfs like the default one.
        self.runroot = tempfile.mkdtemp(prefix="svcdns-image-", dir="/run")
        self.base = ["podman", "--root", os.path.join(work, "storage"),
                     "--runroot", self.runroot]
        # podman import and build stage files in TMPDIR: keep them here too.
        self.env = dict(os.environ, TMPDIR=self.tmp)
        self.mounted = []

    def __call__(self, *args, timeout=120, log=None):
        return run(self.base + list(args), timeout, env=self.env, log=log)

    def must(self, *args, timeout=120):
        rc, out = self(*args, timeout=timeout)
        if rc != 0:
            raise RuntimeError("podman %s: exit %d\n%s" % (" ".join(args), rc, tail(out)))
        return out.strip()

    def ids(self, what):
        """IDs of every image, or every container (buildah's too), in the store."""
        if what == "images":
            out = self.must("images", "--all", "--no-trunc", "--format", "{{.ID}}")
        else:
            out = self.must("ps", "--all", "--external", "--no-trunc", "--format", "{{.ID}}")
        return [line for line in out.split() if line]

    def cleanup(self):
        problems = []
        try:
            for image in self.mounted:
                self("image", "unmount", image)
            for cid in self.ids("containers"):
                rc, out = self("rm", "--force", cid)
                if rc != 0:
                    problems.append("podman rm %s: %s" % (cid, out.strip()[-200:]))
            for image in self.ids("images"):
                rc, out = self("rmi", "--force", image)
                if rc != 0 and image in self.ids("images"):
                    problems.append("podman rmi %s: %s" % (image, out.strip()[-200:]))
            left = self.ids("images") + self.ids("containers")
            if left:
                problems.append("left in the store: %s" % left)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            problems.append(str(e))
        for d in (self.runroot, self.work):
            why = remove_tree(d)
            if why:
                problems.append(why)
        return problems


def capabilities(path):
    """The permitted capability bits and the effective flag of a file's
    security.capability attribute (struct vfs_cap_data), or None."""
    try:
        raw = os.getxattr(path, "security.capability")
    except OSError:
        return None
    magic = int.from_bytes(raw[0:4], "little")
    permitted = int.from_bytes(raw[4:8], "little")
    if len(raw) >= 16:
        permitted |= int.from_bytes(raw[12:16], "little") << 32
    return permitted, bool(magic & 1)


def free_loopback53():
    """An address in 127/8 whose port 53 is free for UDP and TCP: port 53 of
    127.0.0.1 may belong to a resolver of this machine."""
    rnd = t.rng(os.getpid())
    for _ in range(50):
        addr = "127.%d.%d.%d" % (rnd.randrange(1, 255), rnd.randrange(0, 256),
                                 rnd.randrange(1, 255))
        socks = []
        try:
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                s = socket.socket(socket.AF_INET, kind)
                socks.append(s)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((addr, 53))
            return addr
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no loopback address with port 53 free")


def free_port_on(addr):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((addr, 0))
        return s.getsockname()[1]
    finally:
        s.close()


class ChrootServer(t.Server):
    """svcdns in the image's root, by chroot, as user 65532, on ADDR:53."""

    def __init__(self, root, addr, args, binary="/usr/local/bin/svcdns", env=None):
        super().__init__(None, args)
        self.root, self.addr, self.binary, self.env = root, addr, binary, env
        self.port = 53

    def cmdline(self):
        return ([CHROOT, "--userspec=%d:%d" % (UID, UID), self.root, self.binary,
                 "--listen", "%s:53" % self.addr, "--upstream", "none", "--threads", "1"]
                + self.args)

    def start(self, wait=True):
        env = {"PATH": "/usr/local/bin"}
        env.update(self.env or {})
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.cmdline(), stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, env=env)
        t._live_servers.append(self)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=20.0):
        deadline = time.monotonic() + timeout
        q = t.make_query("dns-version.cluster.local.", "TXT").to_wire()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise t.ServerError("svcdns in the image exited with status %s:\n%s"
                                    % (self.proc.returncode, self.stderr_tail()))
            if t.udp_exchange(53, q, timeout=0.2, host=self.addr) is not None:
                return
            time.sleep(0.05)
        raise t.ServerError("svcdns in the image not answering on %s:53 after %.0f s:\n%s"
                            % (self.addr, timeout, self.stderr_tail()))

    def dig(self, qname, qtype="A", tcp=False):
        cmd = ["dig", "-r", "@" + self.addr, "-p", "53", "+tries=1", "+time=2", "-t", qtype,
               "-q", qname] + (["+tcp"] if tcp else [])
        rc, out = run(cmd, 20)
        return t.parse_dig(out)

    def status(self):
        """Uid and capability lines of /proc/PID/status."""
        out = {}
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k] = v.split()
        return out


def addresses(r):
    return sorted(rec.split()[-1] for rec in r.answer if rec.split()[3] == "A")


def check_config(tally, podman, image):
    info = json.loads(podman.must("image", "inspect", image))[0]
    size = info.get("Size", 0)
    print("# image size: %d bytes (%.1f MB)" % (size, size / 1e6), flush=True)
    tally.check(0 < size <= SIZE_BUDGET, "the image is at most 50 MB",
                "%d bytes" % size)
    cfg = info.get("Config", {})
    tally.check(cfg.get("User") == "%d:%d" % (UID, UID), "it runs as 65532:65532",
                repr(cfg.get("User")))
    tally.check(cfg.get("Entrypoint") == ["/usr/local/bin/svcdns"],
                "its entrypoint is /usr/local/bin/svcdns", repr(cfg.get("Entrypoint")))
    ports = set((cfg.get("ExposedPorts") or {}).keys())
    tally.check({"53/udp", "53/tcp", "9153/tcp"} <= ports, "it exposes 53/udp, 53/tcp, 9153/tcp",
                repr(sorted(ports)))
    layers = info.get("RootFS", {}).get("Layers", [])
    tally.check(len(layers) == 1, "one layer: no distribution under the root it ships",
                "%d layers" % len(layers))


def check_root(tally, root):
    binary = os.path.join(root, "usr/local/bin/svcdns")
    tally.check(not os.path.lexists(os.path.join(root, "bin/sh"))
                and not os.path.lexists(os.path.join(root, "usr/bin/dpkg")),
                "the root holds no shell and no package manager")
    rc, out = run(["getcap", binary], 20)
    tally.check(rc == 0 and out.split()[-1:] == ["cap_net_bind_service=ep"],
                "getcap: the binary carries cap_net_bind_service=ep, nothing else", out.strip())
    caps = capabilities(binary)
    tally.check(caps == (1 << CAP_NET_BIND_SERVICE, True),
                "security.capability: NET_BIND_SERVICE permitted and effective", repr(caps))
    with open(os.path.join(root, "etc/passwd")) as f:
        users = [line.split(":") for line in f]
    tally.check(any(u[2:4] == [str(UID), str(UID)] for u in users if len(u) > 3),
                "/etc/passwd names user 65532")
    ca = os.path.join(root, "etc/ssl/certs/ca-certificates.crt")
    with open(ca, "rb") as f:
        head = f.read(64)
    tally.check(head.startswith(b"-----BEGIN CERTIFICATE-----"),
                "the CA bundle is there", repr(head[:40]))
    tally.check(os.path.isfile(os.path.join(root, "usr/share/doc/libc6/copyright")),
                "the libraries' copyright files are there (libc6's)")
    rc, out = run([CHROOT, "--userspec=%d:%d" % (UID, UID), root, "/usr/local/bin/svcdns",
                   "--version"], 20)
    _, want = run([t.BIN, "--version"], 20)
    tally.check(rc == 0 and out.strip() == want.strip(),
                "svcdns --version runs in the root alone, as 65532",
                "exit %d: %s (the build's: %s)" % (rc, out.strip(), want.strip()))


def check_serving(tally, root):
    addr = free_loopback53()
    shutil.copytree(os.path.join(t.SOURCE, "contrib", "demo"), os.path.join(root, "demo"))

    # The capability is what lets it bind: the same binary without it cannot.
    nocap = os.path.join(root, "usr/local/bin/svcdns-nocap")
    shutil.copyfile(os.path.join(root, "usr/local/bin/svcdns"), nocap)
    os.chmod(nocap, 0o755)
    srv = ChrootServer(root, addr, ["--manifests", "/demo"],
                       binary="/usr/local/bin/svcdns-nocap").start(wait=False)
    try:
        srv.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    tally.check(srv.proc.returncode not in (None, 0) and "Permission denied" in srv.stderr_text(),
                "without the file capability, user 65532 cannot bind port 53",
                "status %s:\n%s" % (srv.proc.returncode, srv.stderr_tail()))
    srv.kill()
    os.unlink(nocap)

    http = free_port_on(addr)
    srv = ChrootServer(root, addr, ["--manifests", "/demo", "--http", "%s:%d" % (addr, http),
                                    "--lameduck", "0"]).start()
    st = srv.status()
    tally.check(st.get("Uid") == [str(UID)] * 4, "it runs as uid 65532", repr(st.get("Uid")))
    cap_eff = int(st.get("CapEff", ["-1"])[0], 16)
    tally.check(cap_eff == 1 << CAP_NET_BIND_SERVICE,
                "its only effective capability is NET_BIND_SERVICE", "CapEff %x" % cap_eff)
    r = srv.dig(WEB)
    tally.check(r.rcode == "NOERROR" and addresses(r) == ["10.96.10.10"],
                "dig over UDP on port 53: web.shop's ClusterIP", r.raw[-600:])
    r = srv.dig("_http._tcp." + WEB, "SRV", tcp=True)
    tally.check(r.rcode == "NOERROR" and any(" SRV " in rec and " 80 " in rec for rec in r.answer),
                "dig over TCP on port 53: web.shop's http SRV", r.raw[-600:])
    status, _, body = t.http_get(http, "/ready", host=addr)
    tally.check(status == 200, "/ready answers 200 (libmicrohttpd)", "%s %s" % (status, body))
    tally.server_stopped(srv, "SIGTERM: it exits 0")


def check_in_cluster(tally, root):
    """As in a pod: no source named, the service account in its usual place,
    the API over TLS."""
    tls = os.path.join(KUBE, "tls")
    api = fakeapi.FakeAPI(tls=(os.path.join(tls, "server.crt"), os.path.join(tls, "server.key"),
                               None), tokens=["image-token"])
    api.apply_many(fakeapi.load_dir(os.path.join(KUBE, "cluster")))
    api.start()
    try:
        sa = os.path.join(root, "var/run/secrets/kubernetes.io/serviceaccount")
        os.makedirs(sa)
        shutil.copy(os.path.join(tls, "ca.crt"), os.path.join(sa, "ca.crt"))
        t.write_file(os.path.join(sa, "token"), "image-token\n")
        t.write_file(os.path.join(sa, "namespace"), "kube-system\n")
        addr = free_loopback53()
        env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(api.port)}
        srv = ChrootServer(root, addr, [], env=env).start()

        def synced():
            r = srv.dig(WEB)
            return r.rcode == "NOERROR" and addresses(r) == ["10.96.10.10"]
        ok, dt = t.poll(synced, timeout=20, interval=0.1)
        tally.check(bool(ok), "in-cluster over TLS: the API's Services are served",
                    "after %.1f s:\n%s" % (dt, srv.stderr_tail()))
        auths = {r["auth"] for r in api.requests_since(0)}
        tally.check(auths == {"Bearer image-token"},
                    "in-cluster: every request carried the service account's token",
                    repr(auths))
        tally.server_stopped(srv, "in-cluster: SIGTERM, exit 0")
    finally:
        api.stop()


def main(tally, base_how):
    work = tempfile.mkdtemp(prefix="run-", dir=CACHE)
    podman = Podman(work)
    try:
        t0 = time.monotonic()
        base = podman.must("import", BASE_TAR, "localhost/svcdns-test-base:bookworm",
                           timeout=300).split()[-1]
        print("# Debian root %s; imported as %s" % (base_how, base), flush=True)
        iid = os.path.join(work, "iid")
        log = os.path.join(work, "build.log")
        rc, out = podman("build", "--isolation", "chroot", "--layers=false", "--pull=never",
                         "--build-arg", "BASE=localhost/svcdns-test-base:bookworm",
                         "--iidfile", iid, "-t", "localhost/svcdns-test:latest",
                         "-f", os.path.join(t.SOURCE, "contrib", "Dockerfile"), t.SOURCE,
                         timeout=600, log=log)
        t_build = time.monotonic()
        print("# podman build: %.0f s" % (t_build - t0), flush=True)
        if not tally.check(rc == 0, "podman build --isolation chroot builds contrib/Dockerfile",
                           "exit %d:\n%s" % (rc, tail(out, 40))):
            return
        with open(iid) as f:
            image = f.read().strip()
        check_config(tally, podman, image)
        mnt = podman.must("image", "mount", image)
        podman.mounted.append(image)
        root = os.path.join(work, "root")
        rc, out = run(["cp", "-a", "--preserve=all", mnt + "/.", root], 120)
        podman("image", "unmount", image)
        podman.mounted.remove(image)
        if not tally.check(rc == 0, "the image's root copies out with its attributes", out):
            return
        check_root(tally, root)
        check_serving(tally, root)
        check_in_cluster(tally, root)
        print("# checks: %.0f s" % (time.monotonic() - t_build), flush=True)
    finally:
        for srv in list(t._live_servers):
            srv.kill()
        problems = podman.cleanup()
        tally.check(not problems, "every image and container the test made is removed, and "
                    "its store and work directories", "\n    ".join(problems))


if __name__ == "__main__":
    # Before the tally: a skip must end the test with 77, not with its count.
    preconditions()
    t_start = time.monotonic()
    how = base_root()
    how = "%s in %.0f s" % (how, time.monotonic() - t_start)
    t.main_guard(t.Tally("image"), lambda tally: main(tally, how))
