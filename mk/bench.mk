# ---- issue 7: performance benchmark (docs/performance.md) ----
# Included by the Makefile (-include mk/*.mk); `bench` is already in its .PHONY list.
#   make bench                                  # full run: 150/300/600 slices, 5 repeats, start-up
#   make bench BENCH_ARGS="--quick"             # smoke test
#   make bench-triton                           # the same plus the Triton part (starts and stops the
#                                               # python-backend server of `make triton`)
BENCH_WORKDIR ?= build/bench
BENCH_OUT ?= $(BENCH_WORKDIR)/bench.json
BENCH_ARGS ?=
BENCH_TRITON_URL ?= 127.0.0.1:$(or $(TRITON_GRPC_PORT),8001)

.PHONY: bench-triton

bench: venv
	$(BIN)/spinevcf bench --workdir $(BENCH_WORKDIR) --out $(BENCH_OUT) $(BENCH_ARGS)

bench-triton: venv triton
	$(BIN)/spinevcf bench --workdir $(BENCH_WORKDIR) --out $(BENCH_OUT) --triton-url $(BENCH_TRITON_URL) $(BENCH_ARGS) \
		|| { scripts/triton/stop.sh --state-dir $(or $(TRITON_STATE_DIR),build/triton); exit 1; }
	scripts/triton/stop.sh --state-dir $(or $(TRITON_STATE_DIR),build/triton)
# ---- end issue 7 ----
