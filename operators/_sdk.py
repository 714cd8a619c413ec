"""Import the MONAI Deploy SDK without PyTorch.

``monai.deploy.core`` imports PyTorch eagerly when it is installed (for its
``TorchScriptModel``, through ``optional_import("torch")``). spinevcf never uses it: its
models run in ONNX Runtime or Triton, and the MAP image has no PyTorch. In a development
environment, where PyTorch is installed for training, that import alone took 1.3 of the
3.2 s of the application's start-up (``spinevcf bench``, start-up section).

:func:`import_sdk` imports the SDK with ``torch`` hidden, so its optional import finds
nothing (as in the MAP image), and then un-hides it: a later ``import torch`` in the same
process works as usual. When PyTorch was already imported, nothing is hidden.
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["import_sdk"]


def import_sdk() -> None:
    """Import ``monai.deploy.core`` (once) without importing PyTorch."""
    if "monai.deploy.core" in sys.modules or "torch" in sys.modules:
        importlib.import_module("monai.deploy.core")
        return
    sys.modules["torch"] = None  # type: ignore[assignment]  # makes `import torch` fail
    try:
        importlib.import_module("monai.deploy.core")
    finally:
        if sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]
