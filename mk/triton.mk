# ---- BEGIN issue 5: Triton serving and ONNX export (targets: triton, triton-stop, export) ----
# Include from the Makefile with:  include mk/triton.mk
#   make export CHECKPOINTS="runs/localizer/best.pt runs/detector/best.pt"
#   make triton          # python-backend tritonserver on 127.0.0.1:$(TRITON_HTTP_PORT)/$(TRITON_GRPC_PORT)
#   make triton-stop
TRITON_MAIN_PY ?= .venv/bin/python
MODEL_REPOSITORY ?= model_repository
CHECKPOINTS ?=
TRITON_HTTP_PORT ?= 8000
TRITON_GRPC_PORT ?= 8001
TRITON_STATE_DIR ?= build/triton
TRITON_PYTHON_REPO ?= build/triton_python_repo

.PHONY: triton triton-stop export

export:
	@test -n "$(CHECKPOINTS)" || { echo 'usage: make export CHECKPOINTS="a.pt b.pt"' >&2; exit 2; }
	$(TRITON_MAIN_PY) -m export.export_onnx $(CHECKPOINTS) --out $(MODEL_REPOSITORY)

triton:
	scripts/triton/setup_venv.sh
	$(TRITON_MAIN_PY) scripts/triton/make_python_repo.py $(MODEL_REPOSITORY) $(TRITON_PYTHON_REPO) --venv-python .triton-venv/bin/python
	scripts/triton/start.sh $(TRITON_PYTHON_REPO) --http-port $(TRITON_HTTP_PORT) --grpc-port $(TRITON_GRPC_PORT) --state-dir $(TRITON_STATE_DIR)

triton-stop:
	scripts/triton/stop.sh --state-dir $(TRITON_STATE_DIR)
# ---- END issue 5 ----
