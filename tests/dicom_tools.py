"""Helpers that run the DICOM command-line validators (dciodvfy, dsrdump) in the tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[2]
_INSTALL = _REPO / "scripts" / "install_system_deps.sh"
_tried_install = False


def require_tool(name: str) -> str:
    """Path of a validator; installs the Debian tools once if missing.

    Fails (instead of skipping) when the ``CI`` environment variable is set.
    """
    global _tried_install
    found = shutil.which(name)
    if found is None and not _tried_install and _INSTALL.is_file():
        _tried_install = True
        subprocess.run(["bash", str(_INSTALL)], check=False, timeout=300)
        found = shutil.which(name)
    if found is None:
        message = f"{name} not found even after scripts/install_system_deps.sh (apt dcmtk / dicom3tools)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def dciodvfy_output(path: Path) -> str:
    """Everything dciodvfy prints for a file (stdout, then stderr)."""
    exe = require_tool("dciodvfy")
    proc = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
    return proc.stdout + proc.stderr


def dciodvfy_errors(path: Path) -> tuple[list[str], list[str]]:
    """(error lines, warning lines) dciodvfy prints for a file."""
    lines = dciodvfy_output(path).splitlines()
    return [ln for ln in lines if ln.startswith("Error")], [ln for ln in lines if ln.startswith("Warning")]


def dsrdump(path: Path) -> str:
    """dsrdump's rendering of an SR; asserts exit status 0."""
    exe = require_tool("dsrdump")
    proc = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout
