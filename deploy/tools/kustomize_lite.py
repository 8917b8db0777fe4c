#!/usr/bin/env python3
"""Renders a kustomization like `kubectl kustomize`, for machines without
kubectl: only the features deploy/k8s uses, and an error for any other.

    python3 deploy/tools/kustomize_lite.py deploy/k8s/overlays/example

Supported kustomization fields: resources (files and directories),
namespace, labels (pairs only: no selectors, no templates), images (name,
newName, newTag, digest) and patches (strategic merge or JSON 6902, from
`path` or inline `patch`, with an optional `target` of group, version,
kind, name, namespace). Transformers run in kustomize's order: patches,
namespace, labels, images. scripts/validate-deploy.sh renders with both
this and kubectl where kubectl exists and fails if they differ, so this
file cannot drift from kustomize unnoticed.

Needs PyYAML.
"""

import copy
import re
import sys
from pathlib import Path

import yaml

SUPPORTED_FIELDS = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "patches"}

# Kinds that live outside namespaces: the namespace transformer skips them.
CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
    "PersistentVolume", "StorageClass", "PriorityClass", "IngressClass",
    "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
    "APIService", "RuntimeClass", "CSIDriver", "VolumeAttachment",
    "ClusterTriggerAuthentication",
}

# Strategic-merge keys of the lists in built-in kinds that our patches may
# touch; any other list is replaced, as for custom resources.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "imagePullSecrets": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "topologySpreadConstraints": "topologyKey",
}

# kustomize's legacy output order (resource.go, orderFirst / orderLast).
ORDER_FIRST = [
    "Namespace", "ResourceQuota", "StorageClass", "CustomResourceDefinition",
    "ServiceAccount", "PodSecurityPolicy", "Role", "ClusterRole", "RoleBinding",
    "ClusterRoleBinding", "ConfigMap", "Secret", "Endpoints", "Service",
    "LimitRange", "PriorityClass", "PersistentVolume", "PersistentVolumeClaim",
    "Deployment", "StatefulSet", "CronJob", "PodDisruptionBudget",
]
ORDER_LAST = ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]


class RenderError(Exception):
    pass


def load_documents(path):
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            raise RenderError(f"{path}: a document without apiVersion and kind")
    return docs


def find_kustomization(directory):
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    raise RenderError(f"{directory}: no kustomization.yaml")


def group_of(doc):
    api_version = doc.get("apiVersion", "")
    return api_version.split("/")[0] if "/" in api_version else ""


def version_of(doc):
    return doc.get("apiVersion", "").split("/")[-1]


def is_builtin(doc):
    group = group_of(doc)
    return "." not in group or group.endswith(".k8s.io")


def render(directory):
    """Returns the rendered documents of the kustomization in `directory`."""
    directory = Path(directory)
    kfile = find_kustomization(directory)
    with open(kfile, encoding="utf-8") as f:
        kustomization = yaml.safe_load(f) or {}
    unsupported = set(kustomization) - SUPPORTED_FIELDS
    if unsupported:
        raise RenderError(f"{kfile}: unsupported fields {sorted(unsupported)} (kustomize_lite knows "
                          f"{sorted(SUPPORTED_FIELDS)}); render with kubectl instead")

    resources = []
    for entry in kustomization.get("resources", []):
        target = directory / entry
        if target.is_dir():
            resources.extend(render(target))
        elif target.is_file():
            resources.extend(load_documents(target))
        else:
            raise RenderError(f"{kfile}: resource {entry} not found")
    check_unique(resources, kfile)

    for patch in kustomization.get("patches", []):
        resources = apply_patch(resources, patch, directory, kfile)
    if "namespace" in kustomization:
        set_namespace(resources, kustomization["namespace"])
    for label in kustomization.get("labels", []):
        add_labels(resources, label, kfile)
    for image in kustomization.get("images", []):
        set_image(resources, image, kfile)
    return sorted(resources, key=order_key)


def identity(doc):
    meta = doc.get("metadata", {})
    return (group_of(doc), doc["kind"], meta.get("namespace", ""), meta.get("name", ""))


def check_unique(resources, kfile):
    seen = set()
    for doc in resources:
        ident = identity(doc)
        if ident in seen:
            raise RenderError(f"{kfile}: {ident} is defined twice")
        seen.add(ident)


