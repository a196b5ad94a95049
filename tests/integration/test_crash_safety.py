"""Crash safety beyond single kills: a full disk, two processes on one run or one model cache,
checkpoints by wall time, and the fault-point switch itself. Real processes throughout (forked)."""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time
from pathlib import Path

import pytest

from app import faults
from app.errors import UserError
from app.launch.stages import run_name, run_stages, train_stage
from app.rundir.manifest import custody_problems
from app.rundir.run_dir import RunDir, append_bytes, sha256_file
from app.spec.run_spec import load_spec
from tests.conftest import write_spec
from tests.helpers import forked, killed


@pytest.fixture(autouse=True)
def one_thread():
    """Forked children and this process compute alike (and OpenMP stays fork-safe)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    yield
    torch.set_num_threads(threads)


def tiny(root: Path, tiny_model_dir, mini_gsm8k, name: str = "cs", **train) -> Path:
    return write_spec(
        root / f"{name}.json",
        name=name,
        seed=0,
        model={"id": str(tiny_model_dir)},
        data={"source": str(mini_gsm8k), "train_size": 8, "eval_limit": 5},
        train={"max_steps": 3, "lr": 1e-3, "micro_batch_size": 2, "grad_accum": 1, **train},
        eval={"backend": "hf", "max_new_tokens": 8, "batch_size": 4},
    )


def cli_in_child(args: list[str], stderr: Path, limit: int | None = None) -> int:
    """`repro ARGS` in a forked process (optionally under RLIMIT_FSIZE); its exit status."""
    from app.cli import app

    def main() -> None:
        sys.stderr = stderr.open("w")  # noqa: SIM115 - the child's stderr until it exits
        if limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so a write past the limit fails with EFBIG
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        try:
            app(args, prog_name="repro")
        except SystemExit as exc:
            sys.stderr.flush()
            os._exit(exc.code or 0)

    status = forked({}, main)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1


def test_full_disk_is_one_line_marks_the_stage_failed_and_resume_completes(tmp_path, tiny_model_dir, mini_gsm8k):
    spec_path = tiny(tmp_path, tiny_model_dir, mini_gsm8k, save_every=2)
    runs, err = tmp_path / "runs", tmp_path / "stderr.txt"
    # 1 MB: the run's JSON files fit, the first resumable checkpoint (~13 MB of weights) does not.
    code = cli_in_child(["train", str(spec_path), "--runs-dir", str(runs), "--no-progress"], err, limit=1 << 20)
    errors = [ln for ln in err.read_text().splitlines() if ln.startswith("error:")]
    run = RunDir(runs / run_name(load_spec(spec_path)))
    assert code == 2 and len(errors) == 1, err.read_text()
    assert errors[0] == f"error: file size limit exceeded writing {run.path}/resume/step-000002.tmp/model.pt"
    stage = run.status()["stages"]["train"]
    assert stage["state"] == "failed" and "file size limit exceeded" in stage["error"]
    assert sorted(p.name for p in run.path.rglob("*") if ".tmp" in p.name) == []  # nothing half-written left
    assert len(run.file("train_log.jsonl").read_text().splitlines()) == 2 and custody_problems(run) == []
    # Space is back: --resume completes, to the weights of a run that never failed.
    assert cli_in_child(["train", str(spec_path), "--runs-dir", str(runs), "--no-progress", "--resume"], err) == 0
    whole = train_stage(load_spec(spec_path), tmp_path / "whole", progress=False)
    assert sha256_file(run.file("checkpoint/model.safetensors")) == sha256_file(
        whole.file("checkpoint/model.safetensors")
    )
    assert run.status()["stages"]["train"]["state"] == "complete"


def test_a_failed_append_leaves_the_file_as_it_was(tmp_path):
    log = tmp_path / "train_log.jsonl"
    log.write_bytes(b'{"step": 0}\n')

    def append() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))
        try:
            append_bytes(log, b'{"step": 1, "pad": "' + b"x" * 200 + b'"}\n')
        except UserError as exc:
            os._exit(7 if str(exc) == f"file size limit exceeded writing {log}" else 8)

    status = forked({}, append)
    assert os.WEXITSTATUS(status) == 7 and log.read_bytes() == b'{"step": 0}\n'


def test_the_run_lock_is_held_across_stages_and_names_its_holder(tmp_path, tiny_model_dir, mini_gsm8k):
    spec = load_spec(tiny(tmp_path, tiny_model_dir, mini_gsm8k))
    path = tmp_path / "runs" / run_name(spec)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child: one `repro run`, train then eval
        try:
            run_stages(spec, tmp_path / "runs", progress=False)
        finally:
            os._exit(0)
    while not (path / ".lock").is_file() or f"pid {pid} " not in (path / ".lock").read_text():
        time.sleep(0.005)
    refusals, taken = 0, 0
    while os.waitpid(pid, os.WNOHANG) == (0, 0):  # try to take the run, again and again, while it runs
        try:
            other = RunDir(path)
            other.lock()
            taken += other.status()["state"] != "complete"  # a gap between stages (not the exit after)
            other.unlock()
        except UserError as exc:
            assert str(exc) == f"{path}: in use by another process (pid {pid} on {os.uname().nodename})"
            refusals += 1
        time.sleep(0.002)
    status = json.loads((path / "status.json").read_text())
    assert taken == 0 and refusals > 10 and status["state"] == "complete"


def test_two_processes_building_one_model_cache_both_succeed(tmp_path):
    from app.inputs.models import cached_build, save_gguf_tokenizer

    log = tmp_path / "builds.txt"

    def slow_build(gguf, out) -> None:
        with log.open("a") as fh:
            fh.write(f"{os.getpid()}\n")
        time.sleep(1.0)  # both processes are inside cached_build by now
        save_gguf_tokenizer(gguf, out)

    def build() -> None:
        out = cached_build("tokenizers", "tokenizer.json", slow_build)
        assert (out / "tokenizer.json").is_file()

    pids = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - two processes at once, on a fresh cache
            try:
                os.environ["REPRO_CACHE"] = str(tmp_path / "cache")
                build()
            finally:
                os._exit(0 if sys.exc_info()[0] is None else 1)
        pids.append(pid)
    statuses = [os.waitpid(p, 0)[1] for p in pids]
    assert [os.WEXITSTATUS(s) for s in statuses] == [0, 0]
    assert len(log.read_text().splitlines()) == 1  # one built, the other waited and used it


def test_checkpoints_by_wall_time_resume_to_the_same_bytes(tmp_path, tiny_model_dir, mini_gsm8k):
    timed = load_spec(tiny(tmp_path, tiny_model_dir, mini_gsm8k, name="timed", save_every_minutes=1e-6))
    plain = load_spec(tiny(tmp_path, tiny_model_dir, mini_gsm8k, name="plain", save_every_minutes=None))
    assert killed({faults.ENV: "train.step:2"}, lambda: train_stage(timed, tmp_path / "t", progress=False))
    cut = RunDir(tmp_path / "t" / run_name(timed))
    assert json.loads(cut.file("resume/latest.json").read_text())["step"] == 2  # saved by time, not by steps
    resumed = train_stage(timed, tmp_path / "t", resume=True, progress=False)
    whole = train_stage(plain, tmp_path / "p", progress=False)
    assert json.loads(resumed.file("train_metrics.json").read_text())["resumed_from_step"] == 2
    for rel in ("checkpoint/model.safetensors",):
        assert sha256_file(resumed.file(rel)) == sha256_file(whole.file(rel))
    losses = [[json.loads(ln)["loss"] for ln in r.file("train_log.jsonl").open()] for r in (resumed, whole)]
    assert losses[0] == losses[1]


def test_fault_points_are_armed_only_by_a_known_name(monkeypatch):
    monkeypatch.delenv(faults.ENV, raising=False)
    faults.fault("train.step")  # unarmed: nothing happens
    monkeypatch.setenv(faults.ENV, "no.such.point:1")
    with pytest.raises(ValueError, match="no.such.point"):
        faults.fault("train.step")
    monkeypatch.setenv(faults.ENV, "train.step:0")
    with pytest.raises(ValueError, match="hit >= 1"):
        faults.armed()
    assert set(faults.TRAIN_POINTS) >= {"train_log.jsonl:torn", "resume:renamed", "latest.json:renamed"}
