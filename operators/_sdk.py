"""Import the MONAI Deploy SDK without PyTorch and without loading the Triton client.

``monai.deploy.core`` imports PyTorch eagerly when it is installed (for its
``TorchScriptModel``, through ``optional_import("torch")``). spinevcf never uses it: its
models run in ONNX Runtime or Triton, and the MAP image has no PyTorch. In a development
environment, where PyTorch is installed for training, that import alone took 1.3 of the
3.2 s of the application's start-up (``spinevcf bench``, start-up section).

It also imports ``tritonclient.http`` and ``tritonclient.grpc.model_config_pb2`` at module
level for its ``TritonModel`` class, which spinevcf does not use either (it has its own
client, :mod:`spinevcf.inference.triton_backend`, loaded only with ``--triton-url``). That
pulls in gevent, geventhttpclient, grpc and the client utilities (issue 15: about a third
of the SDK's import time).

:func:`import_sdk` imports the SDK with ``torch`` hidden, so its optional import finds
nothing (as in the MAP image), and then un-hides it: a later ``import torch`` in the same
process works as usual. When PyTorch was already imported, nothing is hidden. The Triton
client packages ``tritonclient.http`` and ``tritonclient.grpc`` are registered as deferred
modules (:class:`_DeferredModule`): the module objects exist, their submodules import as
usual (``tritonclient.grpc.model_config_pb2``, whose names the SDK imports, is loaded for
real, without its package's ``__init__``), and the first access to a name the package has
not defined yet runs it for real, so any later use (the SDK's ``TritonModel``,
``spinevcf --triton-url``) works unchanged.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

__all__ = ["import_sdk", "defer_import", "LAZY_TRITON_MODULES"]

#: Triton client packages the SDK imports but spinevcf's ONNX Runtime path never uses.
LAZY_TRITON_MODULES = ("tritonclient.http", "tritonclient.grpc")
_LOCK = threading.RLock()


class _DeferredModule(types.ModuleType):
    """A package whose code runs on the first access to a name it does not have yet.

    ``__spec__``, ``__path__`` and the other import attributes are set up front, so the
    import system can find the module, check that it is initialised and import its
    submodules without running it (``importlib.util.LazyLoader`` runs the module on the
    ``__spec__`` check that every ``import`` statement makes).
    """

    def __getattr__(self, name: str) -> Any:
        spec = self.__spec__
        with _LOCK:
            if type(self) is _DeferredModule:
                self.__class__ = types.ModuleType  # the real module from now on
                try:
                    spec.loader.exec_module(self)  # type: ignore[union-attr]
                except BaseException:
                    sys.modules.pop(spec.name, None)
                    raise
        return object.__getattribute__(self, name)


def defer_import(name: str) -> bool:
    """Register a deferred module for package ``name`` (its ``__init__`` runs on first use).

    Its submodules import as usual without running it. Nothing happens when ``name`` is
    already imported; False when it is not installed.
    """
    if name in sys.modules:
        return True
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return False
    if spec is None or spec.loader is None:
        return False
    module = importlib.util.module_from_spec(spec)
    module.__class__ = _DeferredModule
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:  # as the import system does: the package knows its submodule
        setattr(sys.modules[parent], child, module)
    return True


def _defer_triton_client() -> None:
    if any(name in sys.modules for name in LAZY_TRITON_MODULES):
        return  # already imported: nothing to save
    for name in LAZY_TRITON_MODULES:
        defer_import(name)


def import_sdk() -> None:
    """Import ``monai.deploy.core`` (once) without importing PyTorch or the Triton client."""
    if "monai.deploy.core" in sys.modules:
        return
    _defer_triton_client()
    if "torch" in sys.modules:
        importlib.import_module("monai.deploy.core")
        return
    sys.modules["torch"] = None  # type: ignore[assignment]  # makes `import torch` fail
    try:
        importlib.import_module("monai.deploy.core")
    finally:
        if sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]
