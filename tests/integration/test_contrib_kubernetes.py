"""The manifests of contrib/kubernetes hold together: every file parses as
Kubernetes YAML (each document with apiVersion, kind and a name), the
kustomization lists files that exist, and the autoscaler set-up is consistent:
its ConfigMap's "linear" parameters are JSON with positive numbers, the
autoscaler reads that very ConfigMap, its target names the svcdns Deployment
of the same namespace, its --default-params are the ConfigMap's figures, its
service account is bound to roles that may scale that Deployment and count the
nodes, and doc/kubernetes.md derives the same figures it ships. No binary is
started."""

import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import svcdns_testlib as t  # noqa: E402

try:
    import yaml
except ImportError:
    yaml = None

KDIR = os.path.join(t.SOURCE, "contrib", "kubernetes")
DOC = os.path.join(t.SOURCE, "doc", "kubernetes.md")


def load_all():
    """file name -> list of documents."""
    docs = {}
    for name in sorted(os.listdir(KDIR)):
        if name.endswith((".yaml", ".yml")):
            with open(os.path.join(KDIR, name)) as f:
                docs[name] = [d for d in yaml.safe_load_all(f) if d is not None]
    return docs


def find(docs, kind, name, namespace=None):
    for d in docs:
        m = d.get("metadata") or {}
        if d.get("kind") == kind and m.get("name") == name and (
                namespace is None or m.get("namespace") == namespace):
            return d
    return None


def check_parse(tally, files):
    for name, docs in files.items():
        if name == "kustomization.yaml":
            continue
        bad = [i for i, d in enumerate(docs)
               if not (isinstance(d, dict) and d.get("apiVersion") and d.get("kind")
                       and (d.get("metadata") or {}).get("name"))]
        tally.check(docs and not bad, "%s: every document has apiVersion, kind and a name"
                    % name, "documents %s are not Kubernetes objects" % bad)


def check_kustomization(tally, files):
    k = files["kustomization.yaml"][0]
    res = k.get("resources") or []
    missing = [r for r in res if r not in files]
    tally.check(not missing, "kustomization.yaml lists files that exist", "missing: %s" % missing)
    tally.check("autoscaler.yaml" in res, "kustomization.yaml applies the autoscaler")


def args_of(container):
    out = {}
    for a in (container.get("command") or []) + (container.get("args") or []):
        if a.startswith("--") and "=" in a:
            k, v = a[2:].split("=", 1)
            out[k] = v
    return out


def check_linear(tally, linear, label):
    want = ("coresPerReplica", "nodesPerReplica", "min", "preventSinglePointFailure")
    missing = [k for k in want if k not in linear]
    tally.check(not missing, "%s: has %s" % (label, ", ".join(want)), "missing %s" % missing)
    nums = [k for k in ("coresPerReplica", "nodesPerReplica", "min")
            if not (isinstance(linear.get(k), (int, float)) and
                    not isinstance(linear.get(k), bool) and linear.get(k) > 0)]
    tally.check(not nums, "%s: coresPerReplica, nodesPerReplica and min are positive numbers"
                % label, "not: %s" % nums)
    tally.check(isinstance(linear.get("preventSinglePointFailure"), bool),
                "%s: preventSinglePointFailure is a boolean" % label)


