"""Every transcript in README.md and doc/*.md prints what the page says.

A transcript is a fenced block with `$ dig ...` (or `$ kdig ...`) lines, each
followed by what it prints. Unless the block says otherwise, it runs against
the demo cluster exactly as `contrib/quickstart.sh run` serves it: the test
asks `contrib/quickstart.sh demo-command` for that command line and changes
only the port (a free one for 5353) and the binary (the one under test). An
HTML comment on the line before the fence says otherwise:

    <!-- transcript: commands -->
        the block's own `$ ` lines set up what it needs, and run in order:
        `mkdir -p DIR` (a temporary directory stands in for DIR) and
        `build/svcdns ... &` (started; every --listen port becomes a free one,
        in that command and in the lines after it)
    <!-- transcript: tested-by tests/integration/FILE.py -->
        that test runs it (it must read this page)
    <!-- transcript: illustrative: WHY -->
        not run, for the reason given (a real cluster, say)

A `dig` or `kdig` command anywhere else in a fenced block is an error: every
one shown is either run or marked. In the expected output, `*` matches one
whitespace-free token (query IDs and SOA serials change); runs of whitespace
compare equal, since dig aligns columns with tabs.

Also checked: relative links between the pages lead to files that exist, and
doc/flags.md names every option that `svcdns --help` lists."""
import glob
import os
import re
import shlex
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import svcdns_testlib as lib  # noqa: E402

SOURCE = os.path.abspath(lib.SOURCE)
BIN = os.path.abspath(lib.BIN)
BLOCK_RE = re.compile(r"(?:^<!-- transcript: (.*?) -->\n)?^```[a-z]*\n(.*?)^```", re.S | re.M)
CLIENT_RE = re.compile(r"^(\$ )?k?dig ")


def pages():
    return ["README.md"] + sorted(os.path.relpath(p, SOURCE)
                                  for p in glob.glob(os.path.join(SOURCE, "doc", "*.md")))


def read(rel):
    with open(os.path.join(SOURCE, rel), encoding="utf-8") as f:
        return f.read()


def commands(block):
    """(command, expected output lines) for each `$ ` line, continuations joined."""
    lines = block.splitlines()
    out, i = [], 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            i += 1
            continue
        cmd = lines[i][2:]
        i += 1
        while cmd.endswith("\\") and i < len(lines):
            cmd = cmd[:-1] + " " + lines[i].strip()
            i += 1
        want = []
        while i < len(lines) and not lines[i].startswith("$ "):
            want.append(lines[i])
            i += 1
        out.append((cmd, [w for w in want if w.strip()]))
    return out


def transcripts():
    """(page, kind, block) for every fenced block that shows a dig or kdig
    command, and (page, None, why) for every one that breaks the rules."""
    found = []
    for page in pages():
        for mark, block in BLOCK_RE.findall(read(page)):
            lines = block.splitlines()
            if not any(CLIENT_RE.match(l) for l in lines):
                continue
            if mark.startswith("illustrative:"):
                if not mark[len("illustrative:"):].strip():
                    found.append((page, None, "an illustrative block without a reason"))
                continue
            bare = [l for l in lines if CLIENT_RE.match(l) and not l.startswith("$ ")]
            if bare:
                found.append((page, None, "%r is neither run (`$ ` and its output) nor in a "
                              "block marked illustrative" % bare[0]))
            elif mark in ("", "commands") or mark.startswith("tested-by "):
                found.append((page, mark or "demo", block))
            else:
                found.append((page, None, "unknown transcript mark %r" % mark))
    return found


def normalise(line):
    return " ".join(line.split())


def matches(want, got):
    w, g = normalise(want).split(" "), normalise(got).split(" ")
    if len(w) != len(g):
        return False
    return all(a == "*" or a == b for a, b in zip(w, g))


def rrsets_sorted(lines):
    """The lines with each run of records of one owner and type sorted: svcdns
    rotates A, AAAA and SRV answers of several records (--no-rotate), so a
    transcript shows one order of many."""
    out, run, key = [], [], None
    for line in lines + [None]:
        tok = normalise(line).split(" ") if line is not None else []
        k = (tok[0], tok[3]) if len(tok) >= 5 and tok[2] == "IN" else None
        if run and (k is None or k != key):
            out += sorted(run, key=normalise)
            run = []
        if line is None:
            break
        if k is None:
            out.append(line)
        else:
            run.append(line)
        key = k
    return out


def with_ports(text, ports):
    for old, new in ports.items():
        text = re.sub(r"(-p |127\.0\.0\.1:)%d\b" % old, r"\g<1>%d" % new, text)
    return text


