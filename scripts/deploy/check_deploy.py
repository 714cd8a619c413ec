#!/usr/bin/env python3
"""Validate the Kubernetes manifests and check them against the rest of the repository.

Two checks on every kustomize tree of deploy/kustomize/ (rendered by
``scripts/deploy/render_kustomize.py``):

* :func:`validate_schemas`: every object against the Kubernetes OpenAPI schemas shipped
  offline with the ``kubernetes-validate`` package (strict: unknown fields are errors), for
  the oldest and the newest Kubernetes version in :data:`K8S_VERSIONS`;
* :func:`check_consistency`: what the manifests say agrees with what the code and the
  other deployment files say, so that nothing drifts apart: the models Triton loads are
  ``model_repository/``'s (folder names and ``config.pbtxt`` names) and the ones the client
  asks for; the Triton ports agree between its arguments, its container ports, the
  Service, the probes, the Prometheus annotation, the Job's ``TRITON_SERVER_NETLOC`` and
  ``mk/triton.mk``; the Job's environment variable names are the ones the application
  reads (``app/settings.py``, the MONAI Deploy SDK's ``RuntimeEnv``); its image is
  ``scripts/build_map.py``'s name with ``app.yaml``'s version; its requests are
  ``app.yaml``'s cpu and memory times its workers; its shard count is its completions;
  every container runs as non-root with a read-only root filesystem.

Usage: ``python scripts/deploy/check_deploy.py`` (exit 1 and one line per problem).
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from render_kustomize import render  # noqa: E402

__all__ = ["Sources", "validate_schemas", "check_consistency", "TREES", "K8S_VERSIONS", "main"]

REPO = Path(__file__).resolve().parents[2]
#: The kustomize trees that must render, validate and agree.
TREES = ("deploy/kustomize/base", "deploy/kustomize/overlays/dicomweb")
#: Kubernetes versions validated against (Indexed Jobs with backoffLimitPerIndex: 1.29+).
K8S_VERSIONS = ("1.30.0", "1.37.0")
TRITON_DEPLOYMENT = "spinevcf-triton"
TRITON_CONTAINER = "triton"
SCREENING_JOB = "spinevcf-screening"
SCREENING_CONTAINER = "screen"
READY_PATH = "/v2/health/ready"
LIVE_PATH = "/v2/health/live"
#: Triton argument -> the container port name that carries it.
PORT_ARGS = {"--http-port": "http", "--grpc-port": "grpc", "--metrics-port": "metrics"}
#: Environment variables of the Job and the RuntimeEnv attribute each must be named after.
SDK_ENV = {"TRITON_SERVER_NETLOC": "triton_server_netloc", "HOLOSCAN_MODEL_PATH": "model"}
_QUANTITY = re.compile(r"^([0-9.]+)([A-Za-z]*)$")
_BINARY = {"": 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9}

Obj = dict[str, Any]


@dataclass
class Sources:
    """The repository files the manifests must agree with (replaceable in tests)."""

    model_repository: Path = REPO / "model_repository"
    app_yaml: Path = REPO / "app.yaml"
    settings: Path = REPO / "app" / "settings.py"
    triton_mk: Path = REPO / "mk" / "triton.mk"
    build_map: Path = REPO / "scripts" / "build_map.py"
    inference_base: Path = REPO / "spinevcf" / "inference" / "base.py"
    extra: dict[str, Any] = field(default_factory=dict)


def quantity(text: str | int | float) -> float:
    """A Kubernetes quantity (``2``, ``500m``, ``4Gi``) as a number."""
    m = _QUANTITY.match(str(text))
    if m is None or m.group(2) not in _BINARY:
        raise ValueError(f"not a Kubernetes quantity: {text!r}")
    return float(m.group(1)) * _BINARY[m.group(2)]


def validate_schemas(objects: Iterable[Obj], versions: Iterable[str] = K8S_VERSIONS) -> list[str]:
    """Schema errors of ``objects`` (strict) for each Kubernetes version."""
    import kubernetes_validate

    errors = []
    for version in versions:
        for obj in objects:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                errors.append(f"{obj['kind']}/{obj['metadata']['name']} (Kubernetes {version}): {exc.message}")
            except kubernetes_validate.SchemaNotFoundError:
                errors.append(f"{obj['kind']}/{obj['metadata']['name']}: no schema for {obj['apiVersion']} in {version}")
    return errors


def _str_constant(path: Path, name: str) -> str | None:
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for t in targets:
            if isinstance(t, ast.Name) and t.id == name and isinstance(node.value, ast.Constant):
                return str(node.value.value)
    return None


def _sdk_env_names() -> dict[str, str]:
    """RuntimeEnv.ENV_DEFAULT of the installed MONAI Deploy SDK: attribute -> variable name (read, not imported)."""
    spec = importlib.util.find_spec("monai")
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    for root in roots:
        path = Path(root) / "deploy" / "core" / "runtime_env.py"
        if path.is_file():
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "ENV_DEFAULT":
                    return {k: v[0] for k, v in ast.literal_eval(node.value).items()}
    raise FileNotFoundError("monai/deploy/core/runtime_env.py of the MONAI Deploy SDK not found")


def _make_defaults(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Z_]+)\s*\?=\s*(\S+)", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def _one(objects: list[Obj], kind: str, name: str) -> Obj | None:
    hits = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return hits[0] if len(hits) == 1 else None


def _container(obj: Obj, name: str) -> Obj | None:
    hits = [c for c in obj["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    return hits[0] if len(hits) == 1 else None


def _model_names(repo: Path) -> tuple[set[str], list[str]]:
    """Model folder names of a Triton repository, and problems with their config.pbtxt names."""
    names, problems = set(), []
    for cfg in sorted(repo.glob("*/config.pbtxt")):
        folder = cfg.parent.name
        names.add(folder)
        m = re.search(r'^name:\s*"([^"]+)"', cfg.read_text(encoding="utf-8"), re.M)
        if m is not None and m.group(1) != folder:
            problems.append(f"model_repository/{folder}/config.pbtxt names the model {m.group(1)!r}")
    return names, problems


def _check_triton(objects: list[Obj], src: Sources, problems: list[str]) -> dict[str, int]:
    """Triton checks; returns the port numbers by name (empty when the Deployment is missing)."""
    dep = _one(objects, "Deployment", TRITON_DEPLOYMENT)
    c = None if dep is None else _container(dep, TRITON_CONTAINER)
    if dep is None or c is None:
        problems.append(f"no Deployment {TRITON_DEPLOYMENT} with a container {TRITON_CONTAINER}")
        return {}
    args = [str(a) for a in c.get("args", [])]
    loaded = {a.split("=", 1)[1] for a in args if a.startswith("--load-model=")}
    repo_models, name_problems = _model_names(src.model_repository)
    problems += name_problems
    if loaded != repo_models:
        problems.append(f"Triton loads {sorted(loaded)} but model_repository/ holds {sorted(repo_models)}")
    client = {_str_constant(src.inference_base, n) for n in ("LOCALIZER_MODEL", "DETECTOR_MODEL")}
    if not client <= loaded:
        problems.append(f"the client asks for {sorted(str(x) for x in client)}, Triton loads {sorted(loaded)}")
    ports = {p["name"]: int(p["containerPort"]) for p in c.get("ports", [])}
    for arg, pname in PORT_ARGS.items():
        vals = [a.split("=", 1)[1] for a in args if a.startswith(arg + "=")]
        if len(vals) != 1 or pname not in ports or int(vals[0]) != ports[pname]:
            problems.append(f"Triton {arg} {vals} does not match the container port {pname!r} ({ports.get(pname)})")
    probes = {k: c.get(k, {}).get("httpGet", {}) for k in ("readinessProbe", "livenessProbe", "startupProbe")}
    for probe, want in (("readinessProbe", READY_PATH), ("livenessProbe", LIVE_PATH)):
        got = probes[probe]
        if got.get("path") != want or got.get("port") not in ("http", ports.get("http")):
            problems.append(f"Triton {probe} must be GET {want} on the http port, is {got}")
    ann = dep["spec"]["template"]["metadata"].get("annotations", {})
    if int(ann.get("prometheus.io/port", -1)) != ports.get("metrics"):
        problems.append("the prometheus.io/port annotation is not the metrics port")
    res = c.get("resources", {})
    gpus = [res.get(k, {}).get("nvidia.com/gpu") for k in ("requests", "limits")]
    if gpus[0] != gpus[1] or not gpus[1] or int(gpus[1]) < 1:
        problems.append(f"Triton needs equal nvidia.com/gpu requests and limits >= 1, has {gpus}")
    svc = _one(objects, "Service", TRITON_DEPLOYMENT)
    if svc is None:
        problems.append(f"no Service {TRITON_DEPLOYMENT}")
        return ports
    sel = svc["spec"].get("selector", {})
    labels = dep["spec"]["template"]["metadata"].get("labels", {})
    if not sel or any(labels.get(k) != v for k, v in sel.items()):
        problems.append("the Triton Service selects no Triton pod")
    svc_ports = {p["name"]: p for p in svc["spec"]["ports"]}
    for pname, number in ports.items():
        sp = svc_ports.get(pname)
        if sp is None or int(sp["port"]) != number or sp.get("targetPort") not in (pname, number):
            problems.append(f"Service port {pname!r} ({None if sp is None else sp.get('port')}) is not Triton's {number}")
    mk = _make_defaults(src.triton_mk)
    for var, pname in (("TRITON_HTTP_PORT", "http"), ("TRITON_GRPC_PORT", "grpc")):
        if var in mk and int(mk[var]) != ports.get(pname):
            problems.append(f"mk/triton.mk {var}={mk[var]} but the Triton {pname} port is {ports.get(pname)}")
    return {**ports, "_service": svc["metadata"]["name"]}  # type: ignore[dict-item]


def _check_job(objects: list[Obj], src: Sources, ports: dict[str, Any], problems: list[str]) -> None:
    job = _one(objects, "Job", SCREENING_JOB)
    c = None if job is None else _container(job, SCREENING_CONTAINER)
    if job is None or c is None:
        problems.append(f"no Job {SCREENING_JOB} with a container {SCREENING_CONTAINER}")
        return
    spec = job["spec"]
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", " ".join(str(a) for a in c.get("args", []))):
        if ref not in env:
            problems.append(f"the Job's arguments use $({ref}), which its env does not set")
    sdk = _sdk_env_names()
    for var, attr in SDK_ENV.items():
        if sdk.get(attr) != var:
            problems.append(f"the MONAI Deploy SDK reads {attr} from {sdk.get(attr)!r}, the Job sets {var}")
        if var not in env:
            problems.append(f"the Job does not set {var}")
    proto_env = _str_constant(src.settings, "TRITON_PROTOCOL_ENV")
    if proto_env is None or proto_env not in env:
        problems.append(f"app/settings.py reads the protocol from {proto_env!r}, which the Job does not set")
    elif env[proto_env] != "grpc" and "grpc" in str(env.get("TRITON_SERVER_NETLOC", "")):
        problems.append("the Job's protocol is not grpc")
    netloc = str(env.get("TRITON_SERVER_NETLOC", ""))
    want_port = ports.get("grpc" if env.get(proto_env or "", "grpc") == "grpc" else "http")
    if ports and netloc != f"{ports.get('_service')}:{want_port}":
        problems.append(f"TRITON_SERVER_NETLOC {netloc!r} is not the Triton Service's port ({ports.get('_service')}:{want_port})")
    app = yaml.safe_load(src.app_yaml.read_text(encoding="utf-8"))
    image_name = _str_constant(src.build_map, "IMAGE_NAME")
    want_image = f"{image_name}:{app['application']['version']}"
    if c["image"] != want_image:
        problems.append(f"the Job's image {c['image']!r} is not the MAP {want_image!r} (build_map.py + app.yaml)")
    workers = int(env.get("WORKERS") or 0)
    req = c.get("resources", {}).get("requests", {})
    lim = c.get("resources", {}).get("limits", {})
    if workers < 1:
        problems.append("the Job's WORKERS must be >= 1")
    else:
        for key in ("cpu", "memory"):
            want = quantity(app["resources"][key]) * workers
            if key not in req or quantity(req[key]) != want:
                problems.append(f"the Job requests {key} {req.get(key)!r}, app.yaml x WORKERS is {want:g}")
        if "memory" in lim and "memory" in req and quantity(lim["memory"]) < quantity(req["memory"]):
            problems.append("the Job's memory limit is below its request")
    if spec.get("completionMode") != "Indexed":
        problems.append("the screening Job must be an Indexed Job")
    if str(spec.get("completions")) != str(env.get("SHARDS")):
        problems.append(f"the Job's completions {spec.get('completions')} differ from SHARDS {env.get('SHARDS')}")
    if int(spec.get("parallelism", 1)) > int(spec.get("completions", 1)):
        problems.append("the Job's parallelism exceeds its completions")
    drain = [float(str(a).split("=", 1)[1]) for a in c.get("args", []) if str(a).startswith("--drain-timeout=")]
    grace = int(spec["template"]["spec"].get("terminationGracePeriodSeconds", 30))
    if not drain or drain[0] >= grace:
        problems.append(f"--drain-timeout {drain} must be below terminationGracePeriodSeconds {grace}")


def _check_security(objects: list[Obj], problems: list[str]) -> None:
    for obj in objects:
        if obj["kind"] not in ("Deployment", "Job"):
            continue
        pod = obj["spec"]["template"]["spec"]
        who = f"{obj['kind']}/{obj['metadata']['name']}"
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{who}: automountServiceAccountToken must be false")
        psc = pod.get("securityContext", {})
        if psc.get("runAsNonRoot") is not True or not int(psc.get("runAsUser", 0)):
            problems.append(f"{who}: the pod must run as a non-root user")
        for c in pod.get("containers", []) + pod.get("initContainers", []):
            sc = c.get("securityContext", {})
            if sc.get("allowPrivilegeEscalation") is not False or sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{who}/{c['name']}: needs allowPrivilegeEscalation false, readOnlyRootFilesystem true")
            if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                problems.append(f"{who}/{c['name']}: must drop ALL capabilities")
        claims = {o["metadata"]["name"] for o in objects if o["kind"] == "PersistentVolumeClaim"}
        maps = {o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap"}
        for vol in pod.get("volumes", []):
            claim = vol.get("persistentVolumeClaim", {}).get("claimName")
            cm = vol.get("configMap", {}).get("name")
            if claim is not None and claim not in claims:
                problems.append(f"{who}: volume {vol['name']} claims {claim!r}, which is not rendered")
            if cm is not None and cm not in maps:
                problems.append(f"{who}: volume {vol['name']} mounts the ConfigMap {cm!r}, which is not rendered")


def check_consistency(objects: list[Obj], src: Sources | None = None) -> list[str]:
    """Problems (one line each) where the manifests disagree with the repository."""
    src = src or Sources()
    problems: list[str] = []
    ports = _check_triton(objects, src, problems)
    _check_job(objects, src, ports, problems)
    _check_security(objects, problems)
    return problems


def main(argv: list[str] | None = None) -> int:
    """Render, validate and check every tree of :data:`TREES`."""
    n_problems = 0
    for tree in TREES:
        objects = render(REPO / tree)
        problems = validate_schemas(objects) + check_consistency(objects)
        for p in problems:
            print(f"{tree}: {p}")
        n_problems += len(problems)
        if not problems:
            print(f"{tree}: {len(objects)} objects valid and consistent")
    return 1 if n_problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
