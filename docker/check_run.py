"""Check a run directory written by the two CPU images (docker/ci.sh): complete, recorded, untouched."""

import hashlib
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.env.fingerprint import audit, latest_env  # noqa: E402


def main(run: Path) -> int:
    problems = []
    status = json.loads((run / "status.json").read_text())
    if status["state"] != "complete":
        problems.append(f"status is {status['state']}")
    env = json.loads((run / "env.json").read_text())
    for stage, lock in (("train", "train-cpu"), ("eval", "eval-cpu")):
        recorded = latest_env(env, stage)
        image = recorded["image"]
        want_id = os.environ[f"REPRO_{stage.upper()}_IMAGE_ID"]
        if image["REPRO_IMAGE_ID"] != want_id:
            problems.append(f"{stage}: image id {image['REPRO_IMAGE_ID']} != {want_id}")
        if image["REPRO_IMAGE"] != f"repro-{stage}":
            problems.append(f"{stage}: ran in {image['REPRO_IMAGE']}")
        lock_sha = hashlib.sha256(Path(f"lockfiles/{lock}.txt").read_bytes()).hexdigest()
        if recorded["lockfile"]["sha256"] != lock_sha:
            problems.append(f"{stage}: lockfile sha256 differs from lockfiles/{lock}.txt")
    metrics = json.loads((run / "eval_metrics.json").read_text())
    if metrics["engine"]["backend"] != "vllm" or metrics["n"] != 4:
        problems.append(f"eval: unexpected metrics {metrics['engine']} n={metrics['n']}")
    file_problems, _ = audit(run)
    problems += file_problems
    for p in problems:
        print(f"check_run: FAIL {p}")
    if not problems:
        print(
            f"check_run: OK {run}: complete, image ids and lock hashes recorded, audit clean, "
            f"strict={metrics['strict_accuracy']:.3f} on n={metrics['n']}"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