def check_client(t, page, cmd, want, ports):
    real = with_ports(cmd, ports)
    got = subprocess.run(["bash", "-c", real], capture_output=True, text=True,
                         timeout=20).stdout.splitlines()
    got = rrsets_sorted([line for line in got if line.strip()])
    want = rrsets_sorted(list(want))
    ok = len(got) == len(want) and all(matches(a, b) for a, b in zip(want, got))
    t.check(ok, "%s: %s" % (page, cmd), "\n  want: %r\n  got:  %r" % (want, got))


class CommandServer(lib.Server):
    """svcdns started with a command line given whole."""

    def __init__(self, argv, port):
        super().__init__(manifests=None)
        self.argv = argv
        self.port = port

    def cmdline(self):
        return self.argv


def demo_server():
    """The demo as `contrib/quickstart.sh run --listen 127.0.0.1:PORT` serves it."""
    port = lib.free_port()
    printed = subprocess.run(["bash", os.path.join(SOURCE, "contrib", "quickstart.sh"),
                              "demo-command", "--listen", "127.0.0.1:%d" % port],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    argv = shlex.split(printed)
    if not argv or not argv[0].endswith("/build/svcdns"):
        raise lib.ServerError("quickstart.sh demo-command printed %r" % printed)
    return CommandServer([BIN] + argv[1:], port).start()


def run_commands(t, page, block):
    """A block that starts what it needs: see the module's comment."""
    ports, dirs, servers = {}, {}, []
    try:
        for cmd, want in commands(block):
            words = shlex.split(cmd, comments=True)
            if words[:2] == ["mkdir", "-p"] and len(words) == 3:
                dirs[words[2]] = lib.mkdtemp()
            elif words[:1] == ["build/svcdns"] and words[-1] == "&":
                argv = [BIN] + [dirs.get(w, w) for w in words[1:-1]]
                for i, w in enumerate(argv[:-1]):
                    m = re.fullmatch(r"127\.0\.0\.1:(\d+)", argv[i + 1])
                    if w == "--listen" and m:
                        ports[int(m.group(1))] = lib.free_port()
                argv = [with_ports(w, ports) for w in argv]
                old = int(re.search(r"--listen 127\.0\.0\.1:(\d+)", cmd).group(1))
                srv = CommandServer(argv, ports[old])
                srv.shown = " ".join(words[:-1])
                servers.append(srv.start())
            elif CLIENT_RE.match(cmd):
                check_client(t, page, cmd, want, ports)
            else:
                t.fail("%s: %s" % (page, cmd), "a commands transcript cannot run this line")
    finally:
        for srv in servers:
            t.server_stopped(srv, "%s: %s: exits cleanly" % (page, srv.shown))


def check_links(t):
    for page in pages():
        base = os.path.dirname(os.path.join(SOURCE, page))
        for target in sorted(set(re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", read(page)))):
            t.check(os.path.exists(os.path.join(base, target)),
                    "%s: link to %s" % (page, target), "no such file")


def check_flags(t):
    help_text = subprocess.run([BIN, "--help"], capture_output=True, text=True,
                               timeout=10).stdout
    flags = sorted(set(re.findall(r"^\s+(--[a-z-]+)", help_text, flags=re.M)))
    doc = read(os.path.join("doc", "flags.md"))
    missing = [f for f in flags if not re.search(re.escape(f) + r"\b(?!-)", doc)]
    t.check(len(flags) > 40 and not missing, "doc/flags.md names every option of --help",
            "%d options in --help; missing: %s" % (len(flags), missing))


def body(t):
    os.chdir(SOURCE)  # the pages' commands name paths from the repository's root
    found = transcripts()
    readme_digs = sum(len(commands(b)) for p, k, b in found if p == "README.md" and k == "demo")
    t.check(readme_digs >= 10, "README.md shows the demo's answers",
            "only %d dig examples found" % readme_digs)
    check_links(t)
    check_flags(t)
    srv = demo_server()
    for page, kind, block in found:
        if kind is None:
            t.fail(page, block)
        elif kind == "demo":
            for cmd, want in commands(block):
                if CLIENT_RE.match(cmd):
                    check_client(t, page, cmd, want, {5353: srv.port})
                else:
                    t.fail("%s: %s" % (page, cmd), "a demo transcript runs dig only")
        elif kind == "commands":
            run_commands(t, page, block)
        else:
            test = kind[len("tested-by "):]
            path = os.path.join(SOURCE, test)
            t.check(os.path.exists(path) and page in read(test),
                    "%s: a transcript run by %s" % (page, test),
                    "%s does not read %s" % (test, page))
    t.server_stopped(srv, "the demo exits cleanly on SIGTERM")


if __name__ == "__main__":
    lib.main_guard(lib.Tally("readme"), body)
