#!/usr/bin/env bash
# Start the bundled tritonserver (nvidia-pytriton wheel, python backend only) on loopback.
#
# Usage: scripts/triton/start.sh MODEL_REPOSITORY [options]
#   --http-port N      (default 8000)      --grpc-port N   (default 8001)
#   --state-dir DIR    (default build/triton): backends/, tritonserver.pid, tritonserver.log
#   --venv DIR         (default .triton-venv, see setup_venv.sh)
#   --timeout S        seconds to wait for readiness (default 60)
# MODEL_REPOSITORY must be a python-backend repository (scripts/triton/make_python_repo.py).
# Prints "READY <seconds>" when /v2/health/ready answers 200; exits non-zero (with the
# server log's tail) when the server dies or is not ready in time. Stop: scripts/triton/stop.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
REPO="${1:?usage: start.sh MODEL_REPOSITORY [--http-port N] [--grpc-port N] [--state-dir DIR] [--venv DIR] [--timeout S]}"
shift
HTTP_PORT=8000
GRPC_PORT=8001
STATE_DIR="${ROOT}/build/triton"
VENV="${ROOT}/.triton-venv"
TIMEOUT=60
while [[ $# -gt 0 ]]; do
    case "$1" in
        --http-port) HTTP_PORT="$2"; shift 2 ;;
        --grpc-port) GRPC_PORT="$2"; shift 2 ;;
        --state-dir) STATE_DIR="$2"; shift 2 ;;
        --venv) VENV="$2"; shift 2 ;;
        --timeout) TIMEOUT="$2"; shift 2 ;;
        *) echo "start.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

PY="${VENV}/bin/python"
[[ -x "${PY}" ]] || { echo "start.sh: no server venv at ${VENV} (run scripts/triton/setup_venv.sh)" >&2; exit 2; }
[[ -d "${REPO}" ]] || { echo "start.sh: model repository ${REPO} not found" >&2; exit 2; }
REPO="$(cd "${REPO}" && pwd)"
mkdir -p "${STATE_DIR}"
STATE_DIR="$(cd "${STATE_DIR}" && pwd)"
PID_FILE="${STATE_DIR}/tritonserver.pid"
LOG_FILE="${STATE_DIR}/tritonserver.log"

if [[ -f "${PID_FILE}" ]] && kill -0 "$(cat "${PID_FILE}")" 2>/dev/null; then
    echo "start.sh: a server from ${STATE_DIR} is already running (pid $(cat "${PID_FILE}")); run stop.sh first" >&2
    exit 2
fi

# Locations inside the pytriton wheel, the stub matching the venv's Python, and its LIBDIR.
read -r PYTRITON_DIR PY_VERSION PY_LIBDIR < <("${PY}" - <<'PY'
import importlib.util, pathlib, sys, sysconfig
spec = importlib.util.find_spec("pytriton")
print(pathlib.Path(spec.origin).parent, f"{sys.version_info[0]}.{sys.version_info[1]}", sysconfig.get_config_var("LIBDIR"))
PY
)
DIST="${PYTRITON_DIR}/tritonserver"
LIBS="$(dirname "${PYTRITON_DIR}")/nvidia_pytriton.libs"
SERVER="${DIST}/bin/tritonserver"
STUB="${DIST}/python_backend_stubs/${PY_VERSION}/triton_python_backend_stub"
[[ -x "${SERVER}" ]] || { echo "start.sh: no tritonserver binary at ${SERVER}" >&2; exit 2; }
[[ -f "${STUB}" ]] || { echo "start.sh: no python backend stub for Python ${PY_VERSION} at ${STUB}" >&2; exit 2; }

# Backend directory: the wheel's python backend plus the stub for this Python (as pytriton does).
BACKENDS="${STATE_DIR}/backends"
rm -rf "${BACKENDS}"
mkdir -p "${BACKENDS}/python"
cp "${DIST}/backends/python/libtriton_python.so" "${DIST}/backends/python/triton_python_backend_utils.py" "${BACKENDS}/python/"
cp "${STUB}" "${BACKENDS}/python/triton_python_backend_stub"

# The stub links the system libpython but loads the venv interpreter's stdlib: put that
# interpreter's LIBDIR first, then the wheel's bundled libraries (shared/platform-notes.md).
export LD_LIBRARY_PATH="${PY_LIBDIR}:${LIBS}${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}"
export PATH="${VENV}/bin:${PATH}"

START_NS=$(date +%s%N)
nohup "${SERVER}" \
    --model-repository="${REPO}" \
    --backend-directory="${BACKENDS}" \
    --http-address=127.0.0.1 --http-port="${HTTP_PORT}" \
    --grpc-address=127.0.0.1 --grpc-port="${GRPC_PORT}" \
    --allow-metrics=false \
    --disable-auto-complete-config \
    --strict-readiness=true \
    --exit-on-error=true \
    --exit-timeout-secs=5 \
    --log-verbose=0 \
    >"${LOG_FILE}" 2>&1 </dev/null &
PID=$!
echo "${PID}" >"${PID_FILE}"

READY_URL="http://127.0.0.1:${HTTP_PORT}/v2/health/ready"
DEADLINE=$(( $(date +%s) + TIMEOUT ))
while :; do
    if ! kill -0 "${PID}" 2>/dev/null; then
        echo "start.sh: tritonserver exited during start-up; log tail:" >&2
        tail -n 30 "${LOG_FILE}" >&2
        rm -f "${PID_FILE}"
        exit 1
    fi
    if "${PY}" -c "import sys, urllib.request
try:
    sys.exit(0 if urllib.request.urlopen('${READY_URL}', timeout=1).status == 200 else 1)
except OSError:
    sys.exit(1)" 2>/dev/null; then
        break
    fi
    if (( $(date +%s) >= DEADLINE )); then
        echo "start.sh: tritonserver not ready after ${TIMEOUT} s; log tail:" >&2
        tail -n 30 "${LOG_FILE}" >&2
        "$(dirname "${BASH_SOURCE[0]}")/stop.sh" --state-dir "${STATE_DIR}" >/dev/null || true
        exit 1
    fi
    sleep 0.1
done
ELAPSED=$(( ($(date +%s%N) - START_NS) / 1000000 ))
echo "tritonserver pid ${PID}: http 127.0.0.1:${HTTP_PORT}, grpc 127.0.0.1:${GRPC_PORT}, log ${LOG_FILE}"
printf 'READY %d.%03d\n' $(( ELAPSED / 1000 )) $(( ELAPSED % 1000 ))
