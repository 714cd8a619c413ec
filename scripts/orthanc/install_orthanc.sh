#!/usr/bin/env bash
# Installs Orthanc and its DICOMweb plugin (Debian packages) for the PACS round-trip tests.
# Needs root; without it, prints what is missing and exits 1. The Debian service is not
# started (tests start their own loopback-only instance with scripts/orthanc/orthanc_ctl.py).
set -euo pipefail
need=()
command -v Orthanc >/dev/null 2>&1 || need+=(orthanc)
dpkg -s orthanc-dicomweb >/dev/null 2>&1 || need+=(orthanc-dicomweb)
if [ "${#need[@]}" -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install_orthanc: not root; missing Debian packages: ${need[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "install_orthanc: installed ${need[*]}"
