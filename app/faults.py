"""Named fault points at the write boundaries of a run directory, armed only from tests.

`REPRO_FAULT=<point>:<hit>` makes the process SIGKILL itself the hit-th time it reaches `<point>`
(SQLite's crash tests and etcd's failpoints do the same). `REPRO_FAULT_TRACE=<file>` appends every
point reached to that file, so a test learns which points a run passes and how often. Without either
variable `fault()` is one dictionary lookup. Pure.

Point names: `<file>:<phase>` for atomic writes (`tmp`: temp file written and synced, not yet renamed;
`renamed`: in place) and appends (`torn`: half the text written; `appended`: all of it), plus
directory-level points of the resumable and final checkpoints.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

ENV, TRACE_ENV = "REPRO_FAULT", "REPRO_FAULT_TRACE"


def _writes(*names: str) -> tuple[str, ...]:
    return tuple(f"{n}:{phase}" for n in names for phase in ("tmp", "renamed"))


def _appends(*names: str) -> tuple[str, ...]:
    return tuple(f"{n}:{phase}" for n in names for phase in ("torn", "appended"))


RUN_FILES = ("spec.json", "data.json", "status.json", "manifest.json", "env.json")
# Reached by `repro train` (fresh or --resume); train_log.jsonl:tmp/renamed only when resuming.
TRAIN_POINTS = (
    *_writes(*RUN_FILES, "train_log.jsonl", "latest.json", "train_metrics.json", "train_curves.png"),
    *_appends("train_log.jsonl"),
    "train.step",  # after an optimizer step, its log line and any resumable save
    "resume:model",  # resume/step-N.tmp half written: the model's state synced, the optimizer's not yet
    "resume:tmp",  # resume/step-N.tmp written, not yet renamed
    "resume:renamed",  # resume/step-N in place, latest.json not yet updated
    "resume:recorded",  # manifest.json vouches for it, older step dirs not yet pruned
    "resume:pruned",
    "checkpoint:tmp",  # checkpoint.tmp/ complete, the old checkpoint/ (if any) still in place
    "checkpoint:renamed",
    "resume:removed",  # training finished: resume/ deleted, manifest not yet sealed
)
# Reached by `repro eval` of a trained run.
EVAL_POINTS = (
    *_writes("status.json", "manifest.json", "env.json", "predictions.jsonl", "eval_metrics.json"),
    *_appends("predictions.jsonl"),
)
ALL_POINTS = frozenset(TRAIN_POINTS) | frozenset(EVAL_POINTS)
FILE_NAMES = frozenset(p.rsplit(":", 1)[0] for p in ALL_POINTS)
_hits: dict[str, int] = {}


def armed() -> tuple[str, int] | None:
    """(point, hit) named by REPRO_FAULT, or None; an unknown point is an error, never silently inert."""
    raw = os.environ.get(ENV)
    if not raw:
        return None
    point, _, hit = raw.rpartition(":")
    if point not in ALL_POINTS or not hit.isdigit() or int(hit) < 1:
        raise ValueError(f"{ENV}={raw!r}: expected <point>:<hit>, a point of app/faults.py and a hit >= 1")
    return point, int(hit)


def fault(point: str) -> None:
    """SIGKILL this process when REPRO_FAULT names `point` and this is its hit-th arrival."""
    if ENV not in os.environ and TRACE_ENV not in os.environ:
        return
    if os.environ.get(TRACE_ENV):
        with open(os.environ[TRACE_ENV], "a") as fh:
            fh.write(point + "\n")
    target = armed()
    if target is None or target[0] != point:
        return
    _hits[point] = _hits.get(point, 0) + 1
    if _hits[point] == target[1]:
        os.kill(os.getpid(), signal.SIGKILL)


def file_fault(path: Path, phase: str) -> None:
    """The point `<file name>:<phase>` of a run-directory file (other files have no points)."""
    if (ENV in os.environ or TRACE_ENV in os.environ) and Path(path).name in FILE_NAMES:
        fault(f"{Path(path).name}:{phase}")
