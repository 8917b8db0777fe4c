#!/usr/bin/env python3
"""Validates deploy/: renders every kustomization, checks every document
against the Kubernetes JSON schemas (kubernetes-validate, strict: unknown
fields are errors) and the KEDA objects against KEDA's CRD schemas
(deploy/schemas/), then checks what a schema cannot: selectors match pod
templates, named ports exist, pods run as non-root with a read-only root,
and the sizes that follow from auditx.toml (KEDA's target value,
termination grace periods, memory limits, ports) agree with it. Last, the
Prometheus alert rules (deploy/prometheus/auditx-rules.yaml) have the
rule-file structure.

Run it through scripts/validate-deploy.sh, which installs what it needs.
Exits 1 on any problem.
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kustomize_lite  # noqa: E402

# Measured peak RSS during a 5 M-row export (docs/performance.md,
# "Distributed"): the memory limits must leave room above these.
MEASURED_SCHEDULER_MIB = 56
MEASURED_WORKER_MIB = 246  # docs/performance.md, round 2: 193-246 MiB at 5 M and 20 M rows
# Margins the grace periods must keep above the drain time they cover.
WORKER_GRACE_MARGIN_SECS = 30
SCHEDULER_GRACE_MARGIN_SECS = 10

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


class Report:
    def __init__(self):
        self.failures = 0
        self.documents = 0

    def ok(self, what, how):
        print(f"  ok    {what:<58} {how}")

    def fail(self, what, message):
        self.failures += 1
        print(f"  FAIL  {what}: {message}")

    def note(self, message):
        print(f"  note  {message}")


def describe(doc):
    return f"{doc.get('apiVersion')} {doc.get('kind')} {doc.get('metadata', {}).get('name')}"


# --- rendering ---------------------------------------------------------------

def kubectl_available():
    if shutil.which("kubectl") is None:
        return False
    probe = subprocess.run(["kubectl", "kustomize", "--help"], capture_output=True, text=True)
    return probe.returncode == 0


def render_kubectl(directory):
    run = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True)
    if run.returncode != 0:
        raise kustomize_lite.RenderError(run.stderr.strip())
    return [d for d in yaml.safe_load_all(run.stdout) if d is not None]


def key(doc):
    meta = doc.get("metadata", {})
    return (doc.get("apiVersion"), doc.get("kind"), meta.get("namespace", ""), meta.get("name", ""))


def render(directory, renderer, report):
    """The documents of one kustomization, or None when it cannot render."""
    label = f"render {directory}"
    if renderer == "kubectl":
        try:
            docs = render_kubectl(directory)
        except kustomize_lite.RenderError as e:
            report.fail(label, f"kubectl kustomize: {e}")
            return None
        try:
            lite = kustomize_lite.render(directory)
        except kustomize_lite.RenderError as e:
            report.fail(label, f"the fallback renderer cannot render it: {e}")
            return docs
        if sorted(lite, key=key) != sorted(docs, key=key):
            report.fail(label, "deploy/tools/kustomize_lite.py renders it differently from kubectl "
                               "kustomize: keep the kustomization to what the fallback supports")
        else:
            report.ok(label, "kubectl kustomize; kustomize_lite.py renders the same")
        return docs
    try:
        docs = kustomize_lite.render(directory)
    except kustomize_lite.RenderError as e:
        report.fail(label, str(e))
        return None
    report.ok(label, "kustomize_lite.py")
    return docs


# --- schemas -----------------------------------------------------------------

def strict(schema):
    """Refuses unknown fields in every object schema that lists its
    properties, as the API server's strict field validation does."""
    if isinstance(schema, dict):
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema = dict(schema, additionalProperties=False)
        return {k: strict(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def load_crd_schemas(root):
    """(group, version, kind) -> (strict schema, source) from deploy/schemas/*/."""
    schemas = {}
    for path in sorted(glob.glob(str(root / "schemas" / "*" / "*.yaml"))):
        with open(path, encoding="utf-8") as f:
            crd = yaml.safe_load(f)
        if crd.get("kind") != "CustomResourceDefinition":
            continue
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = version["schema"]["openAPIV3Schema"]
            source = f"CRD schema {Path(path).parent.name} (strict)"
            schemas[(group, version["name"], kind)] = (strict(schema), source)
    return schemas


DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def validate_schema(doc, versions, crds, report):
    what = describe(doc)
    report.documents += 1
    api_version = doc.get("apiVersion", "")
    group, _, version = api_version.rpartition("/")
    crd = crds.get((group, version, doc.get("kind")))
    if crd is not None:
        schema, source = crd
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
        name = doc.get("metadata", {}).get("name", "")
        if not DNS_SUBDOMAIN.match(name) or len(name) > 253:
            errors.append(f"metadata.name {name!r} is not a DNS subdomain")
        for error in errors:
            message = error if isinstance(error, str) else \
                f"{'.'.join(str(p) for p in error.path) or '(root)'}: {error.message}"
            report.fail(what, message)
        if not errors:
            report.ok(what, source)
        return
    if "." in group and not group.endswith(".k8s.io"):
        report.fail(what, f"no schema for the custom resource group {group}: add its CRD "
                          f"under deploy/schemas/")
        return
    good = True
    for kube in versions:
        try:
            kubernetes_validate.validate(doc, kube, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path) or "(root)"
            report.fail(what, f"Kubernetes {kube}: {path}: {e.message}")
            good = False
        except kubernetes_validate.SchemaNotFoundError as e:
            report.fail(what, e.message)
            good = False
    if good:
        report.ok(what, f"Kubernetes {', '.join(versions)} schemas (strict)")


# --- checks a schema cannot make ---------------------------------------------

def pod_templates(docs):
    """(workload, pod template) pairs."""
    for doc in docs:
        if doc.get("kind") in WORKLOADS:
            yield doc, doc.get("spec", {}).get("template", {})


def selector_matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def quantity_mib(value):
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024 * 1024,
             "k": 1000 / 1024 / 1024, "M": 1000 ** 2 / 1024 ** 2, "G": 1000 ** 3 / 1024 ** 2}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    if not match or (match.group(2) and match.group(2) not in units):
        raise ValueError(f"unreadable quantity {value!r}")
    number = float(match.group(1))
    return number * units[match.group(2)] if match.group(2) else number / 1024 / 1024


def check_workloads(docs, report):
    problems = []
    configmaps = {d["metadata"]["name"] for d in docs if d.get("kind") == "ConfigMap"}
    for workload, template in pod_templates(docs):
        what = describe(workload)
        selector = workload.get("spec", {}).get("selector", {}).get("matchLabels", {})
        labels = template.get("metadata", {}).get("labels", {})
        if not selector_matches(selector, labels):
            problems.append((what, f"selector {selector} does not match the pod labels {labels}"))
        spec = template.get("spec", {})
        for volume in spec.get("volumes", []):
            name = volume.get("configMap", {}).get("name")
            if name and name not in configmaps:
                problems.append((what, f"volume {volume['name']} needs ConfigMap {name}, "
                                       f"which this rendering lacks"))
        for container in spec.get("containers", []):
            ports = {p.get("name") for p in container.get("ports", [])}
            for probe_name in ("readinessProbe", "livenessProbe", "startupProbe"):
                probe = container.get(probe_name, {})
                for handler in ("httpGet", "tcpSocket", "grpc"):
                    port = probe.get(handler, {}).get("port")
                    if isinstance(port, str) and port not in ports:
                        problems.append((what, f"{container['name']}.{probe_name} names port "
                                               f"{port}, which the container does not have"))
            mounts = {m["name"] for m in container.get("volumeMounts", [])}
            missing = mounts - {v["name"] for v in spec.get("volumes", [])}
            missing -= {t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])}
            for name in sorted(missing):
                problems.append((what, f"{container['name']} mounts {name}, which is no volume"))
    for doc in docs:
        kind = doc.get("kind")
        if kind == "Service":
            selector = doc.get("spec", {}).get("selector", {})
            pods = [t for _, t in pod_templates(docs)
                    if selector_matches(selector, t.get("metadata", {}).get("labels", {}))]
            if not pods:
                problems.append((describe(doc), f"selector {selector} matches no pod template"))
            for port in doc.get("spec", {}).get("ports", []):
                target = port.get("targetPort")
                if isinstance(target, str) and not any(
                        target == p.get("name")
                        for t in pods for c in t["spec"].get("containers", []) for p in c.get("ports", [])):
                    problems.append((describe(doc), f"targetPort {target} is no port of its pods"))
        if kind == "PodDisruptionBudget":
            selector = doc.get("spec", {}).get("selector", {}).get("matchLabels", {})
            if not any(selector_matches(selector, t.get("metadata", {}).get("labels", {}))
                       for _, t in pod_templates(docs)):
                problems.append((describe(doc), f"selector {selector} matches no pod template"))
    return problems


