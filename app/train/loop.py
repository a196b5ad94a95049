"""The SFT loop: one explicit loop from data to checkpoint, resumable (app/train/checkpoint.py saves
and restores its state) and deterministic.

Loss per optimizer step = (sum of token cross-entropies over the whole accumulation window)
/ (supervised tokens in that window, across all ranks), so micro-batching, accumulation and
DDP do not change the gradient (transformers#34191).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from app import preempt
from app.env import determinism
from app.env.driver import check_driver
from app.faults import fault
from app.progress import Reporter
from app.rundir.layout import CHECKPOINT_DIR, TRAIN_LOG_JSONL
from app.rundir.run_dir import RunDir, append_bytes
from app.train.checkpoint import SaveClock, cut_log, load_resume, pad_id, save_checkpoint, save_resume, unwrap
from app.train.schedule import lr_at, warmup_steps
from app.train.sft_data import IGNORE, Encoded, collate, plan_budget, stream_slice

GROUP_FACTOR = 8  # length grouping sorts within chunks of 8 global batches

if TYPE_CHECKING:  # pydantic stays out of the trainer's imports (gpu_check runs without it)
    from app.spec.run_spec import TrainSpec


def set_determinism(seed: int) -> None:
    """Seed python/numpy/torch and force deterministic kernels, strictly (see app/env/determinism.py)."""
    determinism.apply(seed, warn_only=False)


def init_distributed(want: str = "auto") -> tuple[int, int, torch.device]:
    """(rank, world_size, device); starts a process group when launched by torchrun.

    `want` is the spec's device: `cpu` stays on the CPU even with a GPU visible; `cuda` was checked
    before the stage started (app/env/device.py), so it and `auto` take the GPU torch sees."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = want != "cpu" and torch.cuda.is_available()
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if use_cuda else "gloo")
    rank = int(os.environ.get("RANK", "0"))
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def window_loss(
    model, batch: dict, n_window: int, device: torch.device, dtype: str, kernel: str = "full"
) -> torch.Tensor:
    """Summed next-token CE of one micro-batch divided by the window's supervised count (`kernel`: loss_kernel)."""
    ids = batch["input_ids"].to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16")
    with autocast:
        logits = model(input_ids=ids, attention_mask=batch["attention_mask"].to(device)).logits
    labels = batch["labels"].to(device)[:, 1:]
    if kernel == "chunked":
        return chunked_ce_sum(logits[:, :-1], labels) / n_window
    ce = F.cross_entropy(logits[:, :-1].float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE, reduction="sum")
    return ce / n_window


def step_items(
    lengths: list[int],
    seed: int,
    step: int,
    micro: int,
    accum: int,
    world: int,
    rank: int,
    group: int | None,
    n_windows: int | None = None,
) -> tuple[list[list[int]], list[int]]:
    """This rank's micro-batches for `step`, and every item in the step (for global counts).

    `n_windows` < accum: a token budget's last step, which trains only its first windows."""
    global_batch, n_windows = micro * accum * world, n_windows or accum
    items = stream_slice(lengths, seed, step * global_batch, n_windows * micro * world, group)
    windows = [items[j * micro * world : (j + 1) * micro * world] for j in range(n_windows)]
    return [w[rank * micro : (rank + 1) * micro] for w in windows], items


def padded_tokens(lengths: list[int], micro_batches: list[list[int]]) -> int:
    """Tokens this rank's micro-batches occupy once right-padded to their longest example."""
    return sum(len(mb) * max(lengths[i] for i in mb) for mb in micro_batches if mb)


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
    took = f" in {save_resume(run, step, model, optimizer, world, global_batch):.1f} s" if rank == 0 else ""
    if world > 1:
        torch.distributed.barrier()
    raise preempt.Interrupted(f"{preempt.requested() or 'stop'}: checkpoint saved at step {step}/{total}{took}")


