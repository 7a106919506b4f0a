"""A manifest rewritten in place (truncated, then written a moment later, as
`kubectl get -o yaml > dir/x.yaml` does) never makes its Services disappear:
svcdns reads a file once its writer has closed it."""
import os
import shutil
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import svcdns_testlib as lib  # noqa: E402


MARKER = """apiVersion: v1
kind: Service
metadata: {name: marker, namespace: shop}
spec:
  clusterIP: 10.96.10.99
  ports: [{port: 80}]
"""


def main():
    t = lib.Tally("watch-inplace")
    d = lib.mkdtemp(prefix="svcdns-inplace-")
    path = os.path.join(d, "web.yaml")
    shutil.copy(os.path.join(lib.SOURCE, "contrib", "demo", "web.yaml"), path)
    srv = lib.Server(d).start()
    stop = threading.Event()
    counts = {"total": 0, "bad": 0}

    def ask():
        while not stop.is_set():
            try:
                r, _ = lib.query(srv.port, "web.shop.svc.cluster.local.", "A")
            except TimeoutError:
                r = None
            counts["total"] += 1
            if r is None or r.rcode() != 0 or not r.answer:
                counts["bad"] += 1

    th = threading.Thread(target=ask)
    th.start()
    try:
        text = open(path).read()
        for _ in range(5):
            with open(path, "w") as f:
                f.flush()
                time.sleep(0.3)  # the file is empty for this long
                f.write(text.replace("10.96.10.10", "10.96.10.11"))
            time.sleep(0.2)
            with open(path, "w") as f:
                time.sleep(0.1)
                f.write(text)
            time.sleep(0.2)
    finally:
        stop.set()
        th.join()
    t.check(counts["total"] > 100, "queries were answered during the rewrites",
            "only %d" % counts["total"])
    t.check(counts["bad"] == 0, "no query saw the Service missing while its file was rewritten",
            "%d of %d queries got no address" % (counts["bad"], counts["total"]))
    # and the final content is what is served (the last rewrite put the
    # first address back, so a marker file shows that it was read)
    lib.write_file(os.path.join(d, "marker.yaml"), MARKER)
    seen, _ = lib.poll(lambda: "10.96.10.99" in lib.query(
        srv.port, "marker.shop.svc.cluster.local.", "A")[0].to_text(), timeout=5.0)
    r, _ = lib.query(srv.port, "web.shop.svc.cluster.local.", "A")
    t.check(seen and "10.96.10.10" in r.to_text(), "the final content is served",
            "marker %s, web: %s" % ("seen" if seen else "never served", r.to_text()))
    t.server_stopped(srv)
    t.finish()


if __name__ == "__main__":
    main()
