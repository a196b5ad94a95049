"""A run directory named as a user types it: its path, its spec name, or a unique prefix. Pure.

Run directories are `<name>-<hash8>`, so `repro audit runs/cpu_B_128` names no directory; rather than a
misleading "manifest.json: not found", the name resolves to the one directory it stands for, an
ambiguous one lists its candidates, and an unknown one gets the closest names ("did you mean").
Only real directories beside it are candidates: a symlink never stands for a run.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from app.errors import UserError

HASHED = re.compile(r"(?P<name>.+)-[0-9a-f]{8}")


def candidates(parent: Path) -> list[str]:
    """The names of the real (not linked) directories in `parent`, sorted."""
    if not parent.is_dir():
        return []
    return sorted(d.name for d in parent.iterdir() if d.is_dir() and not d.is_symlink())


def resolve_run(path: Path) -> Path:
    """`path` when something is there; else the one directory beside it named `<path.name>-<hash8>`
    or starting with `path.name`; else UserError (ambiguous, or unknown with close names)."""
    path = Path(path)
    if path.exists() or path.is_symlink():  # what is there is the command's to check, links included
        return path
    names = candidates(path.parent)
    hashed = [n for n in names if (m := HASHED.fullmatch(n)) and m["name"] == path.name]
    prefixed = hashed or [n for n in names if n.startswith(path.name)]
    if len(prefixed) == 1:
        return path.parent / prefixed[0]
    if prefixed:
        raise UserError(f"{path}: names {len(prefixed)} run directories: {', '.join(prefixed)}; give one")
    bare = {(m["name"] if (m := HASHED.fullmatch(n)) else n): n for n in names}  # closeness by spec name
    close = [bare[n] for n in difflib.get_close_matches(path.name, list(bare), n=3, cutoff=0.6)]
    hint = f"; did you mean {' or '.join(str(path.parent / n) for n in close)}?" if close else ""
    raise UserError(f"{path}: no such run directory{hint}")
