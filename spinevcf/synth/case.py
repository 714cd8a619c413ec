"""Whole synthetic studies: phantom + acquisition -> CT volume + ground truth, and their files.

Ground truth lists only the vertebrae (C2..L5) whose body lies entirely inside the scanned
volume (and inside the reconstruction circle when the scanner pads outside it); bodies cut
by the field of view are rendered but only named in ``truth.extra["partial"]`` so that
evaluation can ignore detections of them (and count fracture calls on them as false).
A mobile body without a name in :data:`spinevcf.schema.LEVELS` (the lumbarised S1 of the
held-out family) is listed in ``truth.extra["unnamed"]``. Non-default generator options
are recorded in ``extra["generator_options"]``, the held-out family and its transitional
anatomy in ``extra["family"]`` and ``extra["transitional"]``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, JPEGLSLossless, RLELossless, generate_uid

from spinevcf.errors import OutputError
from spinevcf.grading import truth_record
from spinevcf.schema import LEVELS, StudyRecord
from spinevcf.synth.acquisition import Acquisition, sample_acquisition, scanner_affine, simulate
from spinevcf.synth.config import SynthConfig
from spinevcf.synth.phantom import GENERATOR_VERSION, Phantom, sample_phantom
from spinevcf.synth.spine import Vertebra
from spinevcf.volume import SeriesInfo, Volume

__all__ = ["SyntheticCase", "generate_case", "write_case", "case_uids", "truth_for", "COMPRESSIONS"]

log = logging.getLogger(__name__)

#: ``--compress`` names and their transfer syntaxes.
COMPRESSIONS: dict[str, str] = {
    "none": ExplicitVRLittleEndian,
    "jpeg2000": JPEG2000Lossless,
    "jpegls": JPEGLSLossless,
    "rle": RLELossless,
}


@dataclass
class SyntheticCase:
    """One generated study.

    Attributes:
        seed: the seed it was made from.
        volume: int16 HU volume on the scanner grid; ``volume.info`` holds the UIDs.
        truth: ground truth in the results schema.
        phantom: the sampled patient (render it on other grids for training).
        acquisition: the scanner settings.
    """

    seed: int
    volume: Volume
    truth: StudyRecord
    phantom: Phantom
    acquisition: Acquisition


def case_uids(seed: int) -> dict[str, str]:
    """Deterministic study, series and frame-of-reference UIDs of the case made from ``seed``."""
    return {
        kind: str(generate_uid(entropy_srcs=["spinevcf-synth", str(int(seed)), kind]))
        for kind in ("study", "series", "frame")
    }


#: Samples of the body surface in :func:`_inside_fraction`: angles around the elliptic
#: wall, heights up the wall, and rings on the end faces.
_SURFACE_ANGLES = 24
_SURFACE_HEIGHTS = 5
_SURFACE_RINGS = (0.0, 0.5, 1.0)


def _body_surface_local(vb: Vertebra) -> npt.NDArray[np.float64]:
    """Points on the body's own surface in local (u, v, w) mm: its elliptic wall
    (``half_width`` x ``half_depth``) from ``-max_half_height`` to ``+max_half_height``, and
    rings on both end faces. The cylinder encloses the body (whose endplates lie inside
    ``max_half_height`` and whose section is the ellipse less a posterior notch).
    """
    t = np.linspace(0.0, 2.0 * np.pi, _SURFACE_ANGLES, endpoint=False)
    cu, cv = np.cos(t) * vb.half_width, np.sin(t) * vb.half_depth
    h = vb.max_half_height
    wall = [np.stack([cu, cv, np.full_like(t, w)], axis=1) for w in np.linspace(-h, h, _SURFACE_HEIGHTS)]
    faces = [
        np.stack([r * cu, r * cv, np.full_like(t, w)], axis=1) for r in _SURFACE_RINGS for w in (-h, h)
    ]
    return np.concatenate(wall + faces)


def _inside_fraction(
    vb: Vertebra, aff: npt.NDArray[np.float64], shape: tuple[int, ...], circle: bool
) -> float:
    """Fraction of points on the body's surface (:func:`_body_surface_local`) inside the
    scanned volume (and inside the reconstruction circle when ``circle``).

    Until generator 1.3 the points were the corners and faces of the body's bounding box,
    whose corners lie outside the elliptic body: a body whose box corner passed the image
    edge was called cut although none of it was.
    """
    pts = vb.to_global(_body_surface_local(vb))
    inv = np.linalg.inv(aff)
    idx = pts @ inv[:3, :3].T + inv[:3, 3]
    ok = np.all((idx >= -0.5) & (idx <= np.asarray(shape) - 0.5), axis=1)
    if circle:
        c = 0.5 * (shape[1] - 1)
        ok &= (idx[:, 1] - c) ** 2 + (idx[:, 2] - c) ** 2 <= (0.5 * shape[1]) ** 2
    return float(ok.mean())


def truth_for(
    phantom: Phantom,
    affine: npt.ArrayLike,
    shape: tuple[int, int, int],
    *,
    uids: dict[str, str],
    circle: bool = False,
) -> StudyRecord:
    """Ground truth of ``phantom`` seen on a grid: vertebrae fully inside, graded by :func:`spinevcf.grading.truth_record`."""
    aff = np.asarray(affine, dtype=np.float64)
    full: list[Vertebra] = []
    partial: list[dict[str, object]] = []
    unnamed: list[dict[str, object]] = []
    sacral = phantom.spine.vertebrae[-1]
    for vb in phantom.spine.vertebrae:
        if vb.level not in LEVELS:
            if vb is not sacral:  # a mobile body without a LEVELS name (lumbarised S1)
                frac = _inside_fraction(vb, aff, shape, circle)
                if frac > 0.0:
                    unnamed.append(
                        {
                            "label": vb.level,
                            "center_lps_mm": np.round(vb.keypoints().mean(axis=0), 3).tolist(),
                            "complete": bool(frac >= 1.0),
                        }
                    )
            continue
        frac = _inside_fraction(vb, aff, shape, circle)
        if frac >= 1.0:
            full.append(vb)
        elif frac > 0.0:
            partial.append(
                {"label": vb.level, "center_lps_mm": np.round(vb.keypoints().mean(axis=0), 3).tolist()}
            )
    extra: dict[str, object] = {"partial": partial, "seed": phantom.seed, "patient": phantom.info}
    if phantom.family != "default":
        extra["family"] = phantom.family
        extra["transitional"] = dict(phantom.transitional)
        extra["unnamed"] = unnamed
    elif unnamed:
        extra["unnamed"] = unnamed
    return truth_record(
        [vb.level for vb in full],
        [vb.keypoints() for vb in full],
        study_instance_uid=uids["study"],
        series_instance_uid=uids["series"],
        model_version=f"spinevcf-synth {GENERATOR_VERSION}",
        extra=extra,
    )


def generate_case(seed: int, config: SynthConfig | None = None) -> SyntheticCase:
    """Make one synthetic CT study with its ground truth.

    Args:
        seed: non-negative integer; the same seed and config give identical results.
        config: generator settings.

    Returns:
        The case (volume in memory; write it with :func:`write_case`).
    """
    cfg = config or SynthConfig()
    phantom = sample_phantom(seed, cfg)
    rng = np.random.default_rng([int(seed), 0xAC9])
    acq = sample_acquisition(rng, phantom, cfg)
    arr = simulate(acq, phantom, seed)
    aff = scanner_affine(acq)
    uids = case_uids(seed)
    truth = truth_for(phantom, aff, arr.shape, uids=uids, circle=acq.padding_value is not None)
    assert truth.extra is not None
    truth.extra["acquisition"] = acq.to_dict()
    if not cfg.is_default_geometry:
        truth.extra["generator_options"] = cfg.options()
    info = SeriesInfo(
        study_instance_uid=uids["study"],
        series_instance_uid=uids["series"],
        frame_of_reference_uid=uids["frame"],
        series_description=f"SYNTH {acq.fov_preset} {acq.slice_thickness:g}mm {acq.kernel}",
        extra={
            "seed": int(seed),
            "patient_position": acq.patient_position,
            "slice_thickness": acq.slice_thickness,
        },
    )
    vol = Volume(arr, aff, info)
    return SyntheticCase(int(seed), vol, truth, phantom, acq)


def write_case(case: SyntheticCase, out_dir: str | os.PathLike[str], *, compress: str = "none") -> Path:
    """Write ``out_dir/dicom/*.dcm`` and ``out_dir/truth.json``.

    Args:
        case: the generated case.
        out_dir: case folder (created).
        compress: "none", "jpeg2000", "jpegls" or "rle" (lossless transfer syntaxes).

    Returns:
        ``out_dir`` as a Path.

    Raises:
        ValueError: unknown ``compress``.
        OutputError: the folder cannot be written.
    """
    from spinevcf.io.dicom_write import write_ct_series

    if compress not in COMPRESSIONS:
        raise ValueError(f"compress must be one of {sorted(COMPRESSIONS)}, got {compress!r}")
    out = Path(out_dir)
    info = case.volume.info
    acq = case.acquisition
    write_ct_series(
        case.volume,
        out / "dicom",
        patient={"PatientID": f"SYNTH{case.seed:07d}", "PatientName": f"SYNTH^{case.seed}"},
        study_instance_uid=info.study_instance_uid,
        series_instance_uid=info.series_instance_uid,
        frame_of_reference_uid=info.frame_of_reference_uid,
        series_description=info.series_description,
        transfer_syntax=COMPRESSIONS[compress],
        convolution_kernel={"smooth": "B20f", "standard": "B31f", "sharp": "B70f"}[acq.kernel],
        patient_position=acq.patient_position,
        rng_seed=case.seed,
    )
    try:
        (out / "truth.json").write_text(case.truth.to_json())
    except OSError as exc:
        raise OutputError(f"cannot write truth.json in {out}: {exc.strerror}") from exc
    return out
