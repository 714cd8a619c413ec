# spinevcf — the README's two commands: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.spinevcf-installed
DEMO_DIR ?= out/demo

.PHONY: all venv sysdeps test test-fast demo lint bench clean help

all: test

help:
	@echo "make demo   - set up, generate a synthetic study, run the app, print the findings"
	@echo "make test   - set up and run the test suite"
	@echo "make lint   - ruff"
	@echo "make bench  - latency / memory benchmark (see docs/performance.md)"

$(STAMP): pyproject.toml requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU build of torch first, so that no later requirement pulls a CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

sysdeps:
	@bash scripts/install_system_deps.sh
	@bash scripts/orthanc/install_orthanc.sh || echo "sysdeps: Orthanc not installed (the pacs tests will skip)"

test: venv sysdeps
	$(BIN)/python -m pytest -q

test-fast: venv
	$(BIN)/python -m pytest -q -x -m "not slow and not triton and not pacs"

lint: venv
	$(BIN)/ruff check spinevcf app operators export scripts tests

demo: venv
	$(BIN)/python scripts/demo.py --out $(DEMO_DIR)

clean:
	rm -rf build out .pytest_cache

-include mk/*.mk
