#!/usr/bin/env bash
# Stop the tritonserver started by start.sh (SIGTERM, then SIGKILL after a grace period).
#
# Usage: scripts/triton/stop.sh [--state-dir DIR] [--grace S]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE_DIR="${ROOT}/build/triton"
GRACE=10
while [[ $# -gt 0 ]]; do
    case "$1" in
        --state-dir) STATE_DIR="$2"; shift 2 ;;
        --grace) GRACE="$2"; shift 2 ;;
        *) echo "stop.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
PID_FILE="${STATE_DIR}/tritonserver.pid"
if [[ ! -f "${PID_FILE}" ]]; then
    echo "stop.sh: no PID file at ${PID_FILE}: nothing to stop"
    exit 0
fi
PID="$(cat "${PID_FILE}")"
if ! kill -0 "${PID}" 2>/dev/null; then
    echo "stop.sh: process ${PID} is not running"
    rm -f "${PID_FILE}"
    exit 0
fi
# Only stop what start.sh started: the PID must still be a tritonserver.
if ! grep -q tritonserver "/proc/${PID}/cmdline" 2>/dev/null; then
    echo "stop.sh: pid ${PID} is not a tritonserver; not touching it" >&2
    rm -f "${PID_FILE}"
    exit 1
fi
kill -TERM "${PID}"
for _ in $(seq $(( GRACE * 10 ))); do
    kill -0 "${PID}" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "${PID}" 2>/dev/null; then
    echo "stop.sh: tritonserver ${PID} ignored SIGTERM for ${GRACE} s; killing it" >&2
    kill -KILL "${PID}"
fi
rm -f "${PID_FILE}"
echo "tritonserver ${PID} stopped"
