"""The manifests agree with app.yaml, model_repository/, app/settings.py and mk/triton.mk.

Each mutation test changes one side only and expects a problem naming it.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.deploy._deploy_tools import REPO, check_deploy, render_kustomize

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Obj]]:
    return {tree: render_kustomize.render(REPO / tree) for tree in check_deploy.TREES}


@pytest.mark.parametrize("tree", check_deploy.TREES)
def test_manifests_are_consistent(rendered: dict[str, list[Obj]], tree: str) -> None:
    assert check_deploy.check_consistency(rendered[tree]) == []


def _triton(objects: list[Obj]) -> Obj:
    dep = next(o for o in objects if o["kind"] == "Deployment")
    return dep["spec"]["template"]["spec"]["containers"][0]


def _job(objects: list[Obj]) -> Obj:
    job = next(o for o in objects if o["kind"] == "Job")
    return job["spec"]["template"]["spec"]["containers"][0]


def _set_env(objects: list[Obj], name: str, value: str) -> None:
    for e in _job(objects)["env"]:
        if e["name"] == name:
            e["value"] = value


def _rename_model(objects: list[Obj]) -> None:
    args = _triton(objects)["args"]
    args[args.index("--load-model=vertebra_detector_2d")] = "--load-model=vertebra_detector_v2"


def _grpc_arg(objects: list[Obj]) -> None:
    args = _triton(objects)["args"]
    args[args.index("--grpc-port=8001")] = "--grpc-port=9001"


def _service_port(objects: list[Obj]) -> None:
    svc = next(o for o in objects if o["kind"] == "Service")
    next(p for p in svc["spec"]["ports"] if p["name"] == "grpc")["port"] = 9001


def _probe(objects: list[Obj]) -> None:
    _triton(objects)["readinessProbe"]["httpGet"]["path"] = "/v2/health/live"


def _root_fs(objects: list[Obj]) -> None:
    _job(objects)["securityContext"]["readOnlyRootFilesystem"] = False


def _memory(objects: list[Obj]) -> None:
    _job(objects)["resources"]["requests"]["memory"] = "2Gi"


def _image(objects: list[Obj]) -> None:
    _job(objects)["image"] = "spinevcf-map:0.0.9"


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (_rename_model, "model_repository/ holds"),
        (_grpc_arg, "--grpc-port"),
        (_service_port, "Service port 'grpc'"),
        (lambda o: _set_env(o, "TRITON_SERVER_NETLOC", "spinevcf-triton:8000"), "TRITON_SERVER_NETLOC"),
        (lambda o: _set_env(o, "SHARDS", "7"), "SHARDS"),
        (lambda o: _set_env(o, "WORKERS", "2"), "app.yaml x WORKERS"),
        (_probe, "readinessProbe"),
        (_root_fs, "readOnlyRootFilesystem"),
        (_memory, "requests memory"),
        (_image, "is not the MAP"),
    ],
)
def test_a_change_on_the_manifest_side_only_is_caught(
    rendered: dict[str, list[Obj]], mutate: Callable[[list[Obj]], None], match: str
) -> None:
    objects = copy.deepcopy(rendered[check_deploy.TREES[0]])
    mutate(objects)
    problems = check_deploy.check_consistency(objects)
    assert any(match in p for p in problems), problems


def _copy(tmp_path: Path, rel: str) -> Path:
    dst = tmp_path / rel
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / rel, dst)
    return dst


def test_a_model_renamed_in_the_repository_only_is_caught(rendered: dict[str, list[Obj]], tmp_path: Path) -> None:
    repo = tmp_path / "model_repository"
    for cfg in (REPO / "model_repository").glob("*/config.pbtxt"):
        name = cfg.parent.name.replace("vertebra_detector_2d", "vertebra_detector_v2")
        (repo / name).mkdir(parents=True)
        (repo / name / "config.pbtxt").write_text(cfg.read_text().replace("vertebra_detector_2d", name))
    problems = check_deploy.check_consistency(
        rendered[check_deploy.TREES[0]], check_deploy.Sources(model_repository=repo)
    )
    assert any("model_repository/ holds" in p for p in problems), problems


def test_a_config_pbtxt_name_that_is_not_its_folder_is_caught(rendered: dict[str, list[Obj]], tmp_path: Path) -> None:
    repo = tmp_path / "model_repository"
    shutil.copytree(REPO / "model_repository", repo, ignore=shutil.ignore_patterns("*.onnx", "1"))
    cfg = repo / "vertebra_detector_2d" / "config.pbtxt"
    cfg.write_text(cfg.read_text().replace('name: "vertebra_detector_2d"', 'name: "detector"'))
    problems = check_deploy.check_consistency(rendered[check_deploy.TREES[0]], check_deploy.Sources(model_repository=repo))
    assert any("names the model 'detector'" in p for p in problems), problems


@pytest.mark.parametrize(
    ("rel", "old", "new", "field", "match"),
    [
        ("app.yaml", "memory: 4Gi", "memory: 6Gi", "app_yaml", "requests memory"),
        ("app.yaml", 'version: "0.1.0"', 'version: "0.2.0"', "app_yaml", "is not the MAP"),
        ("app/settings.py", '"SPINEVCF_TRITON_PROTOCOL"', '"SPINEVCF_PROTOCOL"', "settings", "reads the protocol"),
        ("mk/triton.mk", "TRITON_GRPC_PORT ?= 8001", "TRITON_GRPC_PORT ?= 8011", "triton_mk", "TRITON_GRPC_PORT"),
        ("spinevcf/inference/base.py", '"spine_localizer_3d"', '"spine_localizer_v2"', "inference_base",
         "the client asks for"),
    ],
)
def test_a_change_on_the_repository_side_only_is_caught(
    rendered: dict[str, list[Obj]], tmp_path: Path, rel: str, old: str, new: str, field: str, match: str
) -> None:
    path = _copy(tmp_path, rel)
    text = path.read_text()
    assert old in text  # the test edits what is really there
    path.write_text(text.replace(old, new))
    problems = check_deploy.check_consistency(
        rendered[check_deploy.TREES[0]], check_deploy.Sources(**{field: path})
    )
    assert any(match in p for p in problems), problems


def test_quantities() -> None:
    assert check_deploy.quantity("4Gi") == 4 * 2**30 and check_deploy.quantity("500m") == 0.5
    with pytest.raises(ValueError, match="quantity"):
        check_deploy.quantity("4 GB")
