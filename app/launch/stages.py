"""The edge between specs and stages: turn a RunSpec into plain arguments, inside a run directory.

Each stage marks itself running/complete/failed in status.json, records the environment in
env.json and ends by hashing the directory into manifest.json.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
from functools import partial
from pathlib import Path

from app import preempt
from app.env import numerics_profile
from app.env.device import require_device
from app.env.fingerprint import record_env
from app.errors import UserError
from app.faults import fault
from app.inputs.gsm8k import data_fingerprint, resolve_source, select_train, source_hashes
from app.inputs.prompts import answer_span_start, get_template, render_prompt, render_target
from app.rundir.find import find_run_dir, same_run
from app.rundir.jsonl import read_jsonl
from app.rundir.layout import (
    CHECKPOINT_CONFIG,
    CHECKPOINT_DIR,
    DATA_JSON,
    ENV_JSON,
    EVAL_COPY_DIR,
    EVAL_METRICS_JSON,
    PREDICTIONS_JSONL,
    RESUME_DIR,
    SPEC_JSON,
    TRAIN_CURVES_PNG,
    TRAIN_LOG_JSONL,
    TRAIN_METRICS_JSON,
)
from app.rundir.manifest import (
    PartialLog,
    preflight_resume,
    seal_existing,
    seal_json,
    sealed_stage,
    stage_sealed,
    verify_run,
)
from app.rundir.run_dir import RunDir, atomic_write_bytes, open_run, run_dir_name
from app.spec.run_spec import RunSpec, dump_spec, spec_hash


def required_stages(spec: RunSpec) -> list[str]:
    return ["train", "eval"] if spec.train else ["eval"]


def open_spec_run(spec: RunSpec, runs_root: Path) -> RunDir:
    """Create or reopen the run directory of `spec`, writing spec.json and data.json once.

    A reopened directory must still match its manifest (exit 1) and its data files data.json
    (exit 2); both are checked before anything is written."""
    path = find_run_dir(spec, runs_root)  # may be a directory named under an older hash
    # Missing or bad data is the user's to fix before anything exists: no directory left behind as `new`.
    data = None if (path / DATA_JSON).is_file() else spec_data_fingerprint(spec)
    same = partial(same_run, spec=spec)
    run = open_run(runs_root, spec.name, spec_hash(spec), dump_spec(spec), dir_name=path.name, same=same)
    try:
        verify_run(run)
        if run.file(DATA_JSON).is_file():
            verify_data(run, spec.data.source)
            seal_existing(run, DATA_JSON)
            seal_existing(run, ENV_JSON)
        else:
            seal_json(run, DATA_JSON, data or spec_data_fingerprint(spec))
        seal_existing(run, SPEC_JSON)
        run.drop_interrupted_writes()
    except BaseException:
        run.unlock()
        raise
    return run


def verify_data(run: RunDir, source: str) -> None:
    """Refuse (exit 2, naming the file) when a GSM8K file no longer hashes to what data.json recorded."""
    where = resolve_source(source)
    if isinstance(where, str):  # hub data is pinned by its recorded commit, not by local files
        return
    recorded = run.read_json(DATA_JSON).get("source_sha256", {})
    current = source_hashes(source)
    for name, sha in sorted(recorded.items()):
        if current.get(name) != sha:
            state = "missing" if current.get(name) is None else "changed"
            now_sha = (current.get(name) or "none")[:12]
            raise UserError(
                f"{where / name}: {state} since this run recorded it in {DATA_JSON} "
                f"(sha256 {sha[:12]}… → {now_sha}…); nothing written"
            )


def single_process(what: str) -> None:
    """Evaluation runs as one process; under torchrun every rank would generate the same file."""
    from app.env.determinism import world_size

    if world_size() != 1:
        raise UserError(f"{what} runs as one process (WORLD_SIZE={world_size()}); launch it without torchrun")


def spec_data_fingerprint(spec: RunSpec) -> dict:
    """data.json: the spec's data fingerprint and its prompt template's hash."""
    d = spec.data
    fp = data_fingerprint(d.source, d.train_size, d.subset_seed, d.eval_split, d.eval_limit)
    template = get_template(spec.prompt.template)
    fp["prompt_template"] = {"id": template.id, "sha256": template.sha256}
    return fp


def encode_train_set(spec: RunSpec, tokenizer) -> tuple[list, int]:
    """Encode the spec's training subset; returns (examples, dropped_overlong)."""
    from app.train.sft_data import apply_length_limit, encode_example

    template = get_template(spec.prompt.template)
    rows = select_train(spec.data.source, spec.data.train_size, spec.data.subset_seed)
    encoded = []
    for row in rows:
        target = render_target(template, row.answer, row.gold)
        prompt = render_prompt(template, row.question)
        start = answer_span_start(template, target)
        encoded.append(encode_example(tokenizer, row.id, prompt, target, start, spec.train.loss_mask))
    return apply_length_limit(encoded, spec.train.max_seq_len, spec.train.overlong)