def make_optimizer(model, lr: float, weight_decay: float, device_type: str = "cpu") -> torch.optim.Optimizer:
    """AdamW; weight decay on matrices only (not norms or biases)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8, **adamw_kernel(device_type))


def adamw_kernel(device_type: str) -> dict:
    """The fused multi-tensor AdamW kernel on CUDA (one launch per step, not one per parameter); on the
    CPU the per-parameter update every CPU golden loss and checkpoint hash was made with."""
    return {"fused": True} if device_type == "cuda" else {"foreach": False}


CE_CHUNK = 2048  # supervised positions per fp32 chunk: 2048 × 151,936 × 4 B ≈ 1.2 GB at Qwen's vocabulary


def loss_kernel(device_type: str) -> str:
    """`chunked` cross-entropy on CUDA (no full fp32 copy of the logits); on the CPU the one-shot fp32
    cross-entropy the CPU goldens were made with (a different summation order changes the last bits)."""
    return "chunked" if device_type == "cuda" else "full"


def chunked_ce_sum(logits: torch.Tensor, labels: torch.Tensor, chunk: int = CE_CHUNK) -> torch.Tensor:
    """Summed CE over the supervised positions only, upcast to fp32 one chunk at a time and recomputed in
    backward (activation checkpointing), so neither the fp32 logits nor their gradient exist whole."""
    from torch.utils.checkpoint import checkpoint

    flat, targets = logits.flatten(0, 1), labels.flatten()
    keep = (targets != IGNORE).nonzero().squeeze(1)
    total = torch.zeros((), dtype=torch.float32, device=logits.device)
    for i in range(0, keep.numel(), chunk):
        idx = keep[i : i + chunk]
        total = total + checkpoint(
            _ce_sum, flat.index_select(0, idx), targets.index_select(0, idx), use_reentrant=False
        )
    return total


def _ce_sum(rows: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(rows.float(), targets, reduction="sum")


def load_model(
    model_path: str,
    device: torch.device,
    world: int,
    *,
    revision: str | None,
    trust_remote_code: bool,
    gradient_checkpointing: bool,
    compile: bool = False,
):
    """fp32 master weights on `device`, wrapped in DDP when there are several processes.

    `compile`: torch.compile in place (nn.Module.compile), so parameter names, state dicts and
    checkpoints are those of the uncompiled model."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        model_path, dtype=torch.float32, revision=revision, use_safetensors=True, trust_remote_code=trust_remote_code
    ).to(device)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model.config.use_cache = False
    if compile:
        model.compile()
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
            loss = window_loss(model, batch, n_window, device, dtype, loss_kernel(device.type))
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
    """One train_log.jsonl line (keys documented in docs/run-directory.md)."""
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
    device: str = "auto",
) -> dict:
    """Train and write checkpoint/ and train_log.jsonl; returns the loop's summary.

    `opts` is the spec's train section itself, so a new training option is one TrainSpec field
    read here: no keyword list to keep in step (loss_mask, overlong, max_seq_len act earlier).
    """
    check_driver()  # before torch touches CUDA: an old driver would silently mean training on the CPU
    set_determinism(seed)
    rank, world, where = init_distributed(device)
    accum = opts.accumulation(world)  # before the model loads: a global_batch that does not divide fails at once
    model = load_model(
        model_path,
        where,
        world,
        revision=revision,
        trust_remote_code=trust_remote_code,
        gradient_checkpointing=opts.gradient_checkpointing,
        compile=getattr(opts, "compile", False),
    )
    optimizer = make_optimizer(model, opts.lr, opts.weight_decay, where.type)
    lengths = [len(e.input_ids) for e in examples]
    global_batch = opts.micro_batch_size * accum * world
    group = global_batch * GROUP_FACTOR if opts.group_by_length else None
    window = opts.micro_batch_size * world
    budget = plan_budget(lengths, global_batch, window, seed, group, opts.epochs, opts.max_steps, opts.max_tokens)
    total_steps = budget.steps
    start, log_bytes = load_resume(run, model, optimizer, world) if resume else (0, 0)
    log_path = run.file(TRAIN_LOG_JSONL)
    if rank == 0:
        cut_log(log_path, log_bytes)  # also drops a line torn by a kill
        run.note("train", total_steps=total_steps)
    clock = SaveClock(opts.save_every, opts.save_every_minutes)

    t0, sum_tokens, save_s = time.time(), 0, None
    bar = Reporter("train", total_steps, start, enabled=progress and rank == 0)
    for step in preempt.polled(range(start, total_steps)):
        step_t0 = time.time()
        lr_now = lr_at(step, total_steps, opts.lr, opts.schedule, opts.warmup_ratio, opts.min_lr_ratio)
        for param_group in optimizer.param_groups:
            param_group["lr"] = lr_now
        n_windows = budget.windows(step, accum)
        micro_batches, items = step_items(
            lengths, seed, step, opts.micro_batch_size, accum, world, rank, group, n_windows
        )
        n_window = sum(examples[i].n_supervised for i in items)
        loss = accumulate(model, examples, micro_batches, n_window, pad_id(tokenizer), where, opts.dtype, world)
        grad_norm = optimizer_step(model, optimizer, opts.max_grad_norm)

        tokens = sum(lengths[i] for i in items)
        padded = padded_tokens(lengths, micro_batches) * world
        sum_tokens += tokens
        record = step_record(
            step,
            (step * global_batch + len(items)) / len(examples),
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
                save_s = save_resume(run, step + 1, model, optimizer, world, global_batch)
            bar.update(step + 1, sum_tokens, f"loss {loss:.4f} lr {lr_now:.2e} gn {grad_norm:.2f}")
        fault("train.step")
        if stop_requested(world, where) and step + 1 < total_steps:
            stop_at(run, rank, world, step + 1, total_steps, model, optimizer, global_batch)
    bar.close()
    if rank == 0:
        save_checkpoint(unwrap(model), tokenizer, run.file(CHECKPOINT_DIR))
    if world > 1:
        torch.distributed.barrier()
    wall = time.time() - t0
    return {
        "total_steps": total_steps,
        "warmup_steps": warmup_steps(total_steps, opts.warmup_ratio),
        "resumed_from_step": start,
        "global_batch": global_batch,
        "kernels": {
            "loss": loss_kernel(where.type),
            "adamw": next(iter(adamw_kernel(where.type))),
            "compiled": bool(getattr(opts, "compile", False)),
        },
        **({"budget_tokens": opts.max_tokens, "last_step_windows": budget.last_windows} if opts.max_tokens else {}),
        "world_size": world,
        "examples": len(examples),
        "wall_s": wall,
        "tokens_per_s_session": sum_tokens / wall if wall > 0 else None,
        "resume_save_s": save_s,  # the session's last resumable save (write, fsync, hash); compare --signal-before
    }
