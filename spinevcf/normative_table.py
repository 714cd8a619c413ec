"""Normal vertebral shape ratios by level (generated: do not edit by hand).

Written by ``python scripts/normative_morphometry.py --write``; see that script and
``docs/normative-morphometry.md`` for the derivation and the sources. Entries with ``n > 0``
are derived from the anchor-free-genant expert annotations (Zakharov et al., Medical Image
Analysis 2023, doi:10.1016/j.media.2022.102646; CC BY-NC 4.0); ``n == 0`` marks a published
value or an estimate, named in ``source``.
"""

from typing import Any

PROVENANCE: dict[str, Any] = {
    "data": "anchor-free-genant annotations (Zakharov et al., Med Image Anal 2023; Pisov et al., MICCAI 2020), 100 MosMed CTLungCa-500 chest CTs, CC BY-NC 4.0",
    "command": "python scripts/normative_morphometry.py --write",
    "statistic": "iteratively 3-SD-trimmed mean and SD; data used where n >= 15",
    "grade_thresholds": [
        0.2,
        0.25,
        0.4
    ]
}

NORMATIVE_TABLE: dict[str, dict[str, dict[str, Any]]] = {
    "wedge": {
        "C1": {
            "center": 0.973,
            "sd": 0.0927,
            "n": 23,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2), C4-C6 pooled (too few per level); C1 has no body: neutral stand-in"
        },
        "C2": {
            "center": 0.973,
            "sd": 0.0927,
            "n": 23,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2), C4-C6 pooled (too few per level)"
        },
        "C3": {
            "center": 0.973,
            "sd": 0.0927,
            "n": 23,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2), C4-C6 pooled (too few per level)"
        },
        "C4": {
            "center": 0.973,
            "sd": 0.0927,
            "n": 23,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2), C4-C6 pooled (too few per level)"
        },
        "C5": {
            "center": 0.973,
            "sd": 0.0927,
            "n": 23,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2), C4-C6 pooled (too few per level)"
        },
        "C6": {
            "center": 0.973,
            "sd": 0.0927,
            "n": 23,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2), C4-C6 pooled (too few per level)"
        },
        "C7": {
            "center": 0.9805,
            "sd": 0.0652,
            "n": 50,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T1": {
            "center": 0.9458,
            "sd": 0.049,
            "n": 95,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T2": {
            "center": 0.9613,
            "sd": 0.0556,
            "n": 100,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T3": {
            "center": 0.937,
            "sd": 0.0575,
            "n": 100,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T4": {
            "center": 0.9244,
            "sd": 0.0492,
            "n": 100,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T5": {
            "center": 0.9035,
            "sd": 0.0553,
            "n": 100,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T6": {
            "center": 0.8693,
            "sd": 0.0605,
            "n": 100,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T7": {
            "center": 0.8598,
            "sd": 0.0627,
            "n": 100,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T8": {
            "center": 0.8904,
            "sd": 0.0594,
            "n": 100,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T9": {
            "center": 0.9225,
            "sd": 0.0565,
            "n": 100,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T10": {
            "center": 0.939,
            "sd": 0.0685,
            "n": 100,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T11": {
            "center": 0.9106,
            "sd": 0.0598,
            "n": 98,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T12": {
            "center": 0.917,
            "sd": 0.0617,
            "n": 91,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "L1": {
            "center": 0.9319,
            "sd": 0.0572,
            "n": 63,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "L2": {
            "center": 0.9676,
            "sd": 0.0556,
            "n": 16,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "L3": {
            "center": 1.0,
            "sd": 0.06,
            "n": 0,
            "source": "estimate from Eur Spine J 2010;19:768-773 (doi:10.1007/s00586-009-1256-6, Table 1; 120 women, 120 men, 20-80 years): L3 body sagittal wedging -1.1 deg (women) / +1.3 deg (men), i.e. Ha about Hp; SD an estimate"
        },
        "L4": {
            "center": 1.04,
            "sd": 0.06,
            "n": 0,
            "source": "estimate from doi:10.1007/s00586-009-1256-6 (Table 1): L4 body wedging -3.1 deg (women) / -0.7 deg (men); their mean over a 35 mm deep, 27 mm tall body gives Ha/Hp 1.04; SD an estimate"
        },
        "L5": {
            "center": 1.15,
            "sd": 0.07,
            "n": 0,
            "source": "Cook & Baker 2021 (Int J Spine Surg 15:1072, CT, 196 patients): L5 anterior 30.3 mm / posterior 26.3 mm = 1.15, consistent with doi:10.1007/s00586-009-1256-6 (L5 wedging -7.8 deg women, -4.6 deg men); SD estimated from their height SDs (1.9 mm each)"
        }
    },
    "concavity": {
        "C1": {
            "center": 0.8521,
            "sd": 0.046,
            "n": 23,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2), C4-C6 pooled (too few per level); C1 has no body: neutral stand-in"
        },
        "C2": {
            "center": 0.8521,
            "sd": 0.046,
            "n": 23,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2), C4-C6 pooled (too few per level)"
        },
        "C3": {
            "center": 0.8521,
            "sd": 0.046,
            "n": 23,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2), C4-C6 pooled (too few per level)"
        },
        "C4": {
            "center": 0.8521,
            "sd": 0.046,
            "n": 23,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2), C4-C6 pooled (too few per level)"
        },
        "C5": {
            "center": 0.8521,
            "sd": 0.046,
            "n": 23,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2), C4-C6 pooled (too few per level)"
        },
        "C6": {
            "center": 0.8521,
            "sd": 0.046,
            "n": 23,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2), C4-C6 pooled (too few per level)"
        },
        "C7": {
            "center": 0.8413,
            "sd": 0.0488,
            "n": 50,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T1": {
            "center": 0.8532,
            "sd": 0.0494,
            "n": 95,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T2": {
            "center": 0.8519,
            "sd": 0.0377,
            "n": 100,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T3": {
            "center": 0.8387,
            "sd": 0.0419,
            "n": 100,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T4": {
            "center": 0.8444,
            "sd": 0.0447,
            "n": 100,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T5": {
            "center": 0.8461,
            "sd": 0.0408,
            "n": 100,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T6": {
            "center": 0.8365,
            "sd": 0.0521,
            "n": 100,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T7": {
            "center": 0.8369,
            "sd": 0.0519,
            "n": 100,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T8": {
            "center": 0.8457,
            "sd": 0.0395,
            "n": 100,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T9": {
            "center": 0.8562,
            "sd": 0.0411,
            "n": 100,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T10": {
            "center": 0.8595,
            "sd": 0.0342,
            "n": 100,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T11": {
            "center": 0.8587,
            "sd": 0.0391,
            "n": 98,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T12": {
            "center": 0.8601,
            "sd": 0.0422,
            "n": 91,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "L1": {
            "center": 0.8658,
            "sd": 0.0295,
            "n": 63,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "L2": {
            "center": 0.849,
            "sd": 0.028,
            "n": 16,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "L3": {
            "center": 0.8603,
            "sd": 0.0376,
            "n": 0,
            "source": "estimate: T12-L2 data pooled (n=170), times 1.000 for this level's normal Ha/Hp 1.00 (Hm taken as proportional to (Ha + Hp) / 2, never above the pooled value)"
        },
        "L4": {
            "center": 0.8603,
            "sd": 0.0376,
            "n": 0,
            "source": "estimate: T12-L2 data pooled (n=170), times 1.000 for this level's normal Ha/Hp 1.04 (Hm taken as proportional to (Ha + Hp) / 2, never above the pooled value)"
        },
        "L5": {
            "center": 0.8354,
            "sd": 0.0376,
            "n": 0,
            "source": "estimate: T12-L2 data pooled (n=170), times 0.971 for this level's normal Ha/Hp 1.15 (Hm taken as proportional to (Ha + Hp) / 2, never above the pooled value)"
        }
    },
    "posterior_step": {
        "C3": {
            "center": 0.93,
            "sd": 0.06,
            "n": 0,
            "source": "estimate: C3/C2 from the generator's cervical sizes (Panjabi et al. 1991)"
        },
        "C4": {
            "center": 1.0,
            "sd": 0.06,
            "n": 0,
            "source": "estimate: C4/C3 from the generator's cervical sizes (Panjabi et al. 1991)"
        },
        "C5": {
            "center": 1.0,
            "sd": 0.06,
            "n": 0,
            "source": "estimate: C5/C4 from the generator's cervical sizes (Panjabi et al. 1991)"
        },
        "C6": {
            "center": 1.0,
            "sd": 0.06,
            "n": 0,
            "source": "estimate: C6/C5 from the generator's cervical sizes (Panjabi et al. 1991)"
        },
        "C7": {
            "center": 1.07,
            "sd": 0.06,
            "n": 0,
            "source": "estimate: C7/C6 from the generator's cervical sizes (Panjabi et al. 1991); the chest CTs give 1.10 on 13 pairs"
        },
        "T1": {
            "center": 1.1671,
            "sd": 0.0603,
            "n": 50,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T2": {
            "center": 1.0654,
            "sd": 0.038,
            "n": 95,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T3": {
            "center": 1.031,
            "sd": 0.0382,
            "n": 100,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T4": {
            "center": 1.0272,
            "sd": 0.0353,
            "n": 100,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T5": {
            "center": 1.0288,
            "sd": 0.0351,
            "n": 100,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T6": {
            "center": 1.015,
            "sd": 0.039,
            "n": 100,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T7": {
            "center": 1.0166,
            "sd": 0.0365,
            "n": 100,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T8": {
            "center": 1.0114,
            "sd": 0.0358,
            "n": 100,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T9": {
            "center": 1.0258,
            "sd": 0.0389,
            "n": 100,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T10": {
            "center": 1.0613,
            "sd": 0.0397,
            "n": 100,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T11": {
            "center": 1.0806,
            "sd": 0.0355,
            "n": 98,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "T12": {
            "center": 1.0573,
            "sd": 0.0397,
            "n": 91,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "L1": {
            "center": 1.0367,
            "sd": 0.0438,
            "n": 63,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "L2": {
            "center": 1.0076,
            "sd": 0.0466,
            "n": 16,
            "source": "anchor-free-genant expert keypoints, 100 chest CTs (mean of experts 1 and 2)"
        },
        "L3": {
            "center": 1.02,
            "sd": 0.05,
            "n": 0,
            "source": "estimate: L3/L2 from mean lumbar posterior heights L2 25.8, L3 26.3, L4 26.5, L5 26.0 mm (spinevcf.synth.anatomy, compiled from Panjabi et al. 1992 and Zhou et al. 2000), L5 checked against Cook & Baker 2021 (Int J Spine Surg 15:1072, CT of 196 patients: L5 Hp 26.3 mm); SD set to the data's thoracolumbar step SD"
        },
        "L4": {
            "center": 1.01,
            "sd": 0.05,
            "n": 0,
            "source": "estimate: L4/L3 from mean lumbar posterior heights L2 25.8, L3 26.3, L4 26.5, L5 26.0 mm (spinevcf.synth.anatomy, compiled from Panjabi et al. 1992 and Zhou et al. 2000), L5 checked against Cook & Baker 2021 (Int J Spine Surg 15:1072, CT of 196 patients: L5 Hp 26.3 mm); SD set to the data's thoracolumbar step SD"
        },
        "L5": {
            "center": 0.98,
            "sd": 0.05,
            "n": 0,
            "source": "estimate: L5/L4 from mean lumbar posterior heights L2 25.8, L3 26.3, L4 26.5, L5 26.0 mm (spinevcf.synth.anatomy, compiled from Panjabi et al. 1992 and Zhou et al. 2000), L5 checked against Cook & Baker 2021 (Int J Spine Surg 15:1072, CT of 196 patients: L5 Hp 26.3 mm); SD set to the data's thoracolumbar step SD"
        }
    }
}