def pending_stages(spec: RunSpec, runs_root: Path) -> list[str]:
    """The spec's stages not yet complete in its run directory, in order (creates nothing).

    The image path (`make run` through compose) runs exactly these, as `repro run` does in one process."""
    path = find_run_dir(spec, Path(runs_root))
    run = RunDir(path) if path.is_dir() else None
    return [s for s in required_stages(spec) if run is None or run.stage_state(s) != "complete"]


def run_stages(spec: RunSpec, runs_root: Path, progress: bool = True) -> RunDir:
    """Train (resuming) if needed, then evaluate if needed, holding the run's lock throughout."""
    numerics_profile.apply(spec.numerics)  # before anything loads torch
    require_device(spec, required_stages(spec))  # before anything is created or loaded
    single_process("repro run (its eval stage)")
    run = open_spec_run(spec, runs_root)
    try:
        if spec.train is not None and not stage_done(run, "train", spec):
            _train_stage(spec, runs_root, run, resume=True, progress=progress)
            preempt.check()  # a stop asked for during the last step: do not start the eval
        if not stage_done(run, "eval", spec):
            _eval_stage(spec, run, progress)
    finally:
        run.unlock()
    return run


def stage_done(run: RunDir, stage: str, spec: RunSpec) -> bool:
    """Whether `stage` is complete; a kill after it sealed its outputs but before status.json said
    so is finished here (its outputs were verified against the manifest when the run was opened)."""
    if run.stage_state(stage) == "complete":
        return True
    if stage_sealed(run, stage):
        run.mark_complete(stage, required_stages(spec))
        return True
    return False


def train_stage(spec: RunSpec, runs_root: Path, resume: bool = False, progress: bool = True) -> RunDir:
    """Train the spec's model on its subset; writes checkpoint/ and the training logs."""
    numerics_profile.apply(spec.numerics)  # every torchrun rank, before anything loads torch
    require_device(spec, ["train"])  # every torchrun rank, before anything is created or loaded
    if spec.train is not None:  # a global batch this process count cannot split: refused before anything exists
        spec.train.accumulation(int(os.environ.get("WORLD_SIZE", "1")))
    run = open_spec_run(spec, runs_root) if int(os.environ.get("RANK", "0")) == 0 else None
    try:
        if run is not None and resume and run.stage_state("train") != "complete" and stage_done(run, "train", spec):
            return run  # only status.json was behind: nothing left to train
        return _train_stage(spec, runs_root, run, resume, progress)
    finally:
        if run is not None:
            run.unlock()


def _train_stage(spec: RunSpec, runs_root: Path, run: RunDir | None, resume: bool, progress: bool) -> RunDir:
    from transformers import AutoTokenizer

    from app.inputs.models import resolve_model
    from app.inputs.remote_code import allowed
    from app.train.loop import run_training, set_determinism

    if spec.train is None:
        raise UserError(f"{spec.name}: spec has no train section")
    rank = int(os.environ.get("RANK", "0"))
    run = run or RunDir(find_run_dir(spec, runs_root))
    if rank == 0 and run.stage_state("train") == "complete":
        raise UserError(f"{run.path}: train stage already complete (a complete run is never overwritten)")
    if rank == 0 and not resume and run.file(TRAIN_LOG_JSONL).is_file():
        raise UserError(f"{run.path}: an earlier train attempt exists; pass --resume to continue it")
    if rank == 0 and resume:
        preflight_resume(run, int(os.environ.get("WORLD_SIZE", "1")))
    ctx = sealed_stage(run, "train", required_stages(spec)) if rank == 0 else contextlib.nullcontext(run)
    with ctx:
        set_determinism(spec.seed)  # before recording, so env.json shows the settings training runs under
        if rank == 0:
            record_env(run, "train", stage_env(spec))
        m = spec.model
        model_path = resolve_model(m.id, m.revision)
        trust = allowed(spec)  # the same for the tokenizer here and the model in run_training
        tokenizer = AutoTokenizer.from_pretrained(model_path, revision=m.revision, trust_remote_code=trust)
        examples, dropped = encode_train_set(spec, tokenizer)
        summary = run_training(
            run,
            model_path,
            tokenizer,
            examples,
            spec.train,
            seed=spec.seed,
            resume=resume,
            progress=progress,
            trust_remote_code=trust,
            revision=m.revision,
            device=spec.device,
        )
        if rank == 0:
            finish_train(run, spec, model_path, summary, examples, dropped)
    return run


def stage_env(spec: RunSpec) -> dict:
    """What a stage adds to its env.json entry: torch's runtime and the numerics profile in force."""
    from app.env.determinism import runtime_record

    return {"runtime": runtime_record(spec.seed), "numerics_profile": numerics_profile.record()}


