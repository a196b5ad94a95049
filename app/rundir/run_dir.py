"""The run directory: atomic writes, per-stage status and a process lock (its file names: layout.py;
its manifest, written on a stage's success: manifest.py).

Pure. Layout of `runs/<name>-<spechash[:8]>/` is documented in docs/run-directory.md.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from app.errors import UserError, WriteFailed
from app.faults import file_fault
from app.rundir import lock_file
from app.rundir.layout import LOCK_FILE, SPEC_JSON, STATUS_JSON, TRANSIENT_DIRS, VOLATILE_FILES, read_run_json


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


DISK_ERRORS = {
    errno.ENOSPC: "no space left on device",
    errno.EFBIG: "file size limit exceeded",
    errno.EDQUOT: "disk quota exceeded",
}


def disk_errno(exc: BaseException) -> int | None:
    """The ENOSPC/EFBIG/EDQUOT behind `exc`, if any (torch.save wraps it; safetensors names it in text)."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno in DISK_ERRORS:
            return exc.errno
        for code in DISK_ERRORS:
            if f"(os error {code})" in str(exc):
                return code
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn a full disk or a file size limit while writing `path` into one line naming it."""
    try:
        yield
    except WriteFailed:
        raise
    except Exception as exc:
        code = disk_errno(exc)
        if code is None:
            raise
        raise WriteFailed(f"{DISK_ERRORS[code]} writing {path}") from exc


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same directory, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide artifacts from other users
    try:
        with writing(path), os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        file_fault(path, "tmp")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    file_fault(path, "renamed")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def append_bytes(path: Path, data: bytes) -> None:
    """Append to a log a stage grows; a failed write is cut back, so the file keeps its old bytes.

    Written in two halves, with the fault point `<file>:torn` between them: a kill there leaves
    the torn last line a resume must cope with. A symlink planted in its place is refused."""
    with writing(path):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise _link_error(path, exc) from None
        if os.fstat(fd).st_nlink > 1:  # appending would grow the file it is hard-linked to, elsewhere
            os.close(fd)
            raise UserError(f"{path}: has other hard links; a run directory holds no links (remove it)")
        try:
            size = os.fstat(fd).st_size
            try:
                _write_all(fd, data[: len(data) // 2])
                file_fault(path, "torn")
                _write_all(fd, data[len(data) // 2 :])
            except BaseException:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)
    file_fault(path, "appended")


def atomic_write_json(path: Path, obj: object) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def _link_error(path: Path, exc: OSError) -> Exception:
    """ELOOP from O_NOFOLLOW as a one-line UserError; any other OSError unchanged."""
    if exc.errno == errno.ELOOP:
        return UserError(f"{path}: is a symlink; a run directory holds no links (remove it)")
    return exc


def symlinks_in(root: Path) -> list[str]:
    """POSIX relative paths of every symlink under `root` (links to directories are not entered)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            if os.path.islink(os.path.join(dirpath, name)):
                found.append(Path(dirpath, name).relative_to(root).as_posix())
    return sorted(found)


def refuse_symlinks(root: Path) -> None:
    """UserError naming the first symlink in a run directory: a link could redirect a write or a hash."""
    links = symlinks_in(root)
    if links:
        more = f" (+{len(links) - 1} more)" if len(links) > 1 else ""
        raise UserError(f"{root / links[0]}: is a symlink; a run directory holds no links (remove it){more}")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def hash_tree(root: Path, known: dict[str, str] | None = None) -> dict[str, str]:
    """sha256 of every artifact file under `root`, keyed by POSIX relative path; `known` hashes are kept."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_symlink() or not p.is_file():  # a link is never hashed as its target (custody_problems reports it)
            continue
        if rel.parts[0] in TRANSIENT_DIRS or p.name in VOLATILE_FILES or p.name.startswith("."):
            continue
        out[rel.as_posix()] = (known or {}).get(rel.as_posix()) or sha256_file(p)
    return out


def run_dir_name(name: str, spec_sha: str) -> str:
    return f"{name}-{spec_sha[:8]}"


def safe_child(root: Path, name: str) -> Path:
    """root/name, refusing names that would land outside root."""
    root = root.resolve()
    child = (root / name).resolve()
    if child.parent != root:
        raise UserError(f"run name {name!r} escapes the runs root {root}")
    return child


# flock's answers on a file system that does not support it (Lustre noflock: ENOSYS; NFS without lockd: ENOLCK).
FLOCK_UNSUPPORTED = (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL)


def flock_works(directory: Path) -> bool:
    """Whether flock works on this directory's file system (probed on the directory, so `.lock` is
    not created before the lock kind is known)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
    except BlockingIOError:
        return True
    except OSError as exc:
        if exc.errno in FLOCK_UNSUPPORTED:
            return False
        raise
    finally:
        os.close(fd)
    return True


