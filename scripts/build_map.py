#!/usr/bin/env python3
"""Stage the spinevcf application and package it as a MAP with holoscan-cli 3.11.

Usage: ``python scripts/build_map.py [--build|--no-build] [--out build/map]`` (``make map``).
Standard library only, so any Python 3.11 runs it.

Steps:

1. Stage into ``build/map/`` exactly what the image needs:

   * ``application/``: the app folder given to ``holoscan package``; it becomes
     ``/opt/holoscan/app`` in the image and holds ``__main__.py`` (a launcher that runs
     ``python -m app``), ``app/``, ``operators/``, ``spinevcf/`` without the training-only,
     torch-dependent ``spinevcf/training`` and ``spinevcf/networks``, and
     ``requirements.txt`` (which the packager installs with pip);
   * ``models/``: ``model_repository/`` reduced to ``config.pbtxt``, ``spinevcf.json`` and
     ``<version>/model.onnx[.data]`` per model (``/opt/holoscan/models`` in the image);
   * ``app.yaml`` with ``application.version`` rendered from ``spinevcf/_version.py``.

2. Create (once, then reuse) ``.map-venv`` with holoscan-cli 3.11 and the holoscan wheel
   (without its dependencies: the packager only reads its version).

3. Run ``holoscan package`` through ``scripts/map_render.py`` with the local artifact
   manifest ``scripts/map_artifacts.json`` (``--source``), so nothing is downloaded. The
   rendered Dockerfile, ``map/app.json``, ``map/pkg.json`` and the whole build context are
   kept in ``build/map/rendered/context/``. Where ``docker buildx`` works the image
   ``spinevcf-map:<version>`` is built; elsewhere the script stops after rendering and says so.

Exit status: 0 when rendered (and built, if building), non-zero otherwise.
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAP_VENV = REPO / ".map-venv"
HOLOSCAN_CLI = "holoscan-cli==3.11.0"
#: The holoscan wheel whose version the packager reads (same as the app's runtime).
HOLOSCAN_WHEEL = "holoscan-cu13==4.6.0"
SDK_PACKAGE = "monai-deploy-app-sdk"
IMAGE_NAME = "spinevcf-map"
#: spinevcf subpackages that only training needs (they import torch).
TRAINING_ONLY = ("training", "networks")
#: Model files the image needs; everything else in model_repository/ stays out.
MODEL_FILES = re.compile(r"^(config\.pbtxt|spinevcf\.json|[0-9]+/model\.onnx(\.data)?)$")
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".*")

log = logging.getLogger("build_map")


def read_version() -> str:
    """``__version__`` of ``spinevcf/_version.py`` (parsed, not imported)."""
    tree = ast.parse((REPO / "spinevcf" / "_version.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__version__" for t in node.targets):
            return str(ast.literal_eval(node.value))
    raise SystemExit("build_map: no __version__ in spinevcf/_version.py")


def pinned(requirements: Path, name: str) -> str:
    """The ``==`` version of ``name`` in a requirements file."""
    pat = re.compile(rf"^{re.escape(name)}(\[[^\]]*\])?==([^\s#;]+)", re.IGNORECASE)
    for line in requirements.read_text().splitlines():
        m = pat.match(line.strip())
        if m:
            return m.group(2)
    raise SystemExit(f"build_map: {name} is not pinned with == in {requirements}")


def render_app_yaml(version: str, dst: Path) -> None:
    """Copy ``app.yaml`` with its ``version:`` line under ``application:`` set to ``version``."""
    lines = (REPO / "app.yaml").read_text().splitlines()
    out, in_app, done = [], False, False
    for line in lines:
        if re.match(r"^\S", line):
            in_app = line.startswith("application:")
        if in_app and not done and re.match(r"^\s+version:", line):
            indent = line[: len(line) - len(line.lstrip())]
            line = f'{indent}version: "{version}"'
            done = True
        out.append(line)
    if not done:
        raise SystemExit("build_map: app.yaml has no application.version")
    dst.write_text("\n".join(out) + "\n")


def stage(out: Path, version: str) -> dict[str, Path]:
    """Lay out the application, models and manifest under ``out``; return their paths."""
    if out.exists():
        shutil.rmtree(out)
    application = out / "application"
    application.mkdir(parents=True)
    (application / "__main__.py").write_text(
        '"""MAP entry point: the packager runs `python3 /opt/holoscan/app`; this runs `python -m app`."""\n\n'
        "import runpy\n\n"
        'runpy.run_module("app", run_name="__main__", alter_sys=True)\n'
    )
    for pkg in ("app", "operators"):
        shutil.copytree(REPO / pkg, application / pkg, ignore=_IGNORE)
    shutil.copytree(
        REPO / "spinevcf",
        application / "spinevcf",
        ignore=lambda d, names: (
            set(_IGNORE(d, names))
            | ({n for n in names if n in TRAINING_ONLY} if Path(d) == REPO / "spinevcf" else set())
        ),
    )
    shutil.copy2(REPO / "requirements.txt", application / "requirements.txt")

    models = out / "models"
    models.mkdir()
    src_models = REPO / "model_repository"
    n_files = 0
    for model_dir in sorted(p for p in src_models.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in sorted(model_dir.rglob("*")):
            rel = f.relative_to(model_dir).as_posix()
            if f.is_file() and MODEL_FILES.match(rel):
                dst = models / model_dir.name / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, dst)
                n_files += 1
    if not any((models / m).glob("*/model.onnx") for m in os.listdir(models)):
        log.warning("model_repository/ holds no ONNX model yet: the MAP would have no models")
    log.info("staged %s (%d model files)", out, n_files)

    app_yaml = out / "app.yaml"
    render_app_yaml(version, app_yaml)
    return {"application": application, "models": models, "app_yaml": app_yaml}


def ensure_map_venv() -> Path:
    """Create ``.map-venv`` with holoscan-cli 3.11 once; return its Python."""
    py = MAP_VENV / "bin" / "python"
    stamp = MAP_VENV / ".spinevcf-map-venv"
    want = f"{HOLOSCAN_CLI} {HOLOSCAN_WHEEL}\n"
    if py.exists() and stamp.exists() and stamp.read_text() == want:
        return py
    t = time.perf_counter()
    log.info("creating %s (%s, %s)", MAP_VENV, HOLOSCAN_CLI, HOLOSCAN_WHEEL)
    venv.EnvBuilder(with_pip=True, clear=True).create(MAP_VENV)
    pip = [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, HOLOSCAN_CLI, "wheel-axle-runtime"], check=True)
    subprocess.run([*pip, "--no-deps", HOLOSCAN_WHEEL], check=True)
    stamp.write_text(want)
    log.info("created %s in %.1f s", MAP_VENV, time.perf_counter() - t)
    return py


def buildx_usable() -> bool:
    """Whether ``docker buildx`` and a Docker daemon are available."""
    if shutil.which("docker") is None:
        return False
    for cmd in (["docker", "buildx", "version"], ["docker", "info"]):
        try:
            if subprocess.run(cmd, capture_output=True, timeout=30).returncode != 0:
                return False
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.info("%s: %s", " ".join(cmd), exc)
            return False
    return True


def package(py: Path, staged: dict[str, Path], out: Path, version: str, build: bool) -> int:
    """Run the packager; return 0 when rendered (and built when ``build``)."""
    rendered = out / "rendered"
    rendered.mkdir(parents=True, exist_ok=True)
    tag = f"{IMAGE_NAME}:{version}"
    sdk_version = pinned(REPO / "requirements.txt", SDK_PACKAGE)
    cmd = [
        str(py), str(REPO / "scripts" / "map_render.py"),
        str(staged["application"]),
        "-c", str(staged["app_yaml"]),
        "-m", str(staged["models"]),
        "--platform", "x86_64",
        "-t", tag,
        "--sdk", "monai-deploy",
        "--sdk-version", sdk_version,
        "--source", str(REPO / "scripts" / "map_artifacts.json"),
        "--build-cache", str(out / "cache"),
    ]  # fmt: skip
    env = dict(os.environ, SPINEVCF_MAP_RENDERED=str(rendered), SPINEVCF_MAP_BUILD="1" if build else "0")
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=out, capture_output=True, text=True)
    (rendered / "packager.log").write_text(proc.stdout + proc.stderr)
    marker = rendered / "render.json"
    if not marker.exists() or not (rendered / "context" / "Dockerfile").exists():
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        log.error(
            "packaging failed before rendering (exit %d); see %s", proc.returncode, rendered / "packager.log"
        )
        return proc.returncode or 1
    info = json.loads(marker.read_text())
    for name in ("app.json", "pkg.json"):
        shutil.copy2(rendered / "context" / "map" / name, rendered / name)
    shutil.copy2(rendered / "context" / "Dockerfile", rendered / "Dockerfile")
    log.info("rendered in %.1f s: %s", time.perf_counter() - t, rendered)
    if build:
        if proc.returncode != 0 or not info.get("built"):
            log.error("docker build of %s failed; see %s", tag, rendered / "packager.log")
            return proc.returncode or 1
        log.info("built image %s", tag)
        return 0
    log.info("stopped after rendering: %s; Dockerfile and build context in %s", info.get("reason"), rendered)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "build" / "map", help="staging folder")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--build", dest="build", action="store_true", default=None, help="build the image")
    group.add_argument("--no-build", dest="build", action="store_false", help="render only")
    parser.add_argument("--stage-only", action="store_true", help="stage, do not package")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s build_map: %(message)s")

    version = read_version()
    out = args.out.resolve()
    staged = stage(out, version)
    if args.stage_only:
        return 0
    py = ensure_map_venv()
    build = buildx_usable() if args.build is None else args.build
    if not build:
        log.info("docker buildx is not usable here: rendering only (no image)")
    return package(py, staged, out, version, build)


if __name__ == "__main__":
    sys.exit(main())
