"""A run lock for file systems where `flock` does not hold: an `O_EXCL` lock file naming its holder.

`flock` is the lock wherever it works (released by the kernel on any exit, SIGKILL included). On
Lustre mounted `noflock` it fails (ENOSYS); with `localflock` it succeeds but only within one node;
on NFS a lock a dead node held can outlive it. There (flock failing, or REPRO_LOCK=file) the lock is
the existence of `.lock`, created with O_EXCL and holding `pid P on HOST[ slurm job J restart R]`,
removed on unlock. A lock file left behind is taken over only when its holder is provably gone:
its pid is dead on this same host, or it names this very Slurm job at an earlier restart (a
requeued job runs once at a time), or Slurm says its job has ended. Otherwise one line names the
holder. Pure: no torch; calls `squeue`/`sacct` only to prove a holder gone.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from app.errors import UserError

RECORD = re.compile(r"pid (?P<pid>\d+) on (?P<host>\S+)(?: slurm job (?P<job>\S+) restart (?P<restart>\d+))?")
# Slurm job states after which no process of the job runs any more.
ENDED = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
         "TIMEOUT", "REVOKED", "SPECIAL_EXIT"}  # fmt: skip


def holder_record() -> str:
    """This process as a lock file names it."""
    line = f"pid {os.getpid()} on {socket.gethostname()}"
    job = os.environ.get("SLURM_JOB_ID")
    if job:
        line += f" slurm job {job} restart {os.environ.get('SLURM_RESTART_COUNT', '0')}"
    return line + "\n"


def slurm_state(job: str) -> str | None:
    """The job's state by `squeue`, else `sacct`: a state name, "GONE" when the controller no longer
    knows the job, or None when neither can say (no Slurm here, or it does not answer)."""
    if shutil.which("squeue"):
        # --states=all: without it squeue prints nothing (exit 0) for a job that ended less than
        # MinJobAge (300 s by default) ago, exactly when a requeued or resubmitted task asks.
        cmd = ["squeue", "-h", "--states=all", "-j", job, "-o", "%T"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        state = proc.stdout.split()[0] if proc.returncode == 0 and proc.stdout.split() else None
        if state:
            return state
        if "invalid job id" in proc.stderr.lower():
            return "GONE"
    if shutil.which("sacct"):
        cmd = ["sacct", "-n", "-X", "-j", job, "-o", "State"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        states = proc.stdout.split()
        if proc.returncode == 0 and states:
            return states[0].rstrip("+")  # "CANCELLED by 0" prints as CANCELLED+ in narrow columns
    return None


def warn(message: str) -> None:
    """Say on stderr (a Slurm task's log) that a stale lock was taken over, and why."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def gone(record: str) -> str | None:
    """Why the holder a lock file names is provably gone, or None when that cannot be proven."""
    m = RECORD.match(record)
    if not m:
        return None
    this_job = m["job"] and m["job"] == os.environ.get("SLURM_JOB_ID")
    if this_job and m["restart"] != os.environ.get("SLURM_RESTART_COUNT", "0"):
        return f"an earlier start (restart {m['restart']}) of this Slurm job"
    if m["host"] == socket.gethostname() and not pid_alive(int(m["pid"])):
        return f"pid {m['pid']} is not running on this host"
    if m["job"]:
        state = slurm_state(m["job"])
        if state == "GONE" or state in ENDED:
            return f"Slurm job {m['job']} has ended ({state.lower()})"
    return None


def take(path: Path, log=warn) -> int:
    """Create the lock file with O_EXCL and return its descriptor; a left-behind one whose holder is
    provably gone is moved aside first (so a second taker racing on the same record finds it changed)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(2):
        try:
            fd = os.open(path, flags, 0o666)
        except FileExistsError:
            record = read_record(path)
            why = gone(record)
            if why is None:
                raise UserError(f"{path.parent}: in use by another process ({record.strip() or 'unknown'})") from None
            aside = path.with_name(f"{path.name}.stale-{os.getpid()}")
            os.replace(path, aside)
            if read_record(aside) != record:  # another taker got there first: its lock goes back
                os.replace(aside, path)
                raise UserError(f"{path.parent}: in use by another process (taken over meanwhile)") from None
            aside.unlink()
            if log:
                log(f"{path}: stale lock of {record.strip()} taken over: {why}")
            continue
        os.write(fd, holder_record().encode())
        return fd
    raise UserError(f"{path.parent}: in use by another process (lock file keeps reappearing)")


def read_record(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return ""
    try:
        return os.read(fd, 300).decode(errors="replace")
    finally:
        os.close(fd)


def release(path: Path, fd: int) -> None:
    """Remove our lock file (only if it is still ours) and close it."""
    try:
        if os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
            path.unlink()
    except FileNotFoundError:
        pass
    os.close(fd)
