"""One rule for every path a run directory, manifest, spec `run:` reference or hub record names.

Such a path comes from a stranger's bundle, so it is accepted only as a relative POSIX path (no
absolute root, no `..`, `.` or empty segment, no backslash or NUL), with no symlink at any component
on the real filesystem (each one is lstat-ed), naming something inside the directory it claims.
Anything else is one UserError line naming the path and where it came from. The directory a user
names on the command line is theirs and trusted; only what is found inside it is checked. A hub
snapshot is links into `blobs/` by design, so a fetch record's paths get the lexical `check_rel` only
(app/inputs/hub.py checks each file's bytes instead). Pure.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from app.errors import UserError

REFUSED = "refusing a path that could lead outside"


def check_rel(rel: object, where: str) -> str:
    """`rel` itself when it is a plain relative POSIX path, else UserError naming it and `where`."""
    if not isinstance(rel, str) or not rel:
        raise UserError(f"{where}: {rel!r}: not a path ({REFUSED} the run directory)")
    parts = rel.split("/")
    bad = rel.startswith("/") or "\\" in rel or "\0" in rel or any(p in ("", ".", "..") for p in parts)
    if bad or PurePosixPath(rel).is_absolute():
        raise UserError(f"{where}: {rel!r}: not a relative path inside the run directory ({REFUSED} it)")
    return rel


def is_safe_rel(rel: object) -> bool:
    """Whether `check_rel` accepts `rel`."""
    try:
        check_rel(rel, "")
    except UserError:
        return False
    return True


def is_link(path: Path) -> bool:
    """Whether `path` is a symlink (False when it does not exist)."""
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def inside(root: Path, rel: str, where: str) -> Path:
    """root/rel after `check_rel`, refusing a symlink at any component below `root`."""
    check_rel(rel, where)
    path = Path(root)
    for part in rel.split("/"):
        path = path / part
        if is_link(path):
            raise UserError(f"{path}: is a symlink ({where} names {rel!r}); a run directory holds no links")
    resolved_root = Path(root).resolve()
    if not path.resolve().is_relative_to(resolved_root):  # belt and braces: lexical + lstat should suffice
        raise UserError(f"{where}: {rel!r} resolves outside {root} ({REFUSED} it)")
    return path


def child(root: Path, name: str, where: str) -> Path:
    """A single-segment entry of `root` (a run directory beside others), not a link, not `..`."""
    if "/" in str(name):
        raise UserError(f"{where}: {name!r}: not a single directory name ({REFUSED} {root})")
    return inside(root, name, where)


def _kind(mode: int) -> str:
    for kind, test in (("link", stat.S_ISLNK), ("dir", stat.S_ISDIR), ("file", stat.S_ISREG)):
        if test(mode):
            return kind
    return "other"


def entries(root: Path) -> list[tuple[str, str]]:
    """(POSIX relative path, kind) of everything under `root`, links never entered; kind is 'file',
    'dir', 'link' or 'other'. For completeness checks: what a directory holds, not what it claims."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            found.append((path.relative_to(root).as_posix(), _kind(os.lstat(path).st_mode)))
    return sorted(found)


def refuse_special(root: Path) -> None:
    """UserError naming the first FIFO, socket or device under `root`: reading one could hang or
    read from outside the run (links are refused by app/rundir/run_dir.py's refuse_symlinks)."""
    special = [rel for rel, kind in entries(root) if kind == "other"]
    if special:
        raise UserError(f"{Path(root) / special[0]}: not a regular file or directory; a run directory holds none")


def manifest_paths(manifest: dict, where: str) -> list[str]:
    """Every path a manifest names (files, omitted, partial), each checked by `check_rel`."""
    rels: list[str] = []
    for key in ("files", "omitted", "partial"):
        section = manifest.get(key) or {}
        if not isinstance(section, dict):
            raise UserError(f"{where}: '{key}' is not an object")
        rels += [check_rel(rel, f"{where} ({key})") for rel in section]
    return rels