def check_security(docs, dockerfile_uid):
    problems = []
    for workload, template in pod_templates(docs):
        what = describe(workload)
        spec = template.get("spec", {})
        pod = spec.get("securityContext", {})
        if pod.get("runAsNonRoot") is not True:
            problems.append((what, "pod securityContext.runAsNonRoot is not true"))
        if pod.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append((what, "pod securityContext.seccompProfile is not RuntimeDefault"))
        if spec.get("automountServiceAccountToken") is not False:
            problems.append((what, "automountServiceAccountToken is not false (nothing here "
                                   "talks to the Kubernetes API)"))
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            context = container.get("securityContext", {})
            name = container.get("name")
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append((what, f"{name}: allowPrivilegeEscalation is not false"))
            if context.get("readOnlyRootFilesystem") is not True:
                problems.append((what, f"{name}: readOnlyRootFilesystem is not true"))
            if "ALL" not in context.get("capabilities", {}).get("drop", []):
                problems.append((what, f"{name}: capabilities do not drop ALL"))
            image_name = kustomize_lite.split_image(container.get("image", ""))[0]
            if image_name.split("/")[-1] == "auditx" and dockerfile_uid is not None:
                uid = context.get("runAsUser", pod.get("runAsUser"))
                if uid != dockerfile_uid:
                    problems.append((what, f"{name}: runAsUser {uid} differs from the image's "
                                           f"USER {dockerfile_uid} (deploy/Dockerfile)"))
    return problems


