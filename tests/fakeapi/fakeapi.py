"""A fake Kubernetes API server for the svcdns tests (Python standard library only).

It speaks the parts of the real protocol a list-and-watch client uses, closely
enough to fail a wrong client:

  * GET /api/v1/services, /apis/discovery.k8s.io/v1/endpointslices,
    /api/v1/namespaces, /api/v1/pods (and the namespaced forms
    /api/v1/namespaces/NS/services, .../NS/pods), ServiceCIDRs at the version a
    test enables, and /apis/multicluster.x-k8s.io/v1alpha1/serviceimports once
    its CRD is installed (404 before, as a real server without them):
    lists with `limit` + `continue` (every page served at the first page's
    resourceVersion, an expired continue token is 410), `labelSelector`
    (equality-based: k=v, k==v, k!=v, k, !k), items without kind/apiVersion
    as the real server sends them;
  * `?watch=1&resourceVersion=RV`: a chunked stream of newline-delimited JSON
    events (ADDED, MODIFIED, DELETED, BOOKMARK with allowWatchBookmarks, ERROR),
    replayed from the event history after RV, ended after timeoutSeconds.
    Bookmarks come as kube-apiserver sends them: only once the resource's own
    resourceVersion has moved past the one the watch started from, so a watch
    on a quiet cluster receives nothing at all (always_bookmark=True gives the
    kinder behaviour of some test clusters: a bookmark every interval); a
    resourceVersion older than the compacted history gets 410 Gone, as an ERROR
    event (as the real server does) or, with gone_as_status, as the HTTP status;
  * streaming lists (KEP-3157 WatchList), as a 1.34 server with the WatchList
    feature on: `sendInitialEvents=true` (with resourceVersionMatch=NotOlderThan,
    else 422 Invalid with the real validation's text) begins the watch with an
    ADDED event per current object, then, with allowWatchBookmarks, a BOOKMARK
    annotated k8s.io/initial-events-end at their resourceVersion. FakeAPI(
    watch_list=...) serves older servers instead: "off" (the feature gate off:
    422), "legacy" (1.19-1.26: resourceVersionMatch forbidden for watch, 422),
    "ignore" (a server that does not know the parameters: a plain watch, which
    from resourceVersion "" begins with the current objects and no bookmark);
  * ServiceCIDRs (networking.k8s.io, cluster-scoped), served only when the
    test says so (FakeAPI(service_cidrs="v1") or "v1beta1", or
    serve_service_cidrs()): otherwise 404 for both versions, as a server
    older than 1.31 answers; spec.cidrs validated as the real server does
    (one or two ranges in canonical form, one per family; the list may only
    grow from one range to two) and a Ready condition in status;
  * with trigger_times=True, the endpoints.kubernetes.io/last-change-trigger-time
    annotation the EndpointSlice controller writes: every EndpointSlice it
    manages (label endpointslice.kubernetes.io/managed-by:
    endpointslice-controller.k8s.io) is stamped with the time of the write
    (RFC 3339, UTC, fractional seconds) unless the test wrote one itself;
  * bearer tokens (401 otherwise), client certificates over TLS, 403 for
    resources the caller may not read;
  * faults injected per resource and verb: any HTTP status (500, 429 with
    Retry-After, 410...), a connection that hangs without answering, a watch
    that stops in the middle of a line, garbage lines, an ERROR 410 event.

Tests drive it in-process:

    api = FakeAPI().start()
    api.apply(service_dict)          # ADDED or MODIFIED, with a new resourceVersion
    api.delete("Service", "ns", "name")
    api.compact()                    # older resourceVersions are gone (410)
    api.fault("services", "watch", "midline")
    api.stop(); api.start()          # "the API server goes away", same port

Run as a program it serves objects from JSON files (and/or N synthetic
Services) and accepts control requests, for trying svcdns by hand:

    python3 tests/fakeapi/fakeapi.py --port 8001 --load tests/fixtures/kube/cluster
    curl -X POST --data @svc.json localhost:8001/fake/apply
    curl -X POST 'localhost:8001/fake/delete?kind=Service&namespace=default&name=web'
    curl -X POST localhost:8001/fake/compact
    curl -X POST 'localhost:8001/fake/restart?down=3&compact=1'   # goes away, comes back
    curl 'localhost:8001/fake/rate?since=0'    # requests per second it has served
"""

import argparse
import base64
import bisect
import copy
import gc
import ipaddress
import json
import os
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ResourceDesc:
    def __init__(self, name, group_path, kind, api_version, crd=False):
        self.name = name
        self.group_path = group_path  # "/api/v1" or "/apis/discovery.k8s.io/v1"
        self.kind = kind
        self.api_version = api_version
        self.namespaced = kind not in ("Namespace", "ServiceCIDR")
        # A custom resource: served only once its CRD is installed
        # (FakeAPI(crds=...) or install_crd()); until then its paths are 404,
        # as on a real server without the CRD.
        self.crd = crd


