"""A run directory's layout: the name of every file in it, which stage writes which, and the shapes
of its JSON files, checked whenever one is read (the one reader of a run's records).

The names below are the only spelling of a run-directory file in app/ (tests/rundir/test_layout.py
keeps it so); `runs/<name>-<spechash[:8]>/` holds:

    spec.json  data.json  env.json          what was run, on which data, in which environment
    status.json  manifest.json  .lock       per-stage state, sha256 of every sealed file, process lock
    train_log.jsonl  train_metrics.json  train_curves.png  checkpoint/     the train stage's outputs
    resume/latest.json  resume/step-NNNNNN/{model.pt,optimizer.pt,rng.json}  while training runs
    predictions.jsonl  eval_metrics.json    the eval stage's outputs
    logs/slurm-<job>_<task>.log             Slurm task logs (appended after completion)

A run directory may come from a stranger (a published bundle), so a file there may be truncated, a
flipped byte may have made it invalid, or it may hold a list where an object belongs. Reading one
through `read_run_json` gives the object the code expects or one `IntegrityError` line naming the
file and the first key that is wrong (exit 1), never a KeyError or TypeError later. Keys a check
does not name are allowed (files written by older or newer code). Pure.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from app.errors import IntegrityError, one_line
from app.jsonfile import read_object

SPEC_JSON = "spec.json"
DATA_JSON = "data.json"
ENV_JSON = "env.json"
STATUS_JSON = "status.json"
MANIFEST_JSON = "manifest.json"
LOCK_FILE = ".lock"
TRAIN_LOG_JSONL = "train_log.jsonl"
TRAIN_METRICS_JSON = "train_metrics.json"
TRAIN_CURVES_PNG = "train_curves.png"
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_CONFIG = f"{CHECKPOINT_DIR}/config.json"  # checkpoint/ is renamed in whole: its config means a usable one
# A bf16 copy of checkpoint/ for evaluation, written when the spec evaluates in bfloat16 (half the bytes).
EVAL_COPY_DIR = "checkpoint-bf16"
PREDICTIONS_JSONL = "predictions.jsonl"
EVAL_METRICS_JSON = "eval_metrics.json"
LOGS_DIR = "logs"
# The resumable state of an unfinished train stage: resume/latest.json points at resume/step-NNNNNN/.
RESUME_DIR = "resume"
LATEST_JSON = "latest.json"
RESUME_LATEST = f"{RESUME_DIR}/{LATEST_JSON}"
RESUME_STEP_PREFIX = "step-"
MODEL_STATE = "model.pt"
OPTIMIZER_STATE = "optimizer.pt"
RNG_JSON = "rng.json"

TRAIN_FILES = (TRAIN_LOG_JSONL, TRAIN_METRICS_JSON, TRAIN_CURVES_PNG)
EVAL_FILES = (PREDICTIONS_JSONL, EVAL_METRICS_JSON)
# What each stage writes: while a stage is unfinished its outputs may exist without a manifest entry.
STAGE_OUTPUTS = {
    "train": (
        *TRAIN_FILES,
        f"{CHECKPOINT_DIR}/",
        f"{CHECKPOINT_DIR}.tmp/",
        f"{EVAL_COPY_DIR}/",
        f"{EVAL_COPY_DIR}.tmp/",
    ),
    "eval": EVAL_FILES,
}
# Outputs a stage writes only for some specs (the bf16 copy: bfloat16 evaluation); a sealed stage needs the rest.
OPTIONAL_OUTPUTS = (f"{EVAL_COPY_DIR}/",)
# The files of a complete run that no manifest can hold: the manifest itself, status.json (rewritten
# when a stage ends, after sealing) and the lock file (rewritten by whoever opens the run).
VOLATILE_FILES = (MANIFEST_JSON, STATUS_JSON, LOCK_FILE)
TRANSIENT_DIRS = (RESUME_DIR, LOGS_DIR)  # never hashed: resume state is recorded apart, logs/ grows after completion


def resume_step_dir(step: int) -> str:
    """resume/step-NNNNNN: the resumable checkpoint that continues at `step`."""
    return f"{RESUME_DIR}/{RESUME_STEP_PREFIX}{step:06d}"


def stage_of(rel: str) -> str | None:
    """'train' or 'eval' for a stage's own files; None for files every stage shares (spec, data)."""
    if rel.startswith((f"{CHECKPOINT_DIR}/", f"{EVAL_COPY_DIR}/", f"{RESUME_DIR}/")) or rel in TRAIN_FILES:
        return "train"
    return "eval" if rel in EVAL_FILES else None


@dataclass(frozen=True)
class Leaf:
    what: str
    ok: Callable[[object], bool]


@dataclass(frozen=True)
class Rec:
    """An object whose `required` keys exist and whose named keys (required or optional) are well formed."""

    required: dict = field(default_factory=dict)
    optional: dict = field(default_factory=dict)


@dataclass(frozen=True)
class MapOf:
    value: object  # every value of an object with string keys


@dataclass(frozen=True)
class ListOf:
    item: object


@dataclass(frozen=True)
class Opt:
    inner: object  # null, or the inner shape


@dataclass(frozen=True)
class Either:
    options: tuple


def _int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


STR = Leaf("a string", lambda v: isinstance(v, str))
COUNT = Leaf("a non-negative integer", lambda v: _int(v) and v >= 0)
NUMBER = Leaf("a number", lambda v: _int(v) or isinstance(v, float))
OBJECT = Leaf("an object", lambda v: isinstance(v, dict))