def check_autoscaling(docs):
    problems = []
    deployments = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Deployment"}
    auths = {d["metadata"]["name"] for d in docs if d.get("kind") == "TriggerAuthentication"}
    scaled = {}
    for doc in docs:
        kind = doc.get("kind")
        if kind == "ScaledObject":
            target = doc["spec"]["scaleTargetRef"]["name"]
            for trigger in doc["spec"].get("triggers", []):
                auth = trigger.get("authenticationRef", {}).get("name")
                if auth and auth not in auths:
                    problems.append((describe(doc), f"authenticationRef {auth} is not in this rendering"))
        elif kind == "HorizontalPodAutoscaler":
            target = doc["spec"]["scaleTargetRef"]["name"]
        else:
            continue
        if target not in deployments:
            problems.append((describe(doc), f"scales {target}, which is no Deployment here"))
        scaled.setdefault(target, []).append(describe(doc))
    for target, scalers in scaled.items():
        if len(scalers) > 1:
            problems.append((f"Deployment {target}", f"scaled by several autoscalers: {scalers}"))
        if target in deployments and "replicas" in deployments[target]["spec"]:
            problems.append((f"Deployment {target}", "has spec.replicas although an autoscaler "
                                                     "owns it; every apply would reset the fleet"))
    return problems


def auditx_config(docs):
    for doc in docs:
        if doc.get("kind") == "ConfigMap" and "auditx.toml" in doc.get("data", {}):
            return tomllib.loads(doc["data"]["auditx.toml"])
    return None


def setting(config, dotted):
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(dotted)
        node = node[part]
    return node


def container_of(docs, deployment, name):
    for doc in docs:
        if doc.get("kind") == "Deployment" and doc["metadata"]["name"] == deployment:
            spec = doc["spec"]["template"]["spec"]
            for container in spec.get("containers", []):
                if container["name"] == name:
                    return doc, spec, container
    return None, None, None


