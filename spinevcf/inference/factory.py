"""Choose the model-execution backend: in-process ONNX Runtime (default) or a Triton server."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from spinevcf.inference.base import InferenceBackend

__all__ = ["make_backend", "DEFAULT_TIMEOUT_S", "DEFAULT_RETRIES"]

# Defined here (not in triton_backend) so that the ONNX Runtime path never imports tritonclient.
#: Per-request client timeout of the Triton backend (seconds).
DEFAULT_TIMEOUT_S = 30.0
#: Extra attempts of the Triton backend after a transient failure (server unreachable/unavailable).
DEFAULT_RETRIES = 2


def make_backend(
    model_repository: str | Path,
    triton_url: str | None = None,
    protocol: Literal["grpc", "http"] = "grpc",
    timeout_s: float = DEFAULT_TIMEOUT_S,
    retries: int = DEFAULT_RETRIES,
) -> InferenceBackend:
    """Create the backend for a run.

    Args:
        model_repository: local model repository; ONNX Runtime runs its
            ``<model>/1/model.onnx``; with Triton only its ``spinevcf.json`` files are read.
        triton_url: ``HOST:PORT`` of a Triton server; ``None`` runs in-process.
        protocol: Triton protocol (``"grpc"`` or ``"http"``); ignored without ``triton_url``.
        timeout_s: Triton per-request timeout in seconds.
        retries: Triton retries on transient errors.

    Returns:
        An :class:`~spinevcf.inference.onnx_backend.OnnxRuntimeBackend` or a
        :class:`~spinevcf.inference.triton_backend.TritonBackend` (checked ready).

    Raises:
        ModelError: the model repository does not exist (ONNX Runtime).
        InferenceServerError: the Triton server or a model on it is not ready.

    Example:
        >>> backend = make_backend("model_repository")                       # in-process
        >>> backend = make_backend("model_repository", "127.0.0.1:8001")     # Triton, gRPC
    """
    if triton_url:
        from spinevcf.inference.triton_backend import TritonBackend

        return TritonBackend(
            triton_url, protocol=protocol, timeout_s=timeout_s, retries=retries, model_repository=model_repository
        )
    from spinevcf.inference.onnx_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(model_repository)
