"""`repro pending`: the stages the image path (docker/run.sh) still has to run, as `repro run` decides."""

from app.launch.stages import pending_stages, run_name
from app.rundir.manifest import sealed_stage
from app.rundir.run_dir import RunDir
from app.spec.run_spec import load_spec
from tests.helpers import REPO, repro


def _mark(run: RunDir, *stages: str) -> None:
    for stage in stages:
        with sealed_stage(run, stage, ["train", "eval"]):
            pass


def test_pending_follows_the_run_directory(tmp_path):
    spec = load_spec(REPO / "specs/docker_tiny_cpu.json")
    assert pending_stages(spec, tmp_path) == ["train", "eval"]
    assert not any(tmp_path.iterdir())  # asking creates nothing
    run = RunDir(tmp_path / run_name(spec))
    run.path.mkdir()
    _mark(run, "train")
    assert pending_stages(spec, tmp_path) == ["eval"]
    _mark(run, "eval")
    assert pending_stages(spec, tmp_path) == []


def test_eval_only_spec_goes_straight_to_eval(tmp_path):
    spec = load_spec(REPO / "specs/docker_base_cpu.json")
    assert spec.train is None
    assert pending_stages(spec, tmp_path) == ["eval"]


def test_pending_cli_prints_one_stage_per_line(tmp_path):
    out = repro("pending", "specs/docker_tiny_cpu.json", "--runs-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["train", "eval"]
    bad = repro("pending", str(tmp_path / "missing.json"), "--runs-dir", str(tmp_path))
    assert bad.returncode != 0 and "missing.json" in (bad.stdout + bad.stderr)
