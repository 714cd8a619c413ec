"""In-process model execution with ONNX Runtime (the default backend).

Reads the same ``model_repository/`` that Triton serves:
``<repository>/<model>/1/model.onnx`` plus ``<repository>/<model>/spinevcf.json``
(preprocessing and decoding parameters, see docs/triton.md).

Example:
    >>> backend = OnnxRuntimeBackend(Path("model_repository"))
    >>> out = backend.infer("vertebra_detector_2d", {"image": np.zeros((1, 2, 256, 128), np.float32)})
    >>> sorted(out)
    ['heatmap', 'keypoints', 'level_logits', 'offset']
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import onnxruntime as ort

from spinevcf.errors import ModelError

__all__ = [
    "OnnxRuntimeBackend",
    "load_model_config",
    "onnx_model_path",
    "check_inputs",
    "MODEL_VERSION",
    "ONNX_FILENAME",
    "MODEL_CONFIG_FILENAME",
]

log = logging.getLogger(__name__)

#: The model version folder used in the repository (Triton's version policy: latest = 1).
MODEL_VERSION = "1"
#: ONNX file name inside the version folder (Triton's default for onnxruntime_onnx).
ONNX_FILENAME = "model.onnx"
#: Preprocessing/decoding parameters beside config.pbtxt.
MODEL_CONFIG_FILENAME = "spinevcf.json"

_CPU = "CPUExecutionProvider"
_CUDA = "CUDAExecutionProvider"

#: ONNX Runtime type strings and their numpy dtypes (the ones the project's models use).
_ORT_TO_NUMPY: dict[str, np.dtype] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(double)": np.dtype(np.float64),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(bool)": np.dtype(np.bool_),
}


def onnx_model_path(model_repository: str | Path, model_name: str) -> Path:
    """``<model_repository>/<model_name>/1/model.onnx``."""
    return Path(model_repository) / model_name / MODEL_VERSION / ONNX_FILENAME


def load_model_config(model_repository: str | Path, model_name: str) -> dict[str, Any]:
    """Read ``<model_repository>/<model_name>/spinevcf.json``.

    The file holds the checkpoint's ``config`` (preprocessing and decoding
    parameters) plus ``model`` and ``provenance`` (see docs/triton.md).

    Raises:
        ModelError: the file is missing, is not valid JSON, is not a JSON object,
            or names another model.
    """
    path = Path(model_repository) / model_name / MODEL_CONFIG_FILENAME
    if not path.is_file():
        raise ModelError(f"model {model_name}: {MODEL_CONFIG_FILENAME} not found at {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"model {model_name}: {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelError(f"model {model_name}: {path} must hold a JSON object, got {type(data).__name__}")
    named = data.get("model", model_name)
    if named != model_name:
        raise ModelError(f"model {model_name}: {path} describes model {named!r}")
    return data


def check_inputs(
    model_name: str,
    inputs: Mapping[str, np.ndarray],
    expected: Mapping[str, tuple[np.dtype, Sequence[int | None]]],
) -> None:
    """Check input names, dtypes, ranks and fixed dims against a model's declaration.

    Args:
        model_name: for messages.
        inputs: the tensors the caller passes.
        expected: per input name: (dtype, shape) where ``None`` or a negative
            number marks a variable dimension.

    Raises:
        TypeError: a value is not a numpy array or has the wrong dtype.
        ValueError: names differ, or a rank or fixed dimension differs.
    """
    if set(inputs) != set(expected):
        raise ValueError(
            f"model {model_name}: inputs must be exactly {sorted(expected)}, got {sorted(inputs)}"
        )
    for name, (dtype, shape) in expected.items():
        arr = inputs[name]
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"model {model_name}: input {name!r} must be a numpy array, got {type(arr).__name__}")
        if arr.dtype != dtype:
            raise TypeError(f"model {model_name}: input {name!r} must have dtype {dtype}, got {arr.dtype}")
        want = ["?" if d is None or d < 0 else int(d) for d in shape]
        if arr.ndim != len(want) or any(w != "?" and w != s for w, s in zip(want, arr.shape, strict=True)):
            raise ValueError(
                f"model {model_name}: input {name!r} must have shape "
                f"[{', '.join(str(w) for w in want)}] ('?' = any), got {list(arr.shape)}"
            )


class OnnxRuntimeBackend:
    """Runs the repository's ONNX models in-process with ONNX Runtime.

    One :class:`onnxruntime.InferenceSession` per model, created on first use
    (thread-safe). The CUDA execution provider is tried first when this
    onnxruntime build has it, otherwise the CPU provider is used.

    Args:
        model_repository: folder holding ``<model>/1/model.onnx``.
        providers: ONNX Runtime execution providers in priority order;
            ``None`` chooses automatically.
        intra_op_threads: threads per operator; ``None`` lets ONNX Runtime decide.

    Raises:
        ModelError: ``model_repository`` is not a folder.
    """

    def __init__(
        self,
        model_repository: str | Path,
        providers: Sequence[str] | None = None,
        intra_op_threads: int | None = None,
    ) -> None:
        self.model_repository = Path(model_repository)
        if not self.model_repository.is_dir():
            raise ModelError(f"model repository not found: {self.model_repository}")
        if intra_op_threads is not None and intra_op_threads < 1:
            raise ValueError(f"intra_op_threads must be >= 1 or None, got {intra_op_threads}")
        available = ort.get_available_providers()
        if providers is None:
            providers = [_CUDA, _CPU] if _CUDA in available else [_CPU]
        unknown = [p for p in providers if p not in available]
        if unknown:
            raise ValueError(f"providers {unknown} are not available in this onnxruntime; available: {available}")
        self.providers = list(providers)
        self.intra_op_threads = intra_op_threads
        self._sessions: dict[str, ort.InferenceSession] = {}
        self._lock = threading.Lock()

    def session(self, model_name: str) -> ort.InferenceSession:
        """The (lazily created) session of ``model_name``.

        Raises:
            ModelError: the ONNX file is missing or cannot be loaded.
        """
        with self._lock:
            sess = self._sessions.get(model_name)
            if sess is None:
                sess = self._create_session(model_name)
                self._sessions[model_name] = sess
            return sess

    def _create_session(self, model_name: str) -> ort.InferenceSession:
        path = onnx_model_path(self.model_repository, model_name)
        if not path.is_file():
            raise ModelError(f"model {model_name}: ONNX file not found at {path}")
        opts = ort.SessionOptions()
        if self.intra_op_threads is not None:
            opts.intra_op_num_threads = self.intra_op_threads
        opts.inter_op_num_threads = 1
        try:
            sess = ort.InferenceSession(str(path), sess_options=opts, providers=self.providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors for corrupt files
            raise ModelError(f"model {model_name}: cannot load {path}: {exc}") from exc
        log.info("loaded model %s with providers %s", model_name, sess.get_providers())
        return sess

    def input_specs(self, model_name: str) -> dict[str, tuple[np.dtype, list[int | None]]]:
        """Per input name: (numpy dtype, shape with ``None`` for symbolic dims)."""
        specs = {}
        for arg in self.session(model_name).get_inputs():
            if arg.type not in _ORT_TO_NUMPY:
                raise ModelError(f"model {model_name}: input {arg.name!r} has unsupported type {arg.type}")
            shape = [d if isinstance(d, int) else None for d in arg.shape]
            specs[arg.name] = (_ORT_TO_NUMPY[arg.type], shape)
        return specs

    def output_names(self, model_name: str) -> list[str]:
        """Names of all outputs of ``model_name`` in graph order."""
        return [o.name for o in self.session(model_name).get_outputs()]

    def infer(self, model_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run ``model_name``; return all of its outputs by name.

        Raises:
            ModelError: the model cannot be loaded.
            TypeError, ValueError: ``inputs`` do not match the model's inputs.
        """
        check_inputs(model_name, inputs, self.input_specs(model_name))
        sess = self.session(model_name)
        names = self.output_names(model_name)
        values = sess.run(names, dict(inputs))
        return dict(zip(names, values, strict=True))

    def model_config(self, model_name: str) -> dict[str, Any]:
        """``spinevcf.json`` of ``model_name`` (see :func:`load_model_config`)."""
        return load_model_config(self.model_repository, model_name)

    def close(self) -> None:
        """Drop all sessions."""
        with self._lock:
            self._sessions.clear()

    def __enter__(self) -> OnnxRuntimeBackend:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
