"""The house rules that can check themselves (doc/architecture.md, "Rules"):

  includes   no module includes what the architecture says it must never reach,
             and no header that says it is internal to a module ("internal to
             zones/") is included from outside that module;
  format     clang-format --dry-run -Werror over the tree (.clang-format decides);
  size       no file under the module folders runs past FILE_MAX lines and no
             function past FUNC_MAX lines, but the ones listed as exceptions.

Usage: check_layout.py SOURCE_DIR {includes|format|size}. Exit 0 when the
rules hold, 1 with one line per breach, 77 (skipped) when clang-format is
missing for `format`."""

import os
import re
import shutil
import subprocess
import sys

MODULES = ("common", "wire", "discovery", "zones", "dns", "resolver", "proxy", "daemon")

# What each module may include besides itself (the data flows discovery ->
# model -> snapshot -> dns/proxy and never back; the program wires them).
ALLOWED = {
    "common": set(),
    "wire": set(),
    "discovery": {"common"},
    "zones": {"common", "wire", "discovery"},
    "resolver": {"common", "wire", "zones"},
    "dns": {"common", "wire", "zones", "resolver"},
    "proxy": {"common", "wire", "discovery"},
    "daemon": set(MODULES),
}

# The datapath reads the view's types through one type-only header.
PROXY_VIEW_HEADER = "proxy/view_types.h"

FILE_MAX = 1000
FUNC_MAX = 120
# dns_answer_from (behind dns_answer) is the straight-line query path, read top to bottom on purpose.
FUNC_EXCEPTIONS = {("dns/query.c", "dns_answer_from")}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
INTERNAL = re.compile(r"[Ii]nternal to ([a-z]+)/")


def sources(root, folders, exts=(".c", ".h")):
    for folder in folders:
        base = os.path.join(root, folder)
        for dirpath, _, files in os.walk(base):
            for f in sorted(files):
                if f.endswith(exts):
                    yield os.path.relpath(os.path.join(dirpath, f), root)


def check_includes(root):
    bad = []
    internal = {}  # header -> owning module
    for rel in sources(root, MODULES, (".h",)):
        with open(os.path.join(root, rel), encoding="utf-8") as f:
            head = f.read(3000)
        m = INTERNAL.search(head.split("#ifndef", 1)[0])
        if m:
            internal[rel] = m.group(1)
    for rel in sources(root, MODULES):
        mod = rel.split("/", 1)[0]
        with open(os.path.join(root, rel), encoding="utf-8") as f:
            text = f.read()
        for inc in INCLUDE.findall(text):
            target = inc.split("/", 1)[0]
            if target not in MODULES or target == mod:
                continue
            if target not in ALLOWED[mod]:
                bad.append("%s includes %s: %s/ must never reach %s/" % (rel, inc, mod, target))
            elif mod == "proxy" and target == "discovery" and rel != PROXY_VIEW_HEADER:
                bad.append("%s includes %s: the datapath reads the view's types through %s only"
                           % (rel, inc, PROXY_VIEW_HEADER))
            if inc in internal and internal[inc] != mod:
                bad.append("%s includes %s, which is internal to %s/" % (rel, inc, internal[inc]))
    return bad


def check_format(root):
    exe = shutil.which("clang-format")
    if not exe:
        print("SKIP: clang-format is not installed (Debian package clang-format)")
        sys.exit(77)
    files = list(sources(root, MODULES + ("tests", "contrib")))
    bad = []
    for i in range(0, len(files), 50):
        p = subprocess.run([exe, "--dry-run", "-Werror", "--style=file"] + files[i:i + 50],
                           cwd=root, capture_output=True, text=True)
        if p.returncode != 0:
            seen = sorted({ln.split(":", 1)[0] for ln in p.stderr.splitlines()
                           if ": error:" in ln})
            bad += ["%s: not as clang-format lays it out (run clang-format -i)" % f
                    for f in seen] or [p.stderr.strip()[:500]]
    return bad


FUNC_START = re.compile(r"^[A-Za-z_][A-Za-z0-9_ \*]*?\b([A-Za-z_][A-Za-z0-9_]*)\s*\(")


def check_size(root):
    bad = []
    for rel in sources(root, MODULES, (".c",)):
        with open(os.path.join(root, rel), encoding="utf-8") as f:
            lines = f.read().split("\n")
        if len(lines) > FILE_MAX:
            bad.append("%s: %d lines (more than %d: does it mix concepts?)"
                       % (rel, len(lines), FILE_MAX))
        name, start = None, 0
        for i, ln in enumerate(lines):
            if name is None:
                m = FUNC_START.match(ln)
                if m and not ln.rstrip().endswith(";") and not ln.startswith(("typedef", "struct",
                                                                                "enum", "union")):
                    # the body opens at column 0 within the next lines
                    for j in range(i, min(i + 8, len(lines))):
                        if lines[j].startswith("{"):
                            name, start = m.group(1), j
                            break
                        if lines[j].rstrip().endswith(";"):
                            break
            elif ln.startswith("}"):
                n = i - start - 1
                if n > FUNC_MAX and (rel, name) not in FUNC_EXCEPTIONS:
                    bad.append("%s: %s() is %d lines (more than %d)" % (rel, name, n, FUNC_MAX))
                name = None
    return bad


def main():
    root, what = sys.argv[1], sys.argv[2]
    bad = {"includes": check_includes, "format": check_format, "size": check_size}[what](root)
    for b in bad:
        print(b)
    print("%s: %s" % (what, "%d breach(es)" % len(bad) if bad else "ok"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
