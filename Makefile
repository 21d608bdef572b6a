# The two commands of README.md: `make remake` runs the main job, `make test` runs the tests.
# Both set up .venv from the project's own files first (idempotent).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SAMPLE ?= ../shared/media/samples/big_buck_bunny_0_30.webm
# The user's own clips and photos the remake is cut from (read in place); MEDIA= (empty): the compositor.
MEDIA ?= ../shared/media/footage
OUT ?= out
PYTEST_ARGS ?=

$(BIN)/lookalike: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, from this machine's local wheels (a CUDA build that runs on the CPU), so that the
	# ranges of the `ml` extra find it satisfied and pull nothing else (LPIPS/FID paths need it).
	$(BIN)/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install --quiet -e '.[dev,ml]'
	# PySceneDetect (the shot benchmark's peer) and RapidOCR (on-screen text) both declare the full
	# opencv-python, which would shadow our headless OpenCV: install them without it.
	$(BIN)/python -m pip install --quiet --no-deps 'scenedetect>=0.6' rapidocr_onnxruntime
	$(BIN)/python -m pip install --quiet pyclipper shapely onnxruntime six click platformdirs tqdm
	touch $(BIN)/lookalike

.PHONY: setup system-deps remake test lint bench
setup: $(BIN)/lookalike

# Debian's prometheus (server and promtool) for the monitoring tests; does nothing when present.
system-deps:
	bash deploy/ci-deps.sh

remake: setup
	$(BIN)/lookalike remake $(SAMPLE) $(if $(MEDIA),--media $(MEDIA)) --out $(OUT)

test: setup system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python bench/remake.py
