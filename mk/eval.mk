# Evaluation of the committed models (issue 3): 50 fresh synthetic studies and the real chest CT.
EVAL_DIR   ?= build/eval
EVAL_SEED  ?= 900000
EVAL_CASES ?= 50
# The evaluation studies use the generator's default settings (fracture rate, fields of
# view, scanners): about half of the patients have at least one fracture.

# Issue 13: scans cut inside vertebral bodies at both ends (1-5 mm slices, 150-250 mm in-plane
# fields centred on the spine or the aorta: `spinevcf synth --preset cut`), in the default
# anatomy family and in the held-out family (never used for training or model choice;
# docs/synthetic-data.md). Reported beside the `make evaluate` figures; tune nothing on them.
EVAL_CUT_SEED      ?= 910000
EVAL_CUT_CASES     ?= 60
EVAL_HELDOUT_SEED  ?= 920000
EVAL_HELDOUT_CASES ?= 40

.PHONY: evaluate evaluate-cut evaluate-heldout evaluate-cut-data evaluate-heldout-data

GEN_VERSION = $$($(BIN)/python -c 'from spinevcf.synth import GENERATOR_VERSION as v; print(v)')

## evaluate: generate EVAL_CASES studies from seeds EVAL_SEED.., run the models, print the metrics
# The studies live in EVAL_DIR/generator-<version>: a new generator version makes new studies.
evaluate: venv
	@gen=$$($(BIN)/python -c 'from spinevcf.synth import GENERATOR_VERSION as v; print(v)'); \
	d=$(EVAL_DIR)/generator-$$gen; set -x; \
	test -d $$d/truth || $(BIN)/spinevcf synth $$d/truth --cases $(EVAL_CASES) --seed $(EVAL_SEED); \
	rm -rf $$d/results; \
	$(BIN)/spinevcf run $$d/truth $$d/results --no-progress; \
	$(BIN)/spinevcf evaluate $$d/truth $$d/results --json $$d/metrics.json

# $(call eval_synth,<subfolder>,<seed>,<cases>,<extra synth options>): the studies, made once
# (EVAL_DIR/generator-<version>/<subfolder>/truth; the .complete stamp marks a finished set).
define eval_synth
	@d=$(EVAL_DIR)/generator-$(GEN_VERSION)/$(1); set -x; \
	test -f $$d/truth.complete || { rm -rf $$d/truth && \
	  $(BIN)/spinevcf synth $$d/truth --cases $(3) --seed $(2) --preset cut $(4) > $$d.synth.log && \
	  touch $$d/truth.complete; }
endef

# $(call eval_run,<subfolder>): run the application on the studies and evaluate.
define eval_run
	@d=$(EVAL_DIR)/generator-$(GEN_VERSION)/$(1); set -x; \
	rm -rf $$d/results; \
	$(BIN)/spinevcf run $$d/truth $$d/results --no-progress; \
	$(BIN)/spinevcf evaluate $$d/truth $$d/results --json $$d/metrics.json
endef

## evaluate-cut-data: only generate the cut-FOV studies (default family, seeds EVAL_CUT_SEED..)
evaluate-cut-data: venv
	@mkdir -p $(EVAL_DIR)/generator-$(GEN_VERSION)
	$(call eval_synth,cut,$(EVAL_CUT_SEED),$(EVAL_CUT_CASES),)

## evaluate-heldout-data: only generate the held-out-family cut-FOV studies (seeds EVAL_HELDOUT_SEED..)
evaluate-heldout-data: venv
	@mkdir -p $(EVAL_DIR)/generator-$(GEN_VERSION)
	$(call eval_synth,heldout,$(EVAL_HELDOUT_SEED),$(EVAL_HELDOUT_CASES),--family heldout)

## evaluate-cut: EVAL_CUT_CASES default-family studies cut inside bodies at both ends, 1-5 mm, 150-250 mm fields
evaluate-cut: evaluate-cut-data
	$(call eval_run,cut)

## evaluate-heldout: EVAL_HELDOUT_CASES held-out-family studies (cut preset): generalisation only
evaluate-heldout: evaluate-heldout-data
	$(call eval_run,heldout)
