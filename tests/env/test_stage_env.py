"""Which Python runs each stage: an explicit override, else the project's finished stage venv, else this one."""

import subprocess
import sys
from pathlib import Path

import pytest

from app.env import stage_env
from app.env.lockfiles import REPO
from app.errors import UserError


def make_venv(path: Path, lock: str | None = "lockfiles/train-cpu.txt") -> Path:
    """A real (empty) venv of the base interpreter, finished like `make stage-envs` finishes one."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    if lock is not None:
        (path / ".installed").write_text(lock + "\n")
    return path / "bin" / "python"


@pytest.fixture(autouse=True)
def no_overrides(monkeypatch):
    for var in (*stage_env.OVERRIDE.values(), stage_env.STARTED_AS):
        monkeypatch.delenv(var, raising=False)


def test_without_stage_venvs_the_running_interpreter_runs_every_stage(tmp_path):
    for stage in stage_env.STAGES:
        env = stage_env.resolve(stage, root=tmp_path)
        assert (env.python, env.chosen_by, env.is_current) == (sys.executable, stage_env.CURRENT, True)


def test_a_finished_stage_venv_is_chosen_with_the_lock_its_marker_names(tmp_path):
    python = make_venv(tmp_path / ".venv-train")
    env = stage_env.resolve("train", root=tmp_path)
    assert (env.python, env.chosen_by) == (str(python), ".venv-train")
    assert env.lock == str(REPO / "lockfiles/train-cpu.txt")
    assert not env.is_current  # same base binary as this venv, but another venv
    assert stage_env.resolve("eval", root=tmp_path).chosen_by == stage_env.CURRENT


def test_a_venv_without_its_marker_is_unfinished_and_not_used(tmp_path):
    make_venv(tmp_path / ".venv-eval", lock=None)
    assert stage_env.resolve("eval", root=tmp_path).chosen_by == stage_env.CURRENT


def test_the_override_wins_over_the_stage_venv(tmp_path, monkeypatch):
    make_venv(tmp_path / ".venv-eval")
    other = make_venv(tmp_path / "elsewhere", lock="lockfiles/eval-cpu.txt")
    monkeypatch.setenv("REPRO_EVAL_PYTHON", str(other))
    env = stage_env.resolve("eval", root=tmp_path)
    assert (env.python, env.chosen_by) == (str(other), "REPRO_EVAL_PYTHON")
    assert env.lock == str(REPO / "lockfiles/eval-cpu.txt")


def test_an_override_that_is_no_executable_is_one_error_naming_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_TRAIN_PYTHON", str(tmp_path / "nope"))
    with pytest.raises(UserError, match=r"^REPRO_TRAIN_PYTHON=.*nope: not an executable file"):
        stage_env.resolve("train")


def test_the_record_says_when_a_stage_was_started_outside_its_environment(tmp_path, monkeypatch):
    other = make_venv(tmp_path / "train-venv")
    monkeypatch.setenv("REPRO_TRAIN_PYTHON", str(other))
    rec = stage_env.record("train")
    assert rec["python"] == sys.executable and rec["chosen_by"] == "started directly"
    assert rec["resolves_to"] == str(other)
    monkeypatch.setenv(stage_env.STARTED_AS, str(other))  # what a parent `repro run` tells its stage child
    assert stage_env.record("train") == {
        "python": str(other),
        "lock": str(REPO / "lockfiles/train-cpu.txt"),
        "chosen_by": "REPRO_TRAIN_PYTHON",
    }
