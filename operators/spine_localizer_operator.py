"""Operator that finds the vertebral column's centre curve (step 1 of the method)."""

from __future__ import annotations

import logging
from typing import Any

from monai.deploy.core import Fragment, InputContext, OperatorSpec, OutputContext

from operators.run_state import RunState
from operators.stage_operator import StageOperator
from spinevcf.pipeline import Pipeline

__all__ = ["SpineLocalizerOperator"]

log = logging.getLogger(__name__)


class SpineLocalizerOperator(StageOperator):
    """Runs the 3D spine localizer and fits the spine curve (:meth:`Pipeline.localize`).

    Named Input:
        volume: :class:`spinevcf.volume.Volume`.

    Named Output:
        curve: :class:`spinevcf.geometry.SpineCurve`, or ``None`` when no spine is in view.

    Args:
        fragment: the application this operator belongs to.
        pipeline: the shared pipeline (models loaded once by the application).
        state: the run state shared by all operators.
    """

    stage_name = "localize"

    def __init__(
        self, fragment: Fragment, *args: Any, pipeline: Pipeline, state: RunState, **kwargs: Any
    ) -> None:
        self.input_name_volume = "volume"
        self.output_name_curve = "curve"
        self.pipeline = pipeline
        super().__init__(fragment, *args, state=state, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        """Declare the ports."""
        spec.input(self.input_name_volume)
        spec.output(self.output_name_curve)

    def process(self, op_input: InputContext, op_output: OutputContext) -> None:
        """Localize the spine and emit the curve (or ``None``)."""
        volume = op_input.receive(self.input_name_volume)
        curve = self.pipeline.localize(volume)
        if curve is None:
            log.info("no spine found in the field of view")
        else:
            log.info("spine curve found: %.1f mm long", curve.length)
        op_output.emit(curve, self.output_name_curve)
