"""One set of numeric settings per stage, applied explicitly at the stage's start, and a record of them.

Evaluation applies its settings itself, so generation runs the same whether it follows training in
one process (`repro run`, `repro sweep`) or starts fresh (`repro eval`, the compose eval service).
Training asks for deterministic kernels strictly (an op without one is an error); evaluation asks
for them where they exist and only warns elsewhere, because generation engines use such ops.
"""

from __future__ import annotations

import os
import random

CUBLAS_WORKSPACE = ":4096:8"  # deterministic cuBLAS needs a fixed workspace (set before CUDA starts)


def apply(seed: int, *, warn_only: bool) -> dict:
    """Seed every RNG, force deterministic kernels and full-precision fp32 matmuls; returns `settings`."""
    import numpy as np
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=warn_only)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    # TF32 changes fp32 results on Ampere+ GPUs; cuDNN allows it by default, so say no explicitly.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    return settings(seed)


def apply_eval(seed: int) -> dict:
    """The evaluation settings, identical for every entry point."""
    return apply(seed, warn_only=True)


def settings(seed: int | None = None) -> dict:
    """The settings now in force (recorded in eval_metrics.json and env.json)."""
    import torch

    return {
        "seed": seed,
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }


def runtime_record(seed: int | None = None) -> dict:
    """What torch sees of the accelerator stack, the process count and the numeric settings (env.json)."""
    import torch

    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "torch_cuda": torch.version.cuda,
        "cudnn": cudnn,
        "cuda_available": torch.cuda.is_available(),
        "world_size": world_size(),
        "numerics": settings(seed),
    }


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))
