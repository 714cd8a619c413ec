"""The spinevcf pipeline: volume -> spine curve -> CPR -> detections -> graded findings.

This is the algorithm the MONAI Deploy operators call stage by stage, and what
``spinevcf run`` and the benchmark call in-process. Models are loaded once per
:class:`Pipeline`; their preprocessing parameters come from the model folders
(``spinevcf.json``), never from code.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from spinevcf import __version__
from spinevcf.assess import assess_bodies, imaged
from spinevcf.detector import Detection, DetectorConfig, decode_detections, preprocess_cpr
from spinevcf.errors import ModelError, OutputError
from spinevcf.geometry.cpr import CPRImage, make_cpr
from spinevcf.geometry.curve import SpineCurve
from spinevcf.geometry.lateral import lateral_offset
from spinevcf.grading import TALL_POSTERIOR, grade_column, heights_from_keypoints, patient_probability
from spinevcf.inference.base import DETECTOR_MODEL, LOCALIZER_MODEL, InferenceBackend
from spinevcf.inference.factory import make_backend
from spinevcf.inference.onnx_backend import load_model_config
from spinevcf.levels import level_status, name_levels
from spinevcf.localizer import LocalizerConfig, curve_from_probability
from spinevcf.localizer import preprocess as localizer_preprocess
from spinevcf.schema import LEVELS, StudyRecord, VertebraRecord
from spinevcf.stability import MAX_UNREPRODUCED, SHIFTS_PX, match_shifted, shift_image, unreproduced
from spinevcf.volume import Volume

__all__ = [
    "Pipeline",
    "PipelineResult",
    "default_model_repository",
    "write_study_outputs",
    "process_study",
    "NO_SPINE_MESSAGE",
]

log = logging.getLogger(__name__)

NO_SPINE_MESSAGE = "no vertebral body found in the field of view"
#: Message of a study whose detected bodies are all not assessable (no finding is stated).
NOT_ASSESSABLE_MESSAGE = "vertebral bodies detected, none assessable: no fracture assessment"


def default_model_repository() -> Path:
    """The repository's ``model_repository/`` (resolved at call time, not import time)."""
    return Path(__file__).resolve().parent.parent / "model_repository"


@dataclass
class PipelineResult:
    """What one study gives: the findings, the CPR they were read on, stage timings."""

    record: StudyRecord
    cpr: CPRImage | None
    timings_s: dict[str, float] = field(default_factory=dict)