def order_key(doc):
    kind = doc["kind"]
    if kind in ORDER_FIRST:
        rank = ORDER_FIRST.index(kind)
    elif kind in ORDER_LAST:
        rank = len(ORDER_FIRST) + 1 + ORDER_LAST.index(kind)
    else:
        rank = len(ORDER_FIRST)
    meta = doc.get("metadata", {})
    return (rank, doc["apiVersion"], kind, meta.get("namespace", ""), meta.get("name", ""))


# --- patches -----------------------------------------------------------------

def apply_patch(resources, spec, directory, kfile):
    unknown = set(spec) - {"path", "patch", "target"}
    if unknown:
        raise RenderError(f"{kfile}: unsupported patch fields {sorted(unknown)}")
    if "path" in spec:
        text = (directory / spec["path"]).read_text(encoding="utf-8")
    elif "patch" in spec:
        text = spec["patch"]
    else:
        raise RenderError(f"{kfile}: a patch needs `path` or `patch`")
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    if len(docs) == 1 and isinstance(docs[0], list):
        targets = select(resources, spec.get("target"), kfile)
        for doc in targets:
            json6902(doc, docs[0], kfile)
        return resources
    for patch in docs:
        if not isinstance(patch, dict):
            raise RenderError(f"{kfile}: a patch is neither a map nor a list of operations")
        if "target" in spec:
            targets = select(resources, spec["target"], kfile)
        else:
            targets = [doc for doc in resources if same_object(doc, patch)]
            if not targets:
                meta = patch.get("metadata", {})
                raise RenderError(f"{kfile}: no resource matches the patch of "
                                  f"{patch.get('kind')} {meta.get('name')}")
        if patch.get("$patch") == "delete":
            doomed = {id(doc) for doc in targets}
            resources = [doc for doc in resources if id(doc) not in doomed]
            continue
        if "$patch" in patch:
            raise RenderError(f"{kfile}: unsupported directive $patch: {patch['$patch']}")
        for doc in targets:
            merged = strategic_merge(doc, strip_identity(patch), is_builtin(doc), kfile)
            doc.clear()
            doc.update(merged)
    return resources


def same_object(doc, patch):
    meta, pmeta = doc.get("metadata", {}), patch.get("metadata", {})
    if doc["kind"] != patch.get("kind") or group_of(doc) != group_of(patch):
        return False
    if meta.get("name") != pmeta.get("name"):
        return False
    return "namespace" not in pmeta or meta.get("namespace") == pmeta["namespace"]


def strip_identity(patch):
    patch = copy.deepcopy(patch)
    patch.pop("apiVersion", None)
    patch.pop("kind", None)
    meta = patch.get("metadata")
    if isinstance(meta, dict):
        meta.pop("name", None)
        meta.pop("namespace", None)
        if not meta:
            patch.pop("metadata")
    return patch


def select(resources, target, kfile):
    if not target:
        raise RenderError(f"{kfile}: a JSON 6902 patch needs a target")
    unknown = set(target) - {"group", "version", "kind", "name", "namespace"}
    if unknown:
        raise RenderError(f"{kfile}: unsupported target fields {sorted(unknown)}")
    matches = []
    for doc in resources:
        meta = doc.get("metadata", {})
        if "group" in target and group_of(doc) != target["group"]:
            continue
        if "version" in target and version_of(doc) != target["version"]:
            continue
        if "kind" in target and doc["kind"] != target["kind"]:
            continue
        if "name" in target and not re.fullmatch(target["name"], meta.get("name", "")):
            continue
        if "namespace" in target and not re.fullmatch(target["namespace"], meta.get("namespace", "")):
            continue
        matches.append(doc)
    if not matches:
        raise RenderError(f"{kfile}: no resource matches the patch target {target}")
    return matches


def strategic_merge(original, patch, builtin, kfile):
    if not isinstance(original, dict) or not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(original)
    for key, value in patch.items():
        if key.startswith("$"):
            raise RenderError(f"{kfile}: unsupported directive {key}")
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = strategic_merge(result[key], value, builtin, kfile)
        elif isinstance(value, list) and isinstance(result.get(key), list) and builtin:
            result[key] = merge_list(key, result[key], value, builtin, kfile)
        else:
            result[key] = copy.deepcopy(value)
    return result