def finish_train(run: RunDir, spec: RunSpec, model_path: str, summary: dict, examples: list, dropped: int) -> None:
    """Write train_metrics.json and train_curves.png; drop the resumable checkpoints."""
    from app.figures import training_curves
    from app.inputs.models import model_source

    log = read_jsonl(run.file(TRAIN_LOG_JSONL), torn_tail=False)
    source = model_source(spec.model.id, model_path, spec.model.revision)
    if spec.model.dtype == "bfloat16":
        from app.train.checkpoint import save_eval_copy

        save_eval_copy(run.file(CHECKPOINT_DIR), run.file(EVAL_COPY_DIR))
        summary = {**summary, "eval_checkpoint": EVAL_COPY_DIR}
    run.write_json(TRAIN_METRICS_JSON, train_summary(log, summary, examples, dropped, source))
    atomic_write_bytes(run.file(TRAIN_CURVES_PNG), training_curves(log, spec.name))
    shutil.rmtree(run.file(RESUME_DIR), ignore_errors=True)
    fault("resume:removed")


def run_name(spec: RunSpec) -> str:
    return run_dir_name(spec.name, spec_hash(spec))


def train_summary(log: list[dict], summary: dict, examples: list, dropped: int, source: dict) -> dict:
    """train_metrics.json: budget, losses, token accounting, speed and memory."""
    tail = log[-max(1, len(log) // 10) :]
    n_sup = sum(e.n_supervised for e in examples)
    n_tok = sum(len(e.input_ids) for e in examples)
    return {
        **summary,
        "steps_logged": len(log),
        "first_loss": log[0]["loss"] if log else None,
        "final_loss": log[-1]["loss"] if log else None,
        "final_loss_tail_mean": sum(r["loss"] for r in tail) / len(tail) if log else None,
        "max_grad_norm_seen": max((r["grad_norm"] for r in log), default=None),
        "dropped_overlong": dropped,
        "train_examples": len(examples),
        "supervised_ratio": n_sup / n_tok if n_tok else None,
        "mean_padding_fraction": sum(r["padding_fraction"] for r in log) / len(log) if log else None,
        "tokens_trained": sum(r["tokens"] for r in log),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "model_source": source,
    }


def eval_model_path(spec: RunSpec, run: RunDir) -> str:
    """The run's checkpoint when the spec trains, else the spec's base model."""
    from app.inputs.models import resolve_model, run_checkpoint
    from app.spec.identity import RUN_PREFIX

    if spec.train is None and spec.model.id.startswith(RUN_PREFIX):
        return str(eval_checkpoint(Path(run_checkpoint(spec.model.id, run.path.parent)).parent, spec.model.dtype))
    if spec.train is None:
        return resolve_model(spec.model.id, spec.model.revision)
    if run.stage_state("train") != "complete" or not run.file(CHECKPOINT_CONFIG).is_file():
        raise UserError(f"{run.path}: train stage is not complete; run `repro train` first")
    return str(eval_checkpoint(run.path, spec.model.dtype))


def eval_checkpoint(run_path: Path, dtype: str) -> Path:
    """checkpoint-bf16/ where the spec evaluates in bfloat16 and the copy exists, else checkpoint/."""
    copy = run_path / EVAL_COPY_DIR
    return copy if dtype == "bfloat16" and (copy / "config.json").is_file() else run_path / CHECKPOINT_DIR


def eval_stage(spec: RunSpec, runs_root: Path, progress: bool = True) -> tuple[RunDir, dict]:
    """Evaluate (resuming an interrupted eval); writes predictions.jsonl and eval_metrics.json."""
    numerics_profile.apply(spec.numerics)  # before anything loads torch; vLLM inherits the variables
    require_device(spec, ["eval"])  # before anything is created or loaded
    single_process("eval")
    run = open_spec_run(spec, runs_root)
    try:
        if run.stage_state("eval") != "complete" and stage_done(run, "eval", spec):
            return run, run.read_json(EVAL_METRICS_JSON)  # only status.json was behind
        return _eval_stage(spec, run, progress)
    finally:
        run.unlock()


def _eval_stage(spec: RunSpec, run: RunDir, progress: bool) -> tuple[RunDir, dict]:
    from app.env.determinism import apply_eval
    from app.eval.evaluate import print_summary, run_eval

    if run.stage_state("eval") == "complete":
        raise UserError(f"{run.path}: eval stage already complete (a complete run is never overwritten)")
    with sealed_stage(run, "eval", required_stages(spec)):
        # Set here, not inherited: `repro run` evaluates after training in the same process.
        numerics = apply_eval(spec.seed)
        record_env(run, "eval", stage_env(spec))
        model_path = eval_model_path(spec, run)
        journal = PartialLog(run, PREDICTIONS_JSONL)
        pred_path = run.file(PREDICTIONS_JSONL)
        records, metrics = run_eval(
            spec, model_path, pred_path, progress, journal, numerics, lambda n: run.note("eval", total_prompts=n)
        )
        run.write_json(EVAL_METRICS_JSON, metrics)
        print_summary(records, metrics)
    return run, metrics
