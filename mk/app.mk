# MONAI Deploy application and MAP packaging (issues 4 and 6). Included by the Makefile.
APP_INPUT  ?= out/demo/study
APP_OUTPUT ?= out/app
MEM_STUDY  ?= out/mem-study

.PHONY: map map-build app-run app-mem

## map: stage build/map/ and render the MAP with holoscan-cli 3.11 (builds the image where docker buildx works)
map:
	$(PYTHON) scripts/build_map.py

## map-build: like map, but fail unless the image is built
map-build:
	$(PYTHON) scripts/build_map.py --build

## app-run: run the MONAI Deploy app on one study folder (APP_INPUT) -> APP_OUTPUT
app-run: venv
	$(BIN)/python -m app -i $(APP_INPUT) -o $(APP_OUTPUT)

## app-mem: peak memory of the app on a 400 x 512 x 512 study (the number behind app.yaml resources.memory)
app-mem: venv
	$(BIN)/python scripts/measure_app_memory.py --study $(MEM_STUDY)
