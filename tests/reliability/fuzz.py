"""Seeded corruption of a valid CT series (the fuzzer behind test_reliability_fuzz.py).

:func:`mutate_series` applies one to three random mutations, chosen from
:data:`MUTATORS`, to a copy of a valid series. Each mutation changes header values
(IOP, IPP, PixelSpacing, Rows, Columns, BitsAllocated, BitsStored,
PixelRepresentation, RescaleSlope/Intercept, TransferSyntaxUID, SOPClassUID,
Modality, SamplesPerPixel, ...), the pixel bytes (truncated, extended, removed) or
the raw file bytes (random byte flips, truncation). Everything depends only on the
seed, so a failing case is reproduced from its index alone.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
from pydicom import config as pydicom_config
from pydicom.dataset import Dataset

__all__ = ["MUTATORS", "mutate_series"]

_WEIRD_NUMBERS: tuple[Any, ...] = (
    "0", "-0", "1", "-1", "0.0001", "1e-30", "1e30", "1e308", "-1e308", "nan", "inf", "-inf", "abc", "", "1\\2",
    "99999999999999", "-32768", "65535", "3.5",
)
_UIDS = (
    "1.2.840.10008.1.2",  # implicit little endian
    "1.2.840.10008.1.2.1",  # explicit little endian
    "1.2.840.10008.1.2.2",  # explicit big endian (retired)
    "1.2.840.10008.1.2.1.99",  # deflated
    "1.2.840.10008.1.2.4.50",  # JPEG baseline
    "1.2.840.10008.1.2.4.70",  # JPEG lossless
    "1.2.840.10008.1.2.4.80",  # JPEG-LS
    "1.2.840.10008.1.2.4.90",  # JPEG 2000
    "1.2.840.10008.1.2.5",  # RLE
    "1.2.840.10008.5.1.4.1.1.2",  # CT image storage
    "1.2.840.10008.5.1.4.1.1.2.1",  # enhanced CT
    "1.2.840.10008.5.1.4.1.1.4",  # MR
    "1.2.840.10008.5.1.4.1.1.88.33",  # comprehensive SR
    "1.2.3.4.5.6.7.8.9",
    "",
    "not-a-uid",
)


def _number(rng: random.Random) -> Any:
    return rng.choice(_WEIRD_NUMBERS) if rng.random() < 0.7 else str(rng.uniform(-1e4, 1e4))


def _numbers(rng: random.Random, n: int) -> list[Any]:
    k = n if rng.random() < 0.8 else rng.choice([0, 1, n - 1, n + 1])
    return [_number(rng) for _ in range(k)]


def _set_or_delete(ds: Dataset, keyword: str, value: Any, rng: random.Random) -> None:
    if rng.random() < 0.15:
        if keyword in ds:
            delattr(ds, keyword)
    else:
        setattr(ds, keyword, value)


def _us(rng: random.Random) -> int:
    return rng.choice([0, 1, 2, 3, 7, 8, 12, 15, 16, 17, 24, 31, 32, 33, 64, 255, 4096, 65535])


HeaderMutator = Callable[[Dataset, random.Random], str]


def _iop(ds: Dataset, rng: random.Random) -> str:
    choice = rng.random()
    if choice < 0.3:
        value: Any = ["0", "0", "0", "0", "0", "0"]
    elif choice < 0.5:
        value = ["1", "0", "0", "1", "0", "0"]  # parallel cosines
    else:
        value = _numbers(rng, 6)
    _set_or_delete(ds, "ImageOrientationPatient", value, rng)
    return "IOP"


def _ipp(ds: Dataset, rng: random.Random) -> str:
    _set_or_delete(ds, "ImagePositionPatient", _numbers(rng, 3), rng)
    return "IPP"


def _spacing(ds: Dataset, rng: random.Random) -> str:
    _set_or_delete(ds, "PixelSpacing", _numbers(rng, 2), rng)
    return "PixelSpacing"


def _rows(ds: Dataset, rng: random.Random) -> str:
    _set_or_delete(ds, "Rows", _us(rng), rng)
    return "Rows"


def _columns(ds: Dataset, rng: random.Random) -> str:
    _set_or_delete(ds, "Columns", _us(rng), rng)
    return "Columns"


def _bits(ds: Dataset, rng: random.Random) -> str:
    keyword = rng.choice(["BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "SamplesPerPixel"])
    _set_or_delete(ds, keyword, _us(rng), rng)
    return keyword


def _rescale(ds: Dataset, rng: random.Random) -> str:
    keyword = rng.choice(["RescaleSlope", "RescaleIntercept"])
    _set_or_delete(ds, keyword, _number(rng), rng)
    return keyword


def _transfer_syntax(ds: Dataset, rng: random.Random) -> str:
    ds.file_meta.TransferSyntaxUID = rng.choice(_UIDS)
    return "TransferSyntaxUID"


def _sop_class(ds: Dataset, rng: random.Random) -> str:
    value = rng.choice(_UIDS)
    _set_or_delete(ds, "SOPClassUID", value, rng)
    if rng.random() < 0.5:
        ds.file_meta.MediaStorageSOPClassUID = value
    return "SOPClassUID"


def _modality(ds: Dataset, rng: random.Random) -> str:
    _set_or_delete(ds, "Modality", rng.choice(["CT", "MR", "SR", "OT", "", "ct", "C T"]), rng)
    return "Modality"


def _image_type(ds: Dataset, rng: random.Random) -> str:
    value = rng.choice([["DERIVED", "SECONDARY"], ["ORIGINAL", "PRIMARY", "LOCALIZER"], [], ["X"]])
    _set_or_delete(ds, "ImageType", value, rng)
    return "ImageType"


def _frames(ds: Dataset, rng: random.Random) -> str:
    _set_or_delete(ds, "NumberOfFrames", rng.choice(["0", "1", "2", "-1", "1000000", "x"]), rng)
    return "NumberOfFrames"


def _photometric(ds: Dataset, rng: random.Random) -> str:
    _set_or_delete(ds, "PhotometricInterpretation", rng.choice(["MONOCHROME1", "RGB", "PALETTE COLOR", ""]), rng)
    return "PhotometricInterpretation"


def _uids(ds: Dataset, rng: random.Random) -> str:
    keyword = rng.choice(["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"])
    _set_or_delete(ds, keyword, rng.choice(_UIDS[-3:] + ("../../x", "1.2.3")), rng)
    return keyword


def _pixels(ds: Dataset, rng: random.Random) -> str:
    if "PixelData" not in ds:
        return "PixelData(absent)"
    data = bytes(ds.PixelData)
    choice = rng.random()
    if choice < 0.4:
        ds.PixelData = data[: rng.randrange(0, len(data) + 1)]
    elif choice < 0.7:
        ds.PixelData = data + bytes(rng.randrange(2, 4096, 2))
    elif choice < 0.85:
        del ds.PixelData
    else:
        ds.PixelData = b""
    return "PixelData"


HEADER_MUTATORS: tuple[HeaderMutator, ...] = (
    _iop, _ipp, _spacing, _rows, _columns, _bits, _rescale, _transfer_syntax, _sop_class, _modality,
    _image_type, _frames, _photometric, _uids, _pixels,
)


def _mutate_headers(files: list[Path], rng: random.Random) -> str:
    mutator = rng.choice(HEADER_MUTATORS)
    targets = files if rng.random() < 0.3 else rng.sample(files, rng.randint(1, max(1, len(files) // 3)))
    what = ""
    with pydicom_config.disable_value_validation():
        for path in targets:
            try:
                ds = pydicom.dcmread(path, force=True)
            except Exception as exc:  # noqa: BLE001 - already corrupted by an earlier mutation
                return f"{mutator.__name__}(unreadable: {type(exc).__name__})"
            try:
                what = mutator(ds, rng)
            except (ValueError, TypeError, OverflowError) as exc:  # pydicom refused the value itself
                return f"{mutator.__name__}(unsettable: {type(exc).__name__})"
            try:
                ds.save_as(path, enforce_file_format=False)
            except Exception as exc:  # noqa: BLE001 - an unwritable mutation is simply skipped
                return f"{what}(unwritable: {type(exc).__name__})"
    return f"{what} x{len(targets)}"


def _flip_bytes(files: list[Path], rng: random.Random) -> str:
    path = rng.choice(files)
    data = bytearray(path.read_bytes())
    n = rng.choice([1, 2, 8, 64])
    header_only = rng.random() < 0.7
    limit = min(len(data), 1200) if header_only else len(data)
    for _ in range(n):
        data[rng.randrange(132, limit)] = rng.randrange(256)
    path.write_bytes(bytes(data))
    return f"flip{n}{'h' if header_only else ''}"


def _truncate_file(files: list[Path], rng: random.Random) -> str:
    path = rng.choice(files)
    data = path.read_bytes()
    path.write_bytes(data[: rng.randrange(0, len(data))])
    return "truncate"


def _drop_or_duplicate(files: list[Path], rng: random.Random) -> str:
    path = rng.choice(files)
    if rng.random() < 0.5:
        path.unlink()
        files.remove(path)
        return "drop"
    copy = path.with_name(f"copy_{rng.randrange(10**6)}.dcm")
    copy.write_bytes(path.read_bytes())
    files.append(copy)
    return "duplicate"


Mutator = Callable[[list[Path], random.Random], str]

#: Mutations with their weights.
MUTATORS: tuple[tuple[Mutator, float], ...] = (
    (_mutate_headers, 0.6),
    (_flip_bytes, 0.25),
    (_truncate_file, 0.08),
    (_drop_or_duplicate, 0.07),
)


def mutate_series(folder: Path, seed: int) -> list[str]:
    """Apply one to three seeded mutations to the series in ``folder`` (in place).

    Args:
        folder: a copy of a valid series (files ``*.dcm``).
        seed: the case seed.

    Returns:
        Short descriptions of the mutations applied (for the failure message).
    """
    rng = random.Random(seed)
    files = sorted(folder.glob("*.dcm"))
    done: list[str] = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        if not files:
            break
        mutator = rng.choices([m for m, _ in MUTATORS], weights=[w for _, w in MUTATORS])[0]
        done.append(mutator(files, rng))
    return done
