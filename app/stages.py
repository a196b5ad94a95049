"""The edge between specs and stages: turn a RunSpec into plain arguments, inside a run directory.

Each stage marks itself running/complete/failed in status.json, records the environment in
env.json and ends by hashing the directory into manifest.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
from pathlib import Path

from app import preempt
from app.artifacts import RunDir, atomic_write_bytes, open_run, run_dir_name
from app.data import data_fingerprint, select_eval, select_train
from app.errors import UserError
from app.fingerprint import record_env
from app.prompts import answer_span_start, get_template, render_prompt, render_target
from app.spec import RunSpec, dump_spec, spec_hash


def required_stages(spec: RunSpec) -> list[str]:
    return ["train", "eval"] if spec.train else ["eval"]


def open_spec_run(spec: RunSpec, runs_root: Path) -> RunDir:
    """Create or reopen the run directory of `spec`, writing spec.json and data.json once."""
    run = open_run(runs_root, spec.name, spec_hash(spec), dump_spec(spec))
    if not run.file("data.json").is_file():
        d = spec.data
        fp = data_fingerprint(d.source, d.train_size, d.subset_seed, d.eval_split, d.eval_limit)
        template = get_template(spec.prompt.template)
        fp["prompt_template"] = {"id": template.id, "sha256": template.sha256}
        run.write_json("data.json", fp)
    return run


def encode_train_set(spec: RunSpec, tokenizer) -> tuple[list, int]:
    """Encode the spec's training subset; returns (examples, dropped_overlong)."""
    from app.sft_data import apply_length_limit, encode_example

    template = get_template(spec.prompt.template)
    rows = select_train(spec.data.source, spec.data.train_size, spec.data.subset_seed)
    encoded = []
    for row in rows:
        target = render_target(template, row.answer, row.gold)
        prompt = render_prompt(template, row.question)
        start = answer_span_start(template, target)
        encoded.append(encode_example(tokenizer, row.id, prompt, target, start, spec.train.loss_mask))
    return apply_length_limit(encoded, spec.train.max_seq_len, spec.train.overlong)


def run_stages(spec: RunSpec, runs_root: Path, progress: bool = True) -> RunDir:
    """Train (resuming) if needed, then evaluate if needed."""
    run = open_spec_run(spec, runs_root)
    train_state, eval_state = run.stage_state("train"), run.stage_state("eval")
    run.unlock()
    if spec.train is not None and train_state != "complete":
        train_stage(spec, runs_root, resume=True, progress=progress)
        preempt.check()  # a stop asked for during the last step: do not start the eval
    if eval_state != "complete":
        eval_stage(spec, runs_root, progress=progress)
    return run


def train_stage(spec: RunSpec, runs_root: Path, resume: bool = False, progress: bool = True) -> RunDir:
    """Train the spec's model on its subset; writes checkpoint/ and the training logs."""
    run = open_spec_run(spec, runs_root) if int(os.environ.get("RANK", "0")) == 0 else None
    try:
        return _train_stage(spec, runs_root, run, resume, progress)
    finally:
        if run is not None:
            run.unlock()


def _train_stage(spec: RunSpec, runs_root: Path, run: RunDir | None, resume: bool, progress: bool) -> RunDir:
    from transformers import AutoTokenizer

    from app.models import resolve_model
    from app.train import run_training

    if spec.train is None:
        raise UserError(f"{spec.name}: spec has no train section")
    rank = int(os.environ.get("RANK", "0"))
    run = run or RunDir(Path(runs_root) / run_name(spec))
    if rank == 0 and run.stage_state("train") == "complete":
        raise UserError(f"{run.path}: train stage already complete (a complete run is never overwritten)")
    if rank == 0 and not resume and run.file("train_log.jsonl").is_file():
        raise UserError(f"{run.path}: an earlier train attempt exists; pass --resume to continue it")
    ctx = run.stage("train", required_stages(spec)) if rank == 0 else contextlib.nullcontext(run)
    with ctx:
        if rank == 0:
            record_env(run, "train")
        model_path = resolve_model(spec.model.id)
        tokenizer = AutoTokenizer.from_pretrained(model_path, revision=spec.model.revision)
        examples, dropped = encode_train_set(spec, tokenizer)
        # The train section becomes plain keyword arguments; run_training's signature names them all.
        loop_args = spec.train.model_dump(exclude={"loss_mask", "overlong", "max_seq_len"})
        summary = run_training(
            run,
            model_path,
            tokenizer,
            examples,
            seed=spec.seed,
            resume=resume,
            progress=progress,
            trust_remote_code=spec.model.trust_remote_code,
            revision=spec.model.revision,
            **loop_args,
        )
        if rank == 0:
            finish_train(run, spec, model_path, summary, examples, dropped)
    return run


