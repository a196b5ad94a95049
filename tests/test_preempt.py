"""Preemption: a real SIGTERM mid-training checkpoints, exits 3 and a rerun ends byte-identical."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app import preempt
from app.rundir.run_dir import sha256_file
from tests.helpers import REPO, repro


def log_lines(runs: Path) -> int:
    logs = list(runs.glob("*/train_log.jsonl"))
    return len(logs[0].read_text().splitlines()) if logs else 0


@pytest.mark.faults
def test_sigterm_checkpoints_exits_3_and_resume_is_byte_identical(tiny_spec, tmp_path):
    spec = str(tiny_spec(name="pre", train={"max_steps": 8, "micro_batch_size": 1, "grad_accum": 1}))
    cut = tmp_path / "cut"
    cmd = [sys.executable, "-m", "app", "train", spec, "--runs-dir", str(cut), "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True, env=os.environ)
    while log_lines(cut) < 2 and proc.poll() is None:  # wait for training to be under way
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    stderr = proc.communicate(timeout=600)[1]
    assert proc.returncode == preempt.EXIT_CODE, stderr
    assert "interrupted: SIGTERM: checkpoint saved at step" in stderr
    run = next(cut.iterdir())
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "interrupted" and status["stages"]["train"]["state"] == "interrupted"
    stopped_at = json.loads((run / "resume/latest.json").read_text())["step"]
    assert 2 <= stopped_at < 8 and log_lines(cut) == stopped_at  # no save_every: the stop itself saved

    resumed = repro("run", spec, "--runs-dir", str(cut), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    whole = repro("train", spec, "--runs-dir", str(tmp_path / "whole"), "--no-progress")
    assert whole.returncode == 0, whole.stderr
    other = next((tmp_path / "whole").iterdir())
    assert json.loads((run / "train_metrics.json").read_text())["resumed_from_step"] == stopped_at
    loss = [json.loads(x)["loss"] for x in (run / "train_log.jsonl").read_text().splitlines()]
    assert loss == [json.loads(x)["loss"] for x in (other / "train_log.jsonl").read_text().splitlines()]
    weights = "checkpoint/model.safetensors"
    assert sha256_file(run / weights) == sha256_file(other / weights)
    assert json.loads((run / "status.json").read_text())["state"] == "complete"


def test_cooperative_block_defers_the_signal_and_check_raises_after():
    preempt.install()
    try:
        with preempt.cooperative():
            os.kill(os.getpid(), signal.SIGUSR1)
            assert preempt.requested() == "SIGUSR1"  # noted, not raised
        try:
            preempt.check()
        except preempt.Interrupted as exc:
            assert "SIGUSR1" in str(exc)
        else:
            raise AssertionError("check() did not raise after a deferred signal")
    finally:
        preempt.uninstall()
    assert preempt.requested() is None