class Pipeline:
    """The two-step method with its models loaded once.

    Args:
        model_repository: folder with ``spine_localizer_3d/`` and ``vertebra_detector_2d/``
            (each ``config.pbtxt``, ``1/model.onnx``, ``spinevcf.json``).
        triton_url: ``HOST:PORT`` of a Triton server; ``None`` runs the ONNX models
            in-process with ONNX Runtime.
        triton_protocol: ``"grpc"`` (default) or ``"http"``.
        backend: an explicit backend (tests); overrides ``triton_url``.
        lateral_refinement: map each body's keypoints in its own mid-sagittal plane
            (measured from the CT) instead of the CPR plane.
        rib_anchor: fix the offset of the detector's level names with the anatomical anchors
            in view (ribs, rib heads, sacrum: :mod:`spinevcf.levels`; the option's name predates
            the sacrum and rib-head anchors).

    Example:
        >>> pipe = Pipeline(default_model_repository())  # doctest: +SKIP
        >>> result = pipe.run(volume)  # doctest: +SKIP
    """

    def __init__(
        self,
        model_repository: Path | str | None = None,
        *,
        triton_url: str | None = None,
        triton_protocol: str = "grpc",
        backend: InferenceBackend | None = None,
        lateral_refinement: bool = True,
        rib_anchor: bool = True,
        stability_check: bool = True,
    ) -> None:
        repo = Path(model_repository) if model_repository is not None else default_model_repository()
        if not repo.is_dir():
            raise ModelError(f"model repository not found: {repo}")
        self.model_repository = repo
        self.localizer_config = LocalizerConfig.from_dict(load_model_config(repo, LOCALIZER_MODEL))
        self.detector_config = DetectorConfig.from_dict(load_model_config(repo, DETECTOR_MODEL))
        self.backend = backend or make_backend(repo, triton_url=triton_url, protocol=triton_protocol)
        self.lateral_refinement = lateral_refinement
        self.rib_anchor = rib_anchor
        self.stability_check = stability_check
        self.model_version = f"spinevcf {__version__}"

    # -- stages -------------------------------------------------------------------------
    def localize(self, volume: Volume) -> SpineCurve | None:
        """Find the vertebral column; ``None`` when no spine is in view."""
        x, grid_affine = localizer_preprocess(volume, self.localizer_config)
        out = self.backend.infer(LOCALIZER_MODEL, {"image": x})
        prob = out["column_prob"][0, 0]
        return curve_from_probability(prob, grid_affine, self.localizer_config)

    def reformat(self, volume: Volume, curve: SpineCurve) -> CPRImage:
        """Straighten the CT along ``curve``."""
        return make_cpr(volume, curve, **self.detector_config.cpr_kwargs())

    def detect(self, cpr: CPRImage, volume: Volume) -> list[Detection]:
        """Detect vertebral bodies and their keypoints on the CPR; name their levels.

        The detector counts the bodies (ordered, no duplicates); with ``rib_anchor`` on, the
        offset of the names comes from the anatomical anchors found in ``volume`` (ribs, rib
        heads next to the column, the sacrum) and each name gets a confidence
        (:func:`spinevcf.levels.name_levels`, docs/levels.md). A body the anchors take for a
        mobile S1 (lumbarised sacrum) has no name in :data:`~spinevcf.schema.LEVELS` and is
        not reported.
        """
        cfg = self.detector_config
        x = preprocess_cpr(cpr, cfg)
        shifted_out: list[dict[str, np.ndarray]] = []
        if self.stability_check:
            # The image and its shifted copies (spinevcf.stability) in one batch: one call
            # instead of seven (each item's outputs are the same as on its own).
            fill = float(cfg.hu_window[0])
            batch = [x] + [
                preprocess_cpr(replace(cpr, image=shift_image(cpr.image, dr, dc, fill=fill)), cfg)
                for dr, dc in SHIFTS_PX
            ]
            outs = self.backend.infer(DETECTOR_MODEL, {"image": np.concatenate(batch)})
            out, *shifted_out = ({k: v[b : b + 1] for k, v in outs.items()} for b in range(len(batch)))
        else:
            out = self.backend.infer(DETECTOR_MODEL, {"image": x})
        dets = decode_detections(out, cfg)
        # Levels are assigned with every body in view (they count); whether a body can be
        # measured (a cut body's keypoints are extrapolated) is decided in grade().
        dets = name_levels(
            volume, cpr, [d for d in dets if d.center_px[0] < cpr.valid_rows], anchors=self.rib_anchor
        )
        # Every named body is reported; whether it can be measured is decided in grade().
        named = [d for d in dets if d.label is not None]
        if len(named) < len(dets):
            log.info(
                "%d detections beyond the %d nameable levels not reported",
                len(dets) - len(named),
                len(LEVELS),
            )
        if shifted_out and named:
            named = self._read_shifted(shifted_out, named)
        return named

    def _read_shifted(
        self, shifted_out: list[dict[str, np.ndarray]], detections: list[Detection]
    ) -> list[Detection]:
        """Every body's keypoints on each shifted CPR (:mod:`spinevcf.stability`), from the
        detector's outputs there (in the order of :data:`SHIFTS_PX`)."""
        cfg = self.detector_config
        centres = np.stack([np.asarray(d.center_px, dtype=np.float64) for d in detections])
        per_shift = []
        for shift, out in zip(SHIFTS_PX, shifted_out, strict=True):
            found = decode_detections(out, cfg)
            per_shift.append(match_shifted(centres, [(d.center_px, d.keypoints_px) for d in found], shift))
        return [
            replace(d, shifted_keypoints_px=tuple(kps[i] for kps in per_shift))
            for i, d in enumerate(detections)
        ]

    def grade(self, volume: Volume, cpr: CPRImage | None, detections: list[Detection]) -> StudyRecord:
        """Measure heights in 3D, grade each vertebra and the patient."""
        info = volume.info
        if cpr is None or not detections:
            return StudyRecord(
                study_instance_uid=info.study_instance_uid,
                series_instance_uid=info.series_instance_uid,
                vertebrae=[],
                patient_fractured=False,
                patient_fracture_probability=0.0,
                model_version=self.model_version,
                status="no_spine",
                message=NO_SPINE_MESSAGE,
            )
        shown = [d for d in detections if imaged(volume, cpr, d)]
        if len(shown) < len(detections):
            log.info(
                "%d detections lie beyond the scanned volume: not reported", len(detections) - len(shown)
            )
        detections = shown
        if not detections:
            return self.grade(volume, None, [])
        labels = [d.label or LEVELS[int(np.argmax(d.level_probs))] for d in detections]
        offsets = [self._lateral_offset(volume, cpr, d) for d in detections]
        kps_lps = [
            self._keypoints_lps(cpr, d.keypoints_px, v) for d, v in zip(detections, offsets, strict=True)
        ]
        heights = [heights_from_keypoints(k) for k in kps_lps]
        reasons = [a.reason for a in assess_bodies(volume, cpr, detections, heights)]
        # A body whose heights the shifted readings of the CPR do not reproduce cannot be
        # measured either (spinevcf.stability): decided before grading, so that it is no
        # neighbour reference.
        candidates = [i for i, r in enumerate(reasons) if r is None]
        unstable = self._unstable(cpr, detections, offsets, heights, candidates)
        if unstable:
            log.info(
                "%d vertebral bodies not assessable: heights not reproduced on the shifted images",
                len(unstable),
            )
            for i in unstable:
                reasons[i] = "unstable_measurement"
        graded = [i for i, r in enumerate(reasons) if r is None]
        cal = self.detector_config.calibration
        # Only assessable bodies are graded, and only they serve as neighbours for the crush
        # reference: a gap in their levels means "no reference from that side".
        grades = dict(
            zip(
                graded,
                grade_column(
                    [labels[i] for i in graded],
                    [heights[i] for i in graded],
                    center=cal[0],
                    scale=cal[1],
                    second_neighbour=True,
                    tall_posterior=TALL_POSTERIOR,
                ),
                strict=True,
            )
        )
        vertebrae = []
        for i, (lab, kp, d) in enumerate(zip(labels, kps_lps, detections, strict=True)):
            common = {
                "label": lab,
                "keypoints_lps_mm": kp.tolist(),
                "detection_score": round(float(d.score), 4),
                "cpr_keypoints_px": np.asarray(d.keypoints_px).round(3).tolist(),
                "level_confidence": None
                if d.level_confidence is None
                else round(float(d.level_confidence), 4),
                "level_status": level_status(d.level_confidence),
            }
            g = grades.get(i)
            if g is None:
                vertebrae.append(
                    VertebraRecord(
                        heights_mm={},
                        genant_grade=None,
                        deformity="none",
                        assessment="not_assessable",
                        assessment_reason=reasons[i],
                        **common,
                    )
                )
                continue
            vertebrae.append(
                VertebraRecord(
                    heights_mm={k: round(v, 3) for k, v in g.heights_mm.items()},
                    genant_grade=g.genant_grade,
                    deformity=g.deformity,
                    fracture_probability=round(g.fracture_probability, 4),
                    height_reductions_pct={k: round(100 * v, 2) for k, v in g.reductions.items()},
                    posterior_height_limit_mm=None
                    if g.posterior_limit_mm is None
                    else round(g.posterior_limit_mm, 3),
                    **common,
                )
            )
        p_patient = patient_probability([v.fracture_probability for v in vertebrae if v.assessed])
        n_assessed = sum(v.assessed for v in vertebrae)
        return StudyRecord(
            study_instance_uid=info.study_instance_uid,
            series_instance_uid=info.series_instance_uid,
            vertebrae=vertebrae,
            patient_fractured=any(v.fractured for v in vertebrae),
            patient_fracture_probability=round(p_patient, 4),
            model_version=self.model_version,
            message=None if n_assessed else NOT_ASSESSABLE_MESSAGE,
        )

    def _lateral_offset(self, volume: Volume, cpr: CPRImage, det: Detection) -> float:
        """The body's mid-sagittal plane as an offset ``v`` (mm) from the CPR plane.

        :func:`spinevcf.geometry.lateral.lateral_offset` when ``lateral_refinement`` is on, else 0.
        """
        return float(lateral_offset(volume, cpr, det.keypoints_px)) if self.lateral_refinement else 0.0

    @staticmethod
    def _keypoints_lps(cpr: CPRImage, keypoints_px: np.ndarray, v: float) -> np.ndarray:
        """CPR keypoints in LPS mm, in the plane at lateral offset ``v`` (the body's own mid-plane)."""
        s, u = cpr.pixel_to_local(keypoints_px)
        return cpr.curve.local_to_global(s, u, np.full_like(s, v))

    def _unstable(
        self,
        cpr: CPRImage,
        detections: list[Detection],
        offsets: list[float],
        heights: list[dict[str, float]],
        graded: list[int],
    ) -> list[int]:
        """Graded bodies whose heights the shifted readings do not reproduce (:mod:`spinevcf.stability`)."""
        if not graded or not self.stability_check:
            return []
        if {len(d.shifted_keypoints_px) for d in detections} != {len(SHIFTS_PX)}:
            return []  # detections made without the shifted readings (stability check off)
        out = []
        for i in graded:
            readings = detections[i].shifted_keypoints_px
            found = [k for k, kp in enumerate(readings) if kp is not None]
            shifted: list[dict[str, float] | None] = [None] * len(readings)
            if found:
                # All readings of the body mapped to 3D in one call (six keypoints each).
                kps = np.concatenate([np.asarray(readings[k], dtype=np.float64) for k in found])
                lps = self._keypoints_lps(cpr, kps, offsets[i]).reshape(-1, 6, 3)
                for k, kp in zip(found, lps, strict=True):
                    shifted[k] = heights_from_keypoints(kp)
            if unreproduced(heights[i], shifted) >= MAX_UNREPRODUCED:
                out.append(i)
        return out

    def run(self, volume: Volume) -> PipelineResult:
        """All stages on one volume, with per-stage wall times."""
        timings: dict[str, float] = {}
        t = time.perf_counter()
        curve = self.localize(volume)
        timings["localize"] = time.perf_counter() - t
        cpr: CPRImage | None = None
        detections: list[Detection] = []
        if curve is not None:
            t = time.perf_counter()
            cpr = self.reformat(volume, curve)
            timings["cpr"] = time.perf_counter() - t
            t = time.perf_counter()
            detections = self.detect(cpr, volume)
            timings["detect"] = time.perf_counter() - t
        t = time.perf_counter()
        record = self.grade(volume, cpr, detections)
        timings["grade"] = time.perf_counter() - t
        record.timings_s = dict(timings)
        log.info("study processed: %d vertebrae, stages %s", len(record.vertebrae), _fmt(timings))
        return PipelineResult(record=record, cpr=cpr, timings_s=timings)

    def close(self) -> None:
        """Release model sessions / server connections."""
        self.backend.close()