def finish_train(run: RunDir, spec: RunSpec, model_path: str, summary: dict, examples: list, dropped: int) -> None:
    """Write train_metrics.json and train_curves.png; drop the resumable checkpoints."""
    from app.models import model_source
    from app.plots import training_curves

    log = [json.loads(ln) for ln in run.file("train_log.jsonl").read_text().splitlines() if ln]
    source = model_source(spec.model.id, model_path, spec.model.revision)
    run.write_json("train_metrics.json", train_summary(log, summary, examples, dropped, source))
    atomic_write_bytes(run.file("train_curves.png"), training_curves(log, spec.name))
    shutil.rmtree(run.file("resume"), ignore_errors=True)


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
    from app.models import resolve_model

    if spec.train is None:
        return resolve_model(spec.model.id)
    if run.stage_state("train") != "complete" or not run.file("checkpoint/config.json").is_file():
        raise UserError(f"{run.path}: train stage is not complete; run `repro train` first")
    return str(run.file("checkpoint"))


def eval_stage(spec: RunSpec, runs_root: Path, progress: bool = True) -> tuple[RunDir, dict]:
    """Evaluate (resuming an interrupted eval); writes predictions.jsonl and eval_metrics.json."""
    run = open_spec_run(spec, runs_root)
    try:
        return _eval_stage(spec, run, progress)
    finally:
        run.unlock()


def _eval_stage(spec: RunSpec, run: RunDir, progress: bool) -> tuple[RunDir, dict]:
    from transformers import AutoTokenizer

    from app.evaluate import build_prompts, finalize, print_summary, timed_generation
    from app.generate import GenSettings, open_generator
    from app.models import model_source

    if run.stage_state("eval") == "complete":
        raise UserError(f"{run.path}: eval stage already complete (a complete run is never overwritten)")
    with run.stage("eval", required_stages(spec)):
        record_env(run, "eval")
        model_path = eval_model_path(spec, run)
        rows = select_eval(spec.data.source, spec.data.eval_split, spec.data.eval_limit)
        tokenizer = AutoTokenizer.from_pretrained(model_path, revision=spec.model.revision)
        prompts = build_prompts(tokenizer, get_template(spec.prompt.template), rows)
        run.note("eval", total_prompts=len(prompts))
        e = spec.eval
        max_len = max(len(p["ids"]) for p in prompts) + e.max_new_tokens
        pred_path = run.file("predictions.jsonl")
        cfg = GenSettings(spec.model.dtype, e.max_new_tokens, e.stop, spec.seed, max_len, spec.model.revision)
        with open_generator(e.backend, model_path, cfg) as gen:
            timing = timed_generation(gen, prompts, pred_path, e.batch_size, progress)
            versions = gen.versions
        extra = {
            **timing,
            "engine": versions,
            "max_new_tokens": e.max_new_tokens,
            "stop": list(e.stop),
            "model_source": model_source(spec.model.id, model_path, spec.model.revision),
        }
        records, metrics = finalize(pred_path, len(prompts), extra)
        run.write_json("eval_metrics.json", metrics)
        print_summary(records, metrics)
    return run, metrics
