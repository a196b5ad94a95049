"""Which lock this environment came from, and what a lock's header says (app/env/lockfiles.py)."""

from app.env.lockfiles import REPO, active_lock, installed_from, lock_path, lock_python


def test_the_active_lock_is_the_image_lock_else_the_setup_marker_else_dev_cpu(tmp_path, monkeypatch):
    image_lock = tmp_path / "lock.txt"
    image_lock.write_text("")
    monkeypatch.setenv("REPRO_LOCKFILE", str(image_lock))
    assert installed_from() == str(image_lock) and active_lock() == image_lock
    monkeypatch.delenv("REPRO_LOCKFILE")
    monkeypatch.setattr("sys.prefix", str(tmp_path))  # a venv that make setup installed from train-cpu
    (tmp_path / ".installed").write_text("lockfiles/train-cpu.txt\n")
    assert installed_from() == str(REPO / "lockfiles/train-cpu.txt") and active_lock() == lock_path("train-cpu")
    (tmp_path / ".installed").unlink()  # a venv without the marker: doctor checks make setup's default
    assert installed_from() is None and active_lock() == lock_path("dev-cpu")


def test_lock_python_reads_the_header_compile_lock_writes():
    assert lock_python(lock_path("dev-cpu")) == "3.11" and lock_python(lock_path("eval-cuda")) == "3.12"
