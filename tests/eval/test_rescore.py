"""`repro rescore RUN_DIR --write` on copies of a committed CPU-study run (real outputs, no model)."""

import json
import shutil
from pathlib import Path

from app.rundir.run_dir import sha256_file
from tests.helpers import repro

REPO = Path(__file__).resolve().parents[2]
RUN = next((REPO / "docs" / "cpu_study" / "runs").glob("cpu_orig_128-*"))


def old_style_copy(tmp_path: Path) -> Path:
    """A copy of the run as the first grader left it: status `unclosed`, no unclosed_eos_rate."""
    run = tmp_path / RUN.name
    shutil.copytree(RUN, run)
    recs = [json.loads(ln) for ln in (run / "predictions.jsonl").read_text().splitlines()]
    for r in recs:
        r["status"] = "unclosed" if r["status"] == "unclosed_eos" else r["status"]
    (run / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    metrics = json.loads((run / "eval_metrics.json").read_text())
    metrics.pop("unclosed_eos_rate", None)
    metrics.pop("rescored", None)
    metrics["grader_version"] = "strict-v1"
    (run / "eval_metrics.json").write_text(json.dumps(metrics))
    manifest = json.loads((run / "manifest.json").read_text())
    for rel in ("predictions.jsonl", "eval_metrics.json"):
        manifest["files"][rel] = sha256_file(run / rel)
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def test_rescore_write_updates_metrics_and_manifest_and_keeps_the_rest(tmp_path):
    run = old_style_copy(tmp_path)
    before = json.loads((run / "manifest.json").read_text())["files"]
    out = repro("rescore", str(run), "--write", "--json")
    assert out.returncode == 0, out.stderr
    metrics = json.loads((run / "eval_metrics.json").read_text())
    assert metrics["grader_version"] == "strict-v2" and metrics["rescored"]["from_grader"] == "strict-v1"
    assert metrics["unclosed_rate"] == metrics["truncated_rate"] + metrics["unclosed_eos_rate"] > 0
    assert metrics["engine"] and metrics["max_new_tokens"] == 192  # generation facts kept
    after = json.loads((run / "manifest.json").read_text())["files"]
    assert after["predictions.jsonl"] == sha256_file(run / "predictions.jsonl")
    assert {k: v for k, v in after.items() if k not in ("predictions.jsonl", "eval_metrics.json")} == {
        k: v for k, v in before.items() if k not in ("predictions.jsonl", "eval_metrics.json")
    }
    omitted = json.loads((run / "manifest.json").read_text()).get("omitted", {})
    assert "checkpoint/model.safetensors" in {**after, **omitted}  # a copy without the checkpoint keeps its record


def test_rescore_write_refuses_a_file_that_differs_from_its_manifest(tmp_path):
    run = old_style_copy(tmp_path)
    with (run / "predictions.jsonl").open("a") as fh:
        fh.write("\n")
    text = (run / "eval_metrics.json").read_text()
    out = repro("rescore", str(run), "--write")
    assert out.returncode == 2 and "predictions.jsonl: differs from manifest.json" in out.stderr
    assert (run / "eval_metrics.json").read_text() == text


def test_a_kill_between_the_two_rewrites_leaves_a_run_that_audits_and_finishes(tmp_path, monkeypatch):
    """rescore --write seals each file through app/rundir/manifest.py: no stuck state after a kill (issue 20)."""
    import pytest

    from app.eval.rescore import rescore_run

    run = old_style_copy(tmp_path)

    def killed(*_args):
        raise KeyboardInterrupt  # the process dies after predictions.jsonl was sealed

    monkeypatch.setattr("app.eval.rescore.seal_json", killed)
    with pytest.raises(KeyboardInterrupt):
        rescore_run(run)
    monkeypatch.undo()
    assert repro("audit", str(run)).returncode == 0
    assert json.loads((run / "eval_metrics.json").read_text())["grader_version"] == "strict-v1"  # not yet rewritten
    out = repro("rescore", str(run), "--write", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads((run / "eval_metrics.json").read_text())["grader_version"] == "strict-v2"
    assert repro("audit", str(run)).returncode == 0
