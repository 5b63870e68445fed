# Set-up and everyday commands. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
LS_VENV ?= .venv-ls

.PHONY: demo test lint bench labelstudio clean

# llama.cpp for any x86-64 with AVX2, not only the build machine: some virtual machines report CPU features
# (AMX) they do not let a program use, and a -march=native build then dies with an illegal instruction
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# llama-cpp-python compiles from source (about 6 minutes on 2 cores the first time; pip caches the wheel)
$(VENV)/.demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[llamacpp]'
	touch $@

# torch first, the CPU build (pip takes it from this machine's disk); a plain requirement would pull CUDA
$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }
	touch $@ $(VENV)/.demo

demo: $(VENV)/.demo  ## set up, then label the bundled demo data with the embedded model
	$(BIN)/labelloop demo labelloop-demo

# Label Studio's server (Django and its own pins) gets a venv of its own; the tests start it from there
$(LS_VENV)/.done:
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LS_VENV)/bin/python -m pip install --quiet 'label-studio>=1.23,<2'
	touch $@

labelstudio: $(LS_VENV)/.done  ## install the Label Studio server into .venv-ls (about a minute)

lint: $(VENV)/.dev  ## ruff (lint and format) and mypy on the package
	$(BIN)/ruff check labelloop tests benchmarks
	$(BIN)/ruff format --check labelloop
	$(BIN)/mypy

test: $(VENV)/.dev $(LS_VENV)/.done lint  ## set up, lint, then run the whole test suite
	$(BIN)/python -m pytest

bench: $(VENV)/.dev  ## throughput benchmark (prints ratios against its baselines)
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf $(VENV) $(LS_VENV) labelloop-demo
