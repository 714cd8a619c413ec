"""The spinevcf MONAI Deploy application: vertebral compression fractures in a CT study."""

from __future__ import annotations

import logging
from typing import Any

from monai.deploy.conditions import CountCondition
from monai.deploy.core import Application

from app.settings import AppSettings, parse_settings
from operators import (
    CPROperator,
    GradingOperator,
    OutputWriterOperator,
    RunState,
    SpineLocalizerOperator,
    StudyLoaderOperator,
    VertebraDetectorOperator,
)
from spinevcf import __version__
from spinevcf.pipeline import Pipeline

__all__ = ["SpineVCFApp"]

log = logging.getLogger(__name__)


class SpineVCFApp(Application):
    """Finds and grades vertebral compression fractures in the CT series of one study.

    Graph: StudyLoader -> SpineLocalizer -> CPR -> VertebraDetector -> Grading ->
    OutputWriter (DICOM SR, secondary capture, PNG, results.json). The models are
    loaded once into a :class:`~spinevcf.pipeline.Pipeline` shared by the operators.

    An expected error (:class:`~spinevcf.errors.SpineVCFError`, e.g. no CT series in
    the input) stops the graph before any output is written and is raised by
    :meth:`run`.

    Args:
        *args: passed to :class:`monai.deploy.core.Application`.
        settings: explicit settings (tests); parsed from the command line and
            environment (``app.settings``) when ``None``.
    """

    name = "spinevcf"
    description = "Vertebral compression fracture detection and Genant grading in CT."
    version = __version__

    def __init__(self, *args: Any, settings: AppSettings | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings = settings if settings is not None else parse_settings(self.argv)
        self.state = RunState()
        self.pipeline: Pipeline | None = None

    def compose(self) -> None:
        """Create the operators and wire them."""
        s = self.settings
        self.pipeline = Pipeline(
            s.model_repository, triton_url=s.triton_url, triton_protocol=s.triton_protocol
        )
        loader = StudyLoaderOperator(
            self,
            CountCondition(self, 1),
            input_folder=s.input_folder,
            state=self.state,
            block_sums_mm=self.pipeline.localizer_config.spacing_mm,
            name="study_loader",
        )
        localizer = SpineLocalizerOperator(
            self, pipeline=self.pipeline, state=self.state, name="spine_localizer"
        )
        cpr = CPROperator(self, pipeline=self.pipeline, state=self.state, name="cpr")
        detector = VertebraDetectorOperator(
            self, pipeline=self.pipeline, state=self.state, name="vertebra_detector"
        )
        grading = GradingOperator(self, pipeline=self.pipeline, state=self.state, name="grading")
        writer = OutputWriterOperator(
            self, output_folder=s.output_folder, state=self.state, name="output_writer"
        )

        self.add_flow(loader, localizer, {("volume", "volume")})
        self.add_flow(loader, cpr, {("volume", "volume")})
        self.add_flow(localizer, cpr, {("curve", "curve")})
        self.add_flow(loader, detector, {("volume", "volume")})
        self.add_flow(cpr, detector, {("cpr", "cpr")})
        self.add_flow(loader, grading, {("volume", "volume")})
        self.add_flow(cpr, grading, {("cpr", "cpr")})
        self.add_flow(detector, grading, {("detections", "detections")})
        self.add_flow(loader, writer, {("volume", "volume")})
        self.add_flow(cpr, writer, {("cpr", "cpr")})
        self.add_flow(grading, writer, {("record", "record")})

    def run(self, *args: Any, **kwargs: Any) -> None:
        """Run the graph; raise the first expected error an operator met.

        Raises:
            SpineVCFError: the error that stopped the run (no outputs were written).
        """
        try:
            super().run(*args, **kwargs)
        finally:
            if self.pipeline is not None:
                self.pipeline.close()
        if self.state.error is not None:
            raise self.state.error
        log.info("done: %s", ", ".join(f"{k} {v:.2f}s" for k, v in self.state.timings_s.items()))
