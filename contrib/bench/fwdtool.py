#!/usr/bin/python3
"""Helpers of forward.sh, the forwarding benchmark.

  fwdtool.py gen DIR NAMES LOOKUPS NEW_PCT    the upstream's zones and the query files
  fwdtool.py dnsperf FILE                     "completed lost qps p50_ms p99_ms"
  fwdtool.py knot-requests TEXT_FILE          queries Knot answered, from `knotc stats`
  fwdtool.py report RUNDIR                    the table, with ratios to Unbound

The data: NAMES outside names n0.example. ... with A and AAAA (TTL 1 hour) in
the zone example., COLD more names that no client asks before the miss runs,
and the zone cluster.local. with nothing but its apex, so that the upstream
answers the search expansions that a forwarder without the cluster's zone
sends it (NXDOMAIN, as a real upstream would).

The query files:
  warm.txt   every name once, A and AAAA: fills the caches
  mix.txt    LOOKUPS lookups as pods make them: a name drawn by Zipf's law
             (s = 1) over the NAMES, each asked with a pod's ndots:5 search
             list (<name>.default.svc.cluster.local, .svc.cluster.local,
             .cluster.local, then <name>.), A and AAAA for each; NEW_PCT
             percent of the lookups are for a name never seen before (NXDOMAIN
             upstream), expansions included
  hits.txt   20,000 lookups drawn the same way, none for a new name: asked
             once to fill the caches with their search expansions too, then
             again and again for the cache-hit QPS
  miss.txt   the COLD names, A: each a cache miss that the upstream answers
"""
import bisect
import os
import random
import statistics
import sys

SEARCH = ("default.svc.cluster.local.", "svc.cluster.local.", "cluster.local.")
COLD = 50000
HIT_LOOKUPS = 20000


def gen(d, names, lookups, new_pct):
    names, lookups, new_pct = int(names), int(lookups), float(new_pct)
    os.makedirs(d, exist_ok=True)
    rnd = random.Random(16)
    with open(os.path.join(d, "example.zone"), "w") as z:
        z.write("$ORIGIN example.\n$TTL 3600\n"
                "@ SOA ns.example. hostmaster.example. 1 7200 1800 86400 300\n"
                "@ NS ns.example.\nns A 127.0.0.1\n")
        for i in range(names + COLD):
            z.write("n%d A 10.%d.%d.%d\nn%d AAAA fd00::%x:%x\n" % (
                i, i >> 16 & 255, i >> 8 & 255, i & 255, i, i >> 16, i & 0xffff))
    with open(os.path.join(d, "cluster.local.zone"), "w") as z:
        z.write("$ORIGIN cluster.local.\n$TTL 3600\n"
                "@ SOA ns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 30\n"
                "@ NS ns.cluster.local.\nns A 127.0.0.1\n")
    with open(os.path.join(d, "warm.txt"), "w") as f:
        for i in range(names):
            f.write("n%d.example. A\nn%d.example. AAAA\n" % (i, i))
    cum, acc = [], 0.0
    for k in range(1, names + 1):
        acc += 1.0 / k
        cum.append(acc)
    for fname, n, pct in (("hits.txt", HIT_LOOKUPS, 0), ("mix.txt", lookups, new_pct)):
        with open(os.path.join(d, fname), "w") as f:
            for i in range(n):
                if rnd.random() * 100 < pct:
                    name = "new%d-%d.example" % (i, rnd.getrandbits(32))
                else:
                    name = "n%d.example" % bisect.bisect_left(cum, rnd.random() * acc)
                for cand in ["%s.%s" % (name, s) for s in SEARCH] + [name + "."]:
                    f.write("%s A\n%s AAAA\n" % (cand, cand))
    with open(os.path.join(d, "miss.txt"), "w") as f:
        for i in range(names, names + COLD):
            f.write("n%d.example. A\n" % i)
    with open(os.path.join(d, "meta.txt"), "w") as f:
        f.write("names=%d\nlookups=%d\nnew_pct=%g\ncold=%d\n" % (names, lookups, new_pct, COLD))


