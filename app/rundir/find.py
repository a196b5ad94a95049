"""Finding a run directory: the one that belongs to a spec, and the one a user names.

`find_run_dir`: a run directory is named `<name>-<spec hash[:8]>` (app/spec/identity.py). A spec also
owns an existing directory of its name whose stored spec.json, read under today's schema (migrated,
defaults filled in), hashes the same: a directory made before a `run:` reference or a schema change
altered the hash is still found.

`run_named`: the one directory made for a spec name (a `run:<name>` model reference).

`resolve_run`: a run directory named as a user types it: its path, its spec name, or a unique prefix.
Run directories are `<name>-<hash8>`, so `repro audit runs/cpu_B_128` names no directory; rather than a
misleading "manifest.json: not found", the name resolves to the one directory it stands for, an
ambiguous one lists its candidates, and an unknown one gets the closest names ("did you mean").
Only real directories beside it are candidates: a symlink never stands for a run. Pure.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from app.errors import UserError
from app.rundir.layout import SPEC_JSON
from app.rundir.paths import is_link
from app.rundir.run_dir import run_dir_name
from app.spec.run_spec import RunSpec, SpecError, parse_spec, spec_hash

HASHED = re.compile(r"(?P<name>.+)-[0-9a-f]{8}")


def same_run(stored_text: str, spec: RunSpec) -> bool:
    """Whether a stored spec.json resolves to `spec` under today's schema."""
    try:
        return spec_hash(parse_spec(stored_text)) == spec_hash(spec)
    except SpecError:
        return False


def find_run_dir(spec: RunSpec, runs_root: Path) -> Path:
    """The spec's run directory: `<name>-<hash8>` when it exists, else an older directory of the same
    name whose stored spec resolves to this spec, else the (new) `<name>-<hash8>`."""
    root = Path(runs_root)
    exact = root / run_dir_name(spec.name, spec_hash(spec))
    if exact.is_dir() or not root.is_dir():
        return exact
    pattern = re.compile(rf"{re.escape(spec.name)}-[0-9a-f]{{8}}")
    for candidate in sorted(root.iterdir()):
        stored = candidate / SPEC_JSON
        if not pattern.fullmatch(candidate.name) or is_link(candidate) or is_link(stored) or not stored.is_file():
            continue
        try:
            text = stored.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if same_run(text, spec):
            return candidate
    return exact


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


def run_named(runs_root: Path, name: str) -> Path | None:
    """The one run directory `<name>-<hash8>` under `runs_root` made for spec `name`, None when there is
    none; UserError naming the candidates when there are several."""
    hashed = [n for n in candidates(Path(runs_root)) if (m := HASHED.fullmatch(n)) and m["name"] == name]
    return resolve_run(Path(runs_root) / name) if hashed else None
