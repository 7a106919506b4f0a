#!/usr/bin/python3
"""Asks every server the sample questions with dig and compares the answers:
rcode, and the answer, authority and additional sections as sets of records
(lowercased, SOA serials left out: each server numbers its own).

Usage: compare.py SAMPLES NAME=PORT [NAME=PORT ...] [--host 127.0.0.1]

Prints one line per question that differs. Exit status 1 when an rcode, an
answer or an authority section differs; a difference only in the additional
section is reported but accepted (NSD with minimal-responses leaves out the
addresses of SRV targets, which svcdns and Knot add)."""
import argparse
import subprocess
import sys

SECTIONS = {";; ANSWER SECTION:": "answer", ";; AUTHORITY SECTION:": "authority",
            ";; ADDITIONAL SECTION:": "additional"}


def ask(host, port, name, qtype):
    out = subprocess.run(["dig", "@" + host, "-p", str(port), "+norec", "+time=2", "+tries=2",
                          "+noall", "+comments", "+answer", "+authority", "+additional",
                          name, qtype], capture_output=True, text=True).stdout
    res = {"rcode": "no answer", "answer": set(), "authority": set(), "additional": set()}
    section = None
    for line in out.splitlines():
        if "status:" in line:
            res["rcode"] = line.split("status:")[1].split(",")[0].strip()
            continue
        if line in SECTIONS:
            section = SECTIONS[line]
            continue
        if not line or line.startswith(";"):
            section = None if not line else section
            continue
        if section:
            f = line.lower().split()
            if len(f) > 3 and f[3] == "soa":
                f[6] = "serial"
            res[section].add(" ".join(f))
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("samples")
    ap.add_argument("servers", nargs="+", help="NAME=PORT")
    ap.add_argument("--host", default="127.0.0.1")
    a = ap.parse_args()
    servers = [s.split("=", 1) for s in a.servers]
    questions = [l.split() for l in open(a.samples) if l.strip()]
    bad = warn = 0
    for name, qtype in questions:
        res = [(srv, ask(a.host, port, name, qtype)) for srv, port in servers]
        ref_name, ref = res[0]
        for srv, r in res[1:]:
            for key in ("rcode", "answer", "authority", "additional"):
                if r[key] == ref[key]:
                    continue
                if key == "additional":
                    warn += 1
                else:
                    bad += 1
                if key == "rcode":
                    print("  DIFF %s %s: rcode %s=%s %s=%s" % (name, qtype, ref_name, ref[key],
                                                             srv, r[key]))
                else:
                    print("  %s %s %s %s: only %s: %s; only %s: %s" % (
                        "DIFF" if key != "additional" else "note", name, qtype, key, ref_name,
                        sorted(ref[key] - r[key]) or "-", srv, sorted(r[key] - ref[key]) or "-"))
    print("answers compared: %d questions on %s: %d differences, %d in the additional "
          "section only" % (len(questions), ", ".join(s for s, _ in servers), bad, warn))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
