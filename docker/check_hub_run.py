"""Check a run made through `make run` from a locally served hub (docker/ci.sh hub_scenario).

The run must be complete and audit clean, and the commits and file sha256s it recorded for the
model (`eval_metrics.json` model_source) and GSM8K (`data.json`) must be exactly what the hub served
(the commit lines tests/hub_server.py printed, and the files of the served model directory).
Usage: check_hub_run.py RUN_DIR HUB_LOG MODEL_DIR
"""

import hashlib
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.env.fingerprint import audit  # noqa: E402


def served_commits(log: Path) -> dict[str, str]:
    """{'model': sha, 'dataset': sha} from the server's `KIND ID commit SHA` lines."""
    return {m[1]: m[2] for m in re.finditer(r"^(model|dataset) \S+ commit ([0-9a-f]{40})$", log.read_text(), re.M)}


def main(run: Path, log: Path, model_dir: Path) -> int:
    commits, problems = served_commits(log), []
    if json.loads((run / "status.json").read_text())["state"] != "complete":
        problems.append("run is not complete")
    source = json.loads((run / "eval_metrics.json").read_text())["model_source"]
    data = json.loads((run / "data.json").read_text())
    if source.get("commit") != commits.get("model"):
        problems.append(f"model commit {source.get('commit')} != served {commits.get('model')}")
    want = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in model_dir.iterdir() if p.is_file()}
    if {rel: f["sha256"] for rel, f in source.get("files", {}).items()} != want:
        problems.append("model file sha256s differ from the served files")
    if data.get("source_kind") != "hub" or data["hub"]["commit"] != commits.get("dataset"):
        problems.append(f"data.json does not record the served GSM8K commit {commits.get('dataset')}")
    problems += audit(run)[0]
    for p in problems:
        print(f"check_hub_run: FAIL {p}")
    if not problems:
        print(
            f"check_hub_run: OK {run}: model {source['commit'][:12]} and GSM8K {data['hub']['commit'][:12]} "
            f"as served, {len(want)} model files hashed, audit clean"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))
