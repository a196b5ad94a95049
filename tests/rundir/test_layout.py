"""app/rundir/layout.py owns the run directory's file names and reads its records.

Outside app/rundir/ no module of app/ spells a run-directory file name (app/cli/ included; app/faults.py
builds fault point names from them, checked against layout below)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from app import faults
from app.errors import IntegrityError, UserError
from app.launch.slurm import TASK_BODY
from app.rundir import layout
from app.rundir.layout import optional_run_json, read_run_json
from app.rundir.manifest import SLURM_LOG
from app.rundir.run_dir import RunDir

APP = Path(__file__).resolve().parents[2] / "app"
RUN_NAMES = frozenset(v for k, v in vars(layout).items() if k.isupper() and isinstance(v, str))
EXEMPT = ("rundir",)  # the owner
EXEMPT_FILES = ("faults.py",)  # fault point names (`spec.json:tmp`), identifiers: see the test below
# (module, literal): why it is not a run file although it is spelled like one
ALLOWED = {("inputs/models.py", ".lock"): "the suffix of a model cache's build lock"}


def names_a_run_file(text: str) -> bool:
    """A run file's name, or a path that starts or ends with one (`checkpoint/x`, `f"{run}/spec.json"`)."""
    return text in RUN_NAMES or any(text.startswith(f"{n}/") or text.endswith(f"/{n}") for n in RUN_NAMES)


def docstrings(tree: ast.AST) -> set[int]:
    nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))]
    return {
        id(n.body[0].value)
        for n in nodes
        if n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)
    }


def spelled_run_files(source: str) -> list[tuple[int, str]]:
    """(line, literal) of every string constant (f-string parts included) that names a run file."""
    tree = ast.parse(source)
    skip = docstrings(tree)
    return sorted(
        (n.lineno, n.value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in skip and names_a_run_file(n.value)
    )


def test_no_module_outside_rundir_spells_a_run_file_name():
    scanned, found = 0, []
    for path in sorted(APP.rglob("*.py")):
        rel = path.relative_to(APP)
        if rel.parts[0] in EXEMPT or rel.as_posix() in EXEMPT_FILES:
            continue
        scanned += 1
        found += [
            f"app/{rel}:{line}: {text!r}"
            for line, text in spelled_run_files(path.read_text())
            if (rel.as_posix(), text) not in ALLOWED
        ]
    assert scanned > 30 and found == [], "use the names in app/rundir/layout.py:\n" + "\n".join(found)


def test_the_scan_finds_a_spelled_name_and_passes_the_constant():
    bad = 'run.file("eval_metrics.json")\nx = f"{root}/checkpoint"\ny = "resume/latest.json"\n'
    assert spelled_run_files(bad) == [(1, "eval_metrics.json"), (2, "/checkpoint"), (3, "resume/latest.json")]
    good = '"""Reads eval_metrics.json."""\nrun.file(EVAL_METRICS_JSON)\nz = "config.json"\n'
    assert spelled_run_files(good) == []


def test_fault_points_name_only_layout_files():
    """app/faults.py sits below rundir and cannot import it: its file-level points must still name
    files layout.py owns, or a renamed file would leave a point that is never reached."""
    files = {point.rsplit(":", 1)[0] for point in faults.ALL_POINTS if ":" in point}
    assert files and files <= RUN_NAMES, files - RUN_NAMES


def test_the_slurm_task_logs_where_layout_and_the_manifest_expect():
    """The sbatch task body is bash text: its run-directory paths are checked here instead."""
    assert f'"$RUN_DIR/{layout.LOGS_DIR}"' in TASK_BODY and f'"$RUN_DIR/{layout.STATUS_JSON}"' in TASK_BODY
    written = re.search(r"\$RUN_DIR/(logs/slurm-\$\{SLURM_ARRAY_JOB_ID\}_\$\{SLURM_ARRAY_TASK_ID\}\.log)", TASK_BODY)
    assert written and SLURM_LOG.fullmatch(
        written[1].replace("${SLURM_ARRAY_JOB_ID}", "12").replace("${SLURM_ARRAY_TASK_ID}", "3")
    )


@pytest.mark.parametrize(
    ("rel", "stage"),
    [
        ("checkpoint/model.safetensors", "train"),
        ("resume/step-000002/model.pt", "train"),
        ("train_curves.png", "train"),
        ("predictions.jsonl", "eval"),
        ("eval_metrics.json", "eval"),
        ("spec.json", None),
        ("data.json", None),
        ("checkpoints/x", None),
    ],
)
def test_each_file_belongs_to_the_stage_that_writes_it(rel, stage):
    assert layout.stage_of(rel) == stage


def test_a_resume_directory_is_named_by_its_step():
    assert layout.resume_step_dir(2) == "resume/step-000002"
    assert layout.resume_step_dir(2).startswith(f"{layout.RESUME_DIR}/{layout.RESUME_STEP_PREFIX}")


def test_the_one_reader_of_a_runs_records(tmp_path):
    """Absent: an error, or {} where the caller allows it; damaged: always an error naming the file,
    except through optional_run_json, whose caller reports damage itself (audit)."""
    run = RunDir(tmp_path)
    metrics = tmp_path / layout.EVAL_METRICS_JSON
    with pytest.raises(UserError, match="eval_metrics.json: not found"):
        run.read_json(layout.EVAL_METRICS_JSON)
    assert run.read_json(layout.EVAL_METRICS_JSON, missing_ok=True) == {}
    assert read_run_json(metrics, missing_ok=True) == {} and optional_run_json(metrics) == {}
    metrics.write_text(json.dumps({"n": -1}))
    for read in (
        lambda: read_run_json(metrics, missing_ok=True),
        lambda: run.read_json(layout.EVAL_METRICS_JSON, True),
    ):
        with pytest.raises(IntegrityError, match=r"eval_metrics.json: n: expected a non-negative integer"):
            read()
    assert optional_run_json(metrics) == {}
    metrics.write_text(json.dumps({"n": 3}))
    assert run.read_json(layout.EVAL_METRICS_JSON, missing_ok=True) == {"n": 3}
    assert run.status() == {"state": "new", "stages": {}, "required": []}  # no status.json yet