def check_sizing(docs, report):
    """What the manifests derive from auditx.toml, against auditx.toml."""
    problems = []
    config = auditx_config(docs)
    if config is None:
        return problems
    try:
        concurrency = int(setting(config, "worker.concurrency"))
        time_limit = int(setting(config, "query.time_limit_secs"))
        query_mib = int(setting(config, "query.memory_limit_mb"))
        pool_mib = int(setting(config, "worker.query_memory_mb"))
        request_timeout = int(setting(config, "api.request_timeout_secs"))
        ingest_bytes = int(setting(config, "ingest.max_body_bytes"))
        ingest_calls = int(setting(config, "ingest.max_concurrent"))
        prefix = str(setting(config, "rabbitmq.prefix"))
        api_port = int(str(setting(config, "listen")).rsplit(":", 1)[1])
        worker_port = int(str(setting(config, "worker.listen")).rsplit(":", 1)[1])
    except KeyError as e:
        return [("ConfigMap auditx", f"auditx.toml does not state {e.args[0]}; write it out so "
                                     f"the sizes derived from it can be checked")]

    if query_mib > pool_mib:
        problems.append(("ConfigMap auditx", f"query.memory_limit_mb {query_mib} exceeds "
                                             f"worker.query_memory_mb {pool_mib}: no query could "
                                             f"use its limit"))

    for doc in docs:
        if doc.get("kind") != "ScaledObject":
            continue
        for trigger in doc["spec"].get("triggers", []):
            if trigger.get("type") != "rabbitmq":
                continue
            meta = trigger.get("metadata", {})
            what = describe(doc)
            if meta.get("queueName") != f"{prefix}.tasks":
                problems.append((what, f"queueName {meta.get('queueName')} is not {prefix}.tasks "
                                       f"(rabbitmq.prefix)"))
            if meta.get("mode") != "QueueLength":
                problems.append((what, f"mode {meta.get('mode')}: the sizing assumes QueueLength"))
            if meta.get("protocol") != "http":
                problems.append((what, "protocol is not http: over AMQP KEDA sees only ready "
                                       "messages, not the tasks being run"))
            try:
                value = float(meta.get("value"))
                float(meta.get("activationValue", "0"))
            except (TypeError, ValueError):
                problems.append((what, "value and activationValue must be numbers"))
                continue
            if value != concurrency:
                problems.append((what, f"value {meta.get('value')} is not worker.concurrency "
                                       f"({concurrency}): each replica takes that many tasks"))

    workload, spec, container = container_of(docs, "auditx-worker", "worker")
    if container is not None:
        what = describe(workload)
        grace = spec.get("terminationGracePeriodSeconds", 30)
        if grace < time_limit + WORKER_GRACE_MARGIN_SECS:
            problems.append((what, f"terminationGracePeriodSeconds {grace} < query.time_limit_secs "
                                   f"{time_limit} + {WORKER_GRACE_MARGIN_SECS} s margin"))
        limit = container.get("resources", {}).get("limits", {}).get("memory")
        need = MEASURED_WORKER_MIB + pool_mib
        if limit is None or quantity_mib(limit) < need:
            problems.append((what, f"memory limit {limit} < {need} MiB (measured {MEASURED_WORKER_MIB} "
                                   f"MiB + worker.query_memory_mb {pool_mib}, the pool every "
                                   f"data query of the process shares)"))
        ports = [p.get("containerPort") for p in container.get("ports", [])]
        if worker_port not in ports:
            problems.append((what, f"no container port {worker_port} (worker.listen)"))

    workload, spec, container = container_of(docs, "auditx-scheduler", "scheduler")
    if container is not None:
        what = describe(workload)
        grace = spec.get("terminationGracePeriodSeconds", 30)
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        if grace < pre_stop + request_timeout + SCHEDULER_GRACE_MARGIN_SECS:
            problems.append((what, f"terminationGracePeriodSeconds {grace} < preStop {pre_stop} + "
                                   f"api.request_timeout_secs {request_timeout} + "
                                   f"{SCHEDULER_GRACE_MARGIN_SECS} s margin"))
        limit = container.get("resources", {}).get("limits", {}).get("memory")
        need = MEASURED_SCHEDULER_MIB + 3 * ingest_calls * ingest_bytes / 1024 / 1024
        if limit is None or quantity_mib(limit) < need:
            problems.append((what, f"memory limit {limit} < {need:.0f} MiB (measured "
                                   f"{MEASURED_SCHEDULER_MIB} MiB + 3 x ingest.max_body_bytes x "
                                   f"ingest.max_concurrent)"))
        ports = [p.get("containerPort") for p in container.get("ports", [])]
        if api_port not in ports:
            problems.append((what, f"no container port {api_port} (listen)"))

    report.note(f"auditx.toml: worker.concurrency={concurrency}, query.time_limit_secs={time_limit}, "
                f"query.memory_limit_mb={query_mib}, worker.query_memory_mb={pool_mib}, api.request_timeout_secs={request_timeout}, "
                f"rabbitmq.prefix={prefix}")
    return problems