def check_autoscaler(tally, files):
    auto = files["autoscaler.yaml"]
    every = [d for docs in files.values() for d in docs]
    dep = next((d for d in auto if d["kind"] == "Deployment"), None)
    if not tally.check(dep is not None, "autoscaler.yaml has a Deployment"):
        return None
    ns = dep["metadata"].get("namespace")
    spec = dep["spec"]["template"]["spec"]
    c = spec["containers"][0]
    tally.check(c.get("image", "").startswith(
        "registry.k8s.io/cpa/cluster-proportional-autoscaler:v"),
        "the autoscaler runs the cluster-proportional-autoscaler image", c.get("image"))
    a = args_of(c)
    tally.check(a.get("namespace") == ns, "--namespace is the autoscaler's own", str(a))
    cm = find(auto, "ConfigMap", a.get("configmap"), ns)
    if not tally.check(cm is not None, "--configmap names the ConfigMap of autoscaler.yaml",
                       "--configmap=%s" % a.get("configmap")):
        return None
    try:
        linear = json.loads(cm["data"]["linear"])
    except (KeyError, TypeError, ValueError) as e:
        tally.fail("the ConfigMap's linear parameters are JSON", str(e))
        return None
    tally.ok("the ConfigMap's linear parameters are JSON")
    check_linear(tally, linear, "the ConfigMap")
    try:
        defaults = json.loads(a.get("default-params", ""))["linear"]
        tally.check(defaults == linear, "--default-params are the ConfigMap's figures",
                    "%s against %s" % (defaults, linear))
    except (KeyError, ValueError) as e:
        tally.fail("--default-params is JSON with linear parameters", str(e))
    target = a.get("target", "")
    kind, _, name = target.partition("/")
    svcdns = find(files["deployment.yaml"], "Deployment", name, ns)
    tally.check(kind.lower() == "deployment" and svcdns is not None,
                "--target names the svcdns Deployment of deployment.yaml, same namespace",
                "--target=%s" % target)
    sa = spec.get("serviceAccountName")
    tally.check(find(auto, "ServiceAccount", sa, ns) is not None,
                "the autoscaler's service account is defined", sa)
    # What the bindings of that service account grant.
    rules = []
    for b in every:
        if b.get("kind") not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(s.get("kind") == "ServiceAccount" and s.get("name") == sa and
                   s.get("namespace") == ns for s in b.get("subjects") or []):
            continue
        role = find(every, b["roleRef"]["kind"], b["roleRef"]["name"])
        if role is None:
            tally.fail("the role %s bound to %s exists" % (b["roleRef"]["name"], sa), "missing")
            continue
        scoped = b["kind"] == "RoleBinding"
        rules += [(r, scoped) for r in role.get("rules") or []]

    def grants(group, resource, verb, name=None):
        return any(group in r.get("apiGroups", []) and resource in r.get("resources", [])
                   and verb in r.get("verbs", [])
                   and (not r.get("resourceNames") or name in r["resourceNames"])
                   for r, _ in rules)
    tally.check(all(grants("", "nodes", v) for v in ("list", "watch")),
                "the autoscaler may list and watch the nodes")
    tally.check(all(grants("apps", "deployments/scale", v, name) for v in ("get", "update")),
                "the autoscaler may get and update the scale of the svcdns Deployment")
    tally.check(grants("", "configmaps", "get"), "the autoscaler may read its ConfigMap")
    return linear


def check_doc(tally, linear):
    """doc/kubernetes.md derives the figures the ConfigMap ships."""
    with open(DOC) as f:
        text = f.read()
    m = re.search(r"## How many replicas\n(.*?)(\n## |\Z)", text, re.S)
    if not tally.check(m is not None, "doc/kubernetes.md has a section 'How many replicas'"):
        return
    sec = m.group(1)
    for key in ("coresPerReplica", "nodesPerReplica"):
        mm = re.search(r"`%s`\D*?([\d,]+)" % key, sec)
        got = int(mm.group(1).replace(",", "")) if mm else None
        tally.check(got == linear[key], "the derivation in doc/kubernetes.md ends at the "
                    "ConfigMap's %s" % key, "doc says %s, the ConfigMap %s" % (got, linear[key]))


def main(tally):
    if yaml is None:
        t.skip("python3-yaml is not installed (apt-get install python3-yaml)")
    files = load_all()
    check_parse(tally, files)
    check_kustomization(tally, files)
    linear = check_autoscaler(tally, files)
    if linear:
        check_doc(tally, linear)


if __name__ == "__main__":
    t.main_guard(t.Tally("contrib/kubernetes manifests"), main)
