"""Start-up (issue 15): what a DICOM run does not need is not imported by ``import app.app``,
and stays importable (operators/_sdk.py: deferred modules)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Imported by the SDK (or, before, spinevcf.io's __init__), never used on the ONNX Runtime DICOM path.
NOT_AT_START = (
    "SimpleITK",
    "grpc",
    "gevent",
    "geventhttpclient",
    "tritonclient.utils",
    "tritonclient.http._client",
)


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=180, check=False
    )


def test_app_import_leaves_out_what_a_dicom_run_does_not_use() -> None:
    proc = _run(
        "import sys, app.app\n"
        f"loaded = [m for m in {NOT_AT_START!r} if m in sys.modules]\n"
        "print('LOADED', loaded)\n"
        "assert 'monai.deploy.core' in sys.modules and 'spinevcf.io.dicom' in sys.modules\n"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "LOADED []" in proc.stdout


def test_deferred_modules_work_when_used() -> None:
    proc = _run(
        "import sys, app.app\n"
        "import tritonclient.grpc as g, tritonclient.http as h\n"
        "assert g.InferenceServerClient.__module__ == 'tritonclient.grpc._client'\n"
        "assert h.InferenceServerClient.__module__ == 'tritonclient.http._client'\n"
        "from tritonclient.grpc import model_config_pb2\n"
        "assert model_config_pb2.ModelConfig is sys.modules['tritonclient.grpc.model_config_pb2'].ModelConfig\n"
        "from spinevcf.io import load_nifti, load_volume, write_ct_series\n"
        "import spinevcf.io\n"
        "assert spinevcf.io.load_study is sys.modules['spinevcf.io.dicom'].load_study\n"
        "assert 'SimpleITK' in sys.modules\n"
        "from spinevcf.inference.triton_backend import TritonBackend\n"
        "from monai.deploy.core.models import TritonRemoteModel\n"
        "print('ok')\n"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ok" in proc.stdout


def test_nothing_deferred_when_already_imported() -> None:
    proc = _run(
        "import sys, tritonclient.http, spinevcf.io\n"
        "before = (sys.modules['tritonclient.http'], sys.modules['spinevcf.io'])\n"
        "import app.app\n"
        "assert (sys.modules['tritonclient.http'], sys.modules['spinevcf.io']) == before\n"
        "assert type(sys.modules['spinevcf.io']).__name__ == 'module'\n"
        "print('ok')\n"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ok" in proc.stdout


def test_spinevcf_io_loads_its_submodules_on_use() -> None:
    """spinevcf.io's names come from their submodules on first use (PEP 562), so a DICOM
    read does not import the NIfTI reader (SimpleITK) or the series writer."""
    proc = _run(
        "import sys\n"
        "from spinevcf.io import load_study\n"
        "import spinevcf.io\n"
        "assert load_study is sys.modules['spinevcf.io.dicom'].load_study\n"
        "assert 'SimpleITK' not in sys.modules and 'spinevcf.io.dicom_write' not in sys.modules\n"
        "assert set(spinevcf.io.__all__) <= set(dir(spinevcf.io))\n"
        "from spinevcf.io import load_volume, write_ct_series\n"
        "assert 'SimpleITK' in sys.modules and write_ct_series.__module__ == 'spinevcf.io.dicom_write'\n"
        "try:\n"
        "    spinevcf.io.no_such_name\n"
        "except AttributeError as exc:\n"
        "    assert 'no_such_name' in str(exc)\n"
        "else:\n"
        "    raise AssertionError('no AttributeError')\n"
        "print('ok')\n"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ok" in proc.stdout


def test_spinevcf_io_names_match_its_table() -> None:
    import spinevcf.io as sio

    assert sorted(sio.__all__) == sorted(sio._SUBMODULE_OF)
