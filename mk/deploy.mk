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

# The committed code is frozen into $(SCALEOUT_DIR)/code first (git archive HEAD), so that edits
# to the working tree during the runs cannot change the findings between configurations.
bench-workers: venv $(SCALEOUT_DIR)/studies/.done
	rm -rf $(SCALEOUT_DIR)/code && mkdir -p $(SCALEOUT_DIR)/code
	git archive HEAD spinevcf model_repository | tar -x -C $(SCALEOUT_DIR)/code
	uptime
	$(BIN)/python scripts/deploy/bench_workers.py $(SCALEOUT_DIR)/studies $(SCALEOUT_DIR)/runs \
		--code $(SCALEOUT_DIR)/code --config serial:0 --config w1:1 --config w2:2 --config w1b:1 --config w2b:2
	uptime
# ---- END issue 14 ----
