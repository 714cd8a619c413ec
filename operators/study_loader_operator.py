"""Operator that loads the study's diagnostic CT series into a :class:`~spinevcf.volume.Volume`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from monai.deploy.core import Fragment, InputContext, OperatorSpec, OutputContext

from operators.run_state import RunState
from operators.stage_operator import StageOperator
from spinevcf.io.dicom import load_study  # spinevcf.io loads its NIfTI reader (SimpleITK) on use only

__all__ = ["StudyLoaderOperator"]

log = logging.getLogger(__name__)


class StudyLoaderOperator(StageOperator):
    """Loads the diagnostic axial CT series of a DICOM study folder.

    This replaces the SDK's DICOMDataLoaderOperator -> DICOMSeriesSelectorOperator ->
    DICOMSeriesToVolumeOperator chain on purpose: :func:`spinevcf.io.dicom.load_study`
    applies the project's series choice rules (diagnostic axial CT, ranked by slice
    count and thickness), refuses gaps, tilted gantries, duplicate or mixed-size
    slices with a typed :class:`~spinevcf.errors.InputError`, decodes compressed
    transfer syntaxes, enforces a memory limit, and returns the same ``Volume``
    (index-to-LPS affine, HU) that ``spinevcf run`` and the tests use, so the app
    and the batch command read a study identically.

    Named Input:
        none (reads ``input_folder``; run once with a ``CountCondition(count=1)``).

    Named Output:
        volume: :class:`spinevcf.volume.Volume` in HU with its LPS affine and series info.

    Args:
        fragment: the application this operator belongs to.
        input_folder: folder holding the study's DICOM files (searched recursively).
        state: the run state shared by all operators.
        max_bytes: refuse series whose int16 volume would need more bytes than this.
        block_sums_mm: grid spacing of the localizer: its in-plane block sums are made
            while the slices are decoded (:func:`spinevcf.io.dicom.load_series`); ``None``:
            the localizer resamples the full volume (same values).
    """

    stage_name = "load"

    def __init__(
        self,
        fragment: Fragment,
        *args: Any,
        input_folder: Path,
        state: RunState,
        max_bytes: int | None = None,
        block_sums_mm: float | None = None,
        **kwargs: Any,
    ) -> None:
        self.output_name_volume = "volume"
        self.input_folder = Path(input_folder)
        self.max_bytes = max_bytes
        self.block_sums_mm = block_sums_mm
        super().__init__(fragment, *args, state=state, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        """Declare the output port."""
        spec.output(self.output_name_volume)

    def process(self, op_input: InputContext, op_output: OutputContext) -> None:
        """Load the study and emit its volume."""
        volume = load_study(self.input_folder, max_bytes=self.max_bytes, block_sums_mm=self.block_sums_mm)
        spacing = ", ".join(f"{s:.2f}" for s in volume.spacing)
        log.info("loaded CT volume: shape %s, spacing (%s) mm", volume.shape, spacing)
        op_output.emit(volume, self.output_name_volume)