def _fmt(timings: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.3f}s" for k, v in timings.items())


def write_study_outputs(out_dir: Path | str, volume: Volume, result: PipelineResult) -> dict[str, Path]:
    """Write the SR, the annotated image (PNG and Secondary Capture) and results.json atomically.

    Args:
        out_dir: output folder (created if missing).
        volume: the evaluated CT; its ``info.dataset`` is the source header for the DICOM objects.
        result: the pipeline's result.

    Returns:
        Paths of the written files by kind (``sr``, ``capture``, ``png``, ``results``).

    Raises:
        OutputError: the DICOM objects cannot be built from the source header (an
            unexpected ``ValueError``/``TypeError`` of the builders; the message names
            only its type, since the builders may quote header values), or the files
            cannot be written. No output file is left behind.
    """
    from spinevcf.report.capture import build_secondary_capture, render_annotated_cpr
    from spinevcf.report.sr import build_sr
    from spinevcf.report.writer import write_outputs

    record = result.record
    source = volume.info.dataset
    sr = capture = None
    png = None
    if result.cpr is not None:
        png = render_annotated_cpr(result.cpr.image[0], record, pixel_mm=result.cpr.pixel_mm)
    if source is not None:
        try:
            sr = build_sr(record, source, referenced_sop_instance_uids=volume.info.sop_instance_uids)
            if png is not None:
                capture = build_secondary_capture(png, source)
        except (ValueError, TypeError) as exc:
            raise OutputError(f"could not build the DICOM outputs: {type(exc).__name__}") from exc
    return write_outputs(Path(out_dir), record, sr=sr, capture=capture, png=png)


def process_study(input_dir: Path | str, output_dir: Path | str, pipeline: Pipeline) -> PipelineResult:
    """Load the CT series of a study folder, run the pipeline and write the outputs."""
    from spinevcf.io.dicom import load_study

    t = time.perf_counter()
    # The localizer's in-plane block sums are made while the slices are decoded (same input).
    volume = load_study(Path(input_dir), block_sums_mm=pipeline.localizer_config.spacing_mm)
    load_s = time.perf_counter() - t
    result = pipeline.run(volume)
    result.timings_s = {"load": load_s, **result.timings_s}
    t = time.perf_counter()
    result.record.timings_s = dict(result.timings_s)
    write_study_outputs(output_dir, volume, result)
    result.timings_s["write"] = time.perf_counter() - t
    return result
