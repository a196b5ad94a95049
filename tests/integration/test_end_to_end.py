"""A run end to end on the tiny model: `repro run` trains, evaluates and audits clean, and writes the same
checkpoint and predictions as `repro train` then `repro eval`."""

import json

import pytest

from app.launch.stages import run_stages
from app.rundir.run_dir import sha256_file
from app.spec.run_spec import load_spec
from tests.helpers import repro


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


@pytest.mark.parametrize("backend", ["hf", pytest.param("vllm", marks=pytest.mark.slow)])
def test_run_and_train_then_eval_give_identical_predictions(tiny_spec, tmp_path, backend):
    spec_path = str(tiny_spec(name="paths", train={"max_steps": 2}, eval={"backend": backend}))
    one = repro("run", spec_path, "--runs-dir", str(tmp_path / "one"), "--no-progress")
    assert one.returncode == 0, one.stderr
    for cmd in ("train", "eval"):
        out = repro(cmd, spec_path, "--runs-dir", str(tmp_path / "two"), "--no-progress")
        assert out.returncode == 0, out.stderr
    a, b = next((tmp_path / "one").iterdir()), next((tmp_path / "two").iterdir())
    assert sha256_file(a / "checkpoint/model.safetensors") == sha256_file(b / "checkpoint/model.safetensors")
    assert (a / "predictions.jsonl").read_bytes() == (b / "predictions.jsonl").read_bytes()
    ma, mb = (json.loads((d / "eval_metrics.json").read_text())["determinism"] for d in (a, b))
    assert ma == mb and ma["deterministic_algorithms"] is True and ma["deterministic_warn_only"] is True
    assert ma["float32_matmul_precision"] == "highest"
