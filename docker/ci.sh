#!/usr/bin/env bash
# Docker tier of CI, against a real engine with no registry access:
#   1. start dockerd (no bridge) and a local registry, unless an engine already answers;
#   2. make a Debian base image with debootstrap, push it locally, pin it by digest;
#   3. download the CPU locks' wheels on the host (TLS is intercepted inside builds);
#   4. build both CPU images with --require-hashes; prove a lock with one wrong hash fails;
#   5. as uid 4242 in both images: HOME and the compile caches writable; the eval image's CUDA system
#      layer (built on the CPU base with an empty lock) compiles a Python.h C file as Triton does;
#   6. run train then eval through compose on a tiny spec and check the run directory;
#   7. hub_scenario: `make run` on an eval-only spec whose model and GSM8K come from a hub served
#      locally (tests/hub_server.py): fetched on the host, evaluated in the image with the hub off,
#      with no local GSM8K copy mounted; the recorded commits and hashes must be what was served.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
COMPOSE_BIN=$($BIN/python -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')
COMPOSE=("$COMPOSE_BIN" -f compose.yaml -f compose.cpu.yaml)
WORK=${REPRO_DOCKER_WORK:-/tmp/repro-docker-ci}
BASE_TAG=repro-base:bookworm-numa
LOG_TAG=docker-ci
HUB_PID=""
# shellcheck source=docker/lib.sh
. docker/lib.sh

cleanup() {
    if [ -n "$HUB_PID" ]; then kill "$HUB_PID" 2>/dev/null || true; fi
    stop_services
}
trap cleanup EXIT

make_base() {
    if ! docker image inspect "$BASE_TAG" >/dev/null 2>&1; then
        log "debootstrap bookworm (python3, venv, libnuma1)"
        rm -rf "$WORK/rootfs"
        debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,libnuma1 \
            bookworm "$WORK/rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1
    fi
    import_pinned "$BASE_TAG" "$WORK/rootfs"
}

# The eval Dockerfile's CUDA system layer (CUDA_MAJOR=13: compiler and Python headers) on the CPU base,
# with an empty lock instead of the GBs of CUDA wheels; then, as uid 4242, a C file including Python.h
# builds with Triton's launcher flags. make test-cuda-images checks the real CUDA eval image the same way.
cuda_system_layer() {
    : >wheels/empty-lock.txt
    log "building the eval image's CUDA system layer on the CPU base (empty lock)"
    # compose.yaml alone: the CUDA build args, tagged repro-eval:cuda-layer (docker build lacks BuildKit here).
    REPRO_TAG=cuda-layer "$COMPOSE_BIN" -f compose.yaml build --build-arg BASE_IMAGE="$REPRO_CPU_BASE" \
        --build-arg LOCKFILE=wheels/empty-lock.txt --build-arg OFFLINE=1 eval >"$WORK/cuda-layer.log" 2>&1 ||
        { tail -20 "$WORK/cuda-layer.log"; exit 1; }
    check_any_uid repro-eval:cuda-layer --compile || { log "FAIL: the CUDA system layer cannot build Triton's launcher"; exit 1; }
}

hub_scenario() {
    local runs="$WORK/hub-runs" cache="$WORK/hub-cache" port=${REPRO_HUB_PORT:-8765} model
    rm -rf "$runs" "$cache" && mkdir -p "$runs" "$cache"
    model=$($BIN/python -c 'from app.inputs.models import embedded_checkpoint; print(embedded_checkpoint())')
    $BIN/python tests/hub_server.py --port "$port" --model "repro-ci/smollm2-135m=$model" \
        --gsm8k-from "${GSM8K_DIR:-../shared/data/gsm8k}" >"$WORK/hub.log" 2>&1 &
    HUB_PID=$!
    for _ in $(seq 30); do grep -q "^serving" "$WORK/hub.log" && break; sleep 1; done
    grep -q "^serving" "$WORK/hub.log" || { log "hub server did not start"; cat "$WORK/hub.log"; exit 1; }
    log "make run SPEC=specs/docker_base_cpu.json from the hub at 127.0.0.1:$port, no local GSM8K"
    # -o: never rebuild the venv from here (make test-docker has already set it up).
    HF_ENDPOINT="http://127.0.0.1:$port" HF_HUB_OFFLINE=0 REPRO_CACHE_DIR="$cache" REPRO_RUNS_DIR="$runs" \
        GSM8K_DIR="$WORK/no-shared-gsm8k" PYTHONPATH="$PWD" \
        make -o "$(dirname "$BIN")/.installed" run SPEC=specs/docker_base_cpu.json
    kill "$HUB_PID" && HUB_PID=""
    $BIN/python docker/check_hub_run.py "$runs"/docker_base_cpu-* "$WORK/hub.log" "$model"
}

# An eval killed (SIGKILL) right after appending its second (last) chunk of predictions, before the
# manifest vouched for it; then `make run`: repro pending lists only `eval` for the trained run, and
# the eval image keeps the recorded first chunk and generates the second again.
resumed_eval() {
    local runs=$1
    log "compose run eval, killed after appending its second chunk of predictions"
    if "${COMPOSE[@]}" run --rm -T -e REPRO_FAULT=predictions.jsonl:appended:2 eval; then
        log "FAIL: the armed eval finished"; exit 1
    fi
    local run=("$runs"/docker_tiny_cpu-*)
    [ "$(wc -l <"${run[0]}/predictions.jsonl")" = 4 ] || { log "FAIL: expected 4 predictions after the kill"; exit 1; }
    [ "$($BIN/repro pending "$SPEC" --runs-dir "$runs")" = eval ] || { log "FAIL: pending is not just eval"; exit 1; }
    log "make run SPEC=$SPEC: resumes the eval in its image from the recorded chunk"
    PYTHONPATH="$PWD" make -o "$(dirname "$BIN")/.installed" run SPEC="$SPEC" | tee "$WORK/resume.log"
    grep -q "stage eval in repro-eval" "$WORK/resume.log" && ! grep -q "stage train" "$WORK/resume.log" \
        || { log "FAIL: make run did not run just the eval"; exit 1; }
    $BIN/python - "${run[0]}/eval_metrics.json" <<'PY' || { log "FAIL: the eval did not resume"; exit 1; }
import json, sys
m = json.load(open(sys.argv[1]))
resumed = m["resumed_with"]
print(f"resumed_with={resumed} n={m['n']}")
sys.exit(resumed != 2 or m["n"] != 4)
PY
    PYTHONPATH="$PWD" make -o "$(dirname "$BIN")/.installed" run SPEC="$SPEC" >"$WORK/again.log"
    grep -q "is complete" "$WORK/again.log" || { log "FAIL: a complete run ran again"; exit 1; }
    log "ok: the interrupted eval resumed through make run; a complete run runs nothing"
}

main() {
    mkdir -p "$WORK"
    install_tools
    start_engine
    start_registry
    REPRO_CPU_BASE=$(make_base)
    export REPRO_CPU_BASE REPRO_OFFLINE=1 GIT_COMMIT
    GIT_COMMIT=$(git rev-parse HEAD 2>/dev/null || echo unknown)
    log "base image $REPRO_CPU_BASE"

    for lock in train-cpu eval-cpu; do
        $BIN/pip download -q --no-deps --require-hashes -r "lockfiles/$lock.txt" -d wheels/ 2>&1 | grep -v "is ignored" || true
    done

    log "building a train image from a lock with one wrong hash (must fail)"
    $BIN/python docker/break_lock.py lockfiles/train-cpu.txt > wheels/broken-lock.txt
    if "${COMPOSE[@]}" build --build-arg LOCKFILE=wheels/broken-lock.txt train >"$WORK/broken.log" 2>&1; then
        log "FAIL: a lock with a wrong hash built"; exit 1
    fi
    grep -q "THESE PACKAGES DO NOT MATCH THE HASHES" "$WORK/broken.log" || { tail -20 "$WORK/broken.log"; exit 1; }
    log "ok: the wrong hash failed the build"

    log "building repro-train:cpu and repro-eval:cpu"
    "${COMPOSE[@]}" build train eval
    log "as uid 4242 (not the images' 1000): HOME and the compile caches are writable"
    for image in repro-train:cpu repro-eval:cpu; do
        check_any_uid "$image" || { log "FAIL: $image: not usable as uid 4242"; exit 1; }
    done
    cuda_system_layer

    local runs="$WORK/runs" cache="$WORK/cache"
    # A uid that is not the images' 1000, as on most hosts (compose's `user:`), owning what is mounted.
    rm -rf "$runs" && mkdir -p "$runs" "$cache" && chown -R 4242:4242 "$runs" "$cache"
    export REPRO_RUNS_DIR="$runs" REPRO_CACHE_DIR="$cache" SPEC=specs/docker_tiny_cpu.json REPRO_UID=4242 REPRO_GID=4242
    REPRO_TRAIN_IMAGE_ID=$(docker image inspect -f '{{.Id}}' repro-train:cpu)
    REPRO_EVAL_IMAGE_ID=$(docker image inspect -f '{{.Id}}' repro-eval:cpu)
    export REPRO_TRAIN_IMAGE_ID REPRO_EVAL_IMAGE_ID
    "${COMPOSE[@]}" run --rm -T train
    resumed_eval "$runs"
    $BIN/python docker/check_run.py "$runs"/docker_tiny_cpu-*
    hub_scenario
}

main "$@"
