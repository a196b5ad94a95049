"""Checkpoints of the SFT loop: the resumable state saved while training (and restored on a rerun)
and the final checkpoint/ a finished loop writes.

Resumable: resume/step-NNNNNN/ holds the model, optimizer and RNG states (tensors as plain
`torch.save` files, RNG as JSON: resuming runs no code); resume/latest.json points at it and the
manifest vouches for it (app/rundir/manifest.py record_resume / trusted_resume), so every prefix of a
save resumes: from it, or from the one before. Final: safetensors + tokenizer + generation config,
renamed into checkpoint/ in one step.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from app.errors import IntegrityError
from app.faults import fault
from app.rundir.layout import (
    MODEL_STATE,
    OPTIMIZER_STATE,
    RESUME_DIR,
    RESUME_LATEST,
    RESUME_STEP_PREFIX,
    RNG_JSON,
    resume_step_dir,
)
from app.rundir.manifest import read_resume_json, record_resume, resume_record, trusted_resume
from app.rundir.run_dir import RunDir, atomic_write_bytes, writing


def save_resume(run: RunDir, step: int, model, optimizer, world: int, global_batch: int) -> float:
    """Write a resumable checkpoint for `step` (next step to run), point `latest` at it, record it in
    the manifest, then prune older ones; returns the seconds it took. Every prefix of this sequence
    resumes (see load_resume): the previous checkpoint stays on disk and in the manifest until this one
    is complete, synced (a node that dies leaves no unwritten page behind a manifest entry) and recorded."""
    t0 = time.monotonic()
    target = run.file(resume_step_dir(step))
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        write_synced(tmp / MODEL_STATE, lambda fh: torch.save(unwrap(model).state_dict(), fh))
        fault("resume:model")  # a kill in the middle of the checkpoint: the model written, the optimizer not
        write_synced(tmp / OPTIMIZER_STATE, lambda fh: torch.save(optimizer.state_dict(), fh))
        write_synced(tmp / RNG_JSON, lambda fh: fh.write(json.dumps(rng_state()).encode()))
        fsync_dir(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fault("resume:tmp")
    shutil.rmtree(target, ignore_errors=True)  # left by a kill before it was recorded: never trusted, replace it
    os.replace(tmp, target)
    fsync_dir(target.parent)
    fault("resume:renamed")
    atomic_write_bytes(run.file(RESUME_LATEST), json.dumps({"step": step, "dir": target.name}).encode())
    record_resume(run, step, world, global_batch)
    fault("resume:recorded")
    for old in run.file(RESUME_DIR).glob(f"{RESUME_STEP_PREFIX}*"):
        if old.name != target.name:
            shutil.rmtree(old, ignore_errors=True)
    fault("resume:pruned")
    return time.monotonic() - t0


def write_synced(path: Path, write) -> None:
    """`write(file object)`, then fsync. A file object: torch.save then keeps the OSError (ENOSPC,
    EFBIG) behind its own error, which `writing` turns into one line."""
    with writing(path), path.open("wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a new file, a rename) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
    record = resume_record(run)
    if record is not None and (run.file(RESUME_DIR) / record["dir"]).is_dir():
        return {"step": record["step"], "dir": record["dir"]}
    pointer = run.file(RESUME_LATEST)
    return read_resume_json(pointer) if pointer.is_file() else None


def load_resume(run: RunDir, model, optimizer, world: int) -> tuple[int, int]:
    """Restore the latest resumable checkpoint the manifest vouches for; returns the step to continue
    from and the bytes of train_log.jsonl it covers (0, 0: start over)."""
    latest = resume_pointer(run)
    if latest is None:
        return 0, 0
    if not trusted_resume(run, latest, world):
        if int(os.environ.get("RANK", "0")) == 0:  # unverified state is discarded, never trusted later
            shutil.rmtree(run.file(RESUME_DIR), ignore_errors=True)
        return 0, 0
    src = run.file(RESUME_DIR) / latest["dir"]
    unwrap(model).load_state_dict(load_tensors(src / MODEL_STATE))
    optimizer.load_state_dict(load_tensors(src / OPTIMIZER_STATE))
    set_rng_state(read_resume_json(src / RNG_JSON))  # JSON, never a pickle: resume runs no code
    return int(latest["step"]), resume_record(run)["log"]["bytes"]


def load_tensors(path: Path) -> dict:
    """A torch.save'd state dict, unpickled only as tensors and plain containers (weights_only=True):
    a crafted file is refused before any of its code runs, with one line naming it."""
    try:
        return torch.load(path, weights_only=True)
    except Exception as exc:  # UnpicklingError, a torn zip, a missing file: all mean "do not resume from it"
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise IntegrityError(f"{path}: not a plain tensor file, refusing to resume from it ({why[:160]})") from None


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


def unwrap(model):
    return model.module if hasattr(model, "module") else model


def pad_id(tokenizer) -> int:
    """The tokenizer's pad id, else its EOS (pads are masked out of attention and loss either way)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def save_eval_copy(checkpoint: Path, out: Path) -> None:
    """`checkpoint` with its floating-point weights cast to bf16, for evaluation in bfloat16: half the
    bytes to write and to read back. The cast (round to nearest even) is the one vLLM makes loading
    the fp32 weights with dtype bfloat16, so predictions do not change. Written atomically."""
    import torch
    from safetensors.torch import load_file, save_file

    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for f in sorted(checkpoint.iterdir()):
            if f.name.endswith(".safetensors"):
                tensors = load_file(f)
                cast = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in tensors.items()}
                save_file(cast, tmp / f.name, metadata={"format": "pt"})
            elif f.name == "config.json":
                config = json.loads(f.read_text())
                config.update({k: "bfloat16" for k in ("torch_dtype", "dtype") if k in config})
                (tmp / f.name).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
            else:
                shutil.copy2(f, tmp / f.name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)


def save_checkpoint(model, tokenizer, out: Path) -> None:
    """safetensors + tokenizer + generation_config, written atomically.

    The generation config keeps every EOS the base model stops at (Qwen2.5-Math lists two) and adds
    the tokenizer's, which ends every training target.
    """
    from app.inputs.prompts import stop_token_ids

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
