"""deploy/kustomize: renders, every object validates against the Kubernetes schemas."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy._deploy_tools import REPO, check_deploy, render_kustomize

TREES = check_deploy.TREES


def _key(obj: dict) -> tuple[str, str]:  # type: ignore[type-arg]
    return obj["kind"], obj["metadata"]["name"]


@pytest.mark.parametrize("tree", TREES)
def test_tree_renders_and_validates(tree: str) -> None:
    objects = render_kustomize.render(REPO / tree)
    kinds = sorted(_key(o) for o in objects)
    assert ("Deployment", "spinevcf-triton") in kinds and ("Job", "spinevcf-screening") in kinds
    assert ("Service", "spinevcf-triton") in kinds
    assert all(o["metadata"].get("namespace") == "spinevcf" for o in objects)
    assert check_deploy.validate_schemas(objects) == []


def test_schema_validation_catches_errors() -> None:
    objects = render_kustomize.render(REPO / TREES[0])
    job = next(o for o in objects if o["kind"] == "Job")
    unknown, wrong_type = copy.deepcopy(job), copy.deepcopy(job)
    unknown["spec"]["template"]["spec"]["containers"][0]["resourcez"] = {}
    wrong_type["spec"]["completions"] = "eight"
    errors = check_deploy.validate_schemas([job, unknown, wrong_type], versions=("1.37.0",))
    assert len(errors) == 2 and "resourcez" in errors[0] and "eight" in errors[1]


def test_dicomweb_overlay_reads_a_study_list_and_stores_back() -> None:
    objects = {_key(o): o for o in render_kustomize.render(REPO / TREES[1])}
    assert ("PersistentVolumeClaim", "spinevcf-studies") not in objects
    cm = objects[("ConfigMap", "spinevcf-study-list")]
    assert cm["metadata"]["namespace"] == "spinevcf" and "studies.txt" in cm["data"]
    c = objects[("Job", "spinevcf-screening")]["spec"]["template"]["spec"]["containers"][0]
    assert c["args"][1] == "/etc/spinevcf/studies.txt"
    assert "--dicomweb=$(DICOMWEB_URL)" in c["args"] and "--store-dicomweb=$(DICOMWEB_URL)" in c["args"]
    assert {"name": "DICOMWEB_URL", "value": "http://orthanc:8042"} in c["env"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (its built-in kustomize) is not installed")
@pytest.mark.parametrize("tree", TREES)
def test_renderer_agrees_with_kubectl_kustomize(tree: str) -> None:
    proc = subprocess.run(["kubectl", "kustomize", str(REPO / tree)], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0 and "unknown command" in proc.stderr:
        pytest.skip("this kubectl has no kustomize")
    assert proc.returncode == 0, proc.stderr
    theirs = sorted((o for o in yaml.safe_load_all(proc.stdout) if o), key=_key)
    ours = sorted(render_kustomize.render(REPO / tree), key=_key)
    assert ours == theirs


def _kustomization(tmp_path: Path, text: str) -> Path:
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata: {}\n")
    (tmp_path / "kustomization.yaml").write_text("resources: [cm.yaml]\n" + text)
    return tmp_path


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("commonLabels: {a: b}\n", "unsupported kustomization fields"),
        ("labels: [{pairs: {a: b}, includeSelectors: true}]\n", "only 'pairs'"),
        ("configMapGenerator: [{name: x, literals: [a=b]}]\n", "disableNameSuffixHash"),
        ("patches: [{target: {kind: ConfigMap, name: zz}, patch: '[]'}]\n", "matches no object"),
        ("patches: [{target: {kind: ConfigMap, name: a}, patch: '[{op: move, path: /data}]'}]\n", "unsupported JSON 6902"),
    ],
)
def test_renderer_refuses_what_it_does_not_implement(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(render_kustomize.KustomizeError, match=match):
        render_kustomize.render(_kustomization(tmp_path, text))


def test_json6902() -> None:
    doc = {"a": [1, 2], "b": {"c": 1}}
    out = render_kustomize.apply_json6902(
        doc,
        [
            {"op": "add", "path": "/a/-", "value": 3},
            {"op": "replace", "path": "/b/c", "value": 2},
            {"op": "remove", "path": "/a/0"},
        ],
    )
    assert out == {"a": [2, 3], "b": {"c": 2}} and doc == {"a": [1, 2], "b": {"c": 1}}
    with pytest.raises(render_kustomize.KustomizeError, match="does not exist"):
        render_kustomize.apply_json6902(doc, [{"op": "replace", "path": "/b/x", "value": 1}])
