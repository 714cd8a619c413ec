"""Anatomical and radiological constants of the synthetic phantom.

All sizes are in millimetres, all densities in Hounsfield units. Vertebral body sizes are
approximate adult means compiled from classic morphometry (Panjabi et al. 1991 for the
cervical, thoracic and lumbar spine; Zhou et al. 2000 for lumbar CT morphometry) rounded
to half millimetres; they are scaled per patient (see :mod:`spinevcf.synth.spine`).
HU ranges follow common CT reference values (fat -120..-60, muscle 35..60, lung
-900..-700, trabecular bone of the vertebral body ~250 young / ~100 osteoporotic).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = [
    "BodySize",
    "BODY_SIZES",
    "PHYSIOLOGICAL_WEDGE",
    "DISC_HEIGHT_BELOW",
    "CORTEX_MM",
    "ENDPLATE_CORTEX_MM",
    "CORTICAL_HU",
    "BODY_SHELL_FRACTION",
    "TRABECULAR_HU_BY_DENSITY",
    "DISC_HU",
    "FAT_HU",
    "MUSCLE_HU",
    "LUNG_HU",
    "AIR_HU",
    "CSF_HU",
    "BLOOD_HU",
    "CONTRAST_BLOOD_HU",
    "LIVER_HU",
    "METAL_HU",
    "SCANNER_MAX_HU",
    "FRACTURE_LEVEL_WEIGHTS",
    "TORSO_BY_LEVEL",
    "KEYPOINT_INSET_MM",
    "RibGeometry",
    "AnatomyFamily",
    "DEFAULT_FAMILY",
    "HELDOUT_FAMILY",
    "FAMILY_TABLES",
    "SACRALISED_JUNCTION_MM",
]


@dataclass(frozen=True)
class BodySize:
    """Mean adult vertebral body size of one level.

    Attributes:
        height_post: posterior body height (mm).
        width: lateral width of the endplate (mm).
        depth: antero-posterior depth of the endplate in the mid-sagittal plane (mm).
    """

    height_post: float
    width: float
    depth: float


#: Vertebral body sizes C2..L5 (C1, the atlas, has no body and is modelled as a ring).
BODY_SIZES: dict[str, BodySize] = {
    "C2": BodySize(15.0, 16.0, 15.0),
    "C3": BodySize(14.0, 16.5, 15.5),
    "C4": BodySize(14.0, 17.0, 16.0),
    "C5": BodySize(14.0, 18.0, 16.0),
    "C6": BodySize(14.0, 20.0, 16.5),
    "C7": BodySize(15.0, 23.0, 17.0),
    "T1": BodySize(16.5, 26.0, 17.5),
    "T2": BodySize(17.0, 27.0, 18.5),
    "T3": BodySize(17.5, 28.0, 20.0),
    "T4": BodySize(18.0, 29.0, 22.0),
    "T5": BodySize(18.5, 30.0, 24.0),
    "T6": BodySize(19.0, 31.0, 25.5),
    "T7": BodySize(19.5, 32.5, 27.0),
    "T8": BodySize(20.0, 34.0, 28.0),
    "T9": BodySize(20.5, 35.5, 29.0),
    "T10": BodySize(21.5, 37.5, 30.0),
    "T11": BodySize(22.5, 40.0, 31.0),
    "T12": BodySize(23.5, 42.0, 32.0),
    "L1": BodySize(25.0, 44.0, 33.0),
    "L2": BodySize(25.8, 46.0, 34.0),
    "L3": BodySize(26.3, 48.0, 35.0),
    "L4": BodySize(26.5, 50.0, 35.5),
    "L5": BodySize(26.0, 52.0, 35.5),
}

#: Physiological ratio anterior/posterior body height (Ha/Hp) of normal vertebrae:
#: anterior wedging of a few percent in the thoracic spine, posterior wedging at L4/L5.
PHYSIOLOGICAL_WEDGE: dict[str, float] = {
    **{f"C{i}": 1.0 for i in range(2, 8)},
    "T1": 0.97, "T2": 0.97, "T3": 0.96, "T4": 0.95, "T5": 0.95, "T6": 0.94,
    "T7": 0.93, "T8": 0.93, "T9": 0.94, "T10": 0.95, "T11": 0.95, "T12": 0.96,
    "L1": 0.97, "L2": 0.99, "L3": 1.01, "L4": 1.04, "L5": 1.10,
}  # fmt: skip

#: Central height of the intervertebral disc below each level (mm); "L5" is L5-S1.
DISC_HEIGHT_BELOW: dict[str, float] = {
    "C1": 0.0, "C2": 4.5, "C3": 4.5, "C4": 4.5, "C5": 4.5, "C6": 4.5, "C7": 4.0,
    "T1": 3.5, "T2": 3.5, "T3": 3.5, "T4": 3.8, "T5": 4.0, "T6": 4.3, "T7": 4.6,
    "T8": 4.9, "T9": 5.2, "T10": 5.6, "T11": 6.0, "T12": 7.0,
    "L1": 8.5, "L2": 9.5, "L3": 10.5, "L4": 11.0, "L5": 10.0,
}  # fmt: skip

#: Thickness of the cortical shell of the vertebral body wall (mm).
CORTEX_MM: float = 1.0
#: Thickness of the cortical endplate (mm).
ENDPLATE_CORTEX_MM: float = 1.0
#: Range of cortical bone HU (as rendered at full resolution, before blur).
CORTICAL_HU: tuple[float, float] = (700.0, 1200.0)
#: Range (per patient) of the vertebral body's shell density as a fraction of the way from
#: trabecular to cortical HU (see ``Vertebra.shell_fraction``). Generator 1.1 rendered
#: solid cortex (1.0): walls and endplates at 550-1000 HU after blur, against 200-320 HU
#: measured on the reference chest CT (docs/synthetic-data.md); the range reaches up to
#: 0.6 for thin-slice sharp-kernel scans and dense young bone.
BODY_SHELL_FRACTION: tuple[float, float] = (0.15, 0.6)
#: Trabecular bone HU ranges by bone-density class (healthy, osteopenic, osteoporotic).
TRABECULAR_HU_BY_DENSITY: dict[str, tuple[float, float]] = {
    "healthy": (170.0, 300.0),
    "osteopenic": (100.0, 170.0),
    "osteoporotic": (20.0, 100.0),
}
#: Intervertebral disc HU range (annulus/nucleus average).
DISC_HU: tuple[float, float] = (75.0, 120.0)
#: Subcutaneous and visceral fat.
FAT_HU: tuple[float, float] = (-115.0, -85.0)
#: Skeletal muscle.
MUSCLE_HU: tuple[float, float] = (20.0, 55.0)
#: Aerated lung parenchyma.
LUNG_HU: tuple[float, float] = (-880.0, -800.0)
#: Air.
AIR_HU: float = -1000.0
#: Cerebrospinal fluid / spinal cord average.
CSF_HU: tuple[float, float] = (10.0, 30.0)
#: Unenhanced blood.
BLOOD_HU: tuple[float, float] = (35.0, 50.0)
#: Contrast-enhanced blood (arterial/portal phase).
CONTRAST_BLOOD_HU: tuple[float, float] = (150.0, 350.0)
#: Liver parenchyma, unenhanced.
LIVER_HU: tuple[float, float] = (45.0, 65.0)
#: Titanium / steel implants before scanner clipping.
METAL_HU: float = 6000.0
#: Largest HU a 12-bit scanner stores (values above are clipped).
SCANNER_MAX_HU: float = 3071.0

#: Relative frequency of osteoporotic fractures by level (thoracolumbar junction and
#: mid-thoracic peaks); levels not listed never fracture in the generator.
FRACTURE_LEVEL_WEIGHTS: dict[str, float] = {
    "T1": 0.1, "T2": 0.1, "T3": 0.2, "T4": 0.5, "T5": 0.7, "T6": 0.9, "T7": 1.2,
    "T8": 1.3, "T9": 1.0, "T10": 0.9, "T11": 1.3, "T12": 2.0,
    "L1": 2.0, "L2": 1.3, "L3": 1.0, "L4": 0.8, "L5": 0.5,
}  # fmt: skip

#: Torso half-width, half-depth and vertebral-body-centre-to-back distance (mm, lean adult,
#: without subcutaneous fat) at anchor level indices (0 = C1 ... 23 = L5, 24 = S1,
#: 26 = hip joints). Interpolated linearly between anchors.
TORSO_BY_LEVEL: tuple[tuple[float, float, float, float], ...] = (
    # level index, half-width, half-depth, body-centre-to-back
    (-3.0, 70.0, 85.0, 95.0),  # head base
    (0.0, 55.0, 60.0, 70.0),  # C1 (neck)
    (4.0, 55.0, 60.0, 70.0),
    (5.5, 140.0, 85.0, 78.0),  # shoulders start
    (7.0, 175.0, 100.0, 82.0),  # T1, shoulders
    (9.0, 160.0, 110.0, 84.0),
    (13.0, 145.0, 118.0, 82.0),  # mid chest
    (17.0, 140.0, 115.0, 82.0),
    (20.0, 135.0, 105.0, 86.0),  # L2, waist
    (23.0, 145.0, 105.0, 92.0),  # L5
    (25.0, 160.0, 110.0, 95.0),  # sacrum / iliac crest
    (28.0, 165.0, 100.0, 85.0),  # hips
)

#: Distance (mm) of the anterior and posterior keypoints inside the body's anterior and
#: posterior walls, so that the vertical through them crosses the endplate cortex and
#: not the wall cortex (annotators place them at the corners).
KEYPOINT_INSET_MM: float = 2.0


# ---------------------------------------------------------------------------------------
# Anatomy families
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RibGeometry:
    """Rib shape of one anatomy family (see :func:`spinevcf.synth.body.sample_body`).

    Attributes:
        direction_y: posterior component of the rib's first segment (head -> tubercle)
            relative to the lateral one (the rib angle seen from above).
        half_axes: (vertical, in-plane) semi-axes of the rib shaft (mm).
        head_offset: where the rib head sits beside the body: (mm lateral of the body's
            side wall, fraction of the half-depth in front of the posterior wall, fraction
            of the posterior height above the body centre).
        head_scale: radius of the rib head relative to the shaft (1: same as the shaft).
        end_bone_12: range of the angle (rad, along the torso ellipse) where the 12th
            rib's bone ends; one value is drawn per patient (how far it reaches).
    """

    direction_y: float
    half_axes: tuple[float, float]
    head_offset: tuple[float, float, float]
    head_scale: float
    end_bone_12: tuple[float, float]


@dataclass(frozen=True)
class AnatomyFamily:
    """One set of normative anatomy tables of the generator.

    Attributes:
        name: family name (:data:`spinevcf.synth.config.FAMILIES`).
        body_sizes: mean body size by level; may also hold "S1", the mobile S1 of a
            lumbarised sacrum.
        wedge: physiological Ha/Hp by level.
        disc_height_below: disc height below each level (mm).
        cortex_mm: thickness of the body's wall shell (mm).
        endplate_cortex_mm: thickness of the endplate shell (mm).
        shell_fraction: per-patient range of the shell density (see ``BODY_SHELL_FRACTION``).
        concavity: per-vertebra range of the normal central endplate concavity (mm, before
            the patient scale); a family may offer several ranges, one drawn per patient.
        rim_round_mm: per-patient range of the rounding of the endplate rims (mm of height
            lost at the rim; 0: sharp corners).
        notch_fraction: depth of the posterior body concavity as a fraction of the
            half-depth, thoracic/lumbar.
        ribs: rib geometry.
        p_11_ribs: probability of 11 rib pairs (no rib on T12).
        p_13_ribs: probability of 13 rib pairs (a rib on L1).
        p_lumbarised_s1: probability of a lumbarised S1 (a sixth mobile lumbar-type body).
        p_sacralised_l5: probability of a sacralised L5 (fused to the sacrum, broad
            transverse processes).
    """

    name: str
    body_sizes: dict[str, BodySize]
    wedge: dict[str, float]
    disc_height_below: dict[str, float]
    cortex_mm: float
    endplate_cortex_mm: float
    shell_fraction: tuple[float, float]
    concavity: tuple[tuple[float, float], ...]
    rim_round_mm: tuple[float, float]
    notch_fraction: float
    ribs: RibGeometry
    p_11_ribs: float = 0.0
    p_13_ribs: float = 0.0
    p_lumbarised_s1: float = 0.0
    p_sacralised_l5: float = 0.0


#: The default family: the tables above (training, calibration, model choice, ``make evaluate``).
DEFAULT_FAMILY = AnatomyFamily(
    name="default",
    body_sizes=BODY_SIZES,
    wedge=PHYSIOLOGICAL_WEDGE,
    disc_height_below=DISC_HEIGHT_BELOW,
    cortex_mm=CORTEX_MM,
    endplate_cortex_mm=ENDPLATE_CORTEX_MM,
    shell_fraction=BODY_SHELL_FRACTION,
    concavity=((0.4, 1.1),),
    rim_round_mm=(0.0, 0.0),
    notch_fraction=0.12,
    ribs=RibGeometry(
        direction_y=0.55,
        half_axes=(5.5, 3.0),
        head_offset=(2.0, 0.3, 0.45),
        head_scale=1.0,
        end_bone_12=(1.35, 1.35),
    ),
)

#: Held-out body sizes: wider and shallower thoracic bodies, a larger T12 -> L1 step,
#: taller lumbar bodies (about +6 %), and the mobile S1 of a lumbarised sacrum.
HELDOUT_BODY_SIZES: dict[str, BodySize] = {
    "C2": BodySize(15.5, 15.5, 15.5),
    "C3": BodySize(13.5, 17.0, 15.0),
    "C4": BodySize(13.5, 17.5, 15.5),
    "C5": BodySize(13.5, 18.5, 15.5),
    "C6": BodySize(13.5, 20.5, 16.0),
    "C7": BodySize(14.5, 24.0, 16.5),
    "T1": BodySize(16.0, 27.0, 16.5),
    "T2": BodySize(16.5, 28.0, 17.5),
    "T3": BodySize(17.0, 29.5, 19.0),
    "T4": BodySize(17.5, 30.5, 21.0),
    "T5": BodySize(18.0, 31.5, 23.0),
    "T6": BodySize(18.5, 32.5, 24.5),
    "T7": BodySize(19.0, 34.0, 26.0),
    "T8": BodySize(19.5, 35.5, 27.0),
    "T9": BodySize(20.0, 37.0, 28.0),
    "T10": BodySize(21.0, 39.0, 29.0),
    "T11": BodySize(22.0, 41.0, 30.0),
    "T12": BodySize(23.0, 43.0, 31.0),
    "L1": BodySize(26.5, 45.5, 33.5),
    "L2": BodySize(27.5, 47.5, 34.5),
    "L3": BodySize(28.0, 49.5, 35.5),
    "L4": BodySize(28.0, 51.5, 36.0),
    "L5": BodySize(27.0, 53.0, 35.5),
    "S1": BodySize(25.5, 52.0, 35.0),
}

#: Held-out physiological wedging: a little more thoracic kyphotic wedging, stronger L5.
HELDOUT_WEDGE: dict[str, float] = {
    **{f"C{i}": 1.0 for i in range(2, 8)},
    "T1": 0.96, "T2": 0.96, "T3": 0.95, "T4": 0.94, "T5": 0.93, "T6": 0.92,
    "T7": 0.91, "T8": 0.91, "T9": 0.92, "T10": 0.94, "T11": 0.95, "T12": 0.97,
    "L1": 0.98, "L2": 1.0, "L3": 1.02, "L4": 1.06, "L5": 1.13, "S1": 1.12,
}  # fmt: skip

#: Held-out disc heights: thinner upper thoracic, taller lumbar discs; "S1" is the disc
#: below a lumbarised S1.
HELDOUT_DISC_HEIGHT_BELOW: dict[str, float] = {
    "C1": 0.0, "C2": 5.0, "C3": 5.0, "C4": 5.0, "C5": 5.0, "C6": 5.0, "C7": 4.5,
    "T1": 3.0, "T2": 3.0, "T3": 3.2, "T4": 3.5, "T5": 3.8, "T6": 4.1, "T7": 4.4,
    "T8": 4.8, "T9": 5.2, "T10": 5.8, "T11": 6.4, "T12": 7.8,
    "L1": 9.0, "L2": 10.5, "L3": 11.5, "L4": 12.0, "L5": 11.0, "S1": 7.5,
}  # fmt: skip

#: The held-out family: never used for training, calibration or model choice.
HELDOUT_FAMILY = AnatomyFamily(
    name="heldout",
    body_sizes=HELDOUT_BODY_SIZES,
    wedge=HELDOUT_WEDGE,
    disc_height_below=HELDOUT_DISC_HEIGHT_BELOW,
    cortex_mm=1.5,
    endplate_cortex_mm=1.4,
    shell_fraction=(0.25, 0.7),
    concavity=((0.15, 0.5), (0.9, 1.5)),  # flat or deep endplates
    rim_round_mm=(1.0, 2.5),
    notch_fraction=0.07,
    ribs=RibGeometry(
        direction_y=0.42,
        half_axes=(6.5, 3.6),
        head_offset=(3.5, 0.4, 0.5),
        head_scale=1.35,
        end_bone_12=(1.05, 1.75),
    ),
    p_11_ribs=0.05,
    p_13_ribs=0.05,
    p_lumbarised_s1=0.05,
    p_sacralised_l5=0.05,
)

#: Prevalence of each transitional variant in the ``"transitional"`` validation family: far
#: above the population's (about 5 % each, docs/levels.md) so that a set of 40 studies holds
#: enough of them to show how the level naming behaves where the ribs or the sacrum count wrong.
TRANSITIONAL_VALIDATION_RATE = 0.15

#: The default anatomy with transitional variants (11 or 13 rib pairs, lumbarised S1,
#: sacralised L5) at :data:`TRANSITIONAL_VALIDATION_RATE` each: validation of the level
#: naming's handling of transitional anatomy without touching the held-out family. A mobile
#: S1 (lumbarised sacrum) there is a slightly smaller L5 (as the held-out family's S1 against
#: its L5), lordotic like L5, with a thinner disc below.
TRANSITIONAL_FAMILY = replace(
    DEFAULT_FAMILY,
    name="transitional",
    body_sizes={**BODY_SIZES, "S1": BodySize(24.5, 51.0, 35.0)},
    wedge={**PHYSIOLOGICAL_WEDGE, "S1": PHYSIOLOGICAL_WEDGE["L5"]},
    disc_height_below={**DISC_HEIGHT_BELOW, "S1": 7.0},
    p_11_ribs=TRANSITIONAL_VALIDATION_RATE,
    p_13_ribs=TRANSITIONAL_VALIDATION_RATE,
    p_lumbarised_s1=TRANSITIONAL_VALIDATION_RATE,
    p_sacralised_l5=TRANSITIONAL_VALIDATION_RATE,
)

#: Anatomy families by name.
FAMILY_TABLES: dict[str, AnatomyFamily] = {
    "default": DEFAULT_FAMILY,
    "heldout": HELDOUT_FAMILY,
    "transitional": TRANSITIONAL_FAMILY,
}
#: Height (mm) of the fused L5-S1 junction of a sacralised L5 (a bony bridge, no disc).
SACRALISED_JUNCTION_MM: tuple[float, float] = (1.0, 2.0)
