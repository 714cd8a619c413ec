"""The results schema shared by the app's ``results.json`` and the generator's ``truth.json``.

One schema serves both so that :mod:`spinevcf.evaluate` compares like with like.
Vertebrae are listed cranial to caudal. Keypoints are in LPS millimetres, in the
order of :data:`KEYPOINT_NAMES`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "LEVELS",
    "LEVEL_INDEX",
    "KEYPOINT_NAMES",
    "DEFORMITIES",
    "ASSESSMENTS",
    "LEVEL_STATUSES",
    "SCHEMA_VERSION",
    "VertebraRecord",
    "StudyRecord",
]

SCHEMA_VERSION = "1.2"

#: Vertebral levels spinevcf names, cranial to caudal (class indices of the detector).
LEVELS: tuple[str, ...] = (
    *(f"C{i}" for i in range(1, 8)),
    *(f"T{i}" for i in range(1, 13)),
    *(f"L{i}" for i in range(1, 6)),
)
LEVEL_INDEX: dict[str, int] = {name: i for i, name in enumerate(LEVELS)}

#: Order of the six keypoints of a vertebral body.
KEYPOINT_NAMES: tuple[str, ...] = (
    "anterior_superior",
    "middle_superior",
    "posterior_superior",
    "anterior_inferior",
    "middle_inferior",
    "posterior_inferior",
)

#: Deformity types (method-notes, Genant).
DEFORMITIES: tuple[str, ...] = ("none", "wedge", "biconcave", "crush")

#: Whether a detected body was measured and graded (``"assessed"``) or not, because the
#: image cannot support a finding (``"not_assessable"``: cut by the scan, next to metal,
#: implausible height with no disc beyond it; the reason is in ``assessment_reason``).
ASSESSMENTS: tuple[str, ...] = ("assessed", "not_assessable")

#: Whether a level name is supported by the anatomy in view (``"confident"``) or not
#: (``"uncertain"``: anchors absent or in disagreement with the detector's count).
LEVEL_STATUSES: tuple[str, ...] = ("confident", "uncertain")


@dataclass
class VertebraRecord:
    """One vertebral body: its level, keypoints, heights and grade.

    ``fracture_probability`` and ``detection_score`` are ``None`` in ground truth.
    A body that is detected but ``"not_assessable"`` (see :data:`ASSESSMENTS`) keeps its
    keypoints (where the detector put them) but has no heights, no grade
    (``genant_grade is None``), no fracture probability and deformity ``"none"``; it never
    counts towards the patient's findings.
    """

    label: str
    keypoints_lps_mm: list[list[float]]
    heights_mm: dict[str, float]
    genant_grade: int | None
    deformity: str
    center_lps_mm: list[float] = field(default_factory=list)
    fracture_probability: float | None = None
    detection_score: float | None = None
    height_reductions_pct: dict[str, float] | None = None
    cpr_keypoints_px: list[list[float]] | None = None
    assessment: str = "assessed"
    assessment_reason: str | None = None
    level_confidence: float | None = None
    level_status: str | None = None
    #: Where the posterior height reads taller than the neighbours allow, the height (mm) its
    #: wedge and biconcave shape were judged against instead (:func:`spinevcf.grading.grade_column`,
    #: ``tall_posterior``); ``None`` otherwise.
    posterior_height_limit_mm: float | None = None

    def __post_init__(self) -> None:
        if self.label not in LEVEL_INDEX:
            raise ValueError(f"label must be one of C1..L5, got {self.label!r}")
        kp = np.asarray(self.keypoints_lps_mm, dtype=np.float64)
        if kp.shape != (6, 3):
            raise ValueError(f"keypoints_lps_mm must be 6 x 3, got {kp.shape}")
        if self.deformity not in DEFORMITIES:
            raise ValueError(f"deformity must be one of {DEFORMITIES}, got {self.deformity!r}")
        if self.assessment not in ASSESSMENTS:
            raise ValueError(f"assessment must be one of {ASSESSMENTS}, got {self.assessment!r}")
        if self.assessment == "assessed":
            if self.genant_grade not in (0, 1, 2, 3):
                raise ValueError(f"genant_grade must be 0-3, got {self.genant_grade!r}")
        else:
            if self.genant_grade is not None or self.fracture_probability is not None:
                raise ValueError("a not-assessable vertebra has no genant_grade and no fracture_probability")
            if not self.assessment_reason:
                raise ValueError("a not-assessable vertebra needs its assessment_reason")
        if self.posterior_height_limit_mm is not None and not (
            self.assessment == "assessed" and self.posterior_height_limit_mm > 0.0
        ):
            raise ValueError("posterior_height_limit_mm must be positive, and only on an assessed vertebra")
        if self.level_status is not None and self.level_status not in LEVEL_STATUSES:
            raise ValueError(f"level_status must be one of {LEVEL_STATUSES}, got {self.level_status!r}")
        if self.level_confidence is not None and not 0.0 <= self.level_confidence <= 1.0:
            raise ValueError(f"level_confidence must be in [0, 1], got {self.level_confidence!r}")
        self.keypoints_lps_mm = kp.round(4).tolist()
        self.center_lps_mm = kp.mean(axis=0).round(4).tolist()

    @property
    def assessed(self) -> bool:
        """Whether the body was measured and graded."""
        return self.assessment == "assessed"

    @property
    def fractured(self) -> bool:
        """Whether the body is assessed and graded Genant 1 or more."""
        return self.genant_grade is not None and self.genant_grade >= 1

    @property
    def keypoints(self) -> np.ndarray:
        """Keypoints as a (6, 3) float array."""
        return np.asarray(self.keypoints_lps_mm, dtype=np.float64)

    @property
    def center(self) -> np.ndarray:
        """Centre (mean of the six keypoints) as a (3,) array."""
        return np.asarray(self.center_lps_mm, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; optional fields that are ``None`` are omitted (``genant_grade`` is
        always written: ``null`` for a body that is not assessable)."""
        return {k: v for k, v in asdict(self).items() if v is not None or k == "genant_grade"}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VertebraRecord:
        """Inverse of :meth:`to_dict` (``center_lps_mm`` is recomputed)."""
        known = {f for f in cls.__dataclass_fields__}  # noqa: C416
        return cls(**{k: v for k, v in d.items() if k in known and k != "center_lps_mm"})


