# ---- BEGIN issue 14: batch screening at scale and the Kubernetes deployment ----
#   make deploy-render [DEPLOY_TREE=deploy/kustomize/overlays/dicomweb]   # YAML on stdout
#   make deploy-check      # render, validate against the Kubernetes schemas, check consistency
#   make bench-workers     # docs/scale-out.md: studies/h of `spinevcf run` for 0, 1, 2 workers
DEPLOY_TREE ?= deploy/kustomize/base
SCALEOUT_DIR ?= build/scaleout
SCALEOUT_CASES ?= 20
SCALEOUT_SEED ?= 930000

.PHONY: deploy-render deploy-check bench-workers

deploy-render: venv
	$(BIN)/python scripts/deploy/render_kustomize.py $(DEPLOY_TREE)

deploy-check: venv
	$(BIN)/python scripts/deploy/check_deploy.py

$(SCALEOUT_DIR)/studies/.done:
	$(BIN)/spinevcf synth $(SCALEOUT_DIR)/studies --cases $(SCALEOUT_CASES) --seed $(SCALEOUT_SEED)
	touch $@

bench-workers: venv $(SCALEOUT_DIR)/studies/.done
	uptime
	$(BIN)/python scripts/deploy/bench_workers.py $(SCALEOUT_DIR)/studies $(SCALEOUT_DIR)/runs \
		--config serial:0 --config w1:1 --config w2:2
	uptime
# ---- END issue 14 ----
