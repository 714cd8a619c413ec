"""Model export and serving tools: PyTorch -> ONNX, ONNX -> TensorRT plans, parity checks.

Run from the repository root, e.g. ``python -m export.export_onnx CHECKPOINT --out model_repository``.
"""