def run_checks(name, docs, dockerfile_uid, report):
    problems = []
    problems += check_workloads(docs, report)
    problems += check_security(docs, dockerfile_uid)
    problems += check_autoscaling(docs)
    try:
        problems += check_sizing(docs, report)
    except ValueError as e:
        problems.append((name, str(e)))
    for what, message in problems:
        report.fail(what, message)
    if not problems:
        report.ok(f"cross-checks of {name}", "selectors, ports, security, autoscaling, sizing")
    secrets = sorted({ref["secretRef"]["name"]
                      for _, t in pod_templates(docs)
                      for c in t.get("spec", {}).get("containers", [])
                      for ref in c.get("envFrom", []) if "secretRef" in ref}
                     | {env["valueFrom"]["secretKeyRef"]["name"]
                        for _, t in pod_templates(docs)
                        for c in t.get("spec", {}).get("containers", [])
                        for env in c.get("env", []) if "secretKeyRef" in env.get("valueFrom", {})}
                     | {ref["name"]
                        for d in docs if d.get("kind") == "TriggerAuthentication"
                        for ref in d.get("spec", {}).get("secretTargetRef", [])})
    if secrets:
        report.note(f"Secrets created outside: {', '.join(secrets)} (not checked)")


DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
RULE_FIELDS = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
SEVERITIES = {"critical", "warning", "info"}


