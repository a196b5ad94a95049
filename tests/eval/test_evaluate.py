"""Eval stage with the HF backend on the tiny model: determinism, resume, rescore, compare."""

import json
from pathlib import Path
from typing import get_args

import pytest

from app.env.fingerprint import PACKAGES
from app.eval.evaluate import pending_chunks, read_predictions
from app.eval.generate import BACKENDS
from app.launch.stages import eval_stage, run_stages
from app.rundir.manifest import record_partial, seal_write
from app.rundir.run_dir import RunDir
from app.spec.run_spec import EvalSpec, load_spec
from tests.helpers import repro

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def base_spec(tiny_spec, tmp_path):
    """An eval-only spec (no train section) on the tiny model."""
    path = tiny_spec(name="base")
    raw = json.loads(path.read_text())
    raw.pop("train")
    path.write_text(json.dumps(raw))
    return path


def test_two_evals_are_byte_identical(base_spec, tmp_path):
    spec = load_spec(base_spec)
    run_a, metrics = eval_stage(spec, tmp_path / "a", progress=False)
    run_b, _ = eval_stage(spec, tmp_path / "b", progress=False)
    pa, pb = run_a.file("predictions.jsonl"), run_b.file("predictions.jsonl")
    assert pa.read_bytes() == pb.read_bytes()
    records = read_predictions(pa)
    assert len(records) == metrics["n"] == 6
    assert all(r["finish_reason"] in ("stop", "length") and len(r["prompt_sha256"]) == 64 for r in records)
    assert sum(metrics["status_counts"].values()) == 6
    assert json.loads(run_a.file("status.json").read_text())["state"] == "complete"


def test_interrupted_eval_resumes_to_same_result(base_spec, tmp_path):
    spec = load_spec(base_spec)
    whole, _ = eval_stage(spec, tmp_path / "whole", progress=False)
    lines = whole.file("predictions.jsonl").read_text().splitlines(keepends=True)
    # Simulate a kill after the first chunk of 4 plus a torn, half-written line.
    cut = tmp_path / "cut"
    first = run_stages_dir(spec, cut)
    first.mkdir(parents=True)
    for name in ("spec.json", "data.json"):
        seal_write(RunDir(first), name, whole.file(name).read_bytes())
    (first / "predictions.jsonl").write_text("".join(lines[:4]))
    record_partial(RunDir(first), "predictions.jsonl")  # what the eval records after each chunk
    with (first / "predictions.jsonl").open("a") as fh:
        fh.write(lines[4][:30])
    resumed, metrics = eval_stage(spec, cut, progress=False)
    assert resumed.file("predictions.jsonl").read_bytes() == whole.file("predictions.jsonl").read_bytes()
    assert metrics["resumed_with"] == 4


def run_stages_dir(spec, root: Path) -> Path:
    from app.rundir.run_dir import run_dir_name
    from app.spec.run_spec import spec_hash

    return root / run_dir_name(spec.name, spec_hash(spec))


def test_backends_are_one_table():
    """The spec offers exactly generate.BACKENDS, and env.json records every backend's packages."""
    assert set(get_args(EvalSpec.model_fields["backend"].annotation)) == set(BACKENDS)
    assert all(p in PACKAGES for cls in BACKENDS.values() for p in cls.packages)


def test_pending_chunks_are_fixed_by_index():
    assert pending_chunks(10, 4, set()) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert pending_chunks(10, 4, {0, 1, 2, 3, 4}) == [[4, 5, 6, 7], [8, 9]]


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


def test_compare_pairs_items(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    mk = lambda ok: {"output": f"<answer>{1 if ok else 2}</answer>", "gold": "1", "finish_reason": "stop"}  # noqa: E731
    a.write_text("".join(json.dumps({"id": f"q{i}", **mk(i < 2)}) + "\n" for i in range(10)))
    b.write_text("".join(json.dumps({"id": f"q{i}", **mk(i < 9)}) + "\n" for i in range(10)))
    out = json.loads(repro("compare", str(a), str(b), "--json").stdout)
    assert out["n_paired"] == 10 and out["only_b_correct"] == 7 and out["only_a_correct"] == 0
    assert out["mcnemar_p"] == pytest.approx(2 / 128)
    text = repro("compare", str(a), str(b)).stdout.splitlines()
    assert text[:2] == [f"A = {a}", f"B = {b}"] and text[2].startswith("n=10  A=0.2000  B=0.9000")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    out = repro("compare", str(a), str(empty))
    assert out.returncode == 2
    assert out.stderr.strip() == f"error: {empty}: no predictions to compare (evaluate it first)"


def test_run_trains_then_evaluates_then_audits_clean(tiny_spec, tmp_path):
    spec = load_spec(tiny_spec(name="full", train={"max_steps": 2}))
    run = run_stages(spec, tmp_path, progress=False)
    status = json.loads(run.file("status.json").read_text())
    assert status["state"] == "complete" and set(status["stages"]) == {"train", "eval"}
    metrics = json.loads(run.file("eval_metrics.json").read_text())
    assert metrics["model_source"]["path"].endswith("checkpoint")
    assert set(json.loads(run.file("env.json").read_text())) == {"train", "eval"}
    out = repro("audit", str(run.path))
    assert out.returncode == 0 and "AUDIT OK" in out.stdout


def test_resume_refuses_a_corrupt_middle_prediction(base_spec, tmp_path):
    """A damaged line inside the prefix the manifest vouches for stops the eval before it writes anything;
    vouched for by a forged manifest, it is an error naming file:line (never a silently smaller n)."""
    from app.errors import IntegrityError, UserError
    from tests.helpers import snapshot

    spec = load_spec(base_spec)
    whole, _ = eval_stage(spec, tmp_path / "whole", progress=False)
    lines = whole.file("predictions.jsonl").read_text().splitlines(keepends=True)
    first = run_stages_dir(spec, tmp_path / "cut")
    first.mkdir(parents=True)
    for name in ("spec.json", "data.json"):
        seal_write(RunDir(first), name, whole.file(name).read_bytes())
    pred = first / "predictions.jsonl"
    pred.write_text("".join(lines[:4]))
    record_partial(RunDir(first), "predictions.jsonl")
    pred.write_text(lines[0] + lines[1][:25] + "\n" + "".join(lines[2:4]))
    before = snapshot(first)
    with pytest.raises(IntegrityError, match=f"^{pred}: its first .* bytes differ from manifest.json"):
        eval_stage(spec, tmp_path / "cut", progress=False)
    assert {k: v for k, v in snapshot(first).items() if k != ".lock"} == before
    record_partial(RunDir(first), "predictions.jsonl")  # a forged manifest now vouches for the damage
    with pytest.raises(UserError, match=f"^{pred}:2: invalid JSON"):
        eval_stage(spec, tmp_path / "cut", progress=False)
    assert pred.read_text().splitlines()[1] == lines[1][:25]