def merge_list(key, original, patch, builtin, kfile):
    merge_key = MERGE_KEYS.get(key)
    if key == "ports":
        merge_key = "containerPort" if all("containerPort" in p for p in original + patch) else "port"
    if merge_key is None or not all(isinstance(i, dict) and merge_key in i for i in original + patch):
        return copy.deepcopy(patch)
    result = copy.deepcopy(original)
    for item in patch:
        for index, existing in enumerate(result):
            if existing[merge_key] == item[merge_key]:
                result[index] = strategic_merge(existing, item, builtin, kfile)
                break
        else:
            result.append(copy.deepcopy(item))
    return result


def json6902(doc, operations, kfile):
    for op in operations:
        kind, path = op.get("op"), op.get("path", "")
        parent, last = walk_pointer(doc, path, kfile)
        if kind in ("add", "replace"):
            value = copy.deepcopy(op["value"])
            if isinstance(parent, list):
                if last == "-":
                    parent.append(value)
                elif kind == "add":
                    parent.insert(int(last), value)
                else:
                    parent[int(last)] = value
            else:
                if kind == "replace" and last not in parent:
                    raise RenderError(f"{kfile}: replace of missing {path}")
                parent[last] = value
        elif kind == "remove":
            if isinstance(parent, list):
                del parent[int(last)]
            elif last in parent:
                del parent[last]
            else:
                raise RenderError(f"{kfile}: remove of missing {path}")
        elif kind == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if current != op.get("value"):
                raise RenderError(f"{kfile}: test failed at {path}")
        else:
            raise RenderError(f"{kfile}: unsupported JSON 6902 op {kind}")


def walk_pointer(doc, pointer, kfile):
    if not pointer.startswith("/"):
        raise RenderError(f"{kfile}: bad JSON pointer {pointer!r}")
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")]
    node = doc
    for part in parts[:-1]:
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError):
            raise RenderError(f"{kfile}: JSON pointer {pointer} not found") from None
    return node, parts[-1]


# --- namespace, labels, images ----------------------------------------------

def set_namespace(resources, namespace):
    for doc in resources:
        if doc["kind"] not in CLUSTER_SCOPED:
            doc.setdefault("metadata", {})["namespace"] = namespace


def add_labels(resources, label, kfile):
    unknown = set(label) - {"pairs", "includeSelectors", "includeTemplates"}
    if unknown or label.get("includeSelectors") or label.get("includeTemplates"):
        raise RenderError(f"{kfile}: labels support only `pairs` (no selectors, no templates)")
    for doc in resources:
        labels = doc.setdefault("metadata", {}).setdefault("labels", {})
        labels.update({str(k): str(v) for k, v in label.get("pairs", {}).items()})


def split_image(image):
    """`registry:5000/name:tag@digest` -> (name, tag, digest)."""
    name, digest = (image.split("@", 1) + [None])[:2]
    tag = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
    return name, tag, digest


def set_image(resources, spec, kfile):
    unknown = set(spec) - {"name", "newName", "newTag", "digest"}
    if unknown:
        raise RenderError(f"{kfile}: unsupported image fields {sorted(unknown)}")

    def update(container):
        name, tag, digest = split_image(container.get("image", ""))
        if name != spec["name"]:
            return
        name = spec.get("newName", name)
        if "digest" in spec:
            tag, digest = None, spec["digest"]
        elif "newTag" in spec:
            tag, digest = str(spec["newTag"]), None
        container["image"] = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("containers", "initContainers", "ephemeralContainers") and isinstance(value, list):
                    for container in value:
                        if isinstance(container, dict):
                            update(container)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for doc in resources:
        walk(doc)


# --- output ------------------------------------------------------------------

class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper, value):
    """Block style for multi-line strings, double quotes (as kubectl writes
    them) for strings that would read as another type."""
    if "\n" in value:
        style = "|"
    elif dumper.resolve(yaml.ScalarNode, value, (True, False)) != "tag:yaml.org,2002:str":
        style = '"'
    else:
        style = None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(docs):
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=True, default_flow_style=False,
                         explicit_start=False)


def main(argv):
    if len(argv) != 2:
        print(f"usage: {argv[0]} KUSTOMIZATION_DIR", file=sys.stderr)
        return 2
    try:
        docs = render(argv[1])
    except RenderError as e:
        print(f"kustomize_lite: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(dump(docs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
