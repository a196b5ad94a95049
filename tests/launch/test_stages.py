"""The stages' own checks (app/launch/stages.py): the data is re-verified before each stage, and eval runs
as one process."""

import json
import shutil
from pathlib import Path

import pytest

from app.launch.stages import open_spec_run
from app.spec.run_spec import load_spec
from tests.helpers import repro, snapshot


@pytest.fixture
def own_data(tmp_path, mini_gsm8k) -> Path:
    """A private copy of the mini GSM8K that a test may change."""
    return Path(shutil.copytree(mini_gsm8k, tmp_path / "data"))


def test_changed_data_file_stops_the_stage_and_writes_nothing(tiny_spec, own_data, tmp_path):
    path = tiny_spec(name="base", source=str(own_data))
    raw = json.loads(path.read_text())
    raw.pop("train")
    path.write_text(json.dumps(raw))
    run = open_spec_run(load_spec(path), tmp_path / "runs")  # records data.json as a stage would
    run.unlock()
    lines = (own_data / "test.jsonl").read_text().splitlines(keepends=True)
    (own_data / "test.jsonl").write_text("".join(lines[:3] + [lines[3].replace("?", "?!", 1)] + lines[4:]))
    before = snapshot(run.path)
    out = repro("eval", str(path), "--runs-dir", str(tmp_path / "runs"), "--no-progress")
    assert out.returncode == 2
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and f"{own_data / 'test.jsonl'}: changed since this run recorded it" in errors[0]
    assert snapshot(run.path) == before


def test_eval_refuses_to_run_under_several_processes(tiny_spec, tmp_path):
    out = repro("eval", str(tiny_spec()), "--runs-dir", str(tmp_path / "runs"), env={"WORLD_SIZE": "2"})
    assert out.returncode == 2 and "eval runs as one process (WORLD_SIZE=2)" in out.stderr
    assert not (tmp_path / "runs").exists()


def test_a_bf16_eval_gets_a_bf16_copy_of_the_checkpoint_hashed_and_published_without_it(tiny_spec, tmp_path):
    """model.dtype bfloat16: train writes checkpoint-bf16/ (the fp32 weights cast, config saying bf16), the
    manifest vouches for it, eval reads it, and `repro publish` leaves it out like checkpoint/."""
    import torch
    from safetensors.torch import load_file

    from app.launch.stages import eval_stage, train_stage

    path = tiny_spec(name="half")
    raw = json.loads(path.read_text())
    raw["model"]["dtype"] = "bfloat16"
    path.write_text(json.dumps(raw))
    spec = load_spec(path)
    run = train_stage(spec, tmp_path / "runs", progress=False)
    full, half = (
        load_file(run.file("checkpoint/model.safetensors")),
        load_file(run.file("checkpoint-bf16/model.safetensors")),
    )
    assert set(full) == set(half) and all(half[k].dtype == torch.bfloat16 for k in half)
    assert all(torch.equal(full[k].to(torch.bfloat16), half[k]) for k in full)
    config = json.loads(run.file("checkpoint-bf16/config.json").read_text())
    assert config.get("dtype", config.get("torch_dtype")) == "bfloat16"
    assert json.loads(run.file("train_metrics.json").read_text())["eval_checkpoint"] == "checkpoint-bf16"
    manifest = json.loads(run.file("manifest.json").read_text())["files"]
    assert "checkpoint-bf16/model.safetensors" in manifest
    run, metrics = eval_stage(spec, tmp_path / "runs", progress=False)
    assert metrics["n"] == 6
    assert repro("audit", str(run.path)).returncode == 0
    out = repro("publish", str(run.path), "--out", str(tmp_path / "pub"))
    assert out.returncode == 0, out.stderr
    published = tmp_path / "pub" / "runs" / run.path.name
    assert not (published / "checkpoint-bf16").exists() and not (published / "checkpoint").exists()
    omitted = json.loads((published / "manifest.json").read_text())["omitted"]
    assert "checkpoint-bf16/model.safetensors" in omitted


def test_an_fp32_eval_reads_checkpoint_itself(tiny_spec, tmp_path):
    from app.launch.stages import eval_checkpoint

    (tmp_path / "checkpoint-bf16").mkdir()
    (tmp_path / "checkpoint-bf16" / "config.json").write_text("{}")
    assert eval_checkpoint(tmp_path, "float32") == tmp_path / "checkpoint"
    assert eval_checkpoint(tmp_path, "bfloat16") == tmp_path / "checkpoint-bf16"
