"""The SFT loop: one explicit loop from data to checkpoint, resumable and deterministic.

Loss per optimizer step = (sum of token cross-entropies over the whole accumulation window)
/ (supervised tokens in that window, across all ranks), so micro-batching, accumulation and
DDP do not change the gradient (transformers#34191).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from app import preempt
from app.env import determinism
from app.env.driver import check_driver
from app.errors import IntegrityError
from app.faults import fault
from app.progress import Reporter
from app.rundir.manifest import read_manifest, read_resume_json, record_resume, trusted_resume
from app.rundir.run_dir import RunDir, append_bytes, atomic_write_bytes, writing
from app.train.schedule import lr_at, warmup_steps
from app.train.sft_data import IGNORE, Encoded, collate, plan_steps, stream_slice

GROUP_FACTOR = 8  # length grouping sorts within chunks of 8 global batches

if TYPE_CHECKING:  # pydantic stays out of the trainer's imports (gpu_check runs without it)
    from app.spec.run_spec import TrainSpec


def set_determinism(seed: int) -> None:
    """Seed python/numpy/torch and force deterministic kernels, strictly (see app/env/determinism.py)."""
    determinism.apply(seed, warn_only=False)


def init_distributed() -> tuple[int, int, torch.device]:
    """(rank, world_size, device); starts a process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    rank = int(os.environ.get("RANK", "0"))
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def window_loss(model, batch: dict, n_window: int, device: torch.device, dtype: str) -> torch.Tensor:
    """Summed next-token CE of one micro-batch divided by the window's supervised count."""
    ids = batch["input_ids"].to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16")
    with autocast:
        logits = model(input_ids=ids, attention_mask=batch["attention_mask"].to(device)).logits
    labels = batch["labels"].to(device)[:, 1:]
    ce = F.cross_entropy(logits[:, :-1].float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE, reduction="sum")
    return ce / n_window


def step_items(
    lengths: list[int], seed: int, step: int, micro: int, accum: int, world: int, rank: int, group: int | None
) -> tuple[list[list[int]], list[int]]:
    """This rank's micro-batches for `step`, and every item in the step (for global counts)."""
    global_batch = micro * accum * world
    items = stream_slice(lengths, seed, step * global_batch, global_batch, group)
    windows = [items[j * micro * world : (j + 1) * micro * world] for j in range(accum)]
    return [w[rank * micro : (rank + 1) * micro] for w in windows], items


def padded_tokens(lengths: list[int], micro_batches: list[list[int]]) -> int:
    """Tokens this rank's micro-batches occupy once right-padded to their longest example."""
    return sum(len(mb) * max(lengths[i] for i in mb) for mb in micro_batches if mb)


def save_resume(run: RunDir, step: int, model, optimizer, world: int, global_batch: int) -> None:
    """Write a resumable checkpoint for `step` (next step to run), point `latest` at it, record it in
    the manifest, then prune older ones. Every prefix of this sequence resumes (see load_resume)."""
    target = run.file(f"resume/step-{step:06d}")
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for name, state in (("model.pt", unwrap(model).state_dict()), ("optimizer.pt", optimizer.state_dict())):
            # A file object: torch.save then keeps the OSError (ENOSPC, EFBIG) behind its own error.
            with writing(tmp / name), (tmp / name).open("wb") as fh:
                torch.save(state, fh)
        with writing(tmp / "rng.json"):
            (tmp / "rng.json").write_text(json.dumps(rng_state()))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fault("resume:tmp")
    shutil.rmtree(target, ignore_errors=True)  # left by a kill before it was recorded: never trusted, replace it
    os.replace(tmp, target)
    fault("resume:renamed")
    atomic_write_bytes(run.file("resume/latest.json"), json.dumps({"step": step, "dir": target.name}).encode())
    record_resume(run, step, world, global_batch)
    fault("resume:recorded")
    for old in run.file("resume").glob("step-*"):
        if old.name != target.name:
            shutil.rmtree(old, ignore_errors=True)
    fault("resume:pruned")


