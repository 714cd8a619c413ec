"""Synthetic spine CT: an analytic patient phantom, a scanner simulation and ground truth.

See docs/synthetic-data.md for what is modelled and the parameter ranges.
"""

from __future__ import annotations

from spinevcf.synth.acquisition import Acquisition, sample_acquisition, scanner_affine, simulate
from spinevcf.synth.case import COMPRESSIONS, SyntheticCase, case_uids, generate_case, truth_for, write_case
from spinevcf.synth.config import FAMILIES, FOV_PRESETS, SynthConfig, cut_preset_config
from spinevcf.synth.phantom import GENERATOR_VERSION, LABEL_NAMES, Phantom, sample_phantom

__all__ = [
    "Acquisition",
    "COMPRESSIONS",
    "FAMILIES",
    "FOV_PRESETS",
    "GENERATOR_VERSION",
    "LABEL_NAMES",
    "Phantom",
    "SynthConfig",
    "SyntheticCase",
    "case_uids",
    "cut_preset_config",
    "generate_case",
    "sample_acquisition",
    "sample_phantom",
    "scanner_affine",
    "simulate",
    "truth_for",
    "write_case",
]
