"""Checking an output directory before a command writes into it (`report --out`, `publish --out`).

The first existing path on the way to it must be a directory this process can write; an existing
file, or a path under one, is refused with one line instead of a traceback from mkdir. Pure.
"""

from __future__ import annotations

import os
from pathlib import Path

from app.errors import UserError


def check_out_dir(path: Path, flag: str = "--out") -> None:
    """Refuse `path` as an output directory (UserError, exit 2) when it cannot become one."""
    target = Path(path)
    for where in [target, *target.parents]:
        if not (where.exists() or where.is_symlink()):
            continue
        if not where.is_dir():
            what = "is not a directory" if where == target else f"lies under {where}, which is not a directory"
            raise UserError(f"{flag} {path}: {what}")
        if not os.access(where, os.W_OK | os.X_OK):
            raise UserError(f"{flag} {path}: {where} is not writable")
        return
