"""`repro run` starts a stage whose Python is not the running interpreter as a child process in that
Python; env.json records which interpreter (and lock) ran each stage."""

import json
import os
import signal
import site
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.env.lockfiles import REPO
from app.env.stage_env import resolve
from app.launch.stage_child import stage_argv


def second_venv(path: Path) -> Path:
    """A venv of its own (its own prefix, `.installed` marker naming the train-cpu lock) that reuses the
    dev venv's packages through a .pth line instead of installing 2 GB again."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    (pure,) = path.glob("lib/python*/site-packages")
    (pure / "dev-packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    (path / ".installed").write_text("lockfiles/train-cpu.txt\n")
    return path / "bin" / "python"


def start_run(spec: Path, runs: Path, train_py: Path, **popen) -> subprocess.Popen:
    env = {**os.environ, "REPRO_TRAIN_PYTHON": str(train_py), "REPRO_EVAL_PYTHON": sys.executable}
    argv = [sys.executable, "-m", "app", "run", str(spec), "--runs-dir", str(runs), "--no-progress"]
    return subprocess.Popen(argv, cwd=REPO, env=env, text=True, **popen)


def test_the_train_stage_runs_in_its_own_python_and_env_json_says_so(tmp_path, tiny_spec):
    python = second_venv(tmp_path / "train-venv")
    proc = start_run(tiny_spec(), tmp_path / "runs", python, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert "TRAINED" in out and "COMPLETE" in out  # the child's line, then the parent's
    assert f"train stage: in {python} (REPRO_TRAIN_PYTHON)" in err
    envs = json.loads(next((tmp_path / "runs").glob("tiny-*/env.json")).read_text())
    train, evals = envs["train"][-1], envs["eval"][-1]
    lock = str(REPO / "lockfiles/train-cpu.txt")
    assert train["stage_env"] == {"python": str(python), "lock": lock, "chosen_by": "REPRO_TRAIN_PYTHON"}
    assert train["lockfile"]["path"] == lock  # the child's own fingerprint: its venv's marker
    assert evals["stage_env"]["python"] == sys.executable  # in-process, as before
    assert evals["stage_env"]["chosen_by"] == "REPRO_EVAL_PYTHON"


def test_the_child_command_resumes_training_and_names_the_stage(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_TRAIN_PYTHON", sys.executable)
    argv = stage_argv(resolve("train"), Path("s.json"), tmp_path, progress=False)
    assert argv[:5] == [sys.executable, "-m", "app", "train", "s.json"]
    assert argv[5:] == ["--runs-dir", str(tmp_path), "--resume", "--no-progress"]


@pytest.mark.faults
def test_sigterm_reaches_the_stage_child_which_checkpoints_and_no_eval_starts(tmp_path, tiny_spec):
    python = second_venv(tmp_path / "train-venv")
    spec = tiny_spec(train={"max_steps": 400, "save_every": 2})
    runs = tmp_path / "runs"
    proc = start_run(spec, runs, python, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(1200):  # until the child has trained a few steps
        logs = list(runs.glob("tiny-*/train_log.jsonl"))
        if logs and len(logs[0].read_text().splitlines()) >= 4:
            break
        time.sleep(0.25)
    proc.send_signal(signal.SIGTERM)  # to the parent only: the child is in its own process group
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 3, err[-3000:]
    run = next(runs.glob("tiny-*"))
    assert json.loads((run / "status.json").read_text())["stages"]["train"]["state"] == "interrupted"
    assert "eval" not in json.loads((run / "env.json").read_text())  # no stage started after the stop
