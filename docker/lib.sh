# Shell functions shared by the Docker tiers (docker/ci.sh: CPU images; docker/cuda_images.sh: CUDA
# images), sourced, never run. The caller sets WORK (a scratch directory) and LOG_TAG, and calls
# stop_services from its EXIT trap: only what these functions started is stopped.
REGISTRY=${REGISTRY:-127.0.0.1:5000}
DOCKERD_PID="" REGISTRY_PID=""
export DOCKER_BUILDKIT=1

log() { echo "${LOG_TAG:-docker}: $*" >&2; }

# Stops the registry and the engine if this script started them (an engine already running stays).
stop_services() {
    if [ -n "$REGISTRY_PID" ]; then kill "$REGISTRY_PID" 2>/dev/null || true; fi
    if [ -n "$DOCKERD_PID" ]; then
        log "stopping dockerd (pid $DOCKERD_PID)"
        kill "$DOCKERD_PID" 2>/dev/null || true
        wait "$DOCKERD_PID" 2>/dev/null || true
    fi
}

install_tools() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v docker-registry >/dev/null || missing+=(docker-registry)
    command -v docker-init >/dev/null || missing+=(tini)  # compose's `init: true`: signals reach repro
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

start_engine() {
    if docker info >/dev/null 2>&1; then log "using the running engine"; return; fi
    dockerd --bridge=none --iptables=false --ip-masq=false --ip-forward=false >"$WORK/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { log "dockerd did not start"; tail -20 "$WORK/dockerd.log"; exit 1; }
    log "started dockerd (pid $DOCKERD_PID)"
}

start_registry() {
    if curl -sf "http://$REGISTRY/v2/" >/dev/null 2>&1; then return; fi
    mkdir -p /tmp/repro-registry
    docker-registry serve docker/registry.yml >"$WORK/registry.log" 2>&1 &
    REGISTRY_PID=$!
    for _ in $(seq 30); do curl -sf "http://$REGISTRY/v2/" >/dev/null 2>&1 && return; sleep 1; done
    log "registry did not start"; exit 1
}

# Imports a root file system directory as image TAG (once), pushes it to the local registry and
# prints its REGISTRY/TAG@sha256:… reference, so builds pull `FROM …@sha256:` for real.
import_pinned() {
    local tag=$1 rootfs=$2
    if ! docker image inspect "$tag" >/dev/null 2>&1; then
        tar -C "$rootfs" -c . | docker import - "$tag" >/dev/null
    fi
    docker tag "$tag" "$REGISTRY/$tag"
    docker push -q "$REGISTRY/$tag" >/dev/null
    docker image inspect -f '{{index .RepoDigests 0}}' "$REGISTRY/$tag"
}

# Runs docker/check_image_user.py in IMAGE as uid:gid 4242:4242 (neither the image's 1000 nor root, no
# passwd entry: what compose's `user:` gives most hosts), with no network and nothing mounted. Extra
# arguments go to the script (--compile: a Python.h C file builds as Triton builds its launcher).
check_any_uid() {
    local image=$1
    shift
    docker run --rm -i --network none --user 4242:4242 --entrypoint python "$image" - "$@" <docker/check_image_user.py
}
