"""Every `$ dig ...` command in README.md, run against the demo cluster in
contrib/demo, must print what the README says it prints.

The README's commands name port 5353; the test serves the demo on a free port
and substitutes it. In the expected output, `*` matches one
whitespace-free token (query IDs and SOA serials change); runs of whitespace
compare equal, since dig aligns columns with tabs."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import svcdns_testlib as lib  # noqa: E402

SOURCE = os.environ.get("SVCDNS_SOURCE", os.path.join(os.path.dirname(__file__), "..", ".."))


def readme_cases():
    text = open(os.path.join(SOURCE, "README.md"), encoding="utf-8").read()
    cases = []
    for block in re.findall(r"```\n(.*?)```", text, flags=re.S):
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            if lines[i].startswith("$ dig "):
                cmd = lines[i][2:]
                i += 1
                out = []
                while i < len(lines) and not lines[i].startswith("$ "):
                    out.append(lines[i])
                    i += 1
                cases.append((cmd, out))
            else:
                i += 1
    return cases


def normalise(line):
    return " ".join(line.split())


def matches(want, got):
    w, g = normalise(want).split(" "), normalise(got).split(" ")
    if len(w) != len(g):
        return False
    return all(a == "*" or a == b for a, b in zip(w, g))


def main():
    cases = readme_cases()
    t = lib.Tally("readme")
    if len(cases) < 10:
        t.fail("README examples", "only %d dig examples found" % len(cases))
    srv = lib.Server(os.path.join(SOURCE, "contrib", "demo")).start()
    try:
        for cmd, want in cases:
            real = cmd.replace("-p 5353", "-p %d" % srv.port)
            got = subprocess.run(["bash", "-c", real], capture_output=True, text=True,
                                 timeout=20).stdout.splitlines()
            got = [line for line in got if line.strip()]
            want = [line for line in want if line.strip()]
            ok = len(got) == len(want) and all(matches(a, b) for a, b in zip(want, got))
            t.check(ok, cmd, "\n  want: %r\n  got:  %r" % (want, got))
    finally:
        t.server_stopped(srv)
    t.finish()


if __name__ == "__main__":
    sys.exit(main())
