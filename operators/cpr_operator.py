"""Operator that straightens the CT along the spine curve (curved planar reformation)."""

from __future__ import annotations

import logging
from typing import Any

from monai.deploy.core import Fragment, InputContext, OperatorSpec, OutputContext

from operators.run_state import RunState
from operators.stage_operator import StageOperator
from spinevcf.pipeline import Pipeline

__all__ = ["CPROperator"]

log = logging.getLogger(__name__)


class CPROperator(StageOperator):
    """Builds the two-channel CPR image along the spine curve (:meth:`Pipeline.reformat`).

    Named Input:
        volume: :class:`spinevcf.volume.Volume`.
        curve: :class:`spinevcf.geometry.SpineCurve` or ``None``.

    Named Output:
        cpr: :class:`spinevcf.geometry.CPRImage`, or ``None`` when the curve is ``None``.

    Args:
        fragment: the application this operator belongs to.
        pipeline: the shared pipeline.
        state: the run state shared by all operators.
    """

    stage_name = "cpr"

    def __init__(
        self, fragment: Fragment, *args: Any, pipeline: Pipeline, state: RunState, **kwargs: Any
    ) -> None:
        self.input_name_volume = "volume"
        self.input_name_curve = "curve"
        self.output_name_cpr = "cpr"
        self.pipeline = pipeline
        super().__init__(fragment, *args, state=state, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        """Declare the ports."""
        spec.input(self.input_name_volume)
        spec.input(self.input_name_curve)
        spec.output(self.output_name_cpr)

    def process(self, op_input: InputContext, op_output: OutputContext) -> None:
        """Reformat the volume along the curve and emit the CPR (or ``None``)."""
        volume = op_input.receive(self.input_name_volume)
        curve = op_input.receive(self.input_name_curve)
        cpr = None if curve is None else self.pipeline.reformat(volume, curve)
        if cpr is not None:
            log.info("CPR image: %s", tuple(cpr.image.shape))
        op_output.emit(cpr, self.output_name_cpr)
