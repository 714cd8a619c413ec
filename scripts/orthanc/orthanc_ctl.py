"""Start and stop a throw-away, loopback-only Orthanc for tests and demos.

Usage::

    python scripts/orthanc/orthanc_ctl.py start --workdir /tmp/orthanc   # prints the URLs
    python scripts/orthanc/orthanc_ctl.py stop --workdir /tmp/orthanc

From Python (the tests' fixture)::

    server = start_orthanc(Path("/tmp/orthanc"))
    ...
    server.stop()

The configuration is rendered from ``orthanc.json.template``: free ports picked on
127.0.0.1, HTTP with ``RemoteAccessAllowed: false`` (Orthanc 1.10 cannot bind one
address, so it refuses non-loopback HTTP clients instead), authentication off (loopback
test instance only), the DICOM port accepting only the AET ``SPINEVCF`` from host
127.0.0.1, and the DICOMweb plugin from the Debian package ``orthanc-dicomweb``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = ["OrthancServer", "start_orthanc", "find_dicomweb_plugin", "free_port", "LOOPBACK"]

log = logging.getLogger("orthanc_ctl")

LOOPBACK = "127.0.0.1"
HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "orthanc.json.template"
#: Seconds to wait for Orthanc to answer after starting it.
READY_TIMEOUT_S = 30.0
#: Seconds to wait for Orthanc to exit after SIGTERM before SIGKILL.
STOP_TIMEOUT_S = 10.0
_POLL_S = 0.1
#: Where the Debian package installs the plugin (the first existing one is used).
_PLUGIN_CANDIDATES = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/libOrthancDicomWeb.so",
)


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def find_dicomweb_plugin() -> Path:
    """The DICOMweb plugin shared library of the ``orthanc-dicomweb`` package.

    Raises:
        FileNotFoundError: the package is not installed.
    """
    try:
        listing = subprocess.run(
            ["dpkg", "-L", "orthanc-dicomweb"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        listing = []
    for path in [p for p in listing if "DicomWeb" in p and ".so" in p] + list(_PLUGIN_CANDIDATES):
        if Path(path).is_file():
            return Path(path)
    raise FileNotFoundError("DICOMweb plugin not found: install the Debian package orthanc-dicomweb")


@dataclass
class OrthancServer:
    """A running Orthanc started by :func:`start_orthanc`."""

    process: subprocess.Popen[bytes]
    workdir: Path
    http_port: int
    dicom_port: int
    aet: str = "SPINEVCF_PACS"

    @property
    def url(self) -> str:
        """HTTP base URL (REST API; DICOMweb under ``/dicom-web``)."""
        return f"http://{LOOPBACK}:{self.http_port}"

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT_S`)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.warning("Orthanc did not stop in %.0f s, killing it", STOP_TIMEOUT_S)
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)
        pid_file = self.workdir / "orthanc.pid"
        if pid_file.exists():
            pid_file.unlink()


def render_config(workdir: Path, http_port: int, dicom_port: int, plugin: Path) -> Path:
    """Write ``workdir/orthanc.json`` from the template."""
    text = TEMPLATE.read_text()
    for key, value in {
        "@STORAGE_DIR@": str(workdir / "db"),
        "@HTTP_PORT@": str(http_port),
        "@DICOM_PORT@": str(dicom_port),
        "@DICOMWEB_PLUGIN@": str(plugin),
    }.items():
        text = text.replace(key, value)
    path = workdir / "orthanc.json"
    path.write_text(text)
    return path


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/system", timeout=1.0) as resp:  # noqa: S310 - loopback URL
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_orthanc(workdir: Path, *, binary: str = "Orthanc", ready_timeout_s: float = READY_TIMEOUT_S) -> OrthancServer:
    """Start Orthanc on free loopback ports and wait until its REST API answers.

    Args:
        workdir: folder for the configuration, the database and the log (created).
        binary: the Orthanc executable.
        ready_timeout_s: give up (and stop the process) after this many seconds.

    Raises:
        FileNotFoundError: Orthanc or its DICOMweb plugin is not installed.
        RuntimeError: Orthanc exited or did not become ready in time.
    """
    exe = shutil.which(binary)
    if exe is None:
        raise FileNotFoundError(f"{binary} not found: run scripts/orthanc/install_orthanc.sh as root")
    workdir.mkdir(parents=True, exist_ok=True)
    http_port, dicom_port = free_port(), free_port()
    while dicom_port == http_port:
        dicom_port = free_port()
    config = render_config(workdir, http_port, dicom_port, find_dicomweb_plugin())
    logfile = open(workdir / "orthanc.log", "wb")  # noqa: SIM115 - owned by the child process
    proc = subprocess.Popen([exe, str(config)], stdout=logfile, stderr=subprocess.STDOUT, cwd=workdir)
    logfile.close()
    server = OrthancServer(proc, workdir, http_port, dicom_port)
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Orthanc exited with status {proc.returncode}; see {workdir / 'orthanc.log'}")
        if _ready(server.url):
            (workdir / "orthanc.pid").write_text(f"{proc.pid}\n")
            log.info("Orthanc ready at %s (DICOM port %d)", server.url, dicom_port)
            return server
        time.sleep(_POLL_S)
    server.stop()
    raise RuntimeError(f"Orthanc was not ready within {ready_timeout_s:.0f} s; see {workdir / 'orthanc.log'}")


def _stop_from_pid_file(workdir: Path) -> int:
    pid_file = workdir / "orthanc.pid"
    if not pid_file.exists():
        log.error("no orthanc.pid in %s", workdir)
        return 1
    pid = int(pid_file.read_text().strip())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        log.warning("Orthanc (pid %d) was not running", pid)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(_POLL_S)
    pid_file.unlink()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line: ``start`` (stays in the background) or ``stop``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=("start", "stop"))
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.action == "stop":
        return _stop_from_pid_file(args.workdir)
    try:
        server = start_orthanc(args.workdir)
    except (FileNotFoundError, RuntimeError) as exc:
        log.error("%s", exc)
        return 1
    sys.stdout.write(f"url={server.url}\ndicom_port={server.dicom_port}\naet={server.aet}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