RESOURCES = {
    "services": ResourceDesc("services", "/api/v1", "Service", "v1"),
    "endpointslices": ResourceDesc("endpointslices", "/apis/discovery.k8s.io/v1",
                                   "EndpointSlice", "discovery.k8s.io/v1"),
    "namespaces": ResourceDesc("namespaces", "/api/v1", "Namespace", "v1"),
    # listed and watched like the others (svcdns asks with --pods verified)
    "pods": ResourceDesc("pods", "/api/v1", "Pod", "v1"),
    # routed only at the version the test enables (FakeAPI.service_cidrs)
    "servicecidrs": ResourceDesc("servicecidrs", "/apis/networking.k8s.io/v1", "ServiceCIDR",
                                 "networking.k8s.io/v1"),
    "serviceimports": ResourceDesc("serviceimports", "/apis/multicluster.x-k8s.io/v1alpha1",
                                   "ServiceImport", "multicluster.x-k8s.io/v1alpha1", crd=True),
}
BY_KIND = {d.kind: d for d in RESOURCES.values()}


TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"


def rfc3339(t):
    """Seconds since the epoch as the controllers write times: UTC, with
    fractional seconds (Go's RFC3339Nano drops trailing zeros)."""
    frac = ("%.6f" % (t % 1))[2:].rstrip("0")
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ("." + frac if frac else "") + "Z"


def validate_service_cidr(obj, prev):
    """The API server's checks of a ServiceCIDR; raises ValueError (422)."""
    cidrs = (obj.get("spec") or {}).get("cidrs")
    if not isinstance(cidrs, list) or not 1 <= len(cidrs) <= 2:
        raise ValueError("spec.cidrs: must have one or two entries")
    nets = []
    for c in cidrs:
        try:
            n = ipaddress.ip_network(c, strict=True)
        except ValueError:
            raise ValueError("spec.cidrs: %r is not a valid CIDR" % c)
        if str(n) != c:
            raise ValueError("spec.cidrs: %r must be in canonical form (%s)" % (c, n))
        nets.append(n)
    if len(nets) == 2 and nets[0].version == nets[1].version:
        raise ValueError("spec.cidrs: may specify no more than one IP for each IP family")
    old = ((prev or {}).get("spec") or {}).get("cidrs")
    if old is not None and cidrs != old and not (len(old) == 1 and cidrs[0] == old[0]):
        raise ValueError("spec.cidrs: field is immutable (a second family may be added)")


INITIAL_EVENTS_END = "k8s.io/initial-events-end"
WATCH_LIST_MODES = ("on", "off", "legacy", "ignore")


def watch_list_errors(q, mode):
    """The API server's validation of a watch's list options, as (field,
    detail) pairs: apimachinery's validateWatchOptions ("on", "off": the
    WatchList feature gate), or a 1.19-1.26 server's ValidateListOptions
    ("legacy"). A server that does not know the parameters ("ignore") has none."""
    send = q.get("sendInitialEvents")
    match = q.get("resourceVersionMatch", "")
    errs = []
    if mode == "ignore":
        return errs
    if mode == "legacy":
        if match:
            errs.append(("resourceVersionMatch", "Forbidden: resourceVersionMatch is forbidden "
                         "for watch"))
            if not q.get("resourceVersion"):
                errs.append(("resourceVersionMatch", "Forbidden: resourceVersionMatch is "
                             "forbidden unless resourceVersion is provided"))
        return errs
    if send is not None:
        if match != "NotOlderThan":
            errs.append(("resourceVersionMatch", "Forbidden: sendInitialEvents requires setting "
                         "resourceVersionMatch to NotOlderThan"))
        if mode == "off":
            errs.append(("sendInitialEvents", "Forbidden: sendInitialEvents is forbidden for "
                         "watch unless the WatchList feature gate is enabled"))
    if match:
        if send is None:
            errs.append(("resourceVersionMatch", "Forbidden: resourceVersionMatch is forbidden "
                         "for watch unless sendInitialEvents is provided"))
        if match != "NotOlderThan":
            errs.append(("resourceVersionMatch", 'Unsupported value: "%s": supported values: '
                         '"NotOlderThan"' % match))
    return errs


def invalid_list_options(errs):
    """The 422 Status of ListOptions that fail validation."""
    texts = ["%s: %s" % e for e in errs]
    body = status_body(422, "Invalid", 'ListOptions.meta.k8s.io "" is invalid: %s'
                       % (texts[0] if len(texts) == 1 else "[%s]" % ", ".join(texts)))
    body["details"] = {"group": "meta.k8s.io", "kind": "ListOptions", "causes": [
        {"reason": "FieldValue" + detail.split(":")[0].replace("Unsupported value", "NotSupported"),
         "message": detail, "field": field} for field, detail in errs]}
    return body


def status_body(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
           410: "Expired", 429: "TooManyRequests", 500: "InternalError",
           503: "ServiceUnavailable"}


def parse_selector(text):
    """Equality-based label selector -> list of (op, key, value)."""
    reqs = []
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        if "!=" in part:
            k, v = part.split("!=", 1)
            reqs.append(("!=", k.strip(), v.strip()))
        elif "==" in part:
            k, v = part.split("==", 1)
            reqs.append(("=", k.strip(), v.strip()))
        elif "=" in part:
            k, v = part.split("=", 1)
            reqs.append(("=", k.strip(), v.strip()))
        elif part.startswith("!"):
            reqs.append(("!", part[1:].strip(), None))
        else:
            reqs.append(("exists", part, None))
    return reqs


