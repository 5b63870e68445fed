# Set-up and everyday commands. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# llama-cpp-python compiles from source (about 6 minutes on 2 cores the first time; pip caches the wheel)
$(VENV)/.demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[llamacpp]'
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	touch $@ $(VENV)/.demo

demo: $(VENV)/.demo  ## set up, then label the bundled demo data with the embedded model
	$(BIN)/labelloop demo labelloop-demo

test: $(VENV)/.dev  ## set up, then run the whole test suite
	$(BIN)/python -m pytest

bench: $(VENV)/.dev  ## throughput benchmark (prints ratios against its baselines)
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf $(VENV) labelloop-demo