class RunDir:
    """One run's directory. Stages record running/complete/failed in status.json."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock_fh = None
        self._lock_fd = None  # the O_EXCL lock file's, where flock does not work

    def file(self, rel: str) -> Path:
        return self.path / rel

    def read_json(self, rel: str, missing_ok: bool = False) -> dict:
        """A run file's object, its shape checked (a damaged file is one line naming it, exit 1); an
        absent one is UserError, or {} with `missing_ok`."""
        p = self.file(rel)
        if not p.is_file() and not missing_ok:
            raise UserError(f"{p}: not found")
        return read_run_json(p, rel, missing_ok=missing_ok)

    def write_json(self, rel: str, obj: object) -> None:
        atomic_write_json(self.file(rel), obj)

    def write_text(self, rel: str, text: str) -> None:
        atomic_write_bytes(self.file(rel), text.encode())

    def status(self) -> dict:
        return self.read_json(STATUS_JSON, missing_ok=True) or {"state": "new", "stages": {}, "required": []}

    def stage_state(self, stage: str) -> str | None:
        return self.status()["stages"].get(stage, {}).get("state")

    def lock(self) -> None:
        """Take an exclusive lock for this process, then refuse a directory holding a symlink.

        `flock` on `.lock` where it works (released on exit, even on SIGKILL); `.lock` is opened
        without following a link and names the holder (pid on host), so a second process can say who
        has the directory. Where flock does not work (or REPRO_LOCK=file, e.g. Lustre `localflock`,
        whose flock holds within one node only) the lock is an O_EXCL lock file (lock_file.py)."""
        self.path.mkdir(parents=True, exist_ok=True)
        refuse_symlinks(self.path)  # before creating .lock: a refused directory gains no file
        if os.environ.get("REPRO_LOCK") == "file" or not flock_works(self.path):
            self._lock_fd = lock_file.take(self.file(LOCK_FILE))
        else:
            self._flock()
        try:
            refuse_symlinks(self.path)  # again under the lock: a link planted meanwhile
        except UserError:
            self.unlock()
            raise

    def _flock(self) -> None:
        # Opened without truncating: until the lock is ours, the file names the current holder.
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(self.file(LOCK_FILE), flags, 0o666)
        except OSError as exc:
            raise _link_error(self.file(LOCK_FILE), exc) from None
        if os.fstat(fd).st_nlink > 1:  # a hard link: truncating it would truncate a file elsewhere
            os.close(fd)
            raise UserError(f"{self.file(LOCK_FILE)}: has other hard links; a run directory holds no links (remove it)")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise UserError(f"{self.path}: in use by another process ({holder})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, lock_file.holder_record().encode(), 0)
        self._lock_fh = os.fdopen(fd, "w")

    def drop_interrupted_writes(self) -> None:
        """Remove the temp files of atomic writes a kill interrupted (call only while holding the lock)."""
        for tmp in self.path.rglob(".*.tmp"):
            tmp.unlink(missing_ok=True)

    def unlock(self) -> None:
        if self._lock_fh is not None:
            self._lock_fh.close()
            self._lock_fh = None
        if self._lock_fd is not None:
            lock_file.release(self.file(LOCK_FILE), self._lock_fd)
            self._lock_fd = None

    def set_stage(self, stage: str, state: str, required: list[str], error: str | None = None) -> None:
        """Record `stage` as `state` (running, complete, failed, interrupted) in status.json."""
        status = self.status()
        entry = status["stages"].setdefault(stage, {})
        if state == "running":
            entry.update(started_at=now(), finished_at=None, error=None)
        else:
            entry.update(finished_at=now(), error=error)
        entry["state"] = state
        if state == "running" and scheduler_job():
            status["slurm"] = scheduler_job()
        status["required"] = required
        status["state"] = overall_state(status["stages"], required)
        status["updated_at"] = now()
        self.write_json(STATUS_JSON, status)

    def mark_complete(self, stage: str, required: list[str]) -> None:
        """Record `stage` complete when its outputs are already sealed in the manifest."""
        self.set_stage(stage, "complete", required)

    def note(self, stage: str, **fields) -> None:
        """Add facts to a stage's status entry (e.g. its total steps, for `repro status`)."""
        status = self.status()
        status["stages"].setdefault(stage, {}).update(fields)
        self.write_json(STATUS_JSON, status)


def scheduler_job() -> dict | None:
    """The Slurm job running this process (recorded in status.json), or None outside Slurm."""
    env = os.environ
    if "SLURM_JOB_ID" not in env:
        return None
    array = env.get("SLURM_ARRAY_JOB_ID")
    job_id = f"{array}_{env['SLURM_ARRAY_TASK_ID']}" if array else env["SLURM_JOB_ID"]
    return {
        "job_id": job_id,
        "raw_job_id": env["SLURM_JOB_ID"],
        "restart_count": int(env.get("SLURM_RESTART_COUNT", "0")),
        "nodes": env.get("SLURM_JOB_NODELIST"),
    }


def overall_state(stages: dict, required: list[str]) -> str:
    states = [stages.get(s, {}).get("state") for s in required]
    if any(s == "failed" for s in states):
        return "failed"
    if any(s == "running" for s in states):
        return "running"
    if any(s == "interrupted" for s in states):
        return "interrupted"
    if all(s == "complete" for s in states):
        return "complete"
    return "incomplete"


def open_run(
    runs_root: Path,
    name: str,
    spec_sha: str,
    spec_json: str,
    dir_name: str | None = None,
    same: Callable[[str], bool] | None = None,
) -> RunDir:
    """Create or reopen the run directory for a spec (`dir_name`, default `<name>-<hash8>`). Its stored
    spec.json must match byte for byte, or satisfy `same` (written by older code, it resolves to this spec)."""
    path = safe_child(Path(runs_root), dir_name or run_dir_name(name, spec_sha))
    run = RunDir(path)
    run.lock()
    existing = run.file(SPEC_JSON)
    if existing.is_file() and existing.read_text() != spec_json and not (same and same(existing.read_text())):
        run.unlock()
        raise UserError(f"{existing}: differs from the spec being run (spec hash {spec_sha[:8]})")
    if not existing.is_file():
        run.write_text(SPEC_JSON, spec_json)
    return run
