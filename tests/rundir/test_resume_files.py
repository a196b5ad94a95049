"""A crafted pickle in resume/ is refused with one line, its code never runs, and nothing else changes."""

import json
import shutil
from pathlib import Path

import pytest

from app.rundir.manifest import record_resume
from app.rundir.run_dir import RunDir
from tests.helpers import crafted, repro, snapshot


@pytest.fixture(scope="module")
def cut_run(tmp_path_factory, tiny_model_dir, mini_gsm8k) -> tuple[Path, Path]:
    """(spec, run dir) of a training run killed after step 3 of 4, with a resumable checkpoint at step 2."""
    root = tmp_path_factory.mktemp("cut")
    spec = root / "cut.json"
    spec.write_text(
        json.dumps(
            {
                "name": "cut",
                "model": {"id": str(tiny_model_dir)},
                "data": {"source": str(mini_gsm8k), "train_size": 16, "eval_limit": 2},
                "train": {"max_steps": 4, "lr": 1e-3, "micro_batch_size": 2, "grad_accum": 2, "save_every": 2},
                "eval": {"backend": "hf", "max_new_tokens": 4},
            }
        )
    )
    kill = {"REPRO_FAULT": "train.step:3"}  # after step index 2
    killed = repro("train", str(spec), "--runs-dir", str(root / "runs"), "--no-progress", env=kill)
    assert killed.returncode == -9, killed.stderr
    (run,) = (root / "runs").iterdir()
    saved = sorted(p.name for p in (run / "resume" / "step-000002").iterdir())
    assert saved == ["model.pt", "optimizer.pt", "rng.json"]
    return spec, run


def copy_of(cut_run, tmp_path) -> tuple[Path, Path]:
    spec, run = cut_run
    dest = tmp_path / "runs" / run.name
    shutil.copytree(run, dest)
    return spec, dest


RESUME_FILES = ["latest.json", "step-000002/model.pt", "step-000002/optimizer.pt", "step-000002/rng.json"]


@pytest.mark.parametrize("rel", RESUME_FILES)
def test_crafted_pickle_in_resume_is_refused_without_running(cut_run, tmp_path, rel):
    spec, run = copy_of(cut_run, tmp_path)
    marker = tmp_path / "PWNED"
    (run / "resume" / rel).write_bytes(crafted(marker))
    before = snapshot(run)
    out = repro("train", str(spec), "--runs-dir", str(run.parent), "--no-progress", "--resume")
    assert out.returncode == 1, out.stderr
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and str(run / "resume" / rel) in errors[0], out.stderr
    assert "Traceback" not in out.stderr
    assert not marker.exists()
    assert snapshot(run) == before  # refused before the stage marked itself running or recorded anything


@pytest.mark.parametrize("rel", ["step-000002/model.pt", "step-000002/optimizer.pt"])
def test_crafted_pickle_is_refused_even_when_the_manifest_vouches_for_it(cut_run, tmp_path, rel):
    """Defence in depth: an attacker who also rewrites manifest.json still cannot run code (weights_only)."""
    spec, run = copy_of(cut_run, tmp_path)
    marker = tmp_path / "PWNED"
    (run / "resume" / rel).write_bytes(crafted(marker))
    record_resume(RunDir(run), 2, 1, 4)  # the forged manifest now vouches for the crafted file
    resume_before = snapshot(run / "resume")
    out = repro("train", str(spec), "--runs-dir", str(run.parent), "--no-progress", "--resume")
    assert out.returncode == 1, out.stderr
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and f"{run / 'resume' / rel}: not a plain tensor file" in errors[0], out.stderr
    assert not marker.exists()
    assert snapshot(run / "resume") == resume_before
    assert json.loads((run / "status.json").read_text())["stages"]["train"]["state"] == "failed"


def test_untouched_cut_run_still_resumes(cut_run, tmp_path):
    spec, run = copy_of(cut_run, tmp_path)
    out = repro("train", str(spec), "--runs-dir", str(run.parent), "--no-progress", "--resume")
    assert out.returncode == 0, out.stderr
    assert json.loads((run / "train_metrics.json").read_text())["resumed_from_step"] == 2


def test_no_unsafe_loads_in_the_code():
    """No pickle-based load of a file anywhere in app/ or benchmarks/."""
    root = Path(__file__).resolve().parents[2]
    loads = 0
    for path in [*root.glob("app/**/*.py"), *root.glob("benchmarks/*.py")]:
        text = path.read_text()
        assert "weights_only=False" not in text and "pickle.load" not in text, path
        for line in (ln for ln in text.splitlines() if "torch.load(" in ln):
            loads += 1
            assert "weights_only=True" in line, f"{path}: {line.strip()}"
    assert loads >= 1  # the resume loader (app/train/) was scanned


def _loader_calls(tree) -> list:
    """Every call that loads model code or files: `*.from_pretrained(...)` and vLLM's `LLM(...)`."""
    import ast

    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    return [
        c
        for c in calls
        if (isinstance(c.func, ast.Attribute) and c.func.attr == "from_pretrained")
        or (isinstance(c.func, ast.Name) and c.func.id == "LLM")
    ]


def test_every_model_load_states_trust_remote_code():
    """trust_remote_code is never left to a library default: each tokenizer, model and vLLM load in
    app/ names it (the spec's value, or False for the embedded model)."""
    import ast

    root = Path(__file__).resolve().parents[2]
    seen = 0
    for path in sorted(root.glob("app/**/*.py")):
        for call in _loader_calls(ast.parse(path.read_text())):
            seen += 1
            names = [k.arg for k in call.keywords]
            assert "trust_remote_code" in names, f"{path.name}:{call.lineno}: load without trust_remote_code="
            value = next(k.value for k in call.keywords if k.arg == "trust_remote_code")
            assert not (isinstance(value, ast.Constant) and value.value is True), f"{path.name}:{call.lineno}"
    assert seen >= 7  # tokenizer + model in train, eval (hf and vLLM) and the embedded conversion