def rng_state() -> dict:
    """Python, NumPy and torch RNG states as plain JSON values."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state().tolist(),
    }


def set_rng_state(state: dict) -> None:
    """Restore what rng_state() recorded."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))


def resume_pointer(run: RunDir) -> dict | None:
    """Which resumable checkpoint to continue from: the one manifest.json vouches for while it is on disk
    (a kill after `latest.json` moved on but before the manifest did leaves `latest` one save ahead),
    else `latest.json` (which trusted_resume then refuses to trust), else none."""
    record = read_manifest(run).get("resume")
    if record is not None and (run.file("resume") / record["dir"]).is_dir():
        return {"step": record["step"], "dir": record["dir"]}
    pointer = run.file("resume/latest.json")
    return read_resume_json(pointer) if pointer.is_file() else None


def load_resume(run: RunDir, model, optimizer, world: int) -> tuple[int, int]:
    """Restore the latest resumable checkpoint the manifest vouches for; returns the step to continue
    from and the bytes of train_log.jsonl it covers (0, 0: start over)."""
    latest = resume_pointer(run)
    if latest is None:
        return 0, 0
    if not trusted_resume(run, latest, world):
        if int(os.environ.get("RANK", "0")) == 0:  # unverified state is discarded, never trusted later
            shutil.rmtree(run.file("resume"), ignore_errors=True)
        return 0, 0
    src = run.file("resume") / latest["dir"]
    unwrap(model).load_state_dict(load_tensors(src / "model.pt"))
    optimizer.load_state_dict(load_tensors(src / "optimizer.pt"))
    set_rng_state(read_resume_json(src / "rng.json"))  # JSON, never a pickle: resume runs no code
    return int(latest["step"]), read_manifest(run)["resume"]["log"]["bytes"]


def load_tensors(path: Path) -> dict:
    """A torch.save'd state dict, unpickled only as tensors and plain containers (weights_only=True):
    a crafted file is refused before any of its code runs, with one line naming it."""
    try:
        return torch.load(path, weights_only=True)
    except Exception as exc:  # UnpicklingError, a torn zip, a missing file: all mean "do not resume from it"
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise IntegrityError(f"{path}: not a plain tensor file, refusing to resume from it ({why[:160]})") from None


def pad_id(tokenizer) -> int:
    """The tokenizer's pad id, else its EOS (pads are masked out of attention and loss either way)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def stop_requested(world: int, device: torch.device) -> bool:
    """True on every rank when any rank got a stop signal (so all ranks stop at the same step)."""
    flag = preempt.requested() is not None
    if world > 1:
        t = torch.tensor([int(flag)], device=device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        flag = bool(t.item())
    return flag


def stop_at(run: RunDir, rank: int, world: int, step: int, total: int, model, optimizer, global_batch: int) -> None:
    """Save a resumable checkpoint for `step` and raise Interrupted: a rerun continues from here."""
    if rank == 0:
        save_resume(run, step, model, optimizer, world, global_batch)
    if world > 1:
        torch.distributed.barrier()
    raise preempt.Interrupted(f"{preempt.requested() or 'stop'}: checkpoint saved at step {step}/{total}")


def unwrap(model):
    return model.module if hasattr(model, "module") else model


def make_optimizer(model, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW; weight decay on matrices only (not norms or biases)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8, foreach=False)


def cut_log(path: Path, nbytes: int) -> None:
    """Cut the log back to the prefix the resumable checkpoint covers (manifest-verified): lines of
    steps that will run again, and a line torn by a kill, go."""
    if path.is_file() and path.stat().st_size != nbytes:
        with path.open("rb") as fh:
            atomic_write_bytes(path, fh.read(nbytes))


class SaveClock:
    """When to write a resumable checkpoint: every `every` steps and every `minutes` of wall time.

    Only rank 0 writes resume state and only rank 0 asks, so ranks need not agree on the moment;
    what is saved at a step boundary is the same whichever step it lands on."""

    def __init__(self, every: int | None, minutes: float | None):
        self.every, self.seconds = every, minutes * 60 if minutes else None
        self.last = time.monotonic()

    def due(self, next_step: int, total: int) -> bool:
        if next_step >= total:
            return False  # the final checkpoint follows
        by_steps = bool(self.every) and next_step % self.every == 0
        by_time = self.seconds is not None and time.monotonic() - self.last >= self.seconds
        if by_steps or by_time:
            self.last = time.monotonic()
        return by_steps or by_time


def load_model(
    model_path: str,
    device: torch.device,
    world: int,
    *,
    revision: str | None,
    trust_remote_code: bool,
    gradient_checkpointing: bool,
):
    """fp32 master weights on `device`, wrapped in DDP when there are several processes."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        model_path, dtype=torch.float32, revision=revision, use_safetensors=True, trust_remote_code=trust_remote_code
    ).to(device)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model.config.use_cache = False
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    model.train()
    return model


