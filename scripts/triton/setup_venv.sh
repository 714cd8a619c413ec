#!/usr/bin/env bash
# Create the Triton server's own virtual environment (.triton-venv, git-ignored).
#
# The only Triton server that runs on the project's machines is the `tritonserver`
# binary bundled in the nvidia-pytriton wheel (python backend only). Its python
# backend needs numpy<2 (with numpy 2 it returns empty outputs), hence a venv
# separate from the project's .venv (numpy 2). See shared/platform-notes.md.
#
# Usage: scripts/triton/setup_venv.sh [VENV_DIR]
# Env:   PYTHON (default: python3.11)
# Idempotent: an existing venv that already imports everything is kept.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${1:-${ROOT}/.triton-venv}"
PYTHON="${PYTHON:-python3.11}"

# Pinned server-side packages. onnxruntime runs the model inside the python backend.
PYTRITON_SPEC="nvidia-pytriton==0.7.0"
NUMPY_SPEC="numpy>=1.26,<2"
ONNXRUNTIME_SPEC="onnxruntime==1.32.0"

check() {
    "${VENV}/bin/python" - <<'PY'
import importlib.util, pathlib, sys
import numpy, onnxruntime  # noqa: F401
assert int(numpy.__version__.split(".")[0]) < 2, f"numpy {numpy.__version__} >= 2"
spec = importlib.util.find_spec("pytriton")
root = pathlib.Path(spec.origin).parent
server = root / "tritonserver" / "bin" / "tritonserver"
assert server.is_file(), f"no tritonserver binary at {server}"
print(server)
PY
}

if [[ -x "${VENV}/bin/python" ]] && check >/dev/null 2>&1; then
    echo "triton venv ready: ${VENV}"
    exit 0
fi

if ! command -v "${PYTHON}" >/dev/null 2>&1; then
    echo "error: ${PYTHON} not found (set PYTHON to a Python 3.11 interpreter)" >&2
    exit 2
fi

echo "creating ${VENV} with ${PYTHON}"
"${PYTHON}" -m venv "${VENV}"
"${VENV}/bin/python" -m pip install --quiet --upgrade pip
# numpy first and pinned below 2 so that nothing later upgrades it.
"${VENV}/bin/python" -m pip install --quiet "${NUMPY_SPEC}" "${PYTRITON_SPEC}" "${ONNXRUNTIME_SPEC}"
check
echo "triton venv ready: ${VENV}"
