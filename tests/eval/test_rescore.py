"""`repro rescore`: on an eval of the tiny model, on hand-written predictions files, and `--write` on copies of
a committed CPU-study run (real outputs, no model)."""

import json
import shutil
from pathlib import Path

import pytest

from app.launch.stages import eval_stage
from app.rundir.run_dir import sha256_file
from app.spec.run_spec import load_spec
from tests.helpers import forked, killed, repro, snapshot

REPO = Path(__file__).resolve().parents[2]
RUN = next((REPO / "docs" / "cpu_study" / "runs").glob("cpu_orig_128-*"))


def test_rescore_reproduces_eval_metrics(base_spec, tmp_path):
    run, metrics = eval_stage(load_spec(base_spec), tmp_path, progress=False)
    out = repro("rescore", str(run.path), "--json")
    assert out.returncode == 0, out.stderr
    rescored = json.loads(out.stdout)
    for key, value in rescored.items():
        assert metrics[key] == value, key
    assert rescored["grader_version"] == "strict-v2"


def test_rescore_a_minimal_predictions_file(tmp_path):
    pred = tmp_path / "p.jsonl"
    rows = [
        {"id": "a", "output": "<answer>3</answer>", "gold": "3", "finish_reason": "stop", "n_tokens": 5},
        {"id": "b", "output": "it is 4", "gold": "4", "finish_reason": "length", "n_tokens": 9},
    ]
    pred.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = json.loads(repro("rescore", str(pred), "--json").stdout)
    assert out["strict_accuracy"] == 0.5 and out["truncated_rate"] == 0.5 and out["diagnostic_accuracy"] == 1.0
    pred.write_text('{"id": "a"}\n{"id": "b"}\n')
    bad = repro("rescore", str(pred))
    assert bad.returncode == 2 and f"{pred}:1: missing field(s) output, gold, finish_reason" in bad.stderr


def test_rescore_counts_every_missing_close_tag_as_unclosed(tmp_path):
    """Half the outputs hit the token cap without </answer>: unclosed_rate is 0.5, all of it truncated."""
    pred = tmp_path / "p.jsonl"
    closed = {"output": "so 3 </think> <answer> 3 </answer>", "finish_reason": "stop"}
    capped = {"output": "so 3 + 4 = 7 and then", "finish_reason": "length"}
    rows = [{"id": f"q{i}", "gold": "3", "n_tokens": 9, **(capped if i % 2 else closed)} for i in range(10)]
    pred.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = json.loads(repro("rescore", str(pred), "--json").stdout)
    assert out["unclosed_rate"] == 0.5 and out["truncated_rate"] == 0.5 and out["unclosed_eos_rate"] == 0.0
    assert out["format_fail_rate"] == 0.5 and out["strict_accuracy"] == 0.5


def test_rescore_normalises_a_hand_written_gold(tmp_path):
    pred = tmp_path / "p.jsonl"
    rows = [
        {"id": "a", "output": "<answer>18</answer>", "gold": "18.0", "finish_reason": "stop"},
        {"id": "b", "output": "<answer>1080</answer>", "gold": "1,080", "finish_reason": "stop"},
        {"id": "c", "output": "<answer>-5</answer>", "gold": "\u22125", "finish_reason": "stop"},
        {"id": "d", "output": "<answer>17</answer>", "gold": "18.0", "finish_reason": "stop"},
    ]
    pred.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = json.loads(repro("rescore", str(pred), "--json").stdout)
    assert out["strict_correct"] == 3 and out["status_counts"]["wrong"] == 1
    with pred.open("a") as fh:  # an unclosed output: nothing parsed, shown as – (never Python's None)
        fh.write(json.dumps({"id": "e", "output": "so <answer>", "gold": "3", "finish_reason": "length"}) + "\n")
    table = repro("rescore", str(pred)).stderr
    row = next(line for line in table.splitlines() if "│ e " in line)
    assert "None" not in table and [c.strip() for c in row.split("│")][4:6] == ["–", "–"], row


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


# Every write `rescore --write` makes, in order: each file's seal is manifest (its new hash, the old
# one still accepted), the file, manifest (the old hash dropped); `<point>:<hit>` as app/faults.py arms it.
RESCORE_WRITES = [
    f"{name}:{phase}:{hit}"
    for name, hit in (
        ("manifest.json", 1),
        ("predictions.jsonl", 1),
        ("manifest.json", 2),
        ("manifest.json", 3),
        ("eval_metrics.json", 1),
        ("manifest.json", 4),
    )
    for phase in ("tmp", "renamed")
]
FROZEN = "2000-01-01T00:00:00Z"  # one clock for every attempt, so `rescored.at` and `updated_at` compare


@pytest.fixture
def frozen_clock(monkeypatch):
    monkeypatch.setattr("app.eval.rescore.now", lambda: FROZEN)
    monkeypatch.setattr("app.rundir.manifest.now", lambda: FROZEN)


@pytest.fixture
def reference(tmp_path_factory, frozen_clock) -> dict:
    """An uninterrupted rescore of the old-style copy: its files, and the fault points it passes."""
    from app.eval.rescore import rescore_run
    from app.faults import TRACE_ENV

    run = old_style_copy(tmp_path_factory.mktemp("reference"))
    trace = run.parent / "trace.txt"
    assert forked({TRACE_ENV: str(trace)}, lambda: rescore_run(run)) == 0
    return {"files": snapshot(run), "trace": trace.read_text().split()}


def test_the_kill_points_are_every_write_of_a_rescore(reference):
    """RESCORE_WRITES lists each write boundary a real `rescore --write` passes, none left out."""
    seen: dict[str, int] = {}
    passed = []
    for point in reference["trace"]:
        seen[point] = seen.get(point, 0) + 1
        passed.append(f"{point}:{seen[point]}")
    assert passed == RESCORE_WRITES


@pytest.mark.parametrize("point", RESCORE_WRITES)
def test_a_kill_at_any_write_of_a_rescore_audits_clean_or_resumes_to_the_same_bytes(
    tmp_path, reference, frozen_clock, point
):
    """issue 20: `rescore --write` SIGKILLed at each write boundary leaves a run that audits clean (or
    holds only the interrupted write's temp file), and a second `rescore --write` finishes it with the
    bytes an uninterrupted rescore writes."""
    from app.env.fingerprint import audit
    from app.eval.rescore import rescore_run
    from app.faults import ENV

    run = old_style_copy(tmp_path)
    assert killed({ENV: point}, lambda: rescore_run(run)), f"not killed at {point}"
    problems = audit(run)[0]
    if point.split(":")[1] == "tmp":  # killed before the rename: only its temp file is extra
        assert len(problems) == 1 and "not in manifest.json (a hidden file)" in problems[0], problems
    else:
        assert problems == []
    rescore_run(run)
    assert audit(run)[0] == []
    assert snapshot(run) == reference["files"]
