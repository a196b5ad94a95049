#!/usr/bin/env bash
# `make run` through the two images, with `repro run`'s stage logic: run only the SPEC's stages that
# are not complete (an eval-only spec goes straight to the eval image; a trained run is only
# evaluated; a complete run does nothing), and resume what an earlier attempt left unfinished
# (the train service passes --resume; `repro eval` resumes predictions.jsonl by itself).
# Needs: BIN (the venv's bin), SPEC, REPRO_RUNS_DIR (absolute: compose mounts it), REPRO_TAG, and
# COMPOSE_FILES (the -f options).
set -euo pipefail
compose_bin=$("$BIN/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')
read -r -a compose_files <<<"$COMPOSE_FILES"
stages=$("$BIN/repro" pending "$SPEC" --runs-dir "$REPRO_RUNS_DIR")
if [ -z "$stages" ]; then
  echo "make run: $SPEC is complete in $REPRO_RUNS_DIR (nothing to run)"
  exit 0
fi
for stage in $stages; do
  image_id=$(docker image inspect -f '{{.Id}}' "repro-$stage:$REPRO_TAG")
  echo "make run: stage $stage in repro-$stage:$REPRO_TAG"
  if [ "$stage" = train ]; then
    REPRO_TRAIN_IMAGE_ID=$image_id "$compose_bin" "${compose_files[@]}" run --rm -T train
  else
    REPRO_EVAL_IMAGE_ID=$image_id "$compose_bin" "${compose_files[@]}" run --rm -T eval
  fi
done
