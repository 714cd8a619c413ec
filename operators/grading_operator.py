"""Operator that measures vertebral heights in 3D and assigns Genant grades."""

from __future__ import annotations

import logging
from typing import Any

from monai.deploy.core import Fragment, InputContext, OperatorSpec, OutputContext

from operators.run_state import RunState
from operators.stage_operator import StageOperator
from spinevcf.pipeline import Pipeline

__all__ = ["GradingOperator"]

log = logging.getLogger(__name__)


class GradingOperator(StageOperator):
    """Grades each detected vertebra and the patient (:meth:`Pipeline.grade`).

    Without a CPR or detections the record has no vertebrae and its ``status``
    says that no spine was found; this is a valid result, not an error.

    Named Input:
        volume: :class:`spinevcf.volume.Volume` (series identifiers).
        cpr: :class:`spinevcf.geometry.CPRImage` or ``None``.
        detections: list of :class:`spinevcf.detector.Detection`.

    Named Output:
        record: :class:`spinevcf.schema.StudyRecord`.

    Args:
        fragment: the application this operator belongs to.
        pipeline: the shared pipeline.
        state: the run state shared by all operators.
    """

    stage_name = "grade"

    def __init__(
        self, fragment: Fragment, *args: Any, pipeline: Pipeline, state: RunState, **kwargs: Any
    ) -> None:
        self.input_name_volume = "volume"
        self.input_name_cpr = "cpr"
        self.input_name_detections = "detections"
        self.output_name_record = "record"
        self.pipeline = pipeline
        super().__init__(fragment, *args, state=state, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        """Declare the ports."""
        spec.input(self.input_name_volume)
        spec.input(self.input_name_cpr)
        spec.input(self.input_name_detections)
        spec.output(self.output_name_record)

    def process(self, op_input: InputContext, op_output: OutputContext) -> None:
        """Grade the detections and emit the study record."""
        volume = op_input.receive(self.input_name_volume)
        cpr = op_input.receive(self.input_name_cpr)
        detections = op_input.receive(self.input_name_detections)
        record = self.pipeline.grade(volume, cpr, list(detections))
        n_fractured = sum(1 for v in record.vertebrae if v.fractured)
        log.info(
            "graded %d vertebrae, %d with a grade 1-3 deformity (status %s)",
            len(record.vertebrae),
            n_fractured,
            record.status,
        )
        op_output.emit(record, self.output_name_record)