def accumulate(
    model,
    examples: list[Encoded],
    micro_batches: list[list[int]],
    n_window: int,
    pad_id: int,
    device: torch.device,
    dtype: str,
    world: int,
) -> float:
    """Backward over this rank's micro-batches; returns the window's loss summed over all ranks."""
    loss_sum = torch.zeros((), device=device)
    for j, mb in enumerate(micro_batches):
        batch = collate([examples[i] for i in mb], pad_id)
        last = j == len(micro_batches) - 1
        with model.no_sync() if world > 1 and not last else contextlib.nullcontext():
            loss = window_loss(model, batch, n_window, device, dtype)
            (loss * world).backward()  # DDP averages gradients; the window sum needs the total
        loss_sum += loss.detach()
    if world > 1:
        torch.distributed.all_reduce(loss_sum)
    return float(loss_sum)


def optimizer_step(model, optimizer, max_grad_norm: float | None) -> float:
    """Clip (when set), step, clear; returns the gradient norm before clipping."""
    clip = max_grad_norm if max_grad_norm is not None else math.inf
    grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip))
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm


def step_record(
    step: int,
    epoch: float,
    lr: float,
    loss: float,
    grad_norm: float,
    n_window: int,
    tokens: int,
    padded: int,
    step_s: float,
    elapsed_s: float,
) -> dict:
    """One train_log.jsonl line (keys documented in the README)."""
    return {
        "step": step,
        "epoch": epoch,
        "lr": lr,
        "loss": loss,
        "grad_norm": grad_norm,
        "supervised_tokens": n_window,
        "tokens": tokens,
        "supervised_ratio": n_window / tokens,
        "padding_fraction": 1 - tokens / padded if padded else 0.0,
        "tokens_per_s": tokens / step_s if step_s > 0 else None,
        "elapsed_s": elapsed_s,
    }


