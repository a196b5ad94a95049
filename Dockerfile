# Evaluation image: vLLM and the torch it pins, from a hashed lock; HF hub access off. The CPU
# variant swaps BASE_IMAGE and LOCKFILE (compose.cpu.yaml); nothing else differs.
ARG BASE_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04@sha256:ebef3c171eeef0298e4eb2e4be843105edf3b8b0ac45e0b43acee358e8046867
FROM ${BASE_IMAGE}

ARG BASE_IMAGE
ARG LOCKFILE=lockfiles/eval-cuda.txt
ARG GIT_COMMIT=unknown
ARG OFFLINE=0
LABEL org.opencontainers.image.title="repro-eval" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}" \
      io.repro.lockfile="${LOCKFILE}"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH PYTHONPATH=/opt/repro

# System packages from the base's distribution, installed only when the base lacks them
# (CUDA bases ship no Python; the CPU base made by docker/ci.sh has them all).
ARG SYSTEM_PACKAGES="python3 python3-venv ca-certificates libnuma1"
# hadolint ignore=DL3008
RUN if ! dpkg -s $SYSTEM_PACKAGES >/dev/null 2>&1; then \
        apt-get update && apt-get install -y --no-install-recommends $SYSTEM_PACKAGES \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && python3 -m venv /opt/venv \
    && useradd --create-home --uid 1000 repro

COPY ${LOCKFILE} /opt/repro/lock.txt
# Only hashed wheels from the lock, with no dependency resolution. wheels/ is an optional local
# wheelhouse and secret "ca" an optional CA bundle (TLS proxies); neither changes what installs.
RUN --mount=type=bind,source=wheels,target=/wheels \
    --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; \
    if [ "$OFFLINE" = 1 ]; then export PIP_NO_INDEX=1; fi; \
    pip install --no-cache-dir --no-deps --require-hashes --find-links /wheels -r /opt/repro/lock.txt

COPY app /opt/repro/app
ENV REPRO_IMAGE=repro-eval REPRO_BASE_IMAGE=${BASE_IMAGE} REPRO_GIT_COMMIT=${GIT_COMMIT} \
    REPRO_LOCKFILE=/opt/repro/lock.txt REPRO_CACHE=/cache HF_HOME=/cache/hf GSM8K_DIR=/data/gsm8k \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 VLLM_NO_USAGE_STATS=1
USER 1000:1000
WORKDIR /work
ENTRYPOINT ["python", "-m", "app"]
CMD ["--help"]
