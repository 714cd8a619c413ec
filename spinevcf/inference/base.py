"""The interface every model-execution backend implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["InferenceBackend", "LOCALIZER_MODEL", "DETECTOR_MODEL"]

#: Triton / model_repository names of the two models.
LOCALIZER_MODEL = "spine_localizer_3d"
DETECTOR_MODEL = "vertebra_detector_2d"


@runtime_checkable
class InferenceBackend(Protocol):
    """Runs a named model of the model repository on named numpy tensors.

    Implementations: :class:`spinevcf.inference.onnx_backend.OnnxRuntimeBackend`
    (in-process) and :class:`spinevcf.inference.triton_backend.TritonBackend`.
    """

    def infer(self, model_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run ``model_name`` on ``inputs``; return every output of the model by name."""
        ...

    def close(self) -> None:
        """Release sessions or connections."""
        ...
