"""Crash safety, proven: SIGKILL at every named fault point (app/faults.py) of train and eval on a tiny
model, resume, and get the bytes an uninterrupted run writes (timing fields aside, as replay does).

Each killed attempt is a real process forked from this one (torch is already imported, so a kill
costs a second, not an interpreter start); the resumes run here, as `repro run` would.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import pytest

from app.errors import UserError
from app.faults import ENV, EVAL_POINTS, TRACE_ENV, TRAIN_POINTS
from app.launch.stages import eval_stage, run_name, train_stage
from app.rundir.manifest import custody_problems, resume_record, trusted_resume
from app.rundir.run_dir import RunDir, sha256_file
from app.share.replay_check import VOLATILE, drop
from app.spec.run_spec import load_spec
from app.train.checkpoint import resume_pointer
from tests.conftest import write_spec
from tests.helpers import forked, killed

# After the last step: the log is one line past step 2's resumable save, so a resume cuts it back.
pytestmark = pytest.mark.faults  # make test-faults: minutes, its own tier

KILL_STEP = "train.step:3"


def traced(tmp: Path, fn) -> Counter:
    """The fault points an uninterrupted `fn()` reaches, with how often."""
    trace = tmp / f"trace-{len(list(tmp.glob('trace-*')))}.txt"
    assert forked({TRACE_ENV: str(trace)}, fn) == 0
    return Counter(trace.read_text().split())


def comparable(run: Path, stage: str) -> dict[str, object]:
    """What must match an uninterrupted run: hashes of the checkpoint and predictions, logs and
    metrics with their timing fields (app/share/replay_check.VOLATILE) set aside."""
    out: dict[str, object] = {}
    if stage == "train":
        out |= {p.relative_to(run).as_posix(): sha256_file(p) for p in sorted((run / "checkpoint").iterdir())}
        log = [drop(json.loads(ln), VOLATILE["train_log.jsonl"]) for ln in (run / "train_log.jsonl").open()]
        out["train_log.jsonl"] = log
        out["train_metrics.json"] = drop(
            json.loads((run / "train_metrics.json").read_text()), VOLATILE["train_metrics.json"]
        )
    else:
        out["predictions.jsonl"] = sha256_file(run / "predictions.jsonl")
        out["eval_metrics.json"] = drop(
            json.loads((run / "eval_metrics.json").read_text()), VOLATILE["eval_metrics.json"]
        )
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_model_dir, mini_gsm8k):
    """The spec, an uninterrupted reference (trained copy kept before its eval) and the traces."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # forked children and this process then compute alike
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    root = tmp_path_factory.mktemp("faults")
    spec = load_spec(
        write_spec(
            root / "ft.json",
            name="ft",
            seed=0,
            model={"id": str(tiny_model_dir)},
            data={"source": str(mini_gsm8k), "train_size": 8, "eval_limit": 6},
            train={"max_steps": 3, "lr": 1e-3, "micro_batch_size": 2, "grad_accum": 1, "save_every": 2},
            eval={"backend": "hf", "max_new_tokens": 8, "batch_size": 4},
        )
    )
    ref = root / "ref"
    train_trace = traced(root, lambda: train_stage(spec, ref, progress=False))
    trained = root / "trained"
    shutil.copytree(ref, trained)
    eval_trace = traced(root, lambda: eval_stage(spec, ref, progress=False))
    cut = root / "cut"
    assert killed({ENV: KILL_STEP}, lambda: train_stage(spec, cut, progress=False))
    resume_trace = traced(root, lambda: train_stage(spec, cut, resume=True, progress=False))
    yield {
        "spec": spec,
        "root": root,
        "ref": ref / run_name(spec),
        "trained": trained,
        "traces": {"train": train_trace, "resume": resume_trace, "eval": eval_trace},
    }
    torch.set_num_threads(threads)


def test_every_point_is_reached(world):
    """Every registered point is on the path of a real run, so the kill tests below, one per point,
    cover every write boundary of train and eval."""
    traces = world["traces"]
    assert set(traces["train"]) | set(traces["resume"]) == set(TRAIN_POINTS)
    assert set(traces["eval"]) == set(EVAL_POINTS)
    print(
        f"\nfault points: {len(TRAIN_POINTS) + len(EVAL_POINTS)} ({len(TRAIN_POINTS)} train + {len(EVAL_POINTS)} eval)"
    )