def selector_matches(reqs, obj):
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for op, k, v in reqs:
        if op == "=" and labels.get(k) != v:
            return False
        if op == "!=" and labels.get(k) == v:
            return False
        if op == "exists" and k not in labels:
            return False
        if op == "!" and k in labels:
            return False
    return True


class Fault:
    def __init__(self, resource, verb, action, count=1, **kw):
        self.resource = resource  # name or None for any
        self.verb = verb          # "list", "watch" or None for any
        self.action = action
        self.count = count        # None: for ever
        self.kw = kw


class FakeAPI:
    def __init__(self, host="127.0.0.1", port=0, tls=None, tokens=None, client_cns=None,
                 bookmark_interval=1.0, gone_as_status=False, verbose=False,
                 always_bookmark=False, service_cidrs=None, trigger_times=False, crds=(),
                 watch_list="on"):
        """tls: (certfile, keyfile, client_ca_or_None). tokens: accepted bearer
        tokens (None: no authentication). client_cns: accepted client
        certificate common names."""
        self.host = host
        self.port = port
        self.tls = tls
        self.tokens = set(tokens) if tokens is not None else None
        self.client_cns = set(client_cns or ())
        self.bookmark_interval = bookmark_interval
        self.always_bookmark = always_bookmark
        self.gone_as_status = gone_as_status
        self.verbose = verbose
        self.forbidden = set()
        self.crds = set(crds)  # custom resources whose CRD is installed
        self.cond = threading.Condition()
        self.rv = 1000
        self.compacted = 0
        self.objects = {name: {} for name in RESOURCES}
        self.events = {name: [] for name in RESOURCES}  # (rv, type, obj, prev), by rv
        self.event_rvs = {name: [] for name in RESOURCES}
        # the newest resourceVersion of each resource's own objects (kept
        # across compaction, unlike the event history)
        self.res_rv = {name: 0 for name in RESOURCES}
        self.snapshots = {}  # id -> (rv, [item bytes])
        # Serialised list items and pages, made once: the fake must stream a
        # 100k-object list faster than any client can take it in.
        self.item_bytes = {name: {} for name in RESOURCES}  # key -> bytes
        self.list_snaps = {}  # (resource, ns, selector text) -> (rv, snapshot id)
        self.pages = {}  # (snapshot id, start, limit) -> page bytes
        self.sent = {}  # (resource, rv) -> monotonic time an event's line was written
        self.requests = []
        self.faults = []
        self.httpd = None
        self.thread = None
        self.stopping = threading.Event()
        self.conns = set()
        self.cut_gen = 0
        self.active_watches = {}  # id -> (resource, cut generation at its start)
        self.service_cidrs = service_cidrs  # None (404), "v1" or "v1beta1"
        self.trigger_times = trigger_times
        self.watch_list = watch_list  # WATCH_LIST_MODES: how streaming lists are met

    # ---- life cycle -------------------------------------------------------
    @property
    def url(self):
        scheme = "https" if self.tls else "http"
        return "%s://%s:%d" % (scheme, self.host, self.port)

    def start(self):
        api = self

        class Handler(_Handler):
            fake = api

        self.stopping.clear()
        httpd = ThreadingHTTPServer((self.host, self.port), Handler)
        httpd.daemon_threads = True
        if self.tls:
            cert, key, client_ca = self.tls
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            if client_ca:
                ctx.load_verify_locations(client_ca)
                ctx.verify_mode = ssl.CERT_OPTIONAL
            httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True,
                                           do_handshake_on_connect=False)
        self.port = httpd.server_address[1]
        self.httpd = httpd
        self.thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self):
        """The API server goes away: the listener closes (connections are
        refused) and every open connection is cut."""
        if not self.httpd:
            return
        self.stopping.set()
        with self.cond:
            self.cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()
        for c in list(self.conns):
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.httpd = None
        deadline = time.monotonic() + 5
        while self.conns and time.monotonic() < deadline:
            time.sleep(0.01)

    # ---- the data ---------------------------------------------------------
    def _key(self, obj):
        m = obj.get("metadata") or {}
        return (m.get("namespace") or "", m["name"])

    def apply(self, obj, event=None, copy_obj=True):
        """Stores obj (ADDED when new, else MODIFIED) with a new resourceVersion.
        copy_obj=False hands obj over (bulk loads of fresh objects)."""
        d = BY_KIND[obj["kind"]]
        if copy_obj:
            obj = copy.deepcopy(obj)
        obj.setdefault("apiVersion", d.api_version)
        meta = obj.setdefault("metadata", {})
        if d.namespaced:
            meta.setdefault("namespace", "default")
        if d.kind == "EndpointSlice" and self.trigger_times and (
                (meta.get("labels") or {}).get("endpointslice.kubernetes.io/managed-by") ==
                "endpointslice-controller.k8s.io"):
            ann = meta.setdefault("annotations", {})
            ann.setdefault(TRIGGER_TIME, rfc3339(time.time()))
        if d.kind == "ServiceCIDR":
            validate_service_cidr(obj, self.objects[d.name].get(self._key(obj)))
            obj["status"] = {"conditions": [{
                "type": "Ready", "status": "True", "reason": "", "message": "",
                "lastTransitionTime": "2024-01-01T00:00:00Z"}]}
        with self.cond:
            self.rv += 1
            meta["resourceVersion"] = str(self.rv)
            key = self._key(obj)
            prev = self.objects[d.name].get(key)
            meta.setdefault("uid", prev["metadata"]["uid"] if prev else
                            "%08x-0000-4000-8000-%012x" % (self.rv, self.rv))
            meta.setdefault("creationTimestamp", "2024-01-01T00:00:00Z")
            self.objects[d.name][key] = obj
            self.item_bytes[d.name].pop(key, None)
            typ = event or ("MODIFIED" if prev else "ADDED")
            self.events[d.name].append((self.rv, typ, obj, prev))
            self.event_rvs[d.name].append(self.rv)
            self.res_rv[d.name] = self.rv
            self.cond.notify_all()
        return self.rv

    def apply_many(self, objs, copy_obj=True):
        for o in objs:
            self.apply(o, copy_obj=copy_obj)

    def delete(self, kind, namespace, name):
        d = BY_KIND[kind]
        with self.cond:
            key = (namespace if d.namespaced else "", name)
            prev = self.objects[d.name].pop(key, None)
            if prev is None:
                return None
            self.item_bytes[d.name].pop(key, None)
            self.rv += 1
            gone = copy.deepcopy(prev)
            gone["metadata"]["resourceVersion"] = str(self.rv)
            self.events[d.name].append((self.rv, "DELETED", gone, prev))
            self.event_rvs[d.name].append(self.rv)
            self.res_rv[d.name] = self.rv
            self.cond.notify_all()
            return self.rv

    def request_rate(self, since=0.0):
        """Requests per second as this server saw them (lists, watches and
        the rest), from monotonic time `since` on: what a fleet of clients
        costs it."""
        with self.cond:
            reqs = [(e["t"], e["verb"]) for e in self.requests if e["t"] >= since]
        per = {}
        for t, verb in reqs:
            b = per.setdefault(int(t), {"list": 0, "watch": 0})
            b[verb] = b.get(verb, 0) + 1
        return {"now": time.monotonic(), "total": len(reqs),
                "seconds": [[s, b["list"], b["watch"]] for s, b in sorted(per.items())]}

    def compact(self):
        """etcd compaction: every resourceVersion up to now is gone."""
        with self.cond:
            self.compacted = self.rv
            for name in self.events:
                self.events[name] = []
                self.event_rvs[name] = []
            self.snapshots.clear()
            self.list_snaps.clear()
            self.pages.clear()

    def events_after(self, name, rv):
        """Events of a resource newer than rv (caller holds cond)."""
        i = bisect.bisect_right(self.event_rvs[name], rv)
        return self.events[name][i:]

    def _item(self, name, key, obj):
        """A list item as bytes: without kind and apiVersion, as the real
        server sends them (caller holds cond)."""
        b = self.item_bytes[name].get(key)
        if b is None:
            o = {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}
            b = json.dumps(o, separators=(",", ":")).encode()
            self.item_bytes[name][key] = b
        return b

    def list_snapshot(self, d, ns, selector_text):
        """(rv, snapshot id) of a list at the current resourceVersion, made
        once per resourceVersion (caller holds cond)."""
        ck = (d.name, ns, selector_text or "")
        cached = self.list_snaps.get(ck)
        if cached and cached[0] == self.rv and cached[1] in self.snapshots:
            return cached
        selector = parse_selector(selector_text)
        items = [self._item(d.name, k, o) for k, o in sorted(self.objects[d.name].items())
                 if (ns is None or k[0] == ns) and selector_matches(selector, o)]
        snap_id = "%s-%d-%d" % (d.name, self.rv, len(self.snapshots))
        self.snapshots[snap_id] = (self.rv, items)
        self.list_snaps[ck] = (self.rv, snap_id)
        return self.rv, snap_id

    def page(self, d, snap_id, start, limit):
        """The bytes of one list page, made once (caller holds cond)."""
        pk = (snap_id, start, limit)
        b = self.pages.get(pk)
        if b is not None:
            return b
        rv, items = self.snapshots[snap_id]
        page = items[start:start + limit] if limit else items[start:]
        meta = {"resourceVersion": str(rv)}
        nxt = start + len(page)
        if limit and nxt < len(items):
            meta["continue"] = base64.b64encode(
                json.dumps({"id": snap_id, "start": nxt, "rv": rv}).encode()).decode()
            meta["remainingItemCount"] = len(items) - nxt
        b = b"".join([b'{"kind":"', _list_kind(d).encode(), b'","apiVersion":"',
                      d.api_version.encode(), b'","metadata":', json.dumps(meta).encode(),
                      b',"items":[', b",".join(page), b"]}"])
        # Pages of older lists are not asked for again once a newer list exists.
        if len(self.pages) > 4096:
            self.pages.clear()
        self.pages[pk] = b
        return b

    def prebuild(self, limit):
        """Serialises every page of an unfiltered list of each resource now,
        so that the first list is served at full speed."""
        with self.cond:
            for d in RESOURCES.values():
                _, snap_id = self.list_snapshot(d, None, None)
                n = len(self.snapshots[snap_id][1])
                for start in range(0, max(n, 1), limit or max(n, 1)):
                    self.page(d, snap_id, start, limit)

    def note_sent(self, name, rv, when):
        with self.cond:
            self.sent.setdefault((name, rv), when)

    def sent_at(self, name, rv):
        """When the line of event rv was first written to a watcher, or None."""
        with self.cond:
            return self.sent.get((name, rv))

    def serve_service_cidrs(self, version):
        """ServiceCIDRs are served at version ("v1", "v1beta1") from now on,
        or not at all (None): the cluster was upgraded or downgraded."""
        with self.cond:
            self.service_cidrs = version
            self.list_snaps.clear()
            self.pages.clear()

    def get(self, kind, namespace, name):
        d = BY_KIND[kind]
        with self.cond:
            o = self.objects[d.name].get((namespace if d.namespaced else "", name))
            return copy.deepcopy(o)

    # ---- control ----------------------------------------------------------
    def install_crd(self, resource):
        """The CRD of a custom resource ("serviceimports") is installed: its
        paths answer from now on."""
        with self.cond:
            self.crds.add(resource)

    def remove_crd(self, resource):
        """The CRD is deleted, as kube-apiserver does it: every object of the
        resource is deleted (watchers see DELETED), then its watches end and
        its paths answer 404."""
        d = RESOURCES[resource]
        for ns, name in list(self.objects[resource]):
            self.delete(d.kind, ns, name)
        with self.cond:
            self.crds.discard(resource)
        self.cut_watches()

    def fault(self, resource, verb, action, count=1, **kw):
        """Queues a fault for the next matching request(s). Actions:
        status (code=, retry_after=), hang, midline (after=N events),
        garbage (line=bytes), error410, close (after=N events), and for lists
        badpage (item=bytes: put first among the page's items; by default
        one that is well nested but not JSON)."""
        with self.cond:
            self.faults.append(Fault(resource, verb, action, count, **kw))

    def clear_faults(self):
        with self.cond:
            self.faults = []

    def _take_fault(self, resource, verb):
        with self.cond:
            for f in self.faults:
                if (f.resource in (None, resource)) and (f.verb in (None, verb)):
                    if f.count is not None:
                        f.count -= 1
                        if f.count <= 0:
                            self.faults.remove(f)
                    return f
        return None

    def cut_watches(self, timeout=5.0):
        """Drops every open watch connection (no terminating chunk) and waits
        until each of them is gone."""
        deadline = time.monotonic() + timeout
        with self.cond:
            self.cut_gen += 1
            self.cond.notify_all()
            while any(g < self.cut_gen for _, g in self.active_watches.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)

    def requests_since(self, t0, resource=None, verb=None):
        with self.cond:
            return [r for r in self.requests if r["t"] >= t0
                    and (resource is None or r["resource"] == resource)
                    and (verb is None or r["verb"] == verb)]

    def wait_watching(self, resources=("services", "endpointslices", "namespaces"), timeout=10):
        """Until every resource has a watch open since the last cut."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.cond:
                live = {r for r, g in self.active_watches.values() if g == self.cut_gen}
                if all(r in live for r in resources):
                    return True
            time.sleep(0.01)
        return False

    def log(self, *a):
        if self.verbose:
            print("fakeapi:", *a, file=sys.stderr, flush=True)


def _list_kind(d):
    return d.kind + "List"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake = None  # set by FakeAPI.start

    def log_message(self, fmt, *args):  # noqa: D401 - quiet unless verbose
        self.fake.log(fmt % args)

    def setup(self):
        super().setup()
        # As Go's net package does for kube-apiserver: a response's headers
        # and body are two writes, which Nagle would hold for a delayed ACK.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.fake.conns.add(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            self.fake.conns.discard(self.connection)

    # ---- responses ----------------------------------------------------------
    def send_json(self, code, body, extra_headers=()):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra_headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def send_status(self, code, message, extra_headers=()):
        self.send_json(code, status_body(code, REASONS.get(code, "Unknown"), message),
                       extra_headers)

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    # ---- routing ------------------------------------------------------------
    def route(self, path):
        """-> (resource desc, namespace or None) or None."""
        parts = [p for p in path.split("/") if p]
        for d in RESOURCES.values():
            if d.kind == "ServiceCIDR":
                ver = self.fake.service_cidrs
                if ver is None:
                    continue
                d = ResourceDesc(d.name, "/apis/networking.k8s.io/" + ver, d.kind,
                                 "networking.k8s.io/" + ver)
            base = [p for p in d.group_path.split("/") if p]
            if parts[:len(base)] != base or (d.crd and d.name not in self.fake.crds):
                continue
            rest = parts[len(base):]
            if rest == [d.name]:
                return d, None
            if d.namespaced and len(rest) == 3 and rest[0] == "namespaces" and rest[2] == d.name:
                return d, rest[1]
        return None

    def authorized(self):
        f = self.fake
        auth = self.headers.get("Authorization") or ""
        token = auth[7:] if auth.startswith("Bearer ") else None
        self.token = token
        self.client_cn = None
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                cert = self.connection.getpeercert()
            except (ValueError, OSError):
                cert = None
            for rdn in (cert or {}).get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        self.client_cn = v
        if f.tokens is None and not f.client_cns:
            return True
        if token is not None and f.tokens is not None and token in f.tokens:
            return True
        return self.client_cn is not None and self.client_cn in f.client_cns

    def do_POST(self):
        """Control endpoints for the command-line mode."""
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        f = self.fake
        try:
            if u.path == "/fake/apply":
                doc = json.loads(body)
                items = doc.get("items") if doc.get("kind", "").endswith("List") else [doc]
                rv = [f.apply(o) for o in items]
                return self.send_json(200, {"resourceVersions": rv})
            if u.path == "/fake/delete":
                return self.send_json(200, {"resourceVersion": f.delete(q["kind"],
                                                                        q.get("namespace", ""),
                                                                        q["name"])})
            if u.path == "/fake/compact":
                f.compact()
                return self.send_json(200, {"compacted": f.compacted})
            if u.path == "/fake/restart":
                # The API server restarts: it goes away for `down` seconds
                # (connections cut and refused), its watch history compacted
                # when asked (every client must relist), then serves again.
                down = float(q.get("down", "2"))
                compact = q.get("compact") in ("1", "true")

                def restart():
                    f.stop()
                    if compact:
                        # a resourceVersion past every client's: their
                        # watches are too old (410) and must relist
                        with f.cond:
                            f.rv += 1
                        f.compact()
                    time.sleep(down)
                    f.start()
                threading.Thread(target=restart, daemon=True).start()
                return self.send_json(200, {"down": down, "compact": compact})
            if u.path == "/fake/fault":
                doc = json.loads(body)
                f.fault(doc.pop("resource", None), doc.pop("verb", None), doc.pop("action"),
                        **doc)
                return self.send_json(200, {})
        except (KeyError, ValueError) as e:
            return self.send_status(400, "bad control request: %s" % e)
        self.send_status(404, "no such control endpoint")

    def do_GET(self):
        f = self.fake
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
        r = self.route(u.path)
        watch = q.get("watch") in ("1", "true")
        verb = "watch" if watch else "list"
        entry = {"t": time.monotonic(), "path": u.path, "query": q, "verb": verb,
                 "resource": r[0].name if r else None,
                 "auth": self.headers.get("Authorization"), "status": None}
        if u.path == "/fake/rate":
            return self.send_json(200, f.request_rate(float(q.get("since") or 0)))
        if u.path == "/fake/sent":
            when = f.sent_at(q.get("resource", ""), int(q.get("rv") or 0))
            return self.send_json(200, {"t": when})
        with f.cond:
            f.requests.append(entry)
        if u.path in ("/version", "/healthz", "/readyz"):
            entry["status"] = 200
            return self.send_json(200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0-fake"})
        if not self.authorized():
            entry["status"] = 401
            return self.send_status(401, "Unauthorized")
        entry["token"] = self.token
        if r is None:
            entry["status"] = 404
            return self.send_status(404, "the server could not find the requested resource")
        d, ns = r
        if d.name in f.forbidden:
            entry["status"] = 403
            return self.send_status(
                403, '%s is forbidden: User "system:serviceaccount:kube-system:svcdns" cannot '
                '%s resource "%s" at the cluster scope' % (d.name, verb, d.name))
        errs = watch_list_errors(q, f.watch_list) if watch else None
        if errs:
            entry["status"] = 422
            return self.send_json(422, invalid_list_options(errs))
        fault = f._take_fault(d.name, verb)
        if fault is not None:
            entry["fault"] = fault.action
            if fault.action == "status":
                code = fault.kw.get("code", 500)
                entry["status"] = code
                hdrs = []
                if fault.kw.get("retry_after") is not None:
                    hdrs.append(("Retry-After", str(fault.kw["retry_after"])))
                return self.send_status(code, fault.kw.get("message", "injected failure"), hdrs)
            if fault.action == "hang":
                entry["status"] = 0
                # Say nothing until the client gives up or the fake stops.
                while not f.stopping.is_set():
                    try:
                        self.connection.settimeout(0.1)
                        if self.connection.recv(1, socket.MSG_PEEK) == b"":
                            break
                    except (socket.timeout, BlockingIOError):
                        continue
                    except (OSError, ValueError):
                        break
                    time.sleep(0.05)
                self.close_connection = True
                return None
        selector = parse_selector(q.get("labelSelector"))
        if watch:
            return self.do_watch(d, ns, q, selector, fault, entry)
        return self.do_list(d, ns, q, selector, entry, fault)

    # ---- list ---------------------------------------------------------------
    def do_list(self, d, ns, q, selector, entry, fault=None):
        f = self.fake
        limit = int(q.get("limit") or 0)
        cont = q.get("continue")
        with f.cond:
            if cont:
                try:
                    tok = json.loads(base64.b64decode(cont))
                    snap_id, start = tok["id"], int(tok["start"])
                except (ValueError, KeyError):
                    entry["status"] = 400
                    return self.send_status(400, "invalid continue token")
                if snap_id not in f.snapshots:
                    entry["status"] = 410
                    return self.send_status(
                        410, "The provided continue parameter is too old to display a "
                        "consistent list result. You can start a new list without the "
                        "continue parameter.")
            else:
                _, snap_id = f.list_snapshot(d, ns, q.get("labelSelector"))
                start = 0
            body = f.page(d, snap_id, start, limit)
        if fault is not None and fault.action == "badpage":
            item = fault.kw.get("item", b'{"metadata":{"name":"bad","namespace":"x"},"a":tru}')
            sep = b"" if b'"items":[]' in body else b","
            body = body.replace(b'"items":[', b'"items":[' + item + sep, 1)
        entry["status"] = 200
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    # ---- watch --------------------------------------------------------------
    def do_watch(self, d, ns, q, selector, fault, entry):
        f = self.fake
        try:
            rv = int(q.get("resourceVersion") or 0)
        except ValueError:
            entry["status"] = 400
            return self.send_status(400, "invalid resourceVersion")
        bookmarks = q.get("allowWatchBookmarks") in ("1", "true")
        timeout = float(q.get("timeoutSeconds") or 1800)
        # A streamed list begins with the current objects (not older than rv:
        # an old rv is no error); a server that ignores its parameters does
        # the same for a plain watch from "", without the closing bookmark.
        streamed = q.get("sendInitialEvents") in ("1", "true") and f.watch_list == "on"
        initial = streamed or (f.watch_list == "ignore" and not q.get("resourceVersion"))
        too_old = rv and rv < f.compacted and not initial
        if too_old and f.gone_as_status:
            entry["status"] = 410
            return self.send_status(410, "too old resource version: %d (%d)" % (rv, f.compacted))
        entry["status"] = 200
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True
        action = fault.action if fault else None
        kw = fault.kw if fault else {}

        def line(obj):
            return json.dumps(obj).encode() + b"\n"

        if too_old or action == "error410":
            self.chunk(line({"type": "ERROR", "object": status_body(
                410, "Expired", "too old resource version: %d (%d)" % (rv, f.compacted))}))
            return self.chunk(b"")
        if action == "garbage":
            self.chunk(kw.get("line", b"this is not json {{{\n"))
        if action == "close" and not kw.get("after"):
            return self.chunk(b"")
        sent = 0
        start_rv = rv
        deadline = time.monotonic() + timeout
        last_bm = time.monotonic()
        wid = object()
        with f.cond:
            cut0 = f.cut_gen
            f.active_watches[wid] = (d.name, cut0)
        try:
            if initial:
                with f.cond:
                    rv = f.rv
                    lines = [self.added_line(d, k, o)
                             for k, o in sorted(f.objects[d.name].items())
                             if self.visible(d, ns, selector, "ADDED", o, None)]
                if bookmarks and streamed:
                    lines.append(line({"type": "BOOKMARK", "object": {
                        "kind": d.kind, "apiVersion": d.api_version, "metadata": {
                            "resourceVersion": str(rv),
                            "annotations": {INITIAL_EVENTS_END: "true"}}}}))
                if not self.stream_lines(lines, action, kw):
                    return None
                sent = len(lines)
                start_rv = rv
            while not f.stopping.is_set():
                with f.cond:
                    evs = f.events_after(d.name, rv)
                    if not evs:
                        left = min(deadline, last_bm + f.bookmark_interval) - time.monotonic()
                        if left > 0:
                            f.cond.wait(left)
                        evs = f.events_after(d.name, rv)
                    if f.cut_gen != cut0:
                        return None  # dropped: no terminating chunk
                    cur_rv = f.rv if f.always_bookmark else f.res_rv[d.name]
                    moved = f.res_rv[d.name] > start_rv
                    if rv and rv < f.compacted:
                        evs = None
                if evs is None:
                    self.chunk(line({"type": "ERROR", "object": status_body(
                        410, "Expired", "too old resource version: %d (%d)" % (rv, f.compacted))}))
                    return self.chunk(b"")
                for erv, typ, obj, prev in evs:
                    rv = erv
                    out = self.visible(d, ns, selector, typ, obj, prev)
                    if out is None:
                        continue
                    if obj.get("apiVersion") != d.api_version:
                        obj = dict(obj, apiVersion=d.api_version)  # the version asked
                    data = line({"type": out, "object": obj})
                    if action == "midline" and sent >= kw.get("after", 0):
                        self.chunk(data[:max(1, len(data) // 2)])
                        return None  # cut inside the line
                    if action == "close" and sent >= kw.get("after", 0):
                        return self.chunk(b"")
                    self.chunk(data)
                    f.note_sent(d.name, erv, time.monotonic())
                    sent += 1
                now = time.monotonic()
                if now >= deadline:
                    return self.chunk(b"")
                if (bookmarks and now - last_bm >= f.bookmark_interval and
                        (moved or f.always_bookmark)):
                    rv = max(rv, cur_rv)
                    self.chunk(line({"type": "BOOKMARK", "object": {
                        "kind": d.kind, "apiVersion": d.api_version,
                        "metadata": {"resourceVersion": str(rv)}}}))
                    last_bm = now
        except (OSError, ValueError):
            return None
        finally:
            with f.cond:
                f.active_watches.pop(wid, None)
                f.cond.notify_all()
        return None

    def added_line(self, d, key, obj):
        """An initial event's line, from the serialised list item (caller
        holds cond)."""
        item = self.fake._item(d.name, key, obj)
        return b'{"type":"ADDED","object":{"kind":"%s","apiVersion":"%s",%s}\n' % (
            d.kind.encode(), d.api_version.encode(), item[1:])

    def stream_lines(self, lines, action, kw):
        """Writes lines in chunks of many; the midline and close faults cut
        the stream after kw["after"] of them. False when it was cut."""
        after = kw.get("after", 0) if action in ("midline", "close") else len(lines)
        for i in range(0, min(after, len(lines)), 512):
            self.chunk(b"".join(lines[i:min(i + 512, after)]))
        if after >= len(lines):
            return True
        if action == "midline":
            self.chunk(lines[after][:max(1, len(lines[after]) // 2)])
        else:
            self.chunk(b"")
        return False

    def visible(self, d, ns, selector, typ, obj, prev):
        """What a watcher with a namespace and label filter sees of an event."""
        if ns is not None and (obj.get("metadata") or {}).get("namespace") != ns:
            return None
        new_m = selector_matches(selector, obj)
        old_m = prev is not None and selector_matches(selector, prev)
        if typ == "DELETED":
            return "DELETED" if old_m or new_m else None
        if typ == "ADDED":
            return "ADDED" if new_m else None
        if new_m and old_m:
            return "MODIFIED"
        if new_m:
            return "ADDED"
        if old_m:
            return "DELETED"
        return None


# --------------------------------------------------------------------------
# test data

def service(name, ns, ip, ports=(("http", 80, 8080),), labels=None, extra_spec=None):
    spec = {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip] if ip != "None" else ["None"],
            "ports": [{"name": n, "port": p, "protocol": "TCP", "targetPort": t}
                      for n, p, t in ports]}
    spec.update(extra_spec or {})
    meta = {"name": name, "namespace": ns}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}


def slice_(name, ns, service_name, addrs, port_name="http", port=8080, hostnames=None,
           ready=True, labels=None):
    eps = []
    for i, a in enumerate(addrs):
        ep = {"addresses": [a], "conditions": {"ready": ready}}
        if hostnames:
            ep["hostname"] = hostnames[i]
        eps.append(ep)
    lab = {"kubernetes.io/service-name": service_name,
           "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
    lab.update(labels or {})
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": ns, "labels": lab},
            "addressType": "IPv6" if ":" in (addrs[0] if addrs else "") else "IPv4",
            "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
            "endpoints": eps}


def service_cidr(name, *cidrs):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR",
            "metadata": {"name": name}, "spec": {"cidrs": list(cidrs)}}


def namespace(name):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def synthetic(n, namespaces=10):
    """n Services (ClusterIPs from 10.96.0.0/12) with one EndpointSlice of two
    endpoints each, spread over `namespaces` namespaces."""
    base = int(ipaddress.ip_address("10.96.0.10"))
    pod = int(ipaddress.ip_address("10.200.0.1"))
    objs = [namespace("ns-%d" % i) for i in range(namespaces)]
    for i in range(n):
        ns = "ns-%d" % (i % namespaces)
        name = "svc-%d" % i
        ip = str(ipaddress.ip_address(base + i))
        objs.append(service(name, ns, ip))
        objs.append(slice_(name + "-abcde", ns, name,
                           [str(ipaddress.ip_address(pod + 2 * i)),
                            str(ipaddress.ip_address(pod + 2 * i + 1))]))
    return objs


def load_dir(path):
    """Objects from every *.json file of a directory (single objects or Lists)."""
    objs = []
    for name in sorted(os.listdir(path)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(path, name)) as fh:
            doc = json.load(fh)
        items = doc["items"] if doc.get("kind", "").endswith("List") else [doc]
        objs.extend(o for o in items if o.get("kind") in BY_KIND)
    return objs


def main():
    ap = argparse.ArgumentParser(description="fake Kubernetes API server for svcdns tests")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8001)
    ap.add_argument("--load", action="append", default=[], help="directory of JSON objects")
    ap.add_argument("--services", type=int, default=0, help="synthetic Services to add")
    ap.add_argument("--namespaces-of-objects", action="store_true",
                    help="add a Namespace for every namespace the loaded objects name")
    ap.add_argument("--prebuild", type=int, metavar="LIMIT",
                    help="serialise every list page of this size before serving")
    ap.add_argument("--token", action="append", help="accepted bearer token (repeatable)")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--watch-list", choices=WATCH_LIST_MODES, default="on",
                    help="streaming lists: on (as 1.34), off (the feature gate off), legacy "
                    "(1.19-1.26), ignore (a server that does not know the parameters)")
    ap.add_argument("--always-bookmark", action="store_true",
                    help="a bookmark every interval even on a quiet cluster (kinder than "
                    "kube-apiserver)")
    args = ap.parse_args()
    api = FakeAPI(args.host, args.port, tokens=args.token, verbose=args.verbose,
                  watch_list=args.watch_list)
    for d in args.load:
        api.apply_many(load_dir(d), copy_obj=False)
    if args.services:
        api.apply_many(synthetic(args.services), copy_obj=False)
    if args.namespaces_of_objects:
        names = sorted({ns for r in ("services", "endpointslices") for ns, _ in api.objects[r]})
        have = {n for _, n in api.objects["namespaces"]}
        api.apply_many([namespace(n) for n in names if n not in have], copy_obj=False)
    if args.prebuild:
        api.prebuild(args.prebuild)
    # Millions of loaded objects would make every full collection a pause
    # of the server; they live as long as it does.
    gc.freeze()
    api.start()
    print("fakeapi: serving %s" % api.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        api.stop()


if __name__ == "__main__":
    main()
