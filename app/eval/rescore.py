"""`repro rescore RUN_DIR --write`: regrade a run's saved outputs with the current grader, in place.

Only predictions.jsonl and eval_metrics.json change, each sealed by app/rundir/manifest.py (the manifest's
one writer); their manifest entries are updated and every other entry (the checkpoint's too, when the
directory is a copy without it) is kept. Generation facts (engine, timing, max_new_tokens, stop, model
source) stay as recorded; `rescored` says which grader the run was first graded with.

A kill at any write leaves a run that audits clean or that a second `rescore --write` finishes with the
bytes an uninterrupted one writes (tests/eval/test_rescore.py kills it at each write).
"""

from __future__ import annotations

import json
from pathlib import Path

from app.errors import UserError
from app.eval.evaluate import read_predictions, regrade
from app.eval.metrics import summarize
from app.rundir.layout import EVAL_FILES, EVAL_METRICS_JSON, MANIFEST_JSON, PREDICTIONS_JSONL
from app.rundir.manifest import seal_json, seal_write
from app.rundir.run_dir import RunDir, now
from app.rundir.verify import read_problems, run_or_file


def check_manifest(run: RunDir) -> None:
    """The files about to be rewritten must still be the ones the manifest recorded (app/rundir/verify.py)."""
    for line in read_problems(run.path, EVAL_FILES)[:1]:
        rel, why = line.split(": ", 1)
        raise UserError(f"{run.file(rel)}: differs from {MANIFEST_JSON} ({why}); refusing to rescore over it")


def rescore_run(path: Path) -> dict:
    """Rewrite a complete run's predictions and eval metrics under the current grader; returns the metrics."""
    run = RunDir(path)
    if run.stage_state("eval") != "complete":
        raise UserError(f"{path}: eval stage is not complete; nothing to rescore")
    run.lock()
    try:
        check_manifest(run)
        run.drop_interrupted_writes()  # a temp file an earlier, killed rescore left
        old = run.read_json(EVAL_METRICS_JSON)
        records = regrade(read_predictions(run.file(PREDICTIONS_JSONL)))
        metrics = {**old, **summarize(records)}
        if old.get("grader_version") != metrics["grader_version"]:
            metrics["rescored"] = {"from_grader": old.get("grader_version"), "at": now()}
        # Each file through the manifest's sealed write: a kill between or during them leaves a run
        # that audits clean and that a second `rescore --write` finishes.
        seal_write(run, PREDICTIONS_JSONL, "".join(json.dumps(r) + "\n" for r in records).encode())
        seal_json(run, EVAL_METRICS_JSON, metrics)
        return metrics
    finally:
        run.unlock()


def regrade_outputs(path: Path, write: bool, allow_unverified: bool, log) -> tuple[list[dict], dict]:
    """`repro rescore`: the saved outputs of a run (rewritten in place with `write`) or of a predictions
    file, regraded; returns (records, metrics). A run's file is checked against its manifest first."""
    if write and not path.is_dir():
        raise UserError(f"{path}: --write needs a run directory")
    if write:
        rescore_run(path)
    pred = run_or_file(path, allow_unverified, log)
    if not pred.is_file():
        raise UserError(f"{pred}: not found")
    records = regrade(read_predictions(pred))
    if not records:
        raise UserError(f"{pred}: no predictions")
    return records, summarize(records)