def rerun(stage) -> None:
    """The stage's command again, as after a kill (`repro train --resume`, `repro eval`); a stage
    that was in fact complete says so, and that is fine."""
    try:
        stage()
    except UserError as exc:
        if "already complete" not in str(exc):
            raise


@pytest.mark.parametrize("point", TRAIN_POINTS)
def test_kill_at_train_point_then_resume_is_identical(world, point):
    spec, traces = world["spec"], world["traces"]
    runs = world["root"] / f"train-{point.replace(':', '-')}"
    if point in traces["train"]:  # the last arrival: the most written before the kill
        assert killed({ENV: f"{point}:{traces['train'][point]}"}, lambda: train_stage(spec, runs, progress=False))
    else:  # reached only when resuming: kill a first attempt, then the resume at this point
        assert killed({ENV: KILL_STEP}, lambda: train_stage(spec, runs, progress=False))
        hit = traces["resume"][point]
        assert killed({ENV: f"{point}:{hit}"}, lambda: train_stage(spec, runs, resume=True, progress=False))
    rerun(lambda: train_stage(spec, runs, resume=True, progress=False))
    run = RunDir(runs / run_name(spec))
    assert run.stage_state("train") == "complete" and custody_problems(run) == []
    assert sorted(p.name for p in run.path.rglob("*.tmp")) == []  # no temp file or directory left behind
    assert comparable(run.path, "train") == comparable(world["ref"], "train")


@pytest.mark.parametrize("point", EVAL_POINTS)
def test_kill_at_eval_point_then_resume_is_identical(world, point):
    spec, hits = world["spec"], world["traces"]["eval"][point]
    runs = world["root"] / f"eval-{point.replace(':', '-')}"
    shutil.copytree(world["trained"], runs)
    assert killed({ENV: f"{point}:{hits}"}, lambda: eval_stage(spec, runs, progress=False))
    rerun(lambda: eval_stage(spec, runs, progress=False))
    run = RunDir(runs / run_name(spec))
    assert run.stage_state("eval") == "complete" and custody_problems(run) == []
    assert sorted(p.name for p in run.path.rglob("*.tmp")) == []
    assert comparable(run.path, "eval") == comparable(world["ref"], "eval")


def test_a_kill_in_the_middle_of_a_checkpoint_keeps_the_previous_one(world, tiny_model_dir, mini_gsm8k):
    """Saves at steps 2 and 4; a kill after step 4's model state is written (its optimizer state not
    yet) leaves step 2's checkpoint recorded and trusted, and the resume continues from it."""
    root = world["root"] / "mid-save"
    root.mkdir()
    spec = load_spec(
        write_spec(
            root / "ms.json",
            name="ms",
            seed=0,
            model={"id": str(tiny_model_dir)},
            data={"source": str(mini_gsm8k), "train_size": 8, "eval_limit": 6},
            train={"max_steps": 5, "lr": 1e-3, "micro_batch_size": 2, "grad_accum": 1, "save_every": 2},
            eval={"backend": "hf", "max_new_tokens": 8, "batch_size": 4},
        )
    )
    assert forked({}, lambda: train_stage(spec, root / "ref", progress=False)) == 0
    assert killed({ENV: "resume:model:2"}, lambda: train_stage(spec, root / "runs", progress=False))
    run = RunDir(root / "runs" / run_name(spec))
    assert (run.path / "resume" / "step-000004.tmp" / "model.pt").is_file()  # the half-written one
    assert not (run.path / "resume" / "step-000004.tmp" / "optimizer.pt").exists()
    assert resume_record(run)["step"] == 2 and trusted_resume(run, resume_pointer(run), 1)
    rerun(lambda: train_stage(spec, root / "runs", resume=True, progress=False))
    metrics = json.loads((run.path / "train_metrics.json").read_text())
    assert metrics["resumed_from_step"] == 2 and metrics["resume_save_s"] > 0  # step 4 saved again, timed
    assert comparable(run.path, "train") == comparable(root / "ref" / run_name(spec), "train")
