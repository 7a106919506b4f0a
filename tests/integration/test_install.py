"""What `cmake --install` ships: the binary in sbin, the systemd unit with its
ExecStart naming the installed binary, the example configuration, and nothing
else; into a DESTDIR under the build directory, with two prefixes (the one a
distribution uses and one of its own). The example configuration is one that
svcdns --check-config accepts, and a broken copy of it is one it refuses."""

import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import svcdns_testlib as t  # noqa: E402

BUILD = os.environ.get("SVCDNS_BUILD") or os.path.dirname(os.path.abspath(t.BIN))
CMAKE = os.environ.get("CMAKE_COMMAND") or "cmake"
UNIT_SOURCE = os.path.join(t.SOURCE, "contrib", "systemd", "svcdns.service")
EXAMPLE_SOURCE = os.path.join(t.SOURCE, "contrib", "svcdns.conf.example")


def layout(name):
    """A folder of the install layout the build was configured with
    (GNUInstallDirs), as tests/CMakeLists.txt passes it; the defaults when
    the test runs by hand."""
    defaults = {"SBINDIR": "sbin", "DOCDIR": "share/doc/svcdns", "UNITDIR": "lib/systemd/system",
                "MANDIR": "share/man"}
    return os.environ.get("SVCDNS_INSTALL_" + name) or defaults[name]


def under(prefix, d):
    return d if os.path.isabs(d) else os.path.join(prefix, d)


def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def files_below(root):
    out = set()
    for d, _, names in os.walk(root):
        for n in names:
            out.add("/" + os.path.relpath(os.path.join(d, n), root))
    return out


def version_of(binary):
    p = subprocess.run([binary, "--version"], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=20)
    return p.returncode, p.stdout.strip()


def check_install(tally, prefix):
    sbin = under(prefix, layout("SBINDIR"))
    docdir = under(prefix, layout("DOCDIR"))
    unitdir = under(prefix, layout("UNITDIR"))
    binary = sbin + "/svcdns"
    unit = unitdir + "/svcdns.service"
    example = docdir + "/examples/svcdns.conf.example"
    manpage = under(prefix, layout("MANDIR")) + "/man8/svcdns.8"
    label = "--prefix %s: " % prefix

    destdir = tempfile.mkdtemp(prefix="test-install-", dir=BUILD)
    t._tmpdirs.append(destdir)
    env = dict(os.environ, DESTDIR=destdir)
    p = subprocess.run([CMAKE, "--install", BUILD, "--prefix", prefix], env=env,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    if not tally.check(p.returncode == 0, label + "cmake --install succeeds",
                       "exit %d:\n%s%s" % (p.returncode, p.stdout[-1500:], p.stderr[-1500:])):
        return

    got = files_below(destdir)
    want = {binary, unit, example, manpage}
    tally.check(got == want, label + "installs the binary, the unit, the example and the manual "
                "page, nothing else",
                "missing %s, unexpected %s" % (sorted(want - got), sorted(got - want)))

    m = destdir + manpage
    tally.check(os.path.isfile(m) and read(m).startswith(".TH SVCDNS 8"),
                label + "the manual page svcdns(8), from the option table", m)

    d = destdir + binary
    tally.check(os.path.isfile(d) and os.stat(d).st_mode & 0o777 == 0o755
                and read(d, "rb") == read(t.BIN, "rb"),
                label + "the binary is the build's, mode 0755", d)
    if os.path.isfile(d):
        tally.check(version_of(d) == version_of(t.BIN) and version_of(d)[0] == 0,
                    label + "the installed binary runs", "%s vs %s" % (version_of(d),
                                                                       version_of(t.BIN)))

    u = destdir + unit
    if tally.check(os.path.isfile(u), label + "the unit is in " + unitdir):
        text, src = read(u), read(UNIT_SOURCE)
        execs = re.findall(r"^ExecStart=(\S+)", text, re.M)
        tally.check(execs == [binary], label + "ExecStart names the installed binary",
                    "ExecStart lines: %s" % execs)
        tally.check(destdir not in text, label + "the unit does not name DESTDIR")
        rest = re.sub(r"^ExecStart=\S+", "ExecStart=", text, flags=re.M)
        tally.check(rest == re.sub(r"^ExecStart=\S+", "ExecStart=", src, flags=re.M),
                    label + "the rest of the unit is contrib/systemd/svcdns.service's")

    e = destdir + example
    tally.check(os.path.isfile(e) and read(e) == read(EXAMPLE_SOURCE),
                label + "the example configuration is contrib/svcdns.conf.example", e)


def check_config(binary, conf):
    p = subprocess.run([binary, "--config", conf, "--check-config"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=20)
    return p.returncode, p.stdout + p.stderr


def check_example(tally):
    rc, out = check_config(t.BIN, EXAMPLE_SOURCE)
    tally.check(rc == 0 and "configuration OK" in out,
                "svcdns --config contrib/svcdns.conf.example --check-config accepts it",
                "exit %d: %s" % (rc, out[-600:]))
    # The check reads the file: the same file with one bad line is refused,
    # and the reason names what is wrong.
    d = tempfile.mkdtemp(prefix="test-install-conf-", dir=BUILD)
    t._tmpdirs.append(d)
    for extra, reason in (("threads lots", "--threads lots"),
                          ("listen nowhere", "--listen nowhere"),
                          ("no-such-option 1", "no-such-option")):
        bad = os.path.join(d, "bad.conf")
        t.write_file(bad, read(EXAMPLE_SOURCE) + extra + "\n")
        rc, out = check_config(t.BIN, bad)
        tally.check(rc == 2 and reason in out,
                    "the example with '%s' added is refused" % extra,
                    "exit %d: %s" % (rc, out[-600:]))


def main(tally):
    if not os.path.isfile(os.path.join(BUILD, "cmake_install.cmake")):
        raise RuntimeError("%s is not a configured build directory (set SVCDNS_BUILD)" % BUILD)
    check_install(tally, "/usr")
    check_install(tally, "/opt/svcdns")
    check_example(tally)


if __name__ == "__main__":
    t.main_guard(t.Tally("install"), main)
