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
