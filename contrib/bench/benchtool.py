#!/usr/bin/python3
"""Helpers of run.sh: machine idleness, dnsperf output, callgrind totals, the report.

  benchtool.py idle CPU[,CPU] MAX_PCT TIMEOUT   wait until every CPU is under MAX_PCT busy
  benchtool.py dnsperf FILE                     "sent completed lost qps avg_ms p99_ms"
  benchtool.py callgrind FILE...                instructions (Ir) of one dump, all threads; busiest file
  benchtool.py report RUNDIR                    the table, from what the run recorded
"""
import os
import statistics
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")


def cpu_times():
    """{cpu: (busy, total)} in jiffies; busy leaves out idle, iowait and steal."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                v = [int(x) for x in line.split()[1:]]
                user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
                out[int(line[3:line.index(" ")])] = (user + nice + system + irq + softirq,
                                                       sum(v[:8]))
    return out


def idle(cpus, max_pct, timeout):
    cpus = [int(c) for c in cpus.split(",")]
    deadline = time.monotonic() + timeout
    while True:
        a = cpu_times()
        time.sleep(1.0)
        b = cpu_times()
        pct = {c: 100.0 * (b[c][0] - a[c][0]) / max(1, b[c][1] - a[c][1]) for c in cpus}
        ok = all(p < max_pct for p in pct.values())
        if ok or time.monotonic() >= deadline:
            load1 = open("/proc/loadavg").read().split()[0]
            print("%s load1=%s %s" % ("idle" if ok else "busy", load1,
                                      " ".join("cpu%d=%.0f%%" % (c, pct[c]) for c in cpus)))
            return


def dnsperf(path):
    sent = completed = lost = 0
    qps = avg = 0.0
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
            if s.startswith("Queries sent:"):
                sent = int(s.split()[2])
            elif s.startswith("Queries completed:"):
                completed = int(s.split()[2])
            elif s.startswith("Queries lost:"):
                lost = int(s.split()[2])
            elif s.startswith("Queries per second:"):
                qps = float(s.split()[3])
            elif s.startswith("Average Latency (s):"):
                avg = float(s.split()[3]) * 1000
    p99 = "-"
    if lat:
        lat.sort()
        p99 = "%.3f" % (lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000)
    print("%d %d %d %.0f %.3f %s" % (sent, completed, lost, qps, avg, p99))


def callgrind(paths):
    """Sums the "summary:" (the events of the dumped interval) of one dump's files,
    one per thread (--separate-threads=yes), and names the busiest. The summary,
    not the "totals:" of the cost lines: after a zeroing, the cost lines of a
    thread that was inside a call can add up to more than what it did since."""
    total, top, top_n = 0, None, -1
    for path in paths:
        with open(path) as f:
            n = next((int(l.split()[1]) for l in f if l.startswith("summary:")), None)
        if n is None:
            sys.exit("benchtool.py: no summary in %s" % path)
        total += n
        if n > top_n:
            top, top_n = path, n
    print(total, top)


def med(rows, key):
    vals = [float(r[key]) for r in rows if r.get(key) not in (None, "", "-")]
    return statistics.median(vals) if vals else None


def fmt(v, spec="%.0f"):
    return "-" if v is None else spec % v


def ratio(a, b, spec="%.2f"):
    return "-" if a is None or b in (None, 0) else spec % (a / b)


def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = [l.rstrip("\n").split("\t") for l in f if l.strip()]
    return [dict(zip(lines[0], l)) for l in lines[1:]]


def report(rundir):
    """Prints the medians over the rounds of every figure, per server, from
    RUNDIR/runs.tsv (one line per dnsperf run), figures.tsv (one figure per
    server: memory, instructions per query) and memory.tsv (svcdns at each size)."""
    meta = dict(l.rstrip("\n").split("=", 1) for l in open(os.path.join(rundir, "meta.txt")))
    runs = read_tsv(os.path.join(rundir, "runs.tsv"))
    extra = read_tsv(os.path.join(rundir, "figures.tsv"))
    order = []
    for r in runs + extra:
        if r["server"] not in order:
            order.append(r["server"])
    fig = {}
    for srv in order:
        sat = [r for r in runs if r["server"] == srv and r["mode"] == "sat"]
        fix = [r for r in runs if r["server"] == srv and r["mode"] == "fixed"]
        for r in sat + fix:
            c, busy = float(r["completed"]), float(r["busy_jiffies"]) / HZ
            r["per_core"] = c / busy if busy > 0 else None
            r["cpu_us"] = busy * 1e6 / c if c > 0 else None
            r["proc_us"] = float(r["proc_ticks"]) / HZ * 1e6 / c if c > 0 else None
            # The core was shared when it was busier than the server's own CPU time
            # explains (that time includes the softirq work done in its syscalls).
            r["shared"] = float(r["busy_jiffies"]) > 1.25 * float(r["proc_ticks"]) + 5
        # Core-based figures from the runs that had the core to themselves, if any.
        sat_c = [r for r in sat if not r["shared"]] or sat
        fix_c = [r for r in fix if not r["shared"]] or fix
        f = {"qps": med(sat, "qps"), "lost": med(sat, "lost"), "avg": med(sat, "avg_ms"),
             "p99": med(sat, "p99_ms"), "per_core": med(sat_c, "per_core"),
             "fix_qps": med(fix, "qps"), "fix_lost": med(fix, "lost"),
             "fix_avg": med(fix, "avg_ms"), "fix_p99": med(fix, "p99_ms"),
             "fix_cpu_us": med(fix_c, "cpu_us"), "fix_proc_us": med(fix, "proc_us"),
             "busy_runs": sum(1 for r in sat + fix if r["machine"].startswith("busy")),
             "shared_runs": sum(1 for r in sat + fix if r["shared"]),
             "shared_only": (sat_c is sat and any(r["shared"] for r in sat)) or
                            (fix_c is fix and any(r["shared"] for r in fix)),
             "runs": len(sat) + len(fix)}
        for r in extra:
            if r["server"] == srv:
                f[r["figure"]] = float(r["value"])
        fig[srv] = f
    floor = fig.get("canned", {}).get("fix_cpu_us")
    for srv in order:
        c = fig[srv].get("fix_cpu_us")
        fig[srv]["own_us"] = c - floor if c is not None and floor is not None else None

    rate = meta.get("rate", "?")
    print("svcdns benchmark (contrib/bench/run.sh), %s" % meta.get("date", ""))
    for k in ("command", "cluster", "setup", "machine"):
        if k in meta:
            print("  %s: %s" % (k, meta[k]))
    print()
    print("| server | QPS | lost | avg ms | QPS per busy core | @%s: lost | avg ms | p99 ms "
          "| core µs/q | own µs/q | process µs/q | instructions/q | memory MB |" % rate)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for srv in order:
        f = fig[srv]
        print("| %s |" % srv + " | ".join([
            fmt(f["qps"]), fmt(f["lost"]), fmt(f["avg"], "%.3f"), fmt(f["per_core"]),
            fmt(f["fix_lost"]), fmt(f["fix_avg"], "%.3f"), fmt(f["fix_p99"], "%.3f"),
            fmt(f["fix_cpu_us"], "%.2f"),
            "floor" if srv == "canned" else fmt(f["own_us"], "%.2f"),
            fmt(f["fix_proc_us"], "%.2f"), fmt(f.get("instructions_per_query")),
            fmt(f.get("memory_mb"), "%.1f")]) + " |")
    print()
    s = fig.get("svcdns")
    for other in ("knot", "nsd"):
        o = fig.get(other)
        if s and o:
            print("svcdns/%s: QPS %s, QPS per busy core %s, own µs/q %s, p99 @%s %s, "
                  "instructions/q %s, memory %s" % (
                      other, ratio(s["qps"], o["qps"]), ratio(s["per_core"], o["per_core"]),
                      ratio(s["own_us"], o["own_us"]), rate, ratio(s["fix_p99"], o["fix_p99"]),
                      ratio(s.get("instructions_per_query"), o.get("instructions_per_query")),
                      ratio(s.get("memory_mb"), o.get("memory_mb"))))
    busy = sum(f["busy_runs"] for f in fig.values())
    shared = sum(f["shared_runs"] for f in fig.values())
    runs_n = sum(f["runs"] for f in fig.values())
    if busy:
        print("WARNING: %d of %d runs started while the machine was not idle (runs.tsv, column "
              "machine)" % (busy, runs_n))
    if shared:
        print("WARNING: in %d of %d runs the server's core was busier than the server: other "
              "work ran there; QPS per busy core and core µs/q are medians of the other runs%s" % (
                  shared, runs_n, "" if not any(f["shared_only"] for f in fig.values()) else
                  " (%s: no other run, figures suspect)" % ", ".join(
                      k for k, f in fig.items() if f["shared_only"])))
    mem = read_tsv(os.path.join(rundir, "memory.tsv"))
    if mem:
        print()
        print("| svcdns: Services | endpoints | RSS MB | peak RSS MB | snapshot build ms "
              "| start to serving s |")
        print("|---:|---:|---:|---:|---:|---:|")
        for r in mem:
            print("| %s | %s | %s | %s | %s | %s |" % (
                r["services"], r["endpoints"], r["rss_mb"], r["hwm_mb"], r["build_ms"],
                r["start_s"]))


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    cmd = sys.argv[1]
    if cmd == "idle":
        idle(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))
    elif cmd == "dnsperf":
        dnsperf(sys.argv[2])
    elif cmd == "callgrind":
        callgrind(sys.argv[2:])
    elif cmd == "report":
        report(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
