# rnnbench: two commands do everything on a fresh machine.
#   make run    create the environment if needed, then `dvc repro` (the whole comparison)
#   make test   create the environment if needed, then lint and the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# DVC stages call `python`: the environment's, whoever starts make.
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true

.PHONY: run test lint bench ui env

run: $(VENV)/.installed
	dvc repro

test: $(VENV)/.installed
	ruff check .
	pytest

lint: $(VENV)/.installed
	ruff check .

bench: $(VENV)/.installed
	python -m benchmarks.train_throughput
	python -m benchmarks.tokenize

ui: $(VENV)/.installed
	rnnbench ui

env: $(VENV)/.installed

# torch first and alone, by pip: asking for it with everything else can pull GPU builds we do
# not need, and pip's own configuration knows where a CPU build lies. The other 170 pinned
# packages go in with uv, which fetches them in parallel (9 s instead of pip's 42 s), compiled
# to bytecode as pip does: every stage is a new process, and where PYTHONDONTWRITEBYTECODE is
# set each one would compile its imports again (12 s instead of 7 s to import the trainer).
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "torch==2.13.0" "uv==0.13.8"
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -c requirements.lock -e ".[dev]"
	touch $@
