"""Annotated straightened-spine picture: PNG and DICOM Secondary Capture.

The picture is the mid-sagittal channel of the CPR (``CPRImage.image[0]``,
cranial at the top, anterior on the left) in a bone window, enlarged, with,
for every vertebral body, its six keypoints as dots, its three heights
(Ha, Hm, Hp) as lines coloured by Genant grade, and a label beside it with the
level, heights in mm, grade, deformity and fracture probability. A body that is
detected but not assessable (cut by the scan, next to metal) is drawn as a grey
outline with the reason and no measurement; an uncertain level name is marked
"?" with its confidence. A header
states the software version and that the picture is for research use, not
for diagnosis, and shows the colour legend. No patient identifier is drawn.

The Secondary Capture is written with pydicom alone (:func:`build_secondary_capture`, on
:mod:`spinevcf.report.header`): the file highdicom's ``SCImage`` wrote before issue 15,
apart from UIDs, times and the library named (compared byte for byte in
``tests/report/test_capture_reference.py``).
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset, FileDataset
from pydicom.uid import ImplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid
from pydicom.valuerep import DA, TM

from spinevcf._version import __version__
from spinevcf.report import header
from spinevcf.schema import StudyRecord, VertebraRecord

__all__ = [
    "BONE_WINDOW",
    "GRADE_COLORS",
    "GRADE_NAMES",
    "NOT_ASSESSABLE_COLOR",
    "SC_SERIES_NUMBER",
    "SC_SERIES_DESCRIPTION",
    "SC_BODY_PART",
    "render_annotated_cpr",
    "build_secondary_capture",
    "save_png",
]

logger = logging.getLogger(__name__)

#: Default (centre, width) in HU: a bone window that keeps cortex and cancellous bone apart.
BONE_WINDOW: Final = (400.0, 1800.0)
#: RGB colour of a vertebra's height lines per Genant grade.
GRADE_COLORS: Final = {0: (40, 200, 70), 1: (250, 230, 40), 2: (255, 140, 0), 3: (235, 30, 30)}
GRADE_NAMES: Final = {0: "normal", 1: "mild", 2: "moderate", 3: "severe"}
#: Colour of a detected body that is not assessable (no finding stated: grey).
NOT_ASSESSABLE_COLOR: Final = (150, 150, 150)
#: Short picture text per ``VertebraRecord.assessment_reason``.
REASON_SHORT: Final = {
    "cut_by_scan_range": "cut by scan range",
    "cut_by_field_of_view": "cut by field of view",
    "next_to_metal": "next to metal",
    "implausible_height": "implausible height",
    "outside_reformatted_image": "beyond the image",
    "unstable_measurement": "endplates not resolved",
}
SC_SERIES_NUMBER: Final = 9902
SC_SERIES_DESCRIPTION: Final = "spinevcf annotated spine (research use)"
#: Body Part Examined of the capture (PS3.16 Annex L defined term).
SC_BODY_PART: Final = "SPINE"
CAPTION: Final = "research use only, not for diagnosis"

_KEYPOINT_COLOR: Final = (0, 220, 255)
_TEXT_COLOR: Final = (235, 235, 235)
_MUTED_TEXT: Final = (170, 170, 170)
_BACKGROUND: Final = (16, 16, 16)
_FONT_FILES: Final = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
)
_MIN_FONT_PX: Final = 10
#: zlib level of the PNG: 3 is about 2.5x faster than Pillow's default 6 and, on the
#: annotated CPR, gives a slightly smaller file (the pixels are the same; PNG is lossless).
PNG_COMPRESS_LEVEL: Final = 3


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans when installed, else Pillow's scalable default font (loaded once per size)."""
    for candidate in _FONT_FILES:
        if Path(candidate).is_file():
            return ImageFont.truetype(candidate, size)
    return ImageFont.load_default(size=size)


