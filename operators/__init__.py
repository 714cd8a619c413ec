"""MONAI Deploy operators of the spinevcf application.

Each operator is a thin wrapper around one stage of :class:`spinevcf.pipeline.Pipeline`;
the algorithm stays in :mod:`spinevcf`. The graph (see ``app/app.py``)::

    StudyLoaderOperator --volume--> SpineLocalizerOperator --curve--> CPROperator --cpr-->
    VertebraDetectorOperator --detections--> GradingOperator --record--> OutputWriterOperator

with ``volume`` also fed to CPR, grading and writer, and ``cpr`` to grading and writer.
"""

from operators._sdk import import_sdk

import_sdk()  # before any operator module imports monai.deploy (see operators/_sdk.py)

from operators.cpr_operator import CPROperator  # noqa: E402
from operators.grading_operator import GradingOperator  # noqa: E402
from operators.output_writer_operator import OutputWriterOperator  # noqa: E402
from operators.run_state import RunState  # noqa: E402
from operators.spine_localizer_operator import SpineLocalizerOperator  # noqa: E402
from operators.stage_operator import StageOperator  # noqa: E402
from operators.study_loader_operator import StudyLoaderOperator  # noqa: E402
from operators.vertebra_detector_operator import VertebraDetectorOperator  # noqa: E402

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
