"""Read-only commands verify what they read: report, compare, rescore and the MLflow export check
every run file they use against the run's manifest.json before trusting a number in it.

A link anywhere in the run is refused outright (never read through). A file that the manifest does
not record, or whose sha256 differs, stops the command with one IntegrityError line (exit 1), unless
the user passed --allow-unverified: then the command goes on and a warning names each affected run.
Only files present are checked; each command reports a missing one itself. Pure.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from app.errors import IntegrityError
from app.rundir.layout import (
    DATA_JSON,
    ENV_JSON,
    EVAL_METRICS_JSON,
    MANIFEST_JSON,
    PREDICTIONS_JSONL,
    SPEC_JSON,
    TRAIN_LOG_JSONL,
    TRAIN_METRICS_JSON,
)
from app.rundir.manifest import read_manifest, vouches
from app.rundir.paths import refuse_special
from app.rundir.run_dir import refuse_symlinks, sha256_file

# What each reader uses from a run directory.
REPORT_FILES = (
    SPEC_JSON,
    EVAL_METRICS_JSON,
    TRAIN_METRICS_JSON,
    TRAIN_LOG_JSONL,
    PREDICTIONS_JSONL,
    ENV_JSON,
    DATA_JSON,
)
PREDICTIONS = (PREDICTIONS_JSONL,)


def read_problems(run_path: Path, rels: Iterable[str]) -> list[str]:
    """One line per file of `rels` present in the run that its manifest does not vouch for. A file a
    kill caught mid-seal may still hold its previous sealed bytes (`repro audit` accepts them too)."""
    run = Path(run_path)
    refuse_symlinks(run)
    refuse_special(run)
    if not (run / MANIFEST_JSON).is_file():
        return [f"{MANIFEST_JSON}: missing (nothing vouches for the run's files)"]
    manifest = read_manifest(run, strict=True)  # every path it names checked (app/rundir/paths.py)
    problems = []
    for rel in rels:
        if not (run / rel).is_file():
            continue
        if rel not in manifest["files"]:
            problems.append(f"{rel}: not in {MANIFEST_JSON}")
        elif not vouches(manifest, rel, sha256_file(run / rel)):
            problems.append(f"{rel}: sha256 differs from {MANIFEST_JSON}")
    return problems


def warn(line: str) -> None:
    print(line, file=sys.stderr)


def verify_reads(
    run_path: Path, rels: Iterable[str], allow_unverified: bool = False, log: Callable[[str], None] = warn
) -> list[str]:
    """Refuse (IntegrityError, exit 1) to read a run whose used files differ from its manifest; with
    `allow_unverified`, warn naming the run and return its problems (empty when verified)."""
    problems = read_problems(run_path, rels)
    if problems and not allow_unverified:
        rel, why = problems[0].split(": ", 1)
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise IntegrityError(
            f"{Path(run_path) / rel}: {why}{more}; refusing to read a run its manifest does not vouch for "
            "(`repro audit` lists the problems; --allow-unverified reads it anyway)"
        )
    if problems:
        log(f"warning: {run_path}: unverified, read anyway (--allow-unverified): {'; '.join(problems)}")
    return problems


def run_or_file(path: Path, allow_unverified: bool, log: Callable[[str], None] = warn) -> Path:
    """predictions.jsonl of a RUN_DIR (verified), or a predictions file given as such (nothing vouches
    for a bare file: it is the user's own)."""
    if not Path(path).is_dir():
        return Path(path)
    verify_reads(path, PREDICTIONS, allow_unverified, log)
    return Path(path) / PREDICTIONS_JSONL
