"""Run directories (app/rundir/run_dir.py): atomic writes, locking, name containment, the spec check, hashing."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.errors import UserError
from app.rundir.run_dir import RunDir, atomic_write_bytes, hash_tree, open_run, safe_child

REPO = Path(__file__).resolve().parents[2]


def test_atomic_write_leaves_no_temp_files(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two" and [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_run_name_cannot_escape_root(tmp_path):
    with pytest.raises(UserError, match="escapes"):
        safe_child(tmp_path, "../x")
    with pytest.raises(UserError, match="escapes"):
        safe_child(tmp_path, "a/b")
    assert safe_child(tmp_path, "ok-1234").parent == tmp_path.resolve()


def test_lock_refuses_a_second_holder(tmp_path):
    held = open_run(tmp_path, "r", "ef" * 32, "{}")  # noqa: F841 - keeps the lock
    other = RunDir(tmp_path / ("r-" + "ef" * 4))
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r}); from app.rundir.run_dir import RunDir; "
        f"RunDir({str(other.path)!r}).lock()"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode != 0 and "in use by another process" in out.stderr


def test_spec_mismatch_is_refused(tmp_path):
    run = open_run(tmp_path, "r", "12" * 32, '{"a": 1}')
    run.unlock()
    with pytest.raises(UserError, match="differs from the spec"):
        open_run(tmp_path, "r", "12" * 32, '{"a": 2}')


def test_hash_tree_skips_status_and_resume(tmp_path):
    (tmp_path / "resume").mkdir()
    (tmp_path / "resume" / "model.pt").write_text("x")
    (tmp_path / "status.json").write_text("{}")
    (tmp_path / "a.txt").write_text("a")
    assert list(hash_tree(tmp_path)) == ["a.txt"]


def test_atomic_write_respects_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "x", b"1")
    finally:
        os.umask(old)
    assert (tmp_path / "x").stat().st_mode & 0o777 == 0o644
