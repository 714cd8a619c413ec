#!/usr/bin/env python3
"""Render the kustomize trees under deploy/kustomize/ without the kustomize binary.

Neither helm nor kustomize can be installed from the registries this project's machines
reach, so the tests render the manifests with this small renderer. It implements only the
kustomization fields the project uses, and refuses any other field by name (so a
kustomization that this renderer cannot render exactly fails loudly instead of rendering
something different):

* ``resources`` (YAML files, or folders with their own kustomization, rendered first);
* ``namespace`` (set on every object), ``labels`` (``pairs`` added to ``metadata.labels``;
  ``includeSelectors`` / ``includeTemplates`` refused);
* ``images`` (``name`` -> ``newName`` / ``newTag`` in every container and init container);
* ``replicas`` (``name`` / ``count`` of a Deployment or StatefulSet);
* ``configMapGenerator`` (``files`` / ``literals``; ``options.disableNameSuffixHash: true``
  is required: the hash kustomize appends is not reproduced);
* ``patches`` with a ``target`` (``kind`` / ``name``) and an inline ``patch`` that is
  either a JSON 6902 operation list (``add`` / ``replace`` / ``remove``) or a strategic-merge
  ``$patch: delete``.

Where ``kubectl`` is installed, tests/deploy/test_deploy_render.py checks that
``kubectl kustomize`` renders the same objects.

Usage: ``python scripts/deploy/render_kustomize.py deploy/kustomize/base`` (YAML on stdout).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import yaml

__all__ = ["render", "KustomizeError", "apply_json6902", "SUPPORTED_FIELDS"]

KUSTOMIZATION_FILE = "kustomization.yaml"
#: Kustomization fields this renderer implements.
SUPPORTED_FIELDS = frozenset(
    {"apiVersion", "kind", "resources", "namespace", "labels", "images", "replicas", "configMapGenerator", "patches"}
)
#: Kinds whose pod template is at spec.template (CronJob: spec.jobTemplate.spec.template).
_POD_TEMPLATE_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"})
_REPLICA_KINDS = frozenset({"Deployment", "StatefulSet", "ReplicaSet"})

Obj = dict[str, Any]


class KustomizeError(ValueError):
    """The kustomization uses something this renderer does not implement, or is wrong."""


def _load_yaml_docs(path: Path) -> list[Obj]:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except (OSError, yaml.YAMLError) as exc:
        raise KustomizeError(f"{path}: {exc}") from exc
    for d in docs:
        if not isinstance(d, dict) or "kind" not in d or "metadata" not in d:
            raise KustomizeError(f"{path}: every document must be an object with kind and metadata")
    return docs


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise KustomizeError(f"JSON pointer must start with '/': {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str], path: str) -> Any:
    cur = doc
    for part in parts[:-1]:
        try:
            cur = cur[int(part)] if isinstance(cur, list) else cur[part]
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise KustomizeError(f"patch path {path!r} does not exist") from exc
    return cur


def apply_json6902(obj: Obj, ops: list[Obj]) -> Obj:
    """Apply JSON 6902 ``add`` / ``replace`` / ``remove`` operations to a copy of ``obj``."""
    out = copy.deepcopy(obj)
    for op in ops:
        kind, path = op.get("op"), str(op.get("path", ""))
        parts = _pointer(path)
        parent = _parent(out, parts, path)
        last = parts[-1]
        if kind == "add":
            if isinstance(parent, list):
                if last == "-":
                    parent.append(copy.deepcopy(op["value"]))
                else:
                    parent.insert(int(last), copy.deepcopy(op["value"]))
            else:
                parent[last] = copy.deepcopy(op["value"])
        elif kind in ("replace", "remove"):
            try:
                key: Any = int(last) if isinstance(parent, list) else last
                parent[key]  # noqa: B018 - must exist (RFC 6902)
            except (KeyError, IndexError, ValueError) as exc:
                raise KustomizeError(f"patch path {path!r} does not exist") from exc
            if kind == "replace":
                parent[key] = copy.deepcopy(op["value"])
            else:
                del parent[key]
        else:
            raise KustomizeError(f"unsupported JSON 6902 operation {kind!r} (add, replace, remove)")
    return out


def _matches(obj: Obj, target: Obj) -> bool:
    unknown = set(target) - {"kind", "name"}
    if unknown:
        raise KustomizeError(f"unsupported patch target fields: {sorted(unknown)}")
    return all(
        (obj.get("kind") if k == "kind" else obj["metadata"].get("name")) == v for k, v in target.items()
    )


def _apply_patch(objects: list[Obj], spec: Obj, base: Path) -> list[Obj]:
    if set(spec) - {"target", "patch"} or "patch" not in spec or "target" not in spec:
        raise KustomizeError("a patch needs exactly 'target' and an inline 'patch'")
    body = yaml.safe_load(spec["patch"])
    hits = [i for i, o in enumerate(objects) if _matches(o, spec["target"])]
    if not hits:
        raise KustomizeError(f"patch target {spec['target']} matches no object")
    if isinstance(body, list):
        for i in hits:
            objects[i] = apply_json6902(objects[i], body)
        return objects
    if isinstance(body, dict) and body.get("$patch") == "delete":
        return [o for i, o in enumerate(objects) if i not in hits]
    raise KustomizeError("only JSON 6902 operation lists and '$patch: delete' are supported")


def _config_maps(specs: list[Obj], base: Path) -> list[Obj]:
    out = []
    for spec in specs:
        if set(spec) - {"name", "files", "literals", "options"}:
            raise KustomizeError(f"unsupported configMapGenerator fields: {sorted(set(spec) - {'name', 'files', 'literals', 'options'})}")
        if (spec.get("options") or {}) != {"disableNameSuffixHash": True}:
            raise KustomizeError("configMapGenerator needs options: {disableNameSuffixHash: true}")
        data: dict[str, str] = {}
        for f in spec.get("files", []):
            key, _, rel = f.partition("=") if "=" in f else (Path(f).name, "", f)
            data[key] = (base / (rel or f)).read_text(encoding="utf-8")
        for lit in spec.get("literals", []):
            key, _, value = lit.partition("=")
            data[key] = value
        out.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": spec["name"]}, "data": data})
    return out


def _pod_specs(obj: Obj) -> list[Obj]:
    if obj["kind"] in _POD_TEMPLATE_KINDS:
        return [obj["spec"]["template"]["spec"]]
    if obj["kind"] == "CronJob":
        return [obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]]
    if obj["kind"] == "Pod":
        return [obj["spec"]]
    return []


def _split_image(image: str) -> tuple[str, str]:
    """(name, ':tag' or '@digest' or '')."""
    if "@" in image:
        name, digest = image.split("@", 1)
        return name, "@" + digest
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon:]
    return image, ""


def _set_images(objects: list[Obj], images: list[Obj]) -> None:
    for spec in images:
        if set(spec) - {"name", "newName", "newTag"}:
            raise KustomizeError(f"unsupported images fields: {sorted(set(spec) - {'name', 'newName', 'newTag'})}")
        for obj in objects:
            for pod in _pod_specs(obj):
                for c in pod.get("containers", []) + pod.get("initContainers", []):
                    name, tag = _split_image(c["image"])
                    if name == spec["name"]:
                        new_tag = f":{spec['newTag']}" if "newTag" in spec else tag
                        c["image"] = f"{spec.get('newName', name)}{new_tag}"


def render(folder: Path | str) -> list[Obj]:
    """The objects the kustomization in ``folder`` renders to.

    Raises:
        KustomizeError: a field or form this renderer does not implement, or a broken tree.
    """
    base = Path(folder)
    kpath = base / KUSTOMIZATION_FILE
    try:
        k = yaml.safe_load(kpath.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise KustomizeError(f"{kpath}: {exc}") from exc
    unknown = set(k) - SUPPORTED_FIELDS
    if unknown:
        raise KustomizeError(f"{kpath}: unsupported kustomization fields {sorted(unknown)}")
    objects: list[Obj] = []
    for res in k.get("resources", []):
        path = base / res
        objects += render(path) if path.is_dir() else _load_yaml_docs(path)
    objects += _config_maps(k.get("configMapGenerator", []), base)
    for spec in k.get("patches", []):
        objects = _apply_patch(objects, spec, base)
    if "namespace" in k:
        for obj in objects:
            obj["metadata"]["namespace"] = k["namespace"]
    for spec in k.get("labels", []):
        if set(spec) - {"pairs"}:
            raise KustomizeError("labels: only 'pairs' is supported (no includeSelectors / includeTemplates)")
        for obj in objects:
            obj["metadata"].setdefault("labels", {}).update(spec["pairs"])
    _set_images(objects, k.get("images", []))
    for spec in k.get("replicas", []):
        hits = [o for o in objects if o["kind"] in _REPLICA_KINDS and o["metadata"]["name"] == spec["name"]]
        if not hits:
            raise KustomizeError(f"replicas: no Deployment/StatefulSet named {spec['name']!r}")
        for obj in hits:
            obj["spec"]["replicas"] = int(spec["count"])
    return objects


def main(argv: list[str] | None = None) -> int:
    """Print the rendered objects as a YAML stream."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="folder with a kustomization.yaml")
    args = parser.parse_args(argv)
    try:
        objects = render(args.folder)
    except KustomizeError as exc:
        print(f"render_kustomize.py: error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(yaml.safe_dump_all(objects, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
