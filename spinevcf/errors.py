"""Exception hierarchy of spinevcf.

Every error a user can cause with bad input derives from :class:`SpineVCFError`
so that command-line entry points can catch it, print the message (which never
contains patient identifiers) and exit with a non-zero status.
"""

from __future__ import annotations

__all__ = [
    "SpineVCFError",
    "InputError",
    "NoDicomFilesError",
    "UnreadableFileError",
    "NoCTSeriesError",
    "TooFewSlicesError",
    "InconsistentOrientationError",
    "GantryTiltError",
    "SliceGapError",
    "DuplicateSliceError",
    "MixedImageSizeError",
    "MissingPixelDataError",
    "UnsupportedTransferSyntaxError",
    "VolumeTooLargeError",
    "ModelError",
    "InferenceServerError",
    "OutputError",
]


class SpineVCFError(Exception):
    """Base class of all errors spinevcf raises on purpose."""

    exit_code: int = 2


class InputError(SpineVCFError):
    """The input study cannot be used (wrong, broken or incomplete data)."""

    exit_code = 3


class NoDicomFilesError(InputError):
    """The input folder holds no readable DICOM file."""


class UnreadableFileError(InputError):
    """A file could not be parsed (truncated or corrupt)."""


class NoCTSeriesError(InputError):
    """No series in the input qualifies as a diagnostic axial CT series."""


class TooFewSlicesError(InputError):
    """The chosen series has too few slices to form a volume."""


class InconsistentOrientationError(InputError):
    """Slices of one series disagree on ImageOrientationPatient."""


class GantryTiltError(InputError):
    """Slice positions are not along the slice normal (tilted gantry) and cannot be handled."""


class SliceGapError(InputError):
    """A slice is missing: the spacing between consecutive slices is not uniform."""


class DuplicateSliceError(InputError):
    """Two or more slices share the same position."""


class MixedImageSizeError(InputError):
    """Slices of one series have different Rows/Columns or pixel spacing."""


class MissingPixelDataError(InputError):
    """A slice has no PixelData element."""


class UnsupportedTransferSyntaxError(InputError):
    """The pixel data uses a transfer syntax that no installed decoder handles."""


class VolumeTooLargeError(InputError):
    """The series would need more memory than the configured limit allows."""


class ModelError(SpineVCFError):
    """A model file or model folder is missing or invalid."""

    exit_code = 4


class InferenceServerError(SpineVCFError):
    """The Triton inference server is unreachable, not ready, or answered wrongly."""

    exit_code = 5


class OutputError(SpineVCFError):
    """Outputs could not be written (unwritable folder, disk full)."""

    exit_code = 6


# --- Export and serving (issue 5: Triton serving and TensorRT export) ---------------------------


class ParityError(ModelError):
    """An exported model's outputs differ from the reference beyond the stated tolerances."""


class TensorRTUnavailableError(ModelError):
    """TensorRT (the ``tensorrt`` Python package or ``trtexec``) is not installed here."""


__all__ += ["ParityError", "TensorRTUnavailableError"]
