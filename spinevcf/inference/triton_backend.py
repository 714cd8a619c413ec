"""Remote model execution on an NVIDIA Triton Inference Server (binary tensors).

Tensors travel in Triton's binary format over gRPC (default) or HTTP, never as
JSON. All outputs of a model are requested in one request. At construction the
client checks that the server is live and ready and that every model it will
use is ready, and reads each model's metadata (tensor names, dtypes, shapes)
and ``max_batch_size`` from the server, so that bad inputs are rejected before
anything is sent and wrong outputs are caught on return.

The preprocessing parameters (``spinevcf.json``) are read from a local copy of
the model repository (``model_repository=``): Triton does not serve arbitrary
files, so integrators ship ``spinevcf.json`` with the client (it is part of the
release's model repository) or fetch it from wherever they publish models.

Example:
    >>> backend = TritonBackend("127.0.0.1:8001", protocol="grpc", model_repository=Path("model_repository"))
    >>> out = backend.infer("vertebra_detector_2d", {"image": cpr[None]})
    >>> out["heatmap"].shape
    (1, 1, 160, 40)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

import numpy as np
from tritonclient.utils import InferenceServerException, triton_to_np_dtype

from spinevcf.errors import InferenceServerError, ModelError
from spinevcf.inference.base import DETECTOR_MODEL, LOCALIZER_MODEL
from spinevcf.inference.factory import DEFAULT_RETRIES, DEFAULT_TIMEOUT_S
from spinevcf.inference.onnx_backend import check_inputs, load_model_config

__all__ = [
    "TritonBackend",
    "ModelSignature",
    "expected_output_shape",
    "OUTPUT_STRIDES",
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_RETRIES",
    "BACKOFF_BASE_S",
    "BACKOFF_MAX_S",
]

log = logging.getLogger(__name__)

#: First back-off delay; doubles on each retry up to :data:`BACKOFF_MAX_S`.
BACKOFF_BASE_S = 0.2
BACKOFF_MAX_S = 2.0
#: Connection timeout for the HTTP client (seconds); capped by the request timeout.
HTTP_CONNECT_TIMEOUT_S = 5.0

#: Spatial down-sampling factor of every output relative to the input
#: (docs/architecture.md): the detector's heads are at stride 4.
OUTPUT_STRIDES: dict[str, int] = {LOCALIZER_MODEL: 1, DETECTOR_MODEL: 4}

#: gRPC status codes and HTTP statuses worth retrying (nothing was computed).
_TRANSIENT_GRPC = ("StatusCode.UNAVAILABLE", "StatusCode.RESOURCE_EXHAUSTED")
_TRANSIENT_HTTP = ("502", "503", "504")

Protocol = Literal["grpc", "http"]
_T = TypeVar("_T")


@dataclass(frozen=True)
class ModelSignature:
    """A served model's tensors as the server reports them.

    Attributes:
        name: model name.
        inputs: per input name: (numpy dtype, Triton datatype, full shape with batch dim, -1 = any).
        outputs: the same for outputs.
        max_batch_size: 0 when the model does not batch.
    """

    name: str
    inputs: dict[str, tuple[np.dtype, str, tuple[int, ...]]]
    outputs: dict[str, tuple[np.dtype, str, tuple[int, ...]]]
    max_batch_size: int


def expected_output_shape(
    signature: ModelSignature, output_name: str, input_shape: Sequence[int]
) -> tuple[int | None, ...]:
    """The shape ``output_name`` must have for an input of ``input_shape``.

    Fixed dims come from the server's metadata; the batch dim equals the
    input's; variable spatial dims follow :data:`OUTPUT_STRIDES` (``None``
    when the model has no known rule, meaning "any").
    """
    _, _, shape = signature.outputs[output_name]
    stride = OUTPUT_STRIDES.get(signature.name)
    rank = len(shape)
    want: list[int | None] = []
    for axis, dim in enumerate(shape):
        if dim >= 0:
            want.append(int(dim))
        elif axis == 0 and signature.max_batch_size > 0:
            want.append(int(input_shape[0]))
        elif stride is not None and len(input_shape) == rank:
            # Stride-2 convolutions with padding round up: ceil(size / stride).
            want.append(-(-int(input_shape[axis]) // stride))
        else:
            want.append(None)
    return tuple(want)


class TritonBackend:
    """:class:`~spinevcf.inference.base.InferenceBackend` on a Triton server.

    Args:
        url: ``HOST:PORT`` of the server's gRPC or HTTP endpoint
            (a ``grpc://`` / ``http://`` prefix is accepted and dropped).
        protocol: ``"grpc"`` or ``"http"``.
        timeout_s: per-request timeout in seconds (client side).
        retries: extra attempts on transient errors (server unreachable or
            temporarily unavailable), with exponential back-off. Errors the
            server reports about a request (bad shape, model failure) are not retried.
        model_repository: local model repository holding each model's
            ``spinevcf.json`` (needed only for :meth:`model_config`).
        models: models that must be ready on the server.

    Raises:
        ValueError: bad ``protocol``, ``timeout_s`` or ``retries``.
        InferenceServerError: the server is unreachable or not ready, or a model is not ready.
    """

    def __init__(
        self,
        url: str,
        protocol: Protocol = "grpc",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retries: int = DEFAULT_RETRIES,
        model_repository: str | Path | None = None,
        *,
        models: Sequence[str] = (LOCALIZER_MODEL, DETECTOR_MODEL),
    ) -> None:
        if protocol not in ("grpc", "http"):
            raise ValueError(f"protocol must be 'grpc' or 'http', got {protocol!r}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.url = url.split("://", 1)[1] if "://" in url else url
        self.protocol: Protocol = protocol
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.model_repository = Path(model_repository) if model_repository is not None else None
        self._signatures: dict[str, ModelSignature] = {}
        if protocol == "grpc":
            import tritonclient.grpc as client_module
        else:
            import tritonclient.http as client_module
        self._module: Any = client_module
        self._client = self._make_client()
        self._check_server()
        for name in models:
            self._signatures[name] = self._load_signature(name)

    # ------------------------------------------------------------------ connection

    def _make_client(self) -> Any:
        try:
            if self.protocol == "grpc":
                return self._module.InferenceServerClient(url=self.url)
            return self._module.InferenceServerClient(
                url=self.url,
                connection_timeout=min(HTTP_CONNECT_TIMEOUT_S, self.timeout_s),
                network_timeout=self.timeout_s,
            )
        except (InferenceServerException, ValueError, OSError) as exc:
            raise InferenceServerError(
                f"cannot create a Triton {self.protocol} client for {self.url}: {exc}"
            ) from exc

    def _timeout_kwargs(self) -> dict[str, float]:
        # gRPC takes a per-call deadline; the HTTP client's timeout is set at construction.
        return {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}

    @staticmethod
    def _is_transient(exc: BaseException) -> bool:
        if isinstance(exc, InferenceServerException):
            status = str(exc.status() or "")
            return status in _TRANSIENT_GRPC or status in _TRANSIENT_HTTP
        # HTTP transport: refused / reset connections. Timeouts are not retried:
        # the per-request timeout is the bound the caller asked for.
        return isinstance(exc, ConnectionError)

    def _call(self, what: str, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` with bounded retries on transient errors; map failures to InferenceServerError."""
        attempt = 0
        while True:
            try:
                return fn()
            except (InferenceServerException, OSError) as exc:
                if self._is_transient(exc) and attempt < self.retries:
                    delay = min(BACKOFF_BASE_S * 2**attempt, BACKOFF_MAX_S)
                    attempt += 1
                    log.warning(
                        "Triton %s at %s failed (%s); retry %d/%d in %.1f s",
                        what,
                        self.url,
                        _short(exc),
                        attempt,
                        self.retries,
                        delay,
                    )
                    time.sleep(delay)
                    continue
                if isinstance(exc, TimeoutError) or (
                    isinstance(exc, InferenceServerException)
                    and exc.status() == "StatusCode.DEADLINE_EXCEEDED"
                ):
                    raise InferenceServerError(
                        f"Triton {what} at {self.url} timed out after {self.timeout_s:g} s"
                    ) from exc
                if self._is_transient(exc) or isinstance(exc, OSError):
                    raise InferenceServerError(
                        f"Triton server at {self.url} is not reachable ({self.protocol}) during {what}: {_short(exc)}"
                    ) from exc
                raise InferenceServerError(f"Triton {what} at {self.url} failed: {_short(exc)}") from exc

    def _check_server(self) -> None:
        kw = self._timeout_kwargs()
        live = self._call("liveness check", lambda: self._client.is_server_live(**kw))
        if not live:
            raise InferenceServerError(f"Triton server at {self.url} is not live")
        ready = self._call("readiness check", lambda: self._client.is_server_ready(**kw))
        if not ready:
            raise InferenceServerError(f"Triton server at {self.url} is live but not ready")

    def _not_ready_reason(self, model_name: str) -> str:
        """The repository index's state/reason for ``model_name`` (best effort, for messages)."""
        try:
            if self.protocol == "grpc":
                index = self._client.get_model_repository_index(as_json=True, **self._timeout_kwargs())
                entries = index.get("models", [])
            else:
                entries = self._client.get_model_repository_index()
        except (InferenceServerException, OSError) as exc:
            log.debug("repository index unavailable: %s", _short(exc))
            return ""
        for entry in entries:
            if entry.get("name") == model_name:
                state = entry.get("state", "unknown state")
                reason = entry.get("reason", "")
                return f" (state {state}{': ' + reason if reason else ''})"
        return " (the server's repository has no such model)"

    def _load_signature(self, model_name: str) -> ModelSignature:
        kw = self._timeout_kwargs()
        ready = self._call(
            f"readiness check of model {model_name}", lambda: self._client.is_model_ready(model_name, **kw)
        )
        if not ready:
            raise InferenceServerError(
                f"model {model_name} is not ready on the server at {self.url}{self._not_ready_reason(model_name)}"
            )
        if self.protocol == "grpc":
            meta = self._call(
                "metadata", lambda: self._client.get_model_metadata(model_name, as_json=True, **kw)
            )
            cfg = self._call("config", lambda: self._client.get_model_config(model_name, as_json=True, **kw))
            cfg = cfg.get("config", cfg)
        else:
            meta = self._call("metadata", lambda: self._client.get_model_metadata(model_name))
            cfg = self._call("config", lambda: self._client.get_model_config(model_name))

        def tensors(entries: list[dict[str, Any]]) -> dict[str, tuple[np.dtype, str, tuple[int, ...]]]:
            out = {}
            for e in entries:
                datatype = e["datatype"]
                out[e["name"]] = (
                    np.dtype(triton_to_np_dtype(datatype)),
                    datatype,
                    tuple(int(d) for d in e["shape"]),
                )
            return out

        sig = ModelSignature(
            name=model_name,
            inputs=tensors(meta.get("inputs", [])),
            outputs=tensors(meta.get("outputs", [])),
            max_batch_size=int(cfg.get("max_batch_size", 0) or 0),
        )
        if not sig.inputs or not sig.outputs:
            raise InferenceServerError(f"model {model_name} on {self.url} reports no inputs or no outputs")
        log.debug("Triton model %s ready on %s", model_name, self.url)
        return sig

    def signature(self, model_name: str) -> ModelSignature:
        """The server's description of ``model_name`` (fetched and checked on first use)."""
        sig = self._signatures.get(model_name)
        if sig is None:
            sig = self._signatures[model_name] = self._load_signature(model_name)
        return sig

    # ------------------------------------------------------------------ inference

    def infer(self, model_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run ``model_name`` on the server; return all of its outputs by name.

        A batch larger than the model's ``max_batch_size`` on the server is sent as several
        requests of at most that size, and their outputs are joined in order.

        Raises:
            TypeError, ValueError: ``inputs`` do not match the model's inputs
                (names, dtypes, ranks, fixed dims, an empty or inconsistent batch).
            InferenceServerError: the server is unreachable, rejects the request,
                times out, or returns outputs of the wrong shape.
        """
        sig = self.signature(model_name)
        check_inputs(model_name, inputs, {n: (dt, list(shape)) for n, (dt, _, shape) in sig.inputs.items()})
        if sig.max_batch_size > 0:
            sizes = {name: int(arr.shape[0]) for name, arr in inputs.items()}
            if len(set(sizes.values())) > 1:
                raise ValueError(f"model {model_name}: the inputs' batch sizes differ: {sizes}")
            for name, size in sizes.items():
                if size < 1:
                    raise ValueError(f"model {model_name}: input {name!r} batch size {size} is empty")
            n = next(iter(sizes.values()))
            if n > sig.max_batch_size:
                # A batch larger than the server takes (the detector's seven readings against a
                # server configured for fewer) goes as several requests the server accepts.
                step = sig.max_batch_size
                parts = [
                    self._request(model_name, sig, {k: v[a : a + step] for k, v in inputs.items()})
                    for a in range(0, n, step)
                ]
                return {name: np.concatenate([p[name] for p in parts]) for name in sig.outputs}
        return self._request(model_name, sig, inputs)

    def _request(
        self, model_name: str, sig: ModelSignature, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """One inference request of inputs already checked against ``sig``; outputs checked."""
        m = self._module
        infer_inputs = []
        for name, (_, datatype, _) in sig.inputs.items():
            arr = np.ascontiguousarray(inputs[name])
            ii = m.InferInput(name, list(arr.shape), datatype)
            if self.protocol == "grpc":
                ii.set_data_from_numpy(arr)
            else:
                ii.set_data_from_numpy(arr, binary_data=True)
            infer_inputs.append(ii)
        if self.protocol == "grpc":
            requested = [m.InferRequestedOutput(name) for name in sig.outputs]
        else:
            requested = [m.InferRequestedOutput(name, binary_data=True) for name in sig.outputs]

        result = self._call(
            f"inference of model {model_name}",
            lambda: self._client.infer(model_name, infer_inputs, outputs=requested, **self._timeout_kwargs()),
        )
        first_input_shape = inputs[next(iter(sig.inputs))].shape
        outputs: dict[str, np.ndarray] = {}
        for name, (dtype, _, _) in sig.outputs.items():
            arr = result.as_numpy(name)
            if arr is None:
                raise InferenceServerError(f"model {model_name} on {self.url} returned no output {name!r}")
            want = expected_output_shape(sig, name, first_input_shape)
            if arr.ndim != len(want) or any(
                w is not None and w != s for w, s in zip(want, arr.shape, strict=True)
            ):
                raise InferenceServerError(
                    f"model {model_name} on {self.url}: output {name!r} has shape {list(arr.shape)}, "
                    f"expected {['?' if w is None else w for w in want]} for input shape {list(first_input_shape)}"
                )
            if arr.dtype != dtype:
                raise InferenceServerError(
                    f"model {model_name} on {self.url}: output {name!r} has dtype {arr.dtype}, expected {dtype}"
                )
            outputs[name] = arr
        return outputs

    def model_config(self, model_name: str) -> dict[str, Any]:
        """``spinevcf.json`` of ``model_name`` from the local ``model_repository``.

        Raises:
            ModelError: no ``model_repository`` was given, or the file is missing/invalid.
        """
        if self.model_repository is None:
            raise ModelError(
                f"model {model_name}: TritonBackend was created without model_repository; "
                "spinevcf.json (preprocessing parameters) must be available locally"
            )
        return load_model_config(self.model_repository, model_name)

    def close(self) -> None:
        """Close the connection."""
        try:
            self._client.close()
        except (InferenceServerException, OSError) as exc:
            log.debug("closing the Triton client failed: %s", _short(exc))

    def __enter__(self) -> TritonBackend:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _short(exc: BaseException) -> str:
    """One line describing ``exc`` (Triton messages can span lines)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
