"""Operator that detects vertebral bodies and their six keypoints on the CPR (step 2)."""

from __future__ import annotations

import logging
from typing import Any

from monai.deploy.core import Fragment, InputContext, OperatorSpec, OutputContext

from operators.run_state import RunState
from operators.stage_operator import StageOperator
from spinevcf.pipeline import Pipeline

__all__ = ["VertebraDetectorOperator"]

log = logging.getLogger(__name__)


class VertebraDetectorOperator(StageOperator):
    """Runs the 2D keypoint detector and names the levels (:meth:`Pipeline.detect`).

    Named Input:
        volume: :class:`spinevcf.volume.Volume` (the ribs that anchor the level names).
        cpr: :class:`spinevcf.geometry.CPRImage` or ``None``.

    Named Output:
        detections: list of :class:`spinevcf.detector.Detection` (empty without a CPR).

    Args:
        fragment: the application this operator belongs to.
        pipeline: the shared pipeline.
        state: the run state shared by all operators.
    """

    stage_name = "detect"

    def __init__(
        self, fragment: Fragment, *args: Any, pipeline: Pipeline, state: RunState, **kwargs: Any
    ) -> None:
        self.input_name_volume = "volume"
        self.input_name_cpr = "cpr"
        self.output_name_detections = "detections"
        self.pipeline = pipeline
        super().__init__(fragment, *args, state=state, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        """Declare the ports."""
        spec.input(self.input_name_volume)
        spec.input(self.input_name_cpr)
        spec.output(self.output_name_detections)

    def process(self, op_input: InputContext, op_output: OutputContext) -> None:
        """Detect vertebrae on the CPR and emit the detections."""
        volume = op_input.receive(self.input_name_volume)
        cpr = op_input.receive(self.input_name_cpr)
        detections = [] if cpr is None else self.pipeline.detect(cpr, volume)
        log.info("detected %d vertebral bodies", len(detections))
        op_output.emit(detections, self.output_name_detections)