@dataclass
class StudyRecord:
    """A study's findings (results.json) or ground truth (truth.json)."""

    study_instance_uid: str
    series_instance_uid: str
    vertebrae: list[VertebraRecord]
    patient_fractured: bool | None = None
    patient_fracture_probability: float | None = None
    model_version: str | None = None
    timings_s: dict[str, float] | None = None
    status: str = "ok"
    message: str | None = None
    extra: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict in the shared schema."""
        out: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        for k in (
            "study_instance_uid",
            "series_instance_uid",
            "model_version",
            "status",
            "message",
            "patient_fractured",
            "patient_fracture_probability",
        ):
            v = getattr(self, k)
            if v is not None:
                out[k] = v
        out["vertebrae"] = [v.to_dict() for v in self.vertebrae]
        if self.timings_s is not None:
            out["timings_s"] = {k: round(float(v), 4) for k, v in self.timings_s.items()}
        if self.extra:
            out["extra"] = self.extra
        return out

    def to_json(self) -> str:
        """Serialize as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StudyRecord:
        """Parse a dict in the shared schema."""
        return cls(
            study_instance_uid=str(d.get("study_instance_uid", "")),
            series_instance_uid=str(d.get("series_instance_uid", "")),
            vertebrae=[VertebraRecord.from_dict(v) for v in d.get("vertebrae", [])],
            patient_fractured=d.get("patient_fractured"),
            patient_fracture_probability=d.get("patient_fracture_probability"),
            model_version=d.get("model_version"),
            timings_s=d.get("timings_s"),
            status=d.get("status", "ok"),
            message=d.get("message"),
            extra=d.get("extra"),
        )

    @classmethod
    def load(cls, path: str | Path) -> StudyRecord:
        """Read a results.json / truth.json file."""
        return cls.from_dict(json.loads(Path(path).read_text()))
