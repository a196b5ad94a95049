"""Symlinks in a run directory: never followed on open, refused by every stage, reported by audit."""

import shutil
from pathlib import Path

import pytest

from app.errors import UserError
from app.rundir.run_dir import RunDir, append_bytes, open_run, symlinks_in
from tests.helpers import FIXTURE, RUN, repro, snapshot


@pytest.fixture
def outside(tmp_path) -> Path:
    target = tmp_path / "outside.txt"
    target.write_bytes(b"precious bytes\n")
    return target


@pytest.fixture
def old_run(tmp_path) -> Path:
    """A copy of the committed old run: runs/<run> beside its spec file."""
    shutil.copytree(FIXTURE / RUN, tmp_path / "runs" / RUN)
    shutil.copy(FIXTURE / "old_tiny.json", tmp_path / "old_tiny.json")
    return tmp_path / "runs" / RUN


def test_lock_symlink_is_refused_and_its_target_untouched(tmp_path, outside):
    run_dir = tmp_path / "runs" / "r-12345678"
    run_dir.mkdir(parents=True)
    (run_dir / ".lock").symlink_to(outside)
    with pytest.raises(UserError, match=r"\.lock: is a symlink") as exc:
        RunDir(run_dir).lock()
    assert len(str(exc.value).splitlines()) == 1
    assert outside.read_bytes() == b"precious bytes\n"


def test_lock_file_is_fine_when_it_is_a_plain_file(tmp_path):
    run = RunDir(tmp_path / "r")
    run.lock()
    run.unlock()
    run.lock()  # an existing .lock is reopened, not refused
    run.unlock()
    assert (tmp_path / "r" / ".lock").is_file() and not (tmp_path / "r" / ".lock").is_symlink()


def test_append_refuses_a_symlink(tmp_path, outside):
    log = tmp_path / "train_log.jsonl"
    log.symlink_to(outside)
    with pytest.raises(UserError, match="train_log.jsonl: is a symlink"):
        append_bytes(log, b"{}\n")
    assert outside.read_bytes() == b"precious bytes\n"
    plain = tmp_path / "plain.jsonl"
    append_bytes(plain, b"a\n")
    append_bytes(plain, b"b\n")
    assert plain.read_bytes() == b"a\nb\n"


def test_planted_symlink_stops_open_run_before_any_write(tmp_path, outside):
    run = open_run(tmp_path, "r", "ab" * 32, "{}\n")
    run.unlock()
    (run.path / "checkpoint").mkdir()
    (run.path / "checkpoint" / "model.safetensors").symlink_to(outside)
    before = snapshot(run.path)
    with pytest.raises(UserError, match=r"checkpoint/model.safetensors: is a symlink"):
        open_run(tmp_path, "r", "ab" * 32, "{}\n")
    assert snapshot(run.path) == before and symlinks_in(run.path) == ["checkpoint/model.safetensors"]


@pytest.mark.parametrize(
    "args",
    [
        ["train", "{spec}", "--resume", "--runs-dir", "{runs}"],
        ["eval", "{spec}", "--runs-dir", "{runs}"],
        ["eval", "{run}"],
        ["run", "{spec}", "--runs-dir", "{runs}"],
        ["rescore", "{run}", "--write"],
        ["report", "{run}", "--out", "{runs}/../report"],
    ],
)
def test_every_stage_refuses_a_run_dir_with_a_symlink(old_run, outside, args):
    (old_run / "notes.txt").symlink_to(outside)
    before = snapshot(old_run)
    fill = {"spec": str(old_run.parent.parent / "old_tiny.json"), "runs": str(old_run.parent), "run": str(old_run)}
    out = repro(*[a.format(**fill) for a in args])
    assert out.returncode != 0
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert errors == [f"error: {old_run / 'notes.txt'}: is a symlink; a run directory holds no links (remove it)"]
    assert snapshot(old_run) == before and outside.read_bytes() == b"precious bytes\n"


def test_audit_reports_a_symlink(old_run, outside):
    assert repro("audit", str(old_run)).returncode == 0
    (old_run / "train_log.jsonl").unlink()
    (old_run / "train_log.jsonl").symlink_to(outside)
    out = repro("audit", str(old_run))
    assert out.returncode == 1
    assert "file train_log.jsonl: is a symlink" in out.stderr and "AUDIT FAILED" in out.stderr