def _stamp(v: object) -> bool:
    """A time as `now()` writes it, one `time.strptime` reads back (`repro status` does)."""
    if not (isinstance(v, str) and _STAMP.fullmatch(v)):
        return False
    try:
        time.strptime(v, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return False
    return True


_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", re.ASCII)
STAMP = Leaf("a UTC time YYYY-MM-DDTHH:MM:SSZ", _stamp)


def problem(value: object, shape: object, loc: str) -> str | None:
    """The first way `value` differs from `shape`, as `loc: expected …`, or None."""
    if isinstance(shape, Opt):
        return None if value is None else problem(value, shape.inner, loc)
    if isinstance(shape, Leaf):
        return None if shape.ok(value) else f"{loc}: expected {shape.what}, got {_kind(value)}"
    if isinstance(shape, Either):
        found = [problem(value, s, loc) for s in shape.options]
        return None if None in found else found[-1]
    if isinstance(shape, ListOf):
        if not isinstance(value, list):
            return f"{loc}: expected a list, got {_kind(value)}"
        return next(filter(None, (problem(v, shape.item, f"{loc}[{i}]") for i, v in enumerate(value))), None)
    if not isinstance(value, dict):
        return f"{loc}: expected an object, got {_kind(value)}"
    if isinstance(shape, MapOf):
        return next(filter(None, (problem(v, shape.value, f"{loc}.{k}") for k, v in value.items())), None)
    missing = [k for k in shape.required if k not in value]
    if missing:
        return f"{loc}: missing key {missing[0]!r}"
    named = {**shape.required, **shape.optional}
    return next(filter(None, (problem(value[k], s, f"{loc}.{k}") for k, s in named.items() if k in value)), None)


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


STAGE = Rec(
    optional={
        "state": STR,
        "started_at": Opt(STAMP),
        "finished_at": Opt(STAMP),
        "error": Opt(STR),
        "total_steps": Opt(COUNT),
        "total_prompts": Opt(COUNT),
    }
)
SLURM = Rec(optional={"job_id": Opt(STR), "raw_job_id": Opt(STR), "restart_count": Opt(COUNT), "nodes": Opt(STR)})
STATUS = Rec(
    required={"state": STR, "stages": MapOf(STAGE)},
    optional={"required": ListOf(STR), "updated_at": STAMP, "slurm": Opt(SLURM)},
)
PREFIX = Rec(required={"bytes": COUNT, "sha256": STR})
MANIFEST = Rec(
    required={"files": MapOf(STR)},
    optional={
        "updated_at": STR,
        "sealing": MapOf(Opt(STR)),
        "partial": MapOf(PREFIX),
        "omitted": MapOf(Rec(required={"sha256": STR}, optional={"size": Opt(COUNT), "reason": STR})),
        "resume": Rec(
            required={"step": COUNT, "dir": STR, "world_size": COUNT, "global_batch": COUNT, "files": MapOf(STR)},
            optional={"log": PREFIX},
        ),
    },
)
# What `repro audit` compares with the spec's pinned revisions (a hub fetch record, or a model's hashes).
SOURCE = Opt(Rec(optional={"commit": Opt(STR), "type": Opt(STR), "id": Opt(STR)}))
ENV = Rec(optional={"pip_freeze": ListOf(STR), "image": Opt(OBJECT), "runtime": Opt(OBJECT), "git": Opt(OBJECT)})
METRICS = Rec(
    optional={
        "n": COUNT,
        "strict_accuracy": NUMBER,
        "unclosed_rate": NUMBER,
        "grader_version": STR,
        "model_source": SOURCE,
        "status_counts": MapOf(COUNT),
    }
)
SHAPES = {
    STATUS_JSON: STATUS,
    MANIFEST_JSON: MANIFEST,
    ENV_JSON: MapOf(Either((ENV, ListOf(ENV)))),
    DATA_JSON: Rec(optional={"source_sha256": MapOf(STR), "hub": SOURCE}),
    EVAL_METRICS_JSON: METRICS,
    TRAIN_METRICS_JSON: Rec(optional={"model_source": SOURCE}),
}


def read_run_json(path: Path, rel: str | None = None, missing_ok: bool = False) -> dict:
    """The JSON object of run file `path` (`rel`, default its name, picks the shape), or IntegrityError;
    with `missing_ok`, {} when the file is absent (a damaged one is still an error)."""
    if missing_ok and not Path(path).is_file():
        return {}
    obj = read_object(path, IntegrityError)
    found = problem(obj, SHAPES.get(rel or Path(path).name, OBJECT), "<root>")
    if found:
        raise IntegrityError(one_line(f"{path}: {found.removeprefix('<root>.').removeprefix('<root>: ')}"))
    return obj


def unreadable_run_files(run_path: Path) -> list[str]:
    """`rel: why` for each JSON run file present that does not parse to its shape (for `repro audit`)."""
    lines = []
    for rel in SHAPES:
        path = Path(run_path) / rel
        if path.is_file() and not path.is_symlink():
            try:
                read_run_json(path, rel)
            except IntegrityError as exc:
                lines.append(f"{rel}: {str(exc).removeprefix(f'{path}: ')}")
    return lines


def optional_run_json(path: Path) -> dict:
    """A run file's object, or {} when it is absent or damaged (for readers whose caller reports
    damage itself: `repro audit` lists it through `unreadable_run_files`)."""
    try:
        return read_run_json(path) if Path(path).is_file() else {}
    except IntegrityError:
        return {}
