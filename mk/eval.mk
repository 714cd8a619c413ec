# Evaluation of the committed models (issue 3): 50 fresh synthetic studies and the real chest CT.
EVAL_DIR   ?= build/eval
EVAL_SEED  ?= 900000
EVAL_CASES ?= 50
# The evaluation studies use the generator's default settings (fracture rate, fields of
# view, scanners): about half of the patients have at least one fracture.

.PHONY: evaluate

## evaluate: generate EVAL_CASES studies from seeds EVAL_SEED.., run the models, print the metrics
# The studies live in EVAL_DIR/generator-<version>: a new generator version makes new studies.
evaluate: venv
	@gen=$$($(BIN)/python -c 'from spinevcf.synth import GENERATOR_VERSION as v; print(v)'); \
	d=$(EVAL_DIR)/generator-$$gen; set -x; \
	test -d $$d/truth || $(BIN)/spinevcf synth $$d/truth --cases $(EVAL_CASES) --seed $(EVAL_SEED); \
	rm -rf $$d/results; \
	$(BIN)/spinevcf run $$d/truth $$d/results --no-progress; \
	$(BIN)/spinevcf evaluate $$d/truth $$d/results --json $$d/metrics.json

