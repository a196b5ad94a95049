"""How early Slurm must send the pre-time-limit signal (`--signal=B:USR1@S`): long enough to finish the
current step and write and hash the resumable checkpoint before the job is killed.

The resumable checkpoint (app/train/checkpoint.py save_resume) holds the fp32 master weights (the
trainer loads every model in fp32, whatever `train.dtype`) and AdamW's two fp32 moments: 12 bytes per
parameter, written with fsync, then read back and sha256-hashed for the manifest. So

    lead = SAFETY x (bytes / write speed + bytes / hash speed) + one optimizer step + MARGIN_S

with the speeds measured on the runs file system at submit time (app/launch/write_speed.py) and the
step time from `repro plan`'s estimate. Pure: arithmetic only; the measurement is passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from app.errors import UserError

WEIGHT_BYTES = 4  # fp32 master weights (app/train/loop.py load_model)
ADAMW_BYTES = 8  # exp_avg + exp_avg_sq, fp32
SAFETY = 1.5  # a shared file system's speed varies with the other jobs writing to it
MARGIN_S = 60  # process exit, `scontrol requeue`, a slow `squeue`
DEFAULT_S = 300  # when no trained model's size is known


@dataclass(frozen=True)
class Speeds:
    """Bytes per second of a write+fsync and of sha256 over what was written, as measured."""

    write_bps: float
    hash_bps: float


def checkpoint_bytes(params: int) -> int:
    """Bytes of one resumable checkpoint of a model with `params` parameters (RNG state aside)."""
    return params * (WEIGHT_BYTES + ADAMW_BYTES)


def lead_seconds(nbytes: int, speeds: Speeds, step_s: float = 0.0) -> int:
    """Seconds between the signal and the kill that a checkpoint of `nbytes` needs."""
    if speeds.write_bps <= 0 or speeds.hash_bps <= 0:
        raise ValueError(f"speeds must be positive: {speeds}")
    io = nbytes / speeds.write_bps + nbytes / speeds.hash_bps
    return math.ceil(SAFETY * io + step_s + MARGIN_S)


def derivation(nbytes: int, speeds: Speeds, step_s: float, lead: int) -> str:
    """The one line that says how `lead` was reached."""
    return (
        f"signal lead {lead} s = {SAFETY:g} x ({nbytes / 1e9:.2f} GB resume checkpoint / "
        f"{speeds.write_bps / 1e6:.0f} MB/s write+fsync + sha256 at {speeds.hash_bps / 1e6:.0f} MB/s) "
        f"+ {step_s:.1f} s for the step under way + {MARGIN_S} s margin (--signal-before S overrides)"
    )


def check_within(lead: int, time_limit_s: int | None, time_text: str | None) -> None:
    """Refuse a lead time that leaves no time to work before the signal."""
    if time_limit_s is not None and lead >= time_limit_s:
        raise UserError(
            f"--time {time_text}: the checkpoint needs the signal {lead} s before the limit, which leaves no time "
            "to train; ask for more --time (or set --signal-before)"
        )


def choose_lead(estimates: list[dict], gpus: int, measure, log) -> int:
    """The lead time for an array of tasks (one `#SBATCH --signal` for all): that of its largest
    trained model, from `repro plan` estimates and `measure()` (→ Speeds, called only when needed)."""
    trained = [e for e in estimates if e["steps"]]
    if not trained:
        log(f"signal lead {MARGIN_S} s: nothing trains (evaluation stops at once and resumes by chunk)")
        return MARGIN_S
    known = [e for e in trained if e["params"] is not None]
    unknown = sorted({e["model"] for e in trained if e["params"] is None})
    lead = 0
    if known:
        big = max(known, key=lambda e: (e["params"], e["train_hours"] / max(1, e["steps"])))
        step_s = big["train_hours"] * 3600 / max(1, big["steps"]) / max(1, gpus)
        nbytes, speeds = checkpoint_bytes(big["params"]), measure()
        lead = lead_seconds(nbytes, speeds, step_s)
        log(derivation(nbytes, speeds, step_s, lead))
    if unknown:
        lead = max(lead, DEFAULT_S)
        log(f"signal lead {lead} s: size of {', '.join(unknown)} unknown, at least the default {DEFAULT_S} s")
    return lead