def run_training(
    run: RunDir,
    model_path: str,
    tokenizer,
    examples: list[Encoded],
    opts: TrainSpec,
    *,
    seed: int,
    resume: bool,
    progress: bool = True,
    trust_remote_code: bool = False,
    revision: str | None = None,
) -> dict:
    """Train and write checkpoint/ and train_log.jsonl; returns the loop's summary.

    `opts` is the spec's train section itself, so a new training option is one TrainSpec field
    read here: no keyword list to keep in step (loss_mask, overlong, max_seq_len act earlier).
    """
    check_driver()  # before torch touches CUDA: an old driver would silently mean training on the CPU
    set_determinism(seed)
    rank, world, device = init_distributed()
    model = load_model(
        model_path,
        device,
        world,
        revision=revision,
        trust_remote_code=trust_remote_code,
        gradient_checkpointing=opts.gradient_checkpointing,
    )
    optimizer = make_optimizer(model, opts.lr, opts.weight_decay)
    lengths = [len(e.input_ids) for e in examples]
    global_batch = opts.micro_batch_size * opts.grad_accum * world
    group = global_batch * GROUP_FACTOR if opts.group_by_length else None
    total_steps = plan_steps(lengths, global_batch, seed, group, opts.epochs, opts.max_steps, opts.max_tokens)
    start, log_bytes = load_resume(run, model, optimizer, world) if resume else (0, 0)
    log_path = run.file("train_log.jsonl")
    if rank == 0:
        cut_log(log_path, log_bytes)  # also drops a line torn by a kill
        run.note("train", total_steps=total_steps)
    clock = SaveClock(opts.save_every, opts.save_every_minutes)

    t0, sum_tokens = time.time(), 0
    bar = Reporter("train", total_steps, start, enabled=progress and rank == 0)
    for step in preempt.polled(range(start, total_steps)):
        step_t0 = time.time()
        lr_now = lr_at(step, total_steps, opts.lr, opts.schedule, opts.warmup_ratio, opts.min_lr_ratio)
        for param_group in optimizer.param_groups:
            param_group["lr"] = lr_now
        micro_batches, items = step_items(
            lengths, seed, step, opts.micro_batch_size, opts.grad_accum, world, rank, group
        )
        n_window = sum(examples[i].n_supervised for i in items)
        loss = accumulate(model, examples, micro_batches, n_window, pad_id(tokenizer), device, opts.dtype, world)
        grad_norm = optimizer_step(model, optimizer, opts.max_grad_norm)

        tokens = sum(lengths[i] for i in items)
        padded = padded_tokens(lengths, micro_batches) * world
        sum_tokens += tokens
        record = step_record(
            step,
            (step + 1) * global_batch / len(examples),
            lr_now,
            loss,
            grad_norm,
            n_window,
            tokens,
            padded,
            time.time() - step_t0,
            time.time() - t0,
        )
        if rank == 0:
            append_bytes(log_path, (json.dumps(record) + "\n").encode())
            if clock.due(step + 1, total_steps):
                save_resume(run, step + 1, model, optimizer, world, global_batch)
            bar.update(step + 1, sum_tokens, f"loss {loss:.4f} lr {lr_now:.2e} gn {grad_norm:.2f}")
        fault("train.step")
        if stop_requested(world, device) and step + 1 < total_steps:
            stop_at(run, rank, world, step + 1, total_steps, model, optimizer, global_batch)
    bar.close()
    if rank == 0:
        save_checkpoint(unwrap(model), tokenizer, run.file("checkpoint"))
    if world > 1:
        torch.distributed.barrier()
    wall = time.time() - t0
    return {
        "total_steps": total_steps,
        "warmup_steps": warmup_steps(total_steps, opts.warmup_ratio),
        "resumed_from_step": start,
        "global_batch": global_batch,
        "world_size": world,
        "examples": len(examples),
        "wall_s": wall,
        "tokens_per_s_session": sum_tokens / wall if wall > 0 else None,
    }


def save_checkpoint(model, tokenizer, out: Path) -> None:
    """safetensors + tokenizer + generation_config, written atomically.

    The generation config keeps every EOS the base model stops at (Qwen2.5-Math lists two) and adds
    the tokenizer's, which ends every training target.
    """
    from app.inputs.models import stop_token_ids

    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    eos = stop_token_ids(model.generation_config.eos_token_id, tokenizer.eos_token_id)
    model.generation_config.eos_token_id = eos[0] if len(eos) == 1 else eos
    model.generation_config.pad_token_id = pad_id(tokenizer)
    model.config.use_cache = True
    try:
        with writing(out):
            model.save_pretrained(tmp, safe_serialization=True)
            add_legacy_rope_keys(tmp / "config.json")
            tokenizer.save_pretrained(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a full disk leaves nothing half-written behind
        raise
    fault("checkpoint:tmp")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    fault("checkpoint:renamed")


def add_legacy_rope_keys(path: Path) -> None:
    """Also write `rope_theta` (and `rope_scaling`) beside transformers 5's `rope_parameters`.

    transformers 4.x (the CUDA 12 eval image's, pinned by vllm 0.16) ignores `rope_parameters` and
    would read SmolLM2's theta 100000 as the default 10000; transformers 5 reads either form.
    """
    config = json.loads(path.read_text())
    params = config.get("rope_parameters")
    if not isinstance(params, dict) or "rope_theta" not in params or "rope_theta" in config:
        return
    config["rope_theta"] = params["rope_theta"]
    if params.get("rope_type", "default") != "default":
        config["rope_scaling"] = {k: v for k, v in params.items() if k != "rope_theta"}
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