def check_prometheus_rules(root, report):
    """The alert rules: Prometheus' rule-file structure, one unique name per
    alert, a severity, a summary. Whether the metrics they name exist is
    checked against a real scrape by tests/tests/metrics.rs."""
    path = root / "prometheus" / "auditx-rules.yaml"
    if not path.is_file():
        report.fail(str(path), "missing")
        return
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        report.fail(str(path), f"not YAML: {e}")
        return
    problems = []
    if not isinstance(doc, dict) or set(doc) != {"groups"} or not isinstance(doc["groups"], list):
        report.fail(str(path), "a rule file holds exactly one key, `groups`, a list")
        return
    names = set()
    alerts = 0
    for group in doc["groups"]:
        if not isinstance(group, dict) or not isinstance(group.get("name"), str) \
                or not isinstance(group.get("rules"), list):
            problems.append("every group needs a `name` and a `rules` list")
            continue
        for rule in group["rules"]:
            name = rule.get("alert") if isinstance(rule, dict) else None
            if not isinstance(name, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
                problems.append(f"a rule without a valid `alert` name: {rule!r}")
                continue
            alerts += 1
            if name in names:
                problems.append(f"{name}: defined twice")
            names.add(name)
            unknown = set(rule) - RULE_FIELDS
            if unknown:
                problems.append(f"{name}: unknown fields {sorted(unknown)}")
            expr = rule.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                problems.append(f"{name}: `expr` must be a non-empty string")
            elif expr.count("(") != expr.count(")") or expr.count("{") != expr.count("}"):
                problems.append(f"{name}: unbalanced brackets in `expr`")
            elif "auditx_" not in expr:
                problems.append(f"{name}: `expr` names no auditx metric")
            if "for" in rule and not (isinstance(rule["for"], str) and DURATION.match(rule["for"])):
                problems.append(f"{name}: `for` is not a Prometheus duration: {rule['for']!r}")
            labels = rule.get("labels") or {}
            if labels.get("severity") not in SEVERITIES:
                problems.append(f"{name}: labels.severity must be one of {sorted(SEVERITIES)}")
            if not all(isinstance(v, str) for v in labels.values()):
                problems.append(f"{name}: label values must be strings")
            annotations = rule.get("annotations") or {}
            if not isinstance(annotations.get("summary"), str):
                problems.append(f"{name}: annotations.summary is missing")
    for message in problems:
        report.fail(str(path), message)
    if not problems:
        report.ok(str(path), f"{alerts} alerts in {len(doc['groups'])} group(s)")


def dockerfile_user(root, report):
    path = root / "Dockerfile"
    if not path.is_file():
        report.note(f"{path} not found; image user not checked")
        return None
    stages = re.split(r"(?im)^FROM\s", path.read_text(encoding="utf-8"))
    users = re.findall(r"(?im)^USER\s+(\S+)", stages[-1])
    if not users:
        report.fail(str(path), "the final stage sets no USER: the image would run as root")
        return None
    uid = users[-1].split(":")[0]
    if not uid.isdigit() or int(uid) == 0:
        report.fail(str(path), f"USER {users[-1]}: use a numeric non-zero uid, so that "
                               f"runAsNonRoot can check it")
        return None
    report.ok(f"{path}", f"final stage runs as uid {uid}")
    return int(uid)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="deploy", help="the deploy folder (default: deploy)")
    parser.add_argument("--kube-versions", default="1.30,1.37",
                        help="Kubernetes versions whose schemas to check against")
    parser.add_argument("--renderer", choices=["auto", "kubectl", "lite"],
                        default=os.environ.get("AUDITX_RENDERER", "auto"))
    args = parser.parse_args()
    root = Path(args.root)
    versions = [v.strip() for v in args.kube_versions.split(",") if v.strip()]
    report = Report()

    renderer = args.renderer
    if renderer == "auto":
        renderer = "kubectl" if kubectl_available() else "lite"
        why = "kubectl not found"
    elif renderer == "kubectl" and not kubectl_available():
        print("kubectl with `kustomize` is not installed", file=sys.stderr)
        return 1
    else:
        why = f"--renderer {renderer}"
    if renderer == "kubectl":
        print("renderer: kubectl kustomize, compared with deploy/tools/kustomize_lite.py")
    else:
        print(f"renderer: deploy/tools/kustomize_lite.py ({why})")
    print(f"schemas: kubernetes-validate {kubernetes_validate.__version__} "
          f"for Kubernetes {', '.join(versions)}; custom resources from {root / 'schemas'}")
    crds = load_crd_schemas(root)

    print(f"\n== {root / 'Dockerfile'}")
    uid = dockerfile_user(root, report)

    kustomizations = [root / "k8s" / "base"] + sorted(
        p.parent for p in (root / "k8s" / "overlays").glob("*/kustomization.yaml"))
    for directory in kustomizations:
        print(f"\n== {directory} (kustomization)")
        docs = render(directory, renderer, report)
        if docs is None:
            continue
        for doc in docs:
            validate_schema(doc, versions, crds, report)
        run_checks(str(directory), docs, uid, report)

    files = sorted((root / "k8s" / "dependencies").glob("*.yaml")) + sorted(
        (root / "k8s").glob("**/*.example.yaml"))
    for path in files:
        print(f"\n== {path} (plain manifests)")
        try:
            docs = kustomize_lite.load_documents(path)
        except (kustomize_lite.RenderError, yaml.YAMLError) as e:
            report.fail(str(path), str(e))
            continue
        for doc in docs:
            validate_schema(doc, versions, crds, report)
        run_checks(str(path), docs, uid, report)

    print(f"\n== {root / 'prometheus' / 'auditx-rules.yaml'} (Prometheus rules)")
    check_prometheus_rules(root, report)

    print()
    if report.failures:
        print(f"deploy validation FAILED: {report.failures} problem(s) in "
              f"{report.documents} documents")
        return 1
    print(f"deploy validation passed: {report.documents} documents in {len(kustomizations)} "
          f"kustomizations and {len(files)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
