"""Fixtures of the inference tests: a repository of randomly initialised models and a real Triton server.

The Triton server is the ``tritonserver`` bundled in nvidia-pytriton (python
backend only) serving a python-backend twin of the random ONNX repository
(scripts/triton/make_python_repo.py). It is started ONCE per pytest session on
free loopback ports and stopped at the end. When its venv (.triton-venv) cannot
be set up (e.g. no network) the Triton tests FAIL under CI=true and are skipped
otherwise.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `export` lives at the repository root, outside the installed package
    sys.path.insert(0, str(ROOT))

from export.random_checkpoint import export_random_repository  # noqa: E402
from tests.committed_models import require_committed_models  # noqa: E402

TRITON_SCRIPTS = ROOT / "scripts" / "triton"
TRITON_VENV = ROOT / ".triton-venv"
#: Limits of the server's setup and start-up (seconds).
SETUP_TIMEOUT_S = 900
START_TIMEOUT_S = 90


@dataclass(frozen=True)
class TritonServer:
    """A running test server."""

    http_url: str
    grpc_url: str
    onnx_repository: Path
    python_repository: Path
    start_seconds: float

    def url(self, protocol: str) -> str:
        """The ``HOST:PORT`` for ``protocol`` (``grpc`` or ``http``)."""
        return self.grpc_url if protocol == "grpc" else self.http_url


@dataclass(frozen=True)
class RandomRepository:
    """An exported repository of random-weight models and the checkpoints behind it."""

    path: Path
    checkpoints: dict[str, Path]


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"Triton server unavailable in CI: {reason}", pytrace=False)
    pytest.skip(f"Triton server unavailable: {reason}")


@pytest.fixture
def closed_port_url() -> str:
    """``127.0.0.1:PORT`` where nothing listens (a port that was just free)."""
    return f"127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
def random_repository(tmp_path_factory: pytest.TempPathFactory) -> RandomRepository:
    """Both models with random weights, exported (with parity checks) into a temporary repository."""
    base = tmp_path_factory.mktemp("random_models")
    ckpts = export_random_repository(base / "model_repository", base / "checkpoints", seed=11)
    return RandomRepository(base / "model_repository", ckpts)


@pytest.fixture(scope="session")
def triton_server(random_repository: RandomRepository, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    """A tritonserver serving ``random_repository`` over HTTP and gRPC on loopback."""
    try:
        setup = subprocess.run(
            ["bash", str(TRITON_SCRIPTS / "setup_venv.sh"), str(TRITON_VENV)],
            capture_output=True, text=True, timeout=SETUP_TIMEOUT_S, check=False,
        )
    except subprocess.TimeoutExpired:
        _unavailable(f"setup_venv.sh took more than {SETUP_TIMEOUT_S} s")
    if setup.returncode != 0:
        tail = "\n".join((setup.stdout + setup.stderr).splitlines()[-15:])
        _unavailable(f"scripts/triton/setup_venv.sh failed (status {setup.returncode}):\n{tail}")

    yield from serve_repository(random_repository.path, tmp_path_factory.mktemp("triton"))


def serve_repository(repository: Path, base: Path) -> Iterator[TritonServer]:
    """Start a python-backend twin of ``repository`` on loopback; yield it; stop it."""
    setup = subprocess.run(
        ["bash", str(TRITON_SCRIPTS / "setup_venv.sh"), str(TRITON_VENV)],
        capture_output=True, text=True, timeout=SETUP_TIMEOUT_S, check=False,
    )
    if setup.returncode != 0:
        _unavailable(f"scripts/triton/setup_venv.sh failed (status {setup.returncode})")
    python_repo = base / "python_repo"
    gen = subprocess.run(
        [sys.executable, str(TRITON_SCRIPTS / "make_python_repo.py"), str(repository), str(python_repo),
         "--venv-python", str(TRITON_VENV / "bin" / "python"), "--no-warmup"],
        capture_output=True, text=True, check=False,
    )
    assert gen.returncode == 0, gen.stdout + gen.stderr

    http_port, grpc_port = free_port(), free_port()
    state = base / "state"
    t0 = time.perf_counter()
    start = subprocess.run(
        ["bash", str(TRITON_SCRIPTS / "start.sh"), str(python_repo), "--http-port", str(http_port),
         "--grpc-port", str(grpc_port), "--state-dir", str(state), "--venv", str(TRITON_VENV),
         "--timeout", str(START_TIMEOUT_S)],
        capture_output=True, text=True, timeout=START_TIMEOUT_S + 30, check=False,
    )
    if start.returncode != 0:
        pytest.fail(f"tritonserver did not start:\n{start.stdout}\n{start.stderr}", pytrace=False)
    match = re.search(r"READY (\d+\.\d+)", start.stdout)
    seconds = float(match.group(1)) if match else time.perf_counter() - t0
    try:
        yield TritonServer(
            http_url=f"127.0.0.1:{http_port}",
            grpc_url=f"127.0.0.1:{grpc_port}",
            onnx_repository=repository,
            python_repository=python_repo,
            start_seconds=seconds,
        )
    finally:
        subprocess.run(
            ["bash", str(TRITON_SCRIPTS / "stop.sh"), "--state-dir", str(state)],
            capture_output=True, text=True, timeout=60, check=False,
        )


@pytest.fixture(scope="session")
def committed_triton_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    """A tritonserver serving the committed ``model_repository`` (trained models)."""
    repo = require_committed_models()
    yield from serve_repository(repo, tmp_path_factory.mktemp("triton_committed"))
