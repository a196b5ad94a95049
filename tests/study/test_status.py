"""`repro status`: one row per run from the files the stages write."""

import json
from pathlib import Path

from app.study.status import collect, summary, table
from tests.helpers import repro


def make_run(root: Path, name: str, status: dict, log_steps: int = 0, metrics: dict | None = None) -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / "spec.json").write_text("{}")
    (run / "status.json").write_text(json.dumps(status))
    (run / "train_log.jsonl").write_text("".join(json.dumps({"step": i}) + "\n" for i in range(log_steps)))
    if metrics:
        (run / "eval_metrics.json").write_text(json.dumps(metrics))
    return run


def stage(state: str, start: str, end: str | None, **extra) -> dict:
    return {"state": state, "started_at": start, "finished_at": end, "error": None, **extra}


def runs_dir(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    done = {
        "state": "complete",
        "required": ["train", "eval"],
        "updated_at": "2026-01-01T00:10:00Z",
        "slurm": {"job_id": "77_0", "restart_count": 1},
        "stages": {
            "train": stage("complete", "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z", total_steps=8),
            "eval": stage("complete", "2026-01-01T00:05:00Z", "2026-01-01T00:06:30Z", total_prompts=64),
        },
    }
    make_run(root, "a-11111111", done, 8, {"n": 64, "strict_accuracy": 0.125, "unclosed_rate": 0.5})
    broken = {
        "state": "failed",
        "required": ["train", "eval"],
        "updated_at": "2026-01-01T00:01:00Z",
        "stages": {"train": {**stage("failed", "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", total_steps=20),
                             "error": "RuntimeError: out of memory"}},
    }  # fmt: skip
    make_run(root, "b-22222222", broken, 3)
    (root / ".slurm").mkdir()  # not a run, but it lists a submitted task that has not started
    rec = {"job_id": "78_3", "run_dir": str((root / "c-33333333").resolve()), "submitted_at": "2026-01-01T00:00:00Z"}
    (root / ".slurm" / "submissions.jsonl").write_text(json.dumps(rec) + "\n")
    return root


def test_rows_carry_progress_accuracy_job_wall_and_error(tmp_path):
    a, b, c = collect(runs_dir(tmp_path))
    assert (a["run"], a["state"], a["train_step"], a["train_total"], a["eval_done"]) == (
        "a-11111111",
        "complete",
        8,
        8,
        64,
    )
    assert (a["strict_accuracy"], a["unclosed_rate"], a["slurm_job"], a["wall_s"]) == (0.125, 0.5, "77_0", 390)
    assert (b["state"], b["train_step"], b["train_total"], b["eval"]) == ("failed", 3, 20, None)
    assert b["error"] == "RuntimeError: out of memory" and b["slurm_job"] is None
    assert (c["run"], c["state"], c["slurm_job"], c["slurm_state"]) == ("c-33333333", "submitted", "78_3", "gone")


def test_table_is_plain_text_with_one_line_per_run(tmp_path):
    rows = collect(runs_dir(tmp_path))
    lines = table(rows).splitlines()
    assert lines[0].split()[:4] == ["run", "state", "train", "eval"]
    assert lines[1].split()[:8] == ["a-11111111", "complete", "complete", "8/8", "complete", "64/64", "0.125", "0.500"]
    assert "77_0" in lines[1] and "6m30s" in lines[1]
    assert "failed 3/20" in lines[2] and lines[2].endswith("RuntimeError: out of memory")
    assert lines[3].split() == ["c-33333333", "submitted", "new", "new", "-", "-", "78_3", "gone", "0m00s"]
    assert summary(rows) == "3 run(s): 1 complete, 1 failed, 1 submitted"


def test_cli_json_and_a_single_run_directory(tmp_path):
    root = runs_dir(tmp_path)
    out = repro("status", str(root), "--json")
    assert out.returncode == 0, out.stderr
    assert [r["state"] for r in json.loads(out.stdout)] == ["complete", "failed", "submitted"]
    one = repro("status", str(root / "b-22222222"))
    assert one.returncode == 0 and one.stdout.splitlines()[-1] == "1 run(s): 1 failed"
    missing = repro("status", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "no such directory" in missing.stderr
