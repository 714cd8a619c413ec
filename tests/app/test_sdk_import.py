"""The application imports the MONAI Deploy SDK without PyTorch (operators/_sdk.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("torch", reason="only meaningful where PyTorch is installed (development venv)")


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_app_import_does_not_import_torch_and_leaves_it_importable() -> None:
    proc = _run(
        "import sys, app.app\n"
        "assert 'torch' not in sys.modules, 'monai.deploy pulled in torch'\n"
        "import torch\n"
        "print('torch', torch.__version__)\n"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "torch " in proc.stdout


def test_torch_imported_first_is_left_alone() -> None:
    proc = _run("import torch, sys, app.app\nassert sys.modules['torch'] is torch\nprint('ok')\n")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ok" in proc.stdout