def dnsperf(path):
    completed = lost = 0
    qps = 0.0
    lat = []
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("> ") and not line.startswith("> T "):
                try:
                    lat.append(float(line.rsplit(None, 1)[1]))
                except (ValueError, IndexError):
                    pass
                continue
            s = line.strip()
            if s.startswith("Queries completed:"):
                completed = int(s.split()[2])
            elif s.startswith("Queries lost:"):
                lost = int(s.split()[2])
            elif s.startswith("Queries per second:"):
                qps = float(s.split()[3])
    p50 = p99 = "-"
    if lat:
        lat.sort()
        p50 = "%.3f" % (lat[len(lat) // 2] * 1000)
        p99 = "%.3f" % (lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000)
    print("%d %d %.0f %s %s" % (completed, lost, qps, p50, p99))


def knot_requests(path):
    """Sum of mod-stats' request-protocol counters (udp4, tcp4...)."""
    n = 0
    for line in open(path):
        if "request-protocol" in line and "=" in line:
            try:
                n += int(line.rsplit("=", 1)[1].strip())
            except ValueError:
                pass
    print(n)


def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = [l.rstrip("\n").split("\t") for l in f if l.strip()]
    return [dict(zip(lines[0], l)) for l in lines[1:]]


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def fmt(v, spec="%.0f"):
    return "-" if v is None else spec % v


def report(rundir):
    """Medians over the rounds of every figure, per server, from
    RUNDIR/figures.tsv (round, server, figure, value)."""
    meta = dict(l.rstrip("\n").split("=", 1) for l in open(os.path.join(rundir, "meta.txt")))
    rows = read_tsv(os.path.join(rundir, "figures.tsv"))
    order, vals = [], {}
    for r in rows:
        if r["server"] not in order:
            order.append(r["server"])
        v = num(r["value"])
        if v is not None:
            vals.setdefault((r["server"], r["figure"]), []).append(v)
    fig = {s: {k[1]: statistics.median(v) for k, v in vals.items() if k[0] == s}
           for s in order}
    print("forwarding benchmark (contrib/bench/forward.sh), %s" % meta.get("date", ""))
    for k in ("command", "data", "setup", "machine"):
        if k in meta:
            print("  %s: %s" % (k, meta[k]))
    print()
    cols = [("cached_qps", "cached names QPS", "%.0f"),
            ("cached_per_core", "cached names QPS per busy core", "%.0f"),
            ("hit_qps", "hit QPS", "%.0f"), ("hit_per_core", "hit QPS per busy core", "%.0f"),
            ("hit_lost", "lost", "%.0f"), ("mix_qps", "mix QPS", "%.0f"),
            ("mix_per_core", "mix QPS per busy core", "%.0f"),
            ("up_per_q", "upstream pkts per query", "%.3f"),
            ("warm_up_per_q", "upstream pkts per query, cold", "%.3f"),
            ("miss_p50", "miss p50 ms", "%.2f"), ("miss_p99", "miss p99 ms", "%.2f"),
            ("miss_lost", "miss lost", "%.0f"), ("mem_mb", "memory MB, 100k cached", "%.1f"),
            ("kb_per_name", "KB per cached name", "%.2f")]
    print("| server | " + " | ".join(c[1] for c in cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for s in order:
        print("| %s | " % s + " | ".join(fmt(fig[s].get(c[0]), c[2]) for c in cols) + " |")
    u = fig.get("unbound")
    if not u:
        return
    print()
    # The goals, and (want None) figures shown beside them.
    goals = [("hit_per_core", "cache-hit QPS per busy core", 1.5, ">="),
             ("cached_per_core", "cached names alone, QPS per busy core", None, ""),
             ("miss_p99", "miss latency p99", 1.0, "<="),
             ("up_per_q", "upstream packets per client query", 1.0, "<="),
             ("kb_per_name", "memory per cached name", 1.0, "<=")]
    for s in order:
        if s == "unbound":
            continue
        parts = []
        for key, what, want, op in goals:
            a, b = fig[s].get(key), u.get(key)
            if a is None or not b:
                parts.append("%s -" % what)
                continue
            r = a / b
            if s == "svcdns" and want is not None:
                met = r >= want if op == ">=" else r <= want
                parts.append("%s %.2fx (goal %s %.1fx: %s)" % (what, r, op, want,
                                                               "met" if met else "NOT met"))
            else:
                parts.append("%s %.2fx" % (what, r))
        print("%s/unbound: %s" % (s, "; ".join(parts)))


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    cmd = sys.argv[1]
    if cmd == "gen":
        gen(*sys.argv[2:6])
    elif cmd == "dnsperf":
        dnsperf(sys.argv[2])
    elif cmd == "knot-requests":
        knot_requests(sys.argv[2])
    elif cmd == "report":
        report(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
