"""A real PACS round trip with Orthanc on loopback: C-STORE, WADO-RS, pipeline, STOW-RS, read back.

The module-scoped fixture installs Orthanc (scripts/orthanc/install_orthanc.sh, as
root) when it is missing, starts one instance on free loopback ports and stops it at
the end. Tests that need it are marked ``pacs``; the "server down" tests need none.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pydicom
import pytest
import requests
from _reliability import REPO, require_models
from corpus import write_valid

from spinevcf.errors import InputError
from spinevcf.io.dicom import load_study
from spinevcf.pacs import DicomWebClient, PacsError, pacs_round_trip
from tests.fake_pipeline import FakePipeline

CTL_PATH = REPO / "scripts" / "orthanc" / "orthanc_ctl.py"
INSTALL_SCRIPT = REPO / "scripts" / "orthanc" / "install_orthanc.sh"
#: Our SCU's AE title (the only peer the Orthanc configuration accepts).
SCU_AET = "SPINEVCF"
#: Seconds allowed for installing Orthanc with apt-get.
INSTALL_TIMEOUT_S = 600
#: Seconds a CLI run may take.
CLI_TIMEOUT_S = 300


def _load_ctl() -> ModuleType:
    spec = importlib.util.spec_from_file_location("orthanc_ctl", CTL_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["orthanc_ctl"] = module
    spec.loader.exec_module(module)
    return module


ctl = _load_ctl()


def _ensure_orthanc() -> None:
    if shutil.which("Orthanc") is not None:
        try:
            ctl.find_dicomweb_plugin()
            return
        except FileNotFoundError:
            pass
    reason = "Orthanc or its DICOMweb plugin is missing"
    if os.geteuid() == 0:
        proc = subprocess.run(
            ["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S
        )
        if proc.returncode == 0:
            return
        reason += f" and installing it failed: {proc.stderr.strip()[-300:]}"
    else:
        reason += " and installing needs root"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One loopback Orthanc for the module."""
    _ensure_orthanc()
    server = ctl.start_orthanc(tmp_path_factory.mktemp("orthanc"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def stored_study(orthanc: object, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated CT study, sent to Orthanc with C-STORE (pynetdicom)."""
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage

    folder = write_valid(tmp_path_factory.mktemp("pacs_study") / "ct", seed=31)
    ae = AE(ae_title=SCU_AET)
    ae.add_requested_context(CTImageStorage)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    assoc = ae.associate("127.0.0.1", orthanc.dicom_port, ae_title=orthanc.aet)  # type: ignore[attr-defined]
    assert assoc.is_established, "Orthanc refused the association"
    try:
        for path in sorted(folder.glob("*.dcm")):
            status = assoc.send_c_store(pydicom.dcmread(path))
            assert status and status.Status == 0x0000, f"C-STORE failed: {status}"
    finally:
        assoc.release()
    return folder


def _study_uid(folder: Path) -> str:
    return str(pydicom.dcmread(next(folder.glob("*.dcm")), stop_before_pixels=True).StudyInstanceUID)


@pytest.mark.pacs
def test_orthanc_config_is_loopback_only(orthanc: object) -> None:
    config = (orthanc.workdir / "orthanc.json").read_text()  # type: ignore[attr-defined]
    cfg = json.loads(config)
    assert cfg["RemoteAccessAllowed"] is False and cfg["AuthenticationEnabled"] is False
    assert cfg["DicomAlwaysAllowStore"] is False and cfg["DicomCheckModalityHost"] is True
    assert {m["Host"] for m in cfg["DicomModalities"].values()} == {"127.0.0.1"}
    assert cfg["DicomWeb"]["Enable"] is True and Path(cfg["Plugins"][0]).is_file()
    assert orthanc.url.startswith("http://127.0.0.1:")  # type: ignore[attr-defined]
    assert requests.get(f"{orthanc.url}/system", timeout=10).json()["DicomAet"] == orthanc.aet  # type: ignore[attr-defined]


@pytest.mark.pacs
def test_wado_rs_pull_is_intact(orthanc: object, stored_study: Path, tmp_path: Path) -> None:
    with DicomWebClient(orthanc.url, timeout_s=30) as client:  # type: ignore[attr-defined]
        n = client.retrieve_study(_study_uid(stored_study), tmp_path / "pulled")
    assert n == len(list(stored_study.glob("*.dcm")))
    np.testing.assert_array_equal(load_study(tmp_path / "pulled").array, load_study(stored_study).array)


def _read_back(url: str, study_uid: str, series_uid: str, sop_uid: str) -> pydicom.Dataset:
    resp = requests.get(
        f"{url}/dicom-web/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}",
        headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
        timeout=30,
    )
    assert resp.status_code == 200
    from spinevcf.pacs import _split_multipart

    parts = list(_split_multipart(resp.content, resp.headers["Content-Type"]))
    assert len(parts) == 1
    from io import BytesIO

    return pydicom.dcmread(BytesIO(parts[0]))


@pytest.mark.pacs
def test_round_trip_stores_sr_and_capture(orthanc: object, stored_study: Path, tmp_path: Path) -> None:
    """Pull, run (model-free pipeline with a CPR), STOW the SR + SC, read them back intact."""
    study_uid = _study_uid(stored_study)
    out = tmp_path / "out"
    result = pacs_round_trip(
        orthanc.url,
        study_uid,
        out,
        pipeline=FakePipeline(spine=True),
        timeout_s=30,  # type: ignore[attr-defined]
    )
    assert result.n_retrieved == len(list(stored_study.glob("*.dcm")))
    assert {"sr", "capture", "results"} <= set(result.outputs)
    local = {kind: pydicom.dcmread(result.outputs[kind]) for kind in ("sr", "capture")}
    assert sorted(result.stored_sop_instance_uids) == sorted(str(ds.SOPInstanceUID) for ds in local.values())
    for kind, ds in local.items():
        back = _read_back(orthanc.url, study_uid, str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID))  # type: ignore[attr-defined]
        assert back.SOPInstanceUID == ds.SOPInstanceUID and back.SOPClassUID == ds.SOPClassUID
        assert back.StudyInstanceUID == study_uid
        if kind == "sr":
            assert back.ContentSequence == ds.ContentSequence
            assert (
                back.CurrentRequestedProcedureEvidenceSequence == ds.CurrentRequestedProcedureEvidenceSequence
            )
        else:
            assert back.PixelData == ds.PixelData


@pytest.mark.pacs
def test_unknown_study_is_a_clear_error(orthanc: object, tmp_path: Path) -> None:
    with pytest.raises(PacsError, match="no series"):
        pacs_round_trip(orthanc.url, "1.2.3.4.5.999", tmp_path / "out", pipeline=FakePipeline(spine=False))  # type: ignore[attr-defined]
    assert not (tmp_path / "out").exists()


@pytest.mark.pacs
@pytest.mark.slow
def test_cli_round_trip_with_models(orthanc: object, stored_study: Path, tmp_path: Path) -> None:
    """``spinevcf pacs`` with the committed models."""
    require_models()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "spinevcf.cli",
            "pacs",
            "--url",
            orthanc.url,
            "--study",
            _study_uid(stored_study),  # type: ignore[attr-defined]
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((tmp_path / "out" / "results.json").read_text())["status"] in ("ok", "no_spine")


# ------------------------------------------------------------------ no server needed


def _closed_url() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_server_down_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PacsError, match="unreachable"):
        pacs_round_trip(
            _closed_url(), "1.2.3", tmp_path / "out", pipeline=FakePipeline(spine=False), timeout_s=5
        )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("uid", ["../../etc", "1.2.3/../x", "", "1.2.3?x=1"])
def test_bad_study_uid_refused_before_any_request(
    uid: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("a request was sent")

    monkeypatch.setattr(requests.Session, "request", no_network)
    with pytest.raises(InputError, match="not a valid DICOM UID"):
        pacs_round_trip("http://127.0.0.1:1", uid, tmp_path / "out", pipeline=FakePipeline(spine=False))


def test_cli_server_down(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "spinevcf.cli",
            "pacs",
            "--url",
            _closed_url(),
            "--study",
            "1.2.3",
            "--out",
            str(tmp_path / "out"),
            "--timeout",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        cwd=REPO,
    )
    assert proc.returncode == PacsError.exit_code
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("spinevcf: error:")]
    assert len(lines) == 1 and "unreachable" in lines[0]
    assert not (tmp_path / "out").exists()
