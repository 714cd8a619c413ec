"""TritonBackend against the real (bundled) Triton server over gRPC and HTTP, and its error handling."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

import spinevcf.inference.triton_backend as tb
from spinevcf.errors import InferenceServerError, ModelError
from spinevcf.inference.base import DETECTOR_MODEL, LOCALIZER_MODEL, InferenceBackend
from spinevcf.inference.factory import make_backend
from spinevcf.inference.onnx_backend import OnnxRuntimeBackend
from spinevcf.inference.triton_backend import ModelSignature, TritonBackend, expected_output_shape

PROTOCOLS = ["grpc", "http"]
SAME_GRAPH_ATOL = 1e-5
#: Bound on how long a connection attempt to a closed port may take (retries included).
UNREACHABLE_BOUND_S = 5.0
SHAPES = {
    LOCALIZER_MODEL: [(1, 1, 32, 48, 64), (1, 1, 48, 32, 32)],
    DETECTOR_MODEL: [(2, 2, 128, 64), (1, 2, 96, 160)],
}


def _image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


class _CountingInfer:
    """Wraps a client's infer() to count requests and record their arguments."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.calls: list[dict[str, Any]] = []

    def __call__(self, model_name: str, inputs: list, **kwargs: Any) -> Any:
        self.calls.append({"model": model_name, "inputs": inputs, **kwargs})
        return self.fn(model_name, inputs, **kwargs)


@pytest.mark.triton
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_outputs_equal_onnxruntime(triton_server, protocol: str) -> None:
    ort_backend = OnnxRuntimeBackend(triton_server.onnx_repository, intra_op_threads=1)
    with TritonBackend(
        triton_server.url(protocol), protocol=protocol, model_repository=triton_server.onnx_repository
    ) as backend:
        assert isinstance(backend, InferenceBackend)
        counter = _CountingInfer(backend._client.infer)
        backend._client.infer = counter
        for model, shapes in SHAPES.items():
            for k, shape in enumerate(shapes):
                x = _image(shape, seed=k)
                ref = ort_backend.infer(model, {"image": x})
                before = len(counter.calls)
                out = backend.infer(model, {"image": x})
                assert len(counter.calls) == before + 1, "all outputs must come from ONE request"
                assert list(out) == list(ref)
                for name in ref:
                    assert out[name].shape == ref[name].shape and out[name].dtype == np.float32
                    np.testing.assert_allclose(
                        out[name], ref[name], rtol=0, atol=SAME_GRAPH_ATOL, err_msg=name
                    )
        # The per-request timeout travels with each gRPC call; HTTP sets it on the client.
        if protocol == "grpc":
            assert all(c["client_timeout"] == backend.timeout_s for c in counter.calls)
        assert backend.model_config(DETECTOR_MODEL)["divisible_by"] == 32


@pytest.mark.triton
def test_server_start_time_is_reported(triton_server) -> None:
    assert 0 < triton_server.start_seconds < 60


@pytest.mark.triton
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_missing_model_is_named(triton_server, protocol: str) -> None:
    with pytest.raises(
        InferenceServerError, match=r"model no_such_model is not ready on the server at 127\.0\.0\.1:\d+"
    ):
        TritonBackend(triton_server.url(protocol), protocol=protocol, models=("no_such_model",))


@pytest.mark.triton
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_wrong_input_is_rejected_before_sending(triton_server, protocol: str) -> None:
    backend = TritonBackend(triton_server.url(protocol), protocol=protocol)
    counter = _CountingInfer(backend._client.infer)
    backend._client.infer = counter
    with pytest.raises(
        ValueError, match=r"input 'image' must have shape \[-?\?, 2, \?, \?\].*got \[1, 3, 64, 64\]"
    ):
        backend.infer(DETECTOR_MODEL, {"image": _image((1, 3, 64, 64))})
    with pytest.raises(ValueError, match=r"batch size 0 is empty"):
        backend.infer(LOCALIZER_MODEL, {"image": _image((0, 1, 32, 32, 32))})
    with pytest.raises(TypeError, match="dtype float32"):
        backend.infer(DETECTOR_MODEL, {"image": np.zeros((1, 2, 64, 64))})
    assert counter.calls == []


@pytest.mark.triton
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_batch_above_max_batch_size_goes_as_several_requests(triton_server, protocol: str) -> None:
    """The localizer is served with max_batch_size 1: a batch of 3 is three requests, joined in order;
    the detector's seven readings against a server configured for 4 are two requests (4 + 3)."""
    ort_backend = OnnxRuntimeBackend(triton_server.onnx_repository, intra_op_threads=1)
    backend = TritonBackend(triton_server.url(protocol), protocol=protocol)
    counter = _CountingInfer(backend._client.infer)
    backend._client.infer = counter
    x = _image((3, 1, 32, 32, 32), seed=3)
    out = backend.infer(LOCALIZER_MODEL, {"image": x})
    assert len(counter.calls) == 3
    ref = ort_backend.infer(LOCALIZER_MODEL, {"image": x})
    for name in ref:
        assert out[name].shape == ref[name].shape
        np.testing.assert_allclose(out[name], ref[name], rtol=0, atol=SAME_GRAPH_ATOL, err_msg=name)
    sig = backend.signature(DETECTOR_MODEL)
    backend._signatures[DETECTOR_MODEL] = ModelSignature(sig.name, sig.inputs, sig.outputs, 4)
    x = _image((7, 2, 64, 64), seed=4)
    out = backend.infer(DETECTOR_MODEL, {"image": x})
    assert [c["inputs"][0].shape() for c in counter.calls[3:]] == [[4, 2, 64, 64], [3, 2, 64, 64]]
    ref = ort_backend.infer(DETECTOR_MODEL, {"image": x})
    for name in ref:
        np.testing.assert_allclose(out[name], ref[name], rtol=0, atol=SAME_GRAPH_ATOL, err_msg=name)


