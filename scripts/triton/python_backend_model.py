"""Triton python-backend model that runs ``model.onnx`` (same folder) with ONNX Runtime.

Template used by ``scripts/triton/make_python_repo.py``, which copies it to
``<repo>/<model>/1/model.py`` and fills :data:`EXTRA_SITE_PACKAGES`. It lets the
``tritonserver`` bundled in the nvidia-pytriton wheel (python backend only, no
onnxruntime backend) serve the exact ONNX files of ``model_repository/`` with
the same tensor names and dims, for local integration tests.

The backend stub ignores PYTHONPATH and starts with the base interpreter's
site-packages (which may hold numpy 2, with which the python backend returns
empty outputs), so the server venv's site-packages are put FIRST on sys.path
before numpy is imported.
"""

import sys

#: Filled in by make_python_repo.py: the Triton server venv's site-packages.
EXTRA_SITE_PACKAGES: list[str] = []

for _path in reversed(EXTRA_SITE_PACKAGES):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import json  # noqa: E402
import os  # noqa: E402

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

#: Parameter keys read from config.pbtxt.
PARAM_ONNX_FILE = "onnx_file"
PARAM_INTRA_OP_THREADS = "intra_op_threads"


def _param(config: dict, key: str, default: str) -> str:
    return config.get("parameters", {}).get(key, {}).get("string_value", default)


class TritonPythonModel:
    """Runs each request through one ONNX Runtime CPU session."""

    def initialize(self, args: dict) -> None:
        """Load the ONNX file named in the config's parameters."""
        config = json.loads(args["model_config"])
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        path = os.path.join(version_dir, _param(config, PARAM_ONNX_FILE, "model.onnx"))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(_param(config, PARAM_INTRA_OP_THREADS, "1"))
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        declared_in = [i["name"] for i in config["input"]]
        declared_out = [o["name"] for o in config["output"]]
        if declared_in != self.input_names or declared_out != self.output_names:
            raise pb_utils.TritonModelException(
                f"{args['model_name']}: config tensors {declared_in} -> {declared_out} differ from "
                f"the ONNX file's {self.input_names} -> {self.output_names}"
            )

    def execute(self, requests: list) -> list:
        """One response per request (the dynamic batcher may hand over several)."""
        responses = []
        for request in requests:
            try:
                feeds = {n: pb_utils.get_input_tensor_by_name(request, n).as_numpy() for n in self.input_names}
                wanted = set(request.requested_output_names()) or set(self.output_names)
                values = self.session.run(self.output_names, feeds)
                tensors = [
                    pb_utils.Tensor(n, np.ascontiguousarray(v))
                    for n, v in zip(self.output_names, values, strict=True)
                    if n in wanted
                ]
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            except Exception as exc:  # report every failure to the client instead of killing the stub
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"{type(exc).__name__}: {exc}")))
        return responses

    def finalize(self) -> None:
        """Release the session."""
        self.session = None
