#!/usr/bin/env bash
# Installs the Debian tools the test suite uses to validate DICOM output:
# dcmtk (dsrdump, dcmdump) and dicom3tools (dciodvfy). Needs root; without it,
# prints what is missing and exits 0 so that the tests that need them say so.
set -euo pipefail
need=()
command -v dsrdump >/dev/null 2>&1 || need+=(dcmtk)
command -v dciodvfy >/dev/null 2>&1 || need+=(dicom3tools)
if [ "${#need[@]}" -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install_system_deps: not root; missing Debian packages: ${need[*]} (tests that need them will fail naming them)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "install_system_deps: installed ${need[*]}"
