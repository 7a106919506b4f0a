"""contrib/bench/scale_run.py at a tiny size, so that the script cannot rot:
a cluster of 60 Services and 300 Pods in the fake API server, svcdns with
--pods verified, a few seconds of EndpointSlice churn and client queries with
the API server restarted in the middle. The run must finish, stop what it
started, answer every client query without SERVFAIL or timeout, serve every
probed change, list again after the restart, and report each figure."""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import svcdns_testlib as t  # noqa: E402

SCRIPT = os.path.join(t.SOURCE, "contrib", "bench", "scale_run.py")


def summary(out):
    m = re.search(r"^SUMMARY scale_run (.*)$", out, re.M)
    if not m:
        return None
    return dict(kv.split("=", 1) for kv in m.group(1).split())


def main(tally):
    if not os.access(t.BIN, os.X_OK):
        t.skip("no svcdns binary at %s" % t.BIN)
    cmd = ["/usr/bin/python3", SCRIPT, "--bin", t.BIN, "--services", "60", "--pods", "300",
           "--nodes", "10", "--duration", "6", "--churn", "20", "--qps", "200", "--down", "1",
           "--settle", "1", "--sync-timeout", "60", "--probe-every", "4"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out = p.communicate(timeout=120)[0].decode(errors="replace")
    except subprocess.TimeoutExpired:
        p.send_signal(15)  # the script stops what it started, by PID
        out = p.communicate(timeout=30)[0].decode(errors="replace")
        tally.fail("scale_run.py finishes", "still running after 120 s:\n" + out[-3000:])
        return
    s = summary(out)
    if not tally.check(s is not None, "scale_run.py prints its SUMMARY line", out[-3000:]):
        return
    tally.check(p.returncode == 0, "scale_run.py exits 0 (no failed query, every change "
                "served, svcdns exited cleanly)", "exit %d:\n%s" % (p.returncode, out[-3000:]))
    tally.check(int(s["queries"]) > 0 and s["answered"] == s["queries"],
                "every client query was answered", str(s))
    tally.check(s["servfail"] == "0" and s["timeouts"] == "0",
                "no SERVFAIL and no timeout, across the API server restart", str(s))
    tally.check(s["unserved"] == "0" and s["event_p50_ms"] != "nan",
                "every probed change was served and timed", str(s))
    tally.check(int(s["relists"]) > 0, "svcdns listed again after the restart", str(s))
    tally.check(float(s["steady_mib"]) > 0 and float(s["relist_peak_mib"]) > 0,
                "RSS was sampled before and after the restart", str(s))
    for line in ("RSS over time", "event -> served answer", "API requests the fake served"):
        tally.check(line in out, "the report has '%s'" % line)


if __name__ == "__main__":
    t.main_guard(t.Tally("scale_run.py smoke"), main)