@pytest.mark.triton
def test_server_side_rejection_is_not_retried(triton_server, monkeypatch: pytest.MonkeyPatch) -> None:
    """A request the server refuses (here: a batch above max_batch_size) fails at once with the server's reason."""
    backend = TritonBackend(triton_server.grpc_url, retries=3)
    sig = backend.signature(LOCALIZER_MODEL)
    monkeypatch.setitem(
        backend._signatures, LOCALIZER_MODEL, ModelSignature(sig.name, sig.inputs, sig.outputs, 8)
    )
    counter = _CountingInfer(backend._client.infer)
    backend._client.infer = counter
    with pytest.raises(InferenceServerError, match=r"inference of model spine_localizer_3d at .* failed"):
        backend.infer(LOCALIZER_MODEL, {"image": _image((2, 1, 32, 32, 32))})
    assert len(counter.calls) == 1


@pytest.mark.triton
def test_wrong_output_shape_is_caught(triton_server) -> None:
    backend = TritonBackend(triton_server.grpc_url)

    class _Result:
        def as_numpy(self, name: str) -> np.ndarray:
            return np.zeros((1, 1, 8, 8), np.float32)

    backend._client.infer = lambda *a, **k: _Result()
    with pytest.raises(
        InferenceServerError, match=r"output 'heatmap' has shape \[1, 1, 8, 8\], expected \[1, 1, 16, 16\]"
    ):
        backend.infer(DETECTOR_MODEL, {"image": _image((1, 2, 64, 64))})


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_server_down_fails_fast(closed_port_url: str, protocol: str) -> None:
    url = closed_port_url
    t0 = time.perf_counter()
    with pytest.raises(InferenceServerError, match=rf"Triton server at {url} is not reachable"):
        TritonBackend(url, protocol=protocol, timeout_s=2, retries=1)
    assert time.perf_counter() - t0 < UNREACHABLE_BOUND_S
    with pytest.raises(InferenceServerError, match="not reachable"):
        make_backend("model_repository", triton_url=url, protocol=protocol, timeout_s=2, retries=0)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="protocol"):
        TritonBackend("127.0.0.1:1", protocol="ftp")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout_s"):
        TritonBackend("127.0.0.1:1", timeout_s=0)
    with pytest.raises(ValueError, match="retries"):
        TritonBackend("127.0.0.1:1", retries=-1)


def _bare_backend(retries: int) -> TritonBackend:
    backend = TritonBackend.__new__(TritonBackend)
    backend.url, backend.protocol, backend.timeout_s, backend.retries = "h:1", "grpc", 1.0, retries
    return backend


def test_transient_errors_are_retried_with_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr(tb.time, "sleep", sleeps.append)
    outcomes: list[Any] = [
        InferenceServerException("unavailable", status="StatusCode.UNAVAILABLE"),
        InferenceServerException("unavailable", status="StatusCode.UNAVAILABLE"),
        "ok",
    ]

    def flaky() -> str:
        item = outcomes.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    assert _bare_backend(retries=2)._call("test", flaky) == "ok"
    assert sleeps == [tb.BACKOFF_BASE_S, 2 * tb.BACKOFF_BASE_S]


def test_retries_are_bounded_and_permanent_errors_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tb.time, "sleep", lambda s: None)
    calls = []

    def down() -> None:
        calls.append(1)
        raise InferenceServerException("connection refused", status="StatusCode.UNAVAILABLE")

    with pytest.raises(InferenceServerError, match="not reachable"):
        _bare_backend(retries=2)._call("test", down)
    assert len(calls) == 3

    calls.clear()

    def invalid() -> None:
        calls.append(1)
        raise InferenceServerException("bad shape", status="StatusCode.INVALID_ARGUMENT")

    with pytest.raises(InferenceServerError, match=r"failed: InferenceServerException: .*bad shape"):
        _bare_backend(retries=2)._call("test", invalid)
    assert len(calls) == 1

    def slow() -> None:
        raise InferenceServerException("Deadline Exceeded", status="StatusCode.DEADLINE_EXCEEDED")

    with pytest.raises(InferenceServerError, match="timed out after 1 s"):
        _bare_backend(retries=2)._call("test", slow)


def test_expected_output_shape_rule() -> None:
    f32 = np.dtype(np.float32)
    sig = ModelSignature(
        DETECTOR_MODEL,
        {"image": (f32, "FP32", (-1, 2, -1, -1))},
        {"keypoints": (f32, "FP32", (-1, 12, -1, -1))},
        8,
    )
    assert expected_output_shape(sig, "keypoints", (3, 2, 640, 128)) == (3, 12, 160, 32)
    assert expected_output_shape(sig, "keypoints", (1, 2, 66, 130)) == (1, 12, 17, 33)
    other = ModelSignature("other", sig.inputs, sig.outputs, 0)
    assert expected_output_shape(other, "keypoints", (3, 2, 64, 64)) == (None, 12, None, None)


def test_model_config_needs_a_local_repository() -> None:
    backend = _bare_backend(retries=0)
    backend.model_repository = None
    with pytest.raises(ModelError, match="without model_repository"):
        backend.model_config(DETECTOR_MODEL)
