"""Read, check and rewrite Triton ``config.pbtxt`` model configurations.

The ``config.pbtxt`` files of ``model_repository/`` (platform ``onnxruntime_onnx``)
are the single source of the served tensor names, dtypes and dims. The TensorRT
repository (:mod:`export.build_trt`) and the python-backend repository used by the
local test server (``scripts/triton/make_python_repo.py``) are derived from them
with the helpers here, so the three cannot drift apart.

Parsing uses the ``ModelConfig`` protobuf shipped with ``tritonclient[grpc]``.

Example:
    >>> cfg = read_model_config(Path("model_repository/vertebra_detector_2d/config.pbtxt"))
    >>> [t.name for t in output_specs(cfg)]
    ['heatmap', 'offset', 'keypoints', 'level_logits']
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from google.protobuf import text_format
from google.protobuf.message import DecodeError
from tritonclient.grpc import model_config_pb2

from spinevcf.errors import ModelError

__all__ = [
    "CONFIG_FILENAME",
    "TensorSpec",
    "ModelConfig",
    "read_model_config",
    "parse_model_config",
    "format_model_config",
    "input_specs",
    "output_specs",
    "TRITON_TO_NUMPY",
    "NUMPY_TO_TRITON",
]

#: File name of a Triton model configuration inside ``<repository>/<model>/``.
CONFIG_FILENAME = "config.pbtxt"

#: The protobuf message class of a model configuration.
ModelConfig = model_config_pb2.ModelConfig

#: Triton config dtypes (``TYPE_*``) and their numpy equivalents (the ones this project uses).
TRITON_TO_NUMPY: dict[str, np.dtype] = {
    "TYPE_FP32": np.dtype(np.float32),
    "TYPE_FP16": np.dtype(np.float16),
    "TYPE_INT64": np.dtype(np.int64),
    "TYPE_INT32": np.dtype(np.int32),
    "TYPE_UINT8": np.dtype(np.uint8),
    "TYPE_BOOL": np.dtype(np.bool_),
}
#: Inverse of :data:`TRITON_TO_NUMPY`.
NUMPY_TO_TRITON: dict[np.dtype, str] = {v: k for k, v in TRITON_TO_NUMPY.items()}


@dataclass(frozen=True)
class TensorSpec:
    """One input or output tensor as declared in a config.

    Attributes:
        name: tensor name.
        dtype: numpy dtype.
        dims: dims WITHOUT the batch dimension, ``-1`` for a variable size.
        batched: whether a leading batch dimension precedes ``dims``
            (``max_batch_size > 0``).
    """

    name: str
    dtype: np.dtype
    dims: tuple[int, ...]
    batched: bool

    @property
    def full_shape(self) -> tuple[int, ...]:
        """Shape including the batch dimension (``-1``) when the model is batched."""
        return ((-1,) if self.batched else ()) + self.dims

    @property
    def rank(self) -> int:
        """Rank of the tensor as sent on the wire (batch dimension included)."""
        return len(self.full_shape)


def parse_model_config(text: str, *, source: str = "<text>") -> ModelConfig:
    """Parse ``config.pbtxt`` text.

    Args:
        text: protobuf text format.
        source: where the text came from (for error messages).

    Raises:
        ModelError: the text is not a valid ``ModelConfig``.
    """
    try:
        return text_format.Parse(text, ModelConfig())
    except (text_format.ParseError, DecodeError) as exc:
        raise ModelError(f"invalid Triton model config {source}: {exc}") from exc


def read_model_config(path: str | Path) -> ModelConfig:
    """Read a ``config.pbtxt`` file (or ``<model folder>/config.pbtxt``).

    Raises:
        ModelError: the file is missing or does not parse.
    """
    p = Path(path)
    if p.is_dir():
        p = p / CONFIG_FILENAME
    if not p.is_file():
        raise ModelError(f"Triton model config not found: {p}")
    return parse_model_config(p.read_text(encoding="utf-8"), source=str(p))


def format_model_config(config: ModelConfig, *, header: str = "") -> str:
    """Render ``config`` as protobuf text, preceded by ``header`` as ``#`` comment lines."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()] if header else []
    return "\n".join(lines + [text_format.MessageToString(config, use_short_repeated_primitives=True).rstrip(), ""])


def _specs(tensors: object, batched: bool) -> list[TensorSpec]:
    specs = []
    for t in tensors:  # type: ignore[attr-defined]
        type_name = model_config_pb2.DataType.Name(t.data_type)
        if type_name not in TRITON_TO_NUMPY:
            raise ModelError(f"tensor {t.name!r} has unsupported data_type {type_name}")
        specs.append(TensorSpec(t.name, TRITON_TO_NUMPY[type_name], tuple(int(d) for d in t.dims), batched))
    return specs


def input_specs(config: ModelConfig) -> list[TensorSpec]:
    """The inputs of ``config`` in declaration order."""
    return _specs(config.input, config.max_batch_size > 0)


def output_specs(config: ModelConfig) -> list[TensorSpec]:
    """The outputs of ``config`` in declaration order."""
    return _specs(config.output, config.max_batch_size > 0)
