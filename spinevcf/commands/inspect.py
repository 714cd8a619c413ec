"""``spinevcf inspect DIR``: list the studies and series in a folder and say which would be used.

Prints, per study (UID abbreviated), every series with its number, description, modality,
ImageType, slice count, spacing and orientation, followed by the verdict of the series
selection (:func:`spinevcf.io.dicom.rank_candidates`). For the selected series the
geometry is checked from the headers (:func:`spinevcf.io.dicom.check_series`), so gaps,
duplicates or mixed orientations show up without decoding pixels. Patient attributes are
never printed. Exits non-zero (NoCTSeriesError / the geometry error) when nothing is usable.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import numpy as np

from spinevcf.errors import InputError, NoCTSeriesError
from spinevcf.io.dicom import SeriesCandidate, check_series, find_series

__all__ = ["add_parser", "run", "format_report"]

#: Characters kept at each end of an abbreviated UID.
_UID_KEEP = 8


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the ``inspect`` subcommand."""
    p = sub.add_parser(
        "inspect", help="list DICOM studies/series in a folder and the series that would be used"
    )
    p.add_argument("folder", type=Path, help="folder with DICOM files (searched recursively)")
    p.set_defaults(func=run)


def _abbrev(uid: str) -> str:
    if len(uid) <= 2 * _UID_KEEP + 3:
        return uid or "unknown"
    return f"{uid[:_UID_KEEP]}...{uid[-_UID_KEEP:]}"


def _describe(c: SeriesCandidate) -> str:
    num = "?" if c.series_number is None else str(c.series_number)
    ps = c.pixel_spacing
    ss = c.slice_spacing
    spacing = (f"{ps[0]:.3g} x {ps[1]:.3g} mm" if ps else "? mm") + (
        f", slices {ss:.3g} mm apart" if ss else ""
    )
    image_type = "\\".join(c.image_type) or "-"
    desc = c.series_description or "(no description)"
    return (
        f"  series {num:>4}  {desc}\n"
        f"      modality {c.modality or '-'}, image type {image_type}, {c.n_slices} image(s), "
        f"{spacing}, {c.orientation_label}\n"
        f"      UID {_abbrev(c.series_instance_uid)}\n"
        f"      -> {c.reason}"
    )


def format_report(ranked: Sequence[SeriesCandidate], geometry_note: str | None = None) -> str:
    """Text report of ranked candidates grouped by study (no patient attributes)."""
    studies: dict[str, list[SeriesCandidate]] = {}
    for c in ranked:
        studies.setdefault(c.study_instance_uid, []).append(c)
    lines: list[str] = []
    for study, cands in studies.items():
        lines.append(f"study {_abbrev(study)}: {len(cands)} series")
        for c in sorted(cands, key=lambda c: (c.series_number is None, c.series_number or 0)):
            lines.append(_describe(c))
            if c.accepted and geometry_note:
                lines.append(f"      geometry: {geometry_note}")
    return "\n".join(lines)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Print the report for ``args.folder``; 0 when a series is usable, else an error is raised.

    Raises:
        NoDicomFilesError: no DICOM files.
        NoCTSeriesError: no acceptable series (after printing the report).
        InputError: the selected series has a geometric defect (after printing the report).
    """
    stream = out or sys.stdout
    ranked = find_series(args.folder)
    chosen = ranked[0] if ranked and ranked[0].accepted else None
    note: str | None = None
    error: InputError | None = None
    if chosen is not None:
        try:
            geom = check_series(chosen)
            sp = np.linalg.norm(geom.affine[:3, :3], axis=0)
            note = f"ok, voxel {sp[0]:.3g} x {sp[1]:.3g} x {sp[2]:.3g} mm, tilt {geom.tilt_deg:.1f} deg"
        except InputError as exc:
            error = exc
            note = f"UNUSABLE: {exc}"
    stream.write(format_report(ranked, note) + "\n")
    if chosen is None:
        raise NoCTSeriesError("no usable axial CT series in the folder (see the reasons above)")
    if error is not None:
        raise error
    stream.write(f"would use: {chosen.label}\n")
    return 0
