"""Learning-rate schedules as one pure function of the optimizer step."""

from __future__ import annotations

import math


def warmup_steps(total_steps: int, warmup_ratio: float) -> int:
    """Number of linear-warmup steps: ceil(ratio × total), 0 when the ratio is 0."""
    return math.ceil(warmup_ratio * total_steps)


def lr_at(
    step: int, total_steps: int, base_lr: float, schedule: str, warmup_ratio: float = 0.0, min_lr_ratio: float = 0.0
) -> float:
    """LR for optimizer step `step` (0-based) of `total_steps`.

    constant: base_lr after warmup. cosine: linear warmup to base_lr, then cosine decay that
    reaches min_lr_ratio × base_lr on the last step.
    """
    warm = warmup_steps(total_steps, warmup_ratio)
    if step < warm:
        # (step + 1) / (warm + 1): the first update runs below peak even with one warmup step,
        # and no step is wasted at LR 0; peak is reached on the first step after warmup.
        return base_lr * (step + 1) / (warm + 1)
    if schedule == "constant":
        return base_lr
    if schedule != "cosine":
        raise ValueError(f"unknown schedule {schedule!r}")
    decay_steps = max(1, total_steps - warm - 1)
    progress = min(1.0, (step - warm) / decay_steps)
    floor = min_lr_ratio * base_lr
    return floor + (base_lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))
