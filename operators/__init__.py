"""MONAI Deploy operators of the spinevcf application.

Each operator is a thin wrapper around one stage of :class:`spinevcf.pipeline.Pipeline`;
the algorithm stays in :mod:`spinevcf`. The graph (see ``app/app.py``)::

    StudyLoaderOperator --volume--> SpineLocalizerOperator --curve--> CPROperator --cpr-->
    VertebraDetectorOperator --detections--> GradingOperator --record--> OutputWriterOperator

with ``volume`` also fed to CPR, grading and writer, and ``cpr`` to grading and writer.
"""

from operators.cpr_operator import CPROperator
from operators.grading_operator import GradingOperator
from operators.output_writer_operator import OutputWriterOperator
from operators.run_state import RunState
from operators.spine_localizer_operator import SpineLocalizerOperator
from operators.stage_operator import StageOperator
from operators.study_loader_operator import StudyLoaderOperator
from operators.vertebra_detector_operator import VertebraDetectorOperator

__all__ = [
    "CPROperator",
    "GradingOperator",
    "OutputWriterOperator",
    "RunState",
    "SpineLocalizerOperator",
    "StageOperator",
    "StudyLoaderOperator",
    "VertebraDetectorOperator",
]
