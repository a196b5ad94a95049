"""The O_EXCL run lock (app/rundir/lock_file.py) where flock does not hold: a holder provably gone is
taken over, a live or unprovable one is refused with one line naming it.

Slurm is not running where these tests run, so `squeue`/`sacct` are small scripts on PATH that answer
as Slurm does for a job it has forgotten, a running one and a finished one; PATH holds nothing else,
so "no Slurm here" is tested too. `make test-slurm` runs the lock against the real Slurm.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from app.errors import UserError
from app.rundir.run_dir import RunDir, flock_works

REPO = Path(__file__).resolve().parents[2]
DEAD_NODE = "pid 4242 on node-that-died slurm job 777 restart 0\n"


@pytest.fixture
def file_lock(tmp_path, monkeypatch):
    """REPRO_LOCK=file, no Slurm job of our own, and a PATH holding only the fake Slurm commands."""
    monkeypatch.setenv("REPRO_LOCK", "file")
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


def fake(bin_dir: Path, name: str, stdout: str = "", stderr: str = "", rc: int = 0) -> None:
    script = bin_dir / name
    script.write_text(f"#!/bin/sh\nprintf '{stdout}'\nprintf '{stderr}' >&2\nexit {rc}\n")
    script.chmod(0o755)


def stale(tmp_path: Path, record: str = DEAD_NODE) -> RunDir:
    run = RunDir(tmp_path / "run")
    run.path.mkdir(parents=True)
    (run.path / ".lock").write_text(record)
    return run


def test_a_dead_nodes_lock_is_taken_over_when_slurm_has_forgotten_its_job(tmp_path, file_lock):
    fake(file_lock, "squeue", stderr="slurm_load_jobs error: Invalid job id specified\\n", rc=1)
    run = stale(tmp_path)
    run.lock()
    assert (run.path / ".lock").read_text() == f"pid {os.getpid()} on {socket.gethostname()}\n"
    assert sorted(p.name for p in run.path.iterdir()) == [".lock"]  # the stale one is not kept aside
    run.unlock()
    assert not (run.path / ".lock").exists()  # the lock is the file: gone with the holder


def test_a_job_that_ended_minutes_ago_is_proven_gone_by_squeue_states_all(tmp_path, file_lock, capsys):
    # Slurm 22.05, measured: for a job that ended less than MinJobAge ago plain `squeue -j` prints
    # nothing and exits 0; only `--states=all` shows its end state (here and in make test-slurm).
    script = file_lock / "squeue"
    script.write_text('#!/bin/sh\ncase " $* " in *" --states=all "*) echo CANCELLED;; esac\nexit 0\n')
    script.chmod(0o755)
    run = stale(tmp_path)
    run.lock()
    assert f"pid {os.getpid()} " in (run.path / ".lock").read_text()
    err = capsys.readouterr().err.strip()
    assert err == f"warning: {run.path}/.lock: stale lock of {DEAD_NODE.strip()} taken over: " + (
        "Slurm job 777 has ended (cancelled)"
    )
    run.unlock()


def test_a_dead_nodes_lock_is_taken_over_when_sacct_says_its_job_ended(tmp_path, file_lock):
    fake(file_lock, "sacct", stdout="NODE_FAIL \\n")  # no squeue here: accounting answers
    run = stale(tmp_path)
    run.lock()
    assert f"pid {os.getpid()} " in (run.path / ".lock").read_text()
    run.unlock()


@pytest.mark.parametrize("squeue", ["RUNNING\\n", None])
def test_a_holder_that_may_be_alive_is_refused_with_one_line_naming_it(tmp_path, file_lock, squeue):
    if squeue:  # a job still running on the node we cannot see; without it, nothing can tell
        fake(file_lock, "squeue", stdout=squeue)
    run = stale(tmp_path)
    with pytest.raises(UserError) as exc:
        run.lock()
    assert str(exc.value) == f"{run.path}: in use by another process ({DEAD_NODE.strip()})"
    assert (run.path / ".lock").read_text() == DEAD_NODE  # left as it was


def test_a_requeued_job_takes_over_the_lock_of_its_own_earlier_start(tmp_path, file_lock, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "777")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")  # Slurm runs one start of a job at a time
    run = stale(tmp_path)
    run.lock()  # no squeue or sacct needed
    assert (run.path / ".lock").read_text().endswith(" slurm job 777 restart 1\n")
    run.unlock()


def test_same_host_dead_pid_is_taken_over_and_a_live_one_is_not(tmp_path, file_lock):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    run = stale(tmp_path, f"pid {dead.stdout.strip()} on {socket.gethostname()}\n")
    run.lock()
    run.unlock()
    live = f"pid {os.getppid()} on {socket.gethostname()}\n"
    run = stale(tmp_path / "b", live)
    with pytest.raises(UserError, match=f"in use by another process \\(pid {os.getppid()} on "):
        run.lock()


def test_a_live_holder_in_another_process_is_refused(tmp_path, file_lock):
    run = RunDir(tmp_path / "run")
    run.lock()
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r}); from app.rundir.run_dir import RunDir; "
        f"RunDir({str(run.path)!r}).lock()"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
    assert out.returncode != 0 and f"in use by another process (pid {os.getpid()} on " in out.stderr
    run.unlock()
    again = RunDir(run.path)
    again.lock()  # free once released
    again.unlock()


def test_a_local_disk_keeps_flock(tmp_path, monkeypatch):
    monkeypatch.delenv("REPRO_LOCK", raising=False)
    assert flock_works(tmp_path)
    run = RunDir(tmp_path / "run")
    run.lock()
    run.unlock()
    assert (run.path / ".lock").is_file()  # flock's file stays; only the kernel's lock goes
