"""Model execution backends: in-process ONNX Runtime (default) and Triton (remote)."""

from spinevcf.inference.base import InferenceBackend

__all__ = ["InferenceBackend"]
