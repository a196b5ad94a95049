"""Compare a replayed run directory with the recorded one, file by file, against the recorded hashes.

A file is identical when its sha256 equals the recorded one. A few fields record when, where and how
fast a run ran rather than what it computed (wall time, throughput, resident memory, resolved
paths, how much of it was resumed); a JSON file whose bytes differ only in those fields counts as
the same, and the report names the fields set aside. Pure: no torch imports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from app.eval.evaluate import read_predictions, regrade
from app.eval.metrics import summarize
from app.rundir.jsonl import read_jsonl
from app.rundir.layout import (
    DATA_JSON,
    ENV_JSON,
    EVAL_FILES,
    EVAL_METRICS_JSON,
    PREDICTIONS_JSONL,
    SPEC_JSON,
    TRAIN_LOG_JSONL,
    TRAIN_METRICS_JSON,
    read_run_json,
    stage_of,
)
from app.rundir.run_dir import sha256_file
from app.spec.run_spec import parse_spec

# Fields that record time, place or process history, per file (dotted paths into the JSON object).
VOLATILE = {
    TRAIN_LOG_JSONL: ("tokens_per_s", "elapsed_s"),
    TRAIN_METRICS_JSON: ("wall_s", "tokens_per_s_session", "resume_save_s", "peak_rss_mb", "resumed_from_step")
    + ("model_source.path",),
    # `rescored`: when a published run was regraded in place (`repro rescore --write`), a history a
    # fresh evaluation under today's grader has no reason to repeat
    EVAL_METRICS_JSON: ("wall_s", "tokens_per_s", "generated_tokens", "resumed_with", "model_source.path", "rescored"),
    DATA_JSON: ("source",),
}
NOT_COMPARED = {ENV_JSON}  # the environment itself: reported as differences, not as a file verdict
RECORD_KEY = {TRAIN_LOG_JSONL: ("step", "log step"), PREDICTIONS_JSONL: ("id", "prediction id")}


@dataclass
class FileResult:
    rel: str
    verdict: str  # identical | same | regraded | differs
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict != "differs"


def drop(obj: dict, paths: tuple[str, ...]) -> dict:
    """A copy of `obj` without the dotted `paths`."""
    out = json.loads(json.dumps(obj))
    for path in paths:
        *parents, last = path.split(".")
        node = out
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return out


def differing_keys(a: dict, b: dict) -> list[str]:
    """Keys whose values differ; a key only the replay has (newer code records more) is not a difference."""
    return sorted(k for k in set(a) | set(b) if k in a and not same_recorded(a[k], b.get(k)))


def same_recorded(a, b) -> bool:
    """b holds everything a recorded, with the same values (b may add dict keys)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return not differing_keys(a, b)
    return a == b


def added_keys(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted paths the replay records that the original did not."""
    out = []
    for k, v in b.items():
        if k not in a:
            out.append(f"{prefix}{k}")
        elif isinstance(v, dict) and isinstance(a[k], dict):
            out += added_keys(a[k], v, f"{prefix}{k}.")
    return out


def first_record_diff(rel: str, a: list[dict], b: list[dict]) -> str:
    """'first differing log step 3 (loss, grad_norm)' or '' when the records agree."""
    key, label = RECORD_KEY.get(rel, ("index", "line"))
    volatile = VOLATILE.get(rel, ())
    for i, (x, y) in enumerate(zip(a, b)):
        fields = differing_keys(drop(x, volatile), drop(y, volatile))
        if fields:
            return f"first differing {label} {x.get(key, i)} ({', '.join(fields)})"
    return f"{len(a)} records recorded, {len(b)} replayed" if len(a) != len(b) else ""


def compare_content(rel: str, orig: Path, new: Path, regraded: list[dict] | None) -> FileResult:
    """Why two files with different bytes differ, or that they differ only in set-aside fields."""
    volatile = VOLATILE.get(rel, ())
    if rel == PREDICTIONS_JSONL:
        original = regraded if regraded is not None else read_predictions(orig)
        diff = first_record_diff(rel, original, read_predictions(new))
    elif rel.endswith(".jsonl"):
        diff = first_record_diff(rel, read_jsonl(orig), read_jsonl(new))
    elif rel == SPEC_JSON:
        same = parse_spec(orig.read_text()).model_dump() == parse_spec(new.read_text()).model_dump()
        return FileResult(rel, "same", "same spec, written differently") if same else FileResult(rel, "differs")
    elif rel.endswith(".json"):
        a, b = read_run_json(orig, rel), read_run_json(new, rel)  # a damaged file: one line naming it
        if rel == EVAL_METRICS_JSON and regraded is not None:
            a = {**a, **summarize(regraded)}
        keys = differing_keys(drop(a, volatile), drop(b, volatile))
        diff = f"differing keys: {', '.join(keys)}" if keys else ""
        added = added_keys(a, b)
        if not diff and added:
            volatile = (*volatile, f"fields not recorded originally: {', '.join(added)}")
    else:
        return FileResult(rel, "differs", f"sha256 {sha256_file(new)[:16]}…, recorded {sha256_file(orig)[:16]}…")
    if diff:
        return FileResult(rel, "differs", diff)
    if regraded is not None and rel in EVAL_FILES:
        return FileResult(rel, "regraded", "same after regrading the original with the current grader")
    return FileResult(rel, "same", f"apart from {', '.join(volatile)}" if volatile else "same content")


def compare_file(rel: str, recorded: str, src: Path, new: Path, regraded: list[dict] | None) -> FileResult:
    """One recorded file against the replay: by hash, then (when the bytes differ) by content."""
    orig, made = src / rel, new / rel
    if not made.is_file():
        return FileResult(rel, "differs", "not produced by the replay")
    if orig.is_file() and sha256_file(orig) != recorded:
        return FileResult(rel, "differs", "the original file does not match its recorded sha256")
    got = sha256_file(made)
    if got == recorded:
        return FileResult(rel, "identical", "" if orig.is_file() else "matches the recorded sha256 (file omitted)")
    if not orig.is_file():
        return FileResult(rel, "differs", f"sha256 {got[:16]}…, recorded {recorded[:16]}… (file omitted)")
    return compare_content(rel, orig, made, regraded)


def regraded_original(src: Path, current_grader: str) -> tuple[list[dict] | None, str | None]:
    """The original predictions regraded, when they were graded by another grader version."""
    recorded = read_run_json(src / EVAL_METRICS_JSON, missing_ok=True).get("grader_version")
    if recorded is None or recorded == current_grader or not (src / PREDICTIONS_JSONL).is_file():
        return None, None
    return regrade(read_predictions(src / PREDICTIONS_JSONL)), recorded


def compare_runs(src: Path, new: Path, recorded: dict[str, str], stages: list[str]) -> list[FileResult]:
    """Every recorded file of the replayed stages (and the shared ones), in path order."""
    from app.eval.grading import GRADER_VERSION

    regraded, _ = regraded_original(src, GRADER_VERSION)
    results = []
    for rel, sha in sorted(recorded.items()):
        if rel in NOT_COMPARED or stage_of(rel) not in (None, *stages):
            continue
        results.append(compare_file(rel, sha, src, new, regraded))
    return results