def _window(image: npt.NDArray[np.floating], center: float, width: float) -> npt.NDArray[np.uint8]:
    lo = center - width / 2.0
    scaled = (np.nan_to_num(image.astype(np.float64), nan=lo) - lo) / width
    return (np.clip(scaled, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _level_text(v: VertebraRecord) -> str:
    """Level name, with "?" and the confidence when the name is uncertain."""
    if v.level_status == "uncertain":
        conf = "" if v.level_confidence is None else f" {v.level_confidence:.2f}"
        return f"{v.label}? (level uncertain{conf})"
    return v.label


def _colour(v: VertebraRecord) -> tuple[int, int, int]:
    return GRADE_COLORS[v.genant_grade] if v.genant_grade is not None else NOT_ASSESSABLE_COLOR


def _label_lines(v: VertebraRecord) -> list[str]:
    if not v.assessed:
        reason = REASON_SHORT.get(v.assessment_reason or "", v.assessment_reason or "")
        return [f"{_level_text(v)}   not assessable", f"({reason})"]
    h = v.heights_mm
    grade = f"G{v.genant_grade} {GRADE_NAMES[v.genant_grade]}"
    if v.fractured and v.deformity != "none":
        grade += f", {v.deformity}"
    prob = "" if v.fracture_probability is None else f"   p={v.fracture_probability:.2f}"
    # A posterior reading taller than the neighbours allow: the height its shape was graded at.
    limit = "" if v.posterior_height_limit_mm is None else f" (graded at {v.posterior_height_limit_mm:.1f})"
    return [
        f"{_level_text(v)}   {grade}{prob}",
        f"Ha {h.get('anterior', float('nan')):.1f}  Hm {h.get('middle', float('nan')):.1f}  "
        f"Hp {h.get('posterior', float('nan')):.1f} mm{limit}",
    ]


def render_annotated_cpr(
    cpr_image: npt.ArrayLike,
    record: StudyRecord,
    *,
    pixel_mm: float = 1.0,
    window: tuple[float, float] = BONE_WINDOW,
    scale: int = 2,
    font_px: int = 15,
) -> npt.NDArray[np.uint8]:
    """Draw the findings of a study on its straightened (CPR) mid-sagittal image.

    Args:
        cpr_image: (H, W) CPR image in HU (channel 0 of ``CPRImage.image``).
        record: findings; each vertebra's ``cpr_keypoints_px`` gives its six
            keypoints as (row, col) pixels of ``cpr_image``. Vertebrae without
            them are listed in the header as not drawn.
        pixel_mm: CPR pixel size in mm (for the 10 mm scale bar).
        window: (centre, width) of the grey-level window in HU.
        scale: integer enlargement of the CPR image.
        font_px: text height in output pixels.

    Returns:
        (H', W', 3) uint8 RGB picture: header on top, enlarged CPR on the left,
        labels on the right.

    Raises:
        ValueError: wrong image shape, non-positive scale, window width or pixel size.
    """
    img = np.asarray(cpr_image)
    if img.ndim != 2 or min(img.shape) < 1:
        raise ValueError(f"cpr_image must be a non-empty 2D (H, W) array, got shape {img.shape}")
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    if window[1] <= 0:
        raise ValueError(f"window width must be positive, got {window[1]!r}")
    if not pixel_mm > 0:
        raise ValueError(f"pixel_mm must be positive, got {pixel_mm!r}")
    scale = int(scale)
    font = _font(max(font_px, _MIN_FONT_PX))
    small = _font(max(font_px - 2, _MIN_FONT_PX))
    line_h = int(font_px * 1.35)

    gray = Image.fromarray(_window(img, *window), mode="L").resize(
        (img.shape[1] * scale, img.shape[0] * scale), Image.Resampling.BICUBIC
    )
    img_w, img_h = gray.size
    header_h = 3 * line_h + 10
    drawn = [v for v in record.vertebrae if v.cpr_keypoints_px is not None]
    # The label panel is as wide as its longest line (a long deformity name must not be cut).
    widest = max((font.getlength(line) for v in drawn for line in _label_lines(v)), default=0.0)
    panel_w = max(int(font_px * 19), int(np.ceil(widest)) + 16)
    skipped = len(record.vertebrae) - len(drawn)
    label_block = 2 * line_h + 6
    canvas_h = header_h + max(img_h, label_block * len(drawn) + 10)
    canvas = Image.new("RGB", (img_w + panel_w, canvas_h), _BACKGROUND)
    canvas.paste(gray.convert("RGB"), (0, header_h))
    draw = ImageDraw.Draw(canvas)

    # Header: version and caption, then the colour legend.
    draw.text((6, 4), f"spinevcf {__version__} \u2014 {CAPTION}", fill=_TEXT_COLOR, font=font)
    x = 6
    for grade, colour in GRADE_COLORS.items():
        y = 4 + line_h + 3
        draw.rectangle([x, y + 2, x + font_px - 4, y + font_px - 2], fill=colour)
        text = f"G{grade} {GRADE_NAMES[grade]}"
        draw.text((x + font_px, y), text, fill=_TEXT_COLOR, font=small)
        x += font_px + int(draw.textlength(text, font=small)) + 14
    draw.rectangle([x, y + 2, x + font_px - 4, y + font_px - 2], fill=NOT_ASSESSABLE_COLOR)
    draw.text((x + font_px, y), "not assessable", fill=_TEXT_COLOR, font=small)
    n_not = sum(1 for v in record.vertebrae if not v.assessed)
    status = f"{len(drawn)} vertebral bodies"
    if n_not:
        status += f" ({n_not} not assessable)"
    if not record.vertebrae:
        status = "No vertebral body detected"
    if skipped:
        status += f"; {skipped} without CPR keypoints not drawn"
    if record.patient_fracture_probability is not None:
        status += f"   patient p={record.patient_fracture_probability:.2f}"
    draw.text((6, 4 + 2 * line_h + 4), status, fill=_MUTED_TEXT, font=small)

    # Scale bar (10 mm) in the image's lower left corner.
    bar = 10.0 / pixel_mm * scale
    y_bar = header_h + img_h - 12
    draw.line([(8, y_bar), (8 + bar, y_bar)], fill=_TEXT_COLOR, width=3)
    draw.text((12 + bar, y_bar - font_px // 2 - 2), "10 mm", fill=_TEXT_COLOR, font=small)

    def to_canvas(rc: Sequence[float]) -> tuple[float, float]:
        return ((rc[1] + 0.5) * scale - 0.5, (rc[0] + 0.5) * scale - 0.5 + header_h)

    next_free = float(header_h + 4)
    dot = max(2, scale + 1)
    for v in sorted(drawn, key=lambda v: float(np.mean(np.asarray(v.cpr_keypoints_px)[:, 0]))):
        pts = np.asarray(v.cpr_keypoints_px, dtype=np.float64)
        if pts.shape != (6, 2):
            raise ValueError(f"vertebra {v.label}: cpr_keypoints_px must be 6 x 2, got {pts.shape}")
        colour = _colour(v)
        xy = [to_canvas(p) for p in pts]
        if v.assessed:
            for k in range(3):  # Ha, Hm, Hp: superior k -> inferior k + 3
                draw.line([xy[k], xy[k + 3]], fill=colour, width=max(2, scale))
            for px, py in xy:
                draw.ellipse(
                    [px - dot, py - dot, px + dot, py + dot], fill=_KEYPOINT_COLOR, outline=(0, 0, 0)
                )
        else:  # no measurement: a grey outline where the body was detected, no keypoints
            outline = [xy[0], xy[2], xy[5], xy[3]]
            draw.line([*outline, outline[0]], fill=colour, width=1)
        # Label beside the body, pushed down when it would overlap the previous one.
        centre_y = float(np.mean([p[1] for p in xy]))
        top = max(centre_y - label_block / 2.0, next_free)
        next_free = top + label_block
        right_x = max(p[0] for p in xy) + 4
        draw.line([(right_x, centre_y), (img_w + 4, top + line_h / 2.0)], fill=colour, width=1)
        for i, line in enumerate(_label_lines(v)):
            draw.text((img_w + 8, top + i * line_h), line, fill=colour if i == 0 else _TEXT_COLOR, font=font)
    logger.debug("rendered annotated CPR: %d vertebrae drawn, %d skipped", len(drawn), skipped)
    return np.asarray(canvas, dtype=np.uint8)


def save_png(rgb: npt.ArrayLike, path: str | Path) -> Path:
    """Write an (H, W, 3) uint8 RGB array as a PNG file and return its path.

    Raises:
        ValueError: the array is not (H, W, 3) uint8.
    """
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"rgb must be an (H, W, 3) uint8 array, got {arr.shape} {arr.dtype}")
    path = Path(path)
    Image.fromarray(arr, mode="RGB").save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return path


def build_secondary_capture(
    rgb: npt.ArrayLike,
    source: Dataset,
    *,
    series_number: int = SC_SERIES_NUMBER,
    instance_number: int = 1,
    manufacturer: str = "spinevcf",
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
) -> FileDataset:
    """Wrap the rendered picture in a DICOM Secondary Capture Image (new series, same study).

    Patient and study attributes are copied from ``source``
    (:func:`spinevcf.report.header.new_instance`). Conversion Type is WSD (workstation),
    photometric interpretation RGB (8 bits, interleaved), Burned In Annotation YES, Implicit
    VR Little Endian. The patient orientation is (P, F): columns run anterior to posterior,
    rows cranial to caudal.

    Args:
        rgb: (H, W, 3) uint8 picture from :func:`render_annotated_cpr`.
        source: one CT slice header of the evaluated series.
        series_number: Series Number of the new series.
        instance_number: Instance Number of the image.
        manufacturer: Manufacturer of the derived object.
        series_instance_uid: UID of the new series (generated when ``None``).
        sop_instance_uid: UID of the image (generated when ``None``).

    Raises:
        TypeError: ``source`` is not a pydicom Dataset.
        ValueError: the array is not (H, W, 3) uint8 or ``source`` lacks study identifiers.
    """
    if not isinstance(source, Dataset):
        raise TypeError(f"source must be a pydicom Dataset, got {type(source).__name__}")
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"rgb must be an (H, W, 3) uint8 array, got {arr.shape} {arr.dtype}")
    if "StudyInstanceUID" not in source:
        raise ValueError("source header lacks StudyInstanceUID")
    now = datetime.datetime.now()
    sc = header.new_instance(
        source,
        sop_class_uid=SecondaryCaptureImageStorage,
        sop_instance_uid=sop_instance_uid or generate_uid(),
        transfer_syntax_uid=ImplicitVRLittleEndian,
        series_instance_uid=series_instance_uid or generate_uid(),
        series_number=series_number,
        instance_number=instance_number,
        modality="OT",
        manufacturer=manufacturer,
        series_description=SC_SERIES_DESCRIPTION,
        now=now,
    )
    # General Image and SC Equipment / SC Image modules.
    sc.PatientOrientation = ["P", "F"]
    sc.ImageType = ["DERIVED", "SECONDARY", "OTHER"]
    sc.ConversionType = "WSD"
    sc.DateOfSecondaryCapture = DA(now.date())
    sc.TimeOfSecondaryCapture = TM(now.time())
    sc.BurnedInAnnotation = "YES"
    # The picture shows the spine whatever the source's Body Part Examined; an unpaired
    # part also makes Laterality (type 2C) correctly absent.
    sc.BodyPartExamined = SC_BODY_PART
    sc.ImageComments = f"spinevcf {__version__}: {CAPTION}"
    # Image Pixel module: 8-bit RGB, colour-by-pixel.
    sc.Rows, sc.Columns = int(arr.shape[0]), int(arr.shape[1])
    sc.SamplesPerPixel = 3
    sc.PhotometricInterpretation = "RGB"
    sc.PlanarConfiguration = 0
    sc.BitsAllocated = 8
    sc.BitsStored = 8
    sc.HighBit = 7
    sc.PixelRepresentation = 0
    sc.PixelData = np.ascontiguousarray(arr).tobytes()
    return sc
