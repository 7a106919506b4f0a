"""The Kubernetes API source under a long random fault schedule: the scenarios
of test_kube_faults.py (410 Gone as an event and after a compaction, streams
cut mid-line, garbage lines, 500/503/429 on lists and watches, a hanging
watch, the API server going away and coming back) drawn at random, with
Services added, changed and deleted in between, against the sanitizer build
that ctest runs. Meanwhile Services the schedule never touches must answer
without a gap, and after every few steps svcdns must converge on exactly what
the fake API server holds.

The schedule comes from a fixed seed, printed with every failure; replay one
with SVCDNS_FAULT_SEED=N (and SVCDNS_FAULT_STEPS=N for a longer run)."""

import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakeapi"))
import kubetest as k  # noqa: E402
import fakeapi  # noqa: E402
from test_kube_faults import Watcher, stable, CLUSTER  # noqa: E402

t = k.t
SEED = int(os.environ.get("SVCDNS_FAULT_SEED", "20240501"))
STEPS = int(os.environ.get("SVCDNS_FAULT_STEPS", "150"))
CHURN = ["churn-%d" % i for i in range(8)]
RESOURCES = ["services", "endpointslices", "namespaces"]


def name_of(svc):
    return "%s.shop.svc.cluster.local." % svc


class Schedule:
    def __init__(self, api, rng):
        self.api = api
        self.rng = rng
        self.model = {}  # churn Service -> ClusterIP, or absent
        self.next_ip = 1
        self.hangs = 0
        self.log = []

    def fresh_ip(self):
        self.next_ip += 1
        return "10.96.50.%d" % (self.next_ip % 250 + 1)

    def change(self):
        """A Service added, changed or deleted (the API server need not be up)."""
        svc = self.rng.choice(CHURN)
        if svc in self.model and self.rng.random() < 0.35:
            self.api.delete("Service", "shop", svc)
            del self.model[svc]
            return "delete %s" % svc
        ip = self.fresh_ip()
        self.api.apply(fakeapi.service(svc, "shop", ip))
        self.model[svc] = ip
        return "apply %s %s" % (svc, ip)

    def step(self):
        r = self.rng.random
        api = self.api
        res = self.rng.choice(RESOURCES)
        what = self.rng.choice(["change", "change", "change", "cut", "midline", "garbage",
                                "error410", "status", "down", "compact", "hang"])
        if what == "hang" and self.hangs >= 2:  # each costs --api-timeout
            what = "change"
        if what == "change":
            return self.change()
        if what == "cut":
            api.cut_watches()
        elif what == "midline":
            api.fault(res, "watch", "midline", after=self.rng.randint(0, 2))
            api.cut_watches()
            self.change()
        elif what == "garbage":
            line = bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 300)))
            api.fault(res, "watch", "garbage", line=line + b"\n")
            api.cut_watches()
        elif what == "error410":
            api.fault(res, "watch", "error410")
            api.cut_watches()
        elif what == "status":
            code = self.rng.choice([500, 503, 429])
            verb = self.rng.choice(["list", "watch"])
            api.fault(res, verb, "status", code=code, retry_after=1 if code == 429 else None)
            api.cut_watches()
            return "status %d on %s %s" % (code, res, verb)
        elif what == "down":
            api.stop()
            changes = [self.change() for _ in range(self.rng.randint(0, 3))]
            if r() < 0.4:
                api.compact()
            time.sleep(self.rng.uniform(0.1, 1.0))
            api.start()
            return "down (%s)" % ", ".join(changes)
        elif what == "compact":
            self.change()
            api.compact()
            api.cut_watches()
        elif what == "hang":
            self.hangs += 1
            api.fault(res, "watch", "hang")
            api.cut_watches()
        return "%s %s" % (what, res)

    def expected(self):
        return {name_of(s): (("NOERROR", [self.model[s]]) if s in self.model
                             else ("NXDOMAIN", [])) for s in CHURN}


def converged(port, want, timeout=20.0):
    last = {}

    def probe():
        for name, w in want.items():
            got = k.answer(port, name)
            last[name] = got
            if got != w:
                return False
        return True
    ok, dt = t.poll(probe, timeout=timeout, interval=0.05)
    bad = {n: (last.get(n), w) for n, w in want.items() if last.get(n) != w}
    return bool(ok), dt, bad


def body(tally):
    rng = random.Random(SEED)
    print("# seed %d, %d steps (SVCDNS_FAULT_SEED, SVCDNS_FAULT_STEPS)" % (SEED, STEPS),
          flush=True)
    api = fakeapi.FakeAPI(bookmark_interval=0.5).start()
    try:
        api.apply_many(fakeapi.load_dir(CLUSTER))
        sched = Schedule(api, rng)
        for _ in range(3):
            sched.change()
        srv = k.KubeServer(["--api-server", api.url] + k.FAST).start()
        api.wait_watching()
        p = srv.port
        worst = 0.0
        with Watcher(p, stable(p)) as w:
            for i in range(STEPS):
                desc = sched.step()
                sched.log.append(desc)
                # faults land at every phase of svcdns's reaction to the last one
                time.sleep(rng.uniform(0, 0.15))
                if i % 4 == 3 or i == STEPS - 1:
                    ok, dt, bad = converged(p, sched.expected())
                    worst = max(worst, dt)
                    if not tally.check(ok, "seed %d step %d: svcdns converges on the API "
                                       "server's Services" % (SEED, i),
                                       "after %.1f s, differing (got, want): %s; steps so far: "
                                       "%s" % (dt, bad, "; ".join(sched.log))):
                        break
                if not srv.alive():
                    tally.fail("seed %d step %d: svcdns is running" % (SEED, i),
                               srv.stderr_tail())
                    break
        print("# steps: %s" % "; ".join(sched.log), flush=True)
        print("# slowest convergence %.1f s; %d queries to untouched Services meanwhile"
              % (worst, w.n), flush=True)
        tally.check(not w.bad and w.n > 50, "seed %d: untouched Services never changed or "
                    "went away" % SEED, "%d queries, bad: %s" % (w.n, w.bad))
        tally.server_stopped(srv)
    finally:
        api.stop()


if __name__ == "__main__":
    t.main_guard(t.Tally("test_faults"), body)
