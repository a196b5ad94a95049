"""Which run directory belongs to a spec, across spec-schema upgrades.

A run directory is named `<name>-<spec hash[:8]>`, and the hash covers every field with its default
filled in; so a field added later (with a default) renames every spec's directory. A spec therefore
also owns an existing directory of its name whose stored spec.json, read under today's schema
(migrated, defaults filled in), hashes the same. Pure.
"""

from __future__ import annotations

import re
from pathlib import Path

from app.rundir.by_name import HASHED, candidates, resolve_run
from app.rundir.paths import is_link
from app.rundir.run_dir import run_dir_name
from app.spec.run_spec import RunSpec, SpecError, parse_spec, spec_hash


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
        stored = candidate / "spec.json"
        if not pattern.fullmatch(candidate.name) or is_link(candidate) or is_link(stored) or not stored.is_file():
            continue
        try:
            text = stored.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if same_run(text, spec):
            return candidate
    return exact


def run_named(runs_root: Path, name: str) -> Path | None:
    """The one run directory `<name>-<hash8>` under `runs_root` made for spec `name`, None when there is
    none; UserError naming the candidates when there are several."""
    hashed = [n for n in candidates(Path(runs_root)) if (m := HASHED.fullmatch(n)) and m["name"] == name]
    return resolve_run(Path(runs_root) / name) if hashed else None
