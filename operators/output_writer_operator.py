"""Operator that writes the study's outputs: DICOM SR, secondary capture, PNG and results.json."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from monai.deploy.core import Fragment, InputContext, OperatorSpec, OutputContext

from operators.run_state import RunState
from operators.stage_operator import StageOperator
from spinevcf.pipeline import PipelineResult, write_study_outputs

__all__ = ["OutputWriterOperator"]

log = logging.getLogger(__name__)


class OutputWriterOperator(StageOperator):
    """Writes every output of the study at once with :func:`spinevcf.pipeline.write_study_outputs`.

    The files are written atomically (all or none). ``results.json`` gets the
    stage timings measured by the operators upstream.

    Named Input:
        volume: :class:`spinevcf.volume.Volume` (source header for the derived objects).
        cpr: :class:`spinevcf.geometry.CPRImage` or ``None``.
        record: :class:`spinevcf.schema.StudyRecord`.

    File output:
        In ``output_folder``: the TID 1500 DICOM SR, the secondary-capture
        ("verifiable") image, its PNG rendering and ``results.json``.

    Args:
        fragment: the application this operator belongs to.
        output_folder: where the outputs go (created when missing).
        state: the run state shared by all operators (timings in, output paths out).
    """

    stage_name = "write"

    def __init__(
        self, fragment: Fragment, *args: Any, output_folder: Path, state: RunState, **kwargs: Any
    ) -> None:
        self.input_name_volume = "volume"
        self.input_name_cpr = "cpr"
        self.input_name_record = "record"
        self.output_folder = Path(output_folder)
        super().__init__(fragment, *args, state=state, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        """Declare the input ports."""
        spec.input(self.input_name_volume)
        spec.input(self.input_name_cpr)
        spec.input(self.input_name_record)

    def process(self, op_input: InputContext, op_output: OutputContext) -> None:
        """Write the outputs; record their paths in the run state."""
        volume = op_input.receive(self.input_name_volume)
        cpr = op_input.receive(self.input_name_cpr)
        record = op_input.receive(self.input_name_record)
        timings = dict(self.state.timings_s)
        record.timings_s = timings
        paths = write_study_outputs(
            self.output_folder, volume, PipelineResult(record=record, cpr=cpr, timings_s=timings)
        )
        self.state.outputs.update(paths)
        log.info("wrote %s", ", ".join(sorted(p.name for p in paths.values())))
